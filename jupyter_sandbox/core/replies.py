"""Waiting for the kernel's answer to one request: the one place that matches replies by msg_id."""

from __future__ import annotations

import queue
import time
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[..., Awaitable[dict[str, Any]]]


async def reply_to(receive: Receive, msg_id: str, timeout: float) -> dict[str, Any] | None:
    """The message answering ``msg_id`` on one channel (``receive`` is e.g. a kernel client's
    ``get_shell_msg`` or ``get_stdin_msg``), or None when none came within ``timeout`` seconds.
    Other messages on that channel are answers to earlier requests nobody waits for any more:
    they are dropped."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            msg = await receive(timeout=max(left, 0.01))
        except queue.Empty:
            return None
        if msg.get("parent_header", {}).get("msg_id") == msg_id:
            return msg
