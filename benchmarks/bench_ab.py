"""Warm ``1+1`` through REST on two code trees at once, interleaved: A/B under the same load.

    python benchmarks/bench_ab.py A_DIR B_DIR [-n 200] [--runtime runc|runsc]

Starts one benchmark server (harness.Server) per tree, each importing jupyter_sandbox from its
tree (PYTHONPATH), creates a sandbox on each, warms both up, then alternates executions between
them (A then B, B then A, ...) so that whatever else the machine does weighs on both alike. On a
shared machine, where run.py's ratio to a local kernel measured before or after moves with the
load, this says which tree is faster. Prints p50/p90/mean per tree and B's p50 over A's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from harness import Server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs=2, metavar="DIR", help="two source trees (e.g. git archive of two commits)")
    parser.add_argument("-n", type=int, default=200, help="executions measured on each")
    parser.add_argument("--runtime", default="runc", choices=["runc", "runsc"])
    parser.add_argument("--image", default=os.environ.get("JUPYTER_SANDBOX_TEST_IMAGE", "jupyter-sandbox:latest"))
    args = parser.parse_args()
    servers: list[Server] = []
    try:
        sandboxes = []
        for tree in args.trees:
            os.environ["PYTHONPATH"] = os.path.abspath(tree)  # the server subprocess inherits it
            server = Server(args.image, args.runtime).__enter__()
            servers.append(server)
            rest = server.client("alice")
            sandbox = rest.create()["id"]
            for _ in range(30):
                rest.execute(sandbox, "1+1")
            sandboxes.append((rest, sandbox))
        times: list[list[float]] = [[], []]
        for i in range(args.n):
            for which in (0, 1) if i % 2 == 0 else (1, 0):
                rest, sandbox = sandboxes[which]
                start = time.perf_counter()
                rest.execute(sandbox, "1+1")
                times[which].append(time.perf_counter() - start)
    finally:
        for server in servers:
            server.__exit__(None, None, None)
    for tree, samples in zip(args.trees, times, strict=True):
        samples.sort()
        p50, p90, mean = statistics.median(samples), samples[int(len(samples) * 0.9)], statistics.mean(samples)
        print(f"{args.runtime} {tree}: p50 {p50 * 1000:.2f} ms, p90 {p90 * 1000:.2f} ms, mean {mean * 1000:.2f} ms")
    print(f"{args.runtime} B/A p50: {statistics.median(times[1]) / statistics.median(times[0]):.3f}")


if __name__ == "__main__":
    main()
