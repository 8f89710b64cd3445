"""Text a sandbox sends, made safe for the host's log: escaped and capped (printable), and at most so
many lines per minute about one sandbox (LogBudget). Used by the kernel relay and the collector."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str, limit: int = 500) -> str:
    """Sandbox text for one log line: control characters and line breaks escaped, length capped."""
    text = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text[:limit])
    return text


class LogBudget:
    """At most ``lines`` log lines per ``period`` seconds about one sandbox stream, to ``logger``;
    the rest are counted and said in one line (a sandbox must not be able to fill the server's log)."""

    def __init__(self, name: str, logger: logging.Logger, lines: int = 20, period: float = 60.0):
        self.name, self.logger, self.lines, self.period = name, logger, lines, period
        self._start = -period
        self._count = self._held = 0

    def __call__(self, level: int, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._start >= self.period:
            if self._held:
                self.logger.warning("%s: %d more log lines about its sandbox were held back", self.name, self._held)
            self._start, self._count, self._held = now, 0, 0
        if self._count < self.lines:
            self._count += 1
            self.logger.log(level, f"%s: {msg}", self.name, *(printable(a) if isinstance(a, str) else a for a in args))
        else:
            self._held += 1
