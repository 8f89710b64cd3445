"""One execution's stdin: the bridge between the kernel's input requests and whoever answers
them, and what an input() nobody can answer looks like to the user."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

NO_STDIN = (
    "input() or getpass() asked for input, but nobody can answer here: this code was sent without an "
    "input handler (use Sandbox.run_code(..., on_input=...), or %%sandbox in a notebook)"
)


class InputClient(Protocol):
    """What the bridge needs of a kernel client: sending an ``input_reply``."""

    def input(self, string: str) -> None: ...


class StdinBridge:
    """One execution's stdin: the kernel's input requests go out as ``input_request`` events,
    and an answer (``answer``) or a refusal (``refuse``: nobody can answer) comes back."""

    def __init__(self, client: InputClient, interrupt: Callable[[], Any]):
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


def _user_frames(traceback: list[str]) -> str:
    """A traceback without ipykernel's own frames (how it raises is no news to the user)."""
    return "\n".join(
        frame for frame in traceback if "/ipykernel/" not in frame and "StdinNotImplementedError" not in frame
    )


def input_error(name: str, traceback: list[str], stdin: StdinBridge | None) -> dict[str, Any] | None:
    """The error event for a kernel error that is an input() nobody could answer; None for others."""
    if name == "StdinNotImplementedError":  # input() in code sent without allow_stdin
        value = NO_STDIN
    elif name == "KeyboardInterrupt" and stdin is not None and stdin.refusal:
        value = stdin.refusal
    else:
        return None
    return {"type": "error", "name": "InputNotAvailable", "value": value, "traceback": _user_frames(traceback)}
