"""Which backend 'auto' picks: the Docker backend's configured docker_url decides (not only
DOCKER_HOST), and with c.SandboxApp.allow_local_fallback = False it never falls back to 'local'."""

from __future__ import annotations

import logging
import os

import pytest
from traitlets.config import Config

from jupyter_sandbox.backends import make_backend

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
