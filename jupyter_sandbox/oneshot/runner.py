"""One-shot executions (python-executor's ``/api/v1`` semantics) on throwaway containers.

A request brings an uncompressed tar of files and metadata (entrypoint, stdin, script
args, env vars, pre-commands, requirements, limits). Each execution gets a fresh
container made with the Docker backend's hardened options (read-only root, tmpfs working
directory, no capabilities, no network unless asked); it is never reused and is removed
when the run ends.

How files get in without a writable root: the container's command is a small stdlib-only
supervisor (``_SUPERVISOR``, run with ``python -I -c``). The server attaches to the
container's stdin before starting it and sends one JSON header line followed by the tar
and the user's stdin (sizes in the header, so no EOF is needed: docker-py cannot set
StdinOnce). The supervisor extracts the tar into the tmpfs working directory, runs the
pre-commands, the pip install and ``python <entrypoint> args...`` one after another under
one deadline, keeps the first ``max_output_size`` bytes of stdout/stderr (draining the
rest), and writes one JSON report line to its own stdout, which the server reads from the
attach socket. Because the supervisor enforces the timeout itself, output written before a
timeout is kept; the server has its own deadline (timeout + ``setup_grace``) as a backstop.
``put_archive`` cannot be used: Docker does not copy into tmpfs mounts.

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
import io
import json
import posixpath
import re
import socket
import struct
import tarfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from traitlets import Dict, Float, Instance, Int, Unicode
from traitlets.config import LoggingConfigurable

from ..backends.base import LABEL_PREFIX, WORKDIR
from ..errors import BackendUnavailable, InvalidInput, NotFound, QuotaExceeded, SandboxError, TooLarge
from ..models import SandboxSpec

MiB = 1024**2
TIMEOUT_EXIT_CODE = 124  # what coreutils' `timeout` returns
KILL_EXIT_CODE = 137  # 128 + SIGKILL
WHEELHOUSE_MOUNT = "/run/wheelhouse"
EVAL_RUNNER_PATH = "/tmp/.jsbx-eval.py"
RESULT_PATH = "/tmp/.jsbx-result"
REQUIREMENTS_PATH = "/tmp/.jsbx-requirements.txt"
PACKAGES_DIR = "/tmp/.jsbx-site"
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Runs inside the container as its only command (stdlib only; Python 3.8+).
_SUPERVISOR = r"""
import io, json, os, signal, subprocess, sys, tarfile, threading, time

def read_exact(n, buf):
    while len(buf) < n:
        chunk = os.read(0, max(65536, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf

buf = b""
while b"\n" not in buf:
    chunk = os.read(0, 65536)
    if not chunk:
        sys.exit("jupyter-sandbox supervisor: no job on stdin")
    buf += chunk
head, _, buf = buf.partition(b"\n")
job = json.loads(head)
buf = read_exact(job["tar_size"] + job["stdin_size"], buf)
os.chdir(job["workdir"])
with tarfile.open(fileobj=io.BytesIO(buf[:job["tar_size"]])) as tf:
    # The server already refused unsafe members; the data filter (3.12+) is a second check.
    tf.extractall(job["workdir"], **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
stdin_path = "/tmp/.jsbx-stdin"
with open(stdin_path, "wb") as f:
    f.write(buf[job["tar_size"]:])
del buf
for path, text in job["files"].items():
    with open(path, "w") as f:
        f.write(text)

cap = job["cap"]
out = {"stdout": [bytearray(), 0], "stderr": [bytearray(), 0]}

def drain(stream, slot):
    # Keep the first `cap` bytes, count (and drop) the rest so the writer never blocks.
    while True:
        chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
        if not chunk:
            break
        kept, total = slot
        if len(kept) < cap:
            kept += chunk[: cap - len(kept)]
        slot[1] = total + len(chunk)

deadline = time.monotonic() + job["timeout"]
exit_code, timed_out = 0, False
for step in job["steps"]:
    env = dict(os.environ, **step.get("env", {}))
    stdin = open(stdin_path, "rb") if step.get("stdin") else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(step["argv"], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env, start_new_session=True)
    except OSError as e:
        out["stderr"][0] += ("cannot run %r: %s\n" % (step["argv"][0], e)).encode()
        exit_code = 127
        break
    readers = [threading.Thread(target=drain, args=(proc.stdout, out["stdout"]), daemon=True),
               threading.Thread(target=drain, args=(proc.stderr, out["stderr"]), daemon=True)]
    for t in readers:
        t.start()
    try:
        proc.wait(timeout=max(deadline - time.monotonic(), 0.001))
    except subprocess.TimeoutExpired:
        timed_out = True
    try:  # the whole process group: nothing the step started outlives it
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    proc.wait()
    for t in readers:
        t.join(5)
    code = proc.returncode
    exit_code = 128 - code if code < 0 else code
    if timed_out or exit_code != 0:
        break

result = None
try:
    with open(job["result_path"], "rb") as f:
        result = f.read(cap + 1).decode("utf-8", "replace")
except OSError:
    pass
report = {"exit_code": exit_code, "timed_out": timed_out, "result": result}
for name, (kept, total) in out.items():
    report[name] = kept.decode("utf-8", "replace")
    report[name + "_size"] = total
os.write(1, (json.dumps(report) + "\n").encode())
"""

# python <runner> <entrypoint> args...: runs the entrypoint as __main__ like `python
# <entrypoint>` would, and if its last statement is an expression, writes the repr of its
# value (unless None, as a REPL would) to RESULT_PATH. Errors print a normal traceback
# without the runner's own frames, so error_line points into the user's file.
_EVAL_RUNNER = r"""
import ast, os, sys, traceback, types

def main():
    path = os.path.abspath(sys.argv[1])
    sys.argv = [path] + sys.argv[2:]
    sys.path[0] = os.path.dirname(path)
    module = types.ModuleType("__main__")
    module.__file__ = path
    sys.modules["__main__"] = module
    try:
        with open(path, "rb") as f:
            tree = compile(f.read(), path, "exec", ast.PyCF_ONLY_AST)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, path, "exec"), module.__dict__)
        if last is not None:
            value = eval(compile(last, path, "eval"), module.__dict__)
            if value is not None:
                with open(RESULT_PATH, "w", encoding="utf-8") as f:
                    f.write(repr(value))
    except SystemExit:
        raise
    except BaseException as e:
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        traceback.print_exception(type(e), e, tb)
        sys.exit(1)

main()
""".replace("RESULT_PATH", repr(RESULT_PATH))


# ---------------------------------------------------------------------------
# Requests: archives and metadata


def _member_error(name: str, why: str) -> InvalidInput:
    return InvalidInput(f"archive member {name!r} refused: {why}", field="tar")


def check_archive(data: bytes, max_size: int, max_members: int) -> list[str]:
    """The regular files of an uncompressed tar, after refusing anything unsafe.

    Refused (400 naming the member): absolute paths, ``..``, links whose target leaves the
    archive's root (following the archive's own symlinks), devices, fifos. Over
    ``max_size`` bytes (archive or contents) or ``max_members`` members: 413.
    """
    if len(data) > max_size:
        raise TooLarge(f"archive is {len(data)} bytes; the limit is {max_size}")
    try:
        tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:")
        members = tf.getmembers()
    except (tarfile.TarError, EOFError) as e:
        raise InvalidInput(f"the tar part is not an uncompressed tar archive: {e}", field="tar") from e
    if len(members) > max_members:
        raise TooLarge(f"archive has {len(members)} members; the limit is {max_members}")
    if sum(m.size for m in members) > max_size:
        raise TooLarge(f"archive contents exceed {max_size} bytes")
    links: dict[str, str] = {}  # normalized symlink path -> its target (relative to its dir)
    names: dict[str, tarfile.TarInfo] = {}

    def resolve(path: str, who: str, depth: int = 0) -> str:
        """``path`` (normalized, relative) with the archive's symlinks followed; refuses escapes."""
        if depth > 32:
            raise _member_error(who, "too many levels of symbolic links")
        parts: list[str] = []
        for part in path.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise _member_error(who, "it points outside the archive")
                parts.pop()
                continue
            parts.append(part)
            current = "/".join(parts)
            if current in links:
                target = links[current]
                if target.startswith("/"):
                    raise _member_error(who, "it points outside the archive")
                resolved = resolve(posixpath.join(posixpath.dirname(current), target), who, depth + 1)
                parts = resolved.split("/") if resolved else []
        return "/".join(parts)

    for m in members:
        name = m.name
        if name.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", name):
            raise _member_error(name, "absolute path")
        if ".." in name.replace("\\", "/").split("/"):
            raise _member_error(name, "'..' in its path")
        if "\x00" in name:
            raise _member_error(name, "NUL in its path")
        if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            kind = "device" if (m.ischr() or m.isblk()) else "fifo" if m.isfifo() else "special file"
            raise _member_error(name, f"{kind}s are not allowed")
        norm = posixpath.normpath(name)
        if norm == ".":
            continue
        parent = posixpath.dirname(norm)
        if resolve(parent, name) != parent:
            raise _member_error(name, "its path goes through a symbolic link")
        if m.issym():
            if m.linkname.startswith("/"):
                raise _member_error(name, f"symbolic link to an absolute path ({m.linkname})")
            links[norm] = m.linkname
            resolve(norm, name)
        elif m.islnk():
            target = posixpath.normpath(m.linkname)
            if m.linkname.startswith("/") or target.startswith("..") or target not in names:
                raise _member_error(name, f"hard link to {m.linkname!r}, which is not a file in the archive")
        names[norm] = m
    return [n for n, m in names.items() if m.isfile() or m.islnk()]


def make_archive(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            info.mtime = int(time.time())
            tf.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _strings(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{name} must be a list of strings", field=name)
    return list(value)


def _optional_str(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string", field=name)
    return value


def _int(config: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    value = config.get(name)
    if value is None or value == 0:  # python-executor: 0 means "the default"
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise InvalidInput(f"config.{name} must be an integer", field=f"config.{name}")
    if not lo <= value <= hi:
        raise InvalidInput(f"config.{name} must be between {lo} and {hi}, not {value}", field=f"config.{name}")
    return int(value)


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
    for line in lines[frame[0] + 1:]:
        m = re.match(r"^([A-Za-z_][\w.]*)(?::|$)", line)
        if m:
            return m.group(1).rsplit(".", 1)[-1], frame[1]
    return None, frame[1]


@dataclass
class Job:
    """A validated request: what to run and with which limits."""

    archive: bytes
    entrypoint: str
    image: str
    timeout: int
    memory_mb: int
    disk_mb: int
    cpu_shares: int
    network: bool
    requirements: str | None = None
    pre_commands: list[str] = field(default_factory=list)
    stdin: bytes = b""
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    eval_last_expr: bool = False


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
    max_output_size = Int(1 * MiB, help="Bytes of stdout and of stderr kept per execution (a marker says the rest was cut).").tag(config=True)
    retention_seconds = Float(3600.0, help="How long finished executions stay visible.").tag(config=True)
    max_request_size = Int(64 * MiB, help="Largest request body (413 beyond).").tag(config=True)
    max_archive_size = Int(50 * MiB, help="Largest tar archive, and largest total size of its contents (413 beyond).").tag(config=True)
    max_archive_members = Int(10000, help="Most members in an archive (413 beyond).").tag(config=True)
    max_code_size = Int(100 * 1024, help="Largest code (or files) in an eval request, in bytes (413 beyond).").tag(config=True)
    default_timeout = Int(300, help="timeout_seconds when a request sets none.").tag(config=True)
    max_timeout = Int(3600, help="Largest timeout_seconds.").tag(config=True)
    default_memory_mb = Int(1024, help="memory_mb when a request sets none.").tag(config=True)
    max_memory_mb = Int(4096, help="Largest memory_mb.").tag(config=True)
    default_disk_mb = Int(2048, help="disk_mb (size of the tmpfs working directory) when a request sets none.").tag(config=True)
    max_disk_mb = Int(4096, help="Largest disk_mb.").tag(config=True)
    default_cpu_shares = Int(1024, help="cpu_shares (Docker's relative CPU weight) when a request sets none.").tag(config=True)
    cpus = Float(1.0, help="Hard CPU cap (cores) of every one-shot container, on top of cpu_shares.").tag(config=True)
    pids = Int(256, help="Process limit of every one-shot container.").tag(config=True)
    max_running_per_user = Int(4, help="Executions one user may have pending or running at once (429 beyond).").tag(config=True)
    setup_grace = Float(30.0, help="Seconds allowed on top of the timeout for making the container and reporting.").tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._records: dict[str, ExecutionRecord] = {}

    # -- configuration ------------------------------------------------------------------
    @property
    def backend(self):
        backend = self.manager.backend
        if backend.name != "docker":
            raise BackendUnavailable(
                f"one-shot executions need the Docker backend; this server runs the {backend.name!r} backend"
            )
        return backend

    def _image_map(self) -> dict[str, str]:
        return dict(self.images) if self.images else {i: i for i in self.manager.images}

    def resolve_image(self, docker_image: str | None = None, python_version: str | None = None) -> str:
        default = self.manager.backend.default_image
        if python_version is not None:
            if python_version not in self.python_versions:
                allowed = ", ".join(sorted(self.python_versions))
                raise InvalidInput(f"python_version {python_version!r} is not available; allowed: {allowed}", field="python_version")
            return self.python_versions[python_version] or default
        if docker_image is None:
            if self.default_python_version in self.python_versions:
                return self.python_versions[self.default_python_version] or default
            return default
        images = self._image_map()
        if docker_image not in images:
            raise InvalidInput(
                f"docker_image {docker_image!r} is not allowed; allowed: {', '.join(sorted(images))}", field="docker_image"
            )
        return images[docker_image] or default

    # -- requests -----------------------------------------------------------------------
    def check_request_size(self, size: int) -> None:
        if size > self.max_request_size:
            raise TooLarge(f"request body is {size} bytes; the limit is {self.max_request_size}")

    def parse_exec(self, archive: bytes, metadata: Any) -> Job:
        """A Job from the multipart request's ``tar`` and ``metadata`` parts."""
        if isinstance(metadata, (bytes, str)):
            try:
                metadata = json.loads(metadata or "{}")
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise InvalidInput(f"metadata is not valid JSON: {e}", field="metadata") from e
        if not isinstance(metadata, dict):
            raise InvalidInput("metadata must be a JSON object", field="metadata")
        known = {"entrypoint", "docker_image", "requirements_txt", "pre_commands", "stdin", "env_vars", "script_args", "config"}
        unknown = sorted(set(metadata) - known)
        if unknown:
            raise InvalidInput(f"unknown metadata field {unknown[0]!r}; known: {', '.join(sorted(known))}", field=unknown[0])
        image = self.resolve_image(docker_image=_optional_str(metadata.get("docker_image"), "docker_image"))
        return self._job(archive, metadata, image)

    def parse_eval(self, body: dict[str, Any]) -> Job:
        """A Job from the JSON body of ``POST eval``."""
        known = {"code", "files", "entrypoint", "stdin", "python_version", "eval_last_expr", "config"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise InvalidInput(f"unknown field {unknown[0]!r}; known: {', '.join(sorted(known))}", field=unknown[0])
        files: dict[str, bytes] = {}
        if body.get("files") is not None:
            if not isinstance(body["files"], list) or not body["files"]:
                raise InvalidInput("files must be a non-empty list of {name, content}", field="files")
            for entry in body["files"]:
                if not (isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("content"), str)):
                    raise InvalidInput("each file must be an object with string name and content", field="files")
                files[entry["name"]] = entry["content"].encode()
        elif isinstance(body.get("code"), str):
            files["main.py"] = body["code"].encode()
        else:
            raise InvalidInput("give code (a string) or files (a list of {name, content})", field="code")
        size = sum(len(c) for c in files.values())
        if size > self.max_code_size:
            raise TooLarge(f"code is {size} bytes; the limit is {self.max_code_size}")
        eval_last_expr = body.get("eval_last_expr", True)
        if not isinstance(eval_last_expr, bool):
            raise InvalidInput("eval_last_expr must be true or false", field="eval_last_expr")
        version = _optional_str(body.get("python_version"), "python_version") or self.default_python_version
        image = self.resolve_image(python_version=version)
        entrypoint = _optional_str(body.get("entrypoint"), "entrypoint")
        if entrypoint is None and "main.py" not in files:
            entrypoint = next(iter(files))  # python-executor: main.py, else the first file
        metadata = {"entrypoint": entrypoint, "stdin": body.get("stdin"), "config": body.get("config")}
        job = self._job(make_archive(files), metadata, image)
        job.eval_last_expr = eval_last_expr
        return job

    def _job(self, archive: bytes, metadata: dict[str, Any], image: str) -> Job:
        names = check_archive(archive, self.max_archive_size, self.max_archive_members)
        entrypoint = _optional_str(metadata.get("entrypoint"), "entrypoint")
        if entrypoint:
            norm = posixpath.normpath(entrypoint)
            if norm not in names:
                raise InvalidInput(f"entrypoint {entrypoint!r} is not a file in the archive", field="entrypoint")
            entrypoint = norm
        else:
            entrypoint = self.detect_entrypoint(names)
        config = metadata.get("config") or {}
        if not isinstance(config, dict):
            raise InvalidInput("config must be an object", field="config")
        known = {"timeout_seconds", "network_disabled", "memory_mb", "disk_mb", "cpu_shares"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise InvalidInput(f"unknown config field {unknown[0]!r}; known: {', '.join(sorted(known))}", field=f"config.{unknown[0]}")
        network_disabled = config.get("network_disabled", True)
        if not isinstance(network_disabled, bool):
            raise InvalidInput("config.network_disabled must be true or false", field="config.network_disabled")
        if not network_disabled and not self.manager.allow_network:
            raise InvalidInput("this server does not allow network access", field="config.network_disabled")
        requirements = _optional_str(metadata.get("requirements_txt"), "requirements_txt")
        if requirements is not None and not requirements.strip():
            requirements = None
        if requirements and network_disabled and not self.wheelhouse:
            raise InvalidInput(
                "requirements_txt needs network access (config.network_disabled=false) or a wheelhouse on the "
                "server (c.OneShotRunner.wheelhouse); this server has none, so nothing can be installed",
                field="requirements_txt",
            )
        env: dict[str, str] = {}
        for item in _strings(metadata.get("env_vars"), "env_vars"):
            key, sep, value = item.partition("=")
            if not sep or not _ENV_KEY.match(key):
                raise InvalidInput(f"env_vars entries must look like KEY=value, not {item!r}", field="env_vars")
            env[key] = value
        stdin = _optional_str(metadata.get("stdin"), "stdin") or ""
        return Job(
            archive=archive,
            entrypoint=entrypoint,
            image=image,
            timeout=_int(config, "timeout_seconds", self.default_timeout, 1, self.max_timeout),
            memory_mb=_int(config, "memory_mb", self.default_memory_mb, 32, self.max_memory_mb),
            disk_mb=_int(config, "disk_mb", self.default_disk_mb, 1, self.max_disk_mb),
            cpu_shares=_int(config, "cpu_shares", self.default_cpu_shares, 2, 262144),
            network=not network_disabled,
            requirements=requirements,
            pre_commands=_strings(metadata.get("pre_commands"), "pre_commands"),
            stdin=stdin.encode(),
            env=env,
            args=_strings(metadata.get("script_args"), "script_args"),
        )

    @staticmethod
    def detect_entrypoint(names: list[str]) -> str:
        for candidate in ("main.py", "__main__.py"):
            if candidate in names:
                return candidate
        scripts = [n for n in names if n.endswith(".py")]
        if len(scripts) == 1:
            return scripts[0]
        if not scripts:
            raise InvalidInput("no entrypoint given and the archive has no .py file", field="entrypoint")
        raise InvalidInput(
            f"no entrypoint given and the archive has several .py files ({', '.join(sorted(scripts)[:10])}); "
            "name one in metadata.entrypoint",
            field="entrypoint",
        )

    # -- registry -----------------------------------------------------------------------
    def _prune(self) -> None:
        horizon = time.time() - self.retention_seconds
        for key, record in list(self._records.items()):
            if record.finished is not None and record.finished < horizon:
                del self._records[key]

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
        page = mine[offset:offset + limit]
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
        self.backend  # noqa: B018 -- raises 503 unless this is the Docker backend
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
        """Stops a pending or running execution (its container is removed before this returns)."""
        record = self.get(owner, execution_id)
        if record.status not in ("pending", "running"):
            return record
        record.kill_requested = True
        if record.container_id:
            await self._remove_container(record.container_id)
        try:
            await asyncio.wait_for(record.done.wait(), timeout=30)
        except asyncio.TimeoutError:
            self.log.error("jupyter-sandbox: execution %s did not stop after its container was removed", record.id)
        return record

    def _labels(self, record: ExecutionRecord) -> dict[str, str]:
        return {
            f"{LABEL_PREFIX}.managed": "true",
            f"{LABEL_PREFIX}.server": self.manager.server_id,
            f"{LABEL_PREFIX}.owner": record.owner,
            f"{LABEL_PREFIX}.execution": record.id,
        }

    def _container_options(self, record: ExecutionRecord) -> dict[str, Any]:
        job = record.job
        spec = SandboxSpec(
            image=job.image, memory=job.memory_mb * MiB, cpus=self.cpus, pids=self.pids, disk=job.disk_mb * MiB,
            network=job.network, env={"PYTHONUNBUFFERED": "1", **job.env},
        )
        options = self.backend.container_options(spec, self._labels(record), host_dir=None)
        options["cpu_shares"] = job.cpu_shares
        options["stdin_open"] = True
        if job.requirements and self.wheelhouse:
            options["volumes"] = {self.wheelhouse: {"bind": WHEELHOUSE_MOUNT, "mode": "ro"}}
        return options

    def _supervisor_job(self, job: Job) -> dict[str, Any]:
        python = self.manager.backend.python
        files: dict[str, str] = {}
        steps: list[dict[str, Any]] = [{"argv": ["sh", "-c", command]} for command in job.pre_commands]
        main_env: dict[str, str] = {}
        if job.requirements:
            files[REQUIREMENTS_PATH] = job.requirements
            pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-cache-dir", "--quiet",
                   "--target", PACKAGES_DIR, "-r", REQUIREMENTS_PATH]
            if self.wheelhouse:
                pip += ["--find-links", WHEELHOUSE_MOUNT]
                if not job.network:
                    pip.append("--no-index")
            steps.append({"argv": pip})
            main_env["PYTHONPATH"] = PACKAGES_DIR + ":" + job.env["PYTHONPATH"] if "PYTHONPATH" in job.env else PACKAGES_DIR
        entry = posixpath.join(WORKDIR, job.entrypoint)
        if job.eval_last_expr:
            files[EVAL_RUNNER_PATH] = _EVAL_RUNNER
            argv = [python, EVAL_RUNNER_PATH, entry, *job.args]
        else:
            argv = [python, entry, *job.args]
        steps.append({"argv": argv, "stdin": True, "env": main_env})
        return {
            "tar_size": len(job.archive), "stdin_size": len(job.stdin), "workdir": WORKDIR, "timeout": job.timeout,
            "cap": self.max_output_size, "files": files, "steps": steps, "result_path": RESULT_PATH,
        }

    async def _run(self, record: ExecutionRecord) -> None:
        backend = self.manager.backend
        job = record.job
        report: dict[str, Any] | None = None
        supervisor_err = b""
        exit_code: int | None = None
        oom = False
        try:
            options = self._container_options(record)
            container = await backend._call(
                backend.client.containers.create, job.image, command=[backend.python, "-I", "-c", _SUPERVISOR],
                name=f"jupyter-sandbox-{record.id}", **options,
            )
            record.container_id = container.id
            if record.kill_requested:
                raise asyncio.CancelledError
            header = json.dumps(self._supervisor_job(job)).encode() + b"\n"
            sock = await backend._call(
                backend.client.api.attach_socket, container.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            try:
                await backend._call(container.start)
                record.started = time.time()
                record.status = "running"
                raw = getattr(sock, "_sock", sock)
                raw.setblocking(False)
                out, supervisor_err = await asyncio.wait_for(
                    self._talk(raw, header + job.archive + job.stdin), timeout=job.timeout + self.setup_grace
                )
            finally:
                sock.close()
            if out.strip():
                report = json.loads(out.decode("utf-8", "replace").strip().splitlines()[-1])
            state = await self._exit_state(container.id)
            exit_code, oom = state
        except asyncio.TimeoutError:
            record.error = f"the sandbox did not finish within timeout + {self.setup_grace:g}s; it was killed"
            exit_code = TIMEOUT_EXIT_CODE
        except asyncio.CancelledError:
            if not record.kill_requested:
                record.error = "the server stopped before the execution finished"
        except (SandboxError, OSError, ValueError) as e:
            if not record.kill_requested:
                message = e.message if isinstance(e, SandboxError) else f"{type(e).__name__}: {e}"
                record.error = f"the sandbox could not run: {message}"
                self.log.warning("jupyter-sandbox: execution %s failed: %s", record.id, message)
        finally:
            if record.container_id:
                await self._remove_container(record.container_id)
            self._finish(record, report, exit_code, oom, supervisor_err)

    async def _talk(self, raw: socket.socket, payload: bytes) -> tuple[bytes, bytes]:
        """Send the job on the container's stdin; read its stdout/stderr until it ends."""
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(raw, payload)
        streams = {1: bytearray(), 2: bytearray()}
        limit = 16 * self.max_output_size + MiB  # the report is JSON of capped output
        buf = bytearray()
        while True:
            try:
                chunk = await loop.sock_recv(raw, 65536)
            except (ConnectionResetError, BrokenPipeError):
                break
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 8:  # Docker's multiplexed frames: [stream, 0, 0, 0, size (4 bytes BE)]
                kind, size = buf[0], struct.unpack(">I", buf[4:8])[0]
                if len(buf) < 8 + size:
                    break
                target = streams.get(kind)
                if target is not None and len(target) < limit:
                    target += buf[8:8 + size]
                del buf[:8 + size]
        return bytes(streams[1]), bytes(streams[2])

    async def _exit_state(self, container_id: str) -> tuple[int | None, bool]:
        backend = self.manager.backend
        result = await backend._call(backend.client.api.wait, container_id, timeout=30)
        state = (await backend._call(backend.client.api.inspect_container, container_id)).get("State", {})
        return result.get("StatusCode"), bool(state.get("OOMKilled"))

    async def _remove_container(self, container_id: str) -> None:
        backend = self.manager.backend
        try:
            await backend._call(backend.client.api.remove_container, container_id, force=True)
        except NotFound:
            pass
        except SandboxError as e:
            if "already in progress" not in e.message:
                self.log.error("jupyter-sandbox: could not remove one-shot container %s: %s", container_id[:12], e.message)

    def _finish(self, record: ExecutionRecord, report: dict[str, Any] | None, exit_code: int | None, oom: bool,
                supervisor_err: bytes) -> None:
        record.finished = time.time()
        if record.started is None:
            record.started = record.finished
        job = record.job
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
                if oom else "the process was killed (SIGKILL), most likely out of memory "
                f"(memory limit {job.memory_mb} MB)"
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
        self.log.info("jupyter-sandbox: execution %s of %s %s (exit code %s)", record.id, record.owner, record.status, record.exit_code)

    def _capped(self, text: str, total: int) -> str:
        kept = len(text.encode("utf-8", "replace"))
        if total <= self.max_output_size and kept <= self.max_output_size:
            return text
        if kept > self.max_output_size:
            text = text.encode()[: self.max_output_size].decode("utf-8", "replace")
        return text + f"\n[output truncated: {max(total - self.max_output_size, 0)} more bytes not kept]\n"

    # -- lifetime -----------------------------------------------------------------------
    async def start(self) -> None:
        """Remove one-shot containers a previous run of this server left behind."""
        if self.manager.backend.name != "docker":
            return
        try:
            leftovers = await self.manager.backend.list_existing({f"{LABEL_PREFIX}.server": self.manager.server_id})
        except SandboxError as e:
            self.log.warning("jupyter-sandbox: could not list leftover executions: %s", e.message)
            return
        for labels in leftovers:
            execution = labels.get(f"{LABEL_PREFIX}.execution")
            if execution and execution not in self._records:
                self.log.info("jupyter-sandbox: removing leftover execution container %s", execution)
                await self._remove_container(f"jupyter-sandbox-{execution}")

    async def shutdown(self) -> None:
        """Kill every running execution (server shutdown)."""
        running = [r for r in self._records.values() if r.status in ("pending", "running")]
        for record in running:
            record.kill_requested = True
            if record.task is not None:
                record.task.cancel()
        await asyncio.gather(*(r.task for r in running if r.task is not None), return_exceptions=True)
