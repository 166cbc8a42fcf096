//! The Go health tool (`hack/tools/health`, built by `hack/gotools.sh` into its own cache):
//! kstatus as Flux and kpt compute it, and Argo CD's Lua health checks run by gopher-lua.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The `audience-health` binary: `$AUDIENCE_OPERATOR_GOTOOLS/audience-health` when set, else
/// what `hack/gotools.sh` prints (it builds on first use and waits for a parallel build).
pub fn tool() -> &'static Path {
    static TOOL: OnceLock<PathBuf> = OnceLock::new();
    TOOL.get_or_init(|| {
        let dir = match std::env::var_os("AUDIENCE_OPERATOR_GOTOOLS") {
            Some(dir) if Path::new(&dir).join("audience-health").exists() => PathBuf::from(dir),
            _ => {
                let out = Command::new(root().join("hack/gotools.sh"))
                    .stderr(Stdio::inherit())
                    .output()
                    .expect("running hack/gotools.sh");
                assert!(out.status.success(), "hack/gotools.sh failed");
                let stdout = String::from_utf8(out.stdout).unwrap();
                PathBuf::from(stdout.lines().last().expect("a directory").trim())
            }
        };
        dir.join("audience-health")
    })
}

/// What the tool printed: `(status, message)`.
fn run(args: &[&str], object: &serde_json::Value) -> (String, String) {
    let mut child = Command::new(tool())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting audience-health");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(object.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "audience-health {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON out");
    (
        v["status"].as_str().unwrap().to_string(),
        v["message"].as_str().unwrap().to_string(),
    )
}

/// kstatus of an object (`Current`, `InProgress`, `Failed`, ...) and its message.
pub fn kstatus(object: &serde_json::Value) -> (String, String) {
    run(&["kstatus"], object)
}

/// The Argo CD health check shipped in `docs/health/`.
pub fn argo_script() -> PathBuf {
    root().join("docs/health/sync.lua")
}

/// Argo CD health (`Healthy`, `Progressing`, `Degraded`, `Suspended`, ...) and its message.
pub fn argo(object: &serde_json::Value) -> (String, String) {
    run(&["lua", argo_script().to_str().unwrap()], object)
}
