#!/usr/bin/env bash
# Build the default sandbox image offline when it is missing.
#   BASE_IMAGE (default jupyter-sandbox-base:bookworm, made with debootstrap when absent;
#              on a machine with a registry, e.g. BASE_IMAGE=python:3.11-slim).
#   SANDBOX_IMAGE (default jupyter-sandbox:latest): the image sandboxes run.
# Python packages are downloaded on the host into a wheelhouse (PyPI is reachable from
# the host; containers may not verify TLS) and installed in the image with --no-index.
# FORCE=1 rebuilds the sandbox image even when it exists.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
BASE_IMAGE=${BASE_IMAGE:-jupyter-sandbox-base:bookworm}
SANDBOX_IMAGE=${SANDBOX_IMAGE:-jupyter-sandbox:latest}
CACHE=${JUPYTER_SANDBOX_BUILD_CACHE:-/var/cache/jupyter-sandbox}
log() { echo "[build-images] $*" >&2; }

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$SANDBOX_IMAGE" >/dev/null 2>&1; then
    log "$SANDBOX_IMAGE present"
    exit 0
fi

if [ "$BASE_IMAGE" != "jupyter-sandbox-base:bookworm" ]; then
    log "step 1/3: base $BASE_IMAGE (docker pulls it if needed)"
    docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || docker pull "$BASE_IMAGE"
elif ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    root="$CACHE/rootfs"
    rm -rf "$root"; mkdir -p "$root"
    log "step 1/3: debootstrap a bookworm base (about a minute) -> $BASE_IMAGE"
    debootstrap --variant=minbase --include=python3,python3-venv bookworm "$root" \
        >"$CACHE/debootstrap.log" 2>&1 || { tail -n 30 "$CACHE/debootstrap.log" >&2; exit 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | docker import - "$BASE_IMAGE" >/dev/null
    rm -rf "$root"
else
    log "step 1/3: base $BASE_IMAGE present"
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$here/jupyter_sandbox/images/Dockerfile" "$ctx/"
py=$(docker run --rm "$BASE_IMAGE" python3 -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
log "step 2/3: wheelhouse for cp$py (ipykernel numpy pandas matplotlib)"
mkdir -p "$CACHE/wheels-cp$py"
pip download --quiet --only-binary=:all: --python-version "$py" --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --implementation cp \
    -d "$CACHE/wheels-cp$py" ipykernel numpy pandas matplotlib 2>&1 \
    | { grep -v "^WARNING: Location" >&2 || true; }
cp -r "$CACHE/wheels-cp$py" "$ctx/wheels"
log "step 3/3: docker build $SANDBOX_IMAGE"
docker build --build-arg BASE="$BASE_IMAGE" -t "$SANDBOX_IMAGE" "$ctx" 2>&1 \
    | sed -u 's/^/    /' >&2
log "built $SANDBOX_IMAGE ($(docker image inspect -f '{{.Size}}' "$SANDBOX_IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
