"""The project client's E2B-style commands, filesystem with watch, and class methods (issue 22),
sync and async, through both connections: a real `jupyter server` subprocess with the extension on
Docker (over HTTP), and the embedded manager on Docker (in this process). A second user's client
reaches none of the first user's sandbox through any of them.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from jupyter_sandbox import AsyncSandbox, Sandbox
from jupyter_sandbox.client import (
    CommandExitException,
    CommandResult,
    CommandTimeout,
    EntryInfo,
    FilesystemEvent,
    FilesystemEventType,
    FileType,
    HTTPConnection,
    WriteEntry,
)
from jupyter_sandbox.embedded import EmbeddedConnection, EmbeddedManager
from jupyter_sandbox.errors import NotFound

from servers import IMAGE, SESSION, SESSION_LABEL, JupyterServer

WAIT = 20.0  # seconds a watch may take to see a change (it polls a few times a second)


class UserConnection(HTTPConnection):
    """An HTTP connection acting as another user of a ``users=True`` test server (X-Test-User)."""

    def __init__(self, base_url: str, token: str, user: str):
        super().__init__(base_url, token)
        self.user = user

    def _http(self):
        client = super()._http()
        client.headers["X-Test-User"] = self.user
        return client


@pytest.fixture(scope="module")
def two_user_server(docker_ready, tmp_path_factory):
    """A server where requests act as alice, or as the user the X-Test-User header names."""
    with JupyterServer(tmp_path_factory.mktemp("commands"), users=True) as server:
        yield server


@pytest.fixture
def alice(two_user_server):
    return UserConnection(two_user_server.url, two_user_server.token, "alice")


@pytest.fixture
def bob(two_user_server):
    return UserConnection(two_user_server.url, two_user_server.token, "bob")


@pytest.fixture(scope="module")
def embedded_docker(docker_ready):
    """An embedded manager of its own on Docker (the process's shared one may run another backend)."""
    embedded = EmbeddedManager("docker", default_image=IMAGE, extra_labels={SESSION_LABEL: SESSION})
    yield EmbeddedConnection(embedded)
    embedded.run(embedded.manager.shutdown(), timeout=120)


def wait_for(found, what: str):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not seen within {WAIT:g} s: {what}")


def exercise_commands(sandbox: Sandbox) -> None:
    """Commands with output, exit codes, cwd and env, stdin, background and kill, timeout."""
    caller, seen = threading.current_thread(), []
    result = sandbox.commands.run(
        "echo out; echo err >&2", on_stdout=lambda text: seen.append((text, threading.current_thread()))
    )
    assert result == CommandResult(stdout="out\n", stderr="err\n", exit_code=0, error=None)
    assert seen == [("out\n", caller)]  # the blocking client calls back on the caller's thread

    with pytest.raises(CommandExitException) as failed:
        sandbox.commands.run("echo partial; exit 3")
    assert failed.value.exit_code == 3 and failed.value.stdout == "partial\n"

    where = sandbox.commands.run("pwd; echo $GREETING", cwd="/tmp", envs={"GREETING": "hello"})
    assert where.stdout == "/tmp\nhello\n"

    reader = sandbox.commands.run("read line; echo got $line", background=True, stdin=True)
    sandbox.commands.send_stdin(reader.pid, "abc\n")
    assert reader.wait().stdout == "got abc\n"

    sleeper = sandbox.commands.run("sleep 120", background=True, tag="sleeper")
    running = {p.pid: p for p in sandbox.commands.list()}
    assert running[sleeper.pid].tag == "sleeper" and running[sleeper.pid].args[-1] == "sleep 120"
    assert sleeper.exit_code is None
    assert sleeper.kill() is True
    with pytest.raises(CommandExitException) as killed:
        sleeper.wait()
    assert killed.value.exit_code == -1 and killed.value.error == "signal: killed"
    assert sandbox.commands.kill(sleeper.pid) is False  # ended already
    assert sleeper.pid not in [p.pid for p in sandbox.commands.list()]

    # a background command outlives its handle's stream, and connect() follows it again
    ticker = sandbox.commands.run("sleep 2; echo late", background=True)
    ticker.disconnect()
    again = sandbox.commands.connect(ticker.pid)
    assert again.wait().stdout == "late\n"

    with pytest.raises(CommandTimeout):
        sandbox.commands.run("sleep 120", timeout=2)
    wait_for(lambda: sandbox.commands.list() == [], "the timed-out command killed")


def exercise_files(sandbox: Sandbox) -> None:
    """Round trips, listing with depth, details, directories, renames, removal and a watch that
    sees what a command makes."""
    files = sandbox.files
    written = files.write("docs/a.txt", "alpha")
    assert written.name == "a.txt" and written.type is FileType.FILE and written.path == "/home/user/docs/a.txt"
    assert files.read("docs/a.txt") == "alpha" and files.read("docs/a.txt", format="bytes") == b"alpha"
    files.write([WriteEntry("docs/sub/b.bin", b"\x00\x01"), WriteEntry("docs/c.txt", "gamma")])
    assert [e.name for e in files.list("docs")] == ["a.txt", "c.txt", "sub"]
    deep = files.list("docs", depth=2)
    assert [e.path for e in deep] == [f"/home/user/docs/{n}" for n in ("a.txt", "c.txt", "sub", "sub/b.bin")]
    info = files.get_info("docs/sub/b.bin")
    assert isinstance(info, EntryInfo) and info.size == 2 and info.type is FileType.FILE and info.modified_time
    assert files.exists("docs/c.txt") and not files.exists("docs/nothing")
    assert files.make_dir("made/deeper") is True and files.make_dir("made/deeper") is False
    assert files.get_info("made/deeper").type is FileType.DIR
    moved = files.rename("docs/c.txt", "made/c.txt")
    assert moved.path == "/home/user/made/c.txt" and files.read("made/c.txt") == "gamma"
    files.remove("docs")
    assert not files.exists("docs/a.txt")
    with pytest.raises(NotFound):
        files.get_info("docs")

    seen: list[FilesystemEvent] = []
    watch = files.watch_dir("made", on_event=seen.append)
    try:
        sandbox.commands.run("echo new > made/new.txt")
        wait_for(lambda: any(e.name == "new.txt" and e.type is FilesystemEventType.CREATE for e in seen), "new.txt")
        assert [e.name for e in watch.get_new_events()][:1] == ["new.txt"]
        sandbox.commands.run("rm made/new.txt")
        wait_for(lambda: any(e.type is FilesystemEventType.REMOVE for e in seen), "the removal")
    finally:
        watch.stop()
    assert all(e.name != "deeper/inner.txt" for e in seen)

    deep_seen: list[FilesystemEvent] = []
    recursive = files.watch_dir("made", on_event=deep_seen.append, recursive=True)
    try:
        sandbox.commands.run("echo in > made/deeper/inner.txt")
        wait_for(lambda: any(e.name == "deeper/inner.txt" for e in deep_seen), "deeper/inner.txt")
    finally:
        recursive.stop()


def test_commands_and_files_over_http(alice):
    with Sandbox(_connection=alice) as sandbox:
        exercise_commands(sandbox)
        exercise_files(sandbox)


def test_commands_and_files_in_the_embedded_manager(embedded_docker):
    with Sandbox(_connection=embedded_docker) as sandbox:
        exercise_commands(sandbox)
        exercise_files(sandbox)


async def test_async_commands_and_watch(alice):
    async with await AsyncSandbox.create(_connection=alice) as sandbox:
        lines: list[str] = []

        async def on_stdout(text: str) -> None:
            lines.append(text)

        result = await sandbox.commands.run("echo one; sleep 1; echo two", on_stdout=on_stdout)
        assert result.stdout == "one\ntwo\n" and "".join(lines) == "one\ntwo\n"
        with pytest.raises(CommandExitException):
            await sandbox.commands.run("false")

        background = await sandbox.commands.run("cat", background=True, stdin=True)
        await background.send_stdin("echoed\n")
        assert await background.kill() is True
        with pytest.raises(CommandExitException) as killed:
            await background.wait()
        assert killed.value.stdout == "echoed\n"

        assert await sandbox.files.make_dir("watched")
        seen: list[FilesystemEvent] = []
        watch = await sandbox.files.watch_dir("watched", seen.append)
        try:
            await sandbox.commands.run("touch watched/x")
            deadline = time.monotonic() + WAIT
            while not any(e.name == "x" for e in seen) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert any(e.name == "x" and e.type is FilesystemEventType.CREATE for e in seen)
        finally:
            await watch.stop()
        assert not watch.running


def test_class_methods(alice):
    sandbox = Sandbox.create(_connection=alice)
    try:
        assert sandbox.id in [m.id for m in Sandbox.list(_connection=alice)]
        again = Sandbox.connect(sandbox.id, _connection=alice)
        assert again.commands.run("echo here").stdout == "here\n"
        assert sandbox.get_info().end_at is None
        sandbox.set_timeout(600)
        assert 590 < sandbox.get_info().end_at - time.time() <= 600
        Sandbox.set_timeout(sandbox.id, 900, _connection=alice)
        assert 890 < Sandbox.get_info(sandbox.id, _connection=alice).end_at - time.time() <= 900
    finally:
        assert Sandbox.kill(sandbox.id, _connection=alice) is True
    assert Sandbox.kill(sandbox.id, _connection=alice) is False
    assert sandbox.kill() is False
    assert sandbox.id not in [m.id for m in Sandbox.list(_connection=alice)]


async def test_async_class_methods(alice):
    sandbox = await AsyncSandbox.create(_connection=alice)
    await sandbox.set_timeout(300)
    assert (await AsyncSandbox.get_info(sandbox.id, _connection=alice)).end_at is not None
    assert await AsyncSandbox.kill(sandbox.id, _connection=alice) is True
    assert await sandbox.kill() is False


def test_another_users_client_reaches_nothing(alice, bob):
    with Sandbox(_connection=alice) as sandbox:
        sandbox.files.write("secret.txt", "alice's")
        sleeper = sandbox.commands.run("sleep 120", background=True, stdin=True)
        with pytest.raises(NotFound):
            Sandbox.connect(sandbox.id, _connection=bob)
        assert sandbox.id not in [m.id for m in Sandbox.list(_connection=bob)]
        # bob, knowing alice's sandbox id and pid, is answered as if neither existed
        forged = Sandbox(_connection=bob, _model=sandbox.model)
        for attempt in (
            lambda: forged.commands.run("echo bob"),
            lambda: forged.commands.list(),
            lambda: forged.commands.send_stdin(sleeper.pid, "x\n"),
            lambda: forged.commands.connect(sleeper.pid),
            lambda: forged.files.read("secret.txt"),
            lambda: forged.files.list("."),
            lambda: forged.files.get_info("secret.txt"),
            lambda: forged.files.make_dir("bob"),
            lambda: forged.files.rename("secret.txt", "bob.txt"),
            lambda: forged.files.watch_dir("."),
            lambda: forged.set_timeout(1),
        ):
            with pytest.raises(NotFound):
                attempt()
        assert forged.commands.kill(sleeper.pid) is False
        assert Sandbox.kill(sandbox.id, _connection=bob) is False
        # and alice's sandbox, command and file are untouched
        assert sandbox.files.read("secret.txt") == "alice's"
        assert sleeper.pid in [p.pid for p in sandbox.commands.list()]
        assert sandbox.get_info().end_at is None
        assert sleeper.kill() is True


def test_bad_input_is_a_400_naming_the_field(two_user_server, alice):
    with Sandbox(_connection=alice) as sandbox:
        base = f"sandboxes/{sandbox.id}"
        api = two_user_server.api
        for method, path, kwargs, field in (
            ("POST", "/commands", {"json": {"cmd": " "}}, "cmd"),
            ("POST", "/commands", {"json": {"command": "ls"}}, "command"),
            ("POST", "/commands", {"json": {"cmd": "ls", "envs": {"A": 1}}}, "envs"),
            ("DELETE", "/commands/abc", {}, "pid"),
            ("POST", "/commands/1/stdin", {"json": {}}, "data"),
            ("GET", "/watch", {"params": {"path": "/etc"}}, "path"),
            ("GET", "/watch", {"params": {"recursive": "yes"}}, "recursive"),
            ("GET", "/files", {"params": {"path": ".", "depth": "0"}}, "depth"),
            ("POST", "/files/dir", {}, "path"),
            ("POST", "/files/move", {"json": {"source": "a"}}, "destination"),
            ("POST", "/timeout", {"json": {"timeout": -1}}, "timeout"),
        ):
            answer = api(method, base + path, **kwargs)
            assert answer.status_code == 400, (path, answer.text)
            assert answer.json()["field"] == field, (path, answer.json())
        # a command started without stdin takes none
        quiet = sandbox.commands.run("sleep 60", background=True)
        answer = api("POST", f"{base}/commands/{quiet.pid}/stdin", json={"data": "x"})
        assert answer.status_code == 400 and answer.json()["field"] == "stdin"
        assert api("DELETE", f"{base}/commands/999999").status_code == 404
        quiet.kill()
