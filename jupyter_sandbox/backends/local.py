"""The embedded default when no Docker engine is reachable: kernels as subprocesses.

Each sandbox is a private directory (``home/`` is the working directory, ``run/`` holds
the kernels' ipc sockets) and its kernels run with rlimits (data size, file size, open
files) and, where the OS allows (root, or unprivileged user namespaces), an empty
network namespace. This is resource isolation, not a security boundary: the kernel runs
as the server's user and can read whatever that user can.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import resource
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from typing import Any

from jupyter_client.connect import write_connection_file
from traitlets import Bool, Unicode

from ..errors import InvalidInput, IsADirectory, NotADirectory, NotFound
from ..models import SandboxSpec
from . import local_files
from .base import WORKDIR, SandboxBackend, confine, kernel_argv, kernel_extras, notebook_settings, tail_file
from .dir_watch import DirWatch
from .exec_stream import ExecConfig, ExecStream, ExecTable
from .local_exec import start_local
from .programs.files import entries

_CLONE_NEWNET = 0x40000000
CHUNK = 1 << 20


def _enter_empty_network() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        result: int = libc.unshare(_CLONE_NEWNET)
        return result == 0
    except Exception:
        return False


def network_namespace_available() -> bool:
    """Whether a child can be put in an empty network namespace here."""
    try:
        return (
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sys; from jupyter_sandbox.backends.local import _enter_empty_network as e;"
                    " sys.exit(0 if e() else 1)",
                ],
                timeout=10,
            ).returncode
            == 0
        )
    except Exception:
        return False


class LocalBackend(SandboxBackend):
    """Kernels as local subprocesses with rlimits; honest about what that isolates."""

    name = "local"

    root = Unicode(help="Directory holding the sandboxes' private directories.").tag(config=True)
    python = Unicode(sys.executable, help="Python with ipykernel used for kernels.").tag(config=True)
    isolate_network = Bool(True, help="Put kernels in an empty network namespace when the OS allows.").tag(config=True)

    def _root_default(self) -> str:
        return os.path.join(tempfile.gettempdir(), f"jsbx-local-{os.getuid()}")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._kernels: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
        self._specs: dict[str, SandboxSpec] = {}
        self._processes = ExecTable()
        self._netns = self.isolate_network and network_namespace_available()
        self.isolation = (
            "local processes (no container): private working directory, rlimits on memory, file size and "
            + ("open files, empty network namespace" if self._netns else "open files; network NOT isolated")
            + ". Not a security boundary: code runs as the server's user."
        )
        self.log.warning("jupyter-sandbox local backend: %s", self.isolation)

    def _dir(self, sandbox_id: str) -> str:
        return os.path.join(self.root, sandbox_id)

    def _home(self, sandbox_id: str) -> str:
        if sandbox_id not in self._specs:
            raise NotFound(f"no such sandbox {sandbox_id}")
        return os.path.join(self._dir(sandbox_id), "home")

    def _host_path(self, sandbox_id: str, path: str) -> str:
        """Map a sandbox path to the host, refusing symlinks that lead out."""
        home = self._home(sandbox_id)
        inner = confine(path)
        host = os.path.join(home, os.path.relpath(inner, WORKDIR))
        real = os.path.realpath(host)
        if real != os.path.realpath(home) and not real.startswith(os.path.realpath(home) + os.sep):
            raise InvalidInput(f"path {path!r} leads outside the sandbox", field="path")
        return host

    async def create(self, sandbox_id: str, spec: SandboxSpec, labels: dict[str, str]) -> None:
        if spec.runtime == "runsc":
            raise InvalidInput("runtime 'runsc' needs the docker backend", field="runtime")
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        for sub in ("home", "run"):
            os.makedirs(os.path.join(self._dir(sandbox_id), sub), mode=0o700, exist_ok=True)
        self._specs[sandbox_id] = spec

    def _limits(self, spec: SandboxSpec) -> Callable[[], None]:
        netns = self._netns and not spec.network

        def apply() -> None:
            os.setsid()
            resource.setrlimit(resource.RLIMIT_DATA, (spec.memory, spec.memory))
            resource.setrlimit(resource.RLIMIT_FSIZE, (spec.disk, spec.disk))
            resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
            if netns:
                _enter_empty_network()

        return apply

    async def start_kernel(
        self,
        sandbox_id: str,
        kernel_id: str,
        cwd: str | None = None,
        key: bytes | None = None,
        debugger: bool = True,
        language: str = "python",
    ) -> dict[str, Any]:
        if language != "python":  # its kernels are the server's Python's; languages() names no other
            raise InvalidInput(f"language {language!r} is not available on this server's local sandboxes (python only)")
        spec = self._specs[sandbox_id]
        run = os.path.join(self._dir(sandbox_id), "run")
        name = f"k-{kernel_id}"
        conn = os.path.join(run, f"{name}.json")
        _, info = write_connection_file(
            conn,
            ip=os.path.join(run, name),
            transport="ipc",
            kernel_name="python3",
            key=key or secrets.token_hex(32).encode(),
            shell_port=1,
            iopub_port=2,
            stdin_port=3,
            control_port=4,
            hb_port=5,
        )
        home = self._home(sandbox_id)
        workdir = self._host_path(sandbox_id, cwd) if cwd else home
        if not os.path.isdir(workdir):
            raise InvalidInput(f"the working directory {confine(cwd)} does not exist in the sandbox", field="cwd")
        # without network only when the kernel really has none (an empty network namespace)
        # a notebook's kernel is the one with the debugger (core/kernels.py): no E2B formats there
        extra_argv, extra_env = kernel_extras(
            offline=self._netns and not spec.network,
            e2b_formats=not debugger,
            notebook=notebook_settings(sandbox_id, spec) if debugger else None,
        )
        child_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "MPLCONFIGDIR": os.path.join(run, "matplotlib"),
            "PYTHONDONTWRITEBYTECODE": "1",
            **extra_env,
            **spec.env,
        }
        with open(os.path.join(run, f"{name}.log"), "wb") as log:  # the child keeps its own copy
            proc = subprocess.Popen(
                [*kernel_argv(self.python, conn, debugger=debugger), *extra_argv],
                cwd=workdir,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=self._limits(spec),
            )
        self._kernels[(sandbox_id, kernel_id)] = proc
        return dict(info)

    async def kernel_exit_reason(self, sandbox_id: str, kernel_id: str) -> str | None:
        proc = self._kernels.get((sandbox_id, kernel_id))
        if proc is None:
            return "the kernel is not running"
        code = proc.poll()
        if code is None:
            return None
        if code == -signal.SIGKILL:
            return "The kernel died: it was killed (SIGKILL), possibly out of memory."
        log = await asyncio.to_thread(tail_file, os.path.join(self._dir(sandbox_id), "run", f"k-{kernel_id}.log"), 4096)
        tail = " ".join(log.strip().splitlines()[-3:])
        if "MemoryError" in tail:
            return f"The kernel died: out of memory (limit {self._specs[sandbox_id].memory} bytes). {tail}"
        return f"The kernel died (exit code {code}). {tail}"

    async def logs(self, sandbox_id: str, kernel_ids: list[str]) -> dict[str, Any]:
        if sandbox_id not in self._specs:
            raise NotFound(f"no such sandbox {sandbox_id}")
        run = os.path.join(self._dir(sandbox_id), "run")
        kernels = {k: await asyncio.to_thread(tail_file, os.path.join(run, f"k-{k}.log")) for k in kernel_ids}
        return {"container": None, "kernels": kernels}  # kernels are plain processes: no container

    async def stop_kernel(self, sandbox_id: str, kernel_id: str) -> None:
        proc = self._kernels.pop((sandbox_id, kernel_id), None)
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the kernel leads its own session
            except ProcessLookupError:
                pass
            await asyncio.to_thread(proc.wait)
        run = os.path.join(self._dir(sandbox_id), "run")
        if os.path.isdir(run):
            for entry in os.listdir(run):
                if entry.startswith(f"k-{kernel_id}"):
                    try:
                        os.unlink(os.path.join(run, entry))
                    except OSError:
                        pass

    async def restart(self, sandbox_id: str) -> None:
        await self._processes.close(sandbox_id)
        for sid, kid in [k for k in self._kernels if k[0] == sandbox_id]:
            await self.stop_kernel(sid, kid)
        home = self._home(sandbox_id)
        shutil.rmtree(home, ignore_errors=True)
        os.makedirs(home, mode=0o700, exist_ok=True)

    async def remove(self, sandbox_id: str) -> None:
        await self._processes.close(sandbox_id)
        for sid, kid in [k for k in self._kernels if k[0] == sandbox_id]:
            await self.stop_kernel(sid, kid)
        self._specs.pop(sandbox_id, None)
        shutil.rmtree(self._dir(sandbox_id), ignore_errors=True)

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
        spec = self._specs.get(sandbox_id)
        if spec is None:
            raise NotFound(f"no such sandbox {sandbox_id}")
        self._processes.check_room(sandbox_id, self.max_commands)
        home = self._home(sandbox_id)
        workdir = self._host_path(sandbox_id, cwd) if cwd else home
        if not os.path.isdir(workdir):
            raise InvalidInput(f"the working directory {confine(cwd)} does not exist in the sandbox", field="cwd")
        child_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            **({"TERM": "xterm-256color"} if pty else {}),
            **spec.env,
            **(env or {}),
        }
        config = ExecConfig(list(argv), confine(cwd) if cwd else WORKDIR, dict(env or {}), tag, pty, stdin)
        stream = await start_local(argv, workdir, child_env, config, self._limits(spec))
        self._processes.add(sandbox_id, stream)
        return stream

    def exec_streams(self, sandbox_id: str) -> list[ExecStream]:
        return self._processes.running(sandbox_id)

    def find_exec(self, sandbox_id: str, pid: int) -> ExecStream:
        return self._processes.find(sandbox_id, pid)

    async def list_existing(self, labels: dict[str, str] | None = None) -> list[dict[str, str]]:
        return []  # local kernels end with the server's session; nothing to reap

    async def stats(self, sandbox_id: str) -> dict[str, Any]:
        spec = self._specs.get(sandbox_id)
        if spec is None:
            raise NotFound(f"no such sandbox {sandbox_id}")
        procs = [p for (sid, _), p in self._kernels.items() if sid == sandbox_id and p.poll() is None]
        page = os.sysconf("SC_PAGE_SIZE")
        ticks = os.sysconf("SC_CLK_TCK")

        def sample() -> tuple[float, int]:
            cpu, rss = 0.0, 0
            for p in procs:
                try:
                    with open(f"/proc/{p.pid}/stat") as f:
                        parts = f.read().rsplit(")", 1)[1].split()
                    cpu += (int(parts[11]) + int(parts[12])) / ticks
                    with open(f"/proc/{p.pid}/statm") as f:
                        rss += int(f.read().split()[1]) * page
                except (OSError, IndexError, ValueError):
                    pass
            return cpu, rss

        cpu0, _ = sample()
        await asyncio.sleep(0.25)
        cpu1, rss = sample()
        return {
            "cpu_percent": round(100.0 * (cpu1 - cpu0) / 0.25, 2),
            "memory_used": rss,
            "memory_limit": spec.memory,
            "pids": len(procs),
        }

    async def write_file(self, sandbox_id: str, path: str, data: bytes) -> None:
        host = self._host_path(sandbox_id, path)
        if os.path.isdir(host):
            raise IsADirectory("path must name a file", field="path")
        os.makedirs(os.path.dirname(host), exist_ok=True)
        try:
            # O_NONBLOCK: a FIFO with no reader fails at once (ENXIO) instead of blocking the server
            fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK, 0o644)
        except OSError as e:
            raise InvalidInput(f"cannot write {confine(path)}: {e.strerror}", field="path") from None
        with os.fdopen(fd, "wb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise InvalidInput(f"{confine(path)} is not a regular file", field="path")
            await asyncio.to_thread(f.write, data)

    async def stream_file(self, sandbox_id: str, path: str) -> AsyncIterator[bytes]:
        host = self._host_path(sandbox_id, path)
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below
            fd = os.open(host, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise NotFound(f"no such file: {confine(path)}") from None
        except IsADirectoryError:
            raise IsADirectory(f"{confine(path)} is a directory", field="path") from None
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectory(f"{confine(path)} is a directory", field="path")
            if not stat.S_ISREG(mode):
                raise InvalidInput(
                    f"{confine(path)} is not a regular file (a pipe or device cannot be read)", field="path"
                )
            while chunk := await asyncio.to_thread(f.read, CHUNK):
                yield chunk

    async def list_files(self, sandbox_id: str, path: str) -> list[dict[str, Any]]:
        host = self._host_path(sandbox_id, path)
        inner = confine(path)
        if not os.path.exists(host):
            raise NotFound(f"no such directory: {inner}")
        if not os.path.isdir(host):
            raise NotADirectory(f"not a directory: {inner}", field="path")
        return entries(host, shown_as=inner)

    async def remove_file(self, sandbox_id: str, path: str) -> None:
        host, _ = local_files.host_entry(self._home(sandbox_id), path)  # a link goes, not what it points at
        if os.path.realpath(host) == os.path.realpath(self._home(sandbox_id)):
            raise InvalidInput("refusing to remove the working directory itself", field="path")
        if os.path.isdir(host) and not os.path.islink(host):
            shutil.rmtree(host)
        elif os.path.lexists(host):
            os.unlink(host)
        else:
            raise NotFound(f"no such file or directory: {confine(path)}")

    async def close(self) -> None:
        await self._processes.close_all()  # a local sandbox's commands end with the server

    async def stat_file(self, sandbox_id: str, path: str) -> dict[str, Any]:
        return await local_files.stat_file(self._home(sandbox_id), path)

    async def list_tree(self, sandbox_id: str, path: str, depth: int) -> list[dict[str, Any]]:
        return await local_files.list_tree(self._home(sandbox_id), path, depth)

    async def make_dir(self, sandbox_id: str, path: str) -> dict[str, Any]:
        return await local_files.make_dir(self._home(sandbox_id), path)

    async def move_file(self, sandbox_id: str, source: str, destination: str) -> dict[str, Any]:
        return await local_files.move_file(self._home(sandbox_id), source, destination)

    async def watch_dir(self, sandbox_id: str, path: str, recursive: bool) -> DirWatch:
        return await local_files.watch_dir(self._home(sandbox_id), path, recursive)
