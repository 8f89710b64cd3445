"""A real JupyterHub for the tests: the EXAMPLE config (examples/jupyterhub/jupyterhub_config.py)
run by the venv's ``jupyterhub`` as root, with configurable-http-proxy, LocalProcessSpawner, the
sandbox service and two real Unix users made here. Starting and stopping the Hub is
hub_process.py's (benchmarks/bench_hub.py starts it too); the users, the quota of 2 and this
session's label are the tests'.

The session fixture ``hub`` is a :class:`Hub`; ``example_hub`` runs the example exactly as
written (its fixed ports 8081, 8001 and 10101). These tests need root (useradd, a Hub that spawns
servers as other users): not root is a FAILURE, not a skip. Two runs at once on one machine need
their own ``JUPYTER_SANDBOX_HUB_USER_PREFIX`` (default ``jsbx-``): each run removes and re-creates
its users, killing their processes.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from hub.hub_process import (
    EXAMPLE_CONFIG,
    SERVICE_NAME,
    VENV,
    Hub,
    ensure_venv,
    kill_pids,
    pids,
    ppid_and_uid,
    remove_containers,
    sbin,
    service_answers,
    stop_hub_process,
)
from jupyter_sandbox.backends.base import LABEL_PREFIX

from servers import IMAGE, SESSION, SESSION_LABEL, free_port

# Test name -> Hub and Unix user name. Real accounts, made and removed by the fixture (any left
# by a crashed run too). Two test runs at once on one machine need different prefixes.
USER_PREFIX = os.environ.get("JUPYTER_SANDBOX_HUB_USER_PREFIX", "jsbx-")
USERS = {"alice": f"{USER_PREFIX}alice", "bob": f"{USER_PREFIX}bob"}
# A Hub user (no Unix account, never spawned) holding the service's admin scope.
ADMIN_USER = f"{USER_PREFIX}admin"
# The per-user quota the service enforces in these tests (issue 20: 2 across a user's servers).
MAX_SANDBOXES_PER_USER = 2


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hub: runs a real JupyterHub with real Unix users (root; runs in CI)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.hub)


# --- Unix users (the Hub's processes: hub_process.py) ---------------------------------------


def remove_unix_user(name: str) -> None:
    """Kill that user's processes (by pid: they are this fixture's) and ``userdel -r``."""
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return
    for _ in range(20):
        theirs = [pid for pid in pids() if (ppid_and_uid(pid) or (0, -1))[1] == uid]
        if not theirs:
            break
        kill_pids(theirs)
        time.sleep(0.25)
    r = subprocess.run([sbin("userdel"), "-r", name], capture_output=True, text=True)
    # 12: the home or mail spool could not be removed (e.g. no mail spool): the account is gone
    if r.returncode not in (0, 12):
        raise RuntimeError(f"userdel -r {name} failed ({r.returncode}): {r.stderr}")


def make_unix_user(name: str) -> None:
    """A fresh account with a home; one left over by a crashed run is removed first."""
    remove_unix_user(name)
    subprocess.run([sbin("useradd"), "-m", "-s", "/bin/bash", name], check=True, capture_output=True)
    groups = subprocess.run(["id", "-nG", name], check=True, capture_output=True, text=True).stdout.split()
    assert "docker" not in groups, f"{name} must not be in the docker group"


def _remove_session_containers() -> None:
    """Every container of this test session (the service's sandboxes carry its label)."""
    try:
        remove_containers({SESSION_LABEL: SESSION})
    except Exception as e:
        print(f"removing the session's containers: {e!r}", file=sys.stderr)


def _ensure_venv() -> None:
    try:
        ensure_venv()
    except RuntimeError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="session")
def hub(docker_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A running JupyterHub from the example config, with users jsbx-alice and jsbx-bob; all of
    it (servers, service, proxy, containers, Unix users) removed at the end, also on failure."""
    if os.geteuid() != 0:
        pytest.fail(
            "the JupyterHub tests must run as root (they create Unix users and a Hub that spawns "
            "servers as them); CI runs as root"
        )
    _ensure_venv()
    workdir = tmp_path_factory.mktemp("hub")
    instance = Hub(
        workdir,
        users=USERS,
        admin_user=ADMIN_USER,
        image=IMAGE,
        labels={SESSION_LABEL: SESSION},
        max_sandboxes_per_user=MAX_SANDBOXES_PER_USER,
    )
    try:
        for name in USERS.values():
            make_unix_user(name)
        yield instance.start()
    finally:
        try:
            instance.stop()
        finally:
            _remove_session_containers()
            for name in USERS.values():
                remove_unix_user(name)


class ExampleHub:
    """``jupyterhub -f examples/jupyterhub/jupyterhub_config.py --ip=127.0.0.1 --port=N``, exactly as a
    deployer runs it (PAM, the service on its fixed port 10101), in a folder of its own."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "jupyterhub.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180) -> ExampleHub:
        argv = [str(VENV / "bin" / "jupyterhub"), "-f", str(EXAMPLE_CONFIG), "--ip=127.0.0.1", f"--port={self.port}"]
        env = {"PATH": f"{VENV / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        checks = [
            ("the Hub", lambda: httpx.get(f"{self.url}/hub/api/", timeout=5).status_code == 200),
            ("the service", lambda: service_answers(f"{self.url}/services/{SERVICE_NAME}/")),
        ]
        for what, ready in checks:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"jupyterhub exited ({self.proc.returncode}):\n{self.log()}")
                try:
                    if ready():
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what} did not answer in time:\n{self.log()}")
                time.sleep(0.5)
        return self

    def log(self, tail: int = 8000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""

    def service_server_ids(self) -> set[str]:
        """The server ids the service's extension logged (its containers carry them as a label)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return {
            line.split("server id ", 1)[1].split()[0].rstrip(",") for line in text.splitlines() if "server id " in line
        }

    def stop(self) -> None:
        if self.proc is not None:
            stop_hub_process(self.proc, self.workdir / "jupyterhub-proxy.pid")  # the Hub's default pid file


@pytest.fixture
def example_hub(hub: Hub, tmp_path: Path) -> Iterator[ExampleHub]:
    """The example config run as written (beside the ``hub`` fixture, whose users it logs in);
    stopped at the end, and every container of its service removed: a service that stops keeps
    its sandboxes for its next start, and these carry no test session label."""
    instance = ExampleHub(tmp_path)
    try:
        yield instance.start()
    finally:
        instance.stop()
        client = docker.from_env()
        for server_id in instance.service_server_ids():
            for container in client.containers.list(all=True, filters={"label": f"{LABEL_PREFIX}.server={server_id}"}):
                container.remove(force=True)
        client.close()
