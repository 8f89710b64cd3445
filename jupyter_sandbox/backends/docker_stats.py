"""CPU, memory and pids of Docker sandboxes: from their cgroup files on this host, else from the engine.

The cgroup files (backends/cgroup.py) cost no engine call, so ``stats`` stays off the Docker API;
``engine_stats`` (``docker stats``) is the slow fallback for an engine elsewhere. CPU percent is a
difference of two readings: the last one of each sandbox is kept here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import TYPE_CHECKING, Any

from ..errors import NotFound
from .cgroup import ContainerCgroup

if TYPE_CHECKING:  # (only for types: docker.py imports this module)
    from .docker import DockerBackend


class DockerStats:
    """The usage readings of one backend's sandboxes."""

    def __init__(self, backend: DockerBackend) -> None:
        self.backend = backend
        self._cpu_samples: dict[str, tuple[float, int, int]] = {}  # the engine's: (when, total, system)
        self._cgroups: dict[str, ContainerCgroup] = {}  # sandbox id -> its container's cgroup files
        self._cgroup_cpu: dict[str, tuple[float, int, float]] = {}  # sandbox id -> (when, CPU ns, last percent)

    def forget(self, sandbox_id: str, *, restarted: bool = False) -> None:
        """Drop a sandbox's readings: it is gone, or (``restarted``) its container started again."""
        self._cpu_samples.pop(sandbox_id, None)
        self._cgroups.pop(sandbox_id, None)
        if restarted:
            self.baseline(sandbox_id)
        else:
            self._cgroup_cpu.pop(sandbox_id, None)

    def _cgroup_of(self, sandbox_id: str) -> ContainerCgroup | None:
        """The sandbox's container's cgroup files on this host (looked for once), None when the
        engine is elsewhere or keeps them where we cannot tell."""
        cid = self.backend.container_id(sandbox_id)
        cgroup = self._cgroups.get(sandbox_id)
        if cgroup is None or cgroup.container_id != cid:
            cgroup = self._cgroups[sandbox_id] = ContainerCgroup(cid)
            if not cgroup.found:
                self.backend.log.debug(
                    "jupyter-sandbox: no cgroup of container %s on this host; stats come from the engine", cid
                )
        return cgroup if cgroup.found else None

    def baseline(self, sandbox_id: str) -> None:
        """A first CPU reading (when the cgroup is here), so the first ``stats`` has one to compare with."""
        cgroup = self._cgroup_of(sandbox_id)
        if cgroup is not None:
            with contextlib.suppress(OSError):  # stopped already: stats will say it is gone
                self._cgroup_cpu[sandbox_id] = (time.monotonic(), cgroup.sample().cpu_ns, 0.0)

    async def stats(self, sandbox_id: str) -> dict[str, Any]:
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
            "memory_limit": sample.memory_limit or self.backend.memory_limit(self.backend.spec(sandbox_id)),
            "pids": sample.pids,
        }

    async def engine_stats(self, sandbox_id: str) -> dict[str, Any]:
        """``stats`` as the engine gives them (``docker stats``): slow (its collector ticks once a
        second), but it works wherever the engine runs."""
        cid = self.backend.container_id(sandbox_id)
        sample = await self.backend.engine.call(lambda c: c.api.stats(cid, stream=False, one_shot=True))
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
        memory_stats = memory.get("stats", {})
        used = memory.get("usage", 0) - memory_stats.get("total_inactive_file", memory_stats.get("inactive_file", 0))
        return {
            "cpu_percent": round(max(cpu_percent, 0.0), 2),
            "memory_used": max(used, 0),
            "memory_limit": memory.get("limit") or self.backend.memory_limit(self.backend.spec(sandbox_id)),
            "pids": sample.get("pids_stats", {}).get("current"),
        }
