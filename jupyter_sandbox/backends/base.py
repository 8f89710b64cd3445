"""The one interface every backend implements.

A backend owns the isolation boundary (a container, or a private directory with rlimits)
and the kernel processes inside it. It does not know about owners, quotas or the HTTP
API: that is the manager's job. Kernels are reached with jupyter_client over ZMQ; the
backend returns host-side connection info for each kernel it starts.

Contract (tests/test_contract.py runs it against every backend):

- ``create(sandbox_id, spec, labels)`` makes the sandbox and returns when it can start
  kernels. Raises ``BackendUnavailable`` when the engine cannot be reached and
  ``InvalidInput`` for a spec it cannot honour (unknown image, runtime).
- ``start_kernel(sandbox_id, kernel_id, cwd, key, debugger)`` starts one kernel and returns its
  connection info (a dict for ``KernelClient.load_connection_info``); ``debugger=False`` starts
  it without ipykernel's debugger (see ``kernel_argv``). Several kernels
  per sandbox share its filesystem and limits. Starting a kernel again with the same
  ``kernel_id`` and ``key`` (after ``stop_kernel``) gives the same connection info, so
  clients that stay connected (a notebook's websocket) reach the new kernel; ``key=None``
  makes a new random key. A kernel of a sandbox without network gets ``kernel_extras(True)``
  (pip fails at once, with a hint).
- ``kernel_exit_reason(sandbox_id, kernel_id)`` is None while the kernel process runs,
  else a sentence saying why it is gone (exit code, out of memory).
- ``stop_kernel``, ``remove`` are idempotent. ``restart`` stops every kernel and gives a
  fresh sandbox with the same spec (kernels must be started again).
- Files: paths are relative to the sandbox's working directory; ``..`` or absolute
  paths that leave it raise ``InvalidInput``. ``stream_file`` reads a regular file in chunks
  (never a pipe); ``write_file`` leaves nothing behind when the file does not fit (TooLarge).
- ``stats`` returns ``{"cpu_percent", "memory_used", "memory_limit", "pids"}``.
- ``list_existing(labels)`` lists sandboxes carrying those labels that still exist (for
  reaping after a crash), as dicts of their labels.
- One-shot runs (a capability; ``runs_once`` says whether a backend has it): ``run_once(run,
  started)`` runs one program in a fresh sandbox made for it alone, feeds it ``run.stdin``,
  and returns its exit status and (capped) output; the sandbox is gone, or on its way out,
  when it returns, and is never used again. ``start_once(run)`` makes and starts that
  sandbox ahead of time (its program waiting for stdin) for a later ``run_once(run, started,
  box)``: a pool keeps a few; ``once_unusable(box)`` says why a waiting one cannot be used
  (None when it can) and ``discard_once(box)`` removes one. ``stop_once(run_id)`` ends a run
  early. A backend without the capability says so with ``require_once()`` (BackendUnavailable,
  503).
- ``logs(sandbox_id, kernel_ids)`` returns ``{"container": text or None, "kernels": {kernel
  id: text}}``: the end (``LOG_LIMIT`` characters) of what the sandbox and each kernel
  process wrote to stdout/stderr. ``container`` is None for a backend without one.
- Commands (the process service; a capability, BackendUnavailable where missing):
  ``exec_stream(sandbox_id, argv, cwd, env, user, pty, stdin, tag)`` starts ``argv`` in the sandbox
  as its user (``user`` None or "user": no other account is offered) and returns an ``ExecStream``
  (exec_stream.py) that outlives the caller; ``exec_streams`` lists the running ones and
  ``find_exec`` finds one by pid (an ended one for a while, for its exit). They end with the sandbox.
- Pause and the working directory's files (a capability, issue 23; BackendUnavailable where
  missing): ``memory_problem(sandbox_id, spec)`` says why a pause of that sandbox cannot keep its
  memory now (None: it can). ``pause(sandbox_id, keep_memory)`` stops the sandbox (its kernels' relays closed first,
  the kernels left as they are): it holds no CPU or memory after, and ``resume(sandbox_id,
  memory)`` starts it again, its processes restored when its memory was kept (the kernels are then
  reattached with ``attach_kernel``), else empty (its working directory too: files come back with
  ``unpack_files``). ``pack_files`` streams the working directory as a tar archive, made inside
  the sandbox; ``unpack_files`` extracts one there, as the sandbox's user (never on the host).
"""

from __future__ import annotations

import abc
import os
import posixpath
import socket
import stat
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from traitlets import Instance, Int, Unicode, default
from traitlets.config import LoggingConfigurable

from ..errors import BackendUnavailable, InvalidInput, KernelDied, NotFound
from ..models import SandboxSpec
from ..outputs import OutputPolicy
from . import programs
from .dir_watch import DirWatch
from .exec_stream import ExecStream
from .kernel_client import KernelClient, zmq_kernel_client

LABEL_PREFIX = "org.jupyter-sandbox"
WORKDIR = "/home/user"
LOG_LIMIT = 64 * 1024  # characters of each log that `logs` returns (the end of it)


def tail_file(path: str, limit: int = LOG_LIMIT) -> str:
    """The last ``limit`` characters of a regular text file ("" when there is none). Never
    follows a symlink, never waits on a FIFO: the kernel that writes the file may have made it one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 4 * limit))  # UTF-8: at most 4 bytes a character
        return f.read(4 * limit).decode(errors="replace")[-limit:]


def kernel_extras(
    offline: bool, e2b_formats: bool = True, notebook: dict[str, Any] | None = None
) -> tuple[list[str], dict[str, str]]:
    """Extra kernel arguments and environment for a sandbox with (``offline=False``) or without
    network. With ``e2b_formats``, the kernel displays DataFrames and figures with E2B's formats
    too (programs/e2b_display.py, run at the kernel's start): the API's kernels, not a notebook's,
    whose outputs nbformat would refuse (objects under a MIME type it allows only text for).
    ``notebook``: the kernel is a notebook's whole kernel, in the sandbox these settings describe
    (``notebook_settings``); its ``%%sandbox`` cells run in place (programs/in_place_magics.py).
    Without network: pip looks at no index
    (PIP_NO_INDEX), so it fails at once instead of retrying for seconds, and a failed
    ``!pip install``/``%pip install`` says why in one line (programs/pip_hint.py), and so does a
    refused connection or failed name lookup (programs/network_hint.py). The sandbox's
    own env comes after these."""
    display = [f"--IPKernelApp.exec_lines={programs.source('e2b_display')}"] if e2b_formats else []
    if notebook is not None:
        in_place = (
            programs.source("in_place_magics")
            + f"\n_jupyter_sandbox_in_place(get_ipython(), {notebook!r})\ndel _jupyter_sandbox_in_place\n"
        )
        display.append(f"--IPKernelApp.exec_lines={in_place}")
    if not offline:
        return display, {}
    hints = [f"--IPKernelApp.exec_lines={programs.source(hint)}" for hint in ("pip_hint", "network_hint")]
    return [*display, *hints], {"PIP_NO_INDEX": "1"}


def notebook_settings(sandbox_id: str, spec: SandboxSpec | None) -> dict[str, Any]:
    """What a notebook's kernel is told of its sandbox (``kernel_extras``' ``notebook``): its id and
    the settings ``%%sandbox`` options are compared with (none known without its spec)."""
    if spec is None:
        return {"id": sandbox_id}
    return {
        "id": sandbox_id,
        "image": spec.image,
        "memory": spec.memory,
        "disk": spec.disk,
        "cpus": spec.cpus,
        "network": spec.network,
    }


def kernel_argv(python: str, connection_file: str = "{connection_file}", debugger: bool = True) -> list[str]:
    """The command that starts a Python kernel (ipykernel) with that connection file; without
    ``debugger``, ipykernel's debugger is off and debugpy not loaded (programs/kernel_without_debugger.py)."""
    if debugger:
        return [python, "-m", "ipykernel_launcher", "-f", connection_file]
    return [python, "-c", programs.source("kernel_without_debugger"), "-f", connection_file]


def labels(server_id: str, owner: str, *, sandbox: str | None = None, execution: str | None = None) -> dict[str, str]:
    """The labels on everything a server makes: whose it is, and which server made it (for reaping).

    ``uid`` and ``host`` say which Unix user on which machine ran that server: `jupyter sandbox
    prune` only ever looks at its own user's containers on its own host.
    """
    out = {
        f"{LABEL_PREFIX}.managed": "true",
        f"{LABEL_PREFIX}.server": server_id,
        f"{LABEL_PREFIX}.owner": owner,
        f"{LABEL_PREFIX}.uid": str(os.getuid()),
        f"{LABEL_PREFIX}.host": socket.gethostname(),
    }
    if sandbox:
        out[f"{LABEL_PREFIX}.sandbox"] = sandbox
    if execution:
        out[f"{LABEL_PREFIX}.execution"] = execution
    return out


def labelled_id(found: dict[str, str]) -> str | None:
    """The sandbox or execution id a leftover's labels name."""
    return found.get(f"{LABEL_PREFIX}.sandbox") or found.get(f"{LABEL_PREFIX}.execution")


@dataclass
class OneShotProgram:
    """A program to run once, in a fresh sandbox made for it alone (a one-shot execution)."""

    run_id: str
    spec: SandboxSpec  # image, memory, cpus, pids, disk, network, env
    command: list[str]  # argv, run as the sandbox's unprivileged user
    stdin: bytes  # everything the program reads, sent at once
    labels: dict[str, str]
    max_output: int  # bytes kept of stdout and of stderr (the rest is read and dropped)
    cpu_shares: int | None = None
    read_only_dirs: dict[str, str] = field(default_factory=dict)  # host dir -> path inside
    # The program's last word is one line on stdout: the run is over when a newline ends what
    # it wrote there, without waiting for the sandbox to stop (its exit code is then None).
    ends_with_line: bool = False


@dataclass
class OneShotSandbox:
    """A one-shot sandbox started ahead of its run (``start_once``), its program waiting for stdin."""

    run_id: str
    handle: Any = None  # the backend's own (on Docker: the container and its attached stream)


@dataclass
class OneShotResult:
    """What a one-shot program left: its output (capped), exit code (None: it ended with a line) and OOM kill."""

    stdout: bytes
    stderr: bytes
    exit_code: int | None
    out_of_memory: bool


def confine(path: str | None, root: str = WORKDIR) -> str:
    """``path`` (relative to ``root``, or absolute inside it) as an absolute path; refuses escapes."""
    path = (path or "").strip() or "."
    if "\x00" in path:
        raise InvalidInput("path must not contain NUL bytes", field="path")
    full = posixpath.normpath(path if path.startswith("/") else posixpath.join(root, path))
    if full != root and not full.startswith(root + "/"):
        raise InvalidInput(f"path {path!r} is outside the sandbox's working directory {root}", field="path")
    return full


class _BackendMeta(abc.ABCMeta, type(LoggingConfigurable)):  # type: ignore[misc]
    pass


class SandboxBackend(LoggingConfigurable, metaclass=_BackendMeta):  # type: ignore[metaclass]
    """Abstract base; subclasses are chosen by ``SandboxApp.backend``."""

    name = "base"
    isolation = ""  # one sentence for the sandbox model: what this backend isolates
    python: str  # the Python command in its sandboxes: each backend's own configurable trait

    # Whether it enforces a spec's egress allow-list (``spec.egress``: names through a filtering proxy)
    filters_egress = False

    default_image = Unicode("jupyter-sandbox:latest", help="Image for sandboxes that name none.").tag(config=True)
    max_commands = Int(
        64, help="Most commands (E2B's process service) running at once in one sandbox; beyond it a start is a 429."
    ).tag(config=True)
    # what a sandbox's outputs may carry into a user's page: used by the relay and the collector
    outputs = Instance(OutputPolicy)

    @default("outputs")
    def _outputs_default(self) -> OutputPolicy:
        return OutputPolicy(parent=self)

    def memory_limit(self, spec: SandboxSpec) -> int:
        """The most memory a sandbox of this spec may hold (what ``stats`` reports as its limit)."""
        return spec.memory

    @abc.abstractmethod
    async def create(self, sandbox_id: str, spec: SandboxSpec, labels: dict[str, str]) -> None: ...

    @abc.abstractmethod
    async def start_kernel(
        self,
        sandbox_id: str,
        kernel_id: str,
        cwd: str | None = None,
        key: bytes | None = None,
        debugger: bool = True,
        language: str = "python",
    ) -> dict[str, Any]:
        """Start a kernel of ``language`` (python, or one ``languages`` names) in the sandbox."""

    async def languages(self, sandbox_id: str) -> list[str]:
        """The languages the sandbox has kernels for besides Python. None by default."""
        return []

    async def kernel_client(self, sandbox_id: str, kernel_id: str, info: dict[str, Any]) -> KernelClient:
        """A client connected to a started kernel (``info``: its connection info); jupyter_client's by default."""
        return zmq_kernel_client(info)

    @abc.abstractmethod
    async def kernel_exit_reason(self, sandbox_id: str, kernel_id: str) -> str | None: ...

    @abc.abstractmethod
    async def stop_kernel(self, sandbox_id: str, kernel_id: str) -> None: ...

    @abc.abstractmethod
    async def restart(self, sandbox_id: str) -> None: ...

    @abc.abstractmethod
    async def remove(self, sandbox_id: str) -> None: ...

    @abc.abstractmethod
    async def stats(self, sandbox_id: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def list_existing(self, labels: dict[str, str] | None = None) -> list[dict[str, str]]: ...

    @abc.abstractmethod
    async def write_file(self, sandbox_id: str, path: str, data: bytes) -> None: ...

    @abc.abstractmethod
    def stream_file(self, sandbox_id: str, path: str) -> AsyncIterator[bytes]:
        """A regular file's bytes in chunks, in linear time and memory (a pipe or device is
        refused: it could block forever). Errors (NotFound, IsADirectory) come before any chunk."""

    async def read_file(self, sandbox_id: str, path: str) -> bytes:
        return b"".join([chunk async for chunk in self.stream_file(sandbox_id, path)])

    @abc.abstractmethod
    async def list_files(self, sandbox_id: str, path: str) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def remove_file(self, sandbox_id: str, path: str) -> None: ...

    @abc.abstractmethod
    async def logs(self, sandbox_id: str, kernel_ids: list[str]) -> dict[str, Any]: ...

    # The filesystem of E2B's envd (optional: a backend without it answers 503). An entry is
    # programs/files.py's ``info``: name, path, type (file/dir/symlink), size, modified, mode,
    # permissions, owner, group, symlink_target (a link's, which is never followed).

    def _no_files(self, what: str) -> BackendUnavailable:
        return BackendUnavailable(f"{what} is not supported by the {self.name} backend")

    async def stat_file(self, sandbox_id: str, path: str) -> dict[str, Any]:
        """One entry (NotFound if there is none)."""
        raise self._no_files("stat")

    async def list_tree(self, sandbox_id: str, path: str, depth: int) -> list[dict[str, Any]]:
        """The entries below a directory down to ``depth`` levels (1: its own)."""
        raise self._no_files("listing with depth")

    async def make_dir(self, sandbox_id: str, path: str) -> dict[str, Any]:
        """Makes a directory and its parents; AlreadyExists if the path is taken."""
        raise self._no_files("making a directory")

    async def move_file(self, sandbox_id: str, source: str, destination: str) -> dict[str, Any]:
        """Renames an entry (destination's folders made); returns the destination's entry."""
        raise self._no_files("moving a file")

    async def watch_dir(self, sandbox_id: str, path: str, recursive: bool) -> DirWatch:
        """A started watch on a directory (NotFound, NotADirectory); the caller closes it."""
        raise self._no_files("watching a directory")

    # -- one-shot runs (a capability) ---------------------------------------------------
    runs_once = False

    def require_once(self) -> None:
        """Raise BackendUnavailable unless this backend can run one-shot programs."""
        if not self.runs_once:
            raise BackendUnavailable(
                f"one-shot executions need a container backend; this server runs the {self.name!r} backend"
            )

    async def run_once(
        self, run: OneShotProgram, started: Callable[[], None], box: OneShotSandbox | None = None
    ) -> OneShotResult:
        """Run ``run.command`` in a fresh sandbox (``box``, started for this run by ``start_once``,
        or one made now); ``started()`` is called once it runs."""
        self.require_once()
        raise NotImplementedError

    async def start_once(self, run: OneShotProgram) -> OneShotSandbox:
        """Make and start ``run``'s sandbox now; its program waits for ``run_once`` to send stdin."""
        self.require_once()
        raise NotImplementedError

    async def once_unusable(self, box: OneShotSandbox) -> str | None:
        """Why a waiting ``box`` cannot run its program (e.g. its sandbox stopped); None when it can."""
        return None

    async def discard_once(self, box: OneShotSandbox) -> None:
        """Remove a started ``box`` that will not run."""
        await self.stop_once(box.run_id)

    async def stop_once(self, run_id: str) -> None:
        """End a one-shot run early (its sandbox is removed); nothing if it is gone."""

    # -- commands (the process service; a capability) -------------------------------------
    def _no_commands(self) -> BackendUnavailable:
        return BackendUnavailable(f"commands are not supported by the {self.name!r} backend")

    @staticmethod
    def check_exec_user(user: str | None) -> None:
        """Commands run as the sandbox's own user only (never root)."""
        if user not in (None, "", "user"):
            raise InvalidInput(f"commands run as the sandbox's user only, not as {user!r}", field="user")

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
        """Start ``argv`` in the sandbox (``pty``: in a terminal of (rows, cols); ``stdin``: its
        stdin stays open for ``ExecStream.write``); returns once it runs, with its pid."""
        raise self._no_commands()

    def exec_streams(self, sandbox_id: str) -> list[ExecStream]:
        """The sandbox's commands that still run."""
        raise self._no_commands()

    def find_exec(self, sandbox_id: str, pid: int) -> ExecStream:
        """A command of the sandbox by its pid (NotFound when there is none)."""
        raise self._no_commands()

    # -- pause, resume and the working directory's files (a capability, issue 23) -------------
    def _no_pause(self, what: str) -> BackendUnavailable:
        return BackendUnavailable(f"{what} is not supported by the {self.name!r} backend")

    async def memory_problem(self, sandbox_id: str, spec: SandboxSpec) -> str | None:
        """Why pausing the sandbox (of ``spec``) cannot keep its memory (its kernels' variables) now; None if it can."""
        return f"the {self.name} backend cannot checkpoint a sandbox's memory"

    async def pause(self, sandbox_id: str, keep_memory: bool) -> None:
        """Stop the sandbox, freeing its CPU and memory (checkpointed first with ``keep_memory``)."""
        raise self._no_pause("pausing a sandbox")

    async def resume(self, sandbox_id: str, memory: bool) -> None:
        """Start a paused sandbox again: from its checkpoint (``memory``), else afresh (empty working dir)."""
        raise self._no_pause("resuming a sandbox")

    def pack_files(self, sandbox_id: str) -> AsyncIterator[bytes]:
        """The working directory as a tar archive, in chunks (made inside the sandbox)."""
        raise self._no_pause("copying a sandbox's files")

    async def unpack_files(self, sandbox_id: str, chunks: AsyncIterator[bytes]) -> None:
        """Extract a tar archive (``pack_files``'s) into the working directory, as the sandbox's user."""
        raise self._no_pause("copying files into a sandbox")

    # -- persistent volumes (issue 23; a capability) ---------------------------------------
    # A volume is an owner's named, size-limited filesystem, mounted at ``volume_path`` in each
    # sandbox whose spec names it. Volumes are found by their meta: {"id", "owner", "name", "size",
    # "created"}; ``volume_usage`` is None while a volume is not attached.
    volume_path = Unicode(
        "/home/user/persist",
        help="Where a sandbox sees its owner's persistent volume (inside its working directory "
        "by default, so the file routes reach it too).",
    ).tag(config=True)
    volume_dir = Unicode(
        "",
        help="Folder of the persistent volumes' image files. '' = <SandboxApp.state_dir>/volumes (set by the server).",
    ).tag(config=True)

    def volumes_problem(self) -> str | None:
        """Why this backend has no persistent volumes here (None when it has)."""
        return f"the {self.name} backend has no persistent volumes"

    async def create_volume(self, owner: str, name: str, size: int) -> dict[str, Any]:
        """A new empty volume of ``size`` bytes (its image and filesystem); its meta."""
        raise BackendUnavailable(self.volumes_problem() or "")

    async def volume_metas(self) -> list[dict[str, Any]]:
        """Every volume's meta (all owners'): the caller filters."""
        return []

    async def volume_usage(self, volume_id: str) -> tuple[int, int] | None:
        """(bytes used, bytes its filesystem holds), attaching it if needed; None if unknown."""
        return None

    async def remove_volume(self, volume_id: str) -> None:
        """Delete a volume and its files (no sandbox may mount it: the caller checks)."""
        raise BackendUnavailable(self.volumes_problem() or "")

    # -- taking sandboxes back after a crash (a capability) -------------------------------
    # Set by the manager: called with (sandbox id, reason) when the backend notices that a
    # sandbox ended by itself (its container stopped, was killed or removed).
    on_exit: Callable[[str, str], None] | None = None
    # told (sandbox id, why) when a notebook kernel's running cell was told that its kernel died
    on_kernel_died: Callable[[str, str], None] | None = None

    async def adopt(self, sandbox_id: str, spec: SandboxSpec, paused: bool = False) -> None:
        """Take charge again of a running sandbox a crashed run of this server made
        (``list_existing`` found it), or of a stopped one that was ``paused``. NotFound when it
        cannot be (then it is removed)."""
        raise NotFound(f"the {self.name} backend cannot take back sandbox {sandbox_id}")

    async def attach_kernel(
        self, sandbox_id: str, kernel_id: str, key: str, timeout: float | None = None
    ) -> dict[str, Any]:
        """Connection info for a kernel still running in an adopted sandbox (its variables
        intact); KernelDied when it is gone, or when it does not answer within ``timeout``
        seconds (then it is stopped: a kernel its own code froze must not hold the server)."""
        raise KernelDied(f"the {self.name} backend cannot take back kernel {kernel_id}")

    async def close(self) -> None:
        """Release engine connections (sandboxes are removed by the manager first)."""
