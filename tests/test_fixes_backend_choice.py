"""Which backend 'auto' picks: the Docker backend's configured docker_url decides (not only
DOCKER_HOST), and with c.SandboxApp.allow_local_fallback = False it never falls back to 'local'."""

from __future__ import annotations

import json
import logging
import os

import pytest
from traitlets.config import Config

from jupyter_sandbox.backends import make_backend
from jupyter_sandbox.errors import BackendUnavailable
from jupyter_sandbox.models import SandboxSpec

from servers import server_config

ENGINE_SOCKET = "/var/run/docker.sock"


@pytest.fixture
def engine_elsewhere(docker_ready, tmp_path, monkeypatch):
    """The real engine's socket by another path (a symlink), DOCKER_HOST pointing at nothing: only a
    backend that reads its docker_url finds the engine."""
    link = tmp_path / "engine.sock"
    os.symlink(ENGINE_SOCKET, link)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    return f"unix://{link}"


def test_auto_reads_the_configured_docker_url(engine_elsewhere, caplog):
    with caplog.at_level(logging.INFO, logger="jupyter_sandbox"):
        backend = make_backend("auto", config=Config({"DockerBackend": {"docker_url": engine_elsewhere}}))
    assert backend.name == "docker", caplog.text
    assert "chose docker" in caplog.text


def test_auto_reads_a_docker_url_given_as_an_option(engine_elsewhere):
    assert make_backend("auto", docker_url=engine_elsewhere).name == "docker"


def test_auto_falls_back_to_local_and_says_why(tmp_path, caplog):
    missing = f"unix://{tmp_path}/missing.sock"
    with caplog.at_level(logging.INFO, logger="jupyter_sandbox"):
        backend = make_backend("auto", config=Config({"DockerBackend": {"docker_url": missing}}))
    assert backend.name == "local"
    (line,) = [r.getMessage() for r in caplog.records if "chose local" in r.getMessage()]
    assert f"no Docker engine answers at {missing}" in line


async def test_auto_without_fallback_stays_on_docker_and_refuses(tmp_path, caplog):
    missing = f"unix://{tmp_path}/missing.sock"
    with caplog.at_level(logging.INFO, logger="jupyter_sandbox"):
        backend = make_backend("auto", allow_local=False, docker_url=missing)
    assert backend.name == "docker"
    assert "allow_local_fallback = False" in caplog.text and missing in caplog.text
    with pytest.raises(BackendUnavailable) as info:
        await backend.create("sbx_x", SandboxSpec(), {})
    assert info.value.status == 503 and "missing.sock" in info.value.message


@pytest.fixture(
    params=[{"backend": "auto", "allow_local_fallback": False}, {"backend": "docker"}],
    ids=["auto-no-fallback", "docker"],
)
def jp_server_config(request, tmp_path):
    return server_config(SandboxApp=request.param, DockerBackend={"docker_url": f"unix://{tmp_path}/missing.sock"})


async def test_server_that_may_not_fall_back_serves_503_naming_the_cause(jp_fetch, jp_serverapp):
    r = await jp_fetch("sandbox", "api", "sandboxes", method="POST", body="{}", raise_error=False)
    assert r.code == 503, r.body
    message = json.loads(r.body)["message"]
    assert "Docker engine not reachable" in message and "missing.sock" in message
    (sandbox_app,) = jp_serverapp.extension_manager.extension_apps["jupyter_sandbox"]
    assert sandbox_app.manager.backend.name == "docker"  # never local
