"""Latency of a one-shot ``eval("1+1")`` through a real server, next to plain ``docker run``.

    python benchmarks/bench_eval.py [-n 30] [--image jupyter-sandbox:latest]

Starts a ``jupyter server`` with the extension on Docker (a temporary directory, a random
port and token; stopped at the end), then times, in the same run:

- ``POST sandbox/api/v1/eval {"code": "1+1"}`` over HTTP (a fresh hardened container per call,
  created, fed the files, run, reported and removed);
- ``docker run --rm --network none <image> python -c 1+1`` (the engine's own floor for one
  throwaway container);
- ``python -c 1+1`` as a local subprocess (no container at all).

Prints p50 and p99 (and mean) of each in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def timed(fn, n: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def start_server(root: str, image: str) -> tuple[subprocess.Popen, str, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": os.path.join(root, "runtime"), "JUPYTER_CONFIG_DIR": os.path.join(root, "config")}
    argv = [
        sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
        f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
        '--ServerApp.jpserver_extensions={"jupyter_sandbox": True}',
        "--SandboxApp.backend=docker", f"--DockerBackend.default_image={image}",
        f"--SandboxManager.server_id=bench-{secrets.token_hex(4)}",
    ]
    log = open(os.path.join(root, "server.log"), "wb")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit("jupyter server exited:\n" + open(os.path.join(root, "server.log")).read()[-3000:])
        try:
            urllib.request.urlopen(url + "api/status?token=" + token, timeout=2)
            return proc, url, token
        except OSError:
            if time.monotonic() > deadline:
                proc.terminate()
                raise SystemExit(f"jupyter server did not answer; see {root}/server.log")
            time.sleep(0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=30, help="timed runs of each (default 30)")
    parser.add_argument("--image", default=os.environ.get("JUPYTER_SANDBOX_TEST_IMAGE", "jupyter-sandbox:latest"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-eval-") as root:
        proc, url, token = start_server(root, args.image)
        try:
            def evaluate() -> None:
                request = urllib.request.Request(
                    url + "sandbox/api/v1/eval", data=json.dumps({"code": "1+1"}).encode(), method="POST",
                    headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=120) as response:
                    result = json.load(response)
                assert result["result"] == "2" and result["status"] == "completed", result

            eval_times = timed(evaluate, args.n)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def docker_run() -> None:
        out = subprocess.run(["docker", "run", "--rm", "--network", "none", args.image, "python", "-c", "print(1+1)"],
                             check=True, capture_output=True, text=True).stdout
        assert out.strip() == "2", out

    def local() -> None:
        out = subprocess.run([sys.executable, "-c", "print(1+1)"], check=True, capture_output=True, text=True).stdout
        assert out.strip() == "2", out

    docker_times = timed(docker_run, args.n)
    local_times = timed(local, args.n)

    ms = 1000
    print(f"image: {args.image}   n={args.n} each   (cpus: {os.cpu_count()})")
    for label, times in (
        ('eval("1+1") over HTTP', eval_times),
        ("docker run --rm python -c", docker_times),
        ("local python -c", local_times),
    ):
        print(f"{label:27s} p50 {ms * pct(times, 50):7.1f} ms   p99 {ms * pct(times, 99):7.1f} ms   "
              f"mean {ms * statistics.mean(times):7.1f} ms")
    print(f"ratio eval / docker run (p50): {pct(eval_times, 50) / pct(docker_times, 50):.2f}")


if __name__ == "__main__":
    main()
