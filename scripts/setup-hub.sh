#!/usr/bin/env bash
# What the JupyterHub tests (tests/hub/) need, on a Debian machine, as root:
#   - configurable-http-proxy (npm), the Hub's proxy;
#   - a Python environment that OTHER Unix users can run (the single-user servers of the test
#     users run as those users): the CI python lives under /root/.pyenv, and /root is mode 700,
#     so the Hub, its service and the users' servers run from a venv of Debian's python in
#     /opt/jupyter-sandbox-hub, with this checkout installed editable plus jupyterlab and
#     jupyterhub.
# Idempotent: when everything is in place (the venv's jupyter_sandbox is this checkout's) it
# takes seconds. Usage: bash scripts/setup-hub.sh [VENV]   (default /opt/jupyter-sandbox-hub)
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$PATH:/usr/sbin:/sbin"  # runuser, apt-get's helpers

log() { echo "[setup-hub] $*" >&2; }

CHECKOUT="$(pwd -P)"
VENV="${1:-${JUPYTER_SANDBOX_HUB_VENV:-/opt/jupyter-sandbox-hub}}"
JUPYTERHUB_VERSION=6.1.1

if [ "$(id -u)" != 0 ]; then
    log "must run as root (it installs packages, and the Hub spawns servers as other Unix users)"
    exit 1
fi

# The users' servers import jupyter_sandbox from this checkout (an editable install): every
# folder up to it must be searchable and its files readable by others.
if ! runuser -u nobody -- test -r "$CHECKOUT/jupyter_sandbox/__init__.py"; then
    log "the checkout $CHECKOUT is not readable by other Unix users (the Hub's users import it):"
    log "make every folder up to it mode o+rx, or check it out somewhere else (e.g. under /tmp or /srv)"
    exit 1
fi

if ! command -v configurable-http-proxy >/dev/null 2>&1; then
    if ! command -v npm >/dev/null 2>&1; then
        log "installing nodejs and npm (Debian)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    fi
    log "installing configurable-http-proxy (npm)"
    npm install --global --silent configurable-http-proxy >/dev/null
fi

in_place() {
    [ -x "$VENV/bin/jupyterhub-singleuser" ] && [ -x "$VENV/bin/jupyter-lab" ] || return 1
    # from / : started in the checkout, Python would find jupyter_sandbox there, whatever the venv holds
    (cd / && "$VENV/bin/python" - "$CHECKOUT" "$JUPYTERHUB_VERSION") <<'EOF' 2>/dev/null
import sys
from pathlib import Path

import jupyter_sandbox
import jupyterhub

checkout, version = sys.argv[1:]
ok = Path(jupyter_sandbox.__file__).resolve().parent == Path(checkout, "jupyter_sandbox") and jupyterhub.__version__ == version
sys.exit(0 if ok else 1)
EOF
}

if in_place; then
    log "$VENV is in place (jupyter_sandbox from $CHECKOUT, jupyterhub $JUPYTERHUB_VERSION)"
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    if ! /usr/bin/python3 -c "import ensurepip, venv" 2>/dev/null; then
        log "installing python3-venv (Debian)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    fi
    log "creating $VENV with Debian's python"
    /usr/bin/python3 -m venv "$VENV"
fi
log "installing $CHECKOUT[hub,mcp], jupyterlab and jupyterhub==$JUPYTERHUB_VERSION into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -e "$CHECKOUT[hub,mcp]" jupyterlab "jupyterhub==$JUPYTERHUB_VERSION" 2>&1 | { grep -v "^WARNING: Location" >&2 || true; }
chmod -R a+rX "$VENV"
in_place || { log "$VENV was installed but does not import jupyter_sandbox from $CHECKOUT"; exit 1; }
log "$VENV ready"
