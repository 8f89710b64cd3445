"""Pausing a Docker sandbox (issue 23): its container stopped, checkpointed first where the runtime can.

Under gVisor (runsc) ``docker checkpoint create`` saves the whole sandbox, its tmpfs folders included
(they live in gVisor's own memory), and stops the container; ``docker start --checkpoint`` restores
it, the kernels and their launchers with it, and the server attaches to the kernels again as after
its own restart (``attach_kernel``). runc needs CRIU for this, which does not work on every host
(Debian's CRIU 3.17 cannot read the vdso of newer kernels: ``criu check`` fails): a runtime is
checkpointed only when ``DockerBackend.checkpoint_runtimes`` names it. Otherwise the container is
stopped, and the caller keeps its files (``pack_files``) to put back after the start.

The engine's checkpoint routes (experimental daemons only, scripts/setup-docker.sh) have no helper
in docker-py: they are called through its low-level client's ``_post_json``/``_delete``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from ..errors import BackendUnavailable
from ..models import SandboxSpec
from .docker_engine import EngineClient

if TYPE_CHECKING:  # (only for types: docker.py imports this module)
    from .docker import DockerBackend

CHECKPOINT = "jsbx-pause-"  # + the time in ns: each pause its own name


def short(message: str, most: int = 300) -> str:
    """An engine's checkpoint error, shortened: runsc's can carry a dump of kernel objects (kilobytes),
    whose last words say why (e.g. "endpoint still has waiters upon save"); an engine without
    experimental features says that it has none."""
    if len(message) <= most:
        return message
    head, _, tail = message.rpartition("}: ")
    return f"{message[: most // 2]} ... {(tail if head else message)[-most // 2 :]}"


def checkpoints(c: EngineClient, cid: str) -> list[str]:
    """The names of the container's checkpoints made by pauses, oldest first (blocking)."""
    api = c.api
    answer = api._get(api._url("/containers/{0}/checkpoints", cid))
    api._raise_for_status(answer)
    return sorted(n for n in (item.get("Name", "") for item in answer.json() or []) if n.startswith(CHECKPOINT))


class DockerPause:
    """Stops and starts the containers of one backend's paused sandboxes."""

    def __init__(self, backend: DockerBackend) -> None:
        self.backend = backend

    async def restored(self, sandbox_id: str) -> bool:
        """Whether the sandbox runs from a checkpoint and has not stopped since. runsc (release 20221219,
        Debian's) leaves state behind when it checkpoints such a container, and the engine then refuses
        to start it at all ("id already in use"); after a stop it checkpoints again. The engine keeps
        the answer: the restored checkpoint stays until the container stops (``drop_checkpoints``)."""
        cid = self.backend.container_id(sandbox_id)
        return bool(await self.backend.engine.call(lambda c: checkpoints(c, cid)))

    async def drop_checkpoints(self, sandbox_id: str) -> None:
        """The container stopped (a pause without memory, a restart): its checkpoints are of no use."""
        cid = self.backend.container_id(sandbox_id)

        def drop(c: EngineClient) -> None:
            for name in checkpoints(c, cid):
                c.api._delete(c.api._url("/containers/{0}/checkpoints/{1}", cid, name))

        try:
            await self.backend.engine.call(drop)
        except BackendUnavailable as e:  # e.g. an engine without experimental features: it has none
            self.backend.log.debug("checkpoints of sandbox %s: %s", sandbox_id, e.message)

    def _egress(self, sandbox_id: str) -> bool:
        spec = self.backend.spec_if_known(sandbox_id)
        return spec is not None and spec.egress is not None

    async def memory_problem(self, sandbox_id: str, spec: SandboxSpec) -> str | None:
        runtime = spec.runtime or self.backend.runtime
        if runtime in self.backend.checkpoint_runtimes and await self.restored(sandbox_id):
            return (
                f"{runtime} cannot checkpoint a sandbox restored from a checkpoint before it has stopped once (the "
                "engine would then refuse to start it): this pause keeps the files, and the next one the memory again"
            )
        if runtime in self.backend.checkpoint_runtimes:
            return None
        if runtime == "runc":
            return (
                "runc checkpoints a container with CRIU, which this server does not use (c.DockerBackend."
                "checkpoint_runtimes; CRIU 3.17 fails on newer kernels: `criu check` cannot read their vdso): "
                "the files are kept and the kernels start afresh. Use runtime 'runsc' to keep the variables"
            )
        return (
            f"the {runtime} runtime is not in c.DockerBackend.checkpoint_runtimes: the files are kept, not the memory"
        )

    async def pause(self, sandbox_id: str, keep_memory: bool) -> None:
        backend = self.backend
        cid = backend.container_id(sandbox_id)
        await backend.processes.table.close(sandbox_id)  # commands end with the pause
        if keep_memory:  # the launchers go (no engine stream can be checkpointed), the kernels stay
            await backend.kernels.detach_all(sandbox_id)
        else:
            await backend.kernels.drop_all(sandbox_id)
        if keep_memory:

            def checkpoint(c: EngineClient) -> None:
                api = c.api
                name = f"{CHECKPOINT}{time.time_ns()}"  # a name never used before (see CHECKPOINT)
                answer = api._post_json(
                    api._url("/containers/{0}/checkpoints", cid), data={"CheckpointID": name, "Exit": True}
                )
                api._raise_for_status(answer)

            try:
                await backend.engine.call(checkpoint)
            except BackendUnavailable as e:
                raise BackendUnavailable(f"the engine could not checkpoint the sandbox: {short(e.message)}") from None
        else:
            await backend.engine.call(lambda c: c.api.stop(cid, timeout=2))
            await self.drop_checkpoints(sandbox_id)
        if self._egress(sandbox_id):  # its proxy holds no CPU or memory either while it is paused
            await backend.egress.stop(sandbox_id)
        backend.usage.forget(sandbox_id)
        backend.kernels.forget_ended(sandbox_id)

    async def resume(self, sandbox_id: str, memory: bool) -> None:
        backend = self.backend
        cid = backend.container_id(sandbox_id)
        spec = backend.spec_if_known(sandbox_id)
        if spec is not None and spec.egress is not None:  # its way out first
            await backend.egress.start(sandbox_id, spec)
        if memory:

            def restore(c: EngineClient) -> None:
                api = c.api
                name = checkpoints(c, cid)[-1:] or [CHECKPOINT]  # the last pause's
                answer = api._post(api._url("/containers/{0}/start", cid), params={"checkpoint": name[0]})
                api._raise_for_status(answer)
                for old in checkpoints(c, cid)[:-1]:  # the restored one stays: see ``restored``
                    api._delete(api._url("/containers/{0}/checkpoints/{1}", cid, old))

            try:
                await backend.engine.call(restore)
            except BackendUnavailable as e:
                # seen once among other checkpoints on the same engine: containerd still held the
                # upload of an earlier restore ("already exists"); the container had not started
                if "already exists" not in e.message:
                    raise
                backend.log.warning("resuming sandbox %s again: %s", sandbox_id, short(e.message))
                await asyncio.sleep(1)
                await backend.engine.call(restore)
        else:
            await backend.engine.call(lambda c: c.api.start(cid))
        backend.kernels.forget_ended(sandbox_id)
        backend.usage.baseline(sandbox_id)
