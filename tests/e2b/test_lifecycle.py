"""E2B's lifecycle API and data plane through a real server and the real, unmodified SDKs (no
E2B_DEBUG): ``e2b`` and ``e2b_code_interpreter`` get only E2B_API_URL, E2B_SANDBOX_URL and
E2B_API_KEY. The server has two users (tests/servers.py HeaderUsers): its token is alice's.
"""

from __future__ import annotations

import time

import httpx
import pytest
from e2b import Sandbox as BaseSandbox
from e2b import SandboxQuery
from e2b.exceptions import AuthenticationException, NotFoundException, SandboxException
from e2b_code_interpreter import Sandbox

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


def test_unknown_template_and_unsupported_routes_say_why(e2b_env):
    with pytest.raises(SandboxException, match="unknown template 'no-such'"):
        BaseSandbox.create(template="no-such")
    r = httpx.post(
        e2b_env.url + "sandbox/e2b/api/sandboxes/sbx_000000000000/pause", headers={"X-API-KEY": e2b_env.token}
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
