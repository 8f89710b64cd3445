"""The parts of the benchmark that talk to jupyter-sandbox: a real server and its REST API.

Nothing here imports ``jupyter_sandbox``: the server is a ``jupyter server`` subprocess, and
everything is measured through HTTP the way users reach it (docker-py only reads the
containers' labels and memory).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
LABEL = "org.jupyter-sandbox"  # the labels every sandbox container carries (README, security model)
BENCH_LABEL = "jupyter-sandbox-bench.run"  # on the containers the benchmark makes itself (docker run, llm-sandbox)
SERVER_LABEL = "jupyter-sandbox-bench.server"  # added to every container of one benchmark server (its own id is the server's to choose)


# the line the server adds when an execution's output went over its cap
TRUNCATED = re.compile(r"output truncated: (\d+) more bytes")


class BenchError(RuntimeError):
    """A benchmark step did not produce what it measures (wrong result, server gone, ...)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def reset_peak_rss(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs), so a peak is this step's."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class Server:
    """``jupyter server`` with the jupyter_sandbox extension on Docker, in its own temp dirs.

    Two users (``alice``, ``bob``), each with a token, through ``bench_identity``. Every container
    it makes carries ``SERVER_LABEL=<bench_id>``. Always stop it (``with Server(...) as server``):
    SIGTERM to its pid runs the extension's cleanup, and any container still carrying that label
    afterwards is removed.
    """

    def __init__(
        self,
        image: str,
        runtime: str,
        pool_size: int | None = 0,  # None: the server's default pool
        max_sandboxes: int = 64,
        extra: dict | None = None,
    ):
        self.image = image
        self.runtime = runtime
        self.pool_size = pool_size
        self.max_sandboxes = max_sandboxes
        self.extra = extra or {}
        self.bench_id = f"bench-{secrets.token_hex(5)}"
        self.tokens = {"alice": secrets.token_hex(16), "bob": secrets.token_hex(16)}
        self.proc: subprocess.Popen | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.url = ""

    # -- lifetime ---------------------------------------------------------------------------
    def __enter__(self) -> Server:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="jsbx-bench-")
        root = Path(self._tmp.name)
        for sub in ("runtime", "data", "config"):
            (root / sub).mkdir()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/"
        config: dict[str, Any] = {
            "ServerApp": {
                "ip": "127.0.0.1",
                "port": port,
                "port_retries": 0,
                "open_browser": False,
                "allow_root": True,
                "root_dir": str(root),
                "jpserver_extensions": {"jupyter_sandbox": True},
                "identity_provider_class": "bench_identity.TokenUsersIdentityProvider",
            },
            "TokenUsersIdentityProvider": {"users": {t: u for u, t in self.tokens.items()}},
            "SandboxApp": {"backend": "docker"},
            # runtime on the backend (one-shot containers) and as the manager's default (so a
            # create asking for it is the default spec, which the pool serves)
            "DockerBackend": {
                "default_image": self.image,
                "runtime": self.runtime,
                "extra_labels": {SERVER_LABEL: self.bench_id},
            },
            "SandboxManager": {
                **({} if self.pool_size is None else {"pool_size": self.pool_size}),
                "max_sandboxes_per_user": self.max_sandboxes,
                "default_runtime": self.runtime,
                # 50 idle sandboxes ask for 50 x (memory + disk) of limits, beyond the default
                # per-user budget; they use ~40 MB each
                "max_memory_per_user": "100G",
            },
        }
        for section, values in self.extra.items():
            config.setdefault(section, {}).update(values)
        (root / "config" / "jupyter_server_config.json").write_text(json.dumps(config, indent=1))
        env = {
            **os.environ,
            "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
            "JUPYTER_DATA_DIR": str(root / "data"),
            "JUPYTER_CONFIG_DIR": str(root / "config"),
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        }
        env.pop("JUPYTER_SANDBOX_URL", None)
        self.log_path = root / "server.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (open while the server runs; closed in stop())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server"], env=env, cwd=root, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"jupyter server exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                r = requests.get(self.url + "api/status", headers=self.headers("alice"), timeout=2)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"jupyter server did not answer in 90 s:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
        leftovers = containers({SERVER_LABEL: self.bench_id})
        for c in leftovers:
            c.remove(force=True)
        if leftovers:
            print(f"warning: removed {len(leftovers)} containers the server left behind", file=sys.stderr)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    # -- what the benchmark reads ------------------------------------------------------------
    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"token {self.tokens[user]}"}

    def client(self, user: str = "alice") -> Rest:
        return Rest(self.url, self.tokens[user])

    def containers(self, **labels: str):
        return containers({SERVER_LABEL: self.bench_id, **{f"{LABEL}.{k}": v for k, v in labels.items()}})


_docker = None


def docker_client():
    global _docker
    if _docker is None:
        import docker

        _docker = docker.from_env(timeout=300)
    return _docker


def containers(labels: dict[str, str], all: bool = True):
    import docker.errors

    filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
    for _ in range(20):
        try:
            return docker_client().containers.list(all=all, filters=filters)
        except docker.errors.NotFound:
            # docker-py inspects each container it listed: one was removed in between (a used
            # one-shot container goes in the background); list again
            time.sleep(0.05)
    return docker_client().containers.list(all=all, filters=filters)


CGROUP_V1 = Path("/sys/fs/cgroup")


def cgroup_sample(container_id: str) -> dict[str, int] | None:
    """Memory (usage - page cache, as ``docker stats`` shows it on cgroup v1) and CPU time, read from
    the container's cgroup files; None where dockerd's cgroup v1 layout is not there."""
    memory = CGROUP_V1 / "memory" / "docker" / container_id
    if not memory.is_dir():
        return None
    stat = dict(line.split() for line in (memory / "memory.stat").read_text().splitlines())
    usage = int((memory / "memory.usage_in_bytes").read_text())
    cpu = CGROUP_V1 / "cpuacct" / "docker" / container_id / "cpuacct.usage"
    return {
        "memory_used": usage - int(stat.get("total_cache", 0)),
        "cpu_ns": int(cpu.read_text()) if cpu.exists() else 0,
    }


def container_memory(container) -> int:
    """A container's memory use: its cgroup files, else one ``docker stats`` sample."""
    sample = cgroup_sample(container.id)
    if sample is not None:
        return sample["memory_used"]
    mem = container.stats(stream=False, one_shot=True).get("memory_stats", {})
    stats = mem.get("stats", {})
    return mem.get("usage", 0) - stats.get("cache", stats.get("inactive_file", 0))


@dataclass
class Run:
    """One execution as the NDJSON stream gave it."""

    stdout_bytes: int = 0
    dropped_bytes: int = 0  # output the server said it did not keep (c.SandboxManager.max_output_size)
    text: str | None = None  # the main result's text/plain
    png_bytes: int = 0  # decoded size of the largest image/png result
    error: dict | None = None
    lines: int = 0
    events: list[str] = field(default_factory=list)


def ndjson_lines(chunks):
    """Complete lines from a byte stream, in time linear in its size.

    (``requests``' ``iter_lines`` re-joins the pending part of a line with every chunk, which is
    quadratic for one 100 MB line: it measured the client, not the server.)
    """
    buf = bytearray()
    scan = 0  # where the search for the next newline resumes: the bytes before have none
    for chunk in chunks:
        buf += chunk
        while (end := buf.find(b"\n", scan)) >= 0:
            if end:
                yield bytes(buf[:end])
            del buf[: end + 1]  # cheap: bytearray drops a prefix without moving the rest
            scan = 0
        scan = len(buf)
    if buf.strip():
        yield bytes(buf)


class Rest:
    """A keep-alive client of the REST API (one ``requests.Session``, as a script would use)."""

    def __init__(self, url: str, token: str):
        self.api = url + "sandbox/api/"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"

    def close(self) -> None:
        self.session.close()

    def _check(self, r: requests.Response, *ok: int) -> requests.Response:
        if r.status_code not in ok:
            raise BenchError(f"{r.request.method} {r.url} -> {r.status_code}: {r.text[:500]}")
        return r

    def create(self, **spec) -> dict:
        return self._check(self.session.post(self.api + "sandboxes", json=spec, timeout=300), 201).json()

    def delete(self, sandbox_id: str) -> None:
        self._check(self.session.delete(self.api + f"sandboxes/{sandbox_id}", timeout=300), 204, 404)

    def list(self) -> list[dict]:
        return self._check(self.session.get(self.api + "sandboxes", timeout=60), 200).json()

    def stats(self, sandbox_id: str) -> dict:
        return self._check(self.session.get(self.api + f"sandboxes/{sandbox_id}/stats", timeout=60), 200).json()

    def eval(self, code: str) -> dict:
        return self._check(self.session.post(self.api + "v1/eval", json={"code": code}, timeout=300), 200).json()

    def execute(self, sandbox_id: str, code: str, keep_events: bool = False) -> Run:
        """POST execute and read the NDJSON stream to its end."""
        import base64

        run = Run()
        with self.session.post(
            self.api + f"sandboxes/{sandbox_id}/execute", json={"code": code}, stream=True, timeout=600
        ) as r:
            self._check(r, 200)
            for line in ndjson_lines(r.iter_content(chunk_size=256 * 1024)):
                event = json.loads(line)
                run.lines += 1
                kind = event.get("type")
                if keep_events:
                    run.events.append(kind)
                if kind == "stdout":
                    run.stdout_bytes += len(event["text"])
                elif kind == "stderr" and (m := TRUNCATED.search(event["text"])):
                    run.dropped_bytes += int(m.group(1))
                elif kind == "result":
                    if event.get("is_main_result"):
                        run.text = event.get("text")
                    if event.get("png"):
                        run.png_bytes = max(run.png_bytes, len(base64.b64decode(event["png"])))
                elif kind == "error":
                    run.error = event
        if run.error:
            raise BenchError(f"execution failed: {run.error.get('name')}: {run.error.get('value')}")
        return run
