"""c.SandboxApp.e2b_routes = False: no E2B route is served and no sandbox gets an e2b_url (the routes
take a secret in the URL instead of the server's auth, which a proxy in front would pass as it is)."""

from __future__ import annotations

import json

import pytest

from servers import TwoUsers, server_config

API = ("sandbox", "api", "sandboxes")


@pytest.fixture(params=[True, False], ids=["e2b-on", "e2b-off"])
def e2b_routes(request):
    return request.param


@pytest.fixture
def jp_server_config(e2b_routes):
    # the local backend: which routes exist and what a model says do not depend on the backend
    return server_config(
        SandboxApp={"backend": "local", "e2b_routes": e2b_routes},
        ServerApp={"identity_provider_class": TwoUsers},  # one user for every request (the token's)
    )


async def test_e2b_routes_setting(jp_fetch, jp_serverapp, e2b_routes):
    r = await jp_fetch(*API, method="POST", body="{}", raise_error=False)
    assert r.code == 201, r.body
    model = json.loads(r.body)
    try:
        listed = json.loads((await jp_fetch(*API)).body)
        assert [bool(m.get("e2b_url")) for m in listed] == [e2b_routes]
        assert bool(model.get("e2b_url")) is e2b_routes
        (sandbox_app,) = jp_serverapp.extension_manager.extension_apps["jupyter_sandbox"]
        (sandbox,) = [s for s in sandbox_app.manager.registry.all() if s.model.id == model["id"]]
        secret = sandbox.e2b_secret
        assert bool(secret) is e2b_routes
        # the E2B SDK's first call: with the routes on and the right secret it answers, else 404
        r = await jp_fetch(
            "sandbox", "e2b", model["id"], secret or "no-secret", "contexts", method="GET", raise_error=False
        )
        assert r.code == (200 if e2b_routes else 404), r.body
        assert any("sandbox/e2b" in pattern for pattern, *_ in sandbox_app.handlers) is e2b_routes
    finally:
        await jp_fetch(*API, model["id"], method="DELETE")
