"""Shared fixtures: managers over real backends, a real Jupyter server with the extension.

Docker tests need a running engine and the default image (scripts/test.sh provides
both). Without them a Docker test is skipped locally but FAILS under CI=true: a Docker
test that skips in CI is a failing test.
"""

from __future__ import annotations

import asyncio
import os
import warnings

import pytest
import pytest_asyncio

from k8s.fixtures import k8s_api  # noqa: F401  (the fixture, for every test)
from servers import IMAGE, SESSION, SESSION_LABEL, JupyterServer, server_config

pytest_plugins = ["pytest_jupyter.jupyter_server"]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Managers made by the tests carry this server id; every container of this test session (servers'
# too) carries SESSION_LABEL, so the leftover check sees only this session's, not a concurrent run's.
SESSION_SERVER_ID = SESSION


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


def pytest_collection_modifyitems(items):
    """The ``docker`` marker goes on exactly the tests that need the engine: those that use
    ``docker_ready``/``runsc_ready`` (directly or through another fixture) or run on a Docker
    backend. So ``pytest -m "not docker"`` is the unit run."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        backend = getattr(getattr(item, "callspec", None), "params", {}).get("backend_name", "")
        if (
            names & {"docker_ready", "runsc_ready", "k8s_api"}
            or backend.startswith("docker")
            or backend == "kubernetes"
        ):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def docker_ready():
    require_docker()


@pytest.fixture(scope="session")
def runsc_ready():
    require_docker("runsc")


def make_manager(backend_name: str, **manager_config):
    from jupyter_sandbox.backends import make_backend
    from jupyter_sandbox.core.manager import SandboxManager

    kwargs = {"default_image": IMAGE}
    if backend_name.startswith("docker"):
        kwargs["extra_labels"] = {SESSION_LABEL: SESSION}
    if backend_name == "kubernetes":
        # the k8s_api fixture's endpoint (the test API server, or $KUBECONFIG's cluster)
        kwargs.update(KUBERNETES, extra_labels={SESSION_LABEL: SESSION})
    if backend_name == "docker-runsc":
        backend = make_backend("docker", runtime="runsc", **kwargs)
    else:
        backend = make_backend(backend_name, **kwargs)
    config = {"default_memory": "512M", "max_cpus": 2.0, "server_id": SESSION_SERVER_ID, **manager_config}
    return SandboxManager(backend=backend, **config)


BACKENDS = ["docker", "docker-runsc", "local", "kubernetes"]
KUBERNETES: dict[str, str] = {}  # the kubernetes backend's kubeconfig and namespace, set by backend_name


@pytest.fixture(scope="session", params=BACKENDS)
def backend_name(request):
    if request.param == "docker":
        require_docker()
    elif request.param == "docker-runsc":
        require_docker("runsc")
    elif request.param == "kubernetes":
        api = request.getfixturevalue("k8s_api")
        KUBERNETES.update(kubeconfig=api.kubeconfig, namespace=api.namespace)
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
    return server_config()


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
    left = client.containers.list(all=True, filters={"label": [f"{SESSION_LABEL}={SESSION}"]})
    if left:
        names = ", ".join(c.name for c in left)
        for c in left:
            c.remove(force=True)
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            f"ERROR: containers left behind after the tests: {names}", red=True
        )
        session.exitstatus = 1


@pytest.fixture(scope="session")
def sandbox_server_process(docker_ready, tmp_path_factory):
    """A real `jupyter server` subprocess with the extension on Docker (a tests/servers.py
    JupyterServer). For clients that block (sync client, notebook kernels), which cannot share
    the test's event loop with an in-process server. Always stopped (SIGTERM runs the
    extension's cleanup, which removes its sandboxes)."""
    with JupyterServer(tmp_path_factory.mktemp("server")) as server:
        yield server


@pytest.fixture(scope="session")
def sandbox_server(sandbox_server_process):
    """(url, token) of ``sandbox_server_process``."""
    return sandbox_server_process.url, sandbox_server_process.token
