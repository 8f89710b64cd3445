"""Commands in a sandbox (backends' ``exec_stream``), on a real Docker engine, on the local backend and on
the kubernetes backend (the k8s_api fixture's test API server, or $KUBECONFIG's cluster):
output by stream, exit codes, stdin, signals to the whole process group, terminals, reconnecting by pid."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from jupyter_sandbox.backends import make_backend
from jupyter_sandbox.backends.base import SandboxBackend, labels
from jupyter_sandbox.backends.exec_stream import ExecStream
from jupyter_sandbox.errors import BackendUnavailable, InvalidInput, NotFound, QuotaExceeded
from jupyter_sandbox.models import SandboxSpec

from conftest import IMAGE, SESSION_SERVER_ID, require_docker
from servers import SESSION, SESSION_LABEL

WAIT = 60  # seconds a command of these tests may take on a busy machine


DOCKER = pytest.mark.docker


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("docker", marks=DOCKER),
        pytest.param("docker-runsc", marks=DOCKER),
        "local",
        pytest.param("kubernetes", marks=DOCKER),
    ],
)
async def box(request):
    """(backend, sandbox id): one sandbox per backend for this module, removed at its end."""
    if request.param.startswith("docker"):
        require_docker("runsc" if request.param == "docker-runsc" else None)
        runtime = "runsc" if request.param == "docker-runsc" else "runc"
        backend = make_backend("docker", default_image=IMAGE, runtime=runtime, extra_labels={SESSION_LABEL: SESSION})
    elif request.param == "kubernetes":
        api = request.getfixturevalue("k8s_api")  # the test API server (pods are Docker containers)
        backend = make_backend(
            "kubernetes",
            default_image=IMAGE,
            kubeconfig=api.kubeconfig,
            namespace=api.namespace,
            extra_labels={SESSION_LABEL: SESSION},
        )
    else:
        backend = make_backend("local")
    sandbox_id = "sbx_exec" + secrets.token_hex(4)
    await backend.create(sandbox_id, SandboxSpec(env={"FROM_SPEC": "spec"}), sandbox_labels(sandbox_id))
    yield backend, sandbox_id
    await backend.remove(sandbox_id)
    await backend.close()


def sandbox_labels(sandbox_id: str) -> dict[str, str]:
    return {**labels(SESSION_SERVER_ID, "tester", sandbox=sandbox_id), SESSION_LABEL: SESSION}


async def collect(stream: ExecStream) -> tuple[dict[str, bytes], int | None]:
    out: dict[str, bytes] = {}
    code = None
    async with asyncio.timeout(WAIT):
        async for event in stream:
            if event.kind == "exit":
                code = event.exit_code
            else:
                out[event.kind] = out.get(event.kind, b"") + event.data
    return out, code


async def test_output_by_stream_cwd_env_and_exit_code(box):
    backend, sid = box
    await backend.write_file(sid, "work/a.txt", b"x")
    stream = await backend.exec_stream(
        sid, ["sh", "-c", 'echo "$PWD $FROM_SPEC $MINE"; echo oops >&2; exit 3'], cwd="work", env={"MINE": "mine"}
    )
    assert stream.pid > 0
    out, code = await collect(stream)
    pwd, *envs = out["stdout"].decode().split()
    assert pwd.endswith("/work") and envs == ["spec", "mine"]  # (local: the host's path of the folder)
    assert stream.config.cwd == "/home/user/work"
    assert out["stderr"] == b"oops\n"
    assert code == 3


async def test_a_missing_working_directory_or_command_is_a_clear_error(box):
    backend, sid = box
    with pytest.raises(InvalidInput, match="does not exist"):
        await backend.exec_stream(sid, ["true"], cwd="no/such/dir")
    with pytest.raises(InvalidInput, match="sandbox's user"):
        await backend.exec_stream(sid, ["true"], user="root")
    try:
        stream = await backend.exec_stream(sid, ["no-such-command-xyz"])
    except InvalidInput as e:
        assert "not found" in e.message
    else:
        out, code = await collect(stream)
        assert code == 127 and b"not found" in out["stderr"]


async def test_stdin_written_then_closed(box):
    backend, sid = box
    stream = await backend.exec_stream(sid, ["cat"], stdin=True)
    reader = asyncio.ensure_future(collect(stream))
    await stream.write(b"hello ")
    await stream.write(b"world\n")
    await stream.close_stdin()
    out, code = await reader
    assert out["stdout"] == b"hello world\n" and code == 0


async def test_no_stdin_means_eof_and_writing_is_refused(box):
    backend, sid = box
    stream = await backend.exec_stream(sid, ["sh", "-c", "cat; echo done"])
    with pytest.raises(InvalidInput, match="without stdin"):
        await stream.write(b"x")
    out, code = await collect(stream)
    assert out["stdout"] == b"done\n" and code == 0


async def test_background_process_is_listed_found_by_pid_and_killed_with_its_children(box):
    backend, sid = box
    stream = await backend.exec_stream(sid, ["sh", "-c", "sleep 300 & echo started; wait"], tag="bg")
    first = stream.events()
    assert (await asyncio.wait_for(first.__anext__(), WAIT)).data == b"started\n"
    await first.aclose()  # the first reader leaves; the process runs on
    assert stream.pid in [s.pid for s in backend.exec_streams(sid)]
    again = backend.find_exec(sid, stream.pid)
    assert again is stream and again.config.tag == "bg"
    reader = asyncio.ensure_future(collect(again))
    await again.signal(9)
    _, code = await reader
    assert code == -9  # the group is gone (the sleep too, or `wait` would keep the stream open)
    assert stream.pid not in [s.pid for s in backend.exec_streams(sid)]
    with pytest.raises(InvalidInput):
        await stream.signal(31)
    with pytest.raises(NotFound):
        backend.find_exec(sid, 999_999)


async def test_sigterm_ends_a_process(box):
    backend, sid = box
    stream = await backend.exec_stream(sid, ["sleep", "300"])
    await stream.signal(15)
    _, code = await collect(stream)
    assert code == -15


async def test_terminal_input_size_and_resize(box):
    backend, sid = box
    stream = await backend.exec_stream(
        sid, ["sh", "-c", "stty size; read line; echo got:$line; stty size"], pty=(24, 80)
    )
    reader = asyncio.ensure_future(collect(stream))
    await asyncio.sleep(0.5)  # (not a timing assertion: `read` may start before or after)
    await stream.resize(30, 100)
    await stream.write(b"abc\r")
    out, code = await reader
    text = out["pty"].decode().replace("\r", "")
    assert "24 80\n" in text and "got:abc\n" in text and text.rstrip().endswith("30 100")
    assert code == 0 and "stdout" not in out


async def test_a_sandbox_runs_at_most_max_commands_at_once(box):
    backend, sid = box
    backend.max_commands = len(backend.exec_streams(sid)) + 2
    try:
        first = [await backend.exec_stream(sid, ["sleep", "300"]) for _ in range(2)]
        with pytest.raises(QuotaExceeded, match="commands already") as info:
            await backend.exec_stream(sid, ["sleep", "300"])
        assert info.value.status == 429
        await first[0].signal(9)
        await asyncio.wait_for(first[0].wait(), WAIT)
        assert (await backend.exec_stream(sid, ["true"])).pid > 0  # room again
    finally:
        backend.max_commands = 64
        for stream in backend.exec_streams(sid):
            await stream.signal(9)


async def test_commands_end_with_their_sandbox(box):
    backend, _ = box
    sid = "sbx_exec" + secrets.token_hex(4)
    await backend.create(sid, SandboxSpec(), sandbox_labels(sid))
    stream = await backend.exec_stream(sid, ["sleep", "300"])
    await backend.remove(sid)
    await asyncio.wait_for(stream.wait(), WAIT)
    assert not stream.running


async def test_a_backend_without_commands_says_so():
    class Bare(SandboxBackend):
        name = "bare"

    for method in ("create", "start_kernel", "kernel_exit_reason", "stop_kernel", "restart", "remove", "stats"):
        setattr(Bare, method, None)
    Bare.__abstractmethods__ = frozenset()
    backend = Bare()
    with pytest.raises(BackendUnavailable, match="not supported") as info:
        await backend.exec_stream("sbx", ["true"])
    assert info.value.status == 503
    with pytest.raises(BackendUnavailable):
        backend.exec_streams("sbx")
