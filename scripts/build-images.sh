#!/usr/bin/env bash
# Build the default sandbox image offline when it is missing or lacks packages: a thin call to
# `jupyter sandbox build-image` (jupyter_sandbox/cli.py, backends/docker_images.py), the one
# implementation. The package and its dependencies must be installed (scripts/test.sh and
# scripts/run.sh install it first). Settings, as before:
#   BASE_IMAGE (default jupyter-sandbox-base:bookworm-r, made with debootstrap when absent;
#              on a machine with a registry, e.g. BASE_IMAGE=python:3.11-slim).
#   SANDBOX_IMAGE (default jupyter-sandbox:latest): the image sandboxes run.
#   JUPYTER_SANDBOX_BUILD_CACHE (default /var/cache/jupyter-sandbox): wheelhouse and rootfs.
#   FORCE=1 rebuilds the sandbox image even when it is up to date.
# Extra arguments go to build-image, e.g. --packages ipykernel numpy scipy
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" exec python -m jupyter_sandbox.cli build-image "$@"
