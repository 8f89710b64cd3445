#!/usr/bin/env bash
# Install jupyter-sandbox with JupyterLab and start it. Uses Docker when an engine can be
# reached (as root on Debian, installs and starts one, and builds the sandbox image);
# otherwise the server falls back to the embedded `local` backend by itself.
# Extra arguments go to `jupyter lab`, e.g. scripts/run.sh --no-browser --port 8888
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[run] $*" >&2; }

# The JupyterLab extension is built from labextension/ with npm (Node.js) when the checkout has no
# build of it yet (jupyter_sandbox/labextension/): say so now rather than fail inside pip's build.
if [ ! -f jupyter_sandbox/labextension/package.json ] && ! command -v npm >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "npm is needed to build the JupyterLab extension: installing Debian's npm (Node.js)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
    else
        log "npm (Node.js 18 or later) is needed to build the JupyterLab extension, and it is not on PATH."
        log "Install it (Debian: apt-get install npm; or https://nodejs.org), then run this again."
        exit 1
    fi
fi

log "step 1/3: installing jupyter-sandbox, JupyterLab and its widget frontend with pip (the first time: a"
log "          minute or two; it builds the JupyterLab extension with npm, which is quiet for ~40 s)"
# pip's own progress, one line per package it collects, builds or installs
if ! python -m pip install --disable-pip-version-check --progress-bar off -e '.[lab]' 2>&1 \
    | { grep -E "^(Collecting|Building|Installing|Successfully|ERROR|error)" | sed 's/^/[run]   /' >&2 || true; }; then
    log "pip install failed (its errors are above)"
    exit 1
fi
log "installed: $(python -m jupyter labextension list 2>&1 | grep -o 'jupyter-sandbox v[^ ]* [a-z]*' || echo 'jupyter-sandbox')"

log "step 2/3: a Docker engine and the sandbox image"
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
log "step 3/3: starting JupyterLab (the URL with its token follows); the Sandboxes panel is in the left side bar"
exec jupyter lab --SandboxManager.pool_size=1 "${backend[@]}" "$@"
