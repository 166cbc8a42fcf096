// Command audience-health reads Kubernetes objects the way GitOps tools do, for the tests:
//
//	audience-health kstatus < object.json
//	    the kstatus of the object (sigs.k8s.io/cli-utils/pkg/kstatus/status, what Flux and kpt
//	    use): prints {"status": "Current|InProgress|Failed|...", "message": "..."}
//	audience-health lua SCRIPT.lua < object.json
//	    runs an Argo CD health check (resource.customizations.health.<group>_<kind>) on the
//	    object with gopher-lua, the interpreter Argo CD embeds, with the libraries it opens,
//	    and prints {"status": "...", "message": "..."} as the script returned it
//
// The object is JSON on stdin, e.g. `kubectl get audiencesync x -o json | audience-health kstatus`.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "audience-health:", err)
		os.Exit(1)
	}
}

func run(args []string, in io.Reader, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: audience-health kstatus | lua SCRIPT.lua (object JSON on stdin)")
	}
	raw, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	// Decoded as the API machinery does (integers stay int64, as kstatus expects).
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		return fmt.Errorf("stdin is not a Kubernetes object in JSON: %w", err)
	}
	obj := u.Object
	var res result
	switch args[0] {
	case "kstatus":
		r, err := status.Compute(u)
		if err != nil {
			return fmt.Errorf("kstatus: %w", err)
		}
		res = result{Status: r.Status.String(), Message: r.Message}
	case "lua":
		if len(args) != 2 {
			return fmt.Errorf("usage: audience-health lua SCRIPT.lua")
		}
		script, err := os.ReadFile(args[1])
		if err != nil {
			return err
		}
		res, err = luaHealth(string(script), obj)
		if err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown command %q", args[0])
	}
	return json.NewEncoder(out).Encode(res)
}

// luaHealth runs a health script as Argo CD does: a fresh state with only the package, base and
// table libraries (Argo CD adds a safe part of os, which our scripts do not use; it opens no
// string or math library, so a script that calls them fails here as it would there), the
// object as the global `obj`, and the script's returned table read for `status` and `message`.
func luaHealth(script string, obj map[string]interface{}) (result, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		l.Push(l.NewFunction(lib.fn))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return result{}, fmt.Errorf("health script: %w", err)
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return result{}, fmt.Errorf("health script returned %s, not a table", l.Get(-1).Type())
	}
	res := result{}
	if s, ok := ret.RawGetString("status").(lua.LString); ok {
		res.Status = string(s)
	}
	if m, ok := ret.RawGetString("message").(lua.LString); ok {
		res.Message = string(m)
	}
	switch res.Status {
	case "Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown":
	default:
		return result{}, fmt.Errorf("health script returned status %q, which Argo CD does not know", res.Status)
	}
	return res, nil
}

// toLua converts decoded JSON as Argo CD's decodeValue does (objects and arrays become tables,
// arrays 1-based).
func toLua(l *lua.LState, v interface{}) lua.LValue {
	switch v := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []interface{}:
		t := l.NewTable()
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]interface{}:
		t := l.NewTable()
		for k, item := range v {
			t.RawSetString(k, toLua(l, item))
		}
		return t
	default:
		return lua.LString(fmt.Sprint(v))
	}
}
