"""E2B's lifecycle API and data plane through a real server and the real, unmodified SDKs (no
E2B_DEBUG): ``e2b`` and ``e2b_code_interpreter`` get only E2B_API_URL, E2B_SANDBOX_URL and
E2B_API_KEY. The server has two users (tests/servers.py HeaderUsers): its token is alice's.
"""

from __future__ import annotations

import subprocess
import threading
import time

import httpx
import pytest
from e2b import Sandbox as BaseSandbox
from e2b import SandboxQuery, SandboxState
from e2b.exceptions import AuthenticationException, NotFoundException, SandboxException, TimeoutException
from e2b_code_interpreter import AsyncSandbox, Sandbox

from servers import JupyterServer

pytestmark = pytest.mark.usefixtures("docker_ready")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with JupyterServer(tmp_path_factory.mktemp("e2b-lifecycle"), users=True) as server:
        yield server


@pytest.fixture
def e2b_env(server, monkeypatch):
    """The SDKs pointed at ``server``, as `jupyter sandbox e2b-env` would; alice's key by default."""
    monkeypatch.delenv("E2B_DEBUG", raising=False)
    monkeypatch.setenv("E2B_API_URL", server.url + "sandbox/e2b/api")
    monkeypatch.setenv("E2B_SANDBOX_URL", server.url + "sandbox/e2b/plane")
    monkeypatch.setenv("E2B_API_KEY", server.token)
    return server


def mint(server: JupyterServer, user: str) -> str:
    r = server.api("POST", "keys", json={"name": "test"}, user=user)
    assert r.status_code == 201, r.text
    return r.json()["key"]


def ids(paginator) -> list[str]:
    found = []
    while paginator.has_next:
        found += [s.sandbox_id for s in paginator.next_items()]
    return found


def test_create_run_code_info_metrics_kill(e2b_env):
    sbx = Sandbox.create(metadata={"purpose": "lifecycle"}, envs={"GREETING": "hi"}, timeout=120)
    try:
        assert sbx.sandbox_id.startswith("sbx_")
        assert sbx.run_code("1+1").text == "2"
        assert sbx.run_code("import os; os.environ['GREETING']").text == "hi"  # E2B's text: no repr quotes
        info = sbx.get_info()
        assert info.sandbox_id == sbx.sandbox_id
        assert info.metadata == {"purpose": "lifecycle"}
        assert info.template_id == "code-interpreter-v1"
        assert 100 <= (info.end_at - info.started_at).total_seconds() <= 130
        metrics = sbx.get_metrics()
        assert len(metrics) == 1 and metrics[0].mem_total > 0 and metrics[0].cpu_count >= 1
        # the Jupyter API sees the same sandbox, as alice's
        assert e2b_env.api("GET", f"sandboxes/{sbx.sandbox_id}").json()["owner"] == "alice"
    finally:
        assert sbx.kill() is True
    assert e2b_env.api("GET", f"sandboxes/{sbx.sandbox_id}").status_code == 404
    assert BaseSandbox.kill(sbx.sandbox_id) is False  # already gone: the SDK's "not found"


def test_list_filters_by_metadata_and_pages(e2b_env):
    made = [BaseSandbox.create(metadata={"batch": "b1", "n": str(i)}, timeout=120) for i in range(3)]
    other = BaseSandbox.create(metadata={"batch": "b2"}, timeout=120)
    try:
        mine = {s.sandbox_id for s in made}
        assert set(ids(BaseSandbox.list(query=SandboxQuery(metadata={"batch": "b1"})))) == mine
        assert ids(BaseSandbox.list(query=SandboxQuery(metadata={"batch": "b1", "n": "1"}))) == [made[1].sandbox_id]
        paginator = BaseSandbox.list(query=SandboxQuery(metadata={"batch": "b1"}), limit=2)
        first = paginator.next_items()
        assert len(first) == 2 and paginator.has_next
        second = paginator.next_items()
        assert len(second) == 1 and not paginator.has_next
        assert {s.sandbox_id for s in first + second} == mine
        assert other.sandbox_id in ids(BaseSandbox.list())
    finally:
        for s in [*made, other]:
            s.kill()


def test_timeout_ends_a_sandbox_and_set_timeout_extends_one(e2b_env):
    short = BaseSandbox.create(timeout=3)
    kept = BaseSandbox.create(timeout=3)
    kept.set_timeout(300)
    deadline = time.monotonic() + 60
    while short.sandbox_id in ids(BaseSandbox.list()):
        assert time.monotonic() < deadline, "the sandbox outlived its timeout"
        time.sleep(1)
    assert e2b_env.api("GET", f"sandboxes/{short.sandbox_id}").status_code == 404
    time.sleep(3)  # past the first deadline of `kept` too
    assert kept.is_running()
    assert kept.get_info().end_at.timestamp() > time.time() + 200
    kept.kill()


def test_connect_gives_a_working_sandbox(e2b_env):
    sbx = Sandbox.create(timeout=120)
    try:
        sbx.run_code("x = 41")
        again = Sandbox.connect(sbx.sandbox_id, timeout=200)
        assert again.sandbox_id == sbx.sandbox_id
        assert again.run_code("x + 1").text == "42"
        assert again.get_info().end_at.timestamp() > time.time() + 150
    finally:
        sbx.kill()


def test_pause_then_connect_resumes_with_the_files(e2b_env):
    """E2B's pause (runc here: files kept, not memory, docs/pause.md), its paused state in info and
    lists, and connect's auto-resume."""
    sbx = Sandbox.create(timeout=120)
    try:
        sbx.files.write("kept.txt", "still here")
        assert sbx.pause() is True
        assert sbx.pause() is False  # paused already: E2B's 409
        assert BaseSandbox.get_info(sbx.sandbox_id).state.value == "paused"
        paused = ids(BaseSandbox.list(query=SandboxQuery(state=[SandboxState.PAUSED])))
        assert sbx.sandbox_id in paused
        again = Sandbox.connect(sbx.sandbox_id)
        assert BaseSandbox.get_info(sbx.sandbox_id).state.value == "running"
        assert again.files.read("kept.txt") == "still here"
        assert again.run_code("1 + 1").text == "2"
        # mode="filesystem" (E2B's body {"memory": false}): files only, whatever the runtime keeps
        assert again.pause(mode="filesystem") is True
        r = httpx.get(
            e2b_env.url + f"sandbox/api/sandboxes/{sbx.sandbox_id}", headers={"Authorization": f"token {e2b_env.token}"}
        )
        assert (r.json()["status"], r.json()["memory_kept"]) == ("paused", False), r.text
    finally:
        sbx.kill()


def test_unknown_template_and_unsupported_routes_say_why(e2b_env):
    with pytest.raises(SandboxException, match="unknown template 'no-such'"):
        BaseSandbox.create(template="no-such")
    r = httpx.post(
        e2b_env.url + "sandbox/e2b/api/sandboxes/sbx_000000000000/snapshots", headers={"X-API-KEY": e2b_env.token}
    )
    assert r.status_code == 400 and "not supported" in r.json()["message"]
    r = httpx.get(e2b_env.url + "sandbox/e2b/api/templates", headers={"X-API-KEY": e2b_env.token})
    assert r.status_code == 404 and "not supported" in r.json()["message"]


def test_wrong_or_no_key_is_401(e2b_env, monkeypatch):
    monkeypatch.setenv("E2B_API_KEY", "e2b_" + "0" * 40)
    with pytest.raises(AuthenticationException):
        BaseSandbox.create()
    with pytest.raises(AuthenticationException):
        BaseSandbox.list().next_items()
    r = httpx.get(e2b_env.url + "sandbox/e2b/api/v2/sandboxes")
    assert r.status_code == 401 and "no credentials" in r.json()["message"]


def test_minted_keys_belong_to_their_user_and_never_reach_another_users_sandbox(e2b_env, monkeypatch):
    alices = Sandbox.create(timeout=120)  # alice: the server's token
    bob_key = mint(e2b_env, "bob")
    try:
        monkeypatch.setenv("E2B_API_KEY", bob_key)
        bobs = Sandbox.create(timeout=120)
        assert e2b_env.api("GET", f"sandboxes/{bobs.sandbox_id}", user="bob").json()["owner"] == "bob"
        assert alices.sandbox_id not in ids(BaseSandbox.list())
        assert bobs.sandbox_id in ids(BaseSandbox.list())
        with pytest.raises(NotFoundException):
            BaseSandbox.get_info(alices.sandbox_id)
        with pytest.raises(NotFoundException):
            BaseSandbox.set_timeout(alices.sandbox_id, 5)
        with pytest.raises(NotFoundException):
            BaseSandbox.connect(alices.sandbox_id)
        with pytest.raises(NotFoundException):
            BaseSandbox.get_metrics(alices.sandbox_id)
        assert BaseSandbox.kill(alices.sandbox_id) is False
        # the data plane: bob's key, or bob's sandbox's token, never opens alice's sandbox
        plane = e2b_env.url + "sandbox/e2b/plane/execute"
        for credential in ({"X-API-KEY": bob_key}, {"X-Access-Token": bobs._envd_access_token}):
            r = httpx.post(
                plane,
                json={"code": "1"},
                headers={"E2b-Sandbox-Id": alices.sandbox_id, "E2b-Sandbox-Port": "49999", **credential},
            )
            assert r.status_code == 404, r.text
        r = httpx.post(
            plane, json={"code": "1"}, headers={"E2b-Sandbox-Id": alices.sandbox_id, "E2b-Sandbox-Port": "49999"}
        )
        assert r.status_code == 401
        assert alices.run_code("1+1").text == "2"  # alice's, unharmed
        # revoked, the key opens nothing
        key_id = e2b_env.api("GET", "keys", user="bob").json()[0]["id"]
        assert e2b_env.api("DELETE", f"keys/{key_id}", user="bob").status_code == 204
        with pytest.raises(AuthenticationException):
            BaseSandbox.list().next_items()
    finally:
        alices.kill(api_key=e2b_env.token)
        e2b_env.api("DELETE", f"sandboxes/{bobs.sandbox_id}", user="bob")


def test_keys_are_listed_by_prefix_and_stored_hashed(e2b_env):
    key = mint(e2b_env, "carol")
    listed = e2b_env.api("GET", "keys", user="carol").json()
    assert [k["prefix"] for k in listed] == [key[:10]]
    assert "key" not in listed[0]
    assert e2b_env.api("GET", "keys", user="dave").json() == []
    assert e2b_env.api("DELETE", f"keys/{listed[0]['id']}", user="dave").status_code == 404
    stored = (e2b_env.data_dir / "jupyter_sandbox" / "api_keys.json").read_text()
    assert key not in stored and key[10:] not in stored


def test_deadlines_survive_a_server_restart(tmp_path, monkeypatch):
    server = JupyterServer(tmp_path, config={"SandboxApp": {"keep_sandboxes_on_stop": True}})
    monkeypatch.delenv("E2B_DEBUG", raising=False)
    monkeypatch.setenv("E2B_API_URL", server.url + "sandbox/e2b/api")
    monkeypatch.setenv("E2B_SANDBOX_URL", server.url + "sandbox/e2b/plane")
    monkeypatch.setenv("E2B_API_KEY", server.token)
    with server:
        short = BaseSandbox.create(timeout=10)
        kept = BaseSandbox.create(timeout=600)
        end_at = kept.get_info().end_at
    time.sleep(12)  # the short one's deadline passes while no server runs
    with server:
        try:
            deadline = time.monotonic() + 60
            while kept.sandbox_id not in ids(BaseSandbox.list()):  # the restarted server takes them back
                assert time.monotonic() < deadline, "the sandbox was not taken back"
                time.sleep(1)
            while short.sandbox_id in ids(BaseSandbox.list()):
                assert time.monotonic() < deadline, "a deadline passed during the restart was not enforced"
                time.sleep(1)
            assert kept.get_info().end_at == end_at
            assert kept.is_running()
        finally:
            server.api("DELETE", f"sandboxes/{kept.sandbox_id}")
            server.api("DELETE", f"sandboxes/{short.sandbox_id}")


PLANE_ROUTES = [
    ("GET", "contexts", 49999),
    ("POST", "contexts", 49999),
    ("DELETE", "contexts/ctx_000000000000", 49999),
    ("POST", "contexts/ctx_000000000000/restart", 49999),
    ("POST", "execute", 49999),
    ("GET", "health", 49983),
]
API_ROUTES = [
    ("GET", "sandboxes/{id}", None),
    ("DELETE", "sandboxes/{id}", None),
    ("POST", "sandboxes/{id}/timeout", {"timeout": 5}),
    ("POST", "sandboxes/{id}/refreshes", {"duration": 5}),
    ("POST", "sandboxes/{id}/connect", {"timeout": 5}),
    ("POST", "v2/sandboxes/{id}/connect", {"timeout": 5}),
    ("GET", "sandboxes/{id}/metrics", None),
]


@pytest.fixture(scope="module")
def two_users(server):
    """alice's sandbox (made with the server's token), and bob's key and sandbox."""
    alice = {"X-API-KEY": server.token}
    made = httpx.post(server.url + "sandbox/e2b/api/v2/sandboxes", json={"timeout": 600}, headers=alice, timeout=120)
    assert made.status_code == 201, made.text
    bob_key = mint(server, "bob")
    bob = {"X-API-KEY": bob_key}
    bobs = httpx.post(server.url + "sandbox/e2b/api/v2/sandboxes", json={"timeout": 600}, headers=bob, timeout=120)
    assert bobs.status_code == 201, bobs.text
    yield made.json(), bob_key, bobs.json()
    for sandbox_id, user in ((made.json()["sandboxID"], None), (bobs.json()["sandboxID"], "bob")):
        server.api("DELETE", f"sandboxes/{sandbox_id}", user=user)


@pytest.mark.parametrize(("method", "path", "port"), PLANE_ROUTES)
def test_plane_route_never_opens_another_users_sandbox(server, two_users, method, path, port):
    alices, bob_key, bobs = two_users
    url = server.url + "sandbox/e2b/plane/" + path
    target = {"E2b-Sandbox-Id": alices["sandboxID"], "E2b-Sandbox-Port": str(port)}
    body = {"json": {"code": "1"}} if method == "POST" else {}
    for credential in ({"X-API-KEY": bob_key}, {"X-Access-Token": bobs["envdAccessToken"]}):
        r = httpx.request(method, url, headers={**target, **credential}, timeout=60, **body)
        assert r.status_code == 404, (credential, r.text)
    assert httpx.request(method, url, headers=target, timeout=60, **body).status_code == 401
    # the owner's own token opens it (so the 404s above were the user's, not the route's)
    own = httpx.request(
        method, url, headers={**target, "X-Access-Token": alices["envdAccessToken"]}, timeout=60, **body
    )
    assert own.status_code != 404 or path.startswith("contexts/ctx_"), own.text  # a made-up context is 404


@pytest.mark.parametrize(("method", "path", "body"), API_ROUTES)
def test_api_route_never_reaches_another_users_sandbox(server, two_users, method, path, body):
    alices, bob_key, _ = two_users
    url = server.url + "sandbox/e2b/api/" + path.format(id=alices["sandboxID"])
    r = httpx.request(method, url, headers={"X-API-KEY": bob_key}, json=body, timeout=60)
    assert r.status_code == 404, r.text
    assert r.json()["code"] == 404
    # alice's sandbox is still there, its deadline untouched
    info = httpx.get(
        server.url + f"sandbox/e2b/api/sandboxes/{alices['sandboxID']}", headers={"X-API-KEY": server.token}
    ).json()
    assert info["endAt"] > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 300))


def test_a_sandbox_whose_container_is_gone_is_502_on_the_plane(e2b_env):
    sbx = Sandbox.create(timeout=120)
    try:
        subprocess.run(
            ["docker", "rm", "-f", *container_ids(sbx.sandbox_id)], check=True, capture_output=True, timeout=60
        )
        deadline = time.monotonic() + 60
        while e2b_env.api("GET", f"sandboxes/{sbx.sandbox_id}").json()["status"] != "exited":
            assert time.monotonic() < deadline, "the server did not see the container end"
            time.sleep(1)
        with pytest.raises(SandboxException, match=r"502|has ended"):
            sbx.run_code("1")
        assert not sbx.is_running()  # the SDK reads 502 from /health as "not running"
    finally:
        e2b_env.api("DELETE", f"sandboxes/{sbx.sandbox_id}")


def test_a_sandbox_killed_while_its_code_runs_is_reported_killed(e2b_env, server):
    sbx = Sandbox.create(timeout=120)
    bob_key = mint(server, "bob")
    killer = threading.Timer(3.0, sbx.kill)
    killer.start()
    try:
        # the response is cut and the health route answers 502, as E2B's proxy does: the SDK says why
        with pytest.raises(TimeoutException, match="sandbox was killed while the request was in progress"):
            sbx.run_code("import time; time.sleep(120)", timeout=100)
    finally:
        killer.cancel()
    assert not sbx.is_running()
    # only its owner (by key or by its access token) learns that it ended; to anyone else it is unknown
    health = server.url + "sandbox/e2b/plane/health"
    target = {"E2b-Sandbox-Id": sbx.sandbox_id, "E2b-Sandbox-Port": "49983"}
    assert httpx.get(health, headers={**target, "X-API-KEY": server.token}, timeout=60).status_code == 502
    assert httpx.get(health, headers={**target, "X-API-KEY": bob_key}, timeout=60).status_code == 404
    assert httpx.get(health, headers={**target, "X-Access-Token": "not-its-token"}, timeout=60).status_code == 404


def container_ids(sandbox_id: str) -> list[str]:
    found = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=org.jupyter-sandbox.sandbox={sandbox_id}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert found, f"no container for {sandbox_id}"
    return found


def test_refresh_extends_but_never_shortens(e2b_env):
    made = httpx.post(
        e2b_env.url + "sandbox/e2b/api/sandboxes", json={"timeout": 600}, headers={"X-API-KEY": e2b_env.token}
    )
    sandbox_id = made.json()["sandboxID"]
    try:
        before = BaseSandbox.get_info(sandbox_id).end_at
        url = e2b_env.url + f"sandbox/e2b/api/sandboxes/{sandbox_id}/refreshes"
        assert httpx.post(url, json={"duration": 10}, headers={"X-API-KEY": e2b_env.token}).status_code == 204
        assert BaseSandbox.get_info(sandbox_id).end_at == before
        assert httpx.post(url, json={"duration": 1200}, headers={"X-API-KEY": e2b_env.token}).status_code == 204
        assert BaseSandbox.get_info(sandbox_id).end_at.timestamp() > before.timestamp() + 300
        bad = httpx.post(url, json={"duration": -1}, headers={"X-API-KEY": e2b_env.token})
        assert bad.status_code == 400 and "duration" in bad.json()["message"]
    finally:
        BaseSandbox.kill(sandbox_id)


async def test_the_async_sdk_too(e2b_env):
    sbx = await AsyncSandbox.create(timeout=120, metadata={"flavour": "async"})
    try:
        assert (await sbx.run_code("2**10")).text == "1024"
        assert (await sbx.get_info()).metadata == {"flavour": "async"}
        await sbx.set_timeout(200)
        assert (await sbx.get_info()).end_at.timestamp() > time.time() + 150
        paginator = AsyncSandbox.list(query=SandboxQuery(metadata={"flavour": "async"}))
        assert [s.sandbox_id for s in await paginator.next_items()] == [sbx.sandbox_id]
    finally:
        assert await sbx.kill() is True
