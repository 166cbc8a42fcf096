#!/usr/bin/env bash
# Runs push.py with the official `klaviyo-api` Python SDK from a venv under target/.
#   bench/klaviyo_python/run.sh --install     create the venv and pip-install the SDK
#   bench/klaviyo_python/run.sh --check       exit 0 when the SDK is importable
#   bench/klaviyo_python/run.sh ARGS...       run push.py ARGS (installs first if needed)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${CARGO_TARGET_DIR:-$repo/target}/klaviyo_python/venv"
python="$venv/bin/python"

installed() { [ -x "$python" ] && "$python" -c 'import klaviyo_api' 2>/dev/null; }

install() {
    if ! installed; then
        python3 -m venv "$venv"
        "$python" -m pip install --quiet --disable-pip-version-check 'klaviyo-api==25.0.0'
    fi
}

case "${1:-}" in
    --install) install ;;
    --check) installed ;;
    *) install; exec "$python" "$here/push.py" "$@" ;;
esac
