"""The server pieces the JupyterLab panel needs, through a real Jupyter server on Docker:
GET config (what the create form shows), sandbox events on the user's own event stream
(what makes the panel live), GET logs (the panel's log view) and the upload limit."""

from __future__ import annotations

import asyncio
import json

import pytest

from jupyter_sandbox.errors import InvalidInput, NotFound

from servers import TwoUsers

API = ("sandbox", "api")
BOB = {"Authorization": "token bob-token"}


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


async def test_config_needs_authentication(jp_fetch):
    r = await fetch(jp_fetch, "config", headers={"Authorization": ""})
    assert r.code == 403


async def next_sandbox_event(ws, timeout: float = 60) -> dict:
    """The next event on the user's own sandbox event stream."""
    message = await asyncio.wait_for(ws.read_message(), timeout)
    assert message is not None, "the event socket closed"
    return json.loads(message)


async def test_sandbox_events_reach_a_subscriber_in_order_without_secrets(jp_fetch, jp_ws_fetch):
    ws = await jp_ws_fetch(*API, "events")
    try:
        r = await fetch(jp_fetch, "sandboxes", method="POST", body=json.dumps({"name": "evented"}))
        assert r.code == 201, r.body
        sandbox = json.loads(r.body)
        r = await fetch(jp_fetch, "sandboxes", sandbox["id"], "execute", method="POST", body=json.dumps({"code": "1"}))
        assert r.code == 200
        r = await fetch(jp_fetch, "sandboxes", sandbox["id"], method="DELETE")
        assert r.code == 204
        events = [await next_sandbox_event(ws) for _ in range(5)]
    finally:
        ws.close()
    assert [(e["action"], e["status"], e["executing"]) for e in events] == [
        ("created", "starting", 0),
        ("status", "running", 0),
        ("execution_started", "running", 1),
        ("execution_finished", "running", 0),
        ("removed", "removing", 0),
    ]
    for event in events:
        assert event["sandbox_id"] == sandbox["id"] and event["name"] == "evented"
        # ids, names and states only: the E2B secret never travels with them
        assert set(event) <= {"action", "sandbox_id", "name", "status", "executing"}, event
        assert sandbox["e2b_url"].rsplit("/", 1)[-1] not in json.dumps(event)


async def test_logs_show_the_kernels_output_and_are_owner_checked(jp_fetch):
    r = await fetch(jp_fetch, "sandboxes", method="POST", body=json.dumps({"name": "logged"}))
    assert r.code == 201, r.body
    sandbox = json.loads(r.body)
    code = "import os\nos.write(2, b'straight to the kernel log\\n')"
    r = await fetch(jp_fetch, "sandboxes", "logged", "execute", method="POST", body=json.dumps({"code": code}))
    assert r.code == 200
    r = await fetch(jp_fetch, "sandboxes", "logged", "logs")
    assert r.code == 200, r.body
    logs = json.loads(r.body)
    assert isinstance(logs["container"], str)
    (context,) = logs["contexts"]
    assert context["id"] == sandbox["contexts"][0]["id"]
    # ipykernel's start-up lines, then what the code wrote to file descriptor 2
    assert "--existing /tmp/.jsbx/ipc/k-" in context["kernel_log"]  # the launcher keeps it in the sandbox
    assert context["kernel_log"].rstrip().endswith("straight to the kernel log")
    # another user's sandbox is not found, unknown ones neither
    r = await fetch(jp_fetch, "sandboxes", sandbox["id"], "logs", headers=BOB)
    assert r.code == 404
    r = await fetch(jp_fetch, "sandboxes", "nope", "logs")
    assert r.code == 404
    assert (await fetch(jp_fetch, "sandboxes", sandbox["id"], method="DELETE")).code == 204


async def test_an_upload_over_the_limit_is_a_413_naming_the_limit(jp_fetch):
    r = await fetch(jp_fetch, "sandboxes", method="POST", body=json.dumps({"name": "uploads"}))
    assert r.code == 201, r.body
    try:
        r = await fetch(
            jp_fetch,
            "sandboxes",
            "uploads",
            "files",
            params={"path": "big.bin"},
            method="PUT",
            body=b"x" * (3 * 1024**2 + 1),
        )
        assert r.code == 413, r.body
        assert "3145728" in json.loads(r.body)["message"]
        r = await fetch(
            jp_fetch,
            "sandboxes",
            "uploads",
            "files",
            params={"path": "ok.bin"},
            method="PUT",
            body=b"x" * (3 * 1024**2),
        )
        assert r.code == 204, r.body
    finally:
        await fetch(jp_fetch, "sandboxes", "uploads", method="DELETE")


async def test_local_backend_logs_have_no_container():
    from conftest import make_manager

    manager = make_manager("local")
    try:
        await manager.create("me", "plain")
        logs = await manager.logs("me", "plain")
        assert logs.container is None
        assert "--existing" in logs.contexts[0].kernel_log
        with pytest.raises(NotFound):
            await manager.logs("someone else", "plain")
    finally:
        await manager.shutdown()


async def test_manager_events_for_restart_pool_and_a_failed_start():
    """On the local backend (no engine needed): every change a panel shows is announced."""
    from conftest import make_manager

    manager = make_manager("local", pool_size=1)
    events: list[tuple[str, str, str]] = []
    manager.add_listener(lambda owner, e: events.append((e["action"], e["name"], e["status"])))
    try:
        await manager.start()
        while not manager.pool.ready:  # the pool fills in the background: never announced
            await asyncio.sleep(0.1)
        assert events == []
        await manager.create("me", "pooled")  # default spec: taken from the pool, running at once
        await manager.restart("me", "pooled")
        await manager.remove("me", "pooled")
        with pytest.raises(InvalidInput):
            await manager.create("me", "bad", {"runtime": "runsc"})  # the local backend cannot
        assert events == [
            ("created", "pooled", "running"),
            ("status", "pooled", "restarting"),
            ("status", "pooled", "running"),
            ("removed", "pooled", "removing"),
            ("created", "bad", "starting"),
            ("removed", "bad", "removing"),
        ]
    finally:
        await manager.shutdown()
