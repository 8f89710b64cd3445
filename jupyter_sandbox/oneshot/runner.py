"""One-shot executions (python-executor's ``/api/v1`` semantics) on throwaway containers.

A request brings an uncompressed tar of files and metadata (entrypoint, stdin, script
args, env vars, pre-commands, requirements, limits); requests.py makes it a Job. Each
execution runs in a fresh sandbox made for it alone by the backend (``run_once``, a backend
capability: on Docker a container with the usual hardening), never reused, removed when the
run ends.

A pool (``pool_size``) keeps a few such sandboxes started with the default image and limits,
their supervisor waiting for its job: an execution with those takes one when it is submitted
(its id is the one the sandbox was labelled with) and so skips the container start. Other
images or limits start a sandbox when the run begins, as without a pool.

A user runs at most ``max_running_per_user`` executions at once; more wait as ``pending``, in
the order they came, up to ``max_queued_per_user`` (429 past that).

How files get in without a writable root: the sandbox's only command is the supervisor
(programs/supervisor.py, run with ``python -I -c``), which reads one JSON header line, the tar
and the user's stdin from its stdin, runs the pre-commands, the pip install and ``python
<entrypoint> args...`` one after another under one deadline, keeps the first
``max_output_size`` bytes of stdout and stderr, and writes one JSON report line. Because the
supervisor enforces the timeout itself, output written before a timeout is kept; the server
has its own deadline (timeout + ``setup_grace``) as a backstop.

Statuses (python-executor's): pending (queued, or its sandbox being made) -> running ->
completed | failed | killed.

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
import time
import uuid
from typing import Any, Protocol

from traitlets import Dict, Float, Int, Unicode
from traitlets.config import LoggingConfigurable

from ..backends.base import OneShotProgram, OneShotResult, OneShotSandbox, SandboxBackend, labels
from ..core.pool import Pool
from ..errors import InvalidInput, QuotaExceeded, SandboxError
from ..models import SandboxSpec
from .outcome import settle
from .records import ExecutionRecord, ExecutionRecords, code_of
from .requests import Job
from .slots import RunningSlots
from .supervision import WHEELHOUSE_MOUNT, program, supervisor_header

MiB = 1024**2


class SandboxHost(Protocol):
    """What the runner needs of the server's sandbox manager: its backend, the images it allows,
    whether sandboxes may have a network, and the server id its containers are labelled with."""

    @property
    def backend(self) -> SandboxBackend: ...

    @property
    def images(self) -> list[str]: ...

    @property
    def server_id(self) -> str: ...

    @property
    def allow_network(self) -> bool: ...


# ---------------------------------------------------------------------------
# The runner


class OneShotRunner(LoggingConfigurable):
    """Runs one-shot executions in fresh hardened containers and keeps their results."""

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
    max_running_per_user = Int(
        4, help="Executions one user may have running at once; more wait as pending (see max_queued_per_user)."
    ).tag(config=True)
    max_queued_per_user = Int(
        16, help="Executions one user may have waiting (pending) beyond max_running_per_user (429 past that)."
    ).tag(config=True)
    pool_size = Int(
        2,
        help="Containers kept started with the default image and limits, their supervisor waiting for a job, so "
        "such an execution skips the container start. Each is used for one execution and removed after it; "
        "each waiting one holds a few MB. 0 = none (every execution starts its own when it runs).",
    ).tag(config=True)
    pool_refill_delay = Float(
        0.2,
        help="Seconds between taking a pooled container and starting its replacement, so that the engine's work "
        "for the refill does not slow the execution that took it (a request that finds the pool empty does not "
        "wait for this).",
    ).tag(config=True)
    setup_grace = Float(30.0, help="Seconds allowed on top of the timeout for making the container and reporting.").tag(
        config=True
    )

    def __init__(self, *, manager: SandboxHost, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.manager = manager
        self._records = ExecutionRecords()
        self._pool: Pool[OneShotSandbox] | None = None
        self._stopped = False  # shut down: no pool is made again
        self._slots = RunningSlots()

    @property
    def backend(self) -> SandboxBackend:
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

    def _prune(self) -> None:
        self._records.prune(self.retention_seconds, self.max_records_per_user, self.max_record_bytes_per_user)

    def get(self, owner: str, execution_id: str) -> ExecutionRecord:
        self._prune()
        return self._records.get(owner, execution_id)

    def list(self, owner: str, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """The owner's executions, newest first: one page and where the next one starts."""
        self._prune()
        return self._records.page(owner, limit, offset)

    # -- the pool of started sandboxes -----------------------------------------------------
    def start(self) -> None:
        """Start filling the pool (on a backend that runs one-shot programs); also done on first use."""
        if self._pool is None and self.pool_size > 0 and self.backend.runs_once and not self._stopped:
            self._pool = Pool(
                self.pool_size,
                self._pooled_box,
                self.backend.discard_once,
                self.backend.once_unusable,
                self.log,
                what="one-shot container",
                refill_delay=self.pool_refill_delay,
            )
        if self._pool is not None:
            self._pool.fill()

    @property
    def pool(self) -> Pool[OneShotSandbox] | None:
        """The pool of started sandboxes (None until started, or with ``pool_size = 0``)."""
        return self._pool

    async def _pooled_box(self) -> OneShotSandbox:
        run = self._sandbox_run(f"exe_{uuid.uuid4()}", "", self._default_shape())
        return await self.backend.start_once(run)

    def _default_shape(self) -> tuple[str, int, int, int]:
        return self.resolve_image(), self.default_memory_mb, self.default_disk_mb, self.default_cpu_shares

    @staticmethod
    def _shape(job: Job) -> tuple[str, int, int, int] | None:
        """What a job's container is made with (None: a container of its own, never a pooled one)."""
        if job.network or job.requirements:
            return None  # network, or a wheelhouse mount: its own container
        return job.image, job.memory_mb, job.disk_mb, job.cpu_shares

    async def _take_box(self, job: Job, wait: bool) -> OneShotSandbox | None:
        if self._pool is None or self._shape(job) != self._default_shape():
            return None
        # Waiting for one being made beats starting another: that would only slow both down.
        return await self._pool.take(wait=wait)

    # -- running ------------------------------------------------------------------------
    async def submit(self, owner: str, job: Job, wait_for_pool: bool = False) -> ExecutionRecord:
        """Registers the execution and starts it in the background (it waits, pending, while
        the owner has ``max_running_per_user`` running). ``wait_for_pool``: when the pool has
        no sandbox ready but is making one, wait for it (a caller waiting for the result anyway)."""
        self.backend.require_once()
        self.start()
        self._prune()
        active = sum(1 for r in self._records.active() if r.owner == owner)
        if active >= self.max_running_per_user + self.max_queued_per_user:
            raise QuotaExceeded(
                f"you have {active} executions pending or running, the most allowed "
                f"({self.max_running_per_user} running and {self.max_queued_per_user} waiting); wait or kill one"
            )
        # counted before any await: a burst of submissions cannot pass the limit together
        record = ExecutionRecord(id=f"exe_{uuid.uuid4()}", owner=owner, job=job, code=code_of(job))
        self._records.add(record)
        try:
            # a run that will wait for a running slot takes no pooled container: it would hold it
            # idle while other users' runs start their own
            box = await self._take_box(job, wait_for_pool) if active < self.max_running_per_user else None
        except BaseException:
            self._records.drop(record.id)
            raise
        if box is not None:
            # the pooled sandbox is labelled with its own execution id: the record takes it
            self._records.drop(record.id)
            record.id = box.run_id
            self._records.add(record)
        record.task = asyncio.ensure_future(self._run(record, box))
        self.log.info(
            "jupyter-sandbox: %s submitted execution %s (%s%s)",
            owner,
            record.id,
            job.entrypoint,
            ", pooled" if box is not None else "",
        )
        return record

    async def run(self, owner: str, job: Job) -> ExecutionRecord:
        record = await self.submit(owner, job, wait_for_pool=True)
        await record.done.wait()
        return record

    async def kill(self, owner: str, execution_id: str) -> ExecutionRecord:
        """Stops a pending or running execution (its sandbox is removed before this returns)."""
        record = self.get(owner, execution_id)
        if record.status not in ("pending", "running"):
            return record
        record.kill_requested = True
        if record.status == "pending" and record.task is not None:
            record.task.cancel()  # waiting for a slot, or its sandbox being made
        await self.backend.stop_once(record.id)
        try:
            await asyncio.wait_for(record.done.wait(), timeout=30)
        except asyncio.TimeoutError:
            self.log.error("jupyter-sandbox: execution %s did not stop after its sandbox was removed", record.id)
        return record

    def _sandbox_run(
        self, run_id: str, owner: str, shape: tuple[str, int, int, int], job: Job | None = None
    ) -> OneShotProgram:
        """The run of the supervisor in a sandbox of ``shape`` (image, memory, disk, cpu shares);
        its input comes from ``job`` (none yet for a pooled sandbox, whose owner label is "")."""
        image, memory_mb, disk_mb, cpu_shares = shape
        spec = SandboxSpec(
            image=image,
            memory=memory_mb * MiB,
            cpus=self.cpus,
            pids=self.pids,
            disk=disk_mb * MiB,
            network=bool(job and job.network),
            env={"PYTHONUNBUFFERED": "1"},  # the job's own env goes to the supervisor's steps
        )
        stdin = b""
        if job is not None:
            stdin = (
                json.dumps(supervisor_header(job, self.backend.python, self.wheelhouse, self.max_output_size)).encode()
                + b"\n"
                + job.archive
                + job.stdin
            )
        return OneShotProgram(
            run_id=run_id,
            spec=spec,
            command=[self.backend.python, "-I", "-c", program("supervisor.py")],
            stdin=stdin,
            labels=labels(self.manager.server_id, owner, execution=run_id),
            # the report is JSON of output capped at max_output_size: room for its escaping
            max_output=16 * self.max_output_size + MiB,
            cpu_shares=cpu_shares,
            read_only_dirs={self.wheelhouse: WHEELHOUSE_MOUNT} if job and job.requirements and self.wheelhouse else {},
            ends_with_line=True,
        )

    def _once_run(self, record: ExecutionRecord) -> OneShotProgram:
        job = record.job
        assert job is not None
        return self._sandbox_run(record.id, record.owner, (job.image, job.memory_mb, job.disk_mb, job.cpu_shares), job)

    async def _run(self, record: ExecutionRecord, box: OneShotSandbox | None = None) -> None:
        job = record.job
        assert job is not None
        result: OneShotResult | None = None
        report: dict[str, Any] | None = None
        timed_out = False

        def started() -> None:
            record.started = time.time()
            record.status = "running"

        holding = False  # a running slot: given back once the record says finished
        try:
            await self._slots.acquire(record.owner, self.max_running_per_user)
            holding = True
            if box is not None and (why := await self.backend.once_unusable(box)) is not None:
                self.log.warning(
                    "jupyter-sandbox: execution %s starts its own sandbox: the pooled one %s", record.id, why
                )
                await self.backend.discard_once(box)
                box = None
            if not record.kill_requested:
                ran = await asyncio.wait_for(
                    self.backend.run_once(self._once_run(record), started, box),
                    timeout=job.timeout + self.setup_grace,
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
            if box is not None:
                await self.backend.discard_once(box)  # nothing when its run had it (the run removes it)
            settle(record, report, result, timed_out, self.max_output_size, self.log)
            if holding:
                self._slots.release(record.owner)

    # -- lifetime -----------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Kill every pending and running execution and remove the pooled sandboxes (server shutdown)."""
        self._stopped = True
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
        running = self._records.active()
        for record in running:
            record.kill_requested = True
            if record.task is not None:
                record.task.cancel()
        await asyncio.gather(*(r.task for r in running if r.task is not None), return_exceptions=True)
