"""Cold start and warm round trip of a sandbox, next to a plain local ipykernel.

    python benchmarks/bench_roundtrip.py [--backend docker|docker-runsc|local] [-n 200]

Prints: create -> first result (cold, and from a pool of started sandboxes), and p50/p99 of a warm `1+1` for the sandbox and for
a local ipykernel (jupyter_client KernelManager, default tcp transport) measured in the same
run, with their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from jupyter_client.manager import AsyncKernelManager

from jupyter_sandbox.backends import make_backend
from jupyter_sandbox.core.collector import run_execute
from jupyter_sandbox.core.manager import SandboxManager


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def warm(execute, n: int) -> list[float]:
    for _ in range(10):
        await execute()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        await execute()
        times.append(time.perf_counter() - t)
    return times


async def main(backend_name: str, n: int) -> None:
    runtime = {"runtime": "runsc"} if backend_name == "docker-runsc" else {}
    backend = make_backend("docker" if backend_name.startswith("docker") else backend_name, **runtime)
    manager = SandboxManager(backend=backend, reap_on_start=False)
    try:
        t0 = time.perf_counter()
        model = await manager.create("bench")
        t1 = time.perf_counter()
        first = await manager.execute("bench", model.id, "1+1")
        t2 = time.perf_counter()
        assert first.text == "2", first

        async def sandbox_exec():
            assert (await manager.execute("bench", model.id, "1+1")).text == "2"

        sandbox_times = await warm(sandbox_exec, n)
    finally:
        await manager.shutdown()

    # The same create with SandboxManager.pool_size=1: a started sandbox is handed out.
    pooled = SandboxManager(backend=make_backend(backend.name, **runtime), reap_on_start=False, pool_size=1)
    await pooled.start()
    try:
        while not pooled._pool:
            await asyncio.sleep(0.05)
        p0 = time.perf_counter()
        model = await pooled.create("bench")
        p1 = time.perf_counter()
        assert (await pooled.execute("bench", model.id, "1+1")).text == "2"
        p2 = time.perf_counter()
    finally:
        await pooled.shutdown()

    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel()
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=60)
    try:
        async def local_exec():
            assert (await run_execute(kc, "1+1")).text == "2"

        local_times = await warm(local_exec, n)
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)

    ms = 1000
    print(f"backend: {backend_name}")
    print(f"cold: create {ms * (t1 - t0):.0f} ms + first result {ms * (t2 - t1):.0f} ms = {ms * (t2 - t0):.0f} ms")
    print(f"pooled (pool_size=1): create {ms * (p1 - p0):.1f} ms + first result {ms * (p2 - p1):.0f} ms = "
          f"{ms * (p2 - p0):.0f} ms  (cold/pooled: {(t2 - t0) / (p2 - p0):.0f}x)")
    for label, times in (("sandbox", sandbox_times), ("local ipykernel", local_times)):
        print(f"warm 1+1 {label:16s} p50 {ms * pct(times, 50):.2f} ms  p99 {ms * pct(times, 99):.2f} ms  "
              f"mean {ms * statistics.mean(times):.2f} ms  (n={len(times)})")
    print(f"ratio sandbox/local p50: {pct(sandbox_times, 50) / pct(local_times, 50):.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="docker", choices=["docker", "docker-runsc", "local"])
    parser.add_argument("-n", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.backend, args.n))
