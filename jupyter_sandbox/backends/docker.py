"""Sandboxes as hardened Docker containers; kernels reached over ZMQ ipc sockets.

Each sandbox gets a host directory (mode 0777 inside a 0700 parent) bind-mounted at
``/run/sandbox-kernel``. A kernel is started with ``docker exec`` from a connection file
written there whose transport is ``ipc``; the server connects to the same socket files
through the host path. So the container needs no network at all, and no TCP port is
ever published.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jupyter_client.connect import write_connection_file
from traitlets import Dict, Float, Int, Unicode

from ..errors import BackendUnavailable, InvalidInput, IsADirectory, NotADirectory, NotFound, SandboxError, TooLarge
from ..models import SandboxSpec, format_size, parse_size
from .base import LABEL_PREFIX, WORKDIR, OnceResult, OnceRun, SandboxBackend, confine

KERNEL_DIR = "/run/sandbox-kernel"  # where the socket directory appears in the container
SANDBOX_NETWORK = "jupyter-sandbox"
SANDBOX_BRIDGE = "jsbx0"  # its host interface, named so firewall rules can match it

# File operations run inside the sandbox as its user and answer with these exit codes (our
# own protocol: no engine or coreutils wording is parsed).
MISSING, NOT_A_DIRECTORY, IS_A_DIRECTORY, NOT_A_FILE, NO_ROOM = 72, 73, 74, 75, 76
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
_WRITE_SCRIPT = 'test -d "$1" && exit 74; mkdir -p -- "$(dirname -- "$1")" || exit 76; cat > "$1" || { rm -f -- "$1"; exit 76; }'


def _default_socket_root() -> str:
    # Short on purpose: a unix socket path must fit in 107 bytes.
    return os.path.join(tempfile.gettempdir(), f"jsbx-{os.getuid()}")


class DockerBackend(SandboxBackend):
    """Hardened containers: no network unless asked, read-only root, no capabilities."""

    name = "docker"
    isolation = (
        "Docker container: own filesystem (read-only root, size-capped tmpfs), no network unless asked, "
        "no capabilities, no-new-privileges, non-root user, memory/CPU/pids limits"
    )

    docker_url = Unicode("", help="Docker engine URL; empty uses DOCKER_HOST or the default socket.").tag(config=True)
    runtime = Unicode("runc", help="Default OCI runtime: 'runc', or 'runsc' for gVisor.").tag(config=True)
    user = Unicode("1000:1000", help="uid:gid that kernels run as inside the container (never root).").tag(config=True)
    socket_root = Unicode(help="Host directory holding per-sandbox kernel socket directories.").tag(config=True)
    tmp_size = Unicode("128m", help="Size of the /tmp tmpfs in each container (held in memory, as the working directory).").tag(config=True)
    network_mode = Unicode(
        SANDBOX_NETWORK, help="Docker network for sandboxes that ask for network. The default one is made on "
        f"first use (a bridge, {SANDBOX_BRIDGE}, with no traffic between containers); scripts/setup-docker.sh "
        "also keeps it from the host's own services and the cloud metadata address (iptables)."
    ).tag(config=True)
    extra_labels = Dict(help="Labels added to every container.").tag(config=True)
    python = Unicode("python", help="Python command in the image that has ipykernel.").tag(config=True)
    engine_threads = Int(
        16, help="Threads for calls to the Docker engine (its own pool: a slow call never holds the event loop)."
    ).tag(config=True)
    stream_threads = Int(
        64, help="Threads for long engine streams (one-shot output, file transfers); beyond this many at once, "
        "new ones wait."
    ).tag(config=True)
    engine_timeout = Float(60.0, help="Seconds before a call to the Docker engine is given up.").tag(config=True)
    runsc_min_pids = Int(
        256,
        help="Smallest pids limit for gVisor containers: its sentry's own threads count against the host "
        "cgroup, and below this the whole sandbox dies at kernel start.",
    ).tag(config=True)

    def _socket_root_default(self) -> str:
        return _default_socket_root()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._client = None
        self._runtimes: set[str] | None = None
        self._network_ready = False
        self._executor = ThreadPoolExecutor(max_workers=self.engine_threads, thread_name_prefix="jsbx-docker")
        self._streams = ThreadPoolExecutor(max_workers=self.stream_threads, thread_name_prefix="jsbx-stream")
        self._kernels: dict[tuple[str, str], str] = {}  # (sandbox, kernel) -> exec id
        self._containers: dict[str, str] = {}  # sandbox id -> container id
        self._specs: dict[str, SandboxSpec] = {}
        self._cpu_samples: dict[str, tuple[float, int, int]] = {}
        self._once: dict[str, str] = {}  # one-shot run id -> container id

    # -- engine -------------------------------------------------------------------------
    def _engine(self):
        """The docker-py client, made (and pinged) on first use. Only called in the engine's threads."""
        if self._client is None:
            import docker

            try:
                client = (docker.DockerClient(base_url=self.docker_url, timeout=int(self.engine_timeout))
                          if self.docker_url else docker.from_env(timeout=int(self.engine_timeout)))
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
            c.api.create_network(SANDBOX_NETWORK, driver="bridge", check_duplicate=True, options={
                "com.docker.network.bridge.name": SANDBOX_BRIDGE,
                "com.docker.network.bridge.enable_icc": "false",
            }, labels={f"{LABEL_PREFIX}.managed": "true"})
            return True

        if await self._call(ensure):
            self.log.warning(
                "jupyter-sandbox: made the Docker network %s for sandboxes with network; without the firewall rules "
                "of scripts/setup-docker.sh they can reach this host's services and the cloud metadata address",
                SANDBOX_NETWORK,
            )
        self._network_ready = True

    async def _check_runtime(self, runtime: str) -> None:
        """InvalidInput naming the field when the engine has no such runtime (asked once)."""
        if self._runtimes is None:
            info = await self._call(lambda c: c.info())
            self._runtimes = set(info.get("Runtimes") or {})
        if runtime not in self._runtimes:
            raise InvalidInput(
                f"runtime {runtime!r} is not available on this Docker engine (it has {', '.join(sorted(self._runtimes))}); "
                "scripts/setup-docker.sh registers runsc", field="runtime",
            )

    def host_dir(self, sandbox_id: str) -> str:
        return os.path.join(self.socket_root, sandbox_id)

    # -- lifecycle ----------------------------------------------------------------------
    def container_options(self, spec: SandboxSpec, labels: dict[str, str], host_dir: str | None) -> dict[str, Any]:
        """The hardened ``containers.run`` keyword arguments for a spec (also used by one-shot runs)."""
        uid, _, gid = self.user.partition(":")
        runtime = spec.runtime or self.runtime
        options: dict[str, Any] = dict(
            user=self.user,
            network_mode=self.network_mode if spec.network else "none",
            read_only=True,
            tmpfs={
                "/tmp": f"rw,nosuid,nodev,size={self.tmp_size}",
                WORKDIR: f"rw,nosuid,nodev,size={spec.disk},uid={uid},gid={gid or uid},mode=0755",
            },
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=max(spec.pids, self.runsc_min_pids) if runtime == "runsc" else spec.pids,
            # The tmpfs mounts are charged to the container's memory: room for them on top of
            # the memory asked for, so a full disk is ENOSPC and never kills the kernel.
            mem_limit=self.memory_limit(spec),
            memswap_limit=self.memory_limit(spec),
            nano_cpus=int(spec.cpus * 1e9),
            init=True,
            labels={**self.extra_labels, **labels},
            environment=dict(spec.env),
            working_dir=WORKDIR,
            hostname="sandbox",
            runtime=runtime,
            ipc_mode="private",
        )
        if host_dir:
            options["volumes"] = {host_dir: {"bind": KERNEL_DIR, "mode": "rw"}}
        return options

    def memory_limit(self, spec: SandboxSpec) -> int:
        """The container's memory limit: the memory asked for, plus its working directory and /tmp."""
        return spec.memory + spec.disk + parse_size(self.tmp_size, "tmp_size")

    async def _create_container(self, name: str, image: str, command: list[str], options: dict[str, Any]) -> str:
        """A created (not started) container's id; never pulls (a registry may hang or be absent)."""
        await self._check_runtime(options["runtime"])
        if options["network_mode"] == SANDBOX_NETWORK:
            await self._ensure_network()
        container = await self._call(lambda c: c.containers.create(image, command=command, name=name, **options))
        return container.id

    async def create(self, sandbox_id: str, spec: SandboxSpec, labels: dict[str, str]) -> None:
        image = spec.image or self.default_image
        os.makedirs(self.socket_root, mode=0o700, exist_ok=True)
        os.chmod(self.socket_root, 0o700)
        host_dir = self.host_dir(sandbox_id)
        os.makedirs(host_dir, exist_ok=True)
        # The kernel (uid 1000 in the container) creates its sockets here; the 0700
        # parent keeps other host users out.
        os.chmod(host_dir, 0o777)
        options = self.container_options(spec, labels, host_dir)
        self.log.info(
            "creating container for sandbox %s: image=%s runtime=%s memory=%s cpus=%s network=%s",
            sandbox_id, image, options["runtime"], format_size(spec.memory), spec.cpus, spec.network,
        )
        try:
            cid = await self._create_container(f"jupyter-sandbox-{sandbox_id}", image, ["sleep", "infinity"], options)
            self._containers[sandbox_id] = cid
            self._specs[sandbox_id] = spec
            await self._call(lambda c: c.api.start(cid))
        except SandboxError:
            shutil.rmtree(host_dir, ignore_errors=True)
            raise

    async def start_kernel(self, sandbox_id, kernel_id, cwd=None, key=None) -> dict[str, Any]:
        host_dir = self.host_dir(sandbox_id)
        name = f"k-{kernel_id}"
        host_file = os.path.join(host_dir, f"{name}.json")
        # ipc "ports" are suffixes of the socket path: <ip>-<port>.
        ports = dict(shell_port=1, iopub_port=2, stdin_port=3, control_port=4, hb_port=5)
        _, info = write_connection_file(
            host_file, ip=os.path.join(KERNEL_DIR, name), transport="ipc", kernel_name="python3",
            key=key or secrets.token_hex(32).encode(), **ports
        )
        os.chmod(host_file, 0o644)
        cid = self._container_id(sandbox_id)
        inner = f"{KERNEL_DIR}/{name}"
        workdir = confine(cwd) if cwd else WORKDIR
        # cd in the shell, not the engine's workdir: a missing directory is then our exit code 72,
        # not an engine error worded differently by runc and runsc.
        command = [
            "sh", "-c",
            f'cd "$1" || exit 72; echo $$ > {inner}.pid; umask 000; exec {self.python} -m ipykernel_launcher '
            f"-f {inner}.json > {inner}.log 2>&1", "sh", workdir,
        ]
        exec_id = (await self._call(lambda c: c.api.exec_create(cid, command, user=self.user)))["Id"]
        await self._call(lambda c: c.api.exec_start(exec_id, detach=True))
        self._kernels[(sandbox_id, kernel_id)] = exec_id
        info = dict(info)
        info["ip"] = os.path.join(host_dir, name)
        return info

    def kernel_log(self, sandbox_id: str, kernel_id: str) -> str:
        try:
            with open(os.path.join(self.host_dir(sandbox_id), f"k-{kernel_id}.log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    async def kernel_exit_reason(self, sandbox_id, kernel_id) -> str | None:
        exec_id = self._kernels.get((sandbox_id, kernel_id))
        if exec_id is None:
            return "the kernel is not running"
        try:
            state = await self._call(lambda c: c.api.exec_inspect(exec_id))
        except SandboxError:
            state = {}
        if state.get("Running"):
            return None
        spec = self._specs.get(sandbox_id)
        container_gone = await self._container_exit_reason(sandbox_id)
        if container_gone:
            return container_gone
        code = state.get("ExitCode")
        if code == MISSING:
            raise InvalidInput("the working directory does not exist in the sandbox", field="cwd")
        if code in (137, -9):
            limit = format_size(spec.memory) if spec else "?"
            return (
                f"The kernel died: it was killed (exit code {code}), most likely out of memory "
                f"(the sandbox's memory limit is {limit}). Restart the context to continue."
            )
        tail = self.kernel_log(sandbox_id, kernel_id).strip().splitlines()[-3:]
        return f"The kernel died (exit code {code}). " + " ".join(tail)

    async def _container_exit_reason(self, sandbox_id: str) -> str | None:
        """Why the whole container stopped, or None while it runs."""
        try:
            cid = self._container_id(sandbox_id)
            state = (await self._call(lambda c: c.api.inspect_container(cid))).get("State", {})
        except SandboxError:
            return "The sandbox's container is gone (removed). Create a new sandbox."
        if state.get("Running"):
            return None
        if state.get("OOMKilled"):
            return "The sandbox ran out of memory and its container stopped. Restart the sandbox to continue."
        return (
            f"The sandbox's container stopped (exit code {state.get('ExitCode')}), e.g. after hitting its "
            "process limit. Restart the sandbox to continue."
        )

    async def stop_kernel(self, sandbox_id, kernel_id) -> None:
        exec_id = self._kernels.pop((sandbox_id, kernel_id), None)
        name = f"k-{kernel_id}"
        if exec_id is not None and sandbox_id in self._containers:
            try:
                await self._exec(sandbox_id, ["sh", "-c", f"kill -9 $(cat {KERNEL_DIR}/{name}.pid) 2>/dev/null; true"])
            except SandboxError as e:
                self.log.debug("stopping kernel %s: %s", kernel_id, e)
        host_dir = self.host_dir(sandbox_id)
        if os.path.isdir(host_dir):
            for entry in os.listdir(host_dir):
                if entry.startswith(name + "-") or entry.startswith(name + "."):
                    try:
                        os.unlink(os.path.join(host_dir, entry))
                    except OSError:
                        pass

    async def restart(self, sandbox_id) -> None:
        for sid, kid in [k for k in self._kernels if k[0] == sandbox_id]:
            await self.stop_kernel(sid, kid)
        cid = self._container_id(sandbox_id)
        await self._call(lambda c: c.api.restart(cid, timeout=2))
        self._cpu_samples.pop(sandbox_id, None)

    async def remove(self, sandbox_id) -> None:
        for key in [k for k in self._kernels if k[0] == sandbox_id]:
            self._kernels.pop(key, None)
        cid = self._containers.pop(sandbox_id, None) or f"jupyter-sandbox-{sandbox_id}"
        self._specs.pop(sandbox_id, None)
        self._cpu_samples.pop(sandbox_id, None)
        await self._remove_container(cid)
        shutil.rmtree(self.host_dir(sandbox_id), ignore_errors=True)

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
    async def stats(self, sandbox_id) -> dict[str, Any]:
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
            return await self.stats(sandbox_id)
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
    async def _exec(self, sandbox_id: str, command: list[str]) -> tuple[int, bytes, bytes]:
        cid = self._container_id(sandbox_id)

        def run(c) -> tuple[int, bytes, bytes]:
            exec_id = c.api.exec_create(cid, command, user=self.user)["Id"]
            out, err = c.api.exec_start(exec_id, demux=True)
            return c.api.exec_inspect(exec_id)["ExitCode"], out or b"", err or b""

        return await self._call(run, streaming=True)

    @staticmethod
    def _file_error(code: int, path: str, err: bytes) -> SandboxError:
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
            exec_id = c.api.exec_create(cid, command, user=self.user, stdin=True)["Id"]
            sock = c.api.exec_start(exec_id, socket=True)
            raw = getattr(sock, "_sock", sock)
            try:
                raw.sendall(data)
                raw.shutdown(socket.SHUT_WR)
                while raw.recv(65536):
                    pass
            except OSError:
                pass  # the writer stopped reading (e.g. the disk is full): its exit code says why
            finally:
                sock.close()
            for _ in range(100):
                state = c.api.exec_inspect(exec_id)
                if not state["Running"]:
                    return state["ExitCode"]
                time.sleep(0.02)
            return -1

        code = await self._call(stream, streaming=True)
        if code == IS_A_DIRECTORY:
            raise IsADirectory(f"{target} is a directory", field="path")
        if code == NO_ROOM:
            raise TooLarge(f"{target} does not fit: the sandbox's disk is full (nothing was written)")
        if code != 0:
            raise InvalidInput(f"could not write {target} (exit code {code}); is the sandbox's disk full?", field="path")

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
                exec_id = c.api.exec_create(cid, ["sh", "-c", _READ_SCRIPT, "sh", target], user=self.user)["Id"]
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
                    sock.close()
                code = c.api.exec_inspect(exec_id)["ExitCode"]
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
                    sock.close()
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

    async def run_once(self, run: OnceRun, started: Callable[[], None]) -> OnceResult:
        """A fresh container whose only command is ``run.command``; stdin sent, output read.

        The container is attached before it starts (docker-py cannot set StdinOnce, so the
        program learns how much to read from what it is sent, not from EOF), and removed when
        the run ends, whichever way it ends.
        """
        from docker.utils.socket import frames_iter

        options = self.container_options(run.spec, run.labels, host_dir=None)
        options["stdin_open"] = True
        if run.cpu_shares:
            options["cpu_shares"] = run.cpu_shares
        if run.read_only_dirs:
            options["volumes"] = {host: {"bind": inside, "mode": "ro"} for host, inside in run.read_only_dirs.items()}
        image = run.spec.image or self.default_image
        cid = await self._create_container(f"jupyter-sandbox-{run.run_id}", image, run.command, options)
        self._once[run.run_id] = cid
        try:
            params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            sock = await self._call(lambda c: c.api.attach_socket(cid, params=params))
            try:
                await self._call(lambda c: c.api.start(cid))
                started()

                def talk(_c) -> tuple[bytes, bytes]:
                    raw = getattr(sock, "_sock", sock)
                    raw.sendall(run.stdin)
                    kept = {1: bytearray(), 2: bytearray()}
                    for stream, data in frames_iter(sock, tty=False):
                        target = kept.get(stream)
                        if target is not None and len(target) < run.max_output:
                            target += data[: run.max_output - len(target)]
                    return bytes(kept[1]), bytes(kept[2])

                stdout, stderr = await self._call(talk, streaming=True)
            finally:
                sock.close()
            exit_code = (await self._call(lambda c: c.api.wait(cid, timeout=30))).get("StatusCode")
            state = (await self._call(lambda c: c.api.inspect_container(cid))).get("State", {})
            return OnceResult(stdout, stderr, exit_code, bool(state.get("OOMKilled")))
        finally:
            self._once.pop(run.run_id, None)
            await self._remove_container(cid)

    async def stop_once(self, run_id: str) -> None:
        cid = self._once.get(run_id)
        if cid is not None:
            await self._remove_container(cid)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.get_running_loop().run_in_executor(self._executor, client.close)
