"""Runs INSIDE a sandbox: its own cgroup's memory, CPU time and process count, as one line of JSON.

For a backend that cannot read the sandbox's cgroup from the host (Kubernetes without the metrics
API): a container sees its own cgroup at /sys/fs/cgroup (its cgroup namespace; v2, else v1).
Prints ``{"memory_used", "memory_limit", "cpu_ns", "pids"}`` (memory_used: usage minus inactive
file cache, as ``docker stats`` counts it; memory_limit 0: none). Standard library only, Python 3.8+.
"""

import json
import os

ROOT = "/sys/fs/cgroup"


def read(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read().strip()


def stat(*parts):
    out = {}
    for line in read(*parts).splitlines():
        name, _, value = line.partition(" ")
        if value.isdigit():
            out[name] = int(value)
    return out


def number(*parts):
    try:
        text = read(*parts)
    except OSError:
        return None
    return int(text) if text.isdigit() else 0


if os.path.exists(os.path.join(ROOT, "cgroup.controllers")):
    memory = stat("memory.stat")
    used = int(read("memory.current")) - memory.get("inactive_file", 0)
    limit = number("memory.max")
    cpu_ns = stat("cpu.stat").get("usage_usec", 0) * 1000
    pids = number("pids.current")
else:
    memory = stat("memory", "memory.stat")
    used = int(read("memory", "memory.usage_in_bytes")) - memory.get("total_inactive_file", 0)
    limit = number("memory", "memory.limit_in_bytes")
    cpu_ns = int(read("cpuacct", "cpuacct.usage"))
    pids = number("pids", "pids.current")
print(json.dumps({"memory_used": max(used, 0), "memory_limit": limit or 0, "cpu_ns": cpu_ns, "pids": pids}))
