"""Warm `1+1` round trip through the kernel relay, next to a bare local kernel.

    python benchmarks/bench_relay.py -n 300 [--rounds 3] [--only baseline,local,runc,runsc] [--profile]

One round trip = jupyter_client's execute_interactive("1+1"): execute_request on shell,
then the reply and iopub's idle status. Cases:

- baseline: a local ipykernel on ipc sockets, the client connected to it directly;
- local:    the same kernel behind the relay (launcher as a local subprocess, pipes);
- runc:     the relay over `docker exec -i` into a hardened container (no volumes);
- runsc:    the same under gVisor.

Each round runs every case once (fresh kernel, N measured round trips after a warm-up);
rounds interleave the cases so that a busy machine's drift hits them alike. Prints, per
case, the median over rounds of p50 and p99, and their ratio to the baseline's; and the
CPU time per round trip, which a busy machine disturbs less than latency: in this
process (client + host side of the relay, all threads) and on the sandbox side (the
kernel; + the launcher; or the container's whole cgroup, gVisor's sentry included).
--profile writes a cProfile (CPU time) of the host side of the `local` case to
bench_relay.prof.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from functools import partial

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager

from jupyter_sandbox.backends.kernel_relay import (
    KernelRelay,
    open_docker_exec,
    open_subprocess_launcher,
    start_request,
)

IMAGE = os.environ.get("JUPYTER_SANDBOX_TEST_IMAGE", "jupyter-sandbox:latest")
LABEL = "org.jupyter-sandbox.bench-relay"


TEMP_DIRS: list[str] = []


def temp_dir(prefix: str) -> str:
    path = tempfile.mkdtemp(prefix=prefix)
    TEMP_DIRS.append(path)
    return path


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def proc_cpu_ms(*pids: int) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total * 1000 / os.sysconf("SC_CLK_TCK")


CPU: dict[str, list[tuple[float, float]]] = {}  # case -> (host, sandbox) ms per round trip


async def measured(case: str, client: AsyncKernelClient, n: int, sandbox_cpu) -> list[float]:
    """Round trips, recording this process's and the sandbox's CPU per round trip."""
    await round_trips(client, 0)
    host0, box0 = time.process_time(), await asyncio.to_thread(sandbox_cpu)
    times = await round_trips(client, n, warm=0)
    host1, box1 = time.process_time(), await asyncio.to_thread(sandbox_cpu)
    CPU.setdefault(case, []).append(((host1 - host0) * 1000 / n, (box1 - box0) / n))
    return times


async def round_trips(client: AsyncKernelClient, n: int, warm: int = 20) -> list[float]:
    async def once() -> None:
        reply = await client.execute_interactive("1+1", output_hook=lambda msg: None, timeout=30)
        assert reply["content"]["status"] == "ok", reply

    for _ in range(warm):
        await once()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        await once()
        times.append(time.perf_counter() - t)
    return times


async def connect(info: dict) -> AsyncKernelClient:
    client = AsyncKernelClient()
    client.load_connection_info(info)
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    return client


async def baseline(n: int) -> list[float]:
    km = AsyncKernelManager(transport="ipc", kernel_name="python3")
    km.ip = os.path.join(temp_dir("jsbx-bench-"), "k")
    await km.start_kernel()
    try:
        client = await connect(km.get_connection_info())
        pid = km.provisioner.process.pid
        try:
            return await measured("baseline", client, n, lambda: proc_cpu_ms(pid))
        finally:
            client.stop_channels()
    finally:
        await km.shutdown_kernel(now=True)


async def through_relay(case: str, stream, n: int, state_dir: str, python: str, sandbox_cpu=None) -> list[float]:
    kernel_id = uuid.uuid4().hex[:12]
    key = secrets.token_hex(32)
    socket_dir = temp_dir("jsbx-bench-")
    relay = KernelRelay(stream.reader, stream.writer, socket_dir, kernel_id, key)
    argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    info = await relay.start(start_request(kernel_id, key, argv, state_dir=state_dir))
    try:
        pid = (await relay.wait_ready(timeout=60))["pid"]
        if sandbox_cpu is None:  # local: the kernel and the launcher
            sandbox_cpu = partial(proc_cpu_ms, pid, stream.process.pid)
        client = await connect(info)
        try:
            return await measured(case, client, n, sandbox_cpu)
        finally:
            client.stop_channels()
    finally:
        await relay.stop_kernel()
        await relay.close()


async def local(n: int) -> list[float]:
    stream = await open_subprocess_launcher("start")
    return await through_relay("local", stream, n, temp_dir("jsbx-state-"), sys.executable)


async def docker_case(n: int, runtime: str) -> list[float]:
    import docker

    client = docker.from_env()
    container = client.containers.run(
        IMAGE,
        ["sleep", "infinity"],
        detach=True,
        user="1000:1000",
        network_mode="none",
        read_only=True,
        tmpfs={"/tmp": "rw,noexec,nosuid,nodev,size=64m", "/home/user": "rw,nosuid,nodev,size=64m,uid=1000,gid=1000"},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        pids_limit=256 if runtime == "runsc" else 128,
        mem_limit="512m",
        memswap_limit="512m",
        init=True,
        runtime=runtime,
        labels={LABEL: "1"},
    )
    try:
        stream = await open_docker_exec(client.api, container.id, "start", user="1000:1000")

        def container_cpu() -> float:
            stats = client.api.stats(container.id, stream=False, one_shot=True)
            return stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e6

        return await through_relay(runtime, stream, n, "/tmp/.jsbx", "python", container_cpu)
    finally:
        container.remove(force=True)
        client.close()


async def main(n: int, rounds: int, only: list[str], profile: bool) -> None:
    cases = {
        "baseline": baseline,
        "local": local,
        "runc": lambda n: docker_case(n, "runc"),
        "runsc": lambda n: docker_case(n, "runsc"),
    }
    p50s: dict[str, list[float]] = {name: [] for name in only}
    p99s: dict[str, list[float]] = {name: [] for name in only}
    for _ in range(rounds):
        for name in only:
            if profile and name == "local":
                import cProfile

                profiler = cProfile.Profile(time.thread_time)
                profiler.enable()
                times = await cases[name](n)
                profiler.disable()
                profiler.dump_stats("bench_relay.prof")
            else:
                times = await cases[name](n)
            p50s[name].append(pct(times, 50) * 1000)
            p99s[name].append(pct(times, 99) * 1000)
    print(
        f"warm 1+1 round trip (ms): n={n} per case and round, median of {rounds} rounds; load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'case':10} {'p50':>8} {'p99':>8} {'p50 x':>7} {'p99 x':>7} {'host cpu':>9} {'box cpu':>8}   p50 per round")
    base = "baseline" in p50s
    for name in only:
        p50, p99 = statistics.median(p50s[name]), statistics.median(p99s[name])
        ratios = ""
        if base:
            ratios = (
                f"{p50 / statistics.median(p50s['baseline']):7.2f} {p99 / statistics.median(p99s['baseline']):7.2f}"
            )
        rounds_text = " ".join(f"{v:.2f}" for v in p50s[name])
        host_cpu = statistics.median(h for h, _ in CPU[name])
        box_cpu = statistics.median(b for _, b in CPU[name])
        print(f"{name:10} {p50:8.2f} {p99:8.2f} {ratios} {host_cpu:9.2f} {box_cpu:8.2f}   {rounds_text}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=300, help="measured round trips per case")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all cases (median reported)")
    parser.add_argument("--only", default="baseline,local,runc,runsc", help="comma-separated cases")
    parser.add_argument("--profile", action="store_true", help="cProfile the host side of the local case")
    args = parser.parse_args()
    try:
        asyncio.run(main(args.n, args.rounds, args.only.split(","), args.profile))
    finally:
        for path in TEMP_DIRS:
            shutil.rmtree(path, ignore_errors=True)
