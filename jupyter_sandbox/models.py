"""The shapes shared by server, client, magics and the labextension.

Every model has ``to_dict`` / ``from_dict`` (a JSON round trip). The wire names follow
E2B's code-interpreter (``Execution``, ``Result``, ``Logs``, ``ExecutionError``) so that
its SDK and ours read the same lines.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import InvalidInput

# MIME type -> Result attribute. Anything else lands in ``Result.extra``.
MIME_FIELDS: dict[str, str] = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
}
FIELD_MIMES = {v: k for k, v in MIME_FIELDS.items()}


def now() -> float:
    return time.time()


@dataclass
class OutputMessage:
    """One chunk of stdout or stderr, as E2B's callbacks receive it."""

    line: str
    timestamp: int  # Unix epoch in nanoseconds
    error: bool = False

    def __str__(self) -> str:
        return self.line


@dataclass
class ExecutionError:
    """An exception raised by the code (or a failure of the kernel running it)."""

    name: str
    value: str
    traceback: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecutionError:
        tb = data.get("traceback", "")
        if isinstance(tb, list):
            tb = "\n".join(tb)
        return cls(name=data["name"], value=data.get("value", ""), traceback=tb)

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a local traceback when the error is raised.
        return self.traceback.splitlines() or [f"{self.name}: {self.value}"]


@dataclass
class Result:
    """One MIME bundle from ``display_data`` or ``execute_result``."""

    text: str | None = None
    html: str | None = None
    markdown: str | None = None
    svg: str | None = None
    png: str | None = None
    jpeg: str | None = None
    pdf: str | None = None
    latex: str | None = None
    json: Any = None
    javascript: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    is_main_result: bool = False

    @classmethod
    def from_bundle(cls, data: dict[str, Any], is_main_result: bool = False) -> Result:
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for mime, value in data.items():
            name = MIME_FIELDS.get(mime)
            if name:
                known[name] = value.rstrip("\n") if name in ("png", "jpeg") else value
            else:
                extra[mime] = value
        return cls(**known, extra=extra, is_main_result=is_main_result)

    def bundle(self) -> dict[str, Any]:
        """The MIME bundle again, for display machinery and nbformat."""
        data = {FIELD_MIMES[name]: getattr(self, name) for name in FIELD_MIMES if getattr(self, name) is not None}
        data.update(self.extra)
        return data

    def formats(self) -> list[str]:
        names = [name for name in FIELD_MIMES if getattr(self, name) is not None]
        return names + list(self.extra)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in FIELD_MIMES if getattr(self, name) is not None}
        if self.extra:
            out["extra"] = self.extra
        out["is_main_result"] = self.is_main_result
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known and v is not None})

    def to_output(self, execution_count: int | None = None):
        """This result as an nbformat output node."""
        import nbformat.v4

        if self.is_main_result:
            return nbformat.v4.new_output("execute_result", data=self.bundle(), execution_count=execution_count)
        return nbformat.v4.new_output("display_data", data=self.bundle())

    def __repr__(self) -> str:
        if self.text is not None:
            return f"Result({self.text})"
        return f"Result(formats: {', '.join(self.formats())})"

    def _repr_mimebundle_(self, include=None, exclude=None):
        return self.bundle()


@dataclass
class Logs:
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"stdout": list(self.stdout), "stderr": list(self.stderr)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Logs:
        return cls(stdout=list(data.get("stdout", [])), stderr=list(data.get("stderr", [])))


@dataclass
class Execution:
    """Everything one run of code produced."""

    results: list[Result] = field(default_factory=list)
    logs: Logs = field(default_factory=Logs)
    error: ExecutionError | None = None
    execution_count: int | None = None

    @property
    def text(self) -> str | None:
        for result in self.results:
            if result.is_main_result:
                return result.text
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "results": [r.to_dict() for r in self.results],
            "logs": self.logs.to_dict(),
            "error": self.error.to_dict() if self.error else None,
            "execution_count": self.execution_count,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Execution:
        return cls(
            results=[Result.from_dict(r) for r in data.get("results", [])],
            logs=Logs.from_dict(data.get("logs", {})),
            error=ExecutionError.from_dict(data["error"]) if data.get("error") else None,
            execution_count=data.get("execution_count"),
        )

    def apply_event(self, event: dict[str, Any]) -> None:
        """Fold one wire event (an NDJSON line, decoded) into this Execution."""
        kind = event.get("type")
        if kind == "stdout":
            self.logs.stdout.append(event["text"])
        elif kind == "stderr":
            self.logs.stderr.append(event["text"])
        elif kind == "result":
            self.results.append(Result.from_dict(event))
        elif kind == "update_display":
            index = event.get("index")
            if isinstance(index, int) and 0 <= index < len(self.results):
                self.results[index] = Result.from_dict(event)
        elif kind == "error":
            self.error = ExecutionError.from_dict(event)
        elif kind == "number_of_executions":
            self.execution_count = event.get("execution_count")
        elif kind == "clear_output":
            self.results.clear()
            self.logs.stdout.clear()
            self.logs.stderr.clear()

    def to_outputs(self) -> list:
        """The Execution as nbformat outputs (streams first, as a notebook would save)."""
        import nbformat.v4

        outputs = []
        if self.logs.stdout:
            outputs.append(nbformat.v4.new_output("stream", name="stdout", text="".join(self.logs.stdout)))
        if self.logs.stderr:
            outputs.append(nbformat.v4.new_output("stream", name="stderr", text="".join(self.logs.stderr)))
        outputs.extend(r.to_output(self.execution_count) for r in self.results)
        if self.error:
            outputs.append(
                nbformat.v4.new_output(
                    "error",
                    ename=self.error.name,
                    evalue=self.error.value,
                    traceback=self.error.traceback.splitlines(),
                )
            )
        return outputs


# ---------------------------------------------------------------------------
# Sandboxes

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_size(value: Any, field_name: str) -> int:
    """Bytes from an int or a string such as "512M", "1g", "2GiB"."""
    if isinstance(value, bool):
        raise InvalidInput(f"{field_name} must be a size such as 512M or a number of bytes", field=field_name)
    if isinstance(value, (int, float)):
        size = int(value)
    elif isinstance(value, str) and (m := _SIZE.match(value)):
        size = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    else:
        raise InvalidInput(f"{field_name} must be a size such as 512M or a number of bytes, not {value!r}", field=field_name)
    if size <= 0:
        raise InvalidInput(f"{field_name} must be positive", field=field_name)
    return size


def format_size(size: int) -> str:
    for unit in ("G", "M", "K"):
        if size % _UNITS[unit.lower()] == 0:
            return f"{size // _UNITS[unit.lower()]}{unit}"
    return str(size)


@dataclass
class SandboxSpec:
    """What a sandbox is made of. Sizes are bytes; ``cpus`` may be fractional."""

    image: str | None = None  # None: the server's default image
    memory: int = 512 * 1024**2
    cpus: float = 1.0
    pids: int = 256
    disk: int = 512 * 1024**2  # size of the writable tmpfs for the working directory
    network: bool = False
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = 300.0  # default per-execution timeout in seconds
    runtime: str | None = None  # None: the backend's default (runc); "runsc" for gVisor
    metadata: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SandboxSpec:
        """Validate user input; raises InvalidInput naming the bad field."""
        data = dict(data or {})
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            name = sorted(unknown)[0]
            raise InvalidInput(f"unknown field {name!r} in sandbox spec", field=name)
        spec = cls()
        if data.get("image") is not None:
            if not isinstance(data["image"], str) or not data["image"].strip():
                raise InvalidInput("image must be a non-empty string", field="image")
            spec.image = data["image"].strip()
        if data.get("memory") is not None:
            spec.memory = parse_size(data["memory"], "memory")
            if spec.memory < 32 * 1024**2:
                raise InvalidInput("memory must be at least 32M", field="memory")
        if data.get("disk") is not None:
            spec.disk = parse_size(data["disk"], "disk")
        if data.get("cpus") is not None:
            spec.cpus = _number(data["cpus"], "cpus", minimum=0.01)
        if data.get("pids") is not None:
            spec.pids = int(_number(data["pids"], "pids", minimum=16))
        if data.get("network") is not None:
            if not isinstance(data["network"], bool):
                raise InvalidInput("network must be true or false", field="network")
            spec.network = data["network"]
        if "timeout" in data:
            spec.timeout = None if data["timeout"] is None else _number(data["timeout"], "timeout", minimum=0.1)
        if data.get("runtime") is not None:
            if data["runtime"] not in ("runc", "runsc"):
                raise InvalidInput("runtime must be 'runc' or 'runsc'", field="runtime")
            spec.runtime = data["runtime"]
        spec.env = _str_map(data.get("env"), "env", key_pattern=_ENV_KEY)
        spec.metadata = _str_map(data.get("metadata"), "metadata")
        return spec

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(value: Any, name: str, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{name} must be a number", field=name)
    if value < minimum:
        raise InvalidInput(f"{name} must be at least {minimum}", field=name)
    return float(value)


def _str_map(value: Any, name: str, key_pattern: re.Pattern | None = None) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} must be an object of strings", field=name)
    for key, val in value.items():
        if not isinstance(val, str) or (key_pattern and not key_pattern.match(key)):
            raise InvalidInput(f"{name} must map valid names to strings (bad entry {key!r})", field=name)
    return dict(value)


def validate_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            "name must be 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit", field="name"
        )
    return name


def new_id(prefix: str = "") -> str:
    return prefix + uuid.uuid4().hex[:12]


@dataclass
class ContextModel:
    """One kernel in a sandbox (E2B's ``Context``)."""

    id: str
    language: str = "python"
    cwd: str = "/home/user"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContextModel:
        return cls(id=data["id"], language=data.get("language", "python"), cwd=data.get("cwd", "/home/user"))


@dataclass
class SandboxModel:
    """A sandbox as the API shows it."""

    id: str
    name: str
    owner: str
    status: str  # starting | running | restarting | dead | removing
    backend: str
    spec: SandboxSpec
    created: float
    last_activity: float
    contexts: list[ContextModel] = field(default_factory=list)
    isolation: str = ""  # what the backend isolates, said plainly
    e2b_url: str | None = None  # base URL for E2B's SDK (E2B_SANDBOX_URL); set by the server
    kernel_id: str | None = None  # the notebook kernel this sandbox belongs to (removed with it)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["spec"] = self.spec.to_dict()
        data["contexts"] = [c.to_dict() for c in self.contexts]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SandboxModel:
        return cls(
            id=data["id"],
            name=data["name"],
            owner=data["owner"],
            status=data["status"],
            backend=data["backend"],
            spec=SandboxSpec(**data["spec"]),
            created=data["created"],
            last_activity=data["last_activity"],
            contexts=[ContextModel.from_dict(c) for c in data.get("contexts", [])],
            isolation=data.get("isolation", ""),
            e2b_url=data.get("e2b_url"),
            kernel_id=data.get("kernel_id"),
        )


# One-shot executions (python-executor's wire format)
STATUSES = ("pending", "running", "completed", "failed", "killed")
TERMINAL_STATUSES = ("completed", "failed", "killed")


@dataclass
class ExecutionResult:
    """python-executor's ExecutionResult (status: pending|running|completed|failed|killed)."""

    execution_id: str
    status: str
    stdout: str | None = None
    stderr: str | None = None
    exit_code: int | None = None
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: int | None = None
    result: str | None = None
    error_type: str | None = None  # this server's additions: the exception's name and line
    error_line: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecutionResult:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
