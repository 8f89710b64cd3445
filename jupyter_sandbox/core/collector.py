"""The one place that turns a kernel's messages for one execute request into events.

``ExecutionCollector`` is pure: feed it iopub and shell messages (dicts as jupyter_client
returns them) and it yields wire events (the NDJSON lines of the streaming API) and
builds the final :class:`~jupyter_sandbox.models.Execution`. core/execute_request.py's
``run_execute`` drives a real kernel client with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..backends.programs.frames import OUTPUT_CAP, STREAM_MOST
from ..models import Execution, Result
from ..outputs import DEFAULT as DEFAULT_OUTPUTS
from ..outputs import OutputPolicy
from .stdin import StdinBridge, input_error

log = logging.getLogger(__name__)

Event = dict[str, Any]
EventSink = Callable[[Event], Any]


def _ns() -> int:
    return time.time_ns()


class MalformedMessage(Exception):
    """The kernel sent a message that cannot be read (code in the sandbox can send anything)."""


# what reading or handling a hostile message raises (jupyter_client's Session and our own code)
MALFORMED_ERRORS = (ValueError, KeyError, TypeError, IndexError, AttributeError)
MAX_ERROR_TEXT = 64 * 1024  # characters of an error's value, and of its traceback, kept


def error_event(name: str, value: str, traceback: str = "") -> Event:
    return {"type": "error", "name": name, "value": value, "traceback": traceback}


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
            f"(limits: {limit}{OUTPUT_CAP >> 20} MiB per display, {STREAM_MOST >> 20} MiB per single write to "
            "stdout or stderr; c.SandboxManager.max_output_size)]\n"
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
        except MALFORMED_ERRORS as e:
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
        except MALFORMED_ERRORS as e:
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
        input_failure = input_error(name, traceback, self.stdin)
        if input_failure is not None:
            return input_failure
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
        except MALFORMED_ERRORS as e:
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
