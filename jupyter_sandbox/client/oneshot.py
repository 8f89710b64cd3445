"""python-executor's client calls, against this project's one-shot routes (``{server}sandbox/api/v1/``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..models import TERMINAL_STATUSES, ExecutionResult
from ..oneshot.archive import archive_names, detect_entrypoint, make_archive
from .connection import url_part
from .discovery import connect
from .loop import private_loop

# what to run: {name: content}, or a folder
CodeFiles = dict[str, str | bytes] | Path | str

_TOP_LEVEL_METADATA = (
    "entrypoint",
    "docker_image",
    "requirements_txt",
    "pre_commands",
    "stdin",
    "env_vars",
    "script_args",
)


class OneShot:
    """python-executor's ``PythonExecutorClient`` calls: run files once in a throwaway sandbox.

    >>> OneShot().eval("2 + 2").result
    '4'
    """

    def __init__(self, server_url: str | None = None, token: str | None = None, timeout: int = 300):
        self.timeout = timeout
        self._connection = connect(server_url, token, in_process=False)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return private_loop().run(self._connection.oneshot(method, path, timeout=self.timeout, **kwargs))

    @staticmethod
    def _request_parts(
        files: CodeFiles | None, tar_data: bytes | None, metadata: Any, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        if tar_data is None:
            if files is None:
                raise ValueError("Either files or tar_data must be provided")
            tar_data = make_archive(files)
        if metadata is None:
            meta = {k: kwargs.pop(k) for k in _TOP_LEVEL_METADATA if k in kwargs}
            if meta.get("entrypoint") is None:
                meta["entrypoint"] = detect_entrypoint(archive_names(tar_data))  # the server's own rule
            if kwargs:
                meta["config"] = dict(kwargs)  # timeout_seconds, network_disabled, memory_mb, disk_mb, cpu_shares
            metadata = {k: v for k, v in meta.items() if v is not None}
        elif hasattr(metadata, "to_dict"):
            metadata = metadata.to_dict()
        return {
            "files": {
                "tar": ("code.tar", tar_data, "application/octet-stream"),
                "metadata": (None, json.dumps(metadata), "application/json"),
            }
        }

    def execute_sync(
        self, files: CodeFiles | None = None, tar_data: bytes | None = None, metadata: Any = None, **kwargs: Any
    ) -> ExecutionResult:
        parts = self._request_parts(files, tar_data, metadata, kwargs)
        return ExecutionResult.from_dict(self._call("POST", "exec/sync", **parts))

    def execute_async(
        self, files: CodeFiles | None = None, tar_data: bytes | None = None, metadata: Any = None, **kwargs: Any
    ) -> str:
        parts = self._request_parts(files, tar_data, metadata, kwargs)
        return str(self._call("POST", "exec/async", **parts)["execution_id"])

    def get_execution(self, execution_id: str) -> ExecutionResult:
        return ExecutionResult.from_dict(self._call("GET", f"executions/{url_part(execution_id)}"))

    def kill(self, execution_id: str) -> None:
        self._call("DELETE", f"executions/{url_part(execution_id)}")

    def wait_for_completion(
        self, execution_id: str, poll_interval: float = 2.0, max_wait: float | None = None
    ) -> ExecutionResult:
        start = time.monotonic()
        while True:
            result = self.get_execution(execution_id)
            if result.status in TERMINAL_STATUSES:
                return result
            if max_wait is not None and time.monotonic() - start > max_wait:
                raise TimeoutError(f"Execution did not complete within {max_wait}s")
            time.sleep(poll_interval)

    def eval(
        self,
        code: str,
        *,
        files: list[dict[str, str]] | None = None,
        entrypoint: str | None = None,
        stdin: str | None = None,
        python_version: str | None = None,
        timeout_seconds: int | None = None,
        eval_last_expr: bool = True,
    ) -> ExecutionResult:
        payload: dict[str, Any] = {"eval_last_expr": eval_last_expr}
        if files is not None:
            payload["files"] = files
        else:
            payload["code"] = code
        if entrypoint is not None:
            payload["entrypoint"] = entrypoint
        if stdin is not None:
            payload["stdin"] = stdin
        if python_version is not None:
            payload["python_version"] = python_version
        if timeout_seconds is not None:
            payload["config"] = {"timeout_seconds": timeout_seconds}
        return ExecutionResult.from_dict(self._call("POST", "eval", json=payload))
