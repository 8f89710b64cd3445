"""A real JupyterHub running the example config (examples/jupyterhub/jupyterhub_config.py) with the
sandbox service, as tests/hub/conftest.py's fixtures and benchmarks/bench_hub.py start it.

The venv (scripts/setup-hub.sh; ``JUPYTER_SANDBOX_HUB_VENV``, default /opt/jupyter-sandbox-hub)
is a Debian Python that every user can run, with a checkout installed editable: the Hub, its
service and the users' servers all run from it, with THIS checkout first on their PYTHONPATH (so
checkouts on one machine share the venv). A small generated config ``load_subconfig``s the
example and overrides only what its caller needs (temp files, free ports, DummyAuthenticator with
the given users, the image and labels for the service's containers, a quota).

Nothing here needs pytest: whoever starts a :class:`Hub` stops it (``Hub.stop``) and removes the
containers carrying its labels (:func:`remove_containers`).
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import docker
import httpx
from jupyterhub.utils import random_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "examples" / "jupyterhub" / "jupyterhub_config.py"
SETUP_HUB = REPO / "scripts" / "setup-hub.sh"
VENV = Path(os.environ.get("JUPYTER_SANDBOX_HUB_VENV", "/opt/jupyter-sandbox-hub"))
SERVICE_NAME = "sandbox"  # the example's SERVICE_NAME
# The example's ACCESS_SCOPE: what a token needs to use the service.
ACCESS_SCOPE = f"access:services!service={SERVICE_NAME}"
# A service whose token (hub.admin_token) is a Hub admin and a sandbox admin.
ADMIN_SERVICE = "jsbx-test-admin"


# --- processes ---------------------------------------------------------------------------------


def sbin(program: str) -> str:
    """useradd, userdel, runuser: in /usr/sbin, which a non-login PATH may lack."""
    return shutil.which(program, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin:/usr/bin:/bin") or program


def ppid_and_uid(pid: int) -> tuple[int, int] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: fields after the last ')'
    return int(stat.rsplit(")", 1)[1].split()[1]), uid


def pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def descendants(root: int) -> list[int]:
    """Every process under ``root`` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for pid in pids():
        info = ppid_and_uid(pid)
        if info:
            children.setdefault(info[0], []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def kill_pids(pids: Sequence[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop_hub_process(proc: subprocess.Popen[bytes], proxy_pid_file: Path) -> None:
    """SIGTERM a Hub (it stops its proxy and services), SIGKILL after 90 s; then whatever of its
    own outlived it, by pid: a Hub that died at startup leaves its proxy and service running. The
    service runs in the Hub's session (started with its own), the proxy in one of its own."""
    if proc.poll() is None:
        started = descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        kill_pids(started)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proxy = int(proxy_pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    if any("configurable-http-proxy" in part for part in cmdline(proxy)):
        kill_pids([proxy])


def service_answers(service_url: str) -> bool:
    """The service itself answers through the Hub's proxy: an unauthenticated API request gets its
    403 (before the proxy routes to it: the proxy's 404 or 503, or the Hub's redirect)."""
    return httpx.get(f"{service_url}sandbox/api/sandboxes", timeout=5).status_code in (401, 403)


# --- the Hub ----------------------------------------------------------------------------------


class Hub:
    """A running JupyterHub (the example config) and what the tests need of it."""

    def __init__(
        self,
        workdir: Path,
        *,
        users: dict[str, str],
        admin_user: str,
        image: str,
        labels: dict[str, str],
        max_sandboxes_per_user: int = 2,
    ):
        """``users``: short name -> Hub user name (DummyAuthenticator's allowed users, with
        ``admin_user``, who holds the service's admin scope); ``labels`` go on every container the
        service makes (so whoever started the Hub can find and remove them)."""
        self.workdir = workdir
        self.venv = VENV
        self.python = str(VENV / "bin" / "python")
        self.users = dict(users)
        self.admin_user = admin_user
        self.image = image
        self.labels = dict(labels)
        self.max_sandboxes_per_user = max_sandboxes_per_user
        self.proxy_port, self.hub_port, self.proxy_api_port, self.service_port = (random_port() for _ in range(4))
        self.url = f"http://127.0.0.1:{self.proxy_port}"
        self.api_url = f"{self.url}/hub/api"
        self.service_url = f"{self.url}/services/{SERVICE_NAME}/"
        # The service itself, not through the proxy (what users' servers are given).
        self.service_direct_url = f"http://127.0.0.1:{self.service_port}/services/{SERVICE_NAME}/"
        self.admin_token = secrets.token_hex(32)
        self.log_path = workdir / "jupyterhub.log"
        self.service_config_path = workdir / "sandbox_service_config.json"
        self.config_path = workdir / "jupyterhub_config.py"
        self.proc: subprocess.Popen[bytes] | None = None

    # configuration

    def service_config(self) -> dict[str, Any]:
        """The service's traitlets config (given with --config): the image, the labels on every
        container, the quota, no pool."""
        return {
            "SandboxApp": {"backend": "docker", "state_dir": str(self.workdir / "service-state")},
            "DockerBackend": {"default_image": self.image, "extra_labels": self.labels},
            "SandboxManager": {
                "max_sandboxes_per_user": self.max_sandboxes_per_user,
                "default_memory": "512M",
                "pool_size": 0,
            },
        }

    def hub_config(self) -> str:
        w = self.workdir
        return f"""# Generated by tests/hub/hub_process.py: the example config, and only what the tests change.
c = get_config()  # noqa: F821
load_subconfig({str(EXAMPLE_CONFIG)!r})  # noqa: F821

c.JupyterHub.bind_url = "http://127.0.0.1:{self.proxy_port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{self.hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = {str(w / "proxy.pid")!r}
c.JupyterHub.pid_file = {str(w / "jupyterhub.pid")!r}
c.JupyterHub.db_url = {"sqlite:///" + str(w / "jupyterhub.sqlite")!r}
c.JupyterHub.cookie_secret_file = {str(w / "jupyterhub_cookie_secret")!r}

# Users without passwords (the tests' are real Unix accounts; the benchmark's are Hub users only).
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = False
c.Authenticator.allowed_users = {sorted({*self.users.values(), self.admin_user})!r}
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180

for service in c.JupyterHub.services:
    if service["name"] == {SERVICE_NAME!r}:
        service["url"] = "http://127.0.0.1:{self.service_port}"
        service["command"] = [*service["command"], "--config={self.service_config_path}"]
        service.setdefault("environment", {{}})["PYTHONPATH"] = {str(REPO)!r}
c.JupyterHub.services.append({{"name": {ADMIN_SERVICE!r}, "api_token": {self.admin_token!r}}})
for role in c.JupyterHub.load_roles:
    if role["name"] == "sandbox-admin":
        role["users"] = [{self.admin_user!r}]
        role["services"] = [{ADMIN_SERVICE!r}]
c.JupyterHub.load_roles.append({{"name": "admin", "services": [{ADMIN_SERVICE!r}]}})
c.Spawner.environment["JUPYTER_SANDBOX_SERVICE_URL"] = {self.service_direct_url!r}
# This checkout's code, whichever checkout the shared venv was installed from.
c.Spawner.environment["PYTHONPATH"] = {str(REPO)!r}
"""

    # lifecycle

    def start(self, timeout: float = 180) -> Hub:
        self.service_config_path.write_text(json.dumps(self.service_config(), indent=1))
        self.config_path.write_text(self.hub_config())
        env = {
            "PATH": f"{self.venv / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            # the Hub imports this checkout too (its config does), whichever checkout the venv was installed from
            "PYTHONPATH": str(REPO),
        }
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.venv / "bin" / "jupyterhub"), "-f", str(self.config_path)],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        self._wait(lambda: httpx.get(f"{self.api_url}/", timeout=5).status_code == 200, deadline, "the Hub's API")
        self._wait(lambda: service_answers(self.service_url), deadline, "the sandbox service (jupyter_sandbox.service)")
        return self

    def _wait(self, ready: Any, deadline: float, what: str) -> None:
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited ({self.proc.returncode}):\n{self.log()}")
            try:
                if ready():
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not answer in time:\n{self.log()}")
            time.sleep(0.5)

    def stop(self) -> None:
        """Every server stopped through the Hub (as a user would), then the Hub (SIGTERM: it stops
        the proxy and the service), then whatever of theirs is left, by pid."""
        if self.proc is None:
            return
        try:
            for name in {*self.users.values(), self.admin_user} if self.proc.poll() is None else ():
                r = self.api("GET", f"users/{name}")
                for server in r.json().get("servers", {}) if r.status_code == 200 else ():
                    self.stop_server(name, server, timeout=60)
        except Exception as e:  # the Hub is stopped below whatever happened here
            print(f"stopping the users' servers: {e!r}", file=sys.stderr)
        stop_hub_process(self.proc, self.workdir / "proxy.pid")

    def log(self, tail: int = 8000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""

    # the Hub's REST API

    def hub_name(self, user: str) -> str:
        """``alice`` or ``jsbx-alice`` -> ``jsbx-alice``."""
        return self.users.get(user, user)

    def api(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        """A request to the Hub's REST API (``path`` under /hub/api/), as the admin by default."""
        kwargs.setdefault("timeout", 60)
        headers = {"Authorization": f"token {token or self.admin_token}", **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.api_url}/{path}", headers=headers, **kwargs)

    def token_for(self, user: str, scopes: list[str] | None = None) -> str:
        """A new API token of that Hub user; its owner's permissions unless ``scopes`` narrows them."""
        body: dict[str, Any] = {"note": "jupyter-sandbox tests", "expires_in": 3600}
        if scopes is not None:
            body["scopes"] = scopes
        r = self.api("POST", f"users/{self.hub_name(user)}/tokens", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def servers(self, user: str) -> dict[str, Any]:
        r = self.api("GET", f"users/{self.hub_name(user)}")
        assert r.status_code == 200, r.text
        return dict(r.json().get("servers", {}))

    def start_server(self, user: str, name: str = "", timeout: float = 240) -> str:
        """Start that user's (named) server, wait until it is ready; its URL (ends with /)."""
        hub_name = self.hub_name(user)
        path = f"users/{hub_name}/servers/{name}" if name else f"users/{hub_name}/server"
        r = self.api("POST", path)
        if r.status_code not in (201, 202) and "already running" not in r.text:
            raise RuntimeError(f"POST {path}: {r.status_code} {r.text}\n{self.log()}")
        deadline = time.monotonic() + timeout
        while True:
            server = self.servers(user).get(name)
            if server is None:
                raise RuntimeError(f"{hub_name}'s server {name!r} failed to start:\n{self.log()}")
            if server.get("ready"):
                return self.url + server["url"]
            if time.monotonic() > deadline:
                raise RuntimeError(f"{hub_name}'s server {name!r} not ready after {timeout:g}s:\n{self.log()}")
            time.sleep(0.5)

    def stop_server(self, user: str, name: str = "", timeout: float = 120) -> None:
        """Stop that user's (named) server through the Hub and wait until it is gone."""
        hub_name = self.hub_name(user)
        path = f"users/{hub_name}/servers/{name}" if name else f"users/{hub_name}/server"
        r = self.api("DELETE", path)
        if r.status_code not in (202, 204) and "not running" not in r.text:
            raise RuntimeError(f"DELETE {path}: {r.status_code} {r.text}\n{self.log()}")
        deadline = time.monotonic() + timeout
        while name in self.servers(user):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{hub_name}'s server {name!r} still there after {timeout:g}s:\n{self.log()}")
            time.sleep(0.5)

    def set_password(self, user: str, password: str) -> None:
        """Give that Unix account a password (to log in through PAM, as with the example config)."""
        name = self.hub_name(user)
        subprocess.run([sbin("chpasswd")], input=f"{name}:{password}", text=True, check=True, capture_output=True)

    # processes

    def service_pid(self) -> int:
        """The pid of the Hub-managed sandbox service (a child of the Hub)."""
        assert self.proc is not None
        for pid in descendants(self.proc.pid):
            if "jupyter_sandbox.service" in cmdline(pid):
                return pid
        raise RuntimeError("the sandbox service is not running")

    def run_as(self, user: str, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` as that Unix user, in their home, with the venv first on PATH (as a
        terminal of theirs); its output as text. ``env`` adds variables; other keywords go to
        subprocess.run (``timeout`` 300 s unless given)."""
        name = self.hub_name(user)
        home = pwd.getpwnam(name).pw_dir
        env = {
            "HOME": home,
            "USER": name,
            "LOGNAME": name,
            "SHELL": "/bin/bash",
            "LANG": "C.UTF-8",
            "PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": str(REPO),  # this checkout's code, as in the users' servers
            **kwargs.pop("env", {}),
        }
        kwargs.setdefault("timeout", 300)
        kwargs.setdefault("cwd", home)
        return subprocess.run(
            [sbin("runuser"), "-u", name, "--", *argv], env=env, capture_output=True, text=True, check=False, **kwargs
        )


def remove_containers(labels: dict[str, str]) -> int:
    """Remove every container carrying all these labels (what a Hub's service left); how many."""
    client = docker.from_env()
    try:
        found = client.containers.list(all=True, filters={"label": [f"{k}={v}" for k, v in labels.items()]})
        for container in found:
            container.remove(force=True)
        return len(found)
    finally:
        client.close()


def ensure_venv() -> None:
    """scripts/setup-hub.sh when the venv is missing (scripts/test.sh runs it before pytest). The
    Hub's service and servers import this checkout (PYTHONPATH) whichever checkout the venv was
    installed from, so several checkouts on one machine share it without reinstalling it."""
    check = [str(VENV / "bin" / "python"), "-c", "import jupyter_sandbox, jupyterhub, jupyterlab, mcp.server.mcpserver"]
    if Path(check[0]).exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return
    r = subprocess.run(["bash", str(SETUP_HUB), str(VENV)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"scripts/setup-hub.sh failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
