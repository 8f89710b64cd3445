"""CPU per warm `1+1` execution through REST, split by process: where a round trip's time goes.

    python benchmarks/bench_cpu.py [-n 2000] [--runtime runc|runsc]

Starts the benchmark's Jupyter server (harness.Server, Docker backend), creates one sandbox,
warms it up, then runs N executions one after another and prints the wall time per execution
next to the CPU time each process spent on it: this client, the Jupyter server, dockerd,
containerd and the sandbox's containerd-shim (the relay's exec stream crosses both), and the
container itself (launcher and kernel, from its cgroup's cpuacct.usage). When the CPU per
execution exceeds the wall time, the round trip is bound by the machine's cores, not by waiting.
The server's CPU is also split by thread (its event loop, libzmq's I/O thread, ...).
Needs root (other users' /proc entries) and cgroup v1 for the container's row.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

from harness import Server, cgroup_sample

HZ = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ  # utime + stime, all threads


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name of a process (e.g. its main thread, libzmq's ZMQbg/IO/0)."""
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue  # the thread ended
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / HZ
    return out


def pids(pattern: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="executions measured")
    parser.add_argument("--runtime", default="runc", choices=["runc", "runsc"])
    parser.add_argument("--image", default=os.environ.get("JUPYTER_SANDBOX_TEST_IMAGE", "jupyter-sandbox:latest"))
    args = parser.parse_args()
    with Server(args.image, args.runtime) as server:
        rest = server.client("alice")
        sandbox = rest.create()
        (container,) = server.containers(sandbox=sandbox["id"])
        for _ in range(100):
            rest.execute(sandbox["id"], "1+1")
        procs = {
            "client (this process)": [os.getpid()],
            "Jupyter server": [server.pid],
            "dockerd": pids("^dockerd"),
            "containerd": pids("^containerd "),
            "containerd-shim": pids(f"containerd-shim.*{container.id}"),
        }
        before = {name: sum(map(cpu_seconds, p)) for name, p in procs.items()}
        threads_before = thread_cpu(server.pid)
        cgroup_before = cgroup_sample(container.id)
        start = time.perf_counter()
        for _ in range(args.n):
            rest.execute(sandbox["id"], "1+1")
        wall = time.perf_counter() - start
        cgroup_after = cgroup_sample(container.id)
        after = {name: sum(map(cpu_seconds, p)) for name, p in procs.items()}
        threads_after = thread_cpu(server.pid)
    per = 1000 / args.n
    print(f"| {args.runtime}: per warm `1+1` ({args.n} executions) | ms |")
    print("|---|---|")
    print(f"| wall | {wall * per:.2f} |")
    total = 0.0
    for name in procs:
        total += after[name] - before[name]
        print(f"| CPU, {name} | {(after[name] - before[name]) * per:.2f} |")
    if cgroup_before and cgroup_after:
        container_cpu = (cgroup_after["cpu_ns"] - cgroup_before["cpu_ns"]) / 1e9
        total += container_cpu
        print(f"| CPU, the container (launcher and kernel) | {container_cpu * per:.2f} |")
    print(f"| CPU, all of these | {total * per:.2f} |")
    for name, seconds in sorted(threads_after.items(), key=lambda item: -item[1]):
        spent = seconds - threads_before.get(name, 0.0)
        if spent > 0:
            print(f"| CPU, Jupyter server thread {name!r} | {spent * per:.2f} |")


if __name__ == "__main__":
    main()
