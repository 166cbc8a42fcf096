#!/usr/bin/env bash
# The operator's OCI image, built and run without a Docker engine (buildah + podman + runc).
#
#   hack/image.sh [build]              cargo build --release of the operator, then the image
#                                      (skipped when one with the same contents is stored);
#                                      prints the image reference as the LAST line of stdout
#   hack/image.sh build --binary PATH --tag REF
#                                      the same recipe around another binary (tests only)
#   hack/image.sh ref                  print the reference the chart installs (repository:version)
#   hack/image.sh archive [FILE]       also write the image as an OCI archive
#                                      (default target/image/audience-operator-VERSION.oci.tar)
#   hack/image.sh check                install the tools if missing and check podman starts
#   hack/image.sh bench [REF] [RUNS]   size of the image, and the time from `podman run` to the
#                                      sandbox in it answering HTTP (BENCHMARKS.md)
#   hack/image.sh podman ARGS...       podman with this project's configuration (push, run, ...)
#
# The image is FROM scratch: the release binary, exactly the shared libraries `ldd` says it loads
# (glibc, libgcc_s), the CA bundle, /etc/passwd and /etc/group with the `nonroot` user
# (uid/gid 65532, the chart's podSecurityContext), an empty /tmp. No shell, no package manager.
#
# Podman and buildah use their own store and configuration under the cache directory (vfs
# storage, runc, no default ulimits, cgroupfs), so they work the same in CI containers, on hosts
# with hybrid cgroups (where crun fails) and next to any other podman setup on the machine.
#
# Environment:
#   IMAGE_REPOSITORY                 repository of the image (default: the chart's default)
#   AUDIENCE_OPERATOR_CONTAINERS     podman/buildah state directory
#                                    (default ${XDG_CACHE_HOME:-$HOME/.cache}/audience-operator/containers)
#   CARGO                            the cargo command (default cargo)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Keep equal to charts/audience-operator/values.yaml `image.repository` (tests/image_run.rs checks).
IMAGE_REPOSITORY="${IMAGE_REPOSITORY:-ghcr.io/audience-operator/audience-operator}"
BIN_NAME=audience-operator
# Bump when the way the image is assembled changes (files, config, labels): it is part of the
# cache key, so a changed recipe rebuilds even around the same binary.
RECIPE=1
TOOLS=(podman buildah runc)

log() { printf 'image: %s\n' "$*" >&2; }
die() { printf 'image: error: %s\n' "$*" >&2; exit 1; }

# The root package's version and repository, read from Cargo.toml's [package] table.
package_field() {
  awk -v k="$1" '
    /^\[/ { in_pkg = ($0 == "[package]") }
    in_pkg && $1 == k && $2 == "=" { gsub(/"/, "", $3); print $3; exit }
  ' "$ROOT/Cargo.toml"
}
workspace_field() {
  awk -v k="$1" '
    /^\[/ { in_ws = ($0 == "[workspace.package]") }
    in_ws && $1 == k && $2 == "=" { gsub(/"/, "", $3); print $3; exit }
  ' "$ROOT/Cargo.toml"
}
VERSION="$(package_field version)"
SOURCE="$(workspace_field repository)"
LICENSE="$(workspace_field license)"
[[ -n $VERSION && -n $SOURCE ]] || die "could not read version/repository from Cargo.toml"
REF="$IMAGE_REPOSITORY:$VERSION"

STATE="${AUDIENCE_OPERATOR_CONTAINERS:-${XDG_CACHE_HOME:-$HOME/.cache}/audience-operator/containers}"

# ---- tools and configuration -------------------------------------------------------------

ensure_tools() {
  local missing=() t
  for t in "${TOOLS[@]}"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
  ((${#missing[@]} == 0)) && return 0
  command -v apt-get >/dev/null 2>&1 ||
    die "missing ${missing[*]}; install podman, buildah and runc with your package manager"
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]}: run as root: apt-get install podman buildah runc"
    sudo=(sudo)
  fi
  mkdir -p "$STATE"
  # One install at a time (several test binaries may ask at once).
  exec 8>"$STATE/.apt.lock"
  flock 8
  missing=()
  for t in "${TOOLS[@]}"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
  if ((${#missing[@]} > 0)); then
    log "installing podman buildah runc (missing: ${missing[*]})"
    "${sudo[@]}" apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
      podman buildah runc >&2
  fi
  exec 8>&-
}

# Writes the configuration and points podman/buildah at it (exported for child processes).
configure() {
  local run="${XDG_RUNTIME_DIR:-/tmp}/audience-operator-containers-$EUID"
  mkdir -p "$STATE/storage" "$run"
  cat >"$STATE/containers.conf.$$" <<EOF
# Written by hack/image.sh.
[containers]
# podman's default ulimits cannot be set inside some CI containers
default_ulimits = []
[engine]
# crun fails on hosts with hybrid cgroups; runc works
runtime = "runc"
# no systemd here (nor in most CI containers)
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  cat >"$STATE/storage.conf.$$" <<EOF
# Written by hack/image.sh.
[storage]
driver = "vfs"
graphroot = "$STATE/storage"
runroot = "$run"
EOF
  # One temporary name per process: tests call this script in parallel.
  mv "$STATE/containers.conf.$$" "$STATE/containers.conf"
  mv "$STATE/storage.conf.$$" "$STATE/storage.conf"
  export CONTAINERS_CONF="$STATE/containers.conf"
  export CONTAINERS_STORAGE_CONF="$STATE/storage.conf"
  export BUILDAH_ISOLATION=chroot
}

setup() {
  ensure_tools
  configure
}

# ---- the root filesystem -----------------------------------------------------------------

# Debian package owning a file, with its version ("" when unknown).
owner_package() {
  command -v dpkg-query >/dev/null 2>&1 || return 0
  local f="$1" pkg
  pkg="$(dpkg-query -S "$f" 2>/dev/null || dpkg-query -S "$(readlink -f "$f")" 2>/dev/null || true)"
  pkg="${pkg%%:*}"
  [[ -n $pkg ]] || return 0
  printf '%s %s\n' "$pkg" "$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null)"
}

# The shared objects the binary loads (absolute paths as the loader names them, interpreter
# included), one per line.
needed_libraries() {
  local out
  if ! out="$(ldd "$1" 2>&1)"; then
    # A static binary needs nothing ("not a dynamic executable").
    grep -q 'not a dynamic executable\|statically linked' <<<"$out" && return 0
    die "ldd $1: $out"
  fi
  grep -q 'not found' <<<"$out" && die "the binary needs libraries this machine lacks:\n$out"
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out" | sort -u
}

# Assembles the root filesystem of the image in $1 around binary $2.
assemble_rootfs() {
  local rootfs="$1" binary="$2" lib pkgs=()
  mkdir -p "$rootfs"/{etc/ssl/certs,usr/local/bin,usr/share/doc/audience-operator,tmp,home/nonroot}
  install -m 0755 "$binary" "$rootfs/usr/local/bin/$BIN_NAME"
  while read -r lib; do
    [[ -n $lib ]] || continue
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
    chmod 0755 "$rootfs$lib"
    pkgs+=("$(owner_package "$lib")")
  done < <(needed_libraries "$binary")
  local ca=/etc/ssl/certs/ca-certificates.crt
  [[ -s $ca ]] || die "no CA bundle at $ca (apt-get install ca-certificates)"
  install -m 0644 "$ca" "$rootfs$ca"
  pkgs+=("$(command -v dpkg-query >/dev/null && dpkg-query -W -f='${Package} ${Version}' ca-certificates 2>/dev/null || true)")
  # Where the files came from, and the licences that ship with them.
  printf '%s\n' "${pkgs[@]}" | awk 'NF' | sort -u >"$rootfs/usr/share/doc/audience-operator/debian-packages"
  local pkg
  while read -r pkg _; do
    if [[ -f /usr/share/doc/$pkg/copyright ]]; then
      mkdir -p "$rootfs/usr/share/doc/$pkg"
      install -m 0644 "/usr/share/doc/$pkg/copyright" "$rootfs/usr/share/doc/$pkg/copyright"
    fi
  done <"$rootfs/usr/share/doc/audience-operator/debian-packages"
  cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
EOF
  printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
  chmod 0644 "$rootfs"/etc/{passwd,group,nsswitch.conf}
  chmod 1777 "$rootfs/tmp"
  chmod 0700 "$rootfs/home/nonroot"
}

# A reproducible tar of the root filesystem: root owns everything but the nonroot home.
rootfs_tar() {
  local rootfs="$1" tar="$2" mtime="$3"
  local opts=(--sort=name --mtime="@$mtime" --numeric-owner --format=posix
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime)
  (cd "$rootfs" && tar -cf "$tar" "${opts[@]}" --owner=0 --group=0 --exclude=./home/nonroot .)
  (cd "$rootfs" && tar -rf "$tar" "${opts[@]}" --owner=65532 --group=65532 ./home/nonroot)
}

# ---- build -------------------------------------------------------------------------------

stored_key() {
  podman image inspect --format '{{ index .Labels "io.audience-operator.image-key" }}' "$1" 2>/dev/null || true
}

build() {
  local binary="" ref="$REF"
  while (($#)); do
    case "$1" in
      --binary) binary="$2"; shift 2 ;;
      --tag) ref="$2"; shift 2 ;;
      *) die "build: unknown argument $1" ;;
    esac
  done
  if [[ -z $binary ]]; then
    [[ $ref == "$REF" ]] || die "build: --tag needs --binary (the shipped image is the release build)"
    log "cargo build --release --locked --bin $BIN_NAME"
    (cd "$ROOT" && "${CARGO:-cargo}" build --release --locked --bin "$BIN_NAME" >&2)
    binary="$(cd "$ROOT" && "${CARGO:-cargo}" metadata --format-version 1 --no-deps |
      sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release/$BIN_NAME"
  elif [[ $ref == "$REF" ]]; then
    die "build: --binary needs --tag (only the release build is tagged $REF)"
  fi
  [[ -x $binary ]] || die "no executable at $binary"
  setup

  local revision mtime
  revision="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
  [[ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]] || revision="$revision-dirty"
  mtime="$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)"
  local labels=(
    "org.opencontainers.image.title=$BIN_NAME"
    "org.opencontainers.image.description=Kubernetes operator syncing merchants' customers into Mailchimp or Klaviyo"
    "org.opencontainers.image.version=$VERSION"
    "org.opencontainers.image.source=$SOURCE"
    "org.opencontainers.image.revision=$revision"
    "org.opencontainers.image.licenses=$LICENSE"
  )

  local work
  work="$(mktemp -d "${TMPDIR:-/tmp}/audience-image.XXXXXX")"
  trap 'rm -rf "$work"' RETURN
  assemble_rootfs "$work/rootfs" "$binary"
  rootfs_tar "$work/rootfs" "$work/rootfs.tar" "$mtime"

  # The key covers every byte of the root filesystem, the labels and the recipe.
  local key
  key="$({ sha256sum <"$work/rootfs.tar"; printf '%s\n' "${labels[@]}" "recipe=$RECIPE"; } | sha256sum | cut -c1-16)"
  if [[ "$(stored_key "$ref")" == "$key" ]]; then
    log "cached: $ref (key $key)"
    echo "$ref"
    return 0
  fi

  log "building $ref from $binary (key $key)"
  local ctr largs=() l
  for l in "${labels[@]}" "io.audience-operator.image-key=$key"; do largs+=(--label "$l"); done
  ctr="$(buildah from --quiet scratch)"
  buildah add --quiet "$ctr" "$work/rootfs.tar" / >/dev/null
  buildah config \
    --user 65532:65532 \
    --workingdir / \
    --env PATH=/usr/local/bin \
    --env HOME=/home/nonroot \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --entrypoint "[\"/usr/local/bin/$BIN_NAME\"]" \
    --cmd run \
    --port 8080/tcp \
    --os linux \
    --arch "$(dpkg --print-architecture 2>/dev/null || echo amd64)" \
    "${largs[@]}" \
    "$ctr"
  local old_id
  old_id="$(podman image inspect --format '{{.Id}}' "$ref" 2>/dev/null || true)"
  buildah commit --quiet --rm --format oci --timestamp "$mtime" "$ctr" "$ref" >/dev/null
  # vfs keeps a full copy of every image: drop the one this tag named before (unless in use).
  if [[ -n $old_id ]]; then podman rmi "$old_id" >/dev/null 2>&1 || true; fi
  log "built $ref ($(podman image inspect --format '{{.Size}}' "$ref") bytes)"
  echo "$ref"
}

archive() {
  local file="${1:-$ROOT/target/image/$BIN_NAME-$VERSION.oci.tar}"
  build >/dev/null
  mkdir -p "$(dirname "$file")"
  rm -f "$file"
  podman save --quiet --format oci-archive -o "$file" "$REF"
  log "wrote $file"
  echo "$file"
}

check() {
  setup
  podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}}' >&2 ||
    die "podman cannot start here"
}

# Milliseconds since the epoch.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# True when GET /_sandbox/stats on 127.0.0.1:$1 answers 200.
sandbox_answers() {
  local status
  exec 7<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET /_sandbox/stats HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&7
  read -r _ status _ <&7 || true
  exec 7<&- 7>&-
  [[ $status == 200 ]]
}

bench() {
  local ref="${1:-$REF}" runs="${2:-5}" i port name t0 t1
  setup
  podman image exists "$ref" || die "no image $ref (make image)"
  printf 'image %s: %s bytes (podman image inspect .Size)\n' "$ref" \
    "$(podman image inspect --format '{{.Size}}' "$ref")"
  for ((i = 1; i <= runs; i++)); do
    port=$((20000 + RANDOM % 20000))
    name="audience-image-bench-$$-$i"
    t0="$(now_ms)"
    podman run -d --rm --name "$name" --network host --read-only --cap-drop ALL \
      --security-opt no-new-privileges --pull never "$ref" sandbox --listen "127.0.0.1:$port" >/dev/null
    # Polling is the measurement here: the first answer ends it.
    until sandbox_answers "$port" 2>/dev/null; do
      (($(now_ms) - t0 < 30000)) || { podman rm -f -t 0 "$name" >/dev/null; die "no answer in 30 s"; }
      sleep 0.01
    done
    t1="$(now_ms)"
    podman rm -f -t 0 "$name" >/dev/null
    printf 'run %d: podman run -> sandbox answers GET /_sandbox/stats: %d ms\n' "$i" $((t1 - t0))
  done
  t0="$(now_ms)"
  podman run --rm --pull never "$ref" --version >/dev/null
  printf 'podman run --rm %s --version: %d ms\n' "$ref" $(($(now_ms) - t0))
}

cmd="${1:-build}"
(($#)) && shift
case "$cmd" in
  build) build "$@" ;;
  ref) echo "$REF" ;;
  archive) archive "$@" ;;
  check) check ;;
  bench) bench "$@" ;;
  podman) setup; exec podman "$@" ;;
  -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) die "unknown command $cmd (build, ref, archive, check, bench, podman)" ;;
esac
