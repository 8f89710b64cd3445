#!/usr/bin/env bash
# Everything from a fresh Debian machine to a full test run:
#   Docker engine (installed and started when absent, runsc registered), the sandbox
#   images (built offline when missing), the package with its test extras, the linters
#   (ruff, mypy; eslint and prettier run as a test), then pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -k contract -x
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-docker.sh
if ! command -v npm >/dev/null; then
    # the JupyterLab extension is built with npm (pip's build of the package), and its tests run it
    echo "[test] installing Debian's npm (Node.js): the JupyterLab extension is built with it" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
fi
echo "[test] installing jupyter-sandbox with test extras" >&2
python -m pip install --quiet --disable-pip-version-check -e '.[test]' 2>&1 | { grep -v "^WARNING: Location" >&2 || true; }
bash scripts/build-images.sh   # `jupyter sandbox build-image`: needs the package installed
if [ ! -x /usr/bin/chromium ]; then
    # the labextension's Playwright tests drive Debian's Chromium (Playwright cannot download one here)
    echo "[test] installing Debian's chromium for the browser tests" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
bash scripts/setup-hub.sh      # tests/hub/: configurable-http-proxy and a venv every Unix user can run
echo "[test] ruff, ruff format, mypy" >&2
python -m ruff check .
python -m ruff format --check .
python -m mypy
echo "[test] running pytest" >&2
python -m pytest -p no:cacheprovider -ra "$@"
