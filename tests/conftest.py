"""Shared fixtures: managers over real backends, a real Jupyter server with the extension.

Docker tests need a running engine and the default image (scripts/test.sh provides
both). Without them a Docker test is skipped locally but FAILS under CI=true: a Docker
test that skips in CI is a failing test.
"""

from __future__ import annotations

import asyncio
import os
import uuid
import warnings

import pytest
import pytest_asyncio

from jupyter_sandbox.backends.base import LABEL_PREFIX

pytest_plugins = ["pytest_jupyter.jupyter_server"]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
IMAGE = os.environ.get("JUPYTER_SANDBOX_TEST_IMAGE", "jupyter-sandbox:latest")
# Every sandbox this test session makes carries this server id, so the leftover check
# (and reaping) sees only this session's containers, not a concurrent run's.
SESSION_SERVER_ID = "test-" + uuid.uuid4().hex[:10]


def _docker_problem(runtime: str | None = None) -> str | None:
    try:
        import docker

        client = docker.from_env()
        client.ping()
        client.images.get(IMAGE)
        if runtime and runtime not in client.info().get("Runtimes", {}):
            return f"the Docker engine has no {runtime} runtime (scripts/setup-docker.sh registers it)"
        client.close()
    except Exception as e:  # what exactly is missing goes into the skip/fail message
        return f"Docker engine or image {IMAGE} not available: {e}"
    return None


def require_docker(runtime: str | None = None) -> None:
    problem = _docker_problem(runtime)
    if problem:
        if IN_CI:
            pytest.fail(f"{problem} -- Docker tests must run in CI (scripts/test.sh sets it up)")
        pytest.skip(problem)


@pytest.fixture(scope="session")
def docker_ready():
    require_docker()


@pytest.fixture(scope="session")
def runsc_ready():
    require_docker("runsc")


def make_manager(backend_name: str, **manager_config):
    from jupyter_sandbox.backends import make_backend
    from jupyter_sandbox.manager import SandboxManager

    kwargs = {"default_image": IMAGE}
    if backend_name == "docker-runsc":
        backend = make_backend("docker", runtime="runsc", **kwargs)
    else:
        backend = make_backend(backend_name, **kwargs)
    config = {"default_memory": "512M", "max_cpus": 2.0, "server_id": SESSION_SERVER_ID, **manager_config}
    return SandboxManager(backend=backend, **config)


BACKENDS = ["docker", "docker-runsc", "local"]


@pytest.fixture(scope="session", params=BACKENDS)
def backend_name(request):
    if request.param == "docker":
        require_docker()
    elif request.param == "docker-runsc":
        require_docker("runsc")
    return request.param


@pytest.fixture(scope="session")
async def manager(backend_name):
    """One manager per backend for the session; every sandbox removed at the end."""
    mgr = make_manager(backend_name)
    yield mgr
    await mgr.shutdown()


@pytest.fixture(scope="session")
async def docker_manager(docker_ready):
    mgr = make_manager("docker")
    yield mgr
    await mgr.shutdown()


@pytest_asyncio.fixture(loop_scope="session")
async def jp_asyncio_loop():
    # pytest-jupyter builds its servers on this loop and closes it after each test, while
    # pytest-asyncio (asyncio_default_test_loop_scope = session) runs the tests on its
    # session loop: the server would never answer. Hand pytest-jupyter the session loop
    # (and never close it) so servers, tests and session fixtures share one loop.
    yield asyncio.get_running_loop()


@pytest.fixture
def jp_server_config(jp_server_config):
    """A real server with the extension, authentication required, Docker backend."""
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_sandbox": True},
            "allow_unauthenticated_access": False,
        },
        "SandboxApp": {"backend": "docker"},
        "DockerBackend": {"default_image": IMAGE},
        "SandboxManager": {"default_memory": "512M", "server_id": SESSION_SERVER_ID},
    }


@pytest.fixture(autouse=True)
def _auth_warnings_are_errors():
    # Every handler must be authenticated and authorized: jupyter_server warns otherwise.
    from jupyter_server.utils import JupyterServerAuthWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", JupyterServerAuthWarning)
        yield


def pytest_sessionfinish(session, exitstatus):
    """No container may outlive the test session (checked by label)."""
    if _docker_problem() is not None:
        return
    import docker

    client = docker.from_env()
    left = client.containers.list(
        all=True, filters={"label": [f"{LABEL_PREFIX}.managed=true", f"{LABEL_PREFIX}.server={SESSION_SERVER_ID}"]}
    )
    if left:
        names = ", ".join(c.name for c in left)
        for c in left:
            c.remove(force=True)
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            f"ERROR: containers left behind after the tests: {names}", red=True
        )
        session.exitstatus = 1


@pytest.fixture(scope="session")
def sandbox_server(docker_ready, tmp_path_factory):
    """A real `jupyter server` subprocess with the extension on Docker: (url, token).

    For clients that block (sync client, notebook kernels), which cannot share the test's
    event loop with an in-process server. Always stopped (SIGTERM runs the extension's
    cleanup, which removes its sandboxes).
    """
    import secrets
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    root = tmp_path_factory.mktemp("server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(root / "runtime"), "JUPYTER_CONFIG_DIR": str(root / "config")}
    env.pop("JUPYTER_SANDBOX_URL", None)
    argv = [
        sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--allow-root",
        '--ServerApp.jpserver_extensions={"jupyter_sandbox": True}',
        "--SandboxApp.backend=docker", f"--DockerBackend.default_image={IMAGE}",
        "--SandboxManager.default_memory=512M", f"--SandboxManager.server_id={SESSION_SERVER_ID}",
    ]
    log = open(root / "server.log", "wb")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter server exited: {(root / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(url + "api/status", headers={"Authorization": f"token {token}"}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter server did not answer: {(root / 'server.log').read_text()[-3000:]}")
            time.sleep(0.2)
        yield url, token
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
