"""The parts of core/ that SandboxManager is made of, without a backend: the in-kernel programs
it runs (programs/env_vars.py, programs/warm_up.py), the registry, one sandbox's contexts and
input, the kernel plumbing's silent run, and the configuration names that must stay valid."""

from __future__ import annotations

import asyncio
import os
import queue
from typing import Any

import pytest
from traitlets.config import Config

from jupyter_sandbox.backends.local import LocalBackend
from jupyter_sandbox.core.kernel_code import program_code, restore_env, swap_env
from jupyter_sandbox.core.kernels import KernelPlumbing, hmac_key_of
from jupyter_sandbox.core.manager import SandboxManager
from jupyter_sandbox.core.registry import SandboxRegistry
from jupyter_sandbox.core.sandbox import Context, Sandbox
from jupyter_sandbox.core.state import SandboxRecords
from jupyter_sandbox.core.stdin import NO_STDIN, StdinBridge, input_error
from jupyter_sandbox.errors import Conflict, InvalidInput, KernelDied, NotFound
from jupyter_sandbox.models import ContextModel, SandboxModel, SandboxSpec

VARS = ("JSBX_TEST_SET", "JSBX_TEST_REPLACED")


@pytest.fixture
def environ():
    saved = {name: os.environ.get(name) for name in VARS}
    os.environ.pop("JSBX_TEST_SET", None)
    os.environ["JSBX_TEST_REPLACED"] = "before"
    yield os.environ
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def test_env_vars_program_sets_for_one_execution_then_puts_back_and_leaves_no_name(environ):
    namespace: dict[str, Any] = {"x": 1}
    exec(swap_env({"JSBX_TEST_SET": "a", "JSBX_TEST_REPLACED": "b"}), namespace)
    assert environ["JSBX_TEST_SET"] == "a" and environ["JSBX_TEST_REPLACED"] == "b"
    assert {n for n in namespace if n.startswith("_jsbx_")} == {"_jsbx_env"}
    exec(restore_env(), namespace)
    assert "JSBX_TEST_SET" not in environ and environ["JSBX_TEST_REPLACED"] == "before"
    assert {n for n in namespace if n != "__builtins__"} == {"x"}


def test_env_vars_program_quotes_values_as_data(environ):
    value = "'); import sys; sys.exit(1) #\n\"\\"
    namespace: dict[str, Any] = {}
    exec(swap_env({"JSBX_TEST_SET": value}), namespace)
    assert environ["JSBX_TEST_SET"] == value
    exec(restore_env(), namespace)
    assert "JSBX_TEST_SET" not in environ


def test_warm_up_program_formats_once_and_leaves_no_name():
    formatted = []

    class Shell:
        class display_formatter:
            @staticmethod
            def format(value):
                formatted.append(value)
                return {}, {}

    namespace: dict[str, Any] = {"get_ipython": Shell}
    exec(program_code("warm_up"), namespace)
    assert formatted == [0]
    assert {n for n in namespace if n != "__builtins__"} == {"get_ipython"}


class FakeClient:
    """An AsyncKernelClient's surface as the parts use it; shell replies come from ``replies``."""

    def __init__(self) -> None:
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.inputs: list[str] = []
        self.stopped = False
        self.sent: list[str] = []

    def execute(self, code: str, **_: Any) -> str:
        self.sent.append(code)
        return f"msg-{len(self.sent)}"

    async def get_shell_msg(self, timeout: float = 1.0) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self.replies.get(), timeout)
        except asyncio.TimeoutError:
            raise queue.Empty from None

    def input(self, string: str) -> None:
        self.inputs.append(string)

    def stop_channels(self) -> None:
        self.stopped = True


def sandbox_of(owner: str, name: str, sandbox_id: str) -> Sandbox:
    model = SandboxModel(
        id=sandbox_id,
        name=name,
        owner=owner,
        status="running",
        backend="local",
        spec=SandboxSpec(),
        created=1.0,
        last_activity=1.0,
        isolation="process",
    )
    return Sandbox(model=model)


def context_of(context_id: str, client: FakeClient | None = None) -> Context:
    return Context(model=ContextModel(id=context_id), kernel_id="k1", client=client or FakeClient(), hmac_key="s3cret")


def test_registry_finds_by_id_or_name_for_the_owner_only():
    registry = SandboxRegistry()
    mine, theirs = sandbox_of("alice", "box", "sbx_1"), sandbox_of("bob", "box", "sbx_2")
    registry.add(mine)
    registry.add(theirs)
    assert registry.get("alice", "sbx_1") is mine and registry.get("alice", "box") is mine
    assert registry.get("bob", "box") is theirs
    with pytest.raises(NotFound):
        registry.get("alice", "sbx_2")
    assert registry.use("alice", "box").model.last_activity > 1.0
    assert [m.id for m in registry.models("bob")] == ["sbx_2"]
    assert registry.pop(theirs) and not registry.pop(theirs) and not registry.holds(theirs)


def test_registry_tells_listeners_and_saves_records_with_the_kernels_hmac_key(tmp_path):
    registry = SandboxRegistry()
    registry.records = SandboxRecords(str(tmp_path))
    heard: list[tuple[str, dict[str, Any]]] = []
    registry.listeners.append(lambda owner, event: heard.append((owner, event)))
    sandbox = sandbox_of("alice", "box", "sbx_1")
    sandbox.add_context(context_of("ctx_1"))
    registry.save(sandbox)
    assert registry.records.load("sbx_1") is None, "a sandbox not registered has no record"
    registry.add(sandbox)
    registry.save(sandbox)
    record = registry.records.load("sbx_1")
    assert record is not None and record["contexts"][0]["key"] == "s3cret"
    registry.emit("status", sandbox)
    assert heard == [
        ("alice", {"action": "status", "sandbox_id": "sbx_1", "name": "box", "status": "running", "executing": 0})
    ]
    registry.forget("sbx_1")
    assert registry.records.load("sbx_1") is None


def test_a_sandbox_finds_drops_and_answers_through_its_contexts():
    sandbox = sandbox_of("alice", "box", "sbx_1")
    first, second = context_of("ctx_1"), context_of("ctx_2")
    sandbox.add_context(first)
    sandbox.add_context(second)
    sandbox.default_context = "ctx_1"
    assert sandbox.context(None) is first and sandbox.context("ctx_2") is second
    with pytest.raises(NotFound):
        sandbox.context("ctx_9")
    with pytest.raises(Conflict):
        sandbox.answer_input("ctx_2", "yes", None)  # nothing waits
    second.stdin = StdinBridge(second.client, lambda: None)
    second.stdin.waiting = True
    sandbox.answer_input("ctx_2", "yes", None)
    assert second.client.inputs == ["yes"]
    sandbox.drop_context(first)
    assert sandbox.default_context == "ctx_2" and [c.id for c in sandbox.model.contexts] == ["ctx_2"]
    sandbox.close_contexts()
    assert second.closed and second.client.stopped


def test_a_notebook_kernels_sandbox_refuses_what_would_pull_its_kernel_away():
    sandbox = sandbox_of("alice", "box", "sbx_1")
    sandbox.refuse_if_notebook_kernel("run code")
    sandbox.model.kind = "kernel"
    with pytest.raises(Conflict, match="run code from the notebook"):
        sandbox.refuse_if_notebook_kernel("run code")


def test_input_nobody_can_answer_is_said_plainly():
    frames = ["Cell In[1]", "File /usr/lib/python3/site-packages/ipykernel/kernelbase.py"]
    event = input_error("StdinNotImplementedError", frames, None)
    assert event == {"type": "error", "name": "InputNotAvailable", "value": NO_STDIN, "traceback": "Cell In[1]"}
    bridge = StdinBridge(FakeClient(), lambda: None)
    assert input_error("KeyboardInterrupt", frames, bridge) is None, "a real interrupt stays one"
    bridge.refuse("the user closed the prompt")
    assert input_error("KeyboardInterrupt", frames, bridge)["value"] == "the user closed the prompt"
    assert input_error("ValueError", frames, bridge) is None


async def test_a_silent_run_waits_for_its_reply_and_fails_without_one(monkeypatch):
    client = FakeClient()
    context = context_of("ctx_1", client)
    await client.replies.put({"parent_header": {"msg_id": "earlier"}})
    await client.replies.put({"parent_header": {"msg_id": "msg-1"}})
    await KernelPlumbing.run_silently(context, "x = 1")
    assert client.sent == ["x = 1"] and client.replies.empty()
    monkeypatch.setattr("jupyter_sandbox.core.kernels.SILENT_REPLY_TIMEOUT", 0.05)
    with pytest.raises(KernelDied):
        await KernelPlumbing.run_silently(context, "x = 2")


def test_hmac_key_of_connection_info_is_text():
    assert hmac_key_of({"key": b"abc"}) == "abc" and hmac_key_of({"key": "abc"}) == "abc" and hmac_key_of({}) == ""


def test_config_names_stay_those_of_sandbox_manager(tmp_path):
    # the spec policy's traits are listed as SandboxManager's in --help-all and generated configs
    assert "--SandboxManager.max_memory=" in SandboxManager.class_get_help()
    assert "c.SandboxManager.allowed_images = " in SandboxManager.class_config_section([SandboxManager])
    config = Config()
    config.SandboxManager.max_memory = "3G"
    config.SandboxManager.max_output_size = 1234
    config.SandboxManager.adopt_timeout = 7.0
    config.SandboxManager.pool_size = 2
    config.SandboxManager.kernel_ready_timeout = 9.0
    manager = SandboxManager(backend=LocalBackend(), config=config)
    assert (manager.max_memory, manager.max_output_size, manager.adopt_timeout) == ("3G", 1234, 7.0)
    assert manager.pool.size == 2 and manager.kernels.ready_timeout() == 9.0
    manager.kernel_ready_timeout = 3.0  # read on each start
    assert manager.kernels.ready_timeout() == 3.0
    assert manager.resolve_spec({"memory": "3G"}).memory == 3 * 1024**3
    with pytest.raises(InvalidInput):
        manager.resolve_spec({"memory": "4G"})
    with pytest.raises(InvalidInput, match="either value"):
        manager.answer_input("alice", "no such sandbox", "ctx_1", "yes", "no")
    manager.records = SandboxRecords(str(tmp_path))
    assert manager.registry.records is manager.records


async def test_culling_spares_a_sandbox_given_code_while_another_is_removed():
    """cull_idle removes one sandbox at a time, each removal awaiting the backend: a sandbox that
    was idle when the round began but was given code meanwhile (its execution counted, even
    before it holds its context's lock) is not culled."""
    manager = SandboxManager(backend=LocalBackend(), cull_idle_timeout=60, pool_size=0, reap_on_start=False)
    try:
        first, second = await manager.create("alice"), await manager.create("alice")
        for model in (first, second):
            manager.registry.sandboxes[model.id].model.last_activity -= 120  # idle for two minutes
        removing, given_code = asyncio.Event(), asyncio.Event()
        real_remove = manager.backend.remove

        async def slow_remove(sandbox_id: str) -> None:
            removing.set()
            await given_code.wait()  # the other one gets code while this removal is under way
            await real_remove(sandbox_id)

        manager.backend.remove = slow_remove  # type: ignore[method-assign]
        cull = asyncio.ensure_future(manager.cull_idle())
        await asyncio.wait_for(removing.wait(), 30)
        # the one being removed has left the registry; which one goes first is the registry's order
        (going,) = {first.id, second.id} - {s.model.id for s in manager.registry.all()}
        staying = second.id if going == first.id else first.id
        execution = asyncio.ensure_future(manager.execute("alice", staying, "import time; time.sleep(2); 'ran'"))
        await asyncio.sleep(0)  # the execution is counted at once (it is queued)
        assert manager.registry.sandboxes[staying].busy
        given_code.set()
        assert await asyncio.wait_for(cull, 60) == [going]
        assert staying in manager.registry
        assert (await asyncio.wait_for(execution, 60)).results[0].text == "'ran'"
    finally:
        await manager.shutdown()
