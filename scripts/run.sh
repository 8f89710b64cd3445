#!/usr/bin/env bash
# Install jupyter-sandbox with JupyterLab and start it. Uses Docker when an engine can be
# reached (as root on Debian, installs and starts one, and builds the sandbox image);
# otherwise the server falls back to the embedded `local` backend by itself.
# Extra arguments go to `jupyter lab`, e.g. scripts/run.sh --no-browser --port 8888
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[run] $*" >&2; }

log "installing jupyter-sandbox and JupyterLab"
python -m pip install --quiet --disable-pip-version-check -e . jupyterlab 2>&1 | { grep -v "^WARNING: Location" >&2 || true; }

backend=()
if docker info >/dev/null 2>&1 || { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && bash scripts/setup-docker.sh; }; then
    if bash scripts/build-images.sh; then
        log "Docker engine ready: sandboxes run as hardened containers"
    else
        log "could not build the sandbox image; sandboxes will use the local backend"
        backend=(--SandboxApp.backend=local)
    fi
else
    log "no Docker engine reachable: sandboxes use the embedded local backend (resource limits only)"
fi

# One started sandbox waits in the pool, so the first %%sandbox cell or panel "create" is instant.
exec jupyter lab --SandboxManager.pool_size=1 "${backend[@]}" "$@"
