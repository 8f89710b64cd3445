"""The sandbox service under load (issue 20): N Hub users with 2 sandboxes each, all executing at once.

    python benchmarks/bench_hub.py [--users 20] [--duration 60] [--json OUT.json]

Starts a real JupyterHub from the example config with the sandbox service, as the Hub tests do
(tests/hub/hub_process.py; run it as root, with the venv of scripts/setup-hub.sh), with N Hub
users ``load-00``.. (DummyAuthenticator; no Unix users, no single-user servers), each with one API
token holding only the service's access scope and a quota of 2 sandboxes. Each user creates 2
sandboxes through the Hub's proxy; then:

  baseline  one client runs ``1+1`` back to back against ONE sandbox of one user for --duration
  load      2N clients (one thread and one keep-alive ``requests.Session`` per sandbox) do the same
            on every sandbox at once for --duration

Every execution is read as NDJSON to its ``end_of_execution`` and must give ``2``; anything else
is an error (counted, the first messages kept). The service's RSS is read from /proc before the
load, at its peak during the load (VmHWM, reset just before) and after. One markdown table on
stdout, progress on stderr. The Hub, the proxy and the service are stopped by pid at the end and
every container the run made is removed (by its label), also on Ctrl-C and SIGTERM.
See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))  # the Hub, as the tests start it

from harness import SERVER_LABEL, BenchError, Rest, proc_status, reset_peak_rss
from hub.hub_process import ACCESS_SCOPE, Hub, ensure_venv, remove_containers
from run import _interrupted, latency, log, machine

CODE = "1+1"
EXPECTED = "2"
SANDBOXES_PER_USER = 2
MB = 1e6
KEEP_ERRORS = 5  # the first messages shown in the table


class Loop:
    """Clients running ``1+1`` back to back until a deadline: latencies and errors of them all."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.errors: list[str] = []
        self.error_count = 0
        self.seconds = 0.0
        self._lock = threading.Lock()

    def client(self, rest: Rest, sandbox_id: str, until: float, stop: threading.Event) -> None:
        while time.monotonic() < until and not stop.is_set():
            t = time.perf_counter()
            try:
                run = rest.execute(sandbox_id, CODE, keep_events=True)
                if run.events[-1:] != ["end_of_execution"]:
                    raise BenchError(f"the stream ended without end_of_execution: {run.events}")
                if run.text != EXPECTED:
                    raise BenchError(f"{CODE} gave {run.text!r}")
            except Exception as e:  # an error is a figure of the run, not its end
                with self._lock:
                    self.error_count += 1
                    if len(self.errors) < KEEP_ERRORS:
                        self.errors.append(f"{sandbox_id[:12]}: {e}"[:300])
                stop.wait(0.2)  # a dead sandbox or service must not spin the client
                continue
            self.samples.append(time.perf_counter() - t)  # list.append is atomic

    def run(self, clients: list[tuple[Rest, str]], duration: float, stop: threading.Event) -> None:
        until = time.monotonic() + duration
        started = time.monotonic()
        threads = [
            threading.Thread(target=self.client, args=(rest, sandbox_id, until, stop), daemon=True)
            for rest, sandbox_id in clients
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.seconds = time.monotonic() - started

    def figures(self) -> dict[str, Any]:
        return {
            "executions": len(self.samples),
            "per_second": round(len(self.samples) / self.seconds, 1) if self.seconds else 0.0,
            "errors": self.error_count,
            "first_errors": self.errors,
            "seconds": round(self.seconds, 1),
            "latency_ms": latency(self.samples) if self.samples else None,
        }


def rss_mb(pid: int) -> dict[str, float]:
    return {k: round(v / MB, 1) for k, v in proc_status(pid).items()}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (its threads included), from /proc/<pid>/stat."""
    # the command name (field 2) may hold spaces: utime and stime are fields 14 and 15
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time every core spent not idle since boot (/proc/stat), in seconds."""
    # the "cpu" line: user nice system idle iowait irq softirq steal (guest is counted in user)
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    busy = sum(ticks[:3]) + sum(ticks[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds spent during one phase by the service, the proxy, the Hub, this client and the
    whole machine (the rest: the kernels in the sandboxes, dockerd, and whatever else runs)."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids

    def sample(self) -> dict[str, float]:
        out = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        times = os.times()
        out["client (this process)"] = times.user + times.system
        out["machine"] = machine_busy_seconds()
        return out

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {name: round(after[name] - before[name], 1) for name in before}


def show_latency(figures: dict[str, Any]) -> str:
    ms = figures["latency_ms"]
    return "no execution completed" if ms is None else f"p50 {ms['p50']:.1f} / p99 {ms['p99']:.1f} ms"


def table(report: dict[str, Any]) -> str:
    load, baseline, rss = report["load"], report["baseline"], report["service_rss_mb"]
    n_users, n_clients = report["users"], report["users"] * SANDBOXES_PER_USER
    errors = str(load["errors"] + baseline["errors"])
    if load["first_errors"] or baseline["first_errors"]:
        errors += ": " + "; ".join(m.replace("|", "\\|") for m in load["first_errors"] + baseline["first_errors"])
    ratio = ""
    if load["latency_ms"] and baseline["latency_ms"]:
        ratio = f"{load['latency_ms']['p50'] / baseline['latency_ms']['p50']:.1f}× the baseline's p50"
    rows = [
        ("Load", f"{n_users} Hub users × {SANDBOXES_PER_USER} sandboxes, {n_clients} clients, {load['seconds']:g} s"),
        ("Executions (load)", f"{load['executions']} total, {load['per_second']:g} per second"),
        ("Errors (load and baseline)", errors),
        ("Latency under load", f"{show_latency(load)} ({ratio})" if ratio else show_latency(load)),
        (
            "Baseline, same run: 1 client, 1 sandbox",
            f"{show_latency(baseline)}, {baseline['per_second']:g} per second",
        ),
        (
            "Service RSS: before load / peak / after",
            f"{rss['before']['VmRSS']:.0f} / {rss['peak']:.0f} / {rss['after']['VmRSS']:.0f} MB",
        ),
        (
            f"CPU seconds during the load ({os.cpu_count()} cores × {load['seconds']:g} s)",
            ", ".join(f"{name} {seconds:g}" for name, seconds in report["load_cpu_seconds"].items()),
        ),
        ("Creating the sandboxes", f"{report['create_seconds']:.1f} s for {n_clients} (4 at a time)"),
        ("Load average (1 min): start / after baseline / end", " / ".join(f"{x:.1f}" for x in report["loadavg_1m"])),
    ]
    lines = ["| What | Figure |", "|---|---|"]
    lines += [f"| {what} | {figure} |" for what, figure in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20, help="Hub users, 2 sandboxes each (default 20)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of the baseline and of the load")
    parser.add_argument("--json", metavar="OUT.json", help="write every figure here")
    parser.add_argument("--image", default=os.environ.get("JUPYTER_SANDBOX_TEST_IMAGE", "jupyter-sandbox:latest"))
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run it as root: the Hub's service holds the Docker engine (as in tests/hub/)")
    # SIGTERM (and SIGINT, which a shell's background job ignores) unwind through the finally
    # blocks, so the Hub is stopped and every container of the run removed
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _interrupted)

    run_id = f"hubload-{secrets.token_hex(5)}"
    labels = {SERVER_LABEL: run_id}
    users = {f"load-{i:02d}": f"load-{i:02d}" for i in range(args.users)}
    stop = threading.Event()
    clients: list[tuple[Rest, str]] = []
    report: dict[str, Any] = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "args": vars(args),
        "machine": machine(),
        "users": args.users,
        "label": labels,
    }
    loadavg = [os.getloadavg()[0]]
    interrupted = False
    ensure_venv()
    with tempfile.TemporaryDirectory(prefix="jsbx-bench-hub-") as workdir:
        report["workdir"] = workdir
        hub = Hub(
            Path(workdir),
            users=users,
            admin_user="load-admin",
            image=args.image,
            labels=labels,
            max_sandboxes_per_user=SANDBOXES_PER_USER,
        )
        try:
            log(f"starting JupyterHub (example config) with the sandbox service and {args.users} users")
            hub.start()
            pid = hub.service_pid()
            assert hub.proc is not None
            proxy_pid = int((Path(workdir) / "proxy.pid").read_text())
            meter = CpuMeter({"service": pid, "proxy": proxy_pid, "Hub": hub.proc.pid})
            report["service_rss_mb"] = {"idle": rss_mb(pid)}

            log(f"{args.users} tokens (scope {ACCESS_SCOPE}); {SANDBOXES_PER_USER} sandboxes each")
            started = time.monotonic()

            def make(user: str) -> list[tuple[Rest, str]]:
                token = hub.token_for(user, scopes=[ACCESS_SCOPE])
                # one keep-alive session per sandbox: each client is its own connection
                made = []
                for _ in range(SANDBOXES_PER_USER):
                    rest = Rest(hub.service_url, token)
                    made.append((rest, rest.create()["id"]))
                return made

            with ThreadPoolExecutor(4) as pool:
                for made in pool.map(make, users):
                    clients += made
            report["create_seconds"] = round(time.monotonic() - started, 1)
            log(f"{len(clients)} sandboxes in {report['create_seconds']} s")

            log(f"baseline: one client on one sandbox for {args.duration:g} s")
            baseline = Loop()
            baseline.run(clients[:1], args.duration, stop)
            report["baseline"] = baseline.figures()
            loadavg.append(os.getloadavg()[0])

            log(f"load: {len(clients)} clients for {args.duration:g} s")
            report["service_rss_mb"]["before"] = rss_mb(pid)
            reset_peak_rss(pid)
            cpu_before = meter.sample()
            load = Loop()
            load.run(clients, args.duration, stop)
            report["load_cpu_seconds"] = meter.spent(cpu_before, meter.sample())
            status = rss_mb(pid)
            report["service_rss_mb"]["peak"] = status["VmHWM"]
            report["service_rss_mb"]["after"] = status
            report["load"] = load.figures()
            loadavg.append(os.getloadavg()[0])
            report["loadavg_1m"] = loadavg
            report["machine"]["loadavg_at_end"] = os.getloadavg()
        except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: clean up below, no traceback
            log(f"interrupted ({e}): no figures")
            interrupted = True
        except Exception:
            print(f"the Hub's log (the end):\n{hub.log()}", file=sys.stderr)
            raise
        finally:
            stop.set()
            log("removing the sandboxes, stopping the Hub")

            def delete(client: tuple[Rest, str]) -> None:
                rest, sandbox_id = client
                try:
                    rest.delete(sandbox_id)
                except Exception as e:  # the label filter below removes what is left
                    log(f"deleting {sandbox_id[:12]}: {e}")
                rest.close()

            with ThreadPoolExecutor(4) as pool:
                list(pool.map(delete, clients))
            hub.stop()
            left = remove_containers(labels)
            if left:
                log(f"removed {left} containers the service left behind")

    if interrupted:
        return 130
    print(table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
        log(f"wrote {args.json}")
    return 1 if report["load"]["errors"] or report["baseline"]["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
