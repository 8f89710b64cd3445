"""Streamed execution over HTTP through a real server (pytest-jupyter) and real Docker sandboxes.

The reference README's three examples (state kept, a plot's PNG, streamed output), checked
on the wire: NDJSON lines that arrive over the socket as the code produces them.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_sandbox.models import Execution

API = ("sandbox", "api", "sandboxes")


@pytest.fixture
def jp_server_config(jp_server_config, docker_ready):
    jp_server_config["SandboxApp"]["keepalive_interval"] = 1
    return jp_server_config


async def create_sandbox(jp_fetch, **body) -> dict:
    r = await jp_fetch(*API, method="POST", body=json.dumps(body), request_timeout=120)
    assert r.code == 201
    return json.loads(r.body)


async def stream(jp_fetch, sandbox_id: str, code: str, arrived: list | None = None, **body) -> list[tuple[float, dict]]:
    """POST execute; every NDJSON line with the time it arrived on the socket (also appended to
    ``arrived`` as it comes, for a test that waits for some output)."""
    start = time.monotonic()
    arrived = [] if arrived is None else arrived
    buffer = b""

    def on_chunk(chunk: bytes) -> None:
        nonlocal buffer
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            arrived.append((time.monotonic() - start, json.loads(line)))

    r = await jp_fetch(
        *API,
        sandbox_id,
        "execute",
        method="POST",
        body=json.dumps({"code": code, **body}),
        streaming_callback=on_chunk,
        request_timeout=120,
    )
    assert r.code == 200
    assert r.headers["Content-Type"] == "application/x-ndjson"
    assert buffer == b"", "every line ends with a newline"
    return arrived


async def until_printed(arrived: list, text: str, timeout: float = 60) -> None:
    """Wait until a streamed execution has printed ``text`` (it is running, not queued)."""
    deadline = time.monotonic() + timeout
    while not any(e.get("type") == "stdout" and text in e.get("text", "") for _, e in arrived):
        assert time.monotonic() < deadline, f"{text!r} never printed: {arrived}"
        await asyncio.sleep(0.1)


def execution_of(lines: list[tuple[float, dict]]) -> Execution:
    execution = Execution()
    for _, event in lines:
        execution.apply_event(event)
    return execution


def types(lines) -> list[str]:
    """Line types in arrival order, keepalives left out. ``number_of_executions`` comes
    from the shell reply, which races the iopub outputs: it is checked, then set aside."""
    kinds = [e["type"] for _, e in lines if e["type"] != "keepalive"]
    assert kinds.count("number_of_executions") == 1 and kinds[-1] == "end_of_execution", kinds
    return [k for k in kinds if k != "number_of_executions"]


async def test_state_is_kept_between_executions(jp_fetch):
    sandbox = await create_sandbox(jp_fetch)
    await stream(jp_fetch, sandbox["id"], "x = 1")
    lines = await stream(jp_fetch, sandbox["id"], "x+=1; x")
    assert execution_of(lines).text == "2"
    assert types(lines) == ["result", "end_of_execution"]
    assert execution_of(lines).execution_count == 2
    result = next(e for _, e in lines if e["type"] == "result")
    assert result["is_main_result"] is True and result["text"] == "2"


async def test_plot_comes_back_as_png(jp_fetch):
    from PIL import Image

    code = (
        "import matplotlib.pyplot as plt\nimport numpy as np\n\n"
        "x = np.linspace(0, 20, 100)\ny = np.sin(x)\n\nplt.plot(x, y)\nplt.show()\n"
    )
    sandbox = await create_sandbox(jp_fetch)
    execution = execution_of(await stream(jp_fetch, sandbox["id"], code))
    assert execution.error is None, execution.error
    image = Image.open(io.BytesIO(base64.b64decode(execution.results[0].png)))
    assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100


async def test_streamed_output_arrives_as_it_happens(jp_fetch):
    # The README's streaming example, verbatim.
    code = (
        'import time\nimport pandas as pd\n\nprint("hello")\ntime.sleep(3)\n'
        'data = pd.DataFrame(data=[[1, 2], [3, 4]], columns=["A", "B"])\n'
        'display(data.head(10))\ntime.sleep(3)\nprint("world")\n'
    )
    sandbox = await create_sandbox(jp_fetch)
    lines = await stream(jp_fetch, sandbox["id"], code)
    assert types(lines) == ["stdout", "result", "stdout", "end_of_execution"]
    (t_hello, hello), (t_table, table), (t_world, world) = [x for x in lines if x[1]["type"] in ("stdout", "result")]
    assert hello["text"] == "hello\n" and world["text"] == "world\n"
    assert isinstance(hello["timestamp"], int) and world["timestamp"] - hello["timestamp"] > 5.5e9
    assert "<table" in table["html"] and table["is_main_result"] is False
    print(f"arrival: hello {t_hello:.2f}s, table {t_table:.2f}s, world {t_world:.2f}s, end {lines[-1][0]:.2f}s")
    # Each line reached the client when produced, not at the end of the execution.
    assert 2.5 < t_table - t_hello < 4.5
    assert 2.5 < t_world - t_table < 4.5
    assert lines[-1][0] - t_hello > 5.5
    # Silence of 3 s with keepalive_interval = 1: keepalive lines in between.
    between = [e for t, e in lines if t_hello < t < t_table]
    assert {"type": "keepalive"} in between


async def test_error_line_and_stderr(jp_fetch):
    sandbox = await create_sandbox(jp_fetch)
    lines = await stream(jp_fetch, sandbox["id"], "import sys\nprint('oops', file=sys.stderr)\n1/0")
    assert types(lines) == ["stderr", "error", "end_of_execution"]
    error = execution_of(lines).error.to_dict()
    assert error["name"] == "ZeroDivisionError" and error["value"] == "division by zero"
    assert isinstance(error["traceback"], str) and "ZeroDivisionError" in error["traceback"]
    assert execution_of(lines).logs.stderr == ["oops\n"]


async def test_env_vars_and_timeout(jp_fetch):
    sandbox = await create_sandbox(jp_fetch)
    lines = await stream(jp_fetch, sandbox["id"], "import os; os.environ['GREETING']", env_vars={"GREETING": "hi"})
    assert execution_of(lines).text == "'hi'"
    lines = await stream(jp_fetch, sandbox["id"], "import time; time.sleep(30)", timeout=1)
    error = execution_of(lines).error
    assert error.name == "TimeoutError"
    assert lines[-1][0] < 10
    # Interrupted, not killed: the state survives.
    await stream(jp_fetch, sandbox["id"], "kept = 5")
    assert execution_of(await stream(jp_fetch, sandbox["id"], "kept")).text == "5"


async def test_executions_in_one_context_queue(jp_fetch):
    """A second execution in a busy context waits its turn (no 409) and then runs."""
    sandbox = await create_sandbox(jp_fetch)
    progress: list = []
    first = asyncio.ensure_future(
        stream(
            jp_fetch,
            sandbox["id"],
            "import time; print('started', flush=True); time.sleep(3); print('first')",
            arrived=progress,
        )
    )
    await until_printed(progress, "started")
    t0 = time.monotonic()
    second = await stream(jp_fetch, sandbox["id"], "print('second')")
    first_lines = await first
    assert execution_of(first_lines).logs.stdout == ["started\n", "first\n"]
    assert execution_of(second).logs.stdout == ["second\n"]
    assert time.monotonic() - t0 > 1.5, "the second execution waited for the first"


async def test_client_disconnect_interrupts_the_execution(jp_fetch):
    sandbox = await create_sandbox(jp_fetch)
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(
            *API,
            sandbox["id"],
            "execute",
            method="POST",
            body=json.dumps({"code": "import time\ntime.sleep(60)\nfinished = True"}),
            streaming_callback=lambda chunk: None,
            request_timeout=2,
        )
    assert info.value.code == 599  # the client gave up and closed its connection
    t0 = time.monotonic()
    lines = await stream(jp_fetch, sandbox["id"], "'finished' in globals()")
    # Had the first execution kept running, this one would have queued for ~58 s.
    assert time.monotonic() - t0 < 10
    assert execution_of(lines).text == "False"


async def test_execute_in_a_new_context(jp_fetch):
    sandbox = await create_sandbox(jp_fetch)
    await jp_fetch(*API, sandbox["id"], "files", method="PUT", params={"path": "sub/data.txt"}, body=b"42")
    r = await jp_fetch(
        *API, sandbox["id"], "contexts", method="POST", body=json.dumps({"cwd": "/home/user/sub"}), request_timeout=60
    )
    context = json.loads(r.body)
    await stream(jp_fetch, sandbox["id"], "y = 'default'")
    assert r.code == 201 and context["cwd"] == "/home/user/sub" and context["language"] == "python"
    code = "import os; (os.getcwd(), 'y' in globals(), open('data.txt').read())"
    lines = await stream(jp_fetch, sandbox["id"], code, context_id=context["id"])
    assert execution_of(lines).text == "('/home/user/sub', False, '42')"


async def test_sandbox_removed_while_queued_ends_the_stream_with_an_error_line(jp_fetch):
    """Once keepalives have sent the 200, a failure is reported in the stream itself."""
    sandbox = await create_sandbox(jp_fetch)
    progress: list = []
    first = asyncio.ensure_future(
        stream(jp_fetch, sandbox["id"], "import time; print('started', flush=True); time.sleep(60)", arrived=progress)
    )
    await until_printed(progress, "started")
    waiting: list = []
    second = asyncio.ensure_future(stream(jp_fetch, sandbox["id"], "print('never runs')", arrived=waiting))
    deadline = time.monotonic() + 30
    while not waiting:  # the waiting request has had a keepalive (interval 1 s): its 200 is sent
        assert time.monotonic() < deadline, "no keepalive while queued"
        await asyncio.sleep(0.1)
    r = await jp_fetch(*API, sandbox["id"], method="DELETE", request_timeout=60)
    assert r.code == 204
    lines = await asyncio.wait_for(second, 60)
    assert next(e["type"] for _, e in lines) == "keepalive"
    execution = execution_of(lines)
    assert execution.error is not None and execution.logs.stdout == []
    assert "sandbox" in execution.error.value.lower(), execution.error.value
    assert lines[-1][1]["type"] == "end_of_execution"
    first_lines = await asyncio.wait_for(first, 60)
    assert execution_of(first_lines).error is not None  # its kernel went away under it
    r = await jp_fetch("api", "status")  # the server still answers
    assert r.code == 200
