"""The cell a kernel was running when it died: it says why, not only the next cell.

The relay notes each ``execute_request`` a client sends the kernel through its shell socket (the
request's header and the client's routing identities) until the kernel's ``execute_reply`` to it
comes back. When the kernel dies with requests unanswered (killed out of memory, say), the first
of them is the cell that was running (a kernel runs them in order): :meth:`RunningCells.death_messages`
makes an ``error`` and a ``status: idle`` on iopub for it and an ``execute_reply`` with status
"error" to its client, signed with the kernel's key, so a notebook shows why in that cell and
its prompt stops waiting, before the server restarts the kernel.
"""

from __future__ import annotations

import json
from typing import Any

import zmq
from jupyter_client.session import Session

from .programs.frames import DELIMITER, IOPUB, SHELL

MAX_PENDING = 1000  # unanswered requests remembered (a client may queue many cells)
RED, RESET = "\x1b[0;31m", "\x1b[0m"


def _header(frames: list[Any], index: int) -> dict[str, Any] | None:
    """Frame ``index`` after the delimiter (0: header, 1: parent header), parsed; None if not a message."""
    parts = [bytes(f) for f in frames]
    try:
        at = parts.index(DELIMITER)
        value = json.loads(parts[at + 2 + index])
    except (ValueError, IndexError):
        return None
    return value if isinstance(value, dict) else None


class RunningCells:
    """A kernel's unanswered execute requests, oldest first, and the messages that end the first."""

    def __init__(self, key: str, sockets: dict[int, zmq.Socket[bytes]]):
        self._session = Session(key=key.encode(), signature_scheme="hmac-sha256", username="kernel")
        self._sockets = sockets  # the relay's host sockets, by channel (bound and closed by it)
        self._pending: dict[str, tuple[list[bytes], dict[str, Any]]] = {}  # msg_id -> (identities, header)

    def sent(self, kind: int, frames: list[Any]) -> None:
        """A client's message on its way to the kernel: an execute_request on shell is noted."""
        if kind != SHELL:
            return
        header = _header(frames, 0)
        if header is None or header.get("msg_type") != "execute_request" or len(self._pending) >= MAX_PENDING:
            return
        parts = [bytes(f) for f in frames]
        self._pending[str(header.get("msg_id"))] = (parts[: parts.index(DELIMITER)], header)

    def replied(self, kind: int, frames: list[Any]) -> None:
        """The kernel's message on its way to a client: an execute_reply on shell ends its request."""
        header = _header(frames, 0) if kind == SHELL else None
        if header is not None and header.get("msg_type") == "execute_reply":
            parent = _header(frames, 1) or {}
            self._pending.pop(str(parent.get("msg_id")), None)

    def clear(self) -> None:
        """The kernel is stopped on purpose: its cells are not told it died."""
        self._pending.clear()

    def tell(self, text: str) -> bool:
        """The kernel died: its running cell shows ``text``. Whether a cell was running."""
        messages = self.death_messages(text)
        for kind, frames in messages:
            if kind in self._sockets:  # ROUTER drops a reply to a client that is gone
                self._sockets[kind].send_multipart(frames, zmq.NOBLOCK)
        return bool(messages)

    def death_messages(self, text: str) -> list[tuple[int, list[bytes]]]:
        """(channel, frames) that tell the running cell ``text`` (none when no cell was running)."""
        if not self._pending:
            return []
        identities, request = next(iter(self._pending.values()))
        self._pending.clear()  # the kernel that would answer the others is gone
        error = {"ename": "KernelDied", "evalue": text, "traceback": [f"{RED}KernelDied{RESET}: {text}"]}
        session = self._session

        def framed(msg_type: str, content: dict[str, Any], ident: list[bytes]) -> list[bytes]:
            return list(session.serialize(session.msg(msg_type, content, parent=request), ident=ident))

        topic = [b"kernel.error"]
        return [
            (IOPUB, framed("error", error, topic)),
            (IOPUB, framed("status", {"execution_state": "idle"}, topic)),
            (SHELL, framed("execute_reply", {"status": "error", "execution_count": None, **error}, identities)),
        ]
