"""One-shot executions (python-executor's ``/api/v1`` semantics) on throwaway containers.

A request brings an uncompressed tar of files and metadata (entrypoint, stdin, script
args, env vars, pre-commands, requirements, limits); requests.py makes it a Job. Each
execution runs in a fresh sandbox made for it alone by the backend (``run_once``, a backend
capability: on Docker a container with the usual hardening), never reused, removed when the
run ends.

How files get in without a writable root: the sandbox's only command is the supervisor
(programs/supervisor.py, run with ``python -I -c``), which reads one JSON header line, the tar
and the user's stdin from its stdin, runs the pre-commands, the pip install and ``python
<entrypoint> args...`` one after another under one deadline, keeps the first
``max_output_size`` bytes of stdout and stderr, and writes one JSON report line. Because the
supervisor enforces the timeout itself, output written before a timeout is kept; the server
has its own deadline (timeout + ``setup_grace``) as a backstop.

Statuses (python-executor's): pending -> running -> completed | failed | killed.

- ``completed``: the program ran to its end; ``exit_code`` is its exit status (a
  pre-command that fails stops the run with its exit status, like ``a && b && python``).
- ``failed`` with ``exit_code`` 124: the timeout hit; everything was SIGKILLed; ``error``
  says "timed out after N s"; stdout/stderr hold what was written before.
- ``failed`` with ``exit_code`` 137 and "out of memory" in ``error``: the memory limit hit.
- ``failed`` with ``exit_code`` null: the sandbox could not be made or run (``error`` says why).
- ``killed`` with ``exit_code`` 137: ``DELETE executions/{id}`` stopped it.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from typing import Any

from traitlets import Dict, Float, Instance, Int, Unicode
from traitlets.config import LoggingConfigurable

from ..backends.base import WORKDIR, OnceResult, OnceRun, labels
from ..errors import InvalidInput, NotFound, QuotaExceeded, SandboxError
from ..models import SandboxSpec
from .requests import Job

MiB = 1024**2
TIMEOUT_EXIT_CODE = 124  # what coreutils' `timeout` returns
KILL_EXIT_CODE = 137  # 128 + SIGKILL
WHEELHOUSE_MOUNT = "/run/wheelhouse"
EVAL_RUNNER_PATH = "/tmp/.jsbx-eval.py"
RESULT_PATH = "/tmp/.jsbx-result"
REQUIREMENTS_PATH = "/tmp/.jsbx-requirements.txt"
PACKAGES_DIR = "/tmp/.jsbx-site"


def program(name: str) -> str:
    """The source of one of the programs that run inside sandboxes (package data)."""
    return resources.files(__package__).joinpath("programs", name).read_text()


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
    task: asyncio.Task | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def size(self) -> int:
        """Roughly the bytes it holds."""
        return len(self.stdout) + len(self.stderr) + len(self.result or "") + len(self.error or "") + 512

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
        }
        if self.error_type is not None or self.error_line is not None:
            data["error_type"] = self.error_type
            data["error_line"] = self.error_line
        return data


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------------------
# The runner


class OneShotRunner(LoggingConfigurable):
    """Runs one-shot executions in fresh hardened containers and keeps their results."""

    manager = Instance("jupyter_sandbox.core.manager.SandboxManager")

    images = Dict(
        value_trait=Unicode(),
        help="Accepted `docker_image` values -> the image actually run. Empty: every image the "
        "SandboxManager allows, each as itself. No value: the backend's default image.",
    ).tag(config=True)
    python_versions = Dict(
        default_value={"3.11": ""},
        value_trait=Unicode(),
        help="Accepted `python_version` values (eval) -> image ('' = the backend's default image).",
    ).tag(config=True)
    default_python_version = Unicode("3.11", help="python_version used when a request names none.").tag(config=True)
    wheelhouse = Unicode(
        "",
        help="Host directory of wheels. When set, `requirements_txt` is installed from it (mounted read-only, "
        "`pip install --no-index --find-links`) even with the network off; when empty, requirements_txt needs "
        "network.",
    ).tag(config=True)
    max_output_size = Int(
        1 * MiB, help="Bytes of stdout and of stderr kept per execution (a marker says the rest was cut)."
    ).tag(config=True)
    max_records_per_user = Int(200, help="Finished executions kept per user (the oldest go first).").tag(config=True)
    max_record_bytes_per_user = Int(
        64 * MiB, help="Bytes of finished executions' output kept per user (the oldest go first)."
    ).tag(config=True)
    retention_seconds = Float(3600.0, help="How long finished executions stay visible.").tag(config=True)
    max_archive_size = Int(
        50 * MiB, help="Largest tar archive, and largest total size of its contents (413 beyond)."
    ).tag(config=True)
    max_archive_members = Int(10000, help="Most members in an archive (413 beyond).").tag(config=True)
    default_timeout = Int(300, help="timeout_seconds when a request sets none.").tag(config=True)
    max_timeout = Int(3600, help="Largest timeout_seconds.").tag(config=True)
    default_memory_mb = Int(1024, help="memory_mb when a request sets none.").tag(config=True)
    max_memory_mb = Int(4096, help="Largest memory_mb.").tag(config=True)
    default_disk_mb = Int(512, help="disk_mb (size of the tmpfs working directory) when a request sets none.").tag(
        config=True
    )
    max_disk_mb = Int(4096, help="Largest disk_mb.").tag(config=True)
    default_cpu_shares = Int(1024, help="cpu_shares (Docker's relative CPU weight) when a request sets none.").tag(
        config=True
    )
    cpus = Float(1.0, help="Hard CPU cap (cores) of every one-shot container, on top of cpu_shares.").tag(config=True)
    pids = Int(256, help="Process limit of every one-shot container.").tag(config=True)
    max_running_per_user = Int(4, help="Executions one user may have pending or running at once (429 beyond).").tag(
        config=True
    )
    setup_grace = Float(30.0, help="Seconds allowed on top of the timeout for making the container and reporting.").tag(
        config=True
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._records: dict[str, ExecutionRecord] = {}

    @property
    def backend(self):
        return self.manager.backend

    # -- configuration ------------------------------------------------------------------
    def _image_map(self) -> dict[str, str]:
        return dict(self.images) if self.images else {i: i for i in self.manager.images}

    def resolve_image(self, docker_image: str | None = None, python_version: str | None = None) -> str:
        default = self.backend.default_image
        if python_version is not None:
            if python_version not in self.python_versions:
                allowed = ", ".join(sorted(self.python_versions))
                raise InvalidInput(
                    f"python_version {python_version!r} is not available; allowed: {allowed}", field="python_version"
                )
            return self.python_versions[python_version] or default
        if docker_image is None:
            if self.default_python_version in self.python_versions:
                return self.python_versions[self.default_python_version] or default
            return default
        images = self._image_map()
        if docker_image not in images:
            raise InvalidInput(
                f"docker_image {docker_image!r} is not allowed; allowed: {', '.join(sorted(images))}",
                field="docker_image",
            )
        return images[docker_image] or default

    # -- registry -----------------------------------------------------------------------
    def _prune(self) -> None:
        """Forget finished executions past the retention time, and each user's oldest beyond the
        count and size limits (so no user can grow the server's memory without bound)."""
        horizon = time.time() - self.retention_seconds
        kept: dict[str, tuple[int, int]] = {}  # owner -> (records, bytes) kept so far, newest first
        for record in sorted(self._records.values(), key=lambda r: r.created, reverse=True):
            if record.finished is None:
                continue
            count, size = kept.get(record.owner, (0, 0))
            count, size = count + 1, size + record.size()
            kept[record.owner] = (count, size)
            if record.finished < horizon or count > self.max_records_per_user or size > self.max_record_bytes_per_user:
                del self._records[record.id]

    def get(self, owner: str, execution_id: str) -> ExecutionRecord:
        self._prune()
        record = self._records.get(execution_id)
        if record is None or record.owner != owner:
            raise NotFound(f"no execution {execution_id!r}")
        return record

    def list(self, owner: str, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """The owner's executions, newest first: one page and where the next one starts."""
        self._prune()
        mine = sorted((r for r in self._records.values() if r.owner == owner), key=lambda r: r.created, reverse=True)
        page = mine[offset : offset + limit]
        more = offset + limit < len(mine)
        return {
            "executions": [r.to_dict() for r in page],
            "total": len(mine),
            "offset": offset,
            "limit": limit,
            "next_offset": offset + limit if more else None,
        }

    # -- running ------------------------------------------------------------------------
    def submit(self, owner: str, job: Job) -> ExecutionRecord:
        """Registers the execution and starts it in the background."""
        self.backend.require_once()
        self._prune()
        active = sum(1 for r in self._records.values() if r.owner == owner and r.status in ("pending", "running"))
        if active >= self.max_running_per_user:
            raise QuotaExceeded(f"you have {active} executions pending or running, the most allowed; wait or kill one")
        record = ExecutionRecord(id=f"exe_{uuid.uuid4()}", owner=owner, job=job)
        self._records[record.id] = record
        record.task = asyncio.ensure_future(self._run(record))
        self.log.info("jupyter-sandbox: %s submitted execution %s (%s)", owner, record.id, job.entrypoint)
        return record

    async def run(self, owner: str, job: Job) -> ExecutionRecord:
        record = self.submit(owner, job)
        await record.done.wait()
        return record

    async def kill(self, owner: str, execution_id: str) -> ExecutionRecord:
        """Stops a pending or running execution (its sandbox is removed before this returns)."""
        record = self.get(owner, execution_id)
        if record.status not in ("pending", "running"):
            return record
        record.kill_requested = True
        await self.backend.stop_once(record.id)
        try:
            await asyncio.wait_for(record.done.wait(), timeout=30)
        except asyncio.TimeoutError:
            self.log.error("jupyter-sandbox: execution %s did not stop after its sandbox was removed", record.id)
        return record

    def _once_run(self, record: ExecutionRecord) -> OnceRun:
        job = record.job
        assert job is not None
        spec = SandboxSpec(
            image=job.image,
            memory=job.memory_mb * MiB,
            cpus=self.cpus,
            pids=self.pids,
            disk=job.disk_mb * MiB,
            network=job.network,
            env={"PYTHONUNBUFFERED": "1", **job.env},
        )
        header = json.dumps(self._supervisor_job(job)).encode() + b"\n"
        return OnceRun(
            run_id=record.id,
            spec=spec,
            command=[self.backend.python, "-I", "-c", program("supervisor.py")],
            stdin=header + job.archive + job.stdin,
            labels=labels(self.manager.server_id, record.owner, execution=record.id),
            # the report is JSON of output capped at max_output_size: room for its escaping
            max_output=16 * self.max_output_size + MiB,
            cpu_shares=job.cpu_shares,
            read_only_dirs={self.wheelhouse: WHEELHOUSE_MOUNT} if job.requirements and self.wheelhouse else {},
        )

    def _supervisor_job(self, job: Job) -> dict[str, Any]:
        python = self.backend.python
        files: dict[str, str] = {}
        steps: list[dict[str, Any]] = [{"argv": ["sh", "-c", command]} for command in job.pre_commands]
        main_env: dict[str, str] = {}
        if job.requirements:
            files[REQUIREMENTS_PATH] = job.requirements
            pip = [
                python,
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-cache-dir",
                "--quiet",
                "--target",
                PACKAGES_DIR,
                "-r",
                REQUIREMENTS_PATH,
            ]
            if self.wheelhouse:
                pip += ["--find-links", WHEELHOUSE_MOUNT]
                if not job.network:
                    pip.append("--no-index")
            steps.append({"argv": pip})
            main_env["PYTHONPATH"] = (
                PACKAGES_DIR + ":" + job.env["PYTHONPATH"] if "PYTHONPATH" in job.env else PACKAGES_DIR
            )
        entry = posixpath.join(WORKDIR, job.entrypoint)
        if job.eval_last_expr:
            files[EVAL_RUNNER_PATH] = program("eval_runner.py")
            argv = [python, EVAL_RUNNER_PATH, RESULT_PATH, entry, *job.args]
        else:
            argv = [python, entry, *job.args]
        steps.append({"argv": argv, "stdin": True, "env": main_env})
        return {
            "tar_size": len(job.archive),
            "stdin_size": len(job.stdin),
            "workdir": WORKDIR,
            "timeout": job.timeout,
            "cap": self.max_output_size,
            "files": files,
            "steps": steps,
            "result_path": RESULT_PATH,
        }

    async def _run(self, record: ExecutionRecord) -> None:
        job = record.job
        assert job is not None
        result: OnceResult | None = None
        report: dict[str, Any] | None = None
        timed_out = False

        def started() -> None:
            record.started = time.time()
            record.status = "running"

        try:
            if not record.kill_requested:
                ran = await asyncio.wait_for(
                    self.backend.run_once(self._once_run(record), started), timeout=job.timeout + self.setup_grace
                )
                result = ran
                if ran.stdout.strip():
                    report = json.loads(ran.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
        except asyncio.TimeoutError:
            record.error = f"the sandbox did not finish within timeout + {self.setup_grace:g}s; it was killed"
            timed_out = True
        except asyncio.CancelledError:
            if not record.kill_requested:
                record.error = "the server stopped before the execution finished"
        except (SandboxError, ValueError) as e:
            if not record.kill_requested:
                message = e.message if isinstance(e, SandboxError) else f"{type(e).__name__}: {e}"
                record.error = f"the sandbox could not run: {message}"
                self.log.warning("jupyter-sandbox: execution %s failed: %s", record.id, message)
        finally:
            self._finish(record, report, result, timed_out)

    def _finish(
        self, record: ExecutionRecord, report: dict[str, Any] | None, result: OnceResult | None, timed_out: bool
    ) -> None:
        exit_code = TIMEOUT_EXIT_CODE if timed_out else result.exit_code if result else None
        oom = bool(result and result.out_of_memory)
        supervisor_err = result.stderr if result else b""
        record.finished = time.time()
        if record.started is None:
            record.started = record.finished
        job = record.job
        assert job is not None  # dropped below, once finished
        if report is not None:
            record.stdout = self._capped(report["stdout"], report["stdout_size"])
            record.stderr = self._capped(report["stderr"], report["stderr_size"])
            if report.get("result") is not None:
                record.result = self._capped(report["result"], len(report["result"].encode()))
            exit_code = report["exit_code"]
        if record.kill_requested:
            record.status, record.exit_code = "killed", KILL_EXIT_CODE
            record.error = "killed by request"
        elif report is not None and report["timed_out"]:
            record.status, record.exit_code = "failed", TIMEOUT_EXIT_CODE
            record.error = f"timed out after {job.timeout}s; the process was killed (exit code {TIMEOUT_EXIT_CODE})"
        elif oom or exit_code == KILL_EXIT_CODE:
            record.status, record.exit_code = "failed", KILL_EXIT_CODE
            record.error = (
                f"out of memory: the process was killed at the memory limit of {job.memory_mb} MB"
                if oom
                else f"the process was killed (SIGKILL), most likely out of memory (memory limit {job.memory_mb} MB)"
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
        self.log.info(
            "jupyter-sandbox: execution %s of %s %s (exit code %s)",
            record.id,
            record.owner,
            record.status,
            record.exit_code,
        )

    def _capped(self, text: str, total: int) -> str:
        kept = len(text.encode("utf-8", "replace"))
        if total <= self.max_output_size and kept <= self.max_output_size:
            return text
        if kept > self.max_output_size:
            text = text.encode()[: self.max_output_size].decode("utf-8", "replace")
        return text + f"\n[output truncated: {max(total - self.max_output_size, 0)} more bytes not kept]\n"

    # -- lifetime -----------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Kill every running execution (server shutdown)."""
        running = [r for r in self._records.values() if r.status in ("pending", "running")]
        for record in running:
            record.kill_requested = True
            if record.task is not None:
                record.task.cancel()
        await asyncio.gather(*(r.task for r in running if r.task is not None), return_exceptions=True)
