#!/usr/bin/env bash
# Runs push.py with the official `mailchimp-marketing` client from a venv under target/.
#   bench/mailchimp_python/run.sh --install     create the venv and pip-install the client
#   bench/mailchimp_python/run.sh --check       exit 0 when the client is importable
#   bench/mailchimp_python/run.sh ARGS...       run push.py ARGS (installs first if needed)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${CARGO_TARGET_DIR:-$repo/target}/mailchimp_python/venv"
python="$venv/bin/python"

installed() { [ -x "$python" ] && "$python" -c 'import mailchimp_marketing' 2>/dev/null; }

install() {
    if ! installed; then
        python3 -m venv "$venv"
        "$python" -m pip install --quiet --disable-pip-version-check 'mailchimp-marketing==3.0.80'
    fi
}

case "${1:-}" in
    --install) install ;;
    --check) installed ;;
    *) install; exec "$python" "$here/push.py" "$@" ;;
esac
