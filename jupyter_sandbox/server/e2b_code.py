"""What E2B's code interpreter gives that this server's own API does not: its results' shape.

The routes E2B's SDK calls (``server/e2b.py``, and the data plane's code-interpreter port) send
the same NDJSON events as ``sandbox/api``, reshaped here as E2B's sandbox server gives them: a
result's plain text without the quotes of a string's repr (``'bar'`` is ``bar``), its DataFrame
columns as ``data`` and a figure's data as ``chart`` (models.Result already names them so).
"""

from __future__ import annotations

from typing import Any

_QUOTES = ("'", '"')


def e2b_text(text: str) -> str:
    """A result's plain text as E2B gives it: a string's repr loses its enclosing quotes."""
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] == text[0]:
        return text[1:-1]
    return text


def e2b_event(event: dict[str, Any]) -> dict[str, Any]:
    """One event of an execution as E2B's SDK expects it (a copy when it changes)."""
    if event.get("type") in ("result", "update_display") and isinstance(event.get("text"), str):
        return {**event, "text": e2b_text(event["text"])}
    return event
