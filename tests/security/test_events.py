"""Issue 27's event attacks, through a real server with two users (HeaderUsers: alice, bob):

- bob's event streams (the extension's own, and jupyter_server's bus) carry none of alice's
  sandbox events, while alice's own stream carries them all;
- bob's forged ``kernel_actions`` shutdown for alice's kernel (POST /api/events) removes nothing,
  and his forged interrupt reaches no one (a real one, only the stream of who interrupted);
- a sandboxed kernel's sandbox belongs to the user whose request started the kernel, on both of
  jupyter_server's routes (POST /api/kernels, POST /api/sessions); a sandbox tied to a kernel
  (a notebook's) only to a kernel its user started.

The attacks are on the server, not in a container: one runtime (runc) is enough.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import time
import uuid

import pytest
from jupyter_server import CallContext
from jupyter_server.auth import Authorizer
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from jupyter_sandbox.kernel import KERNEL_NAME

from servers import JupyterServer, TwoUsers, result_text

KERNEL_ACTIONS = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"


@pytest.fixture(scope="module")
def server(docker_ready, tmp_path_factory):
    with JupyterServer(tmp_path_factory.mktemp("events"), users=True) as server:
        yield server


async def subscribe(server: JupyterServer, path: str, user: str | None) -> WebSocketClientConnection:
    headers = {"Authorization": f"token {server.token}"} if user else {}
    if user:
        headers["X-Test-User"] = user
    url = server.url.replace("http", "ws", 1) + path
    return await websocket_connect(HTTPRequest(url, headers=headers))


async def read(ws: WebSocketClientConnection, timeout: float = 60) -> dict:
    message = await asyncio.wait_for(ws.read_message(), timeout)
    assert message is not None, "the event socket closed"
    return json.loads(message)


def call(server: JupyterServer, method: str, path: str, user: str, **kwargs):
    return asyncio.to_thread(server.request, method, path, user=user, **kwargs)


def sandboxes(server: JupyterServer, user: str) -> list[dict]:
    r = server.api("GET", "sandboxes", user=user)
    assert r.status_code == 200, r.text
    return r.json()


async def alices_sandbox_comes_and_goes(server: JupyterServer) -> dict:
    """alice creates a sandbox, runs code in it and removes it: five events."""
    r = await call(server, "POST", "sandbox/api/sandboxes", "alice", json={"name": "alices-plans"})
    assert r.status_code == 201, r.text
    events = await asyncio.to_thread(server.execute, r.json()["id"], "1", user="alice")
    assert result_text(events) == "1"
    assert (await call(server, "DELETE", f"sandbox/api/sandboxes/{r.json()['id']}", "alice")).status_code == 204
    return r.json()


async def test_jupyter_servers_event_bus_carries_no_sandbox_events(server):
    bob_bus = await subscribe(server, "api/events/subscribe", "bob")
    try:
        secret = await alices_sandbox_comes_and_goes(server)
        # A marker after all of alice's events: a file bob saves. Whatever of alice's reached him is ahead of it.
        marker = f"marker-{uuid.uuid4().hex}.txt"
        body = {"type": "file", "format": "text", "content": ""}
        assert (await call(server, "PUT", f"api/contents/{marker}", "bob", json=body)).status_code == 201
        on_bus: list[dict] = []
        while not on_bus or on_bus[-1].get("path") != marker:
            on_bus.append(await read(bob_bus))
    finally:
        bob_bus.close()
    assert secret["id"] not in json.dumps(on_bus) and "alices-plans" not in json.dumps(on_bus), on_bus
    assert not [e for e in on_bus if "sandbox_id" in e], on_bus  # nobody's sandbox events go on the bus


async def test_each_users_event_stream_carries_their_sandboxes_only(server):
    alice = await subscribe(server, "sandbox/api/events", "alice")
    bob = await subscribe(server, "sandbox/api/events", "bob")
    try:
        secret = await alices_sandbox_comes_and_goes(server)
        # alice's own stream: all of it, in order; ids, names and states only
        seen = [await read(alice) for _ in range(5)]
        assert [(e["action"], e["status"], e["executing"]) for e in seen] == [
            ("created", "starting", 0),
            ("status", "running", 0),
            ("execution_started", "running", 1),
            ("execution_finished", "running", 0),
            ("removed", "removing", 0),
        ]
        assert all(e["sandbox_id"] == secret["id"] and e["name"] == "alices-plans" for e in seen)
        assert all(set(e) == {"action", "sandbox_id", "name", "status", "executing"} for e in seen)
        # A marker after all of alice's events: bob's own sandbox. Anything of alice's would be ahead of it.
        r = await call(server, "POST", "sandbox/api/sandboxes", "bob", json={"name": "bobs"})
        assert r.status_code == 201, r.text
        first = await read(bob)
        assert (first["name"], first["action"]) == ("bobs", "created"), first
        assert (await call(server, "DELETE", "sandbox/api/sandboxes/bobs", "bob")).status_code == 204
    finally:
        alice.close()
        bob.close()


async def test_the_event_stream_needs_authentication(server):
    with pytest.raises(HTTPClientError) as refused:
        await subscribe(server, "sandbox/api/events", None)
    assert refused.value.code == 403


async def start_kernel(server: JupyterServer, user: str) -> str:
    r = await call(server, "POST", "api/kernels", user, json={"name": KERNEL_NAME})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def kernel_sandbox(server: JupyterServer, user: str, kernel_id: str) -> dict | None:
    return next((s for s in sandboxes(server, user) if s["kernel_id"] == kernel_id and s["kind"] == "kernel"), None)


async def test_a_forged_kernel_shutdown_leaves_alices_sandboxes(server):
    kernel_id = await start_kernel(server, "alice")
    try:
        r = await call(server, "POST", "sandbox/api/sandboxes", "alice", json={"name": "nb", "kernel_id": kernel_id})
        assert r.status_code == 201, r.text
        notebook = r.json()
        kernels = await call(server, "GET", "api/kernels", "bob")
        assert kernel_id in [k["id"] for k in kernels.json()]  # bob can see the id: the attack's premise
        forged = {
            "schema_id": KERNEL_ACTIONS,
            "version": "1",
            "data": {
                "action": "shutdown",
                "kernel_id": kernel_id,
                "kernel_name": KERNEL_NAME,
                "status": "success",
                "msg": "",
            },
        }
        r = await call(server, "POST", "api/events", "bob", json=forged)
        assert r.status_code == 204, r.text  # jupyter_server takes it; the extension must not act on it
        deadline = time.monotonic() + 30
        while f"ignored a shutdown event for kernel '{kernel_id}'" not in server.log(200_000):
            assert time.monotonic() < deadline, server.log()
            await asyncio.sleep(0.5)
        names = {s["name"]: s for s in sandboxes(server, "alice")}
        assert names["nb"]["status"] == "running" and kernel_sandbox(server, "alice", kernel_id) is not None
        events = await asyncio.to_thread(server.execute, notebook["id"], "1 + 1", user="alice")
        assert result_text(events) == "2"
    finally:
        # the real shutdown still removes both
        assert (await call(server, "DELETE", f"api/kernels/{kernel_id}", "alice")).status_code == 204
    deadline = time.monotonic() + 60
    while [s for s in sandboxes(server, "alice") if s["kernel_id"] == kernel_id]:
        assert time.monotonic() < deadline, "a kernel's sandboxes outlived its real shutdown"
        await asyncio.sleep(0.5)


async def test_only_a_real_interrupt_reaches_the_interrupters_stream(server):
    """The labextension stops a sandbox cell when its notebook's kernel is interrupted. A forged
    kernel_actions interrupt (POST /api/events) must not do it; a real one reaches the stream of
    the user who interrupted, and no one else's."""
    kernel_id = await start_kernel(server, "alice")
    alice = await subscribe(server, "sandbox/api/events", "alice")
    bob = await subscribe(server, "sandbox/api/events", "bob")
    try:
        forged = {
            "schema_id": KERNEL_ACTIONS,
            "version": "1",
            "data": {
                "action": "interrupt",
                "kernel_id": kernel_id,
                "kernel_name": KERNEL_NAME,
                "status": "success",
                "msg": "",
            },
        }
        assert (await call(server, "POST", "api/events", "bob", json=forged)).status_code == 204
        assert (await call(server, "POST", f"api/kernels/{kernel_id}/interrupt", "alice")).status_code == 204
        # the first message on alice's stream is the real interrupt, not the forged one before it
        assert await read(alice) == {"action": "kernel_interrupted", "kernel_id": kernel_id}
        # bob: his own sandbox is the marker; nothing of alice's interrupt came before it
        assert (
            await call(server, "POST", "sandbox/api/sandboxes", "bob", json={"name": "bobs-marker"})
        ).status_code == 201
        first = await read(bob)
        assert (first.get("name"), first["action"]) == ("bobs-marker", "created"), first
        assert (await call(server, "DELETE", "sandbox/api/sandboxes/bobs-marker", "bob")).status_code == 204
    finally:
        alice.close()
        bob.close()
        assert (await call(server, "DELETE", f"api/kernels/{kernel_id}", "alice")).status_code == 204


async def test_a_sandboxed_kernels_sandbox_belongs_to_who_started_it(server):
    alices = await start_kernel(server, "alice")
    # bob's kernel through the other route JupyterLab uses: a notebook's session
    session = {"path": "bob.ipynb", "type": "notebook", "name": "bob.ipynb", "kernel": {"name": KERNEL_NAME}}
    r = await call(server, "POST", "api/sessions", "bob", json=session)
    assert r.status_code == 201, r.text
    session_id, bobs = r.json()["id"], r.json()["kernel"]["id"]
    try:
        mine = kernel_sandbox(server, "alice", alices)
        assert mine is not None and mine["owner"] == "alice"
        his = kernel_sandbox(server, "bob", bobs)
        assert his is not None and his["owner"] == "bob"
        assert kernel_sandbox(server, "bob", alices) is None and kernel_sandbox(server, "alice", bobs) is None
        for method, path in [("GET", ""), ("GET", "/logs"), ("POST", "/restart"), ("DELETE", "")]:
            r = await call(server, method, f"sandbox/api/sandboxes/{mine['id']}{path}", "bob")
            assert r.status_code == 404, (method, path, r.text)
        r = await call(server, "GET", f"sandbox/api/sandboxes/{mine['id']}/logs", "alice")
        assert r.status_code == 200, r.text
        # A notebook's sandbox made for a kernel: only for a kernel you started (then it is yours),
        # whatever start event bob posts.
        data = {"action": "start", "kernel_id": alices, "kernel_name": KERNEL_NAME, "status": "success", "msg": ""}
        forged = {"schema_id": KERNEL_ACTIONS, "version": "1", "data": data}
        assert (await call(server, "POST", "api/events", "bob", json=forged)).status_code == 204
        r = await call(server, "POST", "sandbox/api/sandboxes", "bob", json={"name": "tied", "kernel_id": alices})
        assert r.status_code == 400 and r.json()["field"] == "kernel_id", r.text
        r = await call(server, "POST", "sandbox/api/sandboxes", "alice", json={"name": "tied", "kernel_id": alices})
        assert r.status_code == 201 and r.json()["owner"] == "alice", r.text
        r = await call(server, "POST", "sandbox/api/sandboxes", "bob", json={"name": "tied", "kernel_id": bobs})
        assert r.status_code == 201 and r.json()["owner"] == "bob", r.text
        assert kernel_sandbox(server, "alice", alices)["status"] == "running"
    finally:
        assert (await call(server, "DELETE", f"api/kernels/{alices}", "alice")).status_code == 204
        assert (await call(server, "DELETE", f"api/sessions/{session_id}", "bob")).status_code == 204


class NoBob(Authorizer):
    """bob is authenticated, but authorized for nothing."""

    def is_authorized(self, handler, user, action, resource):
        return user.username != "bob"


@pytest.fixture
def jp_server_config(jp_server_config, docker_ready):
    jp_server_config["ServerApp"]["identity_provider_class"] = TwoUsers
    jp_server_config["ServerApp"]["authorizer_class"] = NoBob
    return jp_server_config


async def test_the_event_stream_is_authorized(jp_ws_fetch):
    ws = await jp_ws_fetch("sandbox", "api", "events")  # alice
    ws.close()
    with pytest.raises(HTTPClientError) as refused:
        await jp_ws_fetch("sandbox", "api", "events", headers={"Authorization": "token bob-token"})
    assert refused.value.code == 403


async def test_a_kernel_the_server_starts_by_itself_belongs_to_the_servers_user(jp_serverapp):
    """No request starts it (no handler in jupyter_server's CallContext): the rule before requests
    counted, the user this server runs for."""
    app = jp_serverapp.web_app.settings["sandbox_app"]
    assert CallContext.get(CallContext.JUPYTER_HANDLER) is None
    assert app.kernel_owner() == (os.environ.get("JUPYTERHUB_USER") or getpass.getuser())
