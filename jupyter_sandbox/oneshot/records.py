"""The one-shot executions a server keeps: one record per execution, and the registry of them
that forgets finished ones by age and by each user's count and bytes."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..backends.base import WORKDIR
from ..errors import NotFound
from .archive import read_member
from .requests import Job

CODE_LIMIT = 64 * 1024  # bytes of an execution's entrypoint that its record keeps, to show it


def code_of(job: Job, limit: int = CODE_LIMIT) -> str:
    """The text of the job's entrypoint as its record keeps it: the first ``limit`` bytes, then a
    line saying how many more were not kept (the way stdout says it)."""
    data, size = read_member(job.archive, job.entrypoint, limit)
    text = data.decode("utf-8", errors="replace")
    if size > len(data):
        text += f"\n[code truncated: {size - len(data)} more bytes not kept]\n"
    return text


def parse_error(stderr: str, workdir: str = WORKDIR) -> tuple[str | None, int | None]:
    """(exception type, line in the user's files) from a Python traceback on stderr."""
    lines = stderr.splitlines()
    frame = None
    for i, line in enumerate(lines):
        m = re.match(r'^\s*File "([^"]+)", line (\d+)', line)
        if m and (m.group(1) + "/").startswith(workdir + "/"):
            frame = (i, int(m.group(2)))
    if frame is None:
        return None, None
    for line in lines[frame[0] + 1 :]:
        m = re.match(r"^([A-Za-z_][\w.]*)(?::|$)", line)
        if m:
            return m.group(1).rsplit(".", 1)[-1], frame[1]
    return None, frame[1]


@dataclass
class ExecutionRecord:
    id: str
    owner: str
    job: Job | None
    code: str = ""  # the entrypoint's text, capped (code_of), to show what ran
    status: str = "pending"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    error: str | None = None
    result: str | None = None
    error_type: str | None = None
    error_line: int | None = None
    container_id: str | None = None
    kill_requested: bool = False
    task: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def size(self) -> int:
        """Roughly the bytes it holds."""
        return (
            len(self.stdout) + len(self.stderr) + len(self.result or "") + len(self.error or "") + len(self.code) + 512
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "execution_id": self.id,
            "status": self.status,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "exit_code": self.exit_code,
            "error": self.error,
            "started_at": _iso(self.started),
            "finished_at": _iso(self.finished),
            "duration_ms": int((self.finished - self.started) * 1000) if self.started and self.finished else None,
            "result": self.result,
            "code": self.code,
        }
        if self.error_type is not None or self.error_line is not None:
            data["error_type"] = self.error_type
            data["error_line"] = self.error_line
        return data


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ExecutionRecords:
    """Every execution by id: the pending and running ones, and the finished ones still kept."""

    def __init__(self) -> None:
        self.by_id: dict[str, ExecutionRecord] = {}

    def add(self, record: ExecutionRecord) -> None:
        self.by_id[record.id] = record

    def drop(self, execution_id: str) -> None:
        del self.by_id[execution_id]

    def active(self) -> list[ExecutionRecord]:
        return [r for r in self.by_id.values() if r.status in ("pending", "running")]

    def prune(self, retention_seconds: float, max_count: int, max_bytes: int) -> None:
        """Forget finished executions past the retention time, and each user's oldest beyond the
        count and size limits (so no user can grow the server's memory without bound)."""
        horizon = time.time() - retention_seconds
        kept: dict[str, tuple[int, int]] = {}  # owner -> (records, bytes) kept so far, newest first
        for record in sorted(self.by_id.values(), key=lambda r: r.created, reverse=True):
            if record.finished is None:
                continue
            count, size = kept.get(record.owner, (0, 0))
            count, size = count + 1, size + record.size()
            kept[record.owner] = (count, size)
            if record.finished < horizon or count > max_count or size > max_bytes:
                del self.by_id[record.id]

    def get(self, owner: str, execution_id: str) -> ExecutionRecord:
        record = self.by_id.get(execution_id)
        if record is None or record.owner != owner:
            raise NotFound(f"no execution {execution_id!r}")
        return record

    def page(self, owner: str, limit: int, offset: int) -> dict[str, Any]:
        """The owner's executions, newest first: one page and where the next one starts."""
        mine = sorted((r for r in self.by_id.values() if r.owner == owner), key=lambda r: r.created, reverse=True)
        more = offset + limit < len(mine)
        return {
            "executions": [r.to_dict() for r in mine[offset : offset + limit]],
            "total": len(mine),
            "offset": offset,
            "limit": limit,
            "next_offset": offset + limit if more else None,
        }
