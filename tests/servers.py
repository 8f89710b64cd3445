"""The one way tests start a real Jupyter server process with the extension.

For clients that block (the sync client, notebook kernels, a browser) or tests about server
processes themselves (several servers, SIGKILL and restart). Every container such a server
makes carries this test session's label, so conftest's leftover check sees them.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from jupyter_server.auth.identity import IdentityProvider, User

from jupyter_sandbox.backends.base import LABEL_PREFIX

IMAGE = os.environ.get("JUPYTER_SANDBOX_TEST_IMAGE", "jupyter-sandbox:latest")
SESSION = "test-" + secrets.token_hex(5)
SESSION_LABEL = f"{LABEL_PREFIX}.test-session"


TESTS = Path(__file__).resolve().parent


class HeaderUsers(IdentityProvider):
    """Token auth as usual, then a stable username: ``alice``, or ``X-Test-User`` to act as
    someone else. (The built-in provider gives every cookie-less token request a new random
    username.) ``JupyterServer(users=True)`` uses it."""

    async def get_user(self, handler):
        user = await self._get_user(handler)
        return None if user is None else User(username=handler.request.headers.get("X-Test-User", "alice"))


class TwoUsers(IdentityProvider):
    """Tokens name users: the server's own token is alice, ``bob-token`` is bob (for jp_serverapp)."""

    async def get_user_token(self, handler):
        token = self.get_token(handler)
        if token == "bob-token":
            return User("bob")
        if token and token == self.token:
            return User("alice")
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def server_config(**extra: Any) -> dict[str, Any]:
    """Traitlets config of a test server: the extension on Docker, auth required, the session label."""
    return merge(
        {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_sandbox": True},
                "allow_unauthenticated_access": False,
            },
            "SandboxApp": {"backend": "docker"},
            "DockerBackend": {"default_image": IMAGE, "extra_labels": {SESSION_LABEL: SESSION}},
            # No started sandbox waiting (the default keeps one): tests count their server's
            # containers, and a pool beside every test server costs the 2-core CI a kernel start
            # each. tests/test_pool.py runs a server on the default.
            "SandboxManager": {"default_memory": "512M", "pool_size": 0},
        },
        extra,
    )


def backend_config(backend: str, k8s_api: Any = None) -> dict[str, Any]:
    """The extra traitlets config of a test server on ``backend`` (kubernetes: ``k8s_api``'s endpoint,
    the test API server or $KUBECONFIG's cluster)."""
    config: dict[str, Any] = {"SandboxApp": {"backend": backend}}
    if backend == "kubernetes":
        config["KubernetesBackend"] = {
            "kubeconfig": k8s_api.kubeconfig,
            "namespace": k8s_api.namespace,
            "default_image": IMAGE,
            "extra_labels": {SESSION_LABEL: SESSION},
        }
    return config


class JupyterServer:
    """A `jupyter server` (or `jupyter lab`, ``app="jupyterlab"``) subprocess.

    ``home`` holds its runtime, data and config dirs unless given: two servers given the same
    ``runtime_dir`` and ``data_dir`` are "two servers of one user" as far as Jupyter can tell.
    """

    def __init__(
        self,
        home: Path,
        *,
        root_dir: Path | None = None,
        runtime_dir: Path | None = None,
        data_dir: Path | None = None,
        app: str = "jupyter_server",
        config: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        users: bool = False,
    ):
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.root_dir = root_dir or self.home
        self.runtime_dir = runtime_dir or self.home / "runtime"
        self.data_dir = data_dir or self.home / "data"
        self.app = app
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}/"
        self.config = merge(server_config(), config or {})
        if users:  # several users, named by the X-Test-User header (see HeaderUsers)
            self.config = merge(self.config, {"ServerApp": {"identity_provider_class": "servers.HeaderUsers"}})
        self.extra_env = env or {}
        self.log_path = self.home / f"server-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 90) -> JupyterServer:
        config = merge(
            self.config,
            {
                "ServerApp": {
                    "ip": "127.0.0.1",
                    "port": self.port,
                    "port_retries": 0,
                    "open_browser": False,
                    "root_dir": str(self.root_dir),
                    "allow_root": True,
                },
                "IdentityProvider": {"token": self.token},
            },
        )
        config_file = self.home / f"config-{self.port}.json"
        config_file.write_text(json.dumps(config))
        env = {
            **os.environ,
            "JUPYTER_RUNTIME_DIR": str(self.runtime_dir),
            "JUPYTER_DATA_DIR": str(self.data_dir),
            "JUPYTER_CONFIG_DIR": str(self.home / "config"),
            "PYTHONPATH": os.pathsep.join([str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]),
            **self.extra_env,
        }
        env.pop("JUPYTER_SANDBOX_URL", None)
        env.pop("JUPYTER_SANDBOX_TOKEN", None)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.app, f"--config={config_file}"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root_dir,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.app} exited ({self.proc.returncode}):\n{self.log()}")
            try:
                if self.get("api/status", timeout=3).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.app} did not answer within {timeout:g}s:\n{self.log()}")
            time.sleep(0.2)

    def log(self, tail: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""

    def request(self, method: str, path: str, *, user: str | None = None, **kwargs: Any) -> httpx.Response:
        """An authenticated request; ``user`` names the user (a ``users=True`` server)."""
        kwargs.setdefault("timeout", 180)
        headers = {"Authorization": f"token {self.token}", **kwargs.pop("headers", {})}
        if user:
            headers["X-Test-User"] = user
        return httpx.request(method, self.url + path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A call to ``sandbox/api/<path>``."""
        return self.request(method, "sandbox/api/" + path, **kwargs)

    def execute(self, sandbox: str, code: str, *, user: str | None = None, **body: Any) -> list[dict[str, Any]]:
        """The NDJSON events of one execution."""
        r = self.api("POST", f"sandboxes/{sandbox}/execute", json={"code": code, **body}, user=user)
        assert r.status_code == 200, r.text
        return [json.loads(line) for line in r.text.splitlines() if line.strip()]

    def stop(self) -> None:
        """SIGTERM (the extension removes its sandboxes), SIGKILL after 60 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL, as a crash: the extension cleans nothing up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def rss(self) -> tuple[int, int]:
        """The server process's resident memory now and at its peak, in bytes (/proc)."""
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024

    def __enter__(self) -> JupyterServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def result_text(events: list[dict[str, Any]]) -> str | None:
    """The main result's text/plain of an execution's events."""
    return next((e.get("text") for e in events if e.get("type") == "result" and e.get("is_main_result")), None)
