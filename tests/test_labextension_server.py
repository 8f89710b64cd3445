"""The server pieces the JupyterLab panel needs, through a real Jupyter server on Docker:
GET config (what the create form shows)."""

from __future__ import annotations

import json

import pytest
from jupyter_server.auth.identity import IdentityProvider, User

API = ("sandbox", "api")
BOB = {"Authorization": "token bob-token"}


class TwoUsers(IdentityProvider):
    """The server's own token is alice; ``bob-token`` is bob."""

    async def get_user_token(self, handler):
        token = self.get_token(handler)
        if token == "bob-token":
            return User("bob")
        if token and token == self.token:
            return User("alice")
        return None


@pytest.fixture
def jp_server_config(jp_server_config, docker_ready):
    config = jp_server_config
    config["ServerApp"]["identity_provider_class"] = TwoUsers
    config["SandboxApp"]["max_body_size"] = 3 * 1024**2
    config["SandboxManager"].update(max_memory="2G", max_cpus=1.5, allow_network=False)
    return config


async def fetch(jp_fetch, *parts, **kwargs):
    kwargs.setdefault("request_timeout", 120)
    kwargs.setdefault("raise_error", False)
    return await jp_fetch(*API, *parts, **kwargs)


@pytest.mark.docker
async def test_config_tells_the_form_the_real_defaults_and_limits(jp_fetch):
    r = await fetch(jp_fetch, "config")
    assert r.code == 200, r.body
    config = json.loads(r.body)
    assert config["backend"] == "docker"
    assert "Docker container" in config["isolation"]
    assert config["images"][0] == config["defaults"]["image"]
    # conftest's default_memory is 512M; the maxima are this test's
    assert config["defaults"]["memory"] == 512 * 1024**2
    assert config["maximums"]["memory"] == 2 * 1024**3
    assert config["maximums"]["cpus"] == 1.5
    assert config["allow_network"] is False
    assert config["defaults"]["network"] is False
    assert config["max_upload_size"] == 3 * 1024**2


@pytest.mark.docker
async def test_config_needs_authentication(jp_fetch):
    r = await fetch(jp_fetch, "config", headers={"Authorization": ""})
    assert r.code == 403
