"""One-shot requests (python-executor's wire format) made into validated Jobs.

The shapes (which fields, which types) are declared once in models.py; here are the rules that
need the server's configuration: limits, allowed images, the wheelhouse, the entrypoint.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput, TooLarge
from ..models import ENV_KEY, EvalRequest, ExecMetadata, OneShotConfig
from .archive import check_archive, detect_entrypoint, make_archive

if TYPE_CHECKING:
    from .runner import OneShotRunner


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


def _limit(value: int | None, name: str, default: int, lo: int, hi: int) -> int:
    if not value:  # python-executor: 0 (or absent) means "the default"
        return default
    if not lo <= value <= hi:
        raise InvalidInput(f"config.{name} must be between {lo} and {hi}, not {value}", field=f"config.{name}")
    return value


def parse_exec(runner: OneShotRunner, archive: bytes, metadata: Any) -> Job:
    """A Job from the multipart request's ``tar`` and ``metadata`` parts."""
    if isinstance(metadata, (bytes, str)):
        try:
            metadata = json.loads(metadata or "{}")
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise InvalidInput(f"metadata is not valid JSON: {e}", field="metadata") from None
    if not isinstance(metadata, dict):
        raise InvalidInput("metadata must be a JSON object", field="metadata")
    request = ExecMetadata.parse(metadata)  # fields named as python-executor names them: script_args, config.x
    image = runner.resolve_image(docker_image=request.docker_image)
    return _job(runner, archive, request, image)


def parse_eval(runner: OneShotRunner, body: Any, max_code_size: int) -> Job:
    """A Job from the JSON body of ``POST eval``; ``max_code_size`` bytes of code at most."""
    request = EvalRequest.parse(body)
    if request.files is not None:
        if not request.files:
            raise InvalidInput("files must be a non-empty list of {name, content}", field="files")
        files: dict[str, str | bytes] = {f.name: f.content.encode() for f in request.files}
    elif request.code is not None:
        files = {"main.py": request.code.encode()}
    else:
        raise InvalidInput("give code (a string) or files (a list of {name, content})", field="code")
    size = sum(len(c) for c in files.values())
    if size > max_code_size:
        raise TooLarge(f"code is {size} bytes; the limit is {max_code_size}", field="code")
    image = runner.resolve_image(python_version=request.python_version or runner.default_python_version)
    metadata = ExecMetadata(entrypoint=request.entrypoint, stdin=request.stdin, config=request.config)
    job = _job(runner, make_archive(files), metadata, image)
    job.eval_last_expr = True if request.eval_last_expr is None else request.eval_last_expr
    return job


def _job(runner: OneShotRunner, archive: bytes, request: ExecMetadata, image: str) -> Job:
    names = check_archive(archive, runner.max_archive_size, runner.max_archive_members)
    if request.entrypoint:
        entrypoint = posixpath.normpath(request.entrypoint)
        if entrypoint not in names:
            raise InvalidInput(f"entrypoint {request.entrypoint!r} is not a file in the archive", field="entrypoint")
    else:
        entrypoint = detect_entrypoint(names)
    config = request.config or OneShotConfig()
    network_disabled = True if config.network_disabled is None else config.network_disabled
    if not network_disabled and not runner.manager.allow_network:
        raise InvalidInput("this server does not allow network access", field="config.network_disabled")
    requirements = request.requirements_txt if (request.requirements_txt or "").strip() else None
    if requirements and network_disabled and not runner.wheelhouse:
        raise InvalidInput(
            "requirements_txt needs network access (config.network_disabled=false) or a wheelhouse on the "
            "server (c.OneShotRunner.wheelhouse); this server has none, so nothing can be installed",
            field="requirements_txt",
        )
    env: dict[str, str] = {}
    for item in request.env_vars or []:
        key, sep, value = item.partition("=")
        if not sep or not ENV_KEY.match(key):
            raise InvalidInput(f"env_vars entries must look like KEY=value, not {item!r}", field="env_vars")
        env[key] = value
    return Job(
        archive=archive,
        entrypoint=entrypoint,
        image=image,
        timeout=_limit(config.timeout_seconds, "timeout_seconds", runner.default_timeout, 1, runner.max_timeout),
        memory_mb=_limit(config.memory_mb, "memory_mb", runner.default_memory_mb, 32, runner.max_memory_mb),
        disk_mb=_limit(config.disk_mb, "disk_mb", runner.default_disk_mb, 1, runner.max_disk_mb),
        cpu_shares=_limit(config.cpu_shares, "cpu_shares", runner.default_cpu_shares, 2, 262144),
        network=not network_disabled,
        requirements=requirements,
        pre_commands=list(request.pre_commands or []),
        stdin=(request.stdin or "").encode(),
        env=env,
        args=list(request.script_args or []),
    )
