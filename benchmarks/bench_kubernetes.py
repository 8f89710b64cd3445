"""Create -> first result: a new sandbox and `1+1` in it, on Docker and through the Kubernetes path.

    python benchmarks/bench_kubernetes.py [-n 5] [--kubeconfig FILE --namespace NS] [--json FILE]

Both go through the manager (no pool: every create starts cold): the Docker backend on this host's
engine, and the kubernetes backend against the test API server of tests/k8s (its pods are Docker
containers on the same engine, so the difference is the Kubernetes path: API calls, the watch,
``pods/exec`` websockets), or against a real cluster with --kubeconfig. Rounds interleave the two
so a busy machine's drift hits both alike. Prints each one's median and p90 (seconds) and the
ratio of the medians, all measured in this one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the test API server (tests/k8s) and its helpers

from jupyter_sandbox.backends import make_backend  # noqa: E402
from jupyter_sandbox.core.manager import SandboxManager  # noqa: E402

OWNER = "bench"


@contextlib.contextmanager
def endpoint(kubeconfig: str, namespace: str) -> Iterator[tuple[str, str]]:
    """(kubeconfig, namespace): the one given, else a test API server's for the block."""
    if kubeconfig:
        yield kubeconfig, namespace
        return
    from k8s.fixtures import running_api_server

    with running_api_server(Path(tempfile.mkdtemp(prefix="bench-k8s-"))) as api:
        yield api.kubeconfig, api.namespace


def manager(name: str, image: str, **kwargs: Any) -> SandboxManager:
    backend = make_backend(name, default_image=image, **kwargs)
    return SandboxManager(backend=backend, pool_size=0, reap_on_start=False, default_memory="512M")


async def create_to_first_result(mgr: SandboxManager) -> float:
    started = time.perf_counter()
    model = await mgr.create(OWNER)
    try:
        execution = await mgr.execute(OWNER, model.id, "1+1")
        elapsed = time.perf_counter() - started
        if execution.text != "2":
            raise RuntimeError(f"1+1 gave {execution.text!r} ({execution.error})")
        return elapsed
    finally:
        await mgr.remove(OWNER, model.id)


def summary(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "n": len(values),
        "median": round(statistics.median(values), 3),
        "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 3),
    }


async def bench(rounds: int, image: str, kubeconfig: str, namespace: str) -> dict[str, Any]:
    managers = {
        "docker": manager("docker", image),
        "kubernetes": manager("kubernetes", image, kubeconfig=kubeconfig, namespace=namespace),
    }
    times: dict[str, list[float]] = {name: [] for name in managers}
    try:
        for mgr in managers.values():  # a warm-up each: images, code paths, connections
            await create_to_first_result(mgr)
        for _ in range(rounds):
            for name, mgr in managers.items():
                times[name].append(await create_to_first_result(mgr))
    finally:
        for mgr in managers.values():
            await mgr.shutdown()
    report = {name: summary(values) for name, values in times.items()}
    return {**report, "ratio": round(report["kubernetes"]["median"] / report["docker"]["median"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--rounds", type=int, default=5)
    parser.add_argument("--image", default="jupyter-sandbox:latest")
    parser.add_argument("--kubeconfig", default="", help="a real cluster's (default: a test API server)")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--json", default="", help="also write the figures here")
    args = parser.parse_args()
    with endpoint(args.kubeconfig, args.namespace) as (kubeconfig, namespace):
        report = asyncio.run(bench(args.rounds, args.image, kubeconfig, namespace))
    where = "a real cluster" if args.kubeconfig else "the test API server"
    print("| Backend | create -> first result, median | p90 | n |\n|---|---|---|---|")
    for name in ("docker", "kubernetes"):
        row = report[name]
        label = f"kubernetes ({where})" if name == "kubernetes" else name
        print(f"| {label} | {row['median']:.3f} s | {row['p90']:.3f} s | {row['n']} |")
    print(f"\nkubernetes / docker (medians): {report['ratio']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
