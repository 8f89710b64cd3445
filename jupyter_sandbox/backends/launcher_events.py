"""The launcher's events as KernelRelay receives them (see programs/launcher.py): ``started`` or
``attached`` resolves ``ready``; ``exited`` resolves ``exited``; ``log`` answers a waiter; the end
of the link resolves whatever still waits. The sandbox writes these events: only the documented
shapes are kept, sizes capped."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from .sandbox_text import LogBudget, printable

LOG_CAP = 64 * 1024  # characters of kernel log accepted from the launcher (it keeps 64 KiB)
MAX_EVENT_BYTES = 1 << 20  # a launcher event (JSON); the largest real one holds LOG_CAP of log


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class LauncherEvents:
    """What the launcher said about its kernel, as futures on the relay's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, log: LogBudget):
        self._log = log
        self.ready: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.exited: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.pid: int | None = None
        self._loop = loop
        self._log_waiters: list[asyncio.Future[str]] = []

    def log_waiter(self) -> asyncio.Future[str]:
        """A future for the answer to the ``log`` op about to be sent (answers come in order)."""
        waiter: asyncio.Future[str] = self._loop.create_future()
        self._log_waiters.append(waiter)
        return waiter

    def forget(self, waiter: asyncio.Future[str]) -> None:
        if waiter in self._log_waiters:
            self._log_waiters.remove(waiter)

    def on_event(self, parts: list[bytes]) -> None:
        # the largest real event carries a 64 KiB log: bigger ones are not parsed on the event loop
        try:
            valid = len(parts) == 1 and isinstance(parts[0], bytes) and len(parts[0]) <= MAX_EVENT_BYTES
            event = json.loads(parts[0]) if valid else None
        except ValueError:
            event = None
        if not isinstance(event, dict):
            self._log(logging.WARNING, "unreadable launcher event ignored")
            return
        kind = event.get("event")
        if kind in ("started", "attached"):
            self.pid = _int_or_none(event.get("pid"))
            if not self.ready.done():
                self.ready.set_result({"event": kind, "pid": self.pid})
        elif kind == "exited":
            error = event.get("error")
            info = {
                "code": _int_or_none(event.get("code")),
                "signal": _int_or_none(event.get("signal")),
                "log": str(event.get("log") or "")[-LOG_CAP:],
                "error": printable(str(error), 2000) if error is not None else None,
                "reason": "exited",
            }
            if not self.ready.done():
                self.ready.set_result({"event": "exited"})
            if not self.exited.done():
                self.exited.set_result(info)
        elif kind == "pong":
            pass  # the relay noted that the sandbox is alive when the bytes came
        elif kind == "log":
            if self._log_waiters:
                waiter = self._log_waiters.pop(0)
                if not waiter.done():
                    waiter.set_result(str(event.get("log") or "")[-LOG_CAP:])
        else:
            self._log(logging.WARNING, "launcher says %s", parts[0][:500].decode(errors="replace"))

    def link_ended(self, reason: str, error: str | None, waiter_error: Exception) -> None:
        """The link ended (``reason``): what still waits gets its answer, or ``waiter_error``."""
        if not self.exited.done():
            self.exited.set_result({"code": None, "signal": None, "log": "", "error": error, "reason": reason})
        if not self.ready.done():
            self.ready.set_result({"event": "closed"})
        for waiter in self._log_waiters:
            if not waiter.done():
                waiter.set_exception(waiter_error)
        self._log_waiters.clear()
