"""%%sandbox inside a "Python 3 (sandboxed)" kernel (programs/in_place_magics.py): the kernel IS the
notebook's sandbox, so the cell runs in place, in the same process and container; options that
ask for another sandbox stop the cell with a message saying how to get one. First through a real
server and a real sandboxed kernel, then the program's rules in a plain IPython shell.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from IPython.core.interactiveshell import InteractiveShell
from test_kernel import KernelSocket, kernel_sandbox, result_of, start_kernel, stream_of

from jupyter_sandbox.backends import programs
from jupyter_sandbox.backends.base import kernel_extras

from servers import IMAGE, JupyterServer


@pytest.fixture(scope="module")
def kernel_server(docker_ready, tmp_path_factory):
    config = {"DockerBackend": {"default_image": IMAGE}}
    with JupyterServer(tmp_path_factory.mktemp("kernel-magics"), config=config) as server:
        yield server


def error_of(reply: dict) -> tuple[str, str]:
    content = reply["content"]
    assert content["status"] == "error", content
    return content["ename"], content["evalue"]


async def test_sandbox_cells_run_in_the_kernels_own_sandbox(kernel_server):
    server = kernel_server
    kernel_id = await start_kernel(server)
    sandbox = kernel_sandbox(server, kernel_id)
    assert sandbox is not None
    ks = await KernelSocket.open(server, kernel_id)
    try:
        reply, outputs = await ks.execute(
            "%%sandbox\nimport os\nprint(os.getpid())\nwith open('made.txt', 'w') as f:\n    f.write('from %%sandbox')"
        )
        assert reply["content"]["status"] == "ok", reply["content"]
        in_magic_pid = stream_of(outputs).strip()
        assert in_magic_pid.isdigit()
        # the next plain cell: the same process (so the same kernel and container) and the file is there
        reply, outputs = await ks.execute("import os\nprint(os.getpid())\nopen('made.txt').read()")
        assert stream_of(outputs).strip() == in_magic_pid
        assert result_of(outputs) == "'from %%sandbox'"
        # and no second sandbox was made for the notebook
        names = [s["name"] for s in server.api("GET", "sandboxes").json()]
        assert not [n for n in names if n.startswith("notebook-")], names

        # the sandbox's own settings are accepted; --env applies to that cell only
        memory = f"{sandbox['spec']['memory'] // 1024**2}M"
        reply, outputs = await ks.execute(
            f"%%sandbox {sandbox['id']} --memory {memory} --env GREETING=hi\nos.environ['GREETING']"
        )
        assert result_of(outputs) == "'hi'", reply["content"]
        reply, outputs = await ks.execute("os.environ.get('GREETING')")
        assert result_of(outputs) is None

        # an error in the cell is the cell's own, with its own line numbers
        reply, outputs = await ks.execute("%%sandbox\nx = 1\n1 / 0")
        assert error_of(reply)[0] == "ZeroDivisionError"
        assert "line 3" in "\n".join(reply["content"]["traceback"])

        # options asking for another sandbox: nothing runs, and the message says why and what to do
        for line in ("%%sandbox --memory 64G", "%%sandbox other", "%%sandbox --image python:3.12", "%%sandbox --out e"):
            reply, _ = await ks.execute(f"{line}\nran = True")
            ename, evalue = error_of(reply)
            assert ename == "UsageError" and "this notebook's own sandbox" in evalue, evalue
            assert "host kernel" in evalue
        reply, outputs = await ks.execute("'ran' in dir()")
        assert result_of(outputs) == "False"

        # --timeout interrupts the cell as the server's timeout does
        started = time.monotonic()
        reply, outputs = await ks.execute("%%sandbox --timeout 2\nimport time\ntime.sleep(120)", timeout=90)
        assert error_of(reply)[0] == "KeyboardInterrupt"
        assert time.monotonic() - started < 60
        assert "ran over --timeout 2 s" in stream_of(outputs, "stderr")

        # %sandbox status names this sandbox; another subcommand says where its work is done
        reply, outputs = await ks.execute("%sandbox status")
        assert sandbox["id"] in stream_of(outputs), outputs
        reply, _ = await ks.execute("%sandbox pull made.txt")
        assert "Copy into the Workspace" in error_of(reply)[1]
    finally:
        ks.close()
        await asyncio.to_thread(server.request, "DELETE", f"api/kernels/{kernel_id}")


@pytest.fixture
def shell():
    """A plain IPython shell that took the program as a notebook's sandboxed kernel does."""
    ip = InteractiveShell.instance()
    before = list(ip.input_transformers_cleanup)
    settings = {"id": "sbx1", "image": "img:1", "memory": 1024**3, "disk": 512 * 1024**2, "cpus": 1.0}
    argv, _ = kernel_extras(offline=False, e2b_formats=False, notebook={**settings, "network": False})
    (exec_line,) = argv
    assert exec_line.startswith("--IPKernelApp.exec_lines=")
    ip.run_cell(exec_line.split("=", 1)[1], store_history=False)
    added = [t for t in ip.input_transformers_cleanup if t not in before]
    assert len(added) == 1
    yield ip
    ip.input_transformers_cleanup[:] = [t for t in ip.input_transformers_cleanup if t not in added]
    InteractiveShell.clear_instance()


def test_the_program_leaves_no_name_and_runs_cells_in_place(shell):
    assert not [n for n in shell.user_ns if "jupyter_sandbox" in n]
    result = shell.run_cell("%%sandbox --memory 1G --cpus 1 --image img:1\ny = 2\ny * 21")
    assert result.success and result.result == 42
    assert shell.user_ns["y"] == 2
    result = shell.run_cell("%%sandbox --memory 1GiB --language python\nz = 3")
    assert result.success and shell.user_ns["z"] == 3


@pytest.mark.parametrize(
    "line, said",
    [
        ("--memory 2G", "--memory 2G (this one has 1 GiB)"),
        ("--cpus 4", "--cpus 4"),
        ("--network", "--network (this one has none)"),
        ("--image other", "--image other"),
        ("analysis", "the sandbox 'analysis'"),
        ("--context c1", "--context"),
        ("--language bash", "--language bash"),
        ("--with-files", "--with-files"),
    ],
)
def test_options_for_another_sandbox_are_refused(shell, capsys, line, said):
    result = shell.run_cell(f"%%sandbox {line}\nw = 1")
    assert not result.success and "w" not in shell.user_ns
    error = str(result.error_in_exec)
    assert said in error and "nothing ran" in error and "%%sandbox NAME" in error


def test_a_bad_option_is_a_usage_error(shell):
    result = shell.run_cell("%%sandbox --timeout -1\nw = 1")
    assert not result.success and "--timeout must be a positive" in str(result.error_in_exec)


def test_the_program_is_shipped_as_source():
    assert "def _jupyter_sandbox_in_place(shell, settings)" in programs.source("in_place_magics")
