"""What jupyter-sandbox is measured against: a local ipykernel, plain ``docker run``, llm-sandbox,
and python-executor's own client (talking to jupyter-sandbox's python-executor routes)."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import time
from pathlib import Path

from harness import BENCH_LABEL, BenchError, containers, docker_client, proc_status

# -- a local ipykernel through jupyter_client -------------------------------------------------


class LocalKernel:
    """A plain local ``python3`` kernel: what a notebook user's own kernel costs."""

    def __init__(self):
        from jupyter_client.manager import KernelManager

        self.started = time.perf_counter()
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(stderr=subprocess.DEVNULL)  # its warning about TCP without encryption
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def execute(self, code: str) -> dict:
        """Run code; wait for its reply and for the kernel to be idle again (as the REST stream does)."""
        out = {"text": None, "stdout_bytes": 0, "png_bytes": 0}

        def hook(msg):
            kind, content = msg["header"]["msg_type"], msg["content"]
            if kind == "stream":
                out["stdout_bytes"] += len(content["text"])
            elif kind in ("execute_result", "display_data"):
                data = content.get("data", {})
                if kind == "execute_result":
                    out["text"] = data.get("text/plain")
                if "image/png" in data:
                    out["png_bytes"] = max(out["png_bytes"], len(base64.b64decode(data["image/png"])))

        reply = self.kc.execute_interactive(code, output_hook=hook, timeout=600)
        if reply["content"]["status"] != "ok":
            raise BenchError(f"local kernel: {reply['content'].get('ename')}: {reply['content'].get('evalue')}")
        return out

    @property
    def rss(self) -> int:
        return proc_status(self.km.provisioner.process.pid)["VmRSS"]

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


# -- plain docker run ----------------------------------------------------------------------------


def docker_run(image: str, runtime: str, run_id: str, command: list[str]) -> str:
    """``docker run --rm --network none`` of one command (through docker-py, as the server talks to dockerd)."""
    out = docker_client().containers.run(
        image, command, remove=True, network_mode="none", runtime=runtime, labels={BENCH_LABEL: run_id}
    )
    return out.decode()


# -- llm-sandbox ---------------------------------------------------------------------------------

LLM_TAG = "jupyter-sandbox-bench:llm"
# llm-sandbox execs into a running container, so its image needs a command that keeps running.
# STOPSIGNAL: tail as PID 1 ignores SIGTERM, and llm-sandbox's close() would wait 10 s for it.
LLM_DOCKERFILE = 'FROM {base}\nCMD ["tail", "-f", "/dev/null"]\nSTOPSIGNAL SIGKILL\n'


def llm_sandbox_version() -> str | None:
    try:
        from importlib.metadata import version

        import llm_sandbox  # noqa: F401
    except ImportError:
        return None
    return version("llm-sandbox")


def ensure_llm_image(base: str) -> str:
    """Build ``jupyter-sandbox-bench:llm`` from the sandbox image when missing or stale (our own tag)."""
    import docker

    client = docker_client()
    base_id = client.images.get(base).id
    try:
        image = client.images.get(LLM_TAG)
        if image.labels.get("jupyter-sandbox-bench.base") == base_id:
            return LLM_TAG
    except docker.errors.ImageNotFound:
        pass
    dockerfile = LLM_DOCKERFILE.format(base=base) + f'LABEL jupyter-sandbox-bench.base="{base_id}"\n'
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=LLM_TAG, rm=True, pull=False)
    return LLM_TAG


class LlmSandbox:
    """One llm-sandbox session on the same engine, image and runtime (never pulls: the image is local)."""

    def __init__(self, runtime: str, run_id: str, open_: bool = True):
        from llm_sandbox import SandboxSession

        self.session = SandboxSession(
            lang="python",
            image=LLM_TAG,
            client=docker_client(),
            # the image already has Python; the default setup makes a venv and upgrades pip from the network
            skip_environment_setup=True,
            runtime_configs={"runtime": runtime, "network_mode": "none", "labels": {BENCH_LABEL: run_id}},
        )
        if open_:
            self.session.open()

    def run(self, code: str) -> str:
        result = self.session.run(code)
        if result.exit_code != 0:
            raise BenchError(f"llm-sandbox run failed ({result.exit_code}): {result.stderr[-500:]}")
        return result.stdout

    def close(self) -> None:
        self.session.close()


def remove_bench_containers(run_id: str) -> None:
    for c in containers({BENCH_LABEL: run_id}):
        c.remove(force=True)


# -- python-executor's own client ------------------------------------------------------------------


def load_python_executor_client(directory: str):
    """PythonExecutorClient from a checkout of geraldthewes/python-executor (the repo or its python/ dir)."""
    root = Path(directory).resolve()
    for candidate in (root, root / "python"):
        if (candidate / "python_executor_client" / "__init__.py").exists():
            sys.path.insert(0, str(candidate))
            from python_executor_client import PythonExecutorClient

            return PythonExecutorClient
    raise SystemExit(f"--python-executor-client: no python_executor_client package in {root} or {root / 'python'}")
