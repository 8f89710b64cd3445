"""The shapes shared by server, client, magics and the labextension.

Every model has ``to_dict`` / ``from_dict`` (a JSON round trip). The wire names follow
E2B's code-interpreter (``Execution``, ``Result``, ``Logs``, ``ExecutionError``) so that
its SDK and ours read the same lines.
"""

from __future__ import annotations

import json
import math
import re
import time
import types
import typing
import uuid
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, TypeVar

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
    # what E2B's code interpreter adds (backends/programs/e2b_display.py makes them in a sandbox):
    # a DataFrame's columns, and a matplotlib figure's data (its kind, axes and elements)
    "e2b/data": "data",
    "e2b/chart": "chart",
}
FIELD_MIMES = {v: k for k, v in MIME_FIELDS.items()}
# Result fields for the API only: never in a display or a notebook (see Result.bundle)
API_ONLY_FIELDS = ("data", "chart")


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
    data: dict[str, Any] | None = None
    chart: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    is_main_result: bool = False

    @classmethod
    def from_bundle(cls, data: dict[str, Any], is_main_result: bool = False) -> Result:
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for mime, value in data.items():
            name = MIME_FIELDS.get(mime)
            if name in ("data", "chart") and not isinstance(value, dict):
                name = None  # E2B's SDK reads these as objects; anything else stays as it came, in extra
            if name:
                known[name] = value.rstrip("\n") if name in ("png", "jpeg") else value
            else:
                extra[mime] = value
        return cls(**known, extra=extra, is_main_result=is_main_result)

    def bundle(self) -> dict[str, Any]:
        """The MIME bundle again, for display machinery and nbformat: without E2B's ``data`` and
        ``chart`` (API fields, objects under MIME types nbformat allows only text for)."""
        data = {
            FIELD_MIMES[name]: getattr(self, name)
            for name in FIELD_MIMES
            if getattr(self, name) is not None and name not in API_ONLY_FIELDS
        }
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

    def __repr__(self) -> str:
        if self.text is not None:
            return f"Result({self.text})"
        return f"Result(formats: {', '.join(self.formats())})"

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, Any]:
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


# ---------------------------------------------------------------------------
# Request bodies: each shape is declared once, as a dataclass whose annotations are the wire
# types. ``parse`` refuses unknown fields and wrong types, naming the field; every route uses
# it, and tests/test_handlers.py checks openapi.yaml against these declarations. Ranges that
# depend on the server's configuration are checked where that configuration lives.

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TYPE_WORDS = {str: "a string", bool: "true or false", int: "an integer", float: "a number"}


def _type_error(name: str, expected: str, value: Any) -> InvalidInput:
    return InvalidInput(f"{name} must be {expected}, not {json.dumps(value)[:60]}", field=name)


def _check(value: Any, hint: Any, name: str) -> Any:
    """``value`` checked against a field's annotation (str, bool, int, float, unions, list[X],
    dict[str, str], a nested RequestBody); JSON's NaN and infinities are never numbers."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        alternatives = [a for a in args if a is not type(None)]
        if len(alternatives) == 1:  # X | None: X's own message
            return _check(value, alternatives[0], name)
        for alternative in alternatives:
            if isinstance(value, dict) and isinstance(alternative, type) and issubclass(alternative, RequestBody):
                return _check(value, alternative, name)  # an object: its own shape's message, naming the field
            try:
                return _check(value, alternative, name)
            except InvalidInput:
                continue
        raise _type_error(name, " or ".join(_TYPE_WORDS.get(a, str(a)) for a in alternatives), value)
    if origin is list:
        if not isinstance(value, list):
            raise _type_error(name, "a list", value)
        return [_check(item, args[0], f"{name}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise _type_error(name, "an object of strings", value)
        if any("\x00" in k or "\x00" in v for k, v in value.items()):
            raise InvalidInput(f"{name} must not contain NUL characters", field=name)
        return dict(value)
    if isinstance(hint, type) and issubclass(hint, RequestBody):
        return hint.parse(value, where=name)
    if hint is bool:
        if not isinstance(value, bool):
            raise _type_error(name, "true or false", value)
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _type_error(name, _TYPE_WORDS[hint], value)
        if hint is int:
            if value != int(value):
                raise _type_error(name, "an integer", value)
            return int(value)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _type_error(name, "a string", value)
        if "\x00" in value:
            raise InvalidInput(f"{name} must not contain NUL characters", field=name)
        return value
    return value


RequestT = TypeVar("RequestT", bound="RequestBody")


_DECLARED: dict[type, tuple[dict[str, Any], dict[str, Any]]] = {}


def _declared(cls: type) -> tuple[dict[str, Any], dict[str, Any]]:
    """A request shape's fields and their type hints, worked out once per class (resolving the
    hints is most of what parsing a small request costs)."""
    shape = _DECLARED.get(cls)
    if shape is None:
        shape = _DECLARED[cls] = ({f.name: f for f in fields(cls)}, typing.get_type_hints(cls))
    return shape


class RequestBody:
    """Base of the request shapes below (each also a dataclass)."""

    @classmethod
    def parse(cls: type[RequestT], data: Any, *, where: str = "") -> RequestT:
        """An instance from decoded JSON; InvalidInput names the offending field."""
        prefix = f"{where}." if where else ""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidInput(f"{where or 'the request body'} must be a JSON object", field=where or "body")
        declared, hints = _declared(cls)
        for key in data:
            if key not in declared:
                raise InvalidInput(f"unknown field {key!r}; expected some of {', '.join(declared)}", field=prefix + key)
        values: dict[str, Any] = {}
        for name, declared_field in declared.items():
            if data.get(name) is not None:
                values[name] = _check(data[name], hints[name], prefix + name)
            elif declared_field.default is MISSING and declared_field.default_factory is MISSING:
                raise InvalidInput(f"{prefix + name} is required", field=prefix + name)
        return cls(**values)

    def given(self) -> dict[str, Any]:
        """The fields that were sent (not None), as plain data."""
        return {k: v for k, v in asdict(self).items() if v is not None}  # type: ignore[call-overload]


@dataclass
class NetworkRules(RequestBody):
    """``network`` as an egress allow-list (issue 23): names the sandbox may reach through its
    filtering proxy (``pypi.org``, ``*.pythonhosted.org``, ``*``), and names it may not (deny wins)."""

    allow: list[str] | None = None
    deny: list[str] | None = None


_TYPE_WORDS[NetworkRules] = "an object of allow and deny lists"
EGRESS_PATTERN = re.compile(
    r"^(\*|(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)$"
)


def egress_patterns(patterns: list[str] | None, name: str) -> list[str]:
    """Host name patterns checked and lowercased: a name, ``*.domain`` or ``*``; never an IP address
    (a raw IP never gets through the proxy, so a rule naming one could only mislead)."""
    out: list[str] = []
    for pattern in patterns or []:
        text = pattern.strip().lower().rstrip(".")
        last = text.rsplit(".", 1)[-1]
        if not EGRESS_PATTERN.match(text) or len(text) > 253 or (last.isdigit() and text != "*"):
            raise InvalidInput(
                f"{name} takes host names, '*.domain' or '*', not {pattern[:80]!r} (IP addresses are never allowed)",
                field=name,
            )
        if text not in out:
            out.append(text)
    return out


def egress_covers(most: str, pattern: str) -> bool:
    """Whether the allow-list pattern ``most`` allows every name ``pattern`` does."""
    return most in ("*", pattern) or (most.startswith("*.") and pattern != "*" and pattern.endswith(most[1:]))


@dataclass
class SpecRequest(RequestBody):
    """A sandbox's resources as asked for; absent (or null) means the server's default."""

    image: str | None = None
    memory: str | int | None = None
    cpus: float | None = None
    pids: int | None = None
    disk: str | int | None = None
    network: bool | NetworkRules | None = None  # true, false, or an egress allow-list
    env: dict[str, str] | None = None
    timeout: float | None = None
    runtime: str | None = None
    metadata: dict[str, str] | None = None
    # the owner's persistent volume mounted in it (issue 23): a name, "" for none, null for the server's default
    volume: str | None = None
    volume_read_only: bool | None = None


@dataclass
class SandboxRequest(SpecRequest):
    """POST sandboxes."""

    name: str | None = None
    kernel_id: str | None = None  # a notebook kernel of this server: the sandbox goes with it
    snapshot: str | None = None  # one of the owner's snapshots: the new sandbox starts with its files (issue 23)

    def spec(self) -> SpecRequest:
        return SpecRequest(**{f.name: getattr(self, f.name) for f in fields(SpecRequest)})


@dataclass
class E2BNewSandbox(RequestBody):
    """POST sandbox/e2b/api/sandboxes and /v2/sandboxes: E2B's NewSandbox, its fields spelt as E2B
    spells them. The ones after ``allow_internet_access`` are taken only at their "off" value."""

    templateID: str = ""
    timeout: int | None = None  # seconds the sandbox lives unless extended
    metadata: dict[str, str] | None = None
    envVars: dict[str, str] | None = None
    secure: bool | None = None
    allow_internet_access: bool | None = None
    autoPause: bool | None = None
    autoPauseMemory: Any = None
    autoResume: Any = None
    network: Any = None
    mcp: Any = None
    iam: Any = None
    volumeMounts: Any = None


@dataclass
class KeyRequest(RequestBody):
    """POST sandbox/api/keys: a new API key for E2B's SDKs."""

    name: str | None = None  # a reminder of what it is for, shown in the list


@dataclass
class E2BTimeout(RequestBody):
    """POST sandbox/e2b/api/sandboxes/{id}/timeout (and the timeout of .../connect)."""

    timeout: int | None = None
    memory: Any = None  # connect's resume mode: a resume keeps the memory wherever the runtime can (core/pausing.py)
    autoPause: bool | None = None  # resume's (deprecated in E2B): not taken, see c.SandboxManager.idle_action


@dataclass
class E2BPause(RequestBody):
    """POST sandbox/e2b/api/sandboxes/{id}/pause: E2B's SandboxPauseRequest."""

    memory: bool | None = None  # False: the files only (E2B's mode="filesystem")
    requireHealthyGuest: bool | None = None  # (taken: the kernels' launchers always answer first here)


@dataclass
class E2BRefresh(RequestBody):
    """POST sandbox/e2b/api/sandboxes/{id}/refreshes."""

    duration: int | None = None


@dataclass
class E2BSandbox:
    """E2B's Sandbox: what create and connect answer (sandbox/e2b/api)."""

    templateID: str
    sandboxID: str
    alias: str
    clientID: str
    envdVersion: str  # the SDK picks its wire formats by it
    envdAccessToken: str  # the sandbox's credential on the data plane, for its owner only
    trafficAccessToken: str
    domain: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class E2BListedSandbox:
    """E2B's ListedSandbox: one sandbox of a list."""

    templateID: str
    alias: str
    sandboxID: str
    clientID: str
    startedAt: str  # ISO 8601
    endAt: str  # its deadline
    cpuCount: int
    memoryMB: int
    diskSizeMB: int
    state: str  # running | paused
    envdVersion: str
    metadata: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class E2BSandboxDetail(E2BListedSandbox):
    """E2B's SandboxDetail: one sandbox's info."""

    envdAccessToken: str = ""
    allow_internet_access: bool = False


@dataclass
class E2BMetric:
    """E2B's SandboxMetric: one reading of a sandbox's use."""

    timestamp: str  # ISO 8601
    timestampUnix: int
    cpuCount: int
    cpuUsedPct: float
    memUsed: int
    memTotal: int
    memCache: int
    diskUsed: int
    diskTotal: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ExecuteRequest(RequestBody):
    """POST sandboxes/{id}/execute (E2B's /execute)."""

    code: str
    context_id: str | None = None
    language: str | None = None
    env_vars: dict[str, str] | None = None
    timeout: float | None = None
    # True: input()/getpass() in the code stream an ``input_request`` event and wait for an
    # answer (POST .../contexts/{context_id}/input); else they fail at once, saying so
    allow_stdin: bool | None = None

    def options(self) -> dict[str, Any]:
        """The keyword arguments of ``SandboxManager.execute`` besides the code (one place for both
        callers: the REST handler and the in-process client)."""
        return {
            "context_id": self.context_id,
            "language": self.language,
            "env_vars": self.env_vars,
            "timeout": self.timeout,
            "allow_stdin": bool(self.allow_stdin),
        }


@dataclass
class InputReply(RequestBody):
    """POST sandboxes/{id}/contexts/{context_id}/input: the answer to a waiting input() (``value``),
    or ``error``, why nobody can answer (the execution then fails with that message)."""

    value: str | None = None
    error: str | None = None


@dataclass
class InputRequest:
    """What a waiting input() or getpass() asked for (an ``input_request`` event)."""

    prompt: str
    password: bool = False
    context_id: str | None = None


@dataclass
class ContextRequest(RequestBody):
    """POST sandboxes/{id}/contexts (E2B's /contexts)."""

    language: str | None = None
    cwd: str | None = None


@dataclass
class InterruptRequest(RequestBody):
    """POST sandboxes/{id}/interrupt."""

    context_id: str | None = None


@dataclass
class OneShotConfig(RequestBody):
    """python-executor's ``config``; 0 or absent means the server's default."""

    timeout_seconds: int | None = None
    network_disabled: bool | None = None
    memory_mb: int | None = None
    disk_mb: int | None = None
    cpu_shares: int | None = None


@dataclass
class ExecMetadata(RequestBody):
    """The ``metadata`` part of POST v1/exec/sync and v1/exec/async."""

    entrypoint: str | None = None
    docker_image: str | None = None
    requirements_txt: str | None = None
    pre_commands: list[str] | None = None
    stdin: str | None = None
    env_vars: list[str] | None = None  # "KEY=value"
    script_args: list[str] | None = None
    config: OneShotConfig | None = None


@dataclass
class EvalFile(RequestBody):
    name: str
    content: str


@dataclass
class EvalRequest(RequestBody):
    """POST v1/eval."""

    code: str | None = None
    files: list[EvalFile] | None = None
    entrypoint: str | None = None
    stdin: str | None = None
    python_version: str | None = None
    eval_last_expr: bool | None = None
    config: OneShotConfig | None = None


@dataclass
class CommandRequest(RequestBody):
    """POST sandboxes/{id}/commands: a command line run as E2B's ``commands.run`` runs it."""

    cmd: str
    envs: dict[str, str] | None = None
    cwd: str | None = None
    stdin: bool | None = None  # true: its stdin stays open for POST .../commands/{pid}/stdin
    tag: str | None = None


@dataclass
class CommandInput(RequestBody):
    """POST sandboxes/{id}/commands/{pid}/stdin."""

    data: str


@dataclass
class MoveRequest(RequestBody):
    """POST sandboxes/{id}/files/move."""

    source: str
    destination: str


@dataclass
class TimeoutRequest(RequestBody):
    """POST sandboxes/{id}/timeout: the sandbox ends ``timeout`` seconds from now."""

    timeout: int


# ---------------------------------------------------------------------------
# Sandboxes

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
MAX_SIZE = 2**50  # 1 PiB: far above any host, far below what overflows the engine's int64


# docker-py's parse_bytes units (sizes go to the engine as it reads them; "t" is not one)
_ENGINE_UNITS = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _engine_bytes(text: str) -> float:
    """docker-py's ``utils.parse_bytes`` of a string, without docker-py (models is the bottom layer):
    the same answers, ValueError where it raises."""
    if not text:
        return 0
    if text[-2:-1].isalpha() and text[-1:] in ("b", "B"):
        text = text[:-1]  # "kb" -> "k"
    suffix = text[-1].lower()
    if suffix.isdigit():
        digits, suffix = text, "b"
    else:
        digits = text[:-1]
    if suffix not in _ENGINE_UNITS:
        raise ValueError(f"{text!r} has no unit of b, k, m, g")
    return int(float(digits) * _ENGINE_UNITS[suffix])


def parse_size(value: Any, field_name: str) -> int:
    """Bytes from an int or a string such as "512M", "1g", "2GiB" (docker-py's parse_bytes, which
    also knows "b"; the "iB"/"B" suffixes people write are accepted too)."""
    problem = f"{field_name} must be a size such as 512M or a number of bytes, not {json.dumps(value)[:40]}"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidInput(problem, field=field_name)
    try:
        if isinstance(value, str):
            size: float = _engine_bytes(re.sub(r"(?i)([kmgt])i?b$", r"\1", value.strip()))
        else:
            size = value
    except (ValueError, OverflowError):
        raise InvalidInput(problem, field=field_name) from None
    if size <= 0:
        raise InvalidInput(f"{field_name} must be positive", field=field_name)
    if size > MAX_SIZE:
        raise InvalidInput(f"{field_name} is larger than any machine ({format_size(MAX_SIZE)})", field=field_name)
    return int(size)


def format_size(size: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if size % _UNITS[unit.lower()] == 0:
            return f"{size // _UNITS[unit.lower()]}{unit}"
    return str(size)


def human_size(size: int) -> str:
    """A size as people read it: "1 GiB", "512 MiB", "1.5 GiB"."""
    for unit, name in (("t", "TiB"), ("g", "GiB"), ("m", "MiB"), ("k", "KiB")):
        if size >= _UNITS[unit]:
            return f"{size / _UNITS[unit]:.2f}".rstrip("0").rstrip(".") + f" {name}"
    return f"{size} bytes"


def limit_text(memory: int, disk: int) -> str:
    """The one description of a sandbox's memory limit, wherever it is shown (cell, panel, CLI,
    errors): what the user set, "1 GiB of memory plus 512 MiB of disk", not the engine's limit,
    which also counts the working directory (a tmpfs, held in memory) and /tmp."""
    return f"{human_size(memory)} of memory plus {human_size(disk)} of disk"


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
    # With network: None reaches anywhere the fenced network does; else {"allow": [...], "deny":
    # [...]}, enforced by a filtering proxy (issue 23)
    egress: dict[str, list[str]] | None = None
    # the owner's persistent volume mounted in it (issue 23): None = the server's default, "" = none
    volume: str | None = None
    volume_read_only: bool = False

    @classmethod
    def from_request(cls, request: SpecRequest) -> SandboxSpec:
        """The spec a (type-checked) request asks for; InvalidInput names a value out of range."""
        spec = cls()
        if request.image is not None:
            if not request.image.strip():
                raise InvalidInput("image must be a non-empty string", field="image")
            spec.image = request.image.strip()
        if request.memory is not None:
            spec.memory = parse_size(request.memory, "memory")
            if spec.memory < 32 * 1024**2:
                raise InvalidInput("memory must be at least 32M", field="memory")
        if request.disk is not None:
            spec.disk = parse_size(request.disk, "disk")
        if request.cpus is not None:
            spec.cpus = _at_least(request.cpus, "cpus", 0.01)
        if request.pids is not None:
            spec.pids = int(_at_least(request.pids, "pids", 16))
        if isinstance(request.network, NetworkRules):
            spec.network = True
            spec.egress = {
                "allow": egress_patterns(request.network.allow, "network.allow"),
                "deny": egress_patterns(request.network.deny, "network.deny"),
            }
        elif request.network is not None:
            spec.network = request.network
        if request.timeout is not None:
            spec.timeout = _at_least(request.timeout, "timeout", 0.1)
        if request.runtime is not None:
            if request.runtime not in ("runc", "runsc"):
                raise InvalidInput("runtime must be 'runc' or 'runsc'", field="runtime")
            spec.runtime = request.runtime
        for key in request.env or {}:
            if not ENV_KEY.match(key):
                raise InvalidInput(f"env names must be letters, digits and '_' (bad name {key!r})", field="env")
        spec.env = dict(request.env or {})
        spec.metadata = dict(request.metadata or {})
        if request.volume:
            spec.volume = validate_name(request.volume, "volume")
        elif request.volume is not None:
            spec.volume = ""
        spec.volume_read_only = bool(request.volume_read_only)
        return spec

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SandboxSpec:
        """Validate user input (a spec as JSON); raises InvalidInput naming the bad field."""
        return cls.from_request(SpecRequest.parse(data))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _at_least(value: float, name: str, minimum: float) -> float:
    if value < minimum:
        raise InvalidInput(f"{name} must be at least {minimum:g}", field=name)
    return float(value)


def validate_name(name: Any, field_name: str = "name") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"{field_name} must be 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit",
            field=field_name,
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
    status: str  # starting | running | restarting | exited | removing | pausing | paused | resuming
    backend: str
    spec: SandboxSpec
    created: float
    last_activity: float
    contexts: list[ContextModel] = field(default_factory=list)
    isolation: str = ""  # what the backend isolates, said plainly
    e2b_url: str | None = None  # base URL for E2B's SDK (E2B_SANDBOX_URL); set by the server
    kernel_id: str | None = None  # the notebook kernel this sandbox belongs to (removed with it)
    status_reason: str | None = None  # why it is "exited", what a server restart cost it, why its kernel died
    # "sandbox": contexts run code sent to them; "kernel": it runs a notebook's whole kernel
    # (jupyter_sandbox.kernel), which the notebook talks to directly
    kind: str = "sandbox"
    end_at: float | None = None  # Unix time it is removed at unless extended (None: no deadline)
    template: str | None = None  # the E2B template name it was made from (E2B's lifecycle API)
    # the notebook whose kernel it goes with, as jupyter_server's sessions say at list time (renames
    # followed); set by the server (server/notebook_paths.py)
    notebook_path: str | None = None
    # its memory limit said as everywhere else (limit_text): "1 GiB of memory plus 512 MiB of disk"
    limit: str = field(default="", init=False)
    # -- pause and resume (issue 23, core/pausing.py) --
    paused: bool = False  # its container is stopped: no CPU, no memory; resume brings it back
    memory_kept: bool | None = None  # of its last pause: its kernels' variables kept (None: never paused)
    memory_note: str | None = None  # why the memory is not kept (e.g. runc's checkpoint needs CRIU)

    def __post_init__(self) -> None:
        self.limit = limit_text(self.spec.memory, self.spec.disk)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["spec"] = self.spec.to_dict()
        data["limit"] = limit_text(self.spec.memory, self.spec.disk)  # the spec may have changed since
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
            status_reason=data.get("status_reason"),
            kind=data.get("kind", "sandbox"),
            end_at=data.get("end_at"),
            template=data.get("template"),
            notebook_path=data.get("notebook_path"),
            paused=bool(data.get("paused", False)),
            memory_kept=data.get("memory_kept"),
            memory_note=data.get("memory_note"),
        )


@dataclass
class SnapshotRequest(RequestBody):
    """POST sandboxes/{id}/snapshots (issue 23)."""

    name: str


@dataclass
class ForkRequest(RequestBody):
    """POST sandboxes/{id}/fork: a running copy of a sandbox's files, with its spec (issue 23)."""

    name: str | None = None


@dataclass
class SnapshotModel:
    """A named copy of a sandbox's working directory, its owner's only (core/snapshots.py)."""

    name: str
    owner: str
    created: float
    size: int  # bytes of the archive kept on the server
    source: str  # the id of the sandbox it was taken from
    spec: SandboxSpec  # that sandbox's spec: a sandbox made from the snapshot gets it, unless it asks otherwise
    memory_kept: bool = False  # snapshots keep files only (see docs/pause.md)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["spec"] = self.spec.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SnapshotModel:
        return cls(
            name=data["name"],
            owner=data["owner"],
            created=data["created"],
            size=data["size"],
            source=data["source"],
            spec=SandboxSpec(**data["spec"]),
            memory_kept=bool(data.get("memory_kept", False)),
        )


# Persistent volumes (issue 23)


@dataclass
class VolumeRequest(RequestBody):
    """POST sandbox/api/volumes: a new volume of the caller's (size: the server's default when absent)."""

    name: str
    size: str | int | None = None


@dataclass
class VolumeModel:
    """One of an owner's persistent volumes, with its usage (bytes)."""

    name: str
    owner: str
    size: int  # the limit asked for (the filesystem's image file)
    used: int  # bytes in use on its filesystem
    capacity: int  # bytes its filesystem can hold (size less the filesystem's own metadata)
    mount_path: str  # where sandboxes see it
    created: float
    sandboxes: list[str] = field(default_factory=list)  # ids of the owner's sandboxes that mount it
    id: str = ""  # E2B's volumeID: stable, unique on this server

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VolumeModel:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def usage(self) -> str:
        """ "3 MiB of 1 GiB used", as the panel and the CLI say it."""
        return f"{human_size(self.used)} of {human_size(self.capacity or self.size)} used"


@dataclass
class ConfigDefaults:
    """What a sandbox gets for each field it leaves out (sizes in bytes)."""

    image: str
    memory: int
    cpus: float
    disk: int
    pids: int
    timeout: float | None
    network: bool


@dataclass
class ConfigMaximums:
    """The most a sandbox may ask for (sizes in bytes), and the per-user and per-sandbox counts."""

    memory: int
    cpus: float
    disk: int
    pids: int
    timeout: float
    sandboxes_per_user: int
    contexts_per_sandbox: int


@dataclass
class ServerConfig:
    """GET config: what a create form needs to show (no secrets)."""

    backend: str
    isolation: str
    images: list[str]  # the allowed images, the default first
    defaults: ConfigDefaults
    maximums: ConfigMaximums
    allow_network: bool
    max_upload_size: int  # the largest request body; an upload is also held to the sandbox's disk
    # "server": this server runs the sandboxes; "hub": it forwards to the JupyterHub sandbox service
    mode: str = "server"
    network_allow_max: list[str] = field(default_factory=list)  # names any allow-list may hold (empty: any)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ContextLog:
    id: str
    language: str
    kernel_log: str  # the end of what the kernel process wrote to stdout and stderr


@dataclass
class SandboxLogs:
    """GET sandboxes/{id}/logs."""

    container: str | None  # the container's output; None on a backend without containers
    contexts: list[ContextLog]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    code: str = ""  # and the entrypoint's text (its first 64 KiB)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecutionResult:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
