"""Driving one execute request on a kernel client: ``run_execute`` sends it, feeds what comes
back to an ExecutionCollector (core/collector.py), enforces the timeout by interrupting the
kernel, and notices a kernel that died instead of waiting forever.
"""

from __future__ import annotations

import inspect
import logging
import queue
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..backends.kernel_client import KernelClient
from ..backends.sandbox_text import printable
from ..models import Execution
from ..outputs import DEFAULT as DEFAULT_OUTPUTS
from ..outputs import OutputPolicy
from .collector import MALFORMED_ERRORS, Event, EventSink, ExecutionCollector, MalformedMessage
from .stdin import StdinBridge

log = logging.getLogger(__name__)

IDLE_GRACE = 10.0  # seconds of iopub quiet after the reply that end an execution whose idle was lost
# Deno's kernel (JavaScript, TypeScript) can publish a cell's console output after its idle status:
# an execution in such a kernel reads iopub on until it has been quiet this long (at most LATE_MOST)
LATE_OUTPUT_GRACE = {"javascript": 0.25, "typescript": 0.25}
LATE_MOST = 2.0


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
    except MALFORMED_ERRORS as e:
        raise MalformedMessage(f"{type(e).__name__}: {e}") from None


async def run_execute(
    client: KernelClient,
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
    late_output: float = 0.0,
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
    ``late_output``: seconds of iopub quiet awaited after the end, for output a kernel sends late.
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

    if late_output and collector.done and timed_out_at is None:
        until = time.monotonic() + LATE_MOST
        while time.monotonic() < until and (msg := await _receive(client.get_iopub_msg, late_output)) is not None:
            await deliver(collector.handle_iopub(msg))
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
