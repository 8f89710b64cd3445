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
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import secrets
import select
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import Any

from traitlets import Dict, Float, Int, Unicode

from ..errors import (
    BackendUnavailable,
    InvalidInput,
    IsADirectory,
    KernelDied,
    NotADirectory,
    NotFound,
    SandboxError,
    TooLarge,
)
from ..models import SandboxSpec, format_size, parse_size
from .base import (
    LABEL_PREFIX,
    LOG_LIMIT,
    WORKDIR,
    OnceBox,
    OnceResult,
    OnceRun,
    SandboxBackend,
    confine,
    kernel_argv,
    kernel_extras,
)
from .cgroup import ContainerCgroup
from .kernel_channels import DirectKernelClient
from .kernel_client import KernelClient
from .kernel_relay import KernelExited, KernelRelay, KernelRelayError, attach_request, open_docker_exec, start_request

SANDBOX_NETWORK = "jupyter-sandbox"
SANDBOX_BRIDGE = "jsbx0"  # its host interface, named so firewall rules can match it

# File operations run inside the sandbox as its user and answer with these exit codes (our
# own protocol: no engine or coreutils wording is parsed).
MISSING, NOT_A_DIRECTORY, IS_A_DIRECTORY, NOT_A_FILE, NO_ROOM = 72, 73, 74, 75, 76
EXEC_OUTPUT_LIMIT = 8 << 20  # bytes of a short command's stdout (a listing) or stderr the server takes


# Runs a command as uid:gid (argv: uid gid command...), from a root exec: no supplementary groups,
# and with the uid change go every capability (and execve drops any it had left).
_AS_USER = (
    "import os, sys\n"
    "uid, gid = int(sys.argv[1]), int(sys.argv[2])\n"
    "os.setgroups([]); os.setresgid(gid, gid, gid); os.setresuid(uid, uid, uid)\n"
    "os.execvp(sys.argv[3], sys.argv[3:])\n"
)


@functools.cache
def seccomp_profile() -> str:
    """The sandboxes' seccomp profile as the engine takes it (JSON text): Docker's default one of
    the 20.10 engine (moby/moby profiles/seccomp/default.json, Apache-2.0) without io_uring_setup,
    io_uring_enter, io_uring_register and the unconditional ptrace."""
    text = resources.files(__package__).joinpath("seccomp.json").read_text(encoding="utf-8")
    return json.dumps(json.loads(text), separators=(",", ":"))


def _hang_up(sock) -> None:
    """End an exec stream at once: shut the socket down (waking a thread blocked reading it, which a
    mere close does not), then close it."""
    raw = getattr(sock, "_sock", sock)  # docker-py's SocketIO drops it (None) once closed
    if raw is not None:
        with contextlib.suppress(OSError):
            raw.shutdown(socket.SHUT_RDWR)
    sock.close()


_LIST_SCRIPT = r"""
import json, os, stat, sys
p = sys.argv[1]
if not os.path.exists(p):
    sys.exit(72)
if not os.path.isdir(p):
    sys.exit(73)
out = []
for e in sorted(os.scandir(p), key=lambda e: e.name):
    st = e.stat(follow_symlinks=False)
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else "file"
    out.append({"name": e.name, "path": os.path.join(p, e.name), "type": kind, "size": st.st_size, "modified": st.st_mtime})
print(json.dumps(out))
"""
# Only a regular file is read (a FIFO or device would block or never end).
_READ_SCRIPT = 'test -e "$1" || exit 72; test -d "$1" && exit 74; test -f "$1" || exit 75; exec cat -- "$1"'
_REMOVE_SCRIPT = 'test -e "$1" || test -L "$1" || exit 72; rm -rf -- "$1"'
# A write that does not fit leaves nothing behind.
_WRITE_SCRIPT = (
    'test -d "$1" && exit 74; mkdir -p -- "$(dirname -- "$1")" || exit 76; cat > "$1" || { rm -f -- "$1"; exit 76; }'
)


@dataclass
class _OnceContainer:
    """A started one-shot container and the stream attached to its program's stdin/stdout."""

    cid: str
    sock: Any  # docker-py's attach socket
    taken: bool = False  # a run (or a discard) has it: it removes the container


class DockerBackend(SandboxBackend):
    """Hardened containers: no network unless asked, read-only root, no capabilities."""

    name = "docker"
    isolation = (
        "Docker container: own filesystem (read-only root, size-capped tmpfs), no network unless asked, "
        "kernels as a non-root user with no capabilities, no-new-privileges, a seccomp profile, "
        "memory/CPU/pids limits"
    )

    docker_url = Unicode("", help="Docker engine URL; empty uses DOCKER_HOST or the default socket.").tag(config=True)
    runtime = Unicode("runc", help="Default OCI runtime: 'runc', or 'runsc' for gVisor.").tag(config=True)
    user = Unicode(
        "1000:1000", help="uid:gid that kernels and file commands run as inside the container (never root)."
    ).tag(config=True)
    launcher_user = Unicode(
        "1001:1001",
        help="uid:gid of the kernel launcher inside the container (never root, never the uid of `user`): code in "
        "the sandbox cannot signal, trace or write into a process of another uid. Needs no passwd entry.",
    ).tag(config=True)
    socket_root = Unicode(
        "",
        help="Where the server makes its private folder for the host side of kernel sockets (a new random "
        "name, mode 0700, each start). '' = the system's temp dir. Keep it short: a socket path has 107 bytes.",
    ).tag(config=True)
    container_log_size = Unicode(
        "1m", help="Most of a container's own output the engine keeps on the host (its json-file log)."
    ).tag(config=True)
    kernel_start_timeout = Float(60.0, help="Seconds for the launcher to start a kernel in a sandbox.").tag(config=True)
    relay_bytes_per_second = Int(
        4 << 20,
        help="Bytes per second the server reads from one kernel's link (bursts of 4 s allowed); beyond it the "
        "link is read later and the flood waits in its own sandbox, so one sandbox cannot starve the others.",
    ).tag(config=True)
    relay_messages_per_second = Int(
        500, help="Messages per second the server takes from one kernel's link (bursts of 4 s allowed)."
    ).tag(config=True)
    liveness_timeout = Float(
        6.0,
        help="Seconds of silence, pings unanswered, after which a kernel's stream is taken for dead (an engine "
        "may keep an exec stream open after its container died).",
    ).tag(config=True)
    tmp_size = Unicode(
        "128m", help="Size of the /tmp tmpfs in each container (held in memory, as the working directory)."
    ).tag(config=True)
    network_mode = Unicode(
        SANDBOX_NETWORK,
        help="Docker network for sandboxes that ask for network. The default one is made on "
        f"first use (a bridge, {SANDBOX_BRIDGE}, with no traffic between containers); scripts/setup-docker.sh "
        "also keeps it from the host's own services and the cloud metadata address (iptables).",
    ).tag(config=True)
    extra_labels = Dict(help="Labels added to every container.").tag(config=True)
    python = Unicode("python", help="Python command in the image that has ipykernel.").tag(config=True)
    engine_threads = Int(
        16, help="Threads for calls to the Docker engine (its own pool: a slow call never holds the event loop)."
    ).tag(config=True)
    stream_threads = Int(
        64,
        help="Threads for long engine streams (one-shot output, file transfers); beyond this many at once, "
        "new ones wait.",
    ).tag(config=True)
    engine_timeout = Float(60.0, help="Seconds before a call to the Docker engine is given up.").tag(config=True)
    runsc_min_pids = Int(
        256,
        help="Smallest pids limit for gVisor containers: its sentry's own threads count against the host "
        "cgroup, and below this the whole sandbox dies at kernel start.",
    ).tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._client = None
        self._runtimes: dict[str, list[str]] | None = None  # name -> its runtime args, as the engine says
        self._network_ready = False
        self._executor = ThreadPoolExecutor(max_workers=self.engine_threads, thread_name_prefix="jsbx-docker")
        self._streams = ThreadPoolExecutor(max_workers=self.stream_threads, thread_name_prefix="jsbx-stream")
        self._relays: dict[tuple[str, str], KernelRelay] = {}  # (sandbox, kernel) -> its relay
        self._ended: dict[str, str] = {}  # sandbox id -> why its container stopped
        self._watchers: set[asyncio.Task] = set()
        self._sockets_dir: str | None = None
        self._containers: dict[str, str] = {}  # sandbox id -> container id
        self._specs: dict[str, SandboxSpec] = {}
        self._cpu_samples: dict[str, tuple[float, int, int]] = {}  # the engine's: (when, total, system)
        self._cgroups: dict[str, ContainerCgroup] = {}  # sandbox id -> its container's cgroup files
        self._cgroup_cpu: dict[str, tuple[float, int, float]] = {}  # sandbox id -> (when, CPU ns, last percent)
        self._once: dict[str, str] = {}  # one-shot run id -> container id
        self._removals: set[asyncio.Task] = set()  # one-shot containers being removed in the background

    # -- engine -------------------------------------------------------------------------
    def _engine(self):
        """The docker-py client, made (and pinged) on first use. Only called in the engine's threads."""
        if self._client is None:
            import docker

            try:
                client = (
                    docker.DockerClient(base_url=self.docker_url, timeout=int(self.engine_timeout))
                    if self.docker_url
                    else docker.from_env(timeout=int(self.engine_timeout))
                )
                client.ping()
            except Exception as e:
                raise BackendUnavailable(
                    f"Docker engine not reachable ({e.__class__.__name__}: {e}). Start it (scripts/setup-docker.sh "
                    "does on Debian), point DOCKER_HOST at it, or set c.SandboxApp.backend = 'local'."
                ) from e
            self._client = client
        return self._client

    @staticmethod
    def available(docker_url: str = "") -> bool:
        try:
            import docker

            client = docker.DockerClient(base_url=docker_url) if docker_url else docker.from_env()
            client.ping()
            client.close()
            return True
        except Exception:
            return False

    async def _call(self, fn: Callable[..., Any], *, streaming: bool = False) -> Any:
        """``fn(docker_client)`` in a thread, engine errors mapped. Short API calls share the
        engine's pool; ``streaming`` ones (reading a run's output, moving a file) that last as long
        as the sandbox makes them last get the streams' pool, so they never hold up the others."""
        pool = self._streams if streaming else self._executor
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, lambda: fn(self._engine()))
        except Exception as e:
            raise self._mapped(e) from e

    @staticmethod
    def _mapped(e: BaseException) -> BaseException:
        """The project's error for an engine error (by class, never by wording); others as they are."""
        import docker.errors

        if isinstance(e, docker.errors.ImageNotFound):
            return InvalidInput(
                f"image not found on this host: {e.explanation}. Build the default one with "
                "scripts/build-images.sh, or `docker pull` / `docker build` the one you named",
                field="image",
            )
        if isinstance(e, docker.errors.NotFound):
            return NotFound(f"container gone: {e.explanation}")
        if isinstance(e, docker.errors.DockerException):  # APIError included
            return BackendUnavailable(f"Docker engine error: {getattr(e, 'explanation', None) or e}")
        return e

    def _container_id(self, sandbox_id: str) -> str:
        cid = self._containers.get(sandbox_id)
        if cid is None:
            raise NotFound(f"no container for sandbox {sandbox_id}")
        return cid

    async def _ensure_network(self) -> None:
        """The sandboxes' own network, made when missing: a bridge where containers cannot reach
        each other (the host firewall rules that fence it off come from scripts/setup-docker.sh)."""
        if self._network_ready:
            return

        def ensure(c) -> bool:
            if c.api.networks(names=[SANDBOX_NETWORK]):
                return False
            c.api.create_network(
                SANDBOX_NETWORK,
                driver="bridge",
                check_duplicate=True,
                options={
                    "com.docker.network.bridge.name": SANDBOX_BRIDGE,
                    "com.docker.network.bridge.enable_icc": "false",
                },
                labels={f"{LABEL_PREFIX}.managed": "true"},
            )
            return True

        if await self._call(ensure):
            self.log.warning(
                "jupyter-sandbox: made the Docker network %s for sandboxes with network; without the firewall rules "
                "of scripts/setup-docker.sh they can reach this host's services and the cloud metadata address",
                SANDBOX_NETWORK,
            )
        self._network_ready = True

    async def _check_runtime(self, runtime: str, network: bool = False) -> None:
        """InvalidInput naming the field when the engine has no such runtime, or runs it without
        a network for a sandbox that asks for one (the engine's runtimes are asked once)."""
        if self._runtimes is None:
            info = await self._call(lambda c: c.info())
            self._runtimes = {
                name: list((spec or {}).get("runtimeArgs") or []) for name, spec in (info.get("Runtimes") or {}).items()
            }
        if network and "--network=none" in self._runtimes.get(runtime, []):
            raise InvalidInput(
                f"sandboxes with network are not available under {runtime} on this Docker engine (it runs "
                f"{runtime} with --network=none); ask for runtime 'runc' or no network",
                field="network",
            )
        if runtime not in self._runtimes:
            raise InvalidInput(
                f"runtime {runtime!r} is not available on this Docker engine (it has {', '.join(sorted(self._runtimes))}); "
                "scripts/setup-docker.sh registers runsc",
                field="runtime",
            )

    def _socket_dir(self) -> str:
        """The server's private folder for the host side of kernel sockets (made on first use)."""
        if self._sockets_dir is None:
            self._sockets_dir = tempfile.mkdtemp(prefix="jsbx-", dir=self.socket_root or None)  # 0700, random
        return self._sockets_dir

    # -- lifecycle ----------------------------------------------------------------------
    def _ids(self) -> tuple[str, str]:
        """``user`` and ``launcher_user`` as "uid:gid", checked (a bad setting is the server's fault)."""
        ids = []
        for name in ("user", "launcher_user"):
            uid, _, gid = getattr(self, name).partition(":")
            if not uid.isdigit() or not (gid or uid).isdigit() or 0 in (int(uid), int(gid or uid)):
                raise BackendUnavailable(f"DockerBackend.{name} must be a numeric 'uid:gid' other than root")
            ids.append(f"{int(uid)}:{int(gid or uid)}")
        if ids[0].partition(":")[0] == ids[1].partition(":")[0]:
            raise BackendUnavailable("DockerBackend.launcher_user must be another uid than DockerBackend.user")
        return ids[0], ids[1]

    def _as_user(self, command: list[str]) -> list[str]:
        """``command`` for a root exec that runs it as the sandbox's user, with no capability."""
        uid, _, gid = self._ids()[0].partition(":")
        return [self.python, "-I", "-c", _AS_USER, uid, gid, *command]

    def container_options(self, spec: SandboxSpec, labels: dict[str, str], once: bool = False) -> dict[str, Any]:
        """The hardened ``containers.run`` keyword arguments for a spec. A sandbox's container runs as
        root with SETUID, SETGID and KILL only (for the launcher; see the module's docstring), and
        its env is not in the container's environment; a one-shot run's (``once``) runs its one
        program as ``user`` with no capability at all, its env in the environment."""
        user = self._ids()[0]
        uid, _, gid = user.partition(":")
        runtime = spec.runtime or self.runtime
        options: dict[str, Any] = dict(
            user=user if once else "0:0",
            network_mode=self.network_mode if spec.network else "none",
            read_only=True,
            tmpfs={
                "/tmp": f"rw,nosuid,nodev,size={self.tmp_size}",
                WORKDIR: f"rw,nosuid,nodev,size={spec.disk},uid={uid},gid={gid},mode=0755",
            },
            cap_drop=["ALL"],
            cap_add=[] if once else ["SETUID", "SETGID", "KILL"],
            security_opt=["no-new-privileges", f"seccomp={seccomp_profile()}"],
            pids_limit=max(spec.pids, self.runsc_min_pids) if runtime == "runsc" else spec.pids,
            # The tmpfs mounts are charged to the container's memory: room for them on top of
            # the memory asked for, so a full disk is ENOSPC and never kills the kernel.
            mem_limit=self.memory_limit(spec),
            memswap_limit=self.memory_limit(spec),
            nano_cpus=int(spec.cpus * 1e9),
            init=True,
            labels={**self.extra_labels, **labels},
            environment=dict(spec.env) if once else {},
            working_dir=WORKDIR,
            hostname="sandbox",
            runtime=runtime,
            ipc_mode="private",
            # The container's own output lands in a file on the host (the engine's log): code in
            # a one-shot run can write there (/proc/1/fd/1: its PID 1 is the sandbox's user), so it is capped.
            log_config={"type": "json-file", "config": {"max-size": self.container_log_size, "max-file": "1"}},
        )
        return options

    def memory_limit(self, spec: SandboxSpec) -> int:
        """The container's memory limit: the memory asked for, plus its working directory and /tmp."""
        return spec.memory + spec.disk + parse_size(self.tmp_size, "tmp_size")

    async def _create_container(self, name: str, image: str, command: list[str], options: dict[str, Any]) -> str:
        """A created (not started) container's id; never pulls (a registry may hang or be absent)."""
        await self._check_runtime(options["runtime"], network=options["network_mode"] != "none")
        if options["network_mode"] == SANDBOX_NETWORK:
            await self._ensure_network()
        container = await self._call(lambda c: c.containers.create(image, command=command, name=name, **options))
        return container.id

    async def create(self, sandbox_id: str, spec: SandboxSpec, labels: dict[str, str]) -> None:
        image = spec.image or self.default_image
        options = self.container_options(spec, labels)
        self.log.info(
            "creating container for sandbox %s: image=%s runtime=%s memory=%s cpus=%s network=%s",
            sandbox_id,
            image,
            options["runtime"],
            format_size(spec.memory),
            spec.cpus,
            spec.network,
        )
        making = asyncio.ensure_future(
            self._create_container(f"jupyter-sandbox-{sandbox_id}", image, ["sleep", "infinity"], options)
        )
        try:
            cid = await asyncio.shield(making)
        except asyncio.CancelledError:
            # The engine makes it anyway: wait for it, so that the caller's cleanup can remove it.
            self._containers[sandbox_id] = await making
            raise
        self._containers[sandbox_id] = cid
        self._specs[sandbox_id] = spec
        self._ended.pop(sandbox_id, None)
        await self._call(lambda c: c.api.start(cid))
        self._cpu_baseline(sandbox_id)

    async def adopt(self, sandbox_id: str, spec: SandboxSpec) -> None:
        name = f"jupyter-sandbox-{sandbox_id}"
        state = await self._call(lambda c: c.api.inspect_container(name))
        if not state.get("State", {}).get("Running"):
            raise NotFound(f"the container of sandbox {sandbox_id} is not running")
        self._containers[sandbox_id] = state["Id"]
        self._specs[sandbox_id] = spec
        self._cpu_baseline(sandbox_id)

    # -- kernels: a launcher per kernel, relayed over the exec stream ---------------------
    async def _launcher(
        self,
        sandbox_id: str,
        kernel_id: str,
        mode: str,
        key: str,
        request: dict[str, Any],
        timeout: float | None = None,
    ) -> tuple[KernelRelay, dict[str, Any]]:
        """Run the launcher in ``mode``; its relay, started, and the kernel's connection info."""
        cid = self._container_id(sandbox_id)
        api = await self._call(lambda c: c.api)
        kernel_user, launcher_user = self._ids()
        request = {**request, "kernel_user": kernel_user, "launcher_user": launcher_user}
        # root, and out of the sandbox's folders: the launcher takes its own user first thing
        stream = await open_docker_exec(
            api,
            cid,
            mode,
            user="0:0",
            python=self.python,
            workdir="/",
            run=lambda blocking: self._call(lambda _: blocking()),
        )
        relay = KernelRelay(
            stream.reader,
            stream.writer,
            self._socket_dir(),
            kernel_id,
            key,
            liveness_timeout=self.liveness_timeout,
            outputs=self.outputs,
            bytes_per_second=self.relay_bytes_per_second,
            messages_per_second=self.relay_messages_per_second,
        )
        info = await relay.start(request)
        self._relays[(sandbox_id, kernel_id)] = relay
        relay.exited.add_done_callback(lambda _: self._kernel_ended(sandbox_id, kernel_id))
        timeout = timeout or self.kernel_start_timeout
        try:
            await relay.wait_ready(timeout=timeout)
        except (KernelExited, asyncio.TimeoutError) as e:
            if mode == "attach" and not isinstance(e, KernelExited):
                # a kernel that runs but never answers (its own code stopped it): killed, so
                # the server can give its context a fresh one (SIGKILL ends a stopped process)
                await self.stop_kernel(sandbox_id, kernel_id)
                raise KernelDied(f"the kernel did not answer within {timeout:g} s") from None
            await self._drop(sandbox_id, kernel_id)
            why = await self._exit_reason(sandbox_id, e.info) if isinstance(e, KernelExited) else "no answer"
            raise KernelDied(f"the kernel did not start: {why}") from None
        return relay, info

    async def start_kernel(self, sandbox_id, kernel_id, cwd=None, key=None, debugger=True) -> dict[str, Any]:
        workdir = confine(cwd) if cwd else WORKDIR
        if workdir != WORKDIR:
            code, _, _ = await self._exec(sandbox_id, ["test", "-d", workdir])
            if code != 0:
                raise InvalidInput(f"the working directory {workdir} does not exist in the sandbox", field="cwd")
        # The same kernel id and key give the same addresses (host sockets are named after the
        # id): a notebook's websocket, still connected, reaches the new kernel after a restart.
        key = key.decode() if isinstance(key, bytes) else key or secrets.token_hex(32)
        spec = self._specs.get(sandbox_id)
        extra_argv, extra_env = kernel_extras(offline=spec is not None and not spec.network)
        argv = [*kernel_argv(self.python, debugger=debugger), *extra_argv]
        env = {**extra_env, **(spec.env if spec is not None else {})}  # the sandbox's env wins
        _, info = await self._launcher(
            sandbox_id, kernel_id, "start", key, start_request(kernel_id, key, argv, cwd=workdir, env=env)
        )
        return info

    async def attach_kernel(
        self, sandbox_id: str, kernel_id: str, key: str, timeout: float | None = None
    ) -> dict[str, Any]:
        _, info = await self._launcher(sandbox_id, kernel_id, "attach", key, attach_request(kernel_id, key), timeout)
        return info

    async def kernel_client(self, sandbox_id: str, kernel_id: str, info: dict[str, Any]) -> KernelClient:
        relay = self._relays.get((sandbox_id, kernel_id))
        if relay is None:
            return await super().kernel_client(sandbox_id, kernel_id, info)
        return DirectKernelClient(relay)  # the relay's messages read in-process: no second ZMQ hop

    def _kernel_ended(self, sandbox_id: str, kernel_id: str) -> None:
        """A kernel's relay ended. If its stream closed, the container may have stopped: look once."""
        relay = self._relays.get((sandbox_id, kernel_id))
        if relay is None or relay.exited.cancelled() or relay.exited.result().get("reason") != "stream closed":
            return
        watcher = asyncio.ensure_future(self._watch_container(sandbox_id))
        self._watchers.add(watcher)  # held until done: a task nobody holds may be collected mid-way
        watcher.add_done_callback(self._watchers.discard)

    async def _watch_container(self, sandbox_id: str, looks: int = 10) -> None:
        """Look at the container a few times: the stream of a killed one can close before the
        engine says it stopped."""
        for _ in range(looks):
            if await self._check_container(sandbox_id) is not None or sandbox_id not in self._containers:
                return
            await asyncio.sleep(0.5)

    async def _check_container(self, sandbox_id: str) -> str | None:
        """Why the sandbox's container stopped (remembered, and told to ``on_exit``), or None while it runs."""
        if sandbox_id in self._ended:
            return self._ended[sandbox_id]
        if sandbox_id not in self._containers:
            return None
        cid = self._containers[sandbox_id]
        try:
            state = (await self._call(lambda c: c.api.inspect_container(cid))).get("State", {})
        except SandboxError:
            state = {"Status": "removed"}
        if state.get("Running"):
            return None
        if state.get("OOMKilled"):
            reason = "The sandbox ran out of memory and its container stopped. Restart the sandbox to continue."
        elif state.get("Status") == "removed":
            reason = "The sandbox's container was removed outside this server. Restart the sandbox to continue."
        else:
            reason = (
                f"The sandbox's container stopped (exit code {state.get('ExitCode')}), e.g. killed or at its "
                "process limit. Restart the sandbox to continue."
            )
        if sandbox_id in self._containers:  # not removed meanwhile by the server itself
            self._ended[sandbox_id] = reason
            if self.on_exit is not None:
                self.on_exit(sandbox_id, reason)
        return reason

    async def _exit_reason(self, sandbox_id: str, info: dict[str, Any]) -> str:
        """A sentence for a kernel's end, from the launcher's report (or the container's state)."""
        if info.get("reason") == "stream closed":
            return (
                await self._check_container(sandbox_id)
                or "the link to the kernel closed (is the container overloaded?)"
            )
        if info.get("error"):
            return str(info["error"])
        if info.get("signal") == 9 or info.get("code") == 137:
            spec = self._specs.get(sandbox_id)
            limit = format_size(self.memory_limit(spec)) if spec else "?"
            return (
                f"The kernel died: it was killed (SIGKILL), most likely out of memory (the sandbox holds "
                f"{limit}, its files included). Restart the context to continue."
            )
        tail = " ".join(str(info.get("log") or "").strip().splitlines()[-3:])
        what = f"signal {info['signal']}" if info.get("signal") else f"exit code {info.get('code')}"
        return f"The kernel died ({what}). {tail}".strip()

    async def kernel_exit_reason(self, sandbox_id, kernel_id) -> str | None:
        # No engine call while the kernel runs: the launcher reports its end on the stream.
        relay = self._relays.get((sandbox_id, kernel_id))
        if relay is None:
            return self._ended.get(sandbox_id) or "the kernel is not running"
        if not relay.exited.done():
            return None
        return await self._exit_reason(sandbox_id, relay.exited.result())

    async def _drop(self, sandbox_id: str, kernel_id: str) -> None:
        relay = self._relays.pop((sandbox_id, kernel_id), None)
        if relay is not None:
            await relay.close()

    async def stop_kernel(self, sandbox_id, kernel_id) -> None:
        relay = self._relays.get((sandbox_id, kernel_id))
        if relay is not None and not relay.exited.done():
            try:
                await relay.stop_kernel(timeout=10)
            except KernelRelayError as e:
                self.log.debug("stopping kernel %s: %s", kernel_id, e)
        await self._drop(sandbox_id, kernel_id)

    async def logs(self, sandbox_id: str, kernel_ids: list[str]) -> dict[str, Any]:
        cid = self._container_id(sandbox_id)
        # The container's own output (its init and `sleep`): engine-level trouble shows here.
        text = (await self._call(lambda c: c.api.logs(cid, tail=1000))).decode(errors="replace")[-LOG_LIMIT:]
        return {
            "container": text,
            "kernels": {k: (await self.kernel_log(sandbox_id, k))[-LOG_LIMIT:] for k in kernel_ids},
        }

    async def kernel_log(self, sandbox_id: str, kernel_id: str) -> str:
        """The tail of a kernel's output (its stdout and stderr), as the launcher keeps it."""
        relay = self._relays.get((sandbox_id, kernel_id))
        if relay is None:
            return ""
        try:
            return await relay.log(timeout=5)
        except KernelRelayError:
            return ""

    async def restart(self, sandbox_id) -> None:
        for sid, kid in [k for k in self._relays if k[0] == sandbox_id]:
            await self._drop(sid, kid)  # the restart ends every process in it
        cid = self._container_id(sandbox_id)
        await self._call(lambda c: c.api.restart(cid, timeout=2))
        self._cpu_samples.pop(sandbox_id, None)
        self._cgroups.pop(sandbox_id, None)
        self._cpu_baseline(sandbox_id)
        self._ended.pop(sandbox_id, None)

    async def remove(self, sandbox_id) -> None:
        cid = self._containers.pop(sandbox_id, None) or f"jupyter-sandbox-{sandbox_id}"
        for sid, kid in [k for k in self._relays if k[0] == sandbox_id]:
            await self._drop(sid, kid)
        self._specs.pop(sandbox_id, None)
        self._cpu_samples.pop(sandbox_id, None)
        self._cgroups.pop(sandbox_id, None)
        self._cgroup_cpu.pop(sandbox_id, None)
        self._ended.pop(sandbox_id, None)
        await self._remove_container(cid)

    async def _remove_container(self, cid: str) -> None:
        import docker.errors

        def remove(c) -> None:
            try:
                c.api.remove_container(cid, force=True)
            except docker.errors.NotFound:
                pass  # gone already
            except docker.errors.APIError as e:
                if e.status_code != 409:  # 409: a removal of it is already under way
                    raise

        await self._call(remove)

    async def list_existing(self, labels: dict[str, str] | None = None) -> list[dict[str, str]]:
        filters = [f"{LABEL_PREFIX}.managed=true"] + [f"{k}={v}" for k, v in (labels or {}).items()]
        found = await self._call(lambda c: c.api.containers(all=True, filters={"label": filters}))
        return [dict(c.get("Labels") or {}) for c in found]

    # -- stats --------------------------------------------------------------------------
    def _cgroup_of(self, sandbox_id: str) -> ContainerCgroup | None:
        """The sandbox's container's cgroup files on this host (looked for once), None when the
        engine is elsewhere or keeps them where we cannot tell."""
        cid = self._container_id(sandbox_id)
        cgroup = self._cgroups.get(sandbox_id)
        if cgroup is None or cgroup.container_id != cid:
            cgroup = self._cgroups[sandbox_id] = ContainerCgroup(cid)
            if not cgroup.found:
                self.log.debug(
                    "jupyter-sandbox: no cgroup of container %s on this host; stats come from the engine", cid
                )
        return cgroup if cgroup.found else None

    def _cpu_baseline(self, sandbox_id: str) -> None:
        """A first CPU reading (when the cgroup is here), so the first ``stats`` has one to compare with."""
        cgroup = self._cgroup_of(sandbox_id)
        if cgroup is not None:
            with contextlib.suppress(OSError):  # stopped already: stats will say it is gone
                self._cgroup_cpu[sandbox_id] = (time.monotonic(), cgroup.sample().cpu_ns, 0.0)

    async def stats(self, sandbox_id) -> dict[str, Any]:
        cgroup = self._cgroup_of(sandbox_id)
        if cgroup is None:
            return await self.engine_stats(sandbox_id)
        try:
            now, sample = time.monotonic(), cgroup.sample()
        except OSError:
            raise NotFound(f"the container of sandbox {sandbox_id} is gone") from None
        previous = self._cgroup_cpu.get(sandbox_id)
        if previous is None or now - previous[0] > 60 or sample.cpu_ns < previous[1]:
            # nothing recent to compare with (or the container restarted): a second look shortly after
            self._cgroup_cpu[sandbox_id] = (now, sample.cpu_ns, 0.0)
            await asyncio.sleep(0.1)
            return await self.stats(sandbox_id)
        since, cpu_ns, percent = previous
        if now - since >= 0.05:  # (asked again at once: the last figure, over a longer time)
            percent = 100.0 * (sample.cpu_ns - cpu_ns) / ((now - since) * 1e9)
            self._cgroup_cpu[sandbox_id] = (now, sample.cpu_ns, percent)
        return {
            "cpu_percent": round(max(percent, 0.0), 2),
            "memory_used": sample.memory_used,
            "memory_limit": sample.memory_limit or self.memory_limit(self._specs[sandbox_id]),
            "pids": sample.pids,
        }

    async def engine_stats(self, sandbox_id: str) -> dict[str, Any]:
        """``stats`` as the engine gives them (``docker stats``): slow (its collector ticks once a
        second), but it works wherever the engine runs."""
        cid = self._container_id(sandbox_id)
        sample = await self._call(lambda c: c.api.stats(cid, stream=False, one_shot=True))
        cpu = sample.get("cpu_stats", {})
        total = cpu.get("cpu_usage", {}).get("total_usage", 0)
        system = cpu.get("system_cpu_usage", 0)
        ncpu = cpu.get("online_cpus") or os.cpu_count() or 1
        previous = self._cpu_samples.get(sandbox_id)
        if previous is None or time.monotonic() - previous[0] > 60:
            # No recent sample to diff against: take a second one shortly after.
            await asyncio.sleep(0.25)
            self._cpu_samples[sandbox_id] = (time.monotonic(), total, system)
            return await self.engine_stats(sandbox_id)
        _, prev_total, prev_system = previous
        self._cpu_samples[sandbox_id] = (time.monotonic(), total, system)
        d_system = system - prev_system
        cpu_percent = 100.0 * (total - prev_total) / d_system * ncpu if d_system > 0 else 0.0
        memory = sample.get("memory_stats", {})
        # As `docker stats` counts it: page cache that can be dropped is not use; the tmpfs
        # (working directory, /tmp) cannot be dropped and is.
        stats = memory.get("stats", {})
        used = memory.get("usage", 0) - stats.get("total_inactive_file", stats.get("inactive_file", 0))
        return {
            "cpu_percent": round(max(cpu_percent, 0.0), 2),
            "memory_used": max(used, 0),
            "memory_limit": memory.get("limit") or self.memory_limit(self._specs[sandbox_id]),
            "pids": sample.get("pids_stats", {}).get("current"),
        }

    # -- files --------------------------------------------------------------------------
    async def _exec(self, sandbox_id: str, command: list[str]) -> tuple[int | None, bytes, bytes]:
        """A short command's exit code, stdout and stderr (each at most EXEC_OUTPUT_LIMIT bytes). The
        sandbox can stop the command (it runs as the sandbox's user): after ``engine_timeout`` its
        stream is hung up, which frees the thread, and the sandbox's owner gets a 503."""
        from docker.utils.socket import frames_iter

        cid = self._container_id(sandbox_id)
        sockets: list[Any] = []

        def run(c) -> tuple[int | None, bytes, bytes]:
            exec_id = c.api.exec_create(cid, self._as_user(command), user="0:0")["Id"]
            sock = c.api.exec_start(exec_id, socket=True)
            sockets.append(sock)
            out, err = bytearray(), bytearray()
            try:
                for stream, data in frames_iter(sock, tty=False):
                    buffer = out if stream == 1 else err
                    if len(buffer) + len(data) > EXEC_OUTPUT_LIMIT:
                        raise TooLarge(f"the answer from the sandbox is over {format_size(EXEC_OUTPUT_LIMIT)}")
                    buffer += data
            finally:
                _hang_up(sock)
            return self._exit_code(c, exec_id), bytes(out), bytes(err)

        try:
            return await asyncio.wait_for(self._call(run, streaming=True), self.engine_timeout)
        except asyncio.TimeoutError:
            for sock in sockets:
                _hang_up(sock)
            raise BackendUnavailable(f"the sandbox did not answer in {self.engine_timeout:g} s") from None

    @staticmethod
    def _exit_code(c, exec_id: str) -> int | None:
        """An exec's exit code once it ended (the engine may still say Running just after its stream
        closed); None if it does not end within 2 s."""
        for _ in range(100):
            state = c.api.exec_inspect(exec_id)
            if not state["Running"]:
                return state["ExitCode"]
            time.sleep(0.02)
        return None

    @staticmethod
    def _file_error(code: int | None, path: str, err: bytes) -> SandboxError:
        if code == MISSING:
            return NotFound(f"no such file or directory: {path}")
        if code == NOT_A_DIRECTORY:
            return NotADirectory(f"not a directory: {path}", field="path")
        if code == IS_A_DIRECTORY:
            return IsADirectory(f"{path} is a directory", field="path")
        if code == NOT_A_FILE:
            return InvalidInput(f"{path} is not a regular file (a pipe or device cannot be read)", field="path")
        return InvalidInput(f"{path}: {err.decode(errors='replace').strip()[-500:]} (exit code {code})", field="path")

    async def write_file(self, sandbox_id, path, data: bytes) -> None:
        target = confine(path)
        if target == WORKDIR:
            raise IsADirectory("path must name a file", field="path")
        cid = self._container_id(sandbox_id)
        command = ["sh", "-c", _WRITE_SCRIPT, "sh", target]

        def stream(c) -> int:
            exec_id = c.api.exec_create(cid, self._as_user(command), user="0:0", stdin=True)["Id"]
            sock = c.api.exec_start(exec_id, socket=True)
            raw = getattr(sock, "_sock", sock)
            raw.settimeout(self.engine_timeout)  # a writer the sandbox stopped never holds this thread
            try:
                raw.sendall(data)
                raw.shutdown(socket.SHUT_WR)
                while raw.recv(65536):
                    pass
            except OSError:
                pass  # the writer stopped reading (e.g. the disk is full): its exit code says why
            finally:
                _hang_up(sock)
            code = self._exit_code(c, exec_id)
            return -1 if code is None else code

        code = await self._call(stream, streaming=True)
        if code == IS_A_DIRECTORY:
            raise IsADirectory(f"{target} is a directory", field="path")
        if code == NO_ROOM:
            raise TooLarge(f"{target} does not fit: the sandbox's disk is full (nothing was written)")
        if code != 0:
            raise InvalidInput(
                f"could not write {target} (exit code {code}); is the sandbox's disk full?", field="path"
            )

    async def stream_file(self, sandbox_id, path) -> AsyncIterator[bytes]:
        from docker.utils.socket import frames_iter

        target = confine(path)
        cid = self._container_id(sandbox_id)
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=8)

        sockets: list[Any] = []

        def pump(c) -> None:
            """In a stream thread: the exec's stdout into the queue, waiting while it is full."""
            put = lambda item: asyncio.run_coroutine_threadsafe(chunks.put(item), loop).result()  # noqa: E731
            try:
                command = self._as_user(["sh", "-c", _READ_SCRIPT, "sh", target])
                exec_id = c.api.exec_create(cid, command, user="0:0")["Id"]
                sock = c.api.exec_start(exec_id, socket=True)
                sockets.append(sock)
                err = bytearray()
                try:
                    for stream, data in frames_iter(sock, tty=False):
                        if stream == 1:
                            put(bytes(data))
                        elif len(err) < 4096:
                            err += data
                finally:
                    _hang_up(sock)
                code = self._exit_code(c, exec_id)
                put(None if code == 0 else self._file_error(code, target, bytes(err)))
            except BaseException as e:  # handed to the reader, who raises it
                if not sockets or not getattr(sockets[0], "closed", False):
                    put(self._mapped(e))

        reader = asyncio.ensure_future(self._call(pump, streaming=True))
        try:
            while (item := await chunks.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            if not reader.done():  # the reader left early (e.g. the client went away): stop the pump
                for sock in sockets:
                    _hang_up(sock)  # wakes its read, even of a command the sandbox stopped
                while not reader.done():
                    try:
                        chunks.get_nowait()
                    except asyncio.QueueEmpty:
                        await asyncio.sleep(0.01)
            await asyncio.gather(reader, return_exceptions=True)

    async def list_files(self, sandbox_id, path) -> list[dict[str, Any]]:
        target = confine(path)
        code, out, err = await self._exec(sandbox_id, [self.python, "-c", _LIST_SCRIPT, target])
        if code != 0:
            raise self._file_error(code, target, err)
        return json.loads(out)

    async def remove_file(self, sandbox_id, path) -> None:
        target = confine(path)
        if target == WORKDIR:
            raise InvalidInput("refusing to remove the working directory itself", field="path")
        code, _, err = await self._exec(sandbox_id, ["sh", "-c", _REMOVE_SCRIPT, "sh", target])
        if code != 0:
            raise self._file_error(code, target, err)

    # -- one-shot runs ------------------------------------------------------------------
    runs_once = True

    async def start_once(self, run: OnceRun) -> OnceBox:
        """A fresh container whose only command is ``run.command``, attached and started: its
        program waits for what ``run_once`` sends. It is attached before it starts (docker-py
        cannot set StdinOnce, so the program learns how much to read from what it is sent, not
        from EOF)."""
        options = self.container_options(run.spec, run.labels, once=True)
        options["stdin_open"] = True
        if run.cpu_shares:
            options["cpu_shares"] = run.cpu_shares
        if run.read_only_dirs:
            options["volumes"] = {host: {"bind": inside, "mode": "ro"} for host, inside in run.read_only_dirs.items()}
        image = run.spec.image or self.default_image
        making = asyncio.ensure_future(
            self._create_container(f"jupyter-sandbox-{run.run_id}", image, run.command, options)
        )
        try:
            cid = await asyncio.shield(making)
        except asyncio.CancelledError:
            # the engine makes it anyway: wait for it, and remove it
            await self._remove_container(await making)
            raise
        self._once[run.run_id] = cid
        try:
            params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            sock = await self._call(lambda c: c.api.attach_socket(cid, params=params))
            try:
                await self._call(lambda c: c.api.start(cid))
            except BaseException:
                sock.close()
                raise
        except BaseException:
            self._once.pop(run.run_id, None)
            await self._remove_container(cid)
            raise
        return OnceBox(run.run_id, _OnceContainer(cid, sock))

    async def once_unusable(self, box: OnceBox) -> str | None:
        # No engine call: a container that stopped has closed its attached stream, and a
        # waiting program writes nothing before it is sent its input.
        handle: _OnceContainer = box.handle
        raw = getattr(handle.sock, "_sock", handle.sock)
        try:
            if not select.select([raw], [], [], 0)[0]:
                return None
            data = raw.recv(1, socket.MSG_PEEK)
        except (OSError, ValueError) as e:
            return f"its stream to the container failed ({e})"
        return "its program wrote before it was sent anything" if data else "its container stopped"

    async def discard_once(self, box: OnceBox) -> None:
        handle: _OnceContainer = box.handle
        if handle.taken:
            return  # its run removes it
        handle.taken = True
        handle.sock.close()
        self._once.pop(box.run_id, None)
        await self._remove_container(handle.cid)

    async def run_once(self, run: OnceRun, started: Callable[[], None], box: OnceBox | None = None) -> OnceResult:
        """Send ``run.stdin`` to the program of ``box`` (or of a container started now) and read
        its output. A run that ends normally leaves the container's removal to the background
        (``close`` waits for it); a failed, cancelled or stopped one has it removed before this
        returns."""
        from docker.utils.socket import frames_iter

        if box is None:
            box = await self.start_once(run)
        handle: _OnceContainer = box.handle
        handle.taken = True
        cid, sock = handle.cid, handle.sock
        try:
            started()

            def talk(_c) -> tuple[bytes, bytes, bool]:
                raw = getattr(sock, "_sock", sock)
                raw.sendall(run.stdin)
                kept = {1: bytearray(), 2: bytearray()}
                for stream, data in frames_iter(sock, tty=False):
                    target = kept.get(stream)
                    if target is not None and len(target) < run.max_output:
                        target += data[: run.max_output - len(target)]
                    if run.ends_with_line and stream == 1 and data.endswith(b"\n"):
                        return bytes(kept[1]), bytes(kept[2]), True
                return bytes(kept[1]), bytes(kept[2]), False

            try:
                stdout, stderr, over = await self._call(talk, streaming=True)
            finally:
                sock.close()
            if over:
                result = OnceResult(stdout, stderr, None, False)
            else:
                exit_code = (await self._call(lambda c: c.api.wait(cid, timeout=30))).get("StatusCode")
                state = (await self._call(lambda c: c.api.inspect_container(cid))).get("State", {})
                result = OnceResult(stdout, stderr, exit_code, bool(state.get("OOMKilled")))
        except BaseException:
            self._once.pop(run.run_id, None)
            await self._remove_container(cid)
            raise
        self._once.pop(run.run_id, None)
        self._remove_soon(cid)
        return result

    def _remove_soon(self, cid: str) -> None:
        """Remove a container in the background (off a request's path); ``close`` waits for it."""
        removal = asyncio.ensure_future(self._remove_container(cid))
        self._removals.add(removal)

        def done(task: asyncio.Task) -> None:
            self._removals.discard(task)
            if not task.cancelled() and task.exception() is not None:
                self.log.error("jupyter-sandbox: removing container %s failed: %s", cid[:12], task.exception())

        removal.add_done_callback(done)

    async def stop_once(self, run_id: str) -> None:
        cid = self._once.get(run_id)
        if cid is not None:
            await self._remove_container(cid)

    async def close(self) -> None:
        if self._removals:
            await asyncio.gather(*self._removals, return_exceptions=True)  # failures were logged
        for key in list(self._relays):  # the kernels stay (a restarted server may reattach)
            await self._drop(*key)
        if self._sockets_dir is not None:
            shutil.rmtree(self._sockets_dir, ignore_errors=True)
            self._sockets_dir = None
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.get_running_loop().run_in_executor(self._executor, client.close)
