"""A container's memory, CPU time and process count, read from its cgroup files on this host.

``docker stats`` answers at the engine's next collector tick (once a second on Docker 20.10), so a
panel asking for ten sandboxes waits a second. When the engine runs on this host the same numbers
are in the container's cgroup files, a few microseconds away. Found only where a cgroup named
after the container's full id exists here (so it is that container, on this host); otherwise the
caller asks the engine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ROOT = "/sys/fs/cgroup"
# Where dockerd puts a container's cgroup: the cgroupfs driver, then the systemd one.
LAYOUTS = ("docker/{id}", "system.slice/docker-{id}.scope")


@dataclass
class Sample:
    memory_used: int  # usage minus inactive file cache, as `docker stats` counts it (tmpfs included)
    memory_limit: int
    cpu_ns: int  # CPU time used since the container started
    pids: int | None


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _stat(path: str) -> dict[str, int]:
    out = {}
    for line in _read(path).splitlines():
        name, _, value = line.partition(" ")
        if value.isdigit():
            out[name] = int(value)
    return out


class ContainerCgroup:
    """The cgroup files of one container (cgroup v1 or v2)."""

    def __init__(self, container_id: str, root: str = ROOT):
        self.container_id = container_id
        self.root = root
        self.v2 = os.path.exists(os.path.join(root, "cgroup.controllers"))
        self.relative = next(
            (rel for layout in LAYOUTS if self._exists(rel := layout.format(id=container_id))),
            None,
        )

    def _exists(self, relative: str) -> bool:
        return os.path.isdir(self._dir("memory", relative))

    def _dir(self, controller: str, relative: str | None = None) -> str:
        relative = relative if relative is not None else self.relative or ""
        return os.path.join(self.root, relative) if self.v2 else os.path.join(self.root, controller, relative)

    @property
    def found(self) -> bool:
        return self.relative is not None

    def sample(self) -> Sample:
        """The numbers now. OSError when the container is gone (its cgroup went with it)."""
        if self.v2:
            base = self._dir("")
            memory = _stat(os.path.join(base, "memory.stat"))
            usage = int(_read(os.path.join(base, "memory.current")))
            limit_text = _read(os.path.join(base, "memory.max")).strip()
            limit = 0 if limit_text == "max" else int(limit_text)
            cpu_ns = _stat(os.path.join(base, "cpu.stat")).get("usage_usec", 0) * 1000
            inactive = memory.get("inactive_file", 0)
            pids_path = os.path.join(base, "pids.current")
        else:
            base = self._dir("memory")
            memory = _stat(os.path.join(base, "memory.stat"))
            usage = int(_read(os.path.join(base, "memory.usage_in_bytes")))
            limit = int(_read(os.path.join(base, "memory.limit_in_bytes")))
            cpu_ns = int(_read(os.path.join(self._dir("cpuacct"), "cpuacct.usage")))
            inactive = memory.get("total_inactive_file", memory.get("inactive_file", 0))
            pids_path = os.path.join(self._dir("pids"), "pids.current")
        try:
            pids: int | None = int(_read(pids_path))
        except FileNotFoundError:
            pids = None  # no pids controller here
        return Sample(max(usage - inactive, 0), limit, cpu_ns, pids)
