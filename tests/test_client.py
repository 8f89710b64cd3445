"""The Python client.

Unit tests (marked as such in their names) check the pieces that need no server: error
mapping, server discovery order, tar building, the event dispatcher with a fake
connection. Everything else runs the real client against a real `jupyter server`
subprocess with the Docker backend (``sandbox_server`` in conftest).
"""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
import time

import pytest

from jupyter_sandbox import AsyncSandbox, Sandbox
from jupyter_sandbox.client import (
    Connection,
    HTTPConnection,
    OneShot,
    connect,
    error_from_response,
    find_server,
)
from jupyter_sandbox.client.loop import LoopThread
from jupyter_sandbox.embedded import EmbeddedConnection
from jupyter_sandbox.errors import Forbidden, InvalidInput, NotFound, QuotaExceeded, SandboxError, ServerUnreachable
from jupyter_sandbox.models import ExecutionError, OutputMessage, Result, SandboxModel, SandboxSpec
from jupyter_sandbox.oneshot.archive import archive_names, detect_entrypoint, make_archive

from test_executions import ENTRYPOINT_CASES

# -- unit tests ---------------------------------------------------------------------------


def test_unit_error_from_response_keeps_class_and_message():
    error = error_from_response(
        400, b'{"message": "memory 9G is above the maximum", "reason": "Bad Request", "field": "memory"}'
    )
    assert isinstance(error, InvalidInput) and error.field == "memory" and "above the maximum" in str(error)
    assert isinstance(error_from_response(404, b'{"message": "no sandbox \'x\'"}'), NotFound)
    assert isinstance(error_from_response(429, b"{}"), QuotaExceeded)
    other = error_from_response(502, b"<html>bad gateway</html>")
    assert type(other) is SandboxError and other.status == 502 and "bad gateway" in str(other)


def test_unit_find_server_order(monkeypatch):
    for var in (
        "JUPYTER_SANDBOX_URL",
        "JUPYTER_SANDBOX_TOKEN",
        "JUPYTERHUB_API_TOKEN",
        "JUPYTERHUB_SERVICE_PREFIX",
        "JUPYTERHUB_SERVICE_URL",
        "JPY_PARENT_PID",
    ):
        monkeypatch.delenv(var, raising=False)
    probed = []
    servers = [
        {"url": "http://127.0.0.1:1111/", "token": "t1", "pid": 11},
        {"url": "http://127.0.0.1:2222/lab/", "token": "t2", "pid": 22},
        {"url": "http://127.0.0.1:3333/", "token": "t3", "pid": 33},
    ]
    monkeypatch.setattr("jupyter_server.serverapp.list_running_servers", lambda: iter(servers))
    monkeypatch.setattr(
        "jupyter_sandbox.client.discovery._probe", lambda url, token: probed.append(url) or "1111" not in url
    )
    # two local servers answer and nothing says which: refuse, listing them and how to choose
    with pytest.raises(
        ServerUnreachable, match=r"several .*2222/lab/ \(pid 22\).*3333/ \(pid 33\).*JUPYTER_SANDBOX_URL"
    ):
        find_server()
    # one answers (the first does not): that one
    servers.pop()
    probed.clear()
    choice = find_server()
    assert (choice.url, choice.token) == ("http://127.0.0.1:2222/lab/", "t2") and "one local" in choice.why
    assert probed == ["http://127.0.0.1:1111/", "http://127.0.0.1:2222/lab/"]
    # in a kernel: the server that started it (JPY_PARENT_PID), even with others answering
    servers.append({"url": "http://127.0.0.1:3333/", "token": "t3", "pid": 33})
    monkeypatch.setenv("JPY_PARENT_PID", "33")
    choice = find_server()
    assert (choice.url, choice.token) == ("http://127.0.0.1:3333/", "t3") and "started this kernel" in choice.why
    # JupyterHub's single-user environment comes before it
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", "http://0.0.0.0:8890/user/ada/")
    choice = find_server()
    assert (choice.url, choice.token) == ("http://127.0.0.1:8890/user/ada/", "hub")
    # then the environment variables
    monkeypatch.setenv("JUPYTER_SANDBOX_URL", "http://sandbox.example:8888/")
    monkeypatch.setenv("JUPYTER_SANDBOX_TOKEN", "env")
    choice = find_server()
    assert (choice.url, choice.token) == ("http://sandbox.example:8888/", "env")
    # explicit arguments first of all
    choice = find_server("http://explicit:1/", "tok")
    assert (choice.url, choice.token) == ("http://explicit:1/", "tok")
    # nothing at all: in-process for scripts, an error for the magics
    for var in ("JUPYTER_SANDBOX_URL", "JUPYTERHUB_API_TOKEN"):
        monkeypatch.delenv(var)
    monkeypatch.setattr("jupyter_server.serverapp.list_running_servers", lambda: iter([]))
    assert find_server() is None
    assert isinstance(connect(), EmbeddedConnection)
    with pytest.raises(ServerUnreachable, match="JUPYTER_SANDBOX_URL"):
        connect(in_process=False)


async def test_unit_http_connection_takes_a_base_url_token_and_api_prefix(monkeypatch):
    """The user's Jupyter server (API at sandbox/api/) or a JupyterHub service at its own prefix."""
    import httpx

    seen = []

    def answer(request):
        seen.append((str(request.url), request.headers.get("authorization")))
        return httpx.Response(200, json=[])

    real = httpx.AsyncClient
    monkeypatch.setattr(httpx, "AsyncClient", lambda **kw: real(transport=httpx.MockTransport(answer), **kw))
    server = HTTPConnection("http://127.0.0.1:8888/user/ada", "user-token")
    hub = HTTPConnection("https://hub.example/services/sandbox/", "hub-token", api_prefix="/api/v2")
    for connection in (server, hub):
        assert await connection.list() == []
        await connection.close()
    assert seen == [
        ("http://127.0.0.1:8888/user/ada/sandbox/api/sandboxes", "token user-token"),
        ("https://hub.example/services/sandbox/api/v2/sandboxes", "token hub-token"),
    ]


def test_unit_make_archive_and_entrypoint(tmp_path):
    data = make_archive({"helper.py": "X = 1", "main.py": "import helper"})
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert sorted(tar.getnames()) == ["helper.py", "main.py"]
        assert tar.extractfile("main.py").read() == b"import helper"
    assert detect_entrypoint(archive_names(data)) == "main.py"
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "run.py").write_text("print(1)")
    assert detect_entrypoint(archive_names(make_archive(tmp_path / "pkg"))) == "run.py"


@pytest.mark.parametrize("names, expected", ENTRYPOINT_CASES)
def test_unit_entrypoint_detection_in_the_client(names, expected):
    """The client fills metadata.entrypoint by the server's rule, on the server's cases."""
    archive = make_archive({name: "" for name in names})
    if expected.endswith(".py"):
        metadata = OneShot._request_parts(None, archive, None, {})["files"]["metadata"][1]
        assert json.loads(metadata)["entrypoint"] == expected
    else:
        with pytest.raises(InvalidInput, match=expected):
            OneShot._request_parts(None, archive, None, {})


class FakeConnection(Connection):
    """A unit-test transport: replays wire events with pauses, as a server would stream them."""

    description = "fake"

    def __init__(self, events, pause=0.0):
        self.events, self.pause = events, pause

    async def execute(self, key, request, on_event):
        for event in self.events:
            await asyncio.sleep(self.pause)
            await on_event(event)


def _model():
    return SandboxModel(
        id="sbx_1",
        name="one",
        owner="me",
        status="running",
        backend="fake",
        spec=SandboxSpec(),
        created=0.0,
        last_activity=0.0,
    )


EVENTS = [
    {"type": "number_of_executions", "execution_count": 3},
    {"type": "stdout", "text": "hello\n", "timestamp": 1},
    {"type": "stderr", "text": "careful\n", "timestamp": 2},
    {"type": "result", "html": "<b>x</b>", "text": "x", "is_main_result": False},
    {"type": "result", "text": "2", "is_main_result": True},
    {"type": "error", "name": "ValueError", "value": "bad", "traceback": "Traceback\nValueError: bad"},
    {"type": "end_of_execution"},
]


def test_unit_run_code_callbacks_in_order_on_the_callers_thread():
    import threading

    seen = []
    caller = threading.get_ident()

    def record(kind):
        return lambda obj: seen.append((kind, obj, threading.get_ident() == caller, time.monotonic()))

    sandbox = Sandbox(_connection=FakeConnection(EVENTS, pause=0.05), _model=_model())
    execution = sandbox.run_code(
        "x", on_stdout=record("out"), on_stderr=record("err"), on_result=record("result"), on_error=record("error")
    )
    assert [k for k, *_ in seen] == ["out", "err", "result", "result", "error"]
    assert all(same for _, _, same, _ in seen)
    assert seen[0][1] == OutputMessage("hello\n", 1, False) and seen[1][1] == OutputMessage("careful\n", 2, True)
    assert isinstance(seen[2][1], Result) and seen[2][1].html == "<b>x</b>"
    assert isinstance(seen[4][1], ExecutionError) and seen[4][1].name == "ValueError"
    # each callback fired when its line arrived, not all at the end
    assert seen[-1][3] - seen[0][3] > 0.15
    assert execution.text == "2" and execution.execution_count == 3 and execution.logs.stdout == ["hello\n"]


async def test_unit_async_run_code_accepts_coroutine_callbacks():
    got = []

    async def on_stdout(msg):
        await asyncio.sleep(0)
        got.append(msg.line)

    sandbox = AsyncSandbox(FakeConnection(EVENTS), _model())
    execution = await sandbox.run_code("x", on_stdout=on_stdout, on_result=lambda r: got.append(r.text))
    assert got == ["hello\n", "x", "2"] and execution.error.value == "bad"


def test_unit_one_loop_thread_for_all_connections():
    assert LoopThread.get() is LoopThread.get()
    assert LoopThread.get().thread.daemon


# -- against a real server ------------------------------------------------------------


@pytest.fixture
def server(sandbox_server, monkeypatch):
    monkeypatch.delenv("JUPYTER_SANDBOX_URL", raising=False)
    return {"server_url": sandbox_server[0], "token": sandbox_server[1]}


def test_sandbox_over_http(server):
    stdout, arrivals = [], []
    with Sandbox(memory="256M", env={"GREETING": "hi"}, **server) as sandbox:
        assert isinstance(sandbox.connection, HTTPConnection)
        assert sandbox.model.spec.memory == 256 * 1024**2
        sandbox.run_code("x = 1")
        assert sandbox.run_code("x += 1; x").text == "2"
        execution = sandbox.run_code(
            "import os, time\nprint(os.environ['GREETING'], os.environ['EXTRA'], flush=True)\ntime.sleep(1.5)\nprint('late')",
            envs={"EXTRA": "yes"},
            on_stdout=lambda m: (stdout.append(m), arrivals.append(time.monotonic())),
        )
        assert [m.line for m in stdout] == ["hi yes\n", "late\n"]
        assert all(isinstance(m, OutputMessage) and m.timestamp > 0 for m in stdout)
        assert arrivals[1] - arrivals[0] > 1.0  # streamed, not delivered at the end
        assert execution.logs.stdout == ["hi yes\n", "late\n"]

        errors = []
        failed = sandbox.run_code("1/0", on_error=errors.append)
        assert failed.error.name == "ZeroDivisionError" and errors == [failed.error]

        sandbox.files.write("data/hello.txt", "hello file")
        assert sandbox.files.read("data/hello.txt") == "hello file"
        assert sandbox.run_code("open('data/hello.txt').read()").text == "'hello file'"
        assert [e.name for e in sandbox.files.list("data")] == ["hello.txt"]
        sandbox.files.remove("data/hello.txt")
        with pytest.raises(NotFound):
            sandbox.files.read("data/hello.txt")

        context = sandbox.create_context()
        assert context.id in [c.id for c in sandbox.list_contexts()]
        sandbox.run_code("y = 'ctx'", context=context)
        assert sandbox.run_code("y", context=context).text == "'ctx'"
        assert sandbox.run_code("y").error.name == "NameError"  # contexts are separate kernels
        sandbox.restart_context(context)
        assert sandbox.run_code("y", context=context).error.name == "NameError"
        sandbox.remove_context(context)

        again = Sandbox.connect(sandbox.id, **server)
        assert again.run_code("x").text == "2"
        assert sandbox.id in [m.id for m in Sandbox.list(**server)]
        sandbox_id = sandbox.id
    assert sandbox_id not in [m.id for m in Sandbox.list(**server)]  # removed on exit


def test_server_errors_become_sandbox_errors(server):
    with pytest.raises(InvalidInput, match="memory") as info:
        Sandbox(memory="64G", **server)
    assert info.value.field == "memory"
    with pytest.raises(NotFound):
        Sandbox.connect("no-such-sandbox", **server)
    with pytest.raises(ServerUnreachable, match="JUPYTER_SANDBOX_URL"):
        Sandbox(server_url="http://127.0.0.1:9/", token="x")
    # a token the server does not take says so (Jupyter's own answer to a POST is "'_xsrf' argument missing")
    with pytest.raises(Forbidden, match=r"^not authenticated: .*token"):
        Sandbox(server_url=server["server_url"], token="wrong-token")
    with pytest.raises(Forbidden, match=r"^not authenticated: "):
        Sandbox.list(server_url=server["server_url"], token="wrong-token")


def test_interrupt_and_restart(server):
    import threading

    with Sandbox(**server) as sandbox:
        sandbox.run_code("keep = 1")
        started = time.monotonic()
        # interrupted once it is running (it says so), from another thread, as a UI would
        execution = sandbox.run_code(
            "import time\nprint('sleeping', flush=True)\ntime.sleep(30)",
            on_stdout=lambda m: threading.Thread(target=sandbox.interrupt).start(),
        )
        assert time.monotonic() - started < 15 and execution.error.name == "KeyboardInterrupt"
        assert sandbox.run_code("keep").text == "1"
        sandbox.restart()
        assert sandbox.run_code("keep").error.name == "NameError"


async def test_async_sandbox(server):
    async with await AsyncSandbox.create(**server) as sandbox:
        lines = []
        await sandbox.run_code("z = 40")
        execution = await sandbox.run_code("print('async'); z + 2", on_stdout=lambda m: lines.append(m.line))
        assert execution.text == "42" and lines == ["async\n"]
        await sandbox.files.write("a.txt", b"bytes")
        assert await sandbox.files.read("a.txt", format="bytes") == b"bytes"
        assert sandbox.id in [m.id for m in await AsyncSandbox.list(**server)]
        sandbox_id = sandbox.id
    assert sandbox_id not in [m.id for m in await AsyncSandbox.list(**server)]


def test_one_shot_calls(server):
    client = OneShot(**server)
    result = client.eval("x = 5\ny = 10\nx + y")
    assert result.status == "completed" and result.exit_code == 0 and result.result == "15"
    assert client.eval("print('hello')").stdout == "hello\n"

    synced = client.execute_sync(
        files={"main.py": "from helper import greet; greet()", "helper.py": "def greet(): print('Hello from helper!')"}
    )
    assert synced.status == "completed" and synced.stdout == "Hello from helper!\n" and synced.exit_code == 0

    exec_id = client.execute_async(files={"main.py": "import time; time.sleep(0.5); print('done')"})
    finished = client.wait_for_completion(exec_id, poll_interval=0.5, max_wait=120)
    assert finished.stdout == "done\n" and finished.execution_id == exec_id

    slow = client.execute_async(files={"main.py": "import time; time.sleep(3600)"})
    with pytest.raises(TimeoutError):
        client.wait_for_completion(slow, poll_interval=0.5, max_wait=1)
    client.kill(slow)
    assert client.wait_for_completion(slow, poll_interval=0.5, max_wait=60).status == "killed"
    with pytest.raises(NotFound):
        client.get_execution("exe_does_not_exist")


def test_on_input_answers_input_and_getpass(server):
    from jupyter_sandbox.client import NoInput
    from jupyter_sandbox.models import InputRequest

    asked = []

    def answer(request):
        asked.append(request)
        return "s3cret" if request.password else "Ada"

    with Sandbox(**server) as sandbox:
        execution = sandbox.run_code(
            "import getpass\nname = input('who? ')\nprint(name, len(getpass.getpass('pw? ')))", on_input=answer
        )
        assert execution.error is None and execution.logs.stdout == ["Ada 6\n"]
        assert [(r.prompt, r.password) for r in asked] == [("who? ", False), ("pw? ", True)]
        assert all(isinstance(r, InputRequest) and r.context_id for r in asked)

        # a handler that cannot answer: the code fails with its words; one that breaks: with its error
        def cannot(request):
            raise NoInput("nobody is at the keyboard")

        refused = sandbox.run_code("input('? ')", on_input=cannot)
        assert (refused.error.name, refused.error.value) == ("InputNotAvailable", "nobody is at the keyboard")
        broken = sandbox.run_code("input('? ')", on_input=lambda request: 1 / 0)
        assert broken.error.name == "InputNotAvailable" and "ZeroDivisionError" in broken.error.value
        # no handler: a plain error at once, not a hang
        plain = sandbox.run_code("input('? ')")
        assert plain.error.name == "InputNotAvailable" and "on_input" in plain.error.value
        assert sandbox.run_code("name").text == "'Ada'"


async def test_async_on_input_may_be_a_coroutine(server):
    async def answer(request):
        await asyncio.sleep(0)
        return request.prompt.upper()

    async with await AsyncSandbox.create(**server) as sandbox:
        execution = await sandbox.run_code("print(input('abc'))", on_input=answer)
        assert execution.logs.stdout == ["ABC\n"]
