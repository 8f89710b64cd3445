"""The magics, end to end: real notebooks run by nbclient in a real ipykernel, against a real
`jupyter server` with the Docker backend (the ``sandbox_server`` fixture in conftest).

The notebook's kernel only gets JUPYTER_SANDBOX_URL/TOKEN: it never touches Docker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_notebook

from servers import JupyterServer


def kernel_env(server) -> dict[str, str]:
    url, token = server
    env = {**os.environ, "JUPYTER_SANDBOX_URL": url, "JUPYTER_SANDBOX_TOKEN": token}
    env.pop("DOCKER_HOST", None)
    return env


def run_notebook(nb, server, tmp_path):
    client = NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    error = None
    try:
        client.execute(env=kernel_env(server))
    except CellExecutionError as e:
        error = e
    path = tmp_path / "executed.ipynb"
    nbformat.write(nb, path)
    return nbformat.read(path, as_version=4), error


@contextlib.contextmanager
def notebook_kernel(server):
    """A real ipykernel, as a notebook's, pointed at the server; always shut down."""
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=kernel_env(server))
    kc = km.client()
    kc.start_channels()
    # jupyter_client calls a kernel dead after one second without a heartbeat, which a kernel
    # still starting on a busy 2-core machine can miss; its wait_for_ready then gives up at once.
    kc.hb_channel.time_to_dead = 10.0
    try:
        kc.wait_for_ready(timeout=60)
        yield km, kc
    finally:
        kc.stop_channels()
        if km.is_alive():
            km.shutdown_kernel(now=True)


def outputs_of(cell, output_type):
    return [o for o in cell.outputs if o.output_type == output_type]


def stream_text(cell, name="stdout"):
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == name)


def test_notebook_with_magics(sandbox_server, tmp_path):
    cells = [
        "%load_ext jupyter_sandbox",
        "%%sandbox\nx = 21\nprint('x is set')",
        "%%sandbox\nx * 2",
        "%%sandbox\nimport matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()",
        "%%sandbox --out table_run\nimport pandas as pd\npd.DataFrame({'a': [1, 2], 'b': [3, 4]})",
        "type(table_run).__name__, table_run.results[0].html is not None",
        "%remote_eval 2+2",
        "d = {'a': 1, 'b': [1, 2]}\n%sandbox push pushpull d",
        "%%sandbox pushpull\nd['c'] = sum(d['b'])\nd2 = d",
        "%sandbox pull pushpull d2\nprint(d2)",
        "%%sandbox\nprint('before the error')\n1 / 0",
        "print('this cell must not run')",
    ]
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}

    saved, error = run_notebook(nb, sandbox_server, tmp_path)
    nbformat.validate(saved)
    c = saved.cells

    # %load_ext ran cleanly
    assert not outputs_of(c[0], "error"), c[0].outputs
    # state kept across %%sandbox cells; the main result shows as Out[n]
    assert "x is set" in stream_text(c[1])
    (out,) = outputs_of(c[2], "execute_result")
    assert out.data["text/plain"] == "42"
    assert out.execution_count == c[2].execution_count
    # matplotlib: image/png in the saved output
    pngs = [o for o in outputs_of(c[3], "display_data") if "image/png" in o.data]
    assert pngs and len(pngs[0].data["image/png"]) > 1000
    # pandas: text/html, and --out stored the Execution in the notebook's namespace
    (table,) = outputs_of(c[4], "execute_result")
    assert "<table" in table.data["text/html"]
    assert outputs_of(c[5], "execute_result")[0].data["text/plain"] == "('Execution', True)"
    # %remote_eval 2+2 -> 4 (through the one-shot API's eval)
    assert not outputs_of(c[6], "error"), c[6].outputs
    assert outputs_of(c[6], "execute_result")[0].data["text/plain"] == "4"
    # push and pull of a dict
    assert "pushed d to pushpull" in stream_text(c[7])
    assert not outputs_of(c[8], "error"), c[8].outputs
    assert "{'a': 1, 'b': [1, 2], 'c': 3}" in stream_text(c[9])
    # the failing cell: remote traceback, no local frames, and the run stopped there
    assert error is not None and "ZeroDivisionError" in str(error)
    assert "before the error" in stream_text(c[10])
    (err,) = outputs_of(c[10], "error")
    assert err.ename == "ZeroDivisionError"
    tb = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(err.traceback))  # the remote kernel colours it
    assert "ZeroDivisionError" in tb and "1 / 0" in tb
    assert "magics.py" not in tb and "client.py" not in tb and "RemoteError" not in tb
    assert c[11].execution_count is None and c[11].outputs == []


def test_cells_in_other_languages_run_in_their_contexts(sandbox_server, tmp_path):
    """``%%sandbox --language LANG``: the cell runs in that language's context of the notebook's
    sandbox (needs an image with the languages: JUPYTER_SANDBOX_TEST_IMAGE)."""
    cells = [
        "%load_ext jupyter_sandbox",
        "%%sandbox --language js\nconst answer = 6 * 7; console.log('from deno'); answer",
        "%%sandbox --language javascript\nanswer + 1",  # the same (default) JavaScript context
        "%%sandbox --language bash\nexport GREETING=hi; echo $((6 * 7))",
        "%%sandbox --language bash --env WHO=you\necho $GREETING $WHO",
        "%%sandbox\nimport os; os.environ.get('GREETING', 'python has its own')",
        "%%sandbox --language cobol\n1",
    ]
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    saved, error = run_notebook(nb, sandbox_server, tmp_path)
    c = saved.cells
    assert stream_text(c[1]) == "from deno\n", c[1].outputs
    assert outputs_of(c[1], "execute_result")[0].data["text/plain"] == "42"
    assert outputs_of(c[2], "execute_result")[0].data["text/plain"] == "43"
    assert stream_text(c[3]) == "42\n"
    assert stream_text(c[4]) == "hi you\n"
    assert outputs_of(c[5], "execute_result")[0].data["text/plain"] == "'python has its own'"
    assert error is not None and "'cobol' is not available in this sandbox" in str(error)
    for language in ("bash", "javascript", "python", "r", "typescript"):
        assert language in str(error)


def test_bad_arguments_and_unreachable_server(tmp_path):
    cells = [
        "%load_ext jupyter_sandbox",
        "%%sandbox --cpus lots\nprint(1)",
        "%sandbox frobnicate",
        "%%sandbox\nprint(1)",
    ]
    # Nothing listens on port 9: the magic must say so in one line, no traceback.
    env = {**os.environ, "JUPYTER_SANDBOX_URL": "http://127.0.0.1:9/", "JUPYTER_SANDBOX_TOKEN": "x"}
    results = []
    for cell in cells[1:]:
        nb = new_notebook(cells=[new_code_cell(cells[0]), new_code_cell(cell)])
        client = NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True)
        client.execute(env=env)
        results.append(nb.cells[1])
    bad_cpus, bad_command, unreachable = results
    usage = stream_text(bad_cpus, "stderr") + str(bad_cpus.outputs)
    assert "UsageError" in usage and "usage: %%sandbox" in usage and "--cpus" in usage
    usage = stream_text(bad_command, "stderr") + str(bad_command.outputs)
    assert "UsageError" in usage and "invalid choice" in usage
    (err,) = outputs_of(unreachable, "error")
    assert len(err.traceback) == 1, err.traceback
    assert "cannot reach the jupyter-sandbox server at http://127.0.0.1:9/" in err.traceback[0]
    assert "JUPYTER_SANDBOX_URL" in err.traceback[0]


def test_stdout_streams_live_to_iopub(sandbox_server):
    """The first line reaches the notebook kernel's iopub before the sandbox's sleep ends."""
    with notebook_kernel(sandbox_server) as (_km, kc):
        reply = kc.execute_interactive(
            "%load_ext jupyter_sandbox\n%sandbox config", timeout=60, output_hook=lambda m: None
        )
        assert reply["content"]["status"] == "ok"
        # Warm the sandbox so the measured cell only runs code.
        reply = kc.execute_interactive("%%sandbox\nimport time", timeout=120, output_hook=lambda m: None)
        assert reply["content"]["status"] == "ok"

        msg_id = kc.execute("%%sandbox\nimport time\nprint('first', flush=True)\ntime.sleep(2)\nprint('second')")
        arrivals = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                msg = kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                arrivals.append((time.monotonic(), msg["content"]["text"]))
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        text = "".join(t for _, t in arrivals)
        assert "first" in text and "second" in text, arrivals
        first_at = next(t for t, s in arrivals if "first" in s)
        second_at = next(t for t, s in arrivals if "second" in s)
        print(f"first line arrived {second_at - first_at:.2f} s before the second", file=sys.stderr)
        assert second_at - first_at > 1.5, arrivals


def test_sandbox_subcommands_and_cell_eval(sandbox_server, tmp_path):
    cells = [
        "%load_ext jupyter_sandbox",
        "%config SandboxMagics.default_memory = '384M'\n%sandbox config",
        "%%sandbox subcmds\nopen('made.txt', 'w').write('x')\nimport collections, os\nos.mkdir('adir')\n"
        "counter = collections.Counter('aab')",
        "%sandbox list",
        "%sandbox status subcmds",
        "%sandbox files subcmds",
        "%sandbox pull subcmds counter",  # not a safe type: refused, nothing runs here
        "%config SandboxMagics.pull_trusted = True\n%sandbox pull subcmds counter\ncounter",
        "%%remote_eval --var v\nimport math\nmath.sqrt(16)",
        "v",
        "%sandbox restart subcmds",
        "%%sandbox subcmds\n'counter' in globals()",
        "%sandbox kill subcmds",
        "%sandbox status subcmds",
    ]
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    client = NotebookClient(nb, timeout=180, kernel_name="python3", allow_errors=True)
    client.execute(env=kernel_env(sandbox_server))
    nbformat.validate(nb)
    c = nb.cells
    assert "SandboxMagics.default_memory = '384M'" in stream_text(c[1])
    assert not outputs_of(c[2], "error"), c[2].outputs
    assert "subcmds" in stream_text(c[3]) and "384M" in stream_text(c[3])
    assert "running" in stream_text(c[4]) and "384M memory" in stream_text(c[4])
    assert "made.txt" in stream_text(c[5]) and "adir/" in stream_text(c[5])
    (refused,) = outputs_of(c[6], "error")
    assert "refusing to unpickle collections.Counter" in refused.traceback[0] and len(refused.traceback) == 1
    assert outputs_of(c[7], "execute_result")[0].data["text/plain"] == "Counter({'a': 2, 'b': 1})"
    assert outputs_of(c[9], "execute_result")[0].data["text/plain"] == "4.0"
    assert "restarted subcmds" in stream_text(c[10])
    assert outputs_of(c[11], "execute_result")[0].data["text/plain"] == "False"
    assert "removed subcmds" in stream_text(c[12])
    (gone,) = outputs_of(c[13], "error")
    assert "no sandbox 'subcmds'" in gone.traceback[0]


def test_interrupting_the_notebook_interrupts_the_sandbox(sandbox_server):
    with notebook_kernel(sandbox_server) as (km, kc):
        setup = "%load_ext jupyter_sandbox\n%%sandbox intr\nstate = 'kept'"
        reply = kc.execute_interactive(setup.split("\n", 1)[0], timeout=60, output_hook=lambda m: None)
        reply = kc.execute_interactive(setup.split("\n", 1)[1], timeout=120, output_hook=lambda m: None)
        assert reply["content"]["status"] == "ok"
        started = time.monotonic()
        msg_id = kc.execute("%%sandbox intr\nimport time\nprint('sleeping', flush=True)\ntime.sleep(60)")
        while True:  # wait until the sandbox is really running the cell
            msg = kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                break
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=30)
        assert time.monotonic() - started < 30
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        outputs = []
        reply = kc.execute_interactive("%%sandbox intr\nprint(state)", timeout=60, output_hook=outputs.append)
        assert reply["content"]["status"] == "ok"
        assert "kept\n" in [m["content"].get("text") for m in outputs if m["msg_type"] == "stream"]


@contextlib.contextmanager
def server_kernel(server):
    """A notebook kernel started by the server itself (as JupyterLab starts one), and a client
    on its connection file; the kernel is shut down through the server's API at the end."""
    from jupyter_client import BlockingKernelClient

    r = server.request("POST", "api/kernels", json={"name": "python3"})
    assert r.status_code == 201, r.text
    kernel_id = r.json()["id"]
    kc = BlockingKernelClient()
    kc.load_connection_file(str(server.runtime_dir / f"kernel-{kernel_id}.json"))
    kc.start_channels()
    # jupyter_client calls a kernel dead after one second without a heartbeat, which a kernel
    # still starting on a busy 2-core machine can miss; its wait_for_ready then gives up at once.
    kc.hb_channel.time_to_dead = 10.0
    try:
        kc.wait_for_ready(timeout=60)
        yield kernel_id, kc
    finally:
        kc.stop_channels()
        server.request("DELETE", f"api/kernels/{kernel_id}")


def run_cell(kc, code: str, timeout: float = 120) -> str:
    """Run one cell; its stdout (the cell must succeed)."""
    outputs = []
    reply = kc.execute_interactive(code, timeout=timeout, output_hook=outputs.append)
    text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
    assert reply["content"]["status"] == "ok", (reply["content"], text)
    return text


def sandbox_names(server) -> dict[str, dict]:
    r = server.api("GET", "sandboxes")
    assert r.status_code == 200, r.text
    return {m["name"]: m for m in r.json()}


def wait_for(predicate, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"{what} not met within {timeout:g}s"
        time.sleep(0.2)
    return value


def test_the_kernels_default_sandbox_goes_with_the_kernel_and_named_ones_stay(sandbox_server_process):
    server = sandbox_server_process
    with server_kernel(server) as (kernel_id, kc):
        config = run_cell(kc, "%load_ext jupyter_sandbox\n%sandbox config")
        assert f"server: {server.url} (the Jupyter server that started this kernel)" in config, config
        run_cell(kc, "%%sandbox\nx = 1")
        run_cell(kc, "%%sandbox kept-by-name\ny = 2")
        default = f"notebook-{kernel_id[:12]}"
        names = sandbox_names(server)
        assert names[default]["kernel_id"] == kernel_id and names["kept-by-name"]["kernel_id"] is None
        # A restart of the notebook's kernel keeps its sandbox and what is in it.
        r = server.request("POST", f"api/kernels/{kernel_id}/restart")
        assert r.status_code == 200, r.text
        kc.wait_for_ready(timeout=60)
        run_cell(kc, "%load_ext jupyter_sandbox")
        assert "x is 1" in run_cell(kc, "%%sandbox\nprint('x is', x)")
        # A graceful shutdown through the server, as JupyterLab does it: the server removes it.
        r = server.request("DELETE", f"api/kernels/{kernel_id}")
        assert r.status_code == 204, r.text
    wait_for(lambda: default not in sandbox_names(server), what="the default sandbox removed")
    assert "kept-by-name" in sandbox_names(server)
    assert server.api("DELETE", "sandboxes/kept-by-name").status_code == 204


def test_a_kernel_of_server_b_uses_server_b_with_server_a_running(sandbox_server_process, tmp_path):
    a = sandbox_server_process
    with JupyterServer(tmp_path / "b", runtime_dir=a.runtime_dir, data_dir=a.data_dir) as b:
        with server_kernel(b) as (_kernel_id, kc):
            config = run_cell(kc, "%load_ext jupyter_sandbox\n%sandbox config")
            assert f"server: {b.url} (the Jupyter server that started this kernel)" in config, config
            run_cell(kc, "%%sandbox on-b\nz = 1")
        assert "on-b" in sandbox_names(b) and "on-b" not in sandbox_names(a)


class StdinNotebookClient(NotebookClient):
    """nbclient with a stdin handler: the kernel may ask for input, and ``answer`` replies (nbclient
    itself never allows input)."""

    def __init__(self, nb, answer, **kwargs):
        super().__init__(nb, **kwargs)
        self.answer = answer
        self.asked: list[dict] = []
        self._stdin_task = None

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        kc.allow_stdin = True
        self._stdin_task = asyncio.ensure_future(self._answer_stdin(kc))
        return kc

    async def _answer_stdin(self, kc):
        while True:
            msg = await kc.get_stdin_msg()
            if msg["header"]["msg_type"] == "input_request":
                self.asked.append(msg["content"])
                kc.input(self.answer(msg["content"]))


async def test_input_in_a_sandbox_cell_asks_the_notebooks_stdin(sandbox_server, tmp_path):
    cells = [
        "%load_ext jupyter_sandbox",
        "%%sandbox\nimport getpass\nname = input('who? ')\npw = getpass.getpass('password: ')\nprint('hello', name, len(pw))",
    ]
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    client = StdinNotebookClient(
        nb,
        lambda content: "s3cret" if content["password"] else "Ada",
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    try:
        await client.async_execute(env=kernel_env(sandbox_server))
    finally:
        if client._stdin_task is not None:
            client._stdin_task.cancel()
    # the sandbox's input() and getpass() became the notebook's own input requests (JupyterLab's input box)
    assert [(a["prompt"], a["password"]) for a in client.asked] == [("who? ", False), ("password: ", True)]
    assert "hello Ada 6" in stream_text(nb.cells[1])

    # a notebook client that cannot answer: the cell fails saying so, in plain words
    nb = new_notebook(cells=[new_code_cell(cells[0]), new_code_cell("%%sandbox\ninput('who? ')")])
    saved, _ = await asyncio.to_thread(run_notebook, nb, sandbox_server, tmp_path)
    (err,) = outputs_of(saved.cells[1], "error")
    assert err.ename == "InputNotAvailable" and "cannot ask anyone" in err.evalue, err
    assert "frontend does not support" not in err.evalue
