"""Without the mcp package (the optional `mcp` extra) the server still runs: its MCP route answers
503 saying how to install it, and `jupyter sandbox mcp` says so too. The package is hidden by a
shadow `mcp` on PYTHONPATH whose import fails, as a missing one's does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from servers import TESTS, JupyterServer

REPO = TESTS.parent


@pytest.fixture
def hidden_mcp(tmp_path: Path) -> str:
    """A PYTHONPATH on which `import mcp` fails; the checkout and tests/ stay importable."""
    shadow = tmp_path / "shadow" / "mcp"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'mcp' (hidden by the test)\")\n")
    return os.pathsep.join([str(shadow.parent), str(TESTS), str(REPO)])


def test_the_cli_says_how_to_install_it(hidden_mcp):
    jupyter = shutil.which("jupyter", path=os.path.dirname(sys.executable)) or shutil.which("jupyter")
    assert jupyter
    done = subprocess.run(
        [jupyter, "sandbox", "mcp"],
        env={**os.environ, "PYTHONPATH": hidden_mcp},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "pip install 'jupyter-sandbox[mcp]'" in done.stderr
    assert done.stdout == ""  # stdout is the protocol's: nothing else goes there


def test_the_route_answers_503_saying_how_to_install_it(docker_ready, hidden_mcp, tmp_path):
    with JupyterServer(tmp_path / "server", env={"PYTHONPATH": hidden_mcp}) as server:
        r = server.request("POST", "sandbox/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert r.status_code == 503, r.text
        assert "pip install 'jupyter-sandbox[mcp]'" in r.json()["message"]
        assert server.api("GET", "sandboxes").status_code == 200  # the rest of the server works
        # still authenticated first: no token, no answer about the server's packages
        anonymous = server.request("POST", "sandbox/mcp", headers={"Authorization": ""}, json={})
        assert anonymous.status_code in (401, 403)
