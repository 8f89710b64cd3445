"""Another user's warm `1+1` while a sandbox floods its link to the server (issue 27).

    python benchmarks/bench_flood.py [-n 100] [--runtime runc|runsc] [--only small,big,link] [--seconds 40]

Starts a real ``jupyter server`` (benchmarks/harness.py's Server: Docker backend, users alice and
bob). bob's ``1+1`` through REST is measured alone (the baseline), then while alice's sandbox
floods, one flood after another (each as strong as code in a sandbox can make it):

- cpu:   no flood, only the CPU that flooding code burns (a busy loop): what the CPU quota lets through;
- small: tiny iopub messages published by the kernel's own session, in a tight loop;
- big:   7 MiB iopub messages (just under the launcher's 8 MiB cut), in a loop;
- link:  empty control frames written straight into the launcher's stdout (/proc/<pid>/fd/1),
         where the sandbox's code can reach it (skipped when it cannot).

Prints, per case, bob's p50 and p99 and their ratio to the baseline, and the server's CPU use
during the flood. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BenchError, Server

FLOODS = {
    "cpu": "import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n",
    "small": (
        "import time\n"
        "k, parent = get_ipython().kernel, get_ipython().parent_header\n"
        "end = time.time() + {seconds}\n"
        "while time.time() < end:\n"
        "    k.session.send(k.iopub_socket, 'stream', {{'name': 'stdout', 'text': 'x'}}, parent=parent)\n"
    ),
    "big": (
        "import time\n"
        "k, parent = get_ipython().kernel, get_ipython().parent_header\n"
        "text = 'x' * (7 << 20)\n"
        "end = time.time() + {seconds}\n"
        "while time.time() < end:\n"
        "    k.session.send(k.iopub_socket, 'stream', {{'name': 'stdout', 'text': text}}, parent=parent)\n"
    ),
    "link": (
        "import os, time\n"
        "pids = [p for p in os.listdir('/proc') if p.isdigit() and p != str(os.getpid())]\n"
        "def launcher(p):\n"
        "    try:\n"
        "        return b'-I' in open(f'/proc/{{p}}/cmdline', 'rb').read()\n"
        "    except OSError:\n"
        "        return False\n"
        "fd = os.open(f'/proc/{{[p for p in pids if launcher(p)][0]}}/fd/1', os.O_WRONLY)\n"
        "chunk = bytes([255, 0, 0, 0, 0]) * 100_000\n"
        "end = time.time() + {seconds}\n"
        "while time.time() < end:\n"
        "    os.write(fd, chunk)\n"
    ),
}


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bob_samples(rest, sandbox: str, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        if rest.execute(sandbox, "1+1").text != "2":
            raise BenchError("bob's 1+1 did not give 2")
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100, help="bob's round trips per case")
    parser.add_argument("--runtime", default="runc")
    parser.add_argument("--image", default=os.environ.get("JUPYTER_SANDBOX_TEST_IMAGE", "jupyter-sandbox:latest"))
    parser.add_argument("--only", default=",".join(FLOODS))
    parser.add_argument("--seconds", type=float, default=40, help="how long each flood lasts (bob measures inside it)")
    parser.add_argument("--messages-per-second", type=int, help="c.DockerBackend.relay_messages_per_second")
    parser.add_argument("--bytes-per-second", type=int, help="c.DockerBackend.relay_bytes_per_second")
    args = parser.parse_args()

    rows = []
    budget = {
        name: value
        for name, value in [
            ("relay_messages_per_second", args.messages_per_second),
            ("relay_bytes_per_second", args.bytes_per_second),
        ]
        if value is not None
    }
    with Server(args.image, args.runtime, extra={"DockerBackend": budget} if budget else None) as server:
        alice, bob = server.client("alice"), server.client("bob")
        theirs = bob.create(name="bystander")["id"]
        bob_samples(bob, theirs, 10)  # warm
        base = bob_samples(bob, theirs, args.n)
        rows.append(("baseline (alone)", base, None, ""))
        for name in args.only.split(","):
            sandbox = alice.create(name=f"flood-{name}", memory="1G")["id"]
            alice.execute(sandbox, "1")
            outcome: list = []

            def flood(sandbox=sandbox, name=name, outcome=outcome) -> None:
                try:
                    outcome.append(alice.execute(sandbox, FLOODS[name].format(seconds=args.seconds)))
                except Exception as e:  # e.g. the link flood cannot open the launcher's stdout
                    outcome.append(e)

            thread = threading.Thread(target=flood)
            thread.start()
            time.sleep(3)  # the flood is under way
            cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
            samples = bob_samples(bob, theirs, args.n) if thread.is_alive() else []
            cpu = (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - t0)
            flooding = thread.is_alive()
            thread.join(args.seconds + 120)
            note = ""
            if outcome and isinstance(outcome[0], Exception):
                note = f"flood failed: {str(outcome[0])[:120]}"
            elif not flooding:
                note = "the flood ended before bob finished"
            rows.append((f"alice floods: {name}", samples, cpu, note))
            alice.delete(sandbox)
        bob.delete(theirs)

    p50, p99 = pct(base, 50), pct(base, 99)
    print(f"\nbob's warm 1+1 through REST, {args.runtime}, n={args.n} per case, {budget or 'default budget'}")
    print("| case | p50 ms | p99 ms | p50 ratio | p99 ratio | server CPU | note |")
    print("|---|---|---|---|---|---|---|")
    for name, samples, cpu, note in rows:
        if not samples:
            print(f"| {name} | - | - | - | - | - | {note} |")
            continue
        a, b = pct(samples, 50), pct(samples, 99)
        cpu_text = f"{cpu * 100:.0f}%" if cpu is not None else "-"
        print(
            f"| {name} | {a * 1000:.1f} | {b * 1000:.1f} | {a / p50:.2f}x | {b / p99:.2f}x | {cpu_text} | "
            f"{note or f'mean {statistics.mean(samples) * 1000:.1f} ms'} |"
        )


if __name__ == "__main__":
    main()
