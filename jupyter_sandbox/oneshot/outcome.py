"""What a finished one-shot execution is: its status, exit code and error from the supervisor's
report (or its absence), the engine's word on memory, and the output caps."""

from __future__ import annotations

import logging
import time
from typing import Any

from ..backends.base import OneShotResult
from ..models import limit_text
from .records import ExecutionRecord, parse_error

TIMEOUT_EXIT_CODE = 124  # what coreutils' `timeout` returns
KILL_EXIT_CODE = 137  # 128 + SIGKILL


def capped(text: str, total: int, limit: int) -> str:
    """``text`` (of ``total`` bytes written) cut to ``limit`` bytes, with a marker when anything was cut."""
    kept = len(text.encode("utf-8", "replace"))
    if total <= limit and kept <= limit:
        return text
    if kept > limit:
        text = text.encode()[:limit].decode("utf-8", "replace")
    return text + f"\n[output truncated: {max(total - limit, 0)} more bytes not kept]\n"


def settle(
    record: ExecutionRecord,
    report: dict[str, Any] | None,
    result: OneShotResult | None,
    timed_out: bool,
    max_output_size: int,
    log: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    """Write the end of ``record`` (finished, status, output, error) and wake its waiters."""
    exit_code = TIMEOUT_EXIT_CODE if timed_out else result.exit_code if result else None
    # the supervisor counts the kernel's kills at the memory limit; the engine says it when there is no report
    oom = bool(result and result.out_of_memory) or bool(report and report.get("oom_kills"))
    supervisor_err = result.stderr if result else b""
    record.finished = time.time()
    if record.started is None:
        record.started = record.finished
    job = record.job
    assert job is not None  # dropped below, once finished
    if report is not None:
        record.stdout = capped(report["stdout"], report["stdout_size"], max_output_size)
        record.stderr = capped(report["stderr"], report["stderr_size"], max_output_size)
        if report.get("result") is not None:
            record.result = capped(report["result"], len(report["result"].encode()), max_output_size)
        exit_code = report["exit_code"]
    if record.kill_requested:
        record.status, record.exit_code = "killed", KILL_EXIT_CODE
        record.error = "killed by request"
    elif report is not None and report["timed_out"]:
        record.status, record.exit_code = "failed", TIMEOUT_EXIT_CODE
        record.error = f"timed out after {job.timeout}s; the process was killed (exit code {TIMEOUT_EXIT_CODE})"
    elif oom or exit_code == KILL_EXIT_CODE:
        record.status, record.exit_code = "failed", KILL_EXIT_CODE
        limit = limit_text(job.memory_mb * 1024**2, job.disk_mb * 1024**2)  # said as everywhere else
        record.error = (
            f"out of memory: the process was killed at its limit ({limit})"
            if oom
            else f"the process was killed (SIGKILL), most likely out of memory ({limit})"
        )
    elif report is not None:
        record.status, record.exit_code = "completed", exit_code
    else:
        record.status, record.exit_code = "failed", exit_code
        if record.error is None:
            detail = supervisor_err.decode("utf-8", "replace").strip()[-2000:]
            record.error = f"the sandbox ended without a report (exit code {exit_code}): {detail}"
    if record.exit_code not in (0, None):
        record.error_type, record.error_line = parse_error(record.stderr)
    record.job = None  # the archive is not kept
    record.done.set()
    log.info(
        "jupyter-sandbox: execution %s of %s %s (exit code %s)",
        record.id,
        record.owner,
        record.status,
        record.exit_code,
    )
