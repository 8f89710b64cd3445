"""The attacks of issue 10, each written as it was made: a hostile notebook user inside a sandbox,
a hostile HTTP client outside. Every test ends by checking the server is whole: ``api/status``
answers within a second and another user's sandbox still runs code.

One server per runtime (runc, then gVisor's runsc) for the module, with two users (``alice`` the
attacker, ``bob`` the bystander; tests/servers.py's HeaderUsers).
"""

from __future__ import annotations

import time

import pytest

from servers import JupyterServer, result_text

ATTACKER, BYSTANDER = "alice", "bob"


def assert_whole(server: JupyterServer, bystander: str) -> None:
    """The server answers at once and another user's sandbox still runs code."""
    started = time.monotonic()
    assert server.get("api/status", timeout=5).status_code == 200
    assert time.monotonic() - started < 1.0, "api/status took over a second"
    started = time.monotonic()
    assert result_text(server.execute(bystander, "6 * 7", user=BYSTANDER)) == "42"
    assert time.monotonic() - started < 5.0, "another user's execute took over 5 s"


def create(server: JupyterServer, user: str = ATTACKER, **spec) -> str:
    r = server.api("POST", "sandboxes", json=spec, user=user)
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture(scope="module", params=["runc", "runsc"])
def guarded(request, docker_ready, tmp_path_factory):
    """(server, the bystander's sandbox id) on one runtime."""
    if request.param == "runsc":
        request.getfixturevalue("runsc_ready")
    config = {
        # engine_timeout also bounds a file command the sandbox stops (test_starvation)
        "DockerBackend": {"runtime": request.param, "engine_timeout": 15.0},
        "SandboxManager": {"allow_network": True, "max_output_size": 4 * 1024**2},
    }
    with JupyterServer(tmp_path_factory.mktemp(f"guarded-{request.param}"), users=True, config=config) as server:
        r = server.api("POST", "sandboxes", json={"name": "bystander"}, user=BYSTANDER)
        assert r.status_code == 201, r.text
        yield server, r.json()["id"]
