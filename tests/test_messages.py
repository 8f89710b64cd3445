"""The collector over a faked kernel message stream (unit tests; real kernels in test_contract)."""

import asyncio
import queue

import pytest

from jupyter_sandbox.core.collector import ExecutionCollector
from jupyter_sandbox.core.execute_request import run_execute

MSG = "req-1"


def iopub(kind, content, parent=MSG):
    return {"header": {"msg_type": kind}, "parent_header": {"msg_id": parent}, "content": content}


def reply(status="ok", parent=MSG, **content):
    return {
        "header": {"msg_type": "execute_reply"},
        "parent_header": {"msg_id": parent},
        "content": {"status": status, **content},
    }


def feed(messages):
    c = ExecutionCollector(MSG)
    events = []
    for m in messages:
        handler = c.handle_reply if m["header"]["msg_type"] == "execute_reply" else c.handle_iopub
        events += handler(m)
    return c, events


def test_orders_streams_results_and_finishes_on_idle_plus_reply():
    c, events = feed(
        [
            iopub("status", {"execution_state": "busy"}),
            iopub("execute_input", {"code": "x", "execution_count": 4}),
            iopub("stream", {"name": "stdout", "text": "hello\n"}),
            iopub("display_data", {"data": {"text/plain": "df", "text/html": "<b>t</b>"}, "metadata": {}}),
            iopub("stream", {"name": "stderr", "text": "warn\n"}),
            iopub("execute_result", {"data": {"text/plain": "2"}, "execution_count": 4}),
            iopub("status", {"execution_state": "idle"}),
        ]
    )
    assert not c.done  # idle alone is not the end: the reply is still to come
    events += c.handle_reply(reply())
    assert c.done
    assert [e["type"] for e in events] == ["number_of_executions", "stdout", "result", "stderr", "result"]
    ex = c.execution
    assert ex.logs.stdout == ["hello\n"] and ex.logs.stderr == ["warn\n"]
    assert ex.results[0].html == "<b>t</b>" and not ex.results[0].is_main_result
    assert ex.text == "2" and ex.execution_count == 4


def test_ignores_other_requests_messages():
    c, events = feed([iopub("stream", {"name": "stdout", "text": "other"}, parent="req-2")])
    assert events == [] and c.execution.logs.stdout == []


def test_error_message_and_reply_error_without_iopub():
    c, _ = feed(
        [
            iopub(
                "error",
                {
                    "ename": "ZeroDivisionError",
                    "evalue": "division by zero",
                    "traceback": ["Traceback", "ZeroDivisionError: division by zero"],
                },
            )
        ]
    )
    assert c.execution.error.name == "ZeroDivisionError"
    assert "Traceback" in c.execution.error.traceback
    # A reply that reports an error the iopub channel never showed still yields one.
    c2, events = feed([reply("error", ename="RuntimeError", evalue="boom", traceback=["tb"])])
    assert c2.execution.error.name == "RuntimeError" and events[-1]["type"] == "error"


def test_aborted_reply_is_an_error():
    c, _ = feed([reply("aborted")])
    assert c.execution.error.name == "ExecutionAborted"


def test_update_display_data_replaces_the_result_with_that_display_id():
    c, events = feed(
        [
            iopub("display_data", {"data": {"text/plain": "0%"}, "transient": {"display_id": "p"}}),
            iopub("update_display_data", {"data": {"text/plain": "100%"}, "transient": {"display_id": "p"}}),
            iopub("update_display_data", {"data": {"text/plain": "?"}, "transient": {"display_id": "unknown"}}),
        ]
    )
    assert [r.text for r in c.execution.results] == ["100%"]
    assert events[-1] == {"type": "update_display", "index": 0, "text": "100%", "is_main_result": False}


def test_clear_output_now_and_with_wait():
    c, _ = feed(
        [
            iopub("stream", {"name": "stdout", "text": "a"}),
            iopub("clear_output", {"wait": False}),
            iopub("stream", {"name": "stdout", "text": "b"}),
            iopub("clear_output", {"wait": True}),
        ]
    )
    assert c.execution.logs.stdout == ["b"]  # wait=True clears only when new output comes
    c.handle_iopub(iopub("stream", {"name": "stdout", "text": "c"}))
    assert c.execution.logs.stdout == ["c"]


class FakeClient:
    """Replays scripted messages; an empty script is a kernel that went silent."""

    def __init__(self, iopub_msgs, shell_msgs):
        self.iopub, self.shell = list(iopub_msgs), list(shell_msgs)
        self.sent = []

    def execute(self, code, **kwargs):
        self.sent.append((code, kwargs))
        return MSG

    async def get_iopub_msg(self, timeout=None):
        if self.iopub:
            return self.iopub.pop(0)
        raise queue.Empty

    async def get_shell_msg(self, timeout=None):
        if self.shell and not self.iopub:
            return self.shell.pop(0)
        raise queue.Empty


async def test_run_execute_never_offers_stdin_and_ends_with_end_of_execution():
    client = FakeClient(
        [iopub("stream", {"name": "stdout", "text": "x"}), iopub("status", {"execution_state": "idle"})], [reply()]
    )
    events = []
    ex = await run_execute(client, "print('x')", on_event=events.append)
    assert client.sent[0][1]["allow_stdin"] is False
    assert events[-1] == {"type": "end_of_execution"}
    assert ex.logs.stdout == ["x"]


async def test_run_execute_reports_a_dead_kernel_instead_of_hanging():
    client = FakeClient([iopub("status", {"execution_state": "busy"})], [])
    calls = []

    async def check_dead():
        calls.append(1)
        return "The kernel died (exit code 137)" if len(calls) > 1 else None

    events = []
    ex = await run_execute(client, "boom", on_event=events.append, check_dead=check_dead, poll=0.01)
    assert ex.error.name == "KernelDied" and "137" in ex.error.value
    assert [e["type"] for e in events][-2:] == ["error", "end_of_execution"]


async def test_run_execute_timeout_interrupts_then_reports_timeout():
    client = FakeClient([], [])
    interrupted = []

    async def interrupt():
        interrupted.append(1)
        # The kernel answers the interrupt: KeyboardInterrupt, idle, reply.
        client.iopub += [
            iopub("error", {"ename": "KeyboardInterrupt", "evalue": "", "traceback": []}),
            iopub("status", {"execution_state": "idle"}),
        ]
        client.shell.append(reply("error", ename="KeyboardInterrupt", evalue="", traceback=[]))

    events = []
    ex = await run_execute(
        client, "while True: pass", on_event=events.append, timeout=0.2, interrupt=interrupt, poll=0.01
    )
    assert interrupted == [1]
    assert ex.error.name == "TimeoutError" and "state is kept" in ex.error.value
    # The KeyboardInterrupt we caused never reaches the stream.
    assert [e.get("name") for e in events if e["type"] == "error"] == ["TimeoutError"]


@pytest.mark.parametrize("grace", [0.05])
async def test_run_execute_gives_up_when_interrupt_is_ignored(grace):
    client = FakeClient([], [])

    async def interrupt():
        pass

    ex = await run_execute(client, "x", timeout=0.05, interrupt=interrupt, interrupt_grace=grace, poll=0.01)
    assert ex.error.name == "TimeoutError" and "did not respond" in ex.error.value


def test_dropped_bytes_metadata_from_the_sandbox_is_a_count_or_nothing():
    """The launcher reports what it cut in ``jupyter_sandbox_dropped``; code in the sandbox can send
    that metadata too, and a bad value must neither break the execution nor lower the count."""

    def with_dropped(value):
        message = iopub("stream", {"name": "stdout", "text": "x\n"})
        message["metadata"] = {"jupyter_sandbox_dropped": value}
        return message

    c, events = feed([with_dropped(100), with_dropped("lots"), with_dropped(-50), with_dropped([1]), with_dropped(1.5)])
    assert c.dropped_bytes == 100
    assert [e["text"] for e in events if e["type"] == "stdout"] == ["x\n"] * 5


def test_displayed_bundles_are_made_inert():
    # what the sandbox displays is untrusted (jupyter_sandbox/outputs.py): a REST execution's events carry the
    # cleaned bundle, and an updated display too
    _, events = feed(
        [
            iopub(
                "display_data",
                {"data": {"application/javascript": "alert(1)", "text/plain": "js"}, "transient": {"display_id": "d"}},
            ),
            iopub(
                "update_display_data",
                {"data": {"text/html": "<img src=x onerror=alert(1)>"}, "transient": {"display_id": "d"}},
            ),
        ]
    )
    result, update = [e for e in events if e["type"] in ("result", "update_display")]
    assert "javascript" not in result and "extra" not in result
    assert result["text"].startswith("[jupyter-sandbox removed active content") and result["text"].endswith("\njs")
    assert "onerror" not in update["html"] and "jupyter-sandbox removed" in update["html"]


class SignedGarbage(FakeClient):
    """jupyter_client raises from get_iopub_msg for a message it cannot read (a bad signature)."""

    async def get_iopub_msg(self, timeout=None):
        if self.iopub and self.iopub[0] == "bad":
            self.iopub.pop(0)
            raise ValueError("Invalid Signature: b'00000000'")
        return await super().get_iopub_msg(timeout)


@pytest.mark.parametrize(
    "message",
    [
        "bad",
        iopub("stream", {"name": "stdout", "text": ["not", "text"]}),
        {"header": [], "parent_header": {"msg_id": MSG}, "content": 1},
    ],
    ids=["unreadable", "stream text not a str", "header not a dict"],
)
async def test_a_malformed_message_ends_the_execution_with_an_error(message):
    client = SignedGarbage([iopub("stream", {"name": "stdout", "text": "x"}), message], [])
    events = []
    ex = await run_execute(client, "x", on_event=events.append, poll=0.01)
    assert ex.error.name == "MalformedMessage", ex.error
    assert [e["type"] for e in events] == ["stdout", "error", "end_of_execution"]


def test_errors_are_bounded_and_what_was_cut_is_counted():
    huge = "E" * 1_000_000
    c, events = feed([iopub("error", {"ename": "ValueError", "evalue": huge, "traceback": [huge, "end"]})])
    (error,) = events
    assert len(error["value"]) == 64 * 1024 and error["traceback"].endswith("end")
    assert len(error["traceback"]) == 64 * 1024
    assert c.dropped_bytes == 2 * (1_000_000 - 64 * 1024) + len("\nend")


async def test_an_execution_whose_idle_was_lost_ends_after_its_reply_and_some_quiet(monkeypatch):
    # a flooded kernel's PUB socket drops messages, its idle status among them
    monkeypatch.setattr("jupyter_sandbox.core.execute_request.IDLE_GRACE", 0.3)
    client = FakeClient([iopub("stream", {"name": "stdout", "text": "x"})], [reply()])
    events = []
    ex = await asyncio.wait_for(run_execute(client, "x", on_event=events.append, poll=0.05), 10)
    assert ex.error is None and ex.logs.stdout == ["x"]
    assert events[-1] == {"type": "end_of_execution"}
