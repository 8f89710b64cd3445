"""jupyter-sandbox's benchmark suite: every figure through REST, next to a baseline measured in the same run.

    python benchmarks/run.py [--quick] [--only NAME ...] [--json OUT.json] [--runtime runc|runsc|both]
                             [--no-peer] [--python-executor-client DIR]

Starts a real ``jupyter server`` with the jupyter_sandbox extension on the Docker backend (its own
temporary runtime/data/config directories, a free port, one random token per user; stopped by pid
at the end), measures everything through its HTTP API, prints one table (markdown) and writes JSON.

Rows (NAME for --only):
  create      create -> first result of ``1+1``: cold (pool_size=0), from the pool (pool_size=1), and
              on default settings (the pool sized to demand): at a user's pace and in bursts
  warm        warm ``1+1`` (p50/p99) next to a local ipykernel through jupyter_client
  eval        one-shot ``POST sandbox/api/v1/eval {"code": "1+1"}`` next to ``docker run --rm``
  idle        10 and 50 idle sandboxes: memory per sandbox; another user's ``1+1`` meanwhile
  stats       ``GET sandboxes/{id}/stats`` for 10 sandboxes at once
  throughput  executions per second across 10 sandboxes (10 concurrent clients)
  output      100 MB of stdout and a 5 MB PNG from one execution: time, server peak RSS growth
The peer, llm-sandbox (``pip install -e '.[bench]'``), runs the same workloads where it can, on the
same engine, image and runtime. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    LABEL,
    BenchError,
    Rest,
    Server,
    cgroup_sample,
    container_memory,
    docker_client,
    proc_status,
    reset_peak_rss,
)
from peers import (
    LLM_TAG,
    LlmSandbox,
    LocalKernel,
    docker_run,
    ensure_llm_image,
    llm_sandbox_version,
    load_python_executor_client,
    remove_bench_containers,
)

from jupyter_sandbox.core.pool import demand_cap

ROW_NAMES = ["create", "warm", "eval", "idle", "stats", "throughput", "output"]
MB = 1e6
BIG_STDOUT = 100 * 1024 * 1024  # 100 MiB: 102400 lines of 1 KiB
BIG_STDOUT_CODE = "import sys\nline = 'x' * 1023 + '\\n'\nfor _ in range(102400):\n    sys.stdout.write(line)\n"
PNG_CODE = (
    "import io, numpy as np\n"
    "from PIL import Image as PILImage\n"
    "from IPython.display import Image, display\n"
    "buf = io.BytesIO()\n"
    "noise = np.random.default_rng(0).integers(0, 256, (1300, 1300, 3), dtype=np.uint8)  # incompressible: ~5 MB\n"
    "PILImage.fromarray(noise).save(buf, format='PNG')\n"
    "display(Image(data=buf.getvalue()))\n"
    "len(buf.getvalue())\n"
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- figures ---------------------------------------------------------------------------------------


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def latency(samples: list[float], **extra) -> dict[str, Any]:
    """p50/p99/mean in ms of samples in seconds."""
    return {
        "p50": round(1000 * pct(samples, 50), 2),
        "p99": round(1000 * pct(samples, 99), 2),
        "mean": round(1000 * statistics.mean(samples), 2),
        "n": len(samples),
        **extra,
    }


def timed(fn: Callable[[], Any], n: int, warmup: int = 0) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


@dataclass
class Row:
    key: str  # the --only name it belongs to
    what: str
    unit: str  # "ms" (value has p50/p99), or the unit of value["value"]
    value: dict[str, Any]
    baseline: dict[str, Any] | None = None  # {"name", ...same shape as value}
    ratio: float | None = None  # value / baseline (p50s)
    peer: dict[str, Any] | None = None  # llm-sandbox: {"name", ...} or {"name", "skipped": why}
    peer_ratio: float | None = None  # peer / value (p50s): how many times faster jupyter-sandbox is
    target: str = ""
    met: bool | None = None
    note: str = ""
    runtime: str = ""


def main_figure(d: dict[str, Any]) -> float:
    return d["p50"] if "p50" in d else d["value"]


def ratio(a: dict | None, b: dict | None) -> float | None:
    if not a or not b or "skipped" in a or "skipped" in b:
        return None
    x, y = main_figure(a), main_figure(b)
    return round(x / y, 2) if y else None


def show(d: dict[str, Any] | None, unit: str) -> str:
    if d is None:
        return ""
    if "skipped" in d:
        return f"{d.get('name', '')}: {d['skipped']}".strip(": ")
    name = f"{d['name']}: " if d.get("name") else ""
    if "p50" in d:
        return f"{name}p50 {d['p50']:.1f} / p99 {d['p99']:.1f} ms"
    value, unit = d["value"], d.get("unit", unit)
    text = f"{value:.1f} {unit}" if isinstance(value, float) else f"{value} {unit}"
    return name + text + (f" ({d['detail']})" if d.get("detail") else "")


def _submit(client, code: str) -> str:
    """An execution id, or "HTTP <status>" when the server refused the submission."""
    import requests

    try:
        return client.execute_async(files={"main.py": code})
    except requests.HTTPError as e:
        return f"HTTP {e.response.status_code}"


# -- the rows ----------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, runtime: str):
        self.args = args
        self.runtime = runtime
        self.quick = args.quick
        self.run_id = f"{runtime}-{secrets.token_hex(4)}"
        self.rows: list[Row] = []
        self.peer_name = None
        if args.peer:
            version = llm_sandbox_version()
            if version is None:
                self.peer_skip = "not installed (pip install -e '.[bench]')"
            else:
                self.peer_name = f"llm-sandbox {version}"
                self.peer_skip = ""
                ensure_llm_image(args.image)
        else:
            self.peer_skip = "--no-peer"
        self.cold_p50: float | None = None
        self.cold_peer: dict[str, Any] | None = None  # llm-sandbox's create -> first result in this run
        self.server_ids: list[str] = []  # the servers' container labels, reported so a test can check for leftovers

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def add(self, row: Row) -> None:
        row.runtime = self.runtime
        if row.ratio is None and row.baseline:
            row.ratio = ratio(row.value, row.baseline)
        if row.peer_ratio is None and row.peer:
            row.peer_ratio = ratio(row.peer, row.value)
        self.rows.append(row)
        log(
            f"{row.what}: {show(row.value, row.unit)}  | {show(row.baseline, row.unit)}  | ratio {row.ratio}  "
            f"| {show(row.peer, row.unit)}"
        )

    def peer(self, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run a peer measurement, or say why not."""
        if self.peer_name is None:
            return {"name": "llm-sandbox", "skipped": self.peer_skip}
        try:
            return {"name": self.peer_name, **measure()}
        finally:
            remove_bench_containers(self.run_id)

    # -- 2. warm 1+1 ---------------------------------------------------------------------------
    def warm(self, server: Server) -> None:
        n = self.n(200, 30)
        rest = server.client("alice")
        sandbox = rest.create(name="warm")
        kernel = LocalKernel()
        try:

            def sandbox_once():
                if rest.execute(sandbox["id"], "1+1").text != "2":
                    raise BenchError("1+1 did not give 2 through REST")

            def local_once():
                if kernel.execute("1+1")["text"] != "2":
                    raise BenchError("1+1 did not give 2 in the local kernel")

            for _ in range(10):
                sandbox_once()
                local_once()
            # interleaved, so both see the same background load on a shared machine
            rest_times, local_times = [], []
            for _ in range(n):
                rest_times += timed(sandbox_once, 1)
                local_times += timed(local_once, 1)
        finally:
            kernel.close()
            rest.delete(sandbox["id"])
            rest.close()

        def llm():
            session = LlmSandbox(self.runtime, self.run_id)
            try:
                samples = timed(lambda: self._check_llm(session.run("print(1+1)")), min(n, 50), warmup=2)
            finally:
                session.close()
            return {**latency(samples), "detail": 'run("print(1+1)") in an open session'}

        value = latency(rest_times)
        base = {"name": "local ipykernel (jupyter_client)", **latency(local_times)}
        r = ratio(value, base)
        self.add(
            Row(
                "warm",
                "Warm `1+1` through REST",
                "ms",
                value,
                base,
                peer=self.peer(llm),
                target="REST/local <= 1.3; llm-sandbox/REST >= 10",
                met=r is not None and r <= 1.3,
            )
        )
        row = self.rows[-1]
        if row.peer_ratio is not None:
            row.met = row.met and row.peer_ratio >= 10

    @staticmethod
    def _check_llm(stdout: str) -> None:
        if stdout.strip() != "2":
            raise BenchError(f"llm-sandbox printed {stdout!r}, not 2")

    # -- 1. create -> first result ---------------------------------------------------------------
    def create_cold(self, server: Server) -> None:
        n = self.n(10, 3)
        rest = server.client("alice")
        totals, creates = [], []
        try:
            for _ in range(n):
                t0 = time.perf_counter()
                model = rest.create()
                t1 = time.perf_counter()
                run = rest.execute(model["id"], "1+1")
                t2 = time.perf_counter()
                rest.delete(model["id"])
                if run.text != "2":
                    raise BenchError("first result was not 2")
                totals.append(t2 - t0)
                creates.append(t1 - t0)
        finally:
            rest.close()
        self.cold_p50 = pct(totals, 50)

        local = []
        for _ in range(n):
            t0 = time.perf_counter()
            kernel = LocalKernel()
            out = kernel.execute("1+1")
            local.append(time.perf_counter() - t0)
            kernel.close()
            if out["text"] != "2":
                raise BenchError("local kernel: first result was not 2")

        def llm():
            samples = []
            for _ in range(n):
                t0 = time.perf_counter()
                session = LlmSandbox(self.runtime, self.run_id)
                self._check_llm(session.run("print(1+1)"))
                samples.append(time.perf_counter() - t0)
                session.close()
            return {**latency(samples), "detail": "open() + first run()"}

        value = latency(totals, create_p50=round(1000 * pct(creates, 50), 1))
        self.cold_peer = self.peer(llm)
        self.add(
            Row(
                "create",
                "Create -> first result, cold (pool_size=0)",
                "ms",
                value,
                {"name": "local ipykernel start -> first result", **latency(local)},
                peer=self.cold_peer,
                target="<= 450 ms",
                met=value["p50"] <= 450,
                note=f"of which POST sandboxes p50 {value['create_p50']} ms",
            )
        )

    def create_pooled(self) -> None:
        n = self.n(10, 3)
        margin = max(1.5, 3 * (self.cold_p50 or 1.0))  # a refilled pool container needs its kernel ready too
        with Server(self.args.image, self.runtime, pool_size=1) as server:
            self.server_ids.append(server.bench_id)
            rest = server.client("alice")
            taken: set[str] = set()
            totals, creates, misses = [], [], 0
            try:
                while len(totals) < n:
                    pooled = self._wait_pool(server, taken, margin)
                    t0 = time.perf_counter()
                    model = rest.create()
                    t1 = time.perf_counter()
                    run = rest.execute(model["id"], "1+1")
                    t2 = time.perf_counter()
                    taken.add(model["id"])
                    rest.delete(model["id"])
                    if run.text != "2":
                        raise BenchError("first result was not 2")
                    if model["id"] != pooled:  # checked by the containers' labels, not by timing
                        misses += 1
                        if misses > n:
                            raise BenchError("the pool never served a create")
                        continue
                    totals.append(t2 - t0)
                    creates.append(t1 - t0)
            finally:
                rest.close()
        base = None
        if self.cold_p50 is not None:
            cold = next(r for r in self.rows if r.what.startswith("Create -> first result, cold"))
            base = {"name": "cold create (this run)", **{k: cold.value[k] for k in ("p50", "p99", "mean", "n")}}
        value = latency(totals, create_p50=round(1000 * pct(creates, 50), 1), misses=misses)
        self.add(
            Row(
                "create",
                "Create -> first result, from the pool (pool_size=1)",
                "ms",
                value,
                base,
                peer={"name": "llm-sandbox", "skipped": "n/a (its pool reuses containers across sessions)"},
                target="< 25 ms",
                met=value["p50"] < 25,
                note=f"POST sandboxes p50 {value['create_p50']} ms; pool refilled between samples",
            )
        )

    def create_default(self) -> None:
        """A server on default settings (its pool sized to demand): creates at a user's pace (the
        refill done between them), then bursts of creates back to back, which it grows for."""
        n, burst = self.n(10, 3), 4
        pace = max(3.0, 3 * (self.cold_p50 or 1.0))  # a refill: the delay, a container and a warmed kernel
        # what the server's pool grows to on this host (the harness allows 64 sandboxes per user)
        cap = demand_cap(1, os.cpu_count() or 1, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), 64)
        with Server(self.args.image, self.runtime, pool_size=None) as server:
            self.server_ids.append(server.bench_id)
            rest = server.client("alice")
            try:
                self._wait_ready(server)
                paced, paced_warm = [], 0
                for _ in range(n):
                    total, warm, sandbox_id = self._create_first_result(server, rest)
                    rest.delete(sandbox_id)
                    paced.append(total)
                    paced_warm += warm
                    time.sleep(pace)
                bursts: list[list[tuple[float, bool]]] = []
                for _ in range(2):  # the first grows the pool, the second finds it grown
                    made = [self._create_first_result(server, rest) for _ in range(burst)]
                    bursts.append([(total, warm) for total, warm, _ in made])
                    for _, _, sandbox_id in made:
                        rest.delete(sandbox_id)
                    self._wait_started(server, cap)
                    time.sleep(pace)  # their kernels warm up
            finally:
                rest.close()
        cold = next(r for r in self.rows if r.what.startswith("Create -> first result, cold"))
        base = {"name": "cold create (this run)", **{k: cold.value[k] for k in ("p50", "p99", "mean", "n")}}
        peer = self.cold_peer or {"name": "llm-sandbox", "skipped": "not measured"}
        if "p50" in peer:
            peer = {**peer, "name": f"{peer['name']} (the cold row's run)"}
        for what, samples, warm in (
            (f"default settings, one create every {pace:.0f} s", paced, paced_warm),
            *(
                (f"default settings, burst {i + 1} of {burst} back to back", [t for t, _ in b], sum(w for _, w in b))
                for i, b in enumerate(bursts)
            ),
        ):
            value = latency(samples, served_warm=warm)
            beats_peer = "p50" not in peer or value["p50"] < peer["p50"]
            self.add(
                Row(
                    "create",
                    f"Create -> first result, {what}",
                    "ms",
                    value,
                    base,
                    peer=peer,
                    target="<= 300 ms and below llm-sandbox"
                    + (" (runsc <= 700 ms)" if self.runtime == "runsc" else ""),
                    met=value["p50"] <= (700 if self.runtime == "runsc" else 300) and beats_peer,
                    note=f"{warm} of {len(samples)} served by a started sandbox",
                )
            )

    def _create_first_result(self, server: Server, rest: Rest) -> tuple[float, bool, str]:
        """Seconds from POST sandboxes to the result of ``1+1``; whether a pooled sandbox served it."""
        pooled = {c.labels.get(f"{LABEL}.sandbox", "") for c in server.containers(owner="")}
        t0 = time.perf_counter()
        model = rest.create()
        run = rest.execute(model["id"], "1+1")
        took = time.perf_counter() - t0
        if run.text != "2":
            raise BenchError("first result was not 2")
        return took, model["id"] in pooled, model["id"]

    @staticmethod
    def _wait_ready(server: Server) -> None:
        """Until the server's log says a pooled sandbox got ready (its kernel warmed up)."""
        deadline = time.monotonic() + 120
        while "a pooled sandbox is ready" not in server.log_tail(10**9):
            if time.monotonic() > deadline:
                raise BenchError(f"the default pool did not fill in 120 s:\n{server.log_tail()}")
            time.sleep(0.1)

    @staticmethod
    def _wait_started(server: Server, count: int) -> None:
        """Until ``count`` pooled sandbox containers run (owner label empty, a sandbox label)."""
        deadline = time.monotonic() + 120
        while sum(1 for c in server.containers(owner="") if c.labels.get(f"{LABEL}.sandbox")) < count:
            if time.monotonic() > deadline:
                raise BenchError(f"the default pool did not grow to {count} in 120 s:\n{server.log_tail()}")
            time.sleep(0.2)

    def _wait_pool(self, server: Server, taken: set[str], margin: float) -> str:
        """The sandbox id of a started pool container (owner label empty), once its kernel has had time."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for c in server.containers(owner=""):
                sandbox_id = c.labels.get(f"{LABEL}.sandbox", "")  # (the one-shot pool's carry none)
                if c.status == "running" and sandbox_id and sandbox_id not in taken:
                    time.sleep(margin)
                    return sandbox_id
            time.sleep(0.1)
        raise BenchError(f"no pooled sandbox appeared in 120 s:\n{server.log_tail()}")

    # -- 3. one-shot eval --------------------------------------------------------------------------
    def _wait_once_pool(self, server: Server, taken: set[str], size: int = 2) -> None:
        """Until ``size`` started one-shot containers wait in the server's pool (owner label empty:
        the owner comes with the execution), none of them already used, and the engine has settled."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            waiting = [
                c
                for c in server.containers(owner="")
                if c.status == "running" and c.labels.get(f"{LABEL}.execution", "") not in ("", *taken)
            ]
            if len(waiting) >= size:
                time.sleep(0.5)
                return
            time.sleep(0.05)
        raise BenchError(f"the one-shot pool did not fill in 120 s:\n{server.log_tail()}")

    def eval(self, server: Server) -> None:
        n = self.n(30, 5)
        rest = server.client("alice")
        taken: set[str] = set()

        def once():
            result = rest.eval("1+1")
            if result.get("result") != "2" or result.get("status") != "completed":
                raise BenchError(f"eval gave {result}")
            taken.add(result["execution_id"])

        try:
            timed(once, 2)
            # one request at a time, the pool refilled in between (as requests spaced out arrive)
            samples = []
            for _ in range(n):
                self._wait_once_pool(server, taken)
                samples += timed(once, 1)
            # back to back: as many in a row as the engine can start containers for
            self._wait_once_pool(server, taken)
            burst = timed(once, n)
        finally:
            rest.close()

        def run_once():
            if docker_run(self.args.image, self.runtime, self.run_id, ["python", "-c", "print(1+1)"]).strip() != "2":
                raise BenchError("docker run did not print 2")

        try:
            base_samples = timed(run_once, n, warmup=1)
        finally:
            remove_bench_containers(self.run_id)

        def llm():
            def one_shot():
                session = LlmSandbox(self.runtime, self.run_id)
                try:
                    self._check_llm(session.run("print(1+1)"))
                finally:
                    session.close()

            return {**latency(timed(one_shot, n, warmup=1)), "detail": "open + run + close"}

        value = latency(samples)
        self.add(
            Row(
                "eval",
                'One-shot `POST v1/eval {"code": "1+1"}`, one at a time',
                "ms",
                value,
                {"name": "docker run --rm (docker-py)", **latency(base_samples)},
                peer=self.peer(llm),
                target="p50 < 100 ms",
                met=value["p50"] < 100,
                note="the server's pool of started one-shot containers (2) refilled between requests",
            )
        )
        self.add(
            Row(
                "eval",
                f'One-shot `POST v1/eval {{"code": "1+1"}}`, {n} back to back',
                "ms",
                latency(burst),
                {"name": "docker run --rm (docker-py)", **latency(base_samples)},
                note="the pool refills as fast as the engine starts containers; each container is used once",
            )
        )

        if self.args.python_executor_client:
            self._python_executor(server, n, self.rows[-1].baseline)

    def _python_executor(self, server: Server, n: int, base: dict) -> None:
        import requests

        Client = load_python_executor_client(self.args.python_executor_client)
        client = Client(server.url + "sandbox")  # it appends /api/v1/...
        client.session.headers.update(server.headers("alice"))  # its session has no token option
        health = requests.get(server.url + "sandbox/health", timeout=10).status_code  # as its benchmark calls it
        health_token = requests.get(server.url + "sandbox/health", headers=server.headers("alice"), timeout=10)

        taken: set[str] = set()

        def eval_once():
            result = client.eval("1+1")
            taken.add(result.execution_id)
            if result.result != "2":
                raise BenchError("python-executor client: eval did not give '2'")

        def exec_once():
            result = client.execute_sync(files={"main.py": "print(1+1)"})
            taken.add(result.execution_id)
            if result.stdout.strip() != "2":
                raise BenchError(f"python-executor client: execute_sync printed {result.stdout!r}")

        def one_at_a_time(fn: Callable[[], Any]) -> list[float]:
            samples = []
            for _ in range(n):
                self._wait_once_pool(server, taken)
                samples += timed(fn, 1)
            return samples

        def concurrent_5() -> tuple[float, list[str]]:
            # as its benchmark's concurrent_5 does it: five execute_async in a row, then wait for all
            t0 = time.perf_counter()
            submitted = [_submit(client, f"print({i})") for i in range(5)]
            ids = [s for s in submitted if not s.startswith("HTTP ")]
            with ThreadPoolExecutor(5) as pool:
                list(pool.map(lambda e: client.wait_for_completion(e, poll_interval=0.1, max_wait=120), ids))
            return time.perf_counter() - t0, [s for s in submitted if s.startswith("HTTP ")]

        try:
            evals = one_at_a_time(eval_once)
            execs = one_at_a_time(exec_once)
            self._wait_once_pool(server, taken)
            burst, refused = concurrent_5()
        finally:
            client.session.close()
        note = (
            f"GET sandbox/health: {health_token.status_code} with the token, {health} without "
            "(its benchmark script sends none: see docs/benchmarks.md)"
        )
        self.add(
            Row(
                "eval",
                "python-executor's client `eval('1+1')`, one at a time",
                "ms",
                latency(evals),
                base,
                target="p50 < 100 ms",
                met=pct(evals, 50) < 0.1,
                note=note,
            )
        )
        self.add(
            Row(
                "eval",
                "python-executor's client `execute_sync(main.py)`, one at a time",
                "ms",
                latency(execs),
                base,
                target="p50 < 100 ms",
                met=pct(execs, 50) < 0.1,
            )
        )
        self.add(
            Row(
                "eval",
                "python-executor's client: 5 `execute_async` in a row, then all waited for (its concurrent_5)",
                "s",
                {"value": round(burst, 2), "refused": refused},
                target="all 5 accepted",
                met=not refused,
                note=f"{5 - len(refused)} accepted" + (f", refused: {', '.join(refused)}" if refused else ""),
            )
        )

    # -- 4, stats, 5. many sandboxes ------------------------------------------------------------------
    def many(self, server: Server, names: set[str]) -> None:
        counts = [10] if self.quick or not {"idle"} & names else [10, 50]
        alice, bob = server.client("alice"), server.client("bob")
        bobs = bob.create(name="bob")
        made: list[str] = []
        kernel = LocalKernel() if "idle" in names else None
        try:
            n_bob = self.n(100, 20)
            bob_once = lambda: bob.execute(bobs["id"], "1+1")  # noqa: E731
            bob_alone = timed(bob_once, n_bob, warmup=5) if "idle" in names else []
            rss_before = proc_status(server.pid)["VmRSS"]
            for count in counts:
                log(f"creating {count - len(made)} sandboxes of another user (up to {count})")
                with ThreadPoolExecutor(2) as pool:  # two at a time: the machine has two cores
                    made += [m["id"] for m in pool.map(lambda _: alice.create(), range(count - len(made)))]
                time.sleep(3)  # let the new kernels settle to idle
                if count == 10 and "stats" in names:
                    self.stats(server, made)
                if count == 10 and "throughput" in names:
                    self.throughput(server, made)
                if "idle" in names:
                    self.idle(server, alice, made, rss_before, kernel, bob_once, bob_alone, n_bob)
        finally:
            if kernel is not None:
                kernel.close()
            log(f"removing {len(made) + 1} sandboxes")
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(alice.delete, made))
            bob.delete(bobs["id"])
            alice.close()
            bob.close()

    def idle(self, server, alice, made, rss_before, kernel, bob_once, bob_alone, n_bob) -> None:
        count = len(made)
        rest_mem = [alice.stats(sid)["memory_used"] for sid in made]
        cgroup = [container_memory(c) for c in self._containers(server, made)]
        server_growth = (proc_status(server.pid)["VmRSS"] - rss_before) / count
        value = {
            "value": round(statistics.mean(cgroup) / MB, 1),
            "detail": f"REST stats {statistics.mean(rest_mem) / MB:.1f} MB; server RSS +{server_growth / MB:.1f} MB each",
            "rest_stats_mb": round(statistics.mean(rest_mem) / MB, 1),
            "server_rss_per_sandbox_mb": round(server_growth / MB, 1),
            "count": count,
        }
        self.add(
            Row(
                "idle",
                f"{count} idle sandboxes: memory per sandbox (container cgroup)",
                "MB",
                value,
                {"name": "a local ipykernel's RSS", "value": round(kernel.rss / MB, 1)},
                peer={"name": "llm-sandbox", "skipped": "n/a (no resident interpreter between runs)"},
            )
        )
        meanwhile = timed(bob_once, n_bob, warmup=3)
        self.add(
            Row(
                "idle",
                f"Another user's `1+1` while {count} sandboxes idle",
                "ms",
                latency(meanwhile),
                {"name": "the same, before the idle sandboxes existed", **latency(bob_alone)},
                note="two users through a token-per-user identity provider",
            )
        )

    @staticmethod
    def _containers(server: Server, made: list[str]) -> list:
        found = [c for c in server.containers(owner="alice") if c.labels.get(f"{LABEL}.sandbox") in made]
        if len(found) != len(made):
            raise BenchError(f"found {len(found)} containers labelled for the {len(made)} sandboxes")
        return found

    def stats(self, server: Server, made: list[str]) -> None:
        rounds = self.n(10, 3)
        clients = [server.client("alice") for _ in made]

        def one_round() -> float:
            t0 = time.perf_counter()
            with ThreadPoolExecutor(len(made)) as pool:
                list(pool.map(lambda pair: pair[0].stats(pair[1]), zip(clients, made, strict=True)))
            return time.perf_counter() - t0

        try:
            first = one_round()  # nobody asked before: the server may need two samples
            steady = []
            for _ in range(rounds):
                time.sleep(1.0)
                steady.append(one_round())
            single = timed(lambda: clients[0].stats(made[0]), rounds * 2)
        finally:
            for c in clients:
                c.close()
        ids = [c.id for c in self._containers(server, made)]
        floor = timed(lambda: [cgroup_sample(i) for i in ids], 20)
        value = latency(steady, first_round_ms=round(1000 * first, 1), single_p50=round(1000 * pct(single, 50), 1))
        self.add(
            Row(
                "stats",
                f"GET stats of {len(made)} sandboxes at once (the panel's refresh)",
                "ms",
                value,
                {"name": f"reading the {len(ids)} containers' cgroup files", **latency(floor)},
                target="< 200 ms",
                met=value["p50"] < 200,
                note=f"first round {value['first_round_ms']} ms; one GET stats p50 {value['single_p50']} ms",
            )
        )

    def throughput(self, server: Server, made: list[str]) -> None:
        duration = self.n(10.0, 3.0)
        clients = [server.client("alice") for _ in made]
        try:
            ours = self._rate(
                [lambda c=c, s=s: c.execute(s, "1+1") for c, s in zip(clients, made, strict=True)], duration
            )
        finally:
            for c in clients:
                c.close()
        kernels = [LocalKernel() for _ in made]
        try:
            local = self._rate([lambda k=k: k.execute("1+1") for k in kernels], duration)
        finally:
            for k in kernels:
                k.close()

        def llm():
            sessions = []
            try:
                for _ in made:
                    sessions.append(LlmSandbox(self.runtime, self.run_id))
                rate = self._rate([lambda s=s: s.run("print(1+1)") for s in sessions], duration)
            finally:
                for s in sessions:
                    s.close()
            return {"value": rate}

        value = {"value": ours}
        row = Row(
            "throughput",
            f"Executions/s across {len(made)} sandboxes ({len(made)} concurrent clients)",
            "exec/s",
            value,
            {"name": f"{len(made)} local ipykernels", "value": local},
            peer=self.peer(llm),
        )
        # for a rate, "how many times faster than the peer" is ours / theirs
        row.peer_ratio = ratio(value, row.peer)
        self.add(row)

    @staticmethod
    def _rate(workers: list[Callable[[], Any]], duration: float) -> float:
        counts = [0] * len(workers)
        start = threading.Barrier(len(workers) + 1)
        stop_at: list[float] = []

        def loop(i: int) -> None:
            start.wait()
            while time.perf_counter() < stop_at[0]:
                workers[i]()
                counts[i] += 1

        threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(workers))]
        for t in threads:
            t.start()
        stop_at.append(time.perf_counter() + duration)
        t0 = time.perf_counter()
        start.wait()
        for t in threads:
            t.join()
        return round(sum(counts) / (time.perf_counter() - t0), 1)

    # -- 6. big output ---------------------------------------------------------------------------------
    def output(self, server: Server, uncapped: bool = False) -> None:
        """100 MB of stdout (and, on the default server, a 5 MB PNG): wall time and the server's peak RSS.

        On the default server the execution keeps only ``max_output_size`` of output and says how much
        it dropped; ``uncapped`` is a server with the cap above 100 MB, so all of it is streamed.
        """
        rest = server.client("alice")
        sandbox = rest.create(name="output")
        kernel = LocalKernel()
        cases = [("100 MB of stdout", BIG_STDOUT_CODE)]
        if not uncapped:
            cases.append(("a 5 MB PNG", PNG_CODE))
        try:
            rest.execute(sandbox["id"], "1+1")
            for what, code in cases:
                rss0 = proc_status(server.pid)["VmRSS"]
                reset_peak_rss(server.pid)
                t0 = time.perf_counter()
                run = rest.execute(sandbox["id"], code)
                wall = time.perf_counter() - t0
                growth = proc_status(server.pid)["VmHWM"] - rss0
                t0 = time.perf_counter()
                kernel.execute(code)
                local = time.perf_counter() - t0
                if what.endswith("PNG"):
                    if run.png_bytes < 4_900_000:
                        raise BenchError(f"{what}: got a {run.png_bytes}-byte PNG")
                    detail, label = "", what
                    peer = {"name": "llm-sandbox", "skipped": "n/a (run() returns stdout/stderr, not display data)"}
                else:
                    # every byte printed should be either sent or counted in the server's truncation
                    # line; what is neither is reported as lost (a finding, so not fatal)
                    lost = BIG_STDOUT - run.stdout_bytes - run.dropped_bytes
                    detail = f"sent {run.stdout_bytes / MB:.1f} MB, reported dropped {run.dropped_bytes / MB:.1f} MB"
                    if lost:
                        detail += f", LOST without notice {lost / MB:.1f} MB"
                    label = what + (", output cap raised to 256 MiB" if uncapped else ", default output cap")
                    peer = self.peer(self._llm_big_stdout) if not uncapped else None
                value = {
                    "value": round(growth / MB, 1),
                    "wall_s": round(wall, 2),
                    "ndjson_lines": run.lines,
                    "sent_bytes": run.stdout_bytes,
                    "dropped_bytes": run.dropped_bytes,
                    "lost_bytes": BIG_STDOUT - run.stdout_bytes - run.dropped_bytes if not what.endswith("PNG") else 0,
                }
                # the ratios compare wall times (RSS has no same-run baseline: the target is absolute)
                self.add(
                    Row(
                        "output",
                        f"{label}: server peak RSS growth",
                        "MB",
                        value,
                        {"name": "local ipykernel wall time", "value": round(local, 2), "unit": "s"},
                        ratio=round(wall / local, 2),
                        peer=peer,
                        peer_ratio=round(peer["value"] / wall, 2) if peer and "value" in peer else None,
                        # bounded memory that loses output without a word does not count
                        target="< 50 MB, nothing lost",
                        met=growth / MB < 50 and not value["lost_bytes"],
                        note="; ".join(x for x in (f"wall {wall:.2f} s", detail, f"{run.lines} NDJSON lines") if x),
                    )
                )
        finally:
            kernel.close()
            rest.delete(sandbox["id"])
            rest.close()

    def _llm_big_stdout(self) -> dict[str, Any]:
        session = LlmSandbox(self.runtime, self.run_id)
        try:
            pid = os.getpid()
            rss = proc_status(pid)["VmRSS"]
            reset_peak_rss(pid)
            t0 = time.perf_counter()
            out = session.run(BIG_STDOUT_CODE)
            took = time.perf_counter() - t0
            peak = proc_status(pid)["VmHWM"] - rss
            got = len(out)
            del out
        finally:
            session.close()
        detail = f"caller's peak RSS +{peak / MB:.0f} MB"
        if got != BIG_STDOUT:  # the peer's answer, reported rather than fatal
            detail += f"; INCOMPLETE: {got} of {BIG_STDOUT} bytes returned"
        return {"value": round(took, 2), "unit": "s", "detail": detail, "stdout_bytes": got}

    # -- everything for one runtime --------------------------------------------------------------------
    def run(self, names: set[str]) -> list[Row]:
        log(f"runtime {self.runtime}: starting a jupyter server")
        with Server(self.args.image, self.runtime) as server:
            self.server_ids.append(server.bench_id)
            log(f"server pid {server.pid} at {server.url}")
            if "warm" in names:
                self.warm(server)
            if "create" in names:
                self.create_cold(server)
            if "eval" in names:
                self.eval(server)
            if names & {"idle", "stats", "throughput"}:
                self.many(server, names)
            if "output" in names:
                self.output(server)
        if "output" in names:
            log(f"runtime {self.runtime}: a server keeping all 100 MB (max_output_size 256 MiB)")
            uncapped = {"SandboxManager": {"max_output_size": 256 * 1024 * 1024}}
            with Server(self.args.image, self.runtime, extra=uncapped) as server:
                self.server_ids.append(server.bench_id)
                self.output(server, uncapped=True)
        if "create" in names:
            log(f"runtime {self.runtime}: a server with pool_size=1")
            self.create_pooled()
            log(f"runtime {self.runtime}: a server on default settings (the pool sized to demand)")
            self.create_default()
        return self.rows


# -- output -------------------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    head = "| Runtime | What | jupyter-sandbox (REST) | Baseline, same run | Ratio | llm-sandbox | × vs llm-sandbox | Target | Met |"
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        value = show(r.value, r.unit) + (f"; {r.note}" if r.note else "")
        lines.append(
            f"| {r.runtime} | {r.what} | {value} | {show(r.baseline, r.unit)} | "
            f"{'' if r.ratio is None else r.ratio} | {show(r.peer, r.unit)} | "
            f"{'' if r.peer_ratio is None else r.peer_ratio} | {r.target} | {met} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    client = docker_client()
    info = client.info()
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker": info.get("ServerVersion"),
        "cgroup": info.get("CgroupVersion"),
        "loadavg_at_start": os.getloadavg(),
    }


def _interrupted(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer samples (and only 10 idle sandboxes)")
    parser.add_argument("--only", nargs="+", choices=ROW_NAMES, metavar="NAME", help=f"some of: {', '.join(ROW_NAMES)}")
    parser.add_argument("--json", metavar="OUT.json", help="write every figure here")
    parser.add_argument("--runtime", choices=["runc", "runsc", "both"], default="runc")
    parser.add_argument("--image", default=os.environ.get("JUPYTER_SANDBOX_TEST_IMAGE", "jupyter-sandbox:latest"))
    parser.add_argument("--no-peer", dest="peer", action="store_false", help="skip llm-sandbox")
    parser.add_argument(
        "--python-executor-client",
        metavar="DIR",
        help="a checkout of geraldthewes/python-executor: also time its client against the one-shot routes",
    )
    args = parser.parse_args(argv)
    # SIGTERM (and SIGINT, which a shell's background job ignores) unwind through the finally blocks,
    # so the servers are stopped and every container of the run is removed
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _interrupted)
    names = set(args.only or ROW_NAMES)
    runtimes = ["runc", "runsc"] if args.runtime == "both" else [args.runtime]

    # the local kernels' connection files go to a temp dir of ours, like the server's
    with tempfile.TemporaryDirectory(prefix="jsbx-bench-local-") as tmp:
        os.environ["JUPYTER_RUNTIME_DIR"] = tmp
        started = datetime.now(timezone.utc)
        report: dict[str, Any] = {
            "started": started.isoformat(timespec="seconds"),
            "args": vars(args),
            "machine": machine(),
            "image": {"name": args.image, "id": docker_client().images.get(args.image).id},
            "peer": llm_sandbox_version() and f"llm-sandbox {llm_sandbox_version()} on {LLM_TAG}",
            "runtimes": {},
            "labels": [],
        }
        rows: list[Row] = []
        for runtime in runtimes:
            bench = Bench(args, runtime)
            try:
                rows += bench.run(names)
            finally:
                remove_bench_containers(bench.run_id)
            report["runtimes"][runtime] = [asdict(r) for r in bench.rows]
            report["labels"].append({"servers": bench.server_ids, "run": bench.run_id})
        report["seconds"] = round((datetime.now(timezone.utc) - started).total_seconds())
        report["machine"]["loadavg_at_end"] = os.getloadavg()
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
