"""Sandboxes as hardened Docker containers; kernels reached over the engine's exec stream.

Nothing of the host is mounted into a sandbox. A kernel is started by a small launcher
program (programs/launcher.py) run with ``docker exec -i``: it starts ipykernel inside the container,
with its ZMQ sockets in the container's own tmpfs, and relays the kernel's messages over the
exec's stdin/stdout. On the host, kernel_relay.py serves the same five sockets in a folder
private to the server (random name, mode 0700) for jupyter_client. So the container needs no
network, no TCP port is published, and the server never opens a path a sandbox can write.
A kernel outlives a crashed server: a restarted one reattaches (``attach_kernel``).

Users in a sandbox's container: its own processes (init, ``sleep``) run as root with only
SETUID, SETGID and KILL; the launcher is exec'd as root and takes a uid of its own
(``launcher_user``) before it reads anything the sandbox can write; the kernel and every file
command run as ``user``, which holds no capability (an exec drops to it before it runs the
command: under gVisor an exec's first process would keep the container's capabilities). Why:
see programs/launcher.py. The sandbox's env goes to its kernels only, never into the
environment of a root exec (LD_PRELOAD and friends would run the sandbox's code there).

``DockerBackend`` holds the settings (c.DockerBackend.*, declared in docker_settings.py) and which
container is whose, and hands each job to a part of its own: the engine and its threads
(docker_engine.py), what a container is made of (docker_containers.py), kernels and why they ended
(docker_kernels.py), files (docker_files.py), one-shot containers (docker_once.py) and usage
figures (docker_stats.py).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..errors import InvalidInput, NotFound
from ..models import SandboxSpec, format_size, parse_size
from .base import (
    LABEL_PREFIX,
    LOG_LIMIT,
    WORKDIR,
    OneShotProgram,
    OneShotResult,
    OneShotSandbox,
    SandboxBackend,
    confine,
    kernel_argv,
    kernel_extras,
    notebook_settings,
)
from .dir_watch import DirWatch
from .docker_containers import IDENTITY_ENV, DockerContainers
from .docker_egress import DockerEgress
from .docker_engine import DockerEngine, engine_available, engine_problem
from .docker_exec import DockerProcesses
from .docker_files import DockerFiles
from .docker_kernels import DockerKernels
from .docker_once import DockerOneShots
from .docker_pause import DockerPause
from .docker_settings import DockerSettings
from .docker_stats import DockerStats
from .docker_volumes import DockerVolumes
from .exec_stream import ExecStream
from .kernel_channels import DirectKernelClient
from .kernel_client import KernelClient
from .kernel_languages import KernelLanguages
from .kernel_relay import attach_request, start_request


# mypy does not see that _BackendMeta (base.py) derives from HasTraits' metaclass; it does
class DockerBackend(SandboxBackend, DockerSettings):  # type: ignore[metaclass]
    """Hardened containers: no network unless asked, read-only root, no capabilities."""

    name = "docker"
    filters_egress = True
    isolation = (
        "Docker container: own filesystem (read-only root, size-capped tmpfs), no network unless asked, "
        "kernels as a non-root user with no capabilities, no-new-privileges, a seccomp profile, "
        "memory/CPU/pids limits"
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = DockerEngine(self.docker_url, self.engine_timeout, self.engine_threads, self.stream_threads)
        self.containers = DockerContainers(self)
        self.kernels = DockerKernels(self)
        self.files = DockerFiles(self)
        self.kernelspecs = KernelLanguages(
            lambda sandbox_id, argv: self.files.run_as_user(sandbox_id, argv), lambda: self.python
        )
        self.one_shots = DockerOneShots(self)
        self.usage = DockerStats(self)
        self.processes = DockerProcesses(self)
        self.egress = DockerEgress(self)
        self.pausing = DockerPause(self)
        self.volumes = DockerVolumes(self)
        self._container_ids: dict[str, str] = {}  # sandbox id -> container id
        self._specs: dict[str, SandboxSpec] = {}

    @staticmethod
    def available(docker_url: str = "") -> bool:
        return engine_available(docker_url)

    def engine_problem(self) -> str | None:
        """Why no engine answers at this backend's ``docker_url`` (blocking); None when one does."""
        return engine_problem(self.docker_url)

    # -- the sandboxes this backend knows (its parts ask here) ---------------------------
    def container_id(self, sandbox_id: str) -> str:
        cid = self._container_ids.get(sandbox_id)
        if cid is None:
            raise NotFound(f"no container for sandbox {sandbox_id}")
        return cid

    def has_container(self, sandbox_id: str) -> bool:
        return sandbox_id in self._container_ids

    def spec(self, sandbox_id: str) -> SandboxSpec:
        spec = self._specs.get(sandbox_id)
        if spec is None:
            raise NotFound(f"no sandbox {sandbox_id} on this backend")
        return spec

    def spec_if_known(self, sandbox_id: str) -> SandboxSpec | None:
        return self._specs.get(sandbox_id)

    # -- lifecycle ----------------------------------------------------------------------
    def container_options(self, spec: SandboxSpec, labels: dict[str, str], once: bool = False) -> dict[str, Any]:
        """The hardened ``containers.run`` keyword arguments for a spec. A sandbox's container runs as
        root with SETUID, SETGID and KILL only (for the launcher; see the module's docstring), and
        its env is not in the container's environment; a one-shot run's (``once``) runs its one
        program as ``user`` with no capability at all, its env in the environment."""
        return self.containers.options(spec, labels, once)

    def memory_limit(self, spec: SandboxSpec) -> int:
        """The container's memory limit: the memory asked for, plus its working directory and /tmp."""
        return spec.memory + spec.disk + parse_size(self.tmp_size, "tmp_size")

    async def create(self, sandbox_id: str, spec: SandboxSpec, labels: dict[str, str]) -> None:
        image = spec.image or self.default_image
        mounts = await self.volumes.mounts(sandbox_id, spec, labels)  # before the options: its uid is the volume's
        options = {**self.container_options(spec, labels), **({"mounts": mounts} if mounts else {})}
        self.log.info(
            "creating container for sandbox %s: image=%s runtime=%s memory=%s cpus=%s network=%s",
            sandbox_id,
            image,
            options["runtime"],
            format_size(spec.memory),
            spec.cpus,
            spec.network,
        )
        if spec.egress is not None:  # behind a proxy of its own (checked first: runsc has no network here)
            await self.containers.check_runtime(options["runtime"], network=True)
            options.update(await self.egress.prepare(sandbox_id, spec, labels))
        making = asyncio.ensure_future(
            self.containers.create(f"jupyter-sandbox-{sandbox_id}", image, ["sleep", "infinity"], options)
        )
        try:
            cid = await asyncio.shield(making)
        except asyncio.CancelledError:
            # The engine makes it anyway: wait for it, so that the caller's cleanup can remove it.
            self._container_ids[sandbox_id] = await making
            raise
        self._container_ids[sandbox_id] = cid
        self._specs[sandbox_id] = spec
        self.kernels.forget_ended(sandbox_id)
        await self.engine.call(lambda c: c.api.start(cid))
        self.usage.baseline(sandbox_id)

    async def adopt(self, sandbox_id: str, spec: SandboxSpec, paused: bool = False) -> None:
        name = f"jupyter-sandbox-{sandbox_id}"
        state = await self.engine.call(lambda c: c.api.inspect_container(name))
        if not paused and not state.get("State", {}).get("Running"):
            raise NotFound(f"the container of sandbox {sandbox_id} is not running")
        self._container_ids[sandbox_id] = state["Id"]
        self._specs[sandbox_id] = spec
        self.volumes.adopted(sandbox_id, spec, state.get("Config", {}).get("Labels") or {})
        if not paused:
            self.usage.baseline(sandbox_id)

    async def restart(self, sandbox_id: str) -> None:
        await self.processes.table.close(sandbox_id)
        await self.kernels.drop_all(sandbox_id)  # the restart ends every process in it
        cid = self.container_id(sandbox_id)
        await self.engine.call(lambda c: c.api.restart(cid, timeout=2))
        await self.pausing.drop_checkpoints(sandbox_id)
        self.usage.forget(sandbox_id, restarted=True)
        self.kernels.forget_ended(sandbox_id)

    async def languages(self, sandbox_id: str) -> list[str]:
        return sorted(await self.kernelspecs.of(sandbox_id))

    async def remove(self, sandbox_id: str) -> None:
        await self.processes.table.close(sandbox_id)
        self.kernelspecs.forget(sandbox_id)
        cid = self._container_ids.pop(sandbox_id, None) or f"jupyter-sandbox-{sandbox_id}"
        await self.kernels.drop_all(sandbox_id)
        spec = self._specs.pop(sandbox_id, None)
        self.usage.forget(sandbox_id)
        self.kernels.forget_ended(sandbox_id)
        await self.engine.remove_container(cid)
        if spec is None or spec.egress is not None:
            await self.egress.remove(sandbox_id)
        self.volumes.forget(sandbox_id)

    # -- persistent volumes (docker_volumes.py) -------------------------------------------
    def volumes_problem(self) -> str | None:
        return self.volumes.problem()

    async def create_volume(self, owner: str, name: str, size: int) -> dict[str, Any]:
        return await self.volumes.create(owner, name, size)

    async def volume_metas(self) -> list[dict[str, Any]]:
        return await self.volumes.metas()

    async def volume_usage(self, volume_id: str) -> tuple[int, int] | None:
        usage = await self.volumes.usage(volume_id)
        return None if usage is None else (usage.used, usage.capacity)

    async def remove_volume(self, volume_id: str) -> None:
        await self.volumes.remove(volume_id)

    async def list_existing(self, labels: dict[str, str] | None = None) -> list[dict[str, str]]:
        filters = [f"{LABEL_PREFIX}.managed=true"] + [f"{k}={v}" for k, v in (labels or {}).items()]
        found = await self.engine.call(lambda c: c.api.containers(all=True, filters={"label": filters}))
        return [dict(c.get("Labels") or {}) for c in found]

    async def logs(self, sandbox_id: str, kernel_ids: list[str]) -> dict[str, Any]:
        cid = self.container_id(sandbox_id)
        # The container's own output (its init and `sleep`): engine-level trouble shows here.
        text = (await self.engine.call(lambda c: c.api.logs(cid, tail=1000))).decode(errors="replace")
        spec = self._specs.get(sandbox_id)
        if spec is not None and spec.egress is not None:  # what its egress proxy refused
            text += await self.egress.denials(sandbox_id)
        text = text[-LOG_LIMIT:]
        return {
            "container": text,
            "kernels": {k: (await self.kernel_log(sandbox_id, k))[-LOG_LIMIT:] for k in kernel_ids},
        }

    # -- kernels: a launcher per kernel, relayed over the exec stream ---------------------
    async def start_kernel(
        self,
        sandbox_id: str,
        kernel_id: str,
        cwd: str | None = None,
        key: bytes | None = None,
        debugger: bool = True,
        language: str = "python",
    ) -> dict[str, Any]:
        workdir = confine(cwd) if cwd else WORKDIR
        if workdir != WORKDIR:
            code, _, _ = await self.files.run_as_user(sandbox_id, ["test", "-d", workdir])
            if code != 0:
                raise InvalidInput(f"the working directory {workdir} does not exist in the sandbox", field="cwd")
        # The same kernel id and key give the same addresses (host sockets are named after the
        # id): a notebook's websocket, still connected, reaches the new kernel after a restart.
        hmac_key = key.decode() if isinstance(key, bytes) else key or secrets.token_hex(32)
        spec = self._specs.get(sandbox_id)
        # a notebook's kernel is the one with the debugger (core/kernels.py): no E2B formats there
        extra_argv, extra_env = kernel_extras(
            offline=spec is not None and not spec.network,
            e2b_formats=not debugger,
            notebook=notebook_settings(sandbox_id, spec) if debugger else None,
        )
        argv = [*kernel_argv(self.python, debugger=debugger), *extra_argv]
        if language != "python":  # another language's kernel starts as its kernelspec says
            argv, extra_env = await self.kernelspecs.command(sandbox_id, language)
        # the kernel's uid may be one no account in the image has: who it is comes from the environment
        # (getpass, pip and others read $USER and $LOGNAME before the passwd file)
        env = {**IDENTITY_ENV, **extra_env, **(spec.env if spec is not None else {})}  # the sandbox's env wins
        transport = "ipc" if language == "python" else "tcp"  # every kernel takes tcp, not all ipc (Deno)
        request = start_request(kernel_id, hmac_key, argv, cwd=workdir, env=env, transport=transport)
        return await self.kernels.launch(sandbox_id, kernel_id, "start", hmac_key, request)

    async def attach_kernel(
        self, sandbox_id: str, kernel_id: str, key: str, timeout: float | None = None
    ) -> dict[str, Any]:
        return await self.kernels.launch(sandbox_id, kernel_id, "attach", key, attach_request(kernel_id, key), timeout)

    async def kernel_client(self, sandbox_id: str, kernel_id: str, info: dict[str, Any]) -> KernelClient:
        relay = self.kernels.relay(sandbox_id, kernel_id)
        if relay is None:
            return await super().kernel_client(sandbox_id, kernel_id, info)
        return DirectKernelClient(relay)  # the relay's messages read in-process: no second ZMQ hop

    async def kernel_exit_reason(self, sandbox_id: str, kernel_id: str) -> str | None:
        return await self.kernels.exit_reason(sandbox_id, kernel_id)

    async def stop_kernel(self, sandbox_id: str, kernel_id: str) -> None:
        await self.kernels.stop(sandbox_id, kernel_id)

    async def kernel_log(self, sandbox_id: str, kernel_id: str) -> str:
        """The tail of a kernel's output (its stdout and stderr), as the launcher keeps it."""
        return await self.kernels.log(sandbox_id, kernel_id)

    # -- stats --------------------------------------------------------------------------
    async def stats(self, sandbox_id: str) -> dict[str, Any]:
        return await self.usage.stats(sandbox_id)

    async def engine_stats(self, sandbox_id: str) -> dict[str, Any]:
        """``stats`` as the engine gives them (``docker stats``): slow (its collector ticks once a
        second), but it works wherever the engine runs."""
        return await self.usage.engine_stats(sandbox_id)

    # -- files --------------------------------------------------------------------------
    async def write_file(self, sandbox_id: str, path: str, data: bytes) -> None:
        await self.files.write(sandbox_id, path, data)

    def stream_file(self, sandbox_id: str, path: str) -> AsyncIterator[bytes]:
        return self.files.stream(sandbox_id, path)

    async def list_files(self, sandbox_id: str, path: str) -> list[dict[str, Any]]:
        return await self.files.list(sandbox_id, path)

    async def remove_file(self, sandbox_id: str, path: str) -> None:
        await self.files.remove(sandbox_id, path)

    # -- commands (docker_exec.py) --------------------------------------------------------
    async def exec_stream(
        self,
        sandbox_id: str,
        argv: list[str],
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        user: str | None = None,
        pty: tuple[int, int] | None = None,
        stdin: bool = False,
        tag: str | None = None,
    ) -> ExecStream:
        self.check_exec_user(user)
        return await self.processes.start(sandbox_id, argv, cwd, env or {}, pty, stdin, tag)

    def exec_streams(self, sandbox_id: str) -> list[ExecStream]:
        return self.processes.table.running(sandbox_id)

    def find_exec(self, sandbox_id: str, pid: int) -> ExecStream:
        return self.processes.table.find(sandbox_id, pid)

    async def stat_file(self, sandbox_id: str, path: str) -> dict[str, Any]:
        return await self.files.stat(sandbox_id, path)

    async def list_tree(self, sandbox_id: str, path: str, depth: int) -> list[dict[str, Any]]:
        return await self.files.tree(sandbox_id, path, depth)

    async def make_dir(self, sandbox_id: str, path: str) -> dict[str, Any]:
        return await self.files.make_dir(sandbox_id, path)

    async def move_file(self, sandbox_id: str, source: str, destination: str) -> dict[str, Any]:
        return await self.files.move(sandbox_id, source, destination)

    async def watch_dir(self, sandbox_id: str, path: str, recursive: bool) -> DirWatch:
        return await self.files.watch(sandbox_id, path, recursive)

    # -- pause and the working directory's files (docker_pause.py, issue 23) ----------------
    async def memory_problem(self, sandbox_id: str, spec: SandboxSpec) -> str | None:
        return await self.pausing.memory_problem(sandbox_id, spec)

    async def pause(self, sandbox_id: str, keep_memory: bool) -> None:
        await self.pausing.pause(sandbox_id, keep_memory)

    async def resume(self, sandbox_id: str, memory: bool) -> None:
        await self.pausing.resume(sandbox_id, memory)

    def pack_files(self, sandbox_id: str) -> AsyncIterator[bytes]:
        return self.files.pack(sandbox_id)

    async def unpack_files(self, sandbox_id: str, chunks: AsyncIterator[bytes]) -> None:
        await self.files.unpack(sandbox_id, chunks)

    # -- one-shot runs ------------------------------------------------------------------
    runs_once = True

    async def start_once(self, run: OneShotProgram) -> OneShotSandbox:
        return await self.one_shots.start(run)

    async def once_unusable(self, box: OneShotSandbox) -> str | None:
        return self.one_shots.unusable(box)

    async def discard_once(self, box: OneShotSandbox) -> None:
        await self.one_shots.discard(box)

    async def run_once(
        self, run: OneShotProgram, started: Callable[[], None], box: OneShotSandbox | None = None
    ) -> OneShotResult:
        return await self.one_shots.run(run, started, box)

    async def stop_once(self, run_id: str) -> None:
        await self.one_shots.stop(run_id)

    async def close(self) -> None:
        await self.one_shots.close()
        await self.processes.table.close_all()
        await self.kernels.close()  # the kernels stay (a restarted server may reattach)
        await self.volumes.close(sandboxes_left=bool(self._container_ids))
        await self.engine.close()
