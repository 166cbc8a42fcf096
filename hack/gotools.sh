#!/usr/bin/env bash
# Builds the small Go test tools (hack/tools/health: audience-health, kstatus and Argo CD Lua
# health checks) into a cache directory keyed by their sources, and prints that directory as the
# LAST line of stdout. Kept apart from hack/testbins.sh so a change here never changes the key of
# the Kubernetes binaries (a cold kube-apiserver build takes minutes).
#
#   hack/gotools.sh            build if needed, print the directory
#   hack/gotools.sh --key      print only the cache key
#
# Environment:
#   AUDIENCE_OPERATOR_GOTOOLS        use (and fill) exactly this directory
#   AUDIENCE_OPERATOR_GOTOOLS_CACHE  parent of the keyed directories
#                                    (default ${XDG_CACHE_HOME:-$HOME/.cache}/audience-operator/gotools)
#   GO                               the go command (default: go on PATH, else /usr/local/go/bin/go)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/hack/tools"
MODULES=(health)
BINARIES=(audience-health)

log() { printf 'gotools: %s\n' "$*" >&2; }
die() { printf 'gotools: error: %s\n' "$*" >&2; exit 1; }

# Bump when the way the tools are built changes.
RECIPE=1
key_hash() {
  local m
  {
    for m in "${MODULES[@]}"; do
      (cd "$TOOLS/$m" && cat go.mod go.sum ./*.go)
    done
    echo "recipe=$RECIPE"
  } | sha256sum | cut -c1-12
}
KEY="gotools-$(key_hash)"

if [[ ${1:-} == --key ]]; then
  echo "$KEY"
  exit 0
fi

CACHE_PARENT="${AUDIENCE_OPERATOR_GOTOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/audience-operator/gotools}"
DEST="${AUDIENCE_OPERATOR_GOTOOLS:-$CACHE_PARENT/$KEY}"

complete() {
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$1/$b" ]] || return 1; done
  [[ -f "$1/KEY" ]] && grep -qx "$KEY" "$1/KEY"
}

if complete "$DEST"; then
  echo "$DEST"
  exit 0
fi

mkdir -p "$(dirname "$DEST")"
exec 9>"$DEST.lock"
flock 9 # parallel callers (test binaries) wait for one build
if complete "$DEST"; then
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
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-trimpath -mod=readonly"
export CGO_ENABLED=0

STAGE="$(mktemp -d "$DEST.tmp.XXXXXX")"
chmod 755 "$STAGE"
trap 'rm -rf "$STAGE"' EXIT
start=$SECONDS
log "building audience-health ($("$GO" env GOVERSION), module hack/tools/health)"
(cd "$TOOLS/health" && nice -n "${TESTBINS_NICE:-10}" "$GO" build -ldflags "-s -w" \
  -o "$STAGE/audience-health" .) >&2
for b in "${BINARIES[@]}"; do [[ -x "$STAGE/$b" ]] || die "build produced no $b"; done
echo "$KEY" >"$STAGE/KEY"

if [[ -e $DEST ]]; then
  for f in "${BINARIES[@]}" KEY; do mv -f "$STAGE/$f" "$DEST/$f"; done
else
  mv "$STAGE" "$DEST"
fi
log "built in $((SECONDS - start)) s: $DEST"
echo "$DEST"
