"""Files and usage figures of Kubernetes sandboxes, each through a short ``pods/exec`` (a watch: a long one).

Files: programs/files.py, as on Docker; its exit code says what went wrong (docker_files.py's
``file_error``). The exec already runs as the sandbox's user (the pod's only one), which the
program checks. A write passes its byte count, so it ends without an end-of-stdin (which the v4
channel protocol cannot say).

Usage: the metrics API (metrics.k8s.io) when the cluster serves it; else the pod's own cgroup
files read from inside (programs/cgroup_usage.py), which also give the process count.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..errors import BackendUnavailable, InvalidInput, IsADirectory, NotFound, TooLarge
from . import programs
from .base import WORKDIR, confine
from .docker_files import EXEC_OUTPUT_LIMIT, IS_A_DIRECTORY, NO_ROOM, file_error, program_answer
from .kubernetes_exec import open_exec, program, run_exec
from .kubernetes_watch import KubernetesWatch

if TYPE_CHECKING:  # (only for types: kubernetes.py imports this module)
    from .kubernetes import KubernetesBackend

QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
SUFFIXES = {
    "": 1,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}


def quantity(text: str) -> float:
    """A Kubernetes quantity ("250m", "1536Ki", "12345n") as a number."""
    found = QUANTITY.match(text.strip())
    if not found or found.group(2) not in SUFFIXES:
        raise ValueError(f"not a quantity: {text!r}")
    return float(found.group(1)) * SUFFIXES[found.group(2)]


class KubernetesFiles:
    """The file commands and usage figures of one backend's sandboxes."""

    def __init__(self, backend: KubernetesBackend) -> None:
        self.backend = backend
        self._metrics: bool | None = None  # the cluster serves the metrics API (None: not asked yet)
        self._cpu: dict[str, tuple[float, int]] = {}  # sandbox id -> (when, CPU ns): the last reading

    def _command(self, name: str, *args: str) -> tuple[list[str], bytes]:
        return program(self.backend.python, programs.source(name), *args)

    def _files(self, command: str, path: str, *more: str) -> tuple[list[str], bytes]:
        settings = self.backend.pod_settings()
        return self._command("files", str(settings.uid), str(settings.gid), command, path, *more)

    async def run(
        self, sandbox_id: str, command: tuple[list[str], bytes], data: bytes = b""
    ) -> tuple[int | None, bytes, bytes]:
        """A short command's (``program``'s, or argv and b"") exit code, stdout and stderr, as the sandbox's user."""
        return await run_exec(
            self.backend.exec_connect(sandbox_id),
            command,
            data,
            limit=EXEC_OUTPUT_LIMIT,
            timeout=self.backend.request_timeout,
        )

    async def _json(self, sandbox_id: str, path: str, command: str, *args: str) -> Any:
        """What a files.py command that answers in JSON printed (its exit code as the project's error)."""
        code, out, err = await self.run(sandbox_id, self._files(command, path, *args))
        if code != 0:
            raise file_error(code, path, err)
        kind: type[Any] = list if command == "tree" else dict
        return program_answer(out, kind, f"{command} {path}")

    async def stat(self, sandbox_id: str, path: str) -> dict[str, Any]:
        entry: dict[str, Any] = await self._json(sandbox_id, confine(path), "stat")
        return entry

    async def tree(self, sandbox_id: str, path: str, depth: int) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = await self._json(sandbox_id, confine(path), "tree", str(max(1, depth)))
        return entries

    async def make_dir(self, sandbox_id: str, path: str) -> dict[str, Any]:
        entry: dict[str, Any] = await self._json(sandbox_id, confine(path), "mkdir")
        return entry

    async def move(self, sandbox_id: str, source: str, destination: str) -> dict[str, Any]:
        src, dst = confine(source), confine(destination)
        if WORKDIR in (src, dst):
            raise InvalidInput("the working directory itself cannot be moved or replaced", field="path")
        entry: dict[str, Any] = await self._json(sandbox_id, src, "move", dst)
        return entry

    async def watch(self, sandbox_id: str, path: str, recursive: bool) -> KubernetesWatch:
        target = confine(path)
        command = self._files("watch", target, "1" if recursive else "0")
        watch = KubernetesWatch(self.backend.exec_connect(sandbox_id), command, self.backend.request_timeout)
        if not await watch.start():
            code, err = watch.failure or (None, b"")
            raise file_error(code, target, err)
        return watch

    async def write(self, sandbox_id: str, path: str, data: bytes) -> None:
        target = confine(path)
        if target == WORKDIR:
            raise IsADirectory("path must name a file", field="path")
        code, _, err = await self.run(sandbox_id, self._files("write", target, str(len(data))), data)
        if code == IS_A_DIRECTORY:
            raise IsADirectory(f"{target} is a directory", field="path")
        if code == NO_ROOM:
            raise TooLarge(f"{target} does not fit: the sandbox's disk is full (nothing was written)")
        if code != 0:
            raise InvalidInput(
                f"could not write {target} (exit code {code}): {err.decode(errors='replace')[-300:]}", field="path"
            )

    async def stream(self, sandbox_id: str, path: str) -> AsyncIterator[bytes]:
        target = confine(path)
        stream = await open_exec(
            self.backend.exec_connect(sandbox_id), self._files("read", target), f"read in {sandbox_id}"
        )
        try:
            # an error (missing, a directory) comes as an exit code with no byte before it
            while chunk := await stream.reader.read(1 << 20):
                yield chunk
            code = await stream.wait()
            if code != 0:
                raise file_error(code, target, b"")
        finally:
            stream.writer.close()

    async def list(self, sandbox_id: str, path: str) -> list[dict[str, Any]]:
        target = confine(path)
        code, out, err = await self.run(sandbox_id, self._files("list", target))
        if code != 0:
            raise file_error(code, target, err)
        entries: list[dict[str, Any]] = program_answer(out, list, f"list {target}")
        return entries

    async def remove(self, sandbox_id: str, path: str) -> None:
        target = confine(path)
        if target == WORKDIR:
            raise InvalidInput("refusing to remove the working directory itself", field="path")
        code, _, err = await self.run(sandbox_id, self._files("remove", target))
        if code != 0:
            raise file_error(code, target, err)

    # -- usage ----------------------------------------------------------------------------
    async def stats(self, sandbox_id: str) -> dict[str, Any]:
        limit = self.backend.memory_limit(self.backend.spec(sandbox_id))
        if self._metrics is None:
            self._metrics = await self.backend.pods.metrics_served()
        if self._metrics:
            try:
                return await self._from_metrics(sandbox_id, limit)
            except NotFound:
                pass  # no metrics API, or no figures for this pod yet (the first ~15 s)
            except BackendUnavailable as e:
                self._metrics = False  # not served here (or not allowed): from inside from now on
                self.backend.log.info("jupyter-sandbox: no pod metrics (%s); reading them inside sandboxes", e)
        return await self._from_inside(sandbox_id, limit)

    async def _from_metrics(self, sandbox_id: str, limit: int) -> dict[str, Any]:
        pod = await self.backend.pods.metrics(sandbox_id)
        cpu = sum(quantity(c["usage"]["cpu"]) for c in pod.get("containers") or [])
        memory = sum(quantity(c["usage"]["memory"]) for c in pod.get("containers") or [])
        return {"cpu_percent": round(cpu * 100, 2), "memory_used": int(memory), "memory_limit": limit, "pids": None}

    async def _sample(self, sandbox_id: str) -> dict[str, Any]:
        code, out, err = await self.run(sandbox_id, self._command("cgroup_usage"))
        if code != 0:
            raise BackendUnavailable(f"cannot read the sandbox's usage: {err.decode(errors='replace')[-300:]}")
        sample: dict[str, Any] = program_answer(out, dict, "its usage figures")
        return sample

    async def _from_inside(self, sandbox_id: str, limit: int) -> dict[str, Any]:
        now, sample = time.monotonic(), await self._sample(sandbox_id)
        previous = self._cpu.get(sandbox_id)
        if previous is None or now - previous[0] > 60 or sample["cpu_ns"] < previous[1]:
            await asyncio.sleep(0.2)  # nothing recent to compare with: a second reading shortly after
            previous, (now, sample) = (now, sample["cpu_ns"]), (time.monotonic(), await self._sample(sandbox_id))
        self._cpu[sandbox_id] = (now, int(sample["cpu_ns"]))
        percent = 100.0 * (sample["cpu_ns"] - previous[1]) / max((now - previous[0]) * 1e9, 1.0)
        return {
            "cpu_percent": round(max(percent, 0.0), 2),
            "memory_used": int(sample["memory_used"]),
            "memory_limit": limit,  # the pod's limit (its cgroup's may be the node's when none is set)
            "pids": sample["pids"],
        }

    def forget(self, sandbox_id: str) -> None:
        self._cpu.pop(sandbox_id, None)
