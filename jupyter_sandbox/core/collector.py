"""The one place that turns a kernel's messages for one execute request into events.

``ExecutionCollector`` is pure: feed it iopub and shell messages (dicts as jupyter_client
returns them) and it yields wire events (the NDJSON lines of the streaming API) and
builds the final :class:`~jupyter_sandbox.models.Execution`. ``run_execute`` drives a real
kernel client with it: sends the request, enforces the timeout by interrupting the
kernel, and notices a kernel that died instead of waiting forever.
"""

from __future__ import annotations

import inspect
import logging
import queue
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..backends.kernel_relay import printable
from ..models import Execution, Result
from ..outputs import DEFAULT as DEFAULT_OUTPUTS
from ..outputs import OutputPolicy

log = logging.getLogger(__name__)

Event = dict[str, Any]
EventSink = Callable[[Event], Any]


def _ns() -> int:
    return time.time_ns()


class MalformedMessage(Exception):
    """The kernel sent a message that cannot be read (code in the sandbox can send anything)."""


# what reading or handling a hostile message raises (jupyter_client's Session and our own code)
_MALFORMED = (ValueError, KeyError, TypeError, IndexError, AttributeError)
IDLE_GRACE = 10.0  # seconds of iopub quiet after the reply that end an execution whose idle was lost
MAX_ERROR_TEXT = 64 * 1024  # characters of an error's value, and of its traceback, kept


def error_event(name: str, value: str, traceback: str = "") -> Event:
    return {"type": "error", "name": name, "value": value, "traceback": traceback}


NO_STDIN = (
    "input() or getpass() asked for input, but nobody can answer here: this code was sent without an "
    "input handler (use Sandbox.run_code(..., on_input=...), or %%sandbox in a notebook)"
)


def _user_frames(traceback: list[str]) -> str:
    """A traceback without ipykernel's own frames (how it raises is no news to the user)."""
    return "\n".join(
        frame for frame in traceback if "/ipykernel/" not in frame and "StdinNotImplementedError" not in frame
    )


class StdinBridge:
    """One execution's stdin: the kernel's input requests go out as ``input_request`` events,
    and an answer (``answer``) or a refusal (``refuse``: nobody can answer) comes back."""

    def __init__(self, client, interrupt: Callable[[], Any]):
        self.client = client
        self._interrupt = interrupt
        self.waiting = False
        self.refusal: str | None = None

    def answer(self, value: str) -> None:
        self.waiting = False
        self.client.input(value)

    def refuse(self, why: str) -> None:
        # The kernel's input() cannot be failed by a reply: interrupting it raises there, and
        # the collector reports the refusal instead of that KeyboardInterrupt.
        self.waiting = False
        self.refusal = why
        self._interrupt()


class ExecutionCollector:
    """Collects what one execute request produced, in order."""

    def __init__(
        self,
        msg_id: str,
        max_output: int | None = None,
        stdin: StdinBridge | None = None,
        outputs: OutputPolicy = DEFAULT_OUTPUTS,
    ):
        self.msg_id = msg_id
        self.outputs = outputs  # what the sandbox displays is made inert before it is an event
        self.stdin = stdin
        self.execution = Execution()
        self.idle = False
        self.replied = False
        self.max_output = max_output  # bytes of output (streams and results) kept and sent
        self.output_bytes = 0
        self.dropped_bytes = 0
        self._clear_pending = False
        self._display_index: dict[str, list[int]] = {}
        self._error_from_reply = False  # the error came from the reply: iopub's own may still follow

    @property
    def done(self) -> bool:
        return self.idle and self.replied

    def _apply(self, event: Event) -> Event:
        self.execution.apply_event(event)
        return event

    def _room(self, size: int) -> int:
        """How much of ``size`` more bytes of output may be kept; the rest is counted as dropped."""
        room = size if self.max_output is None else max(0, min(size, self.max_output - self.output_bytes))
        self.output_bytes += room
        self.dropped_bytes += size - room
        return room

    def _within_cap(self, size: int) -> bool:
        """Whether all of ``size`` more bytes fit (a display is kept whole or not at all)."""
        if self.max_output is None or self.output_bytes + size <= self.max_output:
            self.output_bytes += size
            return True
        self.dropped_bytes += size
        return False

    def truncation_events(self) -> list[Event]:
        """One stderr line saying how much output was dropped, if any was."""
        if not self.dropped_bytes:
            return []
        limit = f"{self.max_output} bytes per execution, " if self.max_output is not None else ""
        text = (
            f"[jupyter-sandbox: output truncated: {self.dropped_bytes} more bytes of output were not kept "
            f"(limits: {limit}8 MiB per output message; c.SandboxManager.max_output_size)]\n"
        )
        return [self._apply({"type": "stderr", "text": text, "timestamp": _ns()})]

    def _maybe_clear(self) -> list[Event]:
        if not self._clear_pending:
            return []
        self._clear_pending = False
        self._display_index.clear()
        return [self._apply({"type": "clear_output"})]

    def handle_iopub(self, msg: dict[str, Any]) -> list[Event]:
        """Events for one iopub message (none if it belongs to another request)."""
        try:
            return self._handle_iopub(msg)
        except _MALFORMED as e:
            raise MalformedMessage(f"{type(e).__name__}: {e}") from None

    def _handle_iopub(self, msg: dict[str, Any]) -> list[Event]:
        if msg.get("parent_header", {}).get("msg_id") != self.msg_id:
            return []
        kind = msg["header"]["msg_type"]
        content = msg.get("content", {})
        # what the launcher had to cut from an oversized message in the sandbox (backends/programs/launcher.py);
        # code in the sandbox can send this metadata too: a count, or nothing
        dropped = (msg.get("metadata") or {}).get("jupyter_sandbox_dropped")
        if isinstance(dropped, int) and dropped > 0:
            self.dropped_bytes += dropped
        if kind == "stream":
            stream = "stderr" if content.get("name") == "stderr" else "stdout"
            text = content.get("text", "")
            if not isinstance(text, str):
                raise TypeError(f"stream text is a {type(text).__name__}")
            text = text[: self._room(len(text))]  # a stream may be cut: its first part is kept
            if not text:
                return []
            return [*self._maybe_clear(), self._apply({"type": stream, "text": text, "timestamp": _ns()})]
        if kind in ("display_data", "execute_result"):
            if not self._within_cap(sum(len(str(v)) for v in content.get("data", {}).values())):
                return []
            events = self._maybe_clear()
            data = self.outputs.clean(content.get("data", {}))
            result = Result.from_bundle(data, is_main_result=kind == "execute_result")
            display_id = (content.get("transient") or {}).get("display_id")
            if display_id:
                self._display_index.setdefault(display_id, []).append(len(self.execution.results))
            events.append(self._apply({"type": "result", **result.to_dict()}))
            return events
        if kind == "update_display_data":
            display_id = (content.get("transient") or {}).get("display_id") or ""
            events = []
            indexes = self._display_index.get(display_id, [])
            if indexes and not self._within_cap(
                len(indexes) * sum(len(str(v)) for v in content.get("data", {}).values())
            ):
                return []
            data = self.outputs.clean(content.get("data", {}))
            for index in self._display_index.get(display_id, []):
                result = Result.from_bundle(data)
                result.is_main_result = self.execution.results[index].is_main_result
                events.append(self._apply({"type": "update_display", "index": index, **result.to_dict()}))
            return events
        if kind == "error":
            if self._error_from_reply:  # ipykernel may send the reply before the error it published first
                self._error_from_reply = False
                return []
            return [self._apply(self._error(content))]
        if kind == "clear_output":
            if content.get("wait"):
                self._clear_pending = True
                return []
            self._clear_pending = True
            return self._maybe_clear()
        if kind == "execute_input":
            count = content.get("execution_count")
            if count is not None and self.execution.execution_count is None:  # the reply may have come first
                return [self._apply({"type": "number_of_executions", "execution_count": count})]
            return []
        if kind == "status" and content.get("execution_state") == "idle":
            self.idle = True
        return []

    def handle_reply(self, msg: dict[str, Any]) -> list[Event]:
        """Events for the shell ``execute_reply`` (and failures it reports on its own)."""
        try:
            return self._handle_reply(msg)
        except _MALFORMED as e:
            raise MalformedMessage(f"{type(e).__name__}: {e}") from None

    def _handle_reply(self, msg: dict[str, Any]) -> list[Event]:
        if msg.get("parent_header", {}).get("msg_id") != self.msg_id:
            return []
        self.replied = True
        content = msg.get("content", {})
        status = content.get("status")
        events: list[Event] = []
        if content.get("execution_count") is not None and self.execution.execution_count is None:
            events.append(self._apply({"type": "number_of_executions", "execution_count": content["execution_count"]}))
        if status == "error" and self.execution.error is None:
            # The iopub error message was lost or never sent: the reply still says why.
            events.append(self._apply(self._error(content)))
            self._error_from_reply = True
        elif status == "aborted" and self.execution.error is None:
            events.append(self._apply(error_event("ExecutionAborted", "The kernel aborted this execution")))
        return events

    def _error(self, content: dict[str, Any]) -> Event:
        name, value, traceback = content.get("ename", "Error"), content.get("evalue", ""), content.get("traceback", [])
        name, value, traceback = str(name)[:200], str(value), [str(line) for line in traceback[:1000]]
        # an error is output too: bounded, and what is cut is said with the rest that was dropped
        if len(value) > MAX_ERROR_TEXT:
            self.dropped_bytes += len(value) - MAX_ERROR_TEXT
            value = value[:MAX_ERROR_TEXT]
        if name == "StdinNotImplementedError":  # input() in code sent without allow_stdin
            return error_event("InputNotAvailable", NO_STDIN, _user_frames(traceback))
        if name == "KeyboardInterrupt" and self.stdin is not None and self.stdin.refusal:
            return error_event("InputNotAvailable", self.stdin.refusal, _user_frames(traceback))
        text = "\n".join(traceback)
        if len(text) > MAX_ERROR_TEXT:
            self.dropped_bytes += len(text) - MAX_ERROR_TEXT
            text = text[-MAX_ERROR_TEXT:]  # its end says where and what
        return error_event(name, value, text)

    def handle_stdin(self, msg: dict[str, Any]) -> list[Event]:
        """The event for an ``input_request`` on the stdin channel."""
        try:
            if (
                msg.get("parent_header", {}).get("msg_id") != self.msg_id
                or msg["header"]["msg_type"] != "input_request"
            ):
                return []
        except _MALFORMED as e:
            raise MalformedMessage(f"{type(e).__name__}: {e}") from None
        content = msg.get("content", {})
        if self.stdin is not None:
            self.stdin.waiting = True
        return [
            {"type": "input_request", "prompt": content.get("prompt", ""), "password": bool(content.get("password"))}
        ]

    def fail(self, name: str, value: str) -> Event:
        """Record an error that did not come from the kernel (timeout, death)."""
        event = error_event(name, value)
        if self.execution.error is None:
            self._apply(event)
        return event


async def _emit(sink: EventSink | None, events: list[Event]) -> None:
    if sink is None:
        return
    for event in events:
        outcome = sink(event)
        if inspect.isawaitable(outcome):
            await outcome


async def _receive(get: Callable[..., Awaitable[dict[str, Any]]], timeout: float) -> dict[str, Any] | None:
    """The next message on a channel, None after ``timeout``; MalformedMessage if it cannot be read."""
    try:
        return await get(timeout=timeout)
    except queue.Empty:
        return None
    except _MALFORMED as e:
        raise MalformedMessage(f"{type(e).__name__}: {e}") from None


async def run_execute(
    client,
    code: str,
    *,
    on_event: EventSink | None = None,
    timeout: float | None = None,
    check_dead: Callable[[], Awaitable[str | None]] | None = None,
    interrupt: Callable[[], Awaitable[None]] | None = None,
    unresponsive: Callable[[], Awaitable[None]] | None = None,
    interrupt_grace: float = 5.0,
    poll: float = 0.2,
    max_output: int | None = None,
    stdin: StdinBridge | None = None,
    outputs: OutputPolicy = DEFAULT_OUTPUTS,
) -> Execution:
    """Execute ``code`` on an ``AsyncKernelClient`` and collect its Execution.

    ``on_event`` receives each wire event as it happens (sync or async callable),
    ending with ``end_of_execution``. On ``timeout`` the kernel is interrupted through
    ``interrupt`` and its state is kept; a kernel that ignores the interrupt for
    ``interrupt_grace`` seconds is handed to ``unresponsive`` (which restarts it).
    ``max_output`` caps the bytes of output kept and sent. ``check_dead`` is polled during silence and
    returns why the kernel died (or None while it lives). Without ``stdin``, ``input()`` in
    the code fails at once (saying nobody can answer); with it, each input request is an
    ``input_request`` event and the code waits for ``stdin.answer`` (or ``stdin.refuse``).
    ``outputs`` says what a displayed bundle may keep (outputs.py: nothing that runs in a page).
    """
    msg_id = client.execute(code, store_history=True, allow_stdin=stdin is not None, stop_on_error=False)
    collector = ExecutionCollector(msg_id, max_output, stdin, outputs)
    deadline = None if timeout is None else time.monotonic() + timeout
    timed_out_at: float | None = None
    last_liveness = last_iopub = time.monotonic()

    async def deliver(events: list[Event]) -> None:
        if timed_out_at is not None:
            # The KeyboardInterrupt we caused is replaced by a TimeoutError at the end.
            events = [e for e in events if e["type"] != "error"]
        await _emit(on_event, events)

    try:
        while not collector.done:
            got = False
            if collector.idle and not collector.replied:
                # All output is in; only the shell reply is missing: wait on that channel.
                reply = await _receive(client.get_shell_msg, poll)
                if reply is not None:
                    got = True
                    await deliver(collector.handle_reply(reply))
            else:
                msg = await _receive(client.get_iopub_msg, poll)
                if msg is not None:
                    got = True
                    last_iopub = time.monotonic()
                    await deliver(collector.handle_iopub(msg))
                elif collector.replied and time.monotonic() - last_iopub > IDLE_GRACE:
                    # A kernel flooding iopub loses messages (its PUB socket drops them), its
                    # idle among them: once replied and quiet, the execution is over.
                    log.info("execution %s: replied, and no idle status after %g s of quiet", msg_id, IDLE_GRACE)
                    collector.idle = True
                # An input request waits on the stdin channel while iopub is silent.
                while stdin is not None:
                    request = await _receive(client.get_stdin_msg, 0)
                    if request is None:
                        break
                    got = True
                    # The kernel flushed its output before asking: deliver that first, so a prompt
                    # follows what was printed before it.
                    while (msg := await _receive(client.get_iopub_msg, 0)) is not None:
                        await deliver(collector.handle_iopub(msg))
                    await deliver(collector.handle_stdin(request))
                # The reply can come before idle: take it without blocking when it is there.
                while not collector.replied:
                    reply = await _receive(client.get_shell_msg, 0)
                    if reply is None:
                        break
                    await deliver(collector.handle_reply(reply))
            if collector.done:
                break
            now = time.monotonic()
            if deadline is not None and timed_out_at is None and now >= deadline:
                timed_out_at = now
                log.info("execution %s timed out after %ss; interrupting the kernel", msg_id, timeout)
                if interrupt is not None:
                    await interrupt()
            if timed_out_at is not None and now - timed_out_at > interrupt_grace:
                what = "its kernel was restarted (variables are lost)" if unresponsive else "it is still busy"
                await _emit(
                    on_event,
                    [
                        collector.fail(
                            "TimeoutError",
                            f"Execution timed out after {timeout:g} s and the kernel did not respond to the interrupt; {what}",
                        )
                    ],
                )
                if unresponsive is not None:
                    await unresponsive()
                break
            if check_dead is not None and not got and now - last_liveness >= 0.5:
                last_liveness = now
                reason = await check_dead()
                if reason:
                    await _emit(on_event, [collector.fail("KernelDied", reason)])
                    break
    except MalformedMessage as e:
        # Code in the sandbox holds the kernel's key and can send anything: this execution ends
        # here, with a reason, and the context goes on (the kernel's later messages are ignored).
        log.warning("execution %s: the kernel sent a malformed message: %s", msg_id, printable(str(e), 300))
        collector.execution.error = None
        timed_out_at = None
        await _emit(
            on_event,
            [
                collector.fail(
                    "MalformedMessage",
                    f"The kernel sent a message the server cannot read ({printable(str(e), 300)}); this execution "
                    "was ended. Code in the sandbox may have written to the kernel's sockets.",
                )
            ],
        )

    if timed_out_at is not None and collector.done:
        # The interrupt shows up as KeyboardInterrupt; say what really happened.
        collector.execution.error = None
        await _emit(
            on_event,
            [
                collector.fail(
                    "TimeoutError",
                    f"Execution timed out after {timeout:g} s; the kernel was interrupted and its state is kept",
                )
            ],
        )
    await _emit(on_event, [*collector.truncation_events(), {"type": "end_of_execution"}])
    return collector.execution
