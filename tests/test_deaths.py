"""Deaths and denials explained where they happen (issue 26), on real Docker sandboxes:

- a ``%%sandbox`` cell killed out of memory fails with that reason, and the limit as the user
  set it ("256 MiB of memory plus 512 MiB of disk"), not the engine's sum;
- a sandbox without network says so as the last line of the error of a refused connection or a
  failed name lookup (urllib, socket), and one with network does not.

The sandboxed notebook kernel's side (the cell that died says why) is in test_kernel.py.
"""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from test_magics import outputs_of, run_notebook, stream_text

from jupyter_sandbox.client import Sandbox
from jupyter_sandbox.models import limit_text

from servers import JupyterServer

HINT = "this sandbox has no network"


def test_out_of_memory_in_a_sandbox_cell_says_so_with_the_limit_set(sandbox_server, tmp_path):
    cells = [
        "%load_ext jupyter_sandbox",
        "%%sandbox oom --memory 256M\nkeep = 1\nprint('alive')",
        "%%sandbox oom\nx = bytearray(10**10)",
        "%sandbox restart oom",
        "%%sandbox oom\n'keep' in dir()",
    ]
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    nb.cells[2].metadata["tags"] = ["raises-exception"]  # the run goes on, as a user would
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    saved, error = run_notebook(nb, sandbox_server, tmp_path)
    nbformat.validate(saved)
    c = saved.cells
    assert "alive" in stream_text(c[1])
    assert error is None, error
    (err,) = outputs_of(c[2], "error")
    assert err.ename == "KernelDied", err
    assert "out of memory" in err.evalue, err
    # the figure the user set with --memory (and the server's default disk), nothing else
    assert f"the sandbox has {limit_text(256 * 1024**2, 512 * 1024**2)}" in err.evalue, err
    assert "1664" not in err.evalue and "768M" not in err.evalue
    # what to do next, as a notebook does it; then the sandbox goes on, fresh
    assert "Run %sandbox restart oom to go on" in err.evalue, err
    assert "restarted oom" in stream_text(c[3])
    assert outputs_of(c[4], "execute_result")[0].data["text/plain"] == "False"


@pytest.fixture(scope="module")
def network_server(docker_ready, tmp_path_factory):
    config = {"SandboxManager": {"allow_network": True}}
    with JupyterServer(tmp_path_factory.mktemp("network-server"), config=config) as server:
        yield {"server_url": server.url, "token": server.token}


FAILING_CALLS = {
    "urlopen": "import urllib.request\nurllib.request.urlopen('http://example.com/', timeout=10)",
    "socket": "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=10)",
}


@pytest.mark.parametrize("call", sorted(FAILING_CALLS))
def test_no_network_is_said_on_a_failed_connection_and_only_without_network(network_server, call, monkeypatch):
    monkeypatch.delenv("JUPYTER_SANDBOX_URL", raising=False)
    code = FAILING_CALLS[call]
    with Sandbox(**network_server) as offline:
        failed = offline.run_code(code)
        assert failed.error is not None, failed
        # the error's own last line (so %%sandbox, which shows the remote error, shows it under it)
        last = failed.error.traceback.rstrip().splitlines()[-1]
        assert HINT in last and "%%sandbox --network" in last, failed.error
        # never under a cell that did not fail that way
        assert HINT not in offline.run_code("1/0").error.traceback
        assert HINT not in offline.run_code("open('/nonexistent')").error.traceback  # an OSError too
    with Sandbox(network=True, **network_server) as online:
        # refused on the sandbox's own loopback: a failure, but not for lack of network
        failed = online.run_code(FAILING_CALLS["socket"])
        assert failed.error is not None and failed.error.name == "ConnectionRefusedError", failed
        assert HINT not in failed.error.traceback and HINT not in "".join(failed.logs.stderr), failed.error
