#!/usr/bin/env bash
# Builds the test-ground binaries (etcd, kube-apiserver, kube-controller-manager, kubectl, helm)
# from the Go tools modules under hack/tools/ into a cache directory keyed by their versions,
# and prints that directory as the LAST line of stdout. Progress goes to stderr.
#
#   hack/testbins.sh            build if needed, print the directory
#   hack/testbins.sh --key      print only the cache key
#
# Environment:
#   AUDIENCE_OPERATOR_TESTBINS        use (and fill) exactly this directory instead of the default
#   AUDIENCE_OPERATOR_TESTBINS_CACHE  parent of the keyed directories
#                                     (default ${XDG_CACHE_HOME:-$HOME/.cache}/audience-operator/testbins)
#   GO                                the go command (default: go on PATH, else /usr/local/go/bin/go)
#   TESTBINS_NICE                     nice level for the build (default 10)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/hack/tools"
BINARIES=(etcd kube-apiserver kube-controller-manager kubectl helm)
# Space the cold build needs: Go module cache (~1 GiB), Go build cache (~4 GiB for the
# kubernetes tree), the binaries (~0.3 GiB), plus headroom.
NEED_GOCACHE_MIB=${TESTBINS_NEED_MIB:-6144}
NEED_BINS_MIB=512

log() { printf 'testbins: %s\n' "$*" >&2; }
die() { printf 'testbins: error: %s\n' "$*" >&2; exit 1; }

# Version of module $2 required in hack/tools/$1/go.mod (read without running go, so a cache hit
# needs no Go toolchain at all).
modver() {
  awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' \
    "$TOOLS/$1/go.mod"
}

K8S_VERSION="$(modver kube k8s.io/kubernetes)"
ETCD_VERSION="$(modver etcd go.etcd.io/etcd/server/v3)"
HELM_VERSION="$(modver helm helm.sh/helm/v3)"
[[ -n $K8S_VERSION && -n $ETCD_VERSION && -n $HELM_VERSION ]] ||
  die "could not read the pinned versions from hack/tools/*/go.mod"
# Helm's built-in default Kubernetes version (used by `helm template` without --kube-version):
# the version of the control plane we test against.
K8S_MAJOR="${K8S_VERSION#v}"; K8S_MAJOR="${K8S_MAJOR%%.*}"
K8S_MINOR="${K8S_VERSION#v*.}"; K8S_MINOR="${K8S_MINOR%%.*}"

# Bump when the way the binaries are built changes (flags, ldflags, list of binaries).
RECIPE=1
# The key names the versions; the hash part changes with go.mod/go.sum and RECIPE.
recipe_hash() {
  { cat "$TOOLS"/{kube,etcd,helm}/go.{mod,sum}; echo "recipe=$RECIPE"; } | sha256sum | cut -c1-10
}
KEY="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_helm-${HELM_VERSION}_$(recipe_hash)"

if [[ ${1:-} == --key ]]; then
  echo "$KEY"
  exit 0
fi

CACHE_PARENT="${AUDIENCE_OPERATOR_TESTBINS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/audience-operator/testbins}"
DEST="${AUDIENCE_OPERATOR_TESTBINS:-$CACHE_PARENT/$KEY}"

complete() {
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$1/$b" ]] || return 1; done
  [[ -f "$1/VERSIONS" ]] && grep -qx "key=$KEY" "$1/VERSIONS"
}

if complete "$DEST"; then
  log "cached: $DEST"
  echo "$DEST"
  exit 0
fi

# ---- build -------------------------------------------------------------------------------
mkdir -p "$(dirname "$DEST")"
exec 9>"$DEST.lock"
if ! flock -n 9; then
  log "another build of $KEY is running; waiting for it"
  flock 9
fi
if complete "$DEST"; then # built by the one we waited for
  log "cached: $DEST"
  echo "$DEST"
  exit 0
fi

GO="${GO:-}"
if [[ -z $GO ]]; then
  if command -v go >/dev/null 2>&1; then GO="$(command -v go)"
  elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go
  else die "no Go toolchain: install Go >= 1.26 (or set GO=/path/to/go)"
  fi
fi
# An older local Go fetches the go.mod-required toolchain from the module proxy.
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-trimpath -mod=readonly"
export CGO_ENABLED=0

avail_mib() { df -Pm "$1" | awk 'NR == 2 { print $4 }'; }
gocache="$("$GO" env GOCACHE)"
gomodcache="$("$GO" env GOMODCACHE)"
mkdir -p "$gocache" "$gomodcache"
# Sum what each filesystem must hold (caches and destination may share one).
declare -A need=() where=()
add_need() {
  local dev
  dev="$(df -P "$1" | awk 'NR == 2 { print $1 }')"
  need[$dev]=$(( ${need[$dev]:-0} + $2 ))
  where[$dev]="${where[$dev]:+${where[$dev]}, }$1"
}
add_need "$gocache" "$NEED_GOCACHE_MIB"
add_need "$gomodcache" 1536
add_need "$(dirname "$DEST")" "$NEED_BINS_MIB"
for dev in "${!need[@]}"; do
  first="${where[$dev]%%,*}"
  have="$(avail_mib "$first")"
  if (( have < need[$dev] )); then
    die "not enough free disk on $dev (${where[$dev]}): need ${need[$dev]} MiB, available ${have} MiB.
  Free some space, or point GOCACHE / GOMODCACHE / AUDIENCE_OPERATOR_TESTBINS_CACHE elsewhere."
  fi
  log "disk: ${where[$dev]}: need ${need[$dev]} MiB, available ${have} MiB"
done

STAGE="$(mktemp -d "$DEST.tmp.XXXXXX")"
chmod 755 "$STAGE"
trap 'rm -rf "$STAGE"' EXIT
NICE=(nice -n "${TESTBINS_NICE:-10}")
start=$SECONDS

build() { # build <tools-module> <ldflags> <package>...
  local mod="$1" ldflags="$2"
  shift 2
  log "building $* ($("$GO" env GOVERSION), module hack/tools/$mod)"
  (cd "$TOOLS/$mod" && "${NICE[@]}" "$GO" build -ldflags "-s -w $ldflags" -o "$STAGE/" "$@") >&2
}

build etcd "" go.etcd.io/etcd/server/v3
# The package path ends in a major-version suffix, so go names the binary "server".
mv "$STAGE/server" "$STAGE/etcd"

build helm "-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} \
  -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=${K8S_MAJOR} \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${K8S_MINOR} \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=${K8S_MAJOR} \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${K8S_MINOR}" \
  helm.sh/helm/v3/cmd/helm

kver=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kver+=" -X $pkg.gitVersion=${K8S_VERSION} -X $pkg.gitMajor=${K8S_MAJOR} -X $pkg.gitMinor=${K8S_MINOR}"
  kver+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
build kube "$kver" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kubectl

for b in "${BINARIES[@]}"; do [[ -x "$STAGE/$b" ]] || die "build produced no $b"; done
{
  echo "key=$KEY"
  echo "kubernetes=$K8S_VERSION"
  echo "etcd=$ETCD_VERSION"
  echo "helm=$HELM_VERSION"
  echo "go=$("$GO" env GOVERSION)"
} >"$STAGE/VERSIONS"

# Swap into place (DEST may be a user-chosen directory that already exists).
if [[ -e $DEST ]]; then
  for f in "${BINARIES[@]}" VERSIONS; do mv -f "$STAGE/$f" "$DEST/$f"; done
else
  mv "$STAGE" "$DEST"
fi
log "built in $((SECONDS - start)) s: $DEST ($(du -sh "$DEST" | cut -f1))"
echo "$DEST"
