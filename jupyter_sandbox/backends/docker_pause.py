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

from typing import TYPE_CHECKING

from ..errors import BackendUnavailable
from ..models import SandboxSpec
from .docker_engine import EngineClient

if TYPE_CHECKING:  # (only for types: docker.py imports this module)
    from .docker import DockerBackend

CHECKPOINT = "jsbx-pause"  # one per container: deleted once restored


class DockerPause:
    """Stops and starts the containers of one backend's paused sandboxes."""

    def __init__(self, backend: DockerBackend) -> None:
        self.backend = backend

    def memory_problem(self, spec: SandboxSpec) -> str | None:
        runtime = spec.runtime or self.backend.runtime
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
        await backend.kernels.drop_all(sandbox_id)  # relays closed: the kernels keep running for the checkpoint
        if keep_memory:

            def checkpoint(c: EngineClient) -> None:
                api = c.api
                # a checkpoint left by a pause whose resume failed would make this one fail
                api._delete(api._url("/containers/{0}/checkpoints/{1}", cid, CHECKPOINT))
                answer = api._post_json(
                    api._url("/containers/{0}/checkpoints", cid), data={"CheckpointID": CHECKPOINT, "Exit": True}
                )
                api._raise_for_status(answer)

            try:
                await backend.engine.call(checkpoint)
            except BackendUnavailable as e:
                raise BackendUnavailable(
                    f"the sandbox could not be checkpointed ({e.message}); is dockerd running with experimental "
                    "features (scripts/setup-docker.sh)?"
                ) from None
        else:
            await backend.engine.call(lambda c: c.api.stop(cid, timeout=2))
        backend.usage.forget(sandbox_id)
        backend.kernels.forget_ended(sandbox_id)

    async def resume(self, sandbox_id: str, memory: bool) -> None:
        backend = self.backend
        cid = backend.container_id(sandbox_id)
        if memory:

            def restore(c: EngineClient) -> None:
                api = c.api
                answer = api._post(api._url("/containers/{0}/start", cid), params={"checkpoint": CHECKPOINT})
                api._raise_for_status(answer)
                api._delete(api._url("/containers/{0}/checkpoints/{1}", cid, CHECKPOINT))

            await backend.engine.call(restore)
        else:
            await backend.engine.call(lambda c: c.api.start(cid))
        backend.kernels.forget_ended(sandbox_id)
        backend.usage.baseline(sandbox_id)
