"""The ``k8s_api`` fixture: a Kubernetes API endpoint for tests, with a kubeconfig.

Without KUBECONFIG: the test API server (tests/k8s/apiserver.py) on its own event loop in a
thread, pods as Docker containers labelled with this test session. With KUBECONFIG set: that
real cluster (kind, k3s, ...), in the namespace K8S_TEST_NAMESPACE (default "default")."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from aiohttp import web

from .apiserver import ApiServer
from .pods import SERVER_LABEL
from servers import SESSION, SESSION_LABEL

TEST_NAMESPACE = "sandbox-test"


class K8sApi:
    """What a test needs of the endpoint. ``server`` is the ApiServer (None on a real cluster):
    its ``requests`` record and ``rules`` (a Role's rules; None allows everything) are there."""

    def __init__(
        self, kubeconfig: str, namespace: str, server: ApiServer | None = None, url: str = "", token: str = ""
    ):
        self.kubeconfig, self.namespace, self.server, self.url, self.token = kubeconfig, namespace, server, url, token

    @property
    def requests(self) -> list[dict[str, Any]]:
        if self.server is None:
            pytest.skip("a real cluster does not record its requests for the tests")
        return self.server.requests

    @contextlib.contextmanager
    def rules(self, rules: list[dict[str, Any]]) -> Iterator[None]:
        """Only these Role rules are granted inside the block (403 for the rest)."""
        if self.server is None:
            pytest.skip("RBAC rules of a real cluster are set by its Role, not by the tests")
        self.server.rules = rules
        try:
            yield
        finally:
            self.server.rules = None


def write_kubeconfig(path: Path, url: str, token: str, namespace: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": url}}],
        "users": [{"name": "test", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": namespace}}],
        "current-context": "test",
    }
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    path.chmod(0o600)


class ServerThread:
    """Runs an ApiServer on 127.0.0.1 (a free port) on its own loop in a daemon thread, so
    Docker calls and streams never wait on the test's loop (nor the test's on them)."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="k8s-test-apiserver", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(self.server.app, access_log=None, shutdown_timeout=2)
        try:
            self.loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            self.port = runner.addresses[0][1]
        except BaseException as e:  # reported by start() in the test's thread
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

    def start(self) -> str:
        self.thread.start()
        self._ready.wait(30)
        if self._error is not None or not self.port:
            raise RuntimeError(f"the test Kubernetes API server did not start: {self._error!r}")
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(60)


def runtime_classes() -> dict[str, str]:
    """RuntimeClass name -> Docker runtime: gvisor when the engine has runsc."""
    client = docker.from_env()
    try:
        return {"gvisor": "runsc"} if "runsc" in client.info().get("Runtimes", {}) else {}
    finally:
        client.close()


def remove_containers(server_id: str, timeout: float = 60) -> None:
    """Every container a server made, whatever state its loop ended in; returns when they are
    gone (a removal already under way elsewhere is waited for, not repeated)."""
    client = docker.from_env()
    deadline = time.monotonic() + timeout
    try:
        while left := client.containers.list(all=True, filters={"label": f"{SERVER_LABEL}={server_id}"}):
            if time.monotonic() > deadline:
                raise RuntimeError(f"containers of the test API server not removed: {[c.name for c in left]}")
            for c in left:
                try:
                    c.remove(force=True, v=True)
                except docker.errors.APIError as e:  # gone, or its removal already under way
                    if e.status_code not in (404, 409):
                        raise
            time.sleep(0.2)
    finally:
        client.close()


@contextlib.contextmanager
def running_api_server(directory: Path, namespace: str = TEST_NAMESPACE, **options: Any) -> Iterator[K8sApi]:
    """A test API server for the duration of the block; all its containers removed after it."""
    token = secrets.token_urlsafe(24)
    server = ApiServer(
        token=token,
        namespaces=[namespace, "default"],
        user=f"system:serviceaccount:{namespace}:jupyter-sandbox",
        runtime_classes=runtime_classes(),
        extra_labels={SESSION_LABEL: SESSION},
        **options,
    )
    thread = ServerThread(server)
    try:
        url = thread.start()
        kubeconfig = directory / "kubeconfig"
        write_kubeconfig(kubeconfig, url, token, namespace)
        yield K8sApi(str(kubeconfig), namespace, server, url, token)
    finally:
        thread.stop()
        remove_containers(server.server_id)


@pytest.fixture(scope="session")
def k8s_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[K8sApi]:
    """A Kubernetes API endpoint: the real cluster of $KUBECONFIG, else the test API server."""
    if os.environ.get("KUBECONFIG"):
        yield K8sApi(os.environ["KUBECONFIG"], os.environ.get("K8S_TEST_NAMESPACE", "default"))
        return
    request.getfixturevalue("docker_ready")
    with running_api_server(tmp_path_factory.mktemp("k8s")) as api:
        yield api
