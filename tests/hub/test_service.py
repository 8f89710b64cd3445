"""The sandbox service (``python -m jupyter_sandbox.service``) behind a real JupyterHub: the
example config, configurable-http-proxy, real Unix users (tests/hub/conftest.py's ``hub``).

Every request goes through the Hub's proxy with a Hub token, as a user's script or server would.
The first tests need no Hub: the service's decisions (admission, group limits, on_server_stop).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jupyterhub.services.auth import HubOAuth
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_sandbox.backends.base import LABEL_PREFIX
from jupyter_sandbox.backends.local import LocalBackend
from jupyter_sandbox.core.spec_policy import SpecPolicy, most_generous
from jupyter_sandbox.errors import InvalidInput, QuotaExceeded
from jupyter_sandbox.models import SandboxModel, SandboxSpec
from jupyter_sandbox.server.handlers import HUB_SERVER_HEADER, HUB_SERVER_KEY
from jupyter_sandbox.service import ADMIN_SCOPE
from jupyter_sandbox.service.auth import admitted
from jupyter_sandbox.service.policy import stale_sandboxes

ACCESS = "access:services!service=sandbox"


# --- the decisions, without a Hub ----------------------------------------------------------------


def test_admission_by_scope():
    hub_auth = HubOAuth(access_scopes={ACCESS}, api_token="unused", oauth_client_id="service-sandbox")

    def model(kind: str, *scopes: str) -> dict[str, Any]:
        return {"kind": kind, "name": "x", "scopes": list(scopes)}

    assert admitted(hub_auth, model("user", ACCESS)) == (True, False)
    assert admitted(hub_auth, model("user", "access:services")) == (True, False)  # every service
    assert admitted(hub_auth, model("user", "read:users!user=x")) == (False, False)
    assert admitted(hub_auth, model("user", "access:services!service=other")) == (False, False)
    # a service is nobody's owner: admitted only as an admin
    assert admitted(hub_auth, model("service", ACCESS)) == (False, False)
    assert admitted(hub_auth, model("service", ADMIN_SCOPE)) == (True, True)
    assert admitted(hub_auth, model("user", ADMIN_SCOPE)) == (True, True)


def test_group_limits_most_generous_wins():
    merged = most_generous(
        [
            {"max_memory": "8G", "max_sandboxes_per_user": 4, "allow_network": False, "allowed_images": ["a"]},
            {"max_memory": "2G", "max_sandboxes_per_user": 6, "allow_network": True, "allowed_images": ["b", "a"]},
        ]
    )
    assert merged == {
        "max_memory": "8G",
        "max_sandboxes_per_user": 6,
        "allow_network": True,
        "allowed_images": ["a", "b"],
    }
    assert most_generous([]) == {}
    with pytest.raises(ValueError, match="not a limit"):
        most_generous([{"default_memory": "1G"}])


def test_limits_per_owner():
    """SpecPolicy.limits_for: the configured traits, unless owner_limits (the service's group
    limits) says otherwise for that owner; resolve_spec and check_quota read it."""
    policy = SpecPolicy(backend=LocalBackend(), max_memory="2G", max_sandboxes_per_user=1)
    policy.owner_limits = lambda owner: {"max_memory": "8G", "max_sandboxes_per_user": 3} if owner == "big" else {}
    assert policy.resolve_spec({"memory": "6G"}, "big").memory == 6 * 1024**3
    with pytest.raises(InvalidInput, match="maximum of 2G"):
        policy.resolve_spec({"memory": "6G"}, "small")
    with pytest.raises(InvalidInput, match="maximum of 2G"):
        policy.resolve_spec({"memory": "6G"})  # no owner: the configured limits
    one = [_sandbox("big", None)]
    policy.check_quota(one, SandboxSpec(memory=1), "big")
    with pytest.raises(QuotaExceeded):
        policy.check_quota(one, SandboxSpec(memory=1), "small")
    assert policy.describe(1024, "big").maximums.sandboxes_per_user == 3


def _sandbox(owner: str, server: str | None, created: float = 1000.0) -> SandboxModel:
    metadata = {} if server is None else {HUB_SERVER_KEY: server}
    return SandboxModel(
        id=f"sbx_{owner}_{server}",
        name="s",
        owner=owner,
        status="running",
        backend="docker",
        spec=SandboxSpec(metadata=metadata),
        created=created,
        last_activity=created,
    )


def test_on_server_stop_decision():
    running = {"ready": True, "pending": None, "started": "1970-01-01T00:10:00Z"}  # 600 s: before the sandboxes
    tied = _sandbox("alice", "")
    named = _sandbox("alice", "gpu")
    script = _sandbox("alice", None)  # made with the user's own token: the idle cull only
    bobs = _sandbox("bob", "")
    models = [tied, named, script, bobs]

    # alice's default server runs, her "gpu" server is gone; bob unknown this time (the Hub did not answer)
    users: dict[str, Any] = {"alice": {"name": "alice", "servers": {"": running}}}
    assert stale_sandboxes(models, users) == [named]
    # her default server is stopping
    users["alice"]["servers"] = {"": {**running, "pending": "stop"}, "gpu": running}
    assert stale_sandboxes(models, users) == [tied]
    # stopped and started again between two looks: a new server, the sandbox is not its
    users["alice"]["servers"] = {"": {**running, "started": "1970-01-01T00:20:00Z"}, "gpu": running}
    assert stale_sandboxes(models, users) == [tied]
    # the user is gone from the Hub
    assert stale_sandboxes(models, {"bob": None}) == [bobs]
    # a model without servers (the service's token may not read them): nothing can be told
    assert stale_sandboxes(models, {"alice": {"name": "alice"}}) == []


# --- through a real Hub ---------------------------------------------------------------------------


class Service:
    """The service's REST API through the Hub's proxy, with one Hub token."""

    def __init__(self, hub: Any, token: str | None):
        headers = {"Authorization": f"token {token}"} if token else {}
        self.http = httpx.Client(base_url=hub.service_url, headers=headers, timeout=180)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, **kwargs)

    def create(self, **body: Any) -> dict[str, Any]:
        r = self.request("POST", "sandbox/api/sandboxes", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def execute(self, ref: str, code: str) -> list[dict[str, Any]]:
        r = self.request("POST", f"sandbox/api/sandboxes/{ref}/execute", json={"code": code})
        assert r.status_code == 200, r.text
        return [json.loads(line) for line in r.text.splitlines() if line.strip()]

    def remove_all(self) -> None:
        for model in self.request("GET", "sandbox/api/sandboxes").json():
            self.request("DELETE", f"sandbox/api/sandboxes/{model['id']}")


def stdout(events: list[dict[str, Any]]) -> str:
    return "".join(e["text"] for e in events if e["type"] == "stdout")


@pytest.fixture(scope="module")
def users(hub: Any) -> Iterator[dict[str, Service]]:
    """alice and bob, each with a full token of theirs (the service's access scope included); the
    admin service's token; none of their sandboxes left after the module."""
    clients = {
        "alice": Service(hub, hub.token_for("alice")),
        "bob": Service(hub, hub.token_for("bob")),
        "admin": Service(hub, hub.admin_token),
    }
    yield clients
    for name in ("alice", "bob"):
        clients[name].remove_all()


@pytest.fixture
def clean(users: dict[str, Service]) -> Iterator[dict[str, Service]]:
    """Each test starts and ends with no sandbox of alice's or bob's (a quota of 2 each)."""
    for name in ("alice", "bob"):
        users[name].remove_all()
    yield users
    for name in ("alice", "bob"):
        users[name].remove_all()


def test_a_user_creates_a_sandbox_and_streams_output(hub: Any, clean: dict[str, Service]):
    alice = clean["alice"]
    model = alice.create(name="first")
    assert model["owner"] == hub.users["alice"]  # the Hub user's name, not a uid
    # streamed through the proxy: the first line arrives while the code still runs (a gap of
    # seconds the code itself makes)
    code = "import time\nprint('before', flush=True)\ntime.sleep(4)\nprint('after')"
    arrivals: list[tuple[float, dict[str, Any]]] = []
    with alice.http.stream("POST", f"sandbox/api/sandboxes/{model['id']}/execute", json={"code": code}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/x-ndjson")
        for line in r.iter_lines():
            if line.strip():
                arrivals.append((time.monotonic(), json.loads(line)))
    events = [e for _, e in arrivals]
    assert stdout(events) == "before\nafter\n"
    assert events[-1]["type"] == "end_of_execution"
    first = next(t for t, e in arrivals if e["type"] == "stdout")
    assert arrivals[-1][0] - first >= 2.0, "the output came all at once: the stream was buffered"
    assert [m["id"] for m in alice.request("GET", "sandbox/api/sandboxes").json()] == [model["id"]]


def test_no_scope_no_token_bad_token_are_403(hub: Any, users: dict[str, Service]):
    narrow = Service(hub, hub.token_for("alice", scopes=[f"read:users:name!user={hub.users['alice']}"]))
    for client in (narrow, Service(hub, None), Service(hub, "not-a-token")):
        for method, path in [
            ("GET", "sandbox/api/sandboxes"),
            ("POST", "sandbox/api/sandboxes"),
            ("GET", "sandbox/api/config"),
            ("GET", "sandbox/api/admin/sandboxes"),
        ]:
            r = client.request(method, path, json={} if method == "POST" else None)
            assert r.status_code == 403, (method, path, r.status_code, r.text)


def test_bob_cannot_reach_alices_sandbox(hub: Any, clean: dict[str, Service]):
    alice, bob = clean["alice"], clean["bob"]
    model = alice.create(name="mine")
    assert stdout(alice.execute(model["id"], "secret = 'alice'; print(secret)")) == "alice\n"
    ctx = model["contexts"][0]["id"]
    base = f"sandbox/api/sandboxes/{model['id']}"
    for ref in (model["id"], "mine"):
        base = f"sandbox/api/sandboxes/{ref}"
        for method, path, body in [
            ("GET", base, None),
            ("POST", f"{base}/execute", {"code": "print(secret)"}),
            ("GET", f"{base}/files?path=.", None),
            ("PUT", f"{base}/files?path=x.txt", b"bob"),
            ("DELETE", f"{base}/files?path=x.txt", None),
            ("GET", f"{base}/logs", None),
            ("GET", f"{base}/stats", None),
            ("GET", f"{base}/contexts", None),
            ("POST", f"{base}/contexts/{ctx}/input", {"value": "x"}),
            ("POST", f"{base}/interrupt", {}),
            ("POST", f"{base}/restart", {}),
            ("DELETE", base, None),
        ]:
            kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
            r = bob.request(method, path, **({} if body is None else kwargs))
            assert r.status_code == 404, (method, path, r.status_code, r.text)
    assert bob.request("GET", "sandbox/api/sandboxes").json() == []
    # E2B's secret URL: behind the Hub, the secret alone opens nothing; bob's login does not either
    e2b = model["e2b_url"].rstrip("/") + "/"
    assert e2b.startswith(hub.service_url + "sandbox/e2b/"), e2b
    assert httpx.post(e2b + "execute", json={"code": "print(secret)"}, timeout=60).status_code == 403
    assert bob.http.post(e2b + "execute", json={"code": "print(secret)"}).status_code == 404
    r = alice.http.post(e2b + "execute", json={"code": "print(secret)"})
    assert r.status_code == 200 and '"alice\\n"' in r.text, r.text
    # nothing of bob's reached it: it runs, with its variable
    assert stdout(alice.execute(model["id"], "print(secret)")) == "alice\n"


async def _events(hub: Any, token: str) -> Any:
    url = hub.service_url.replace("http://", "ws://") + "sandbox/api/events"
    return await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {token}"}))


async def test_events_reach_their_owner_only(hub: Any, clean: dict[str, Service]):
    alice_token, bob_token = hub.token_for("alice"), hub.token_for("bob")
    alice_ws, bob_ws = await _events(hub, alice_token), await _events(hub, bob_token)
    try:
        model = await asyncio.to_thread(clean["alice"].create, name="evented")
        await asyncio.to_thread(clean["alice"].execute, model["id"], "1 + 1")
        seen: list[dict[str, Any]] = []
        while not any(e.get("action") == "execution_finished" for e in seen):
            raw = await asyncio.wait_for(alice_ws.read_message(), 60)
            assert raw is not None, "the service closed alice's event stream"
            seen.append(json.loads(raw))
        assert {e["sandbox_id"] for e in seen if "sandbox_id" in e} == {model["id"]}
        # bob's stream, open all along, got none of it (it has had seconds to)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(bob_ws.read_message(), 3)
    finally:
        alice_ws.close()
        bob_ws.close()


def test_admin_sees_and_stops_every_users_sandboxes(hub: Any, clean: dict[str, Service]):
    alice, bob, admin = clean["alice"], clean["bob"], clean["admin"]
    mine, his = alice.create(name="a1"), bob.create(name="b1")
    r = admin.request("GET", "sandbox/api/admin/sandboxes")
    assert r.status_code == 200, r.text
    rows = {row["id"]: row for row in r.json()}
    assert rows[mine["id"]]["owner"] == hub.users["alice"] and rows[his["id"]]["owner"] == hub.users["bob"]
    for row in (rows[mine["id"]], rows[his["id"]]):
        assert row["status"] == "running" and row["age"] >= 0 and row["memory_limit"] > 0
        assert isinstance(row["memory_used"], int) and row["cpu_percent"] is not None
    # a Hub user with the admin scope (through the sandbox-admin role) sees them too
    as_admin_user = Service(hub, hub.token_for(hub.admin_user))
    assert {mine["id"], his["id"]} <= {
        row["id"] for row in as_admin_user.request("GET", "sandbox/api/admin/sandboxes").json()
    }
    # users are not admins
    for client in (alice, bob):
        assert client.request("GET", "sandbox/api/admin/sandboxes").status_code == 403
        assert client.request("DELETE", f"sandbox/api/admin/sandboxes/{his['id']}").status_code == 403
    assert admin.request("DELETE", f"sandbox/api/admin/sandboxes/{his['id']}").status_code == 204
    assert bob.request("GET", "sandbox/api/sandboxes").json() == []
    assert admin.request("DELETE", f"sandbox/api/admin/sandboxes/{his['id']}").status_code == 404
    assert [m["id"] for m in alice.request("GET", "sandbox/api/sandboxes").json()] == [mine["id"]]


def test_per_user_quota(hub: Any, clean: dict[str, Service]):
    alice, bob = clean["alice"], clean["bob"]
    for _ in range(hub.max_sandboxes_per_user):
        alice.create()
    r = alice.request("POST", "sandbox/api/sandboxes", json={})
    assert r.status_code == 429, r.text
    # a token of another server of hers (here: another token) counts against the same quota
    other = Service(hub, hub.token_for("alice"))
    assert other.request("POST", "sandbox/api/sandboxes", json={}).status_code == 429
    assert bob.create()["owner"] == hub.users["bob"]  # bob's own quota


def test_nothing_else_of_jupyter_server(hub: Any, users: dict[str, Service]):
    alice = users["alice"]
    for path in [
        "api/contents",
        "api/contents/etc/passwd",
        "files/etc/passwd",
        "api/kernels",
        "api/kernelspecs",
        "api/sessions",
        "api/terminals",
        "terminals/1",
        "api/events",
        "api/me",
        "api/status",
        "api/config/notebook",
        "api/nbconvert",
        "lab",
        "tree",
        "edit/etc/passwd",
        "view/etc/passwd",
        "nbconvert/html/x.ipynb",
    ]:
        r = alice.request("GET", path)
        assert r.status_code == 404, (path, r.status_code, r.text[:200])
    assert alice.request("POST", "api/kernels", json={}).status_code in (403, 404, 405)
    assert alice.request("GET", "sandbox/api/sandboxes").status_code == 200


def _wait_for_new_service(hub: Any, old_pid: int, timeout: float = 120) -> int:
    """The Hub restarts its managed service (it polls every 30 s): the new pid, once it answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid = hub.service_pid()
        except RuntimeError:
            pid = None
        if pid and pid != old_pid:
            try:
                if httpx.get(hub.service_url + "sandbox/api/sandboxes", timeout=10).status_code == 403:
                    return int(pid)
            except httpx.HTTPError:
                pass
        time.sleep(1)
    raise AssertionError(f"the Hub did not restart the service within {timeout:g}s:\n{hub.log()}")


@pytest.fixture
def big_group(hub: Any) -> Iterator[str]:
    """A Hub group with alice in it, its limits in the service's config (read at its next start)."""
    group = "jsbx-big"
    hub.api("DELETE", f"groups/{group}")
    r = hub.api("POST", f"groups/{group}", json={"users": [hub.users["alice"]]})
    assert r.status_code == 201, r.text
    config = json.loads(hub.service_config_path.read_text())
    config.setdefault("SandboxService", {})["group_limits"] = {group: {"max_sandboxes_per_user": 3}}
    hub.service_config_path.write_text(json.dumps(config, indent=1))
    yield group
    hub.api("DELETE", f"groups/{group}")


def test_kill_9_restart_keeps_variables_and_applies_group_limits(hub: Any, clean: dict[str, Service], big_group: str):
    alice, bob = clean["alice"], clean["bob"]
    model = alice.create(name="survivor")
    alice.execute(model["id"], "x = 6 * 7")
    assert (
        alice.request("PUT", f"sandbox/api/sandboxes/{model['id']}/files?path=kept.txt", content=b"kept").status_code
        == 204
    )

    old = hub.service_pid()
    os.kill(old, signal.SIGKILL)
    _wait_for_new_service(hub, old)
    # it listens before it has taken its sandboxes back (adopt_timeout per kernel)
    deadline = time.monotonic() + 60
    while alice.request("GET", f"sandbox/api/sandboxes/{model['id']}").status_code == 404:
        assert time.monotonic() < deadline, f"the restarted service did not take the sandbox back:\n{hub.log()}"
        time.sleep(1)

    # taken back: the same sandbox, its kernel's variables and its files
    assert stdout(alice.execute("survivor", "print(x)")) == "42\n"
    r = alice.request("GET", f"sandbox/api/sandboxes/{model['id']}/files?path=kept.txt&type=file")
    assert r.status_code == 200 and r.content == b"kept"

    # the restarted service read its config: alice's group allows 3, bob has the default 2
    alice.create()
    alice.create()
    assert alice.request("POST", "sandbox/api/sandboxes", json={}).status_code == 429
    config = alice.request("GET", "sandbox/api/config").json()
    assert config["maximums"]["sandboxes_per_user"] == 3
    assert bob.request("GET", "sandbox/api/config").json()["maximums"]["sandboxes_per_user"] == 2


def test_a_service_stopped_cleanly_keeps_every_sandbox_for_its_next_start(hub: Any, clean: dict[str, Service]):
    """SIGTERM (the Hub's or systemd's stop, an upgrade): the service leaves the sandboxes running
    (c.SandboxApp.keep_sandboxes_on_stop defaults to True there) and its next start takes them back."""
    alice = clean["alice"]
    model = alice.create(name="kept-on-stop")
    alice.execute(model["id"], "y = 'still here'")

    old = hub.service_pid()
    os.kill(old, signal.SIGTERM)
    _wait_for_new_service(hub, old)
    deadline = time.monotonic() + 60
    while alice.request("GET", f"sandbox/api/sandboxes/{model['id']}").status_code == 404:
        assert time.monotonic() < deadline, f"the restarted service did not take the sandbox back:\n{hub.log()}"
        time.sleep(1)
    assert stdout(alice.execute("kept-on-stop", "print(y)")) == "still here\n"
    assert re.search(r"keeping \d+ sandboxes on shutdown", hub.log(tail=200_000)), hub.log()


def test_stopping_a_server_removes_the_sandboxes_made_through_it(hub: Any, clean: dict[str, Service]):
    alice = clean["alice"]
    hub.start_server("alice", "svc")
    # as the user's server in Hub mode sends it: the server a request comes through
    through = alice.request("POST", "sandbox/api/sandboxes", json={"name": "tied"}, headers={HUB_SERVER_HEADER: "svc"})
    assert through.status_code == 201, through.text
    assert through.json()["spec"]["metadata"] == {HUB_SERVER_KEY: "svc"}
    own = alice.create(name="script")  # no server: the idle cull only
    time.sleep(12)  # a poll or more of the service while the server runs: kept
    assert {m["name"] for m in alice.request("GET", "sandbox/api/sandboxes").json()} == {"tied", "script"}

    hub.stop_server("alice", "svc")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        names = {m["name"] for m in alice.request("GET", "sandbox/api/sandboxes").json()}
        if names == {"script"}:
            break
        time.sleep(1)
    assert names == {"script"}
    import docker

    client = docker.from_env()
    try:
        # the list drops it first; its container goes once the engine has removed it
        label = f"{LABEL_PREFIX}.sandbox={through.json()['id']}"
        deadline = time.monotonic() + 60
        # (sparse: no inspect of each, which a container removed meanwhile would fail with a 404)
        while (left := client.containers.list(all=True, sparse=True, filters={"label": label})) and (
            time.monotonic() < deadline
        ):
            time.sleep(1)
        assert left == []
    finally:
        client.close()
    assert own["id"] in {m["id"] for m in alice.request("GET", "sandbox/api/sandboxes").json()}
