"""The JupyterLab extension: its TypeScript unit tests, and that the package ships it.

`pip install .` (or -e) builds labextension/ with npm through hatch-jupyter-builder; these
tests check the result the way a user meets it: JupyterLab lists it enabled and OK, and the
wheel carries it under share/jupyter/labextensions/.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LABEXT = ROOT / "labextension"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """labextension/node_modules (the editable install's build made it; else npm installs it)."""
    assert shutil.which("npm"), "npm is needed to build and test the labextension"
    if not (LABEXT / "node_modules" / ".package-lock.json").exists():
        r = run(["npm", "install", "--no-audit", "--no-fund"], LABEXT)
        assert r.returncode == 0, r.stdout + r.stderr
    return LABEXT / "node_modules"


def test_typescript_unit_tests(node_modules):
    r = run(["npm", "test"], LABEXT)
    output = r.stdout + r.stderr
    assert r.returncode == 0, output
    passed = re.search(r"^# pass (\d+)$", output, re.M)
    assert passed and int(passed.group(1)) >= 30, output
    assert re.search(r"^# fail 0$", output, re.M), output


def test_lint_eslint_and_prettier_are_clean(node_modules):
    """`npm run lint`: eslint's rules and prettier's formatting over the labextension's code."""
    r = run(["npm", "run", "lint"], LABEXT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "All matched files use Prettier code style!" in r.stdout, r.stdout


def test_jupyterlab_lists_the_extension_enabled_and_ok():
    r = run([sys.executable, "-m", "jupyter", "labextension", "list"], ROOT, timeout=120)
    output = ANSI.sub("", r.stdout + r.stderr)
    assert r.returncode == 0, output
    line = next((ln for ln in output.splitlines() if "jupyter-sandbox v" in ln), None)
    assert line is not None, output
    assert "enabled" in line and "OK" in line, line
    assert "(python, jupyter-sandbox)" in line, line


def test_wheel_ships_the_built_extension(tmp_path):
    r = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-w", str(tmp_path), "."],
        ROOT,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = tmp_path.glob("jupyter_sandbox-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        prefix = next(n for n in names if n.endswith("/share/jupyter/labextensions/jupyter-sandbox/package.json"))
        share = prefix.rsplit("/", 1)[0]
        assert f"{share}/install.json" in names
        assert any(re.fullmatch(re.escape(share) + r"/static/remoteEntry\.[0-9a-f]+\.js", n) for n in names), names
        meta = json.loads(zf.read(prefix))
        install = json.loads(zf.read(f"{share}/install.json"))
        schema = json.loads(zf.read(f"{share}/schemas/jupyter-sandbox/plugin.json"))
    # the builder's output: a federated extension JupyterLab loads without a rebuild
    assert meta["name"] == "jupyter-sandbox"
    assert meta["jupyterlab"]["_build"]["load"].startswith("static/remoteEntry.")
    assert install["packageName"] == "jupyter-sandbox"
    # our executor replaces JupyterLab's (a marked cell runs in the sandbox however it is run)
    assert meta["jupyterlab"]["disabledExtensions"] == ["@jupyterlab/notebook-extension:cell-executor"]
    # the settings: shortcut, refresh interval, menus
    assert schema["jupyter.lab.shortcuts"][0]["command"] == "jupyter-sandbox:run-cell"
    assert schema["properties"]["refreshInterval"]["default"] > 0
