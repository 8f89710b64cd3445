"""E2B's unmodified SDK through a real JupyterHub's sandbox service: keys minted with the Hub
login, a Hub API token as a key, and one user's key never reaching another's sandbox."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from e2b import Sandbox as BaseSandbox
from e2b.exceptions import AuthenticationException, NotFoundException
from e2b_code_interpreter import Sandbox


@pytest.fixture
def e2b_at_the_service(hub: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("E2B_DEBUG", raising=False)
    monkeypatch.setenv("E2B_API_URL", hub.service_url + "sandbox/e2b/api")
    monkeypatch.setenv("E2B_SANDBOX_URL", hub.service_url + "sandbox/e2b/plane")
    return hub


def test_e2b_sdk_through_the_service_with_minted_keys_and_hub_tokens(e2b_at_the_service: Any, monkeypatch):
    hub = e2b_at_the_service
    alice_token, bob_token = hub.token_for("alice"), hub.token_for("bob")
    minted = httpx.post(
        hub.service_url + "sandbox/api/keys", json={}, headers={"Authorization": f"token {alice_token}"}, timeout=60
    )
    assert minted.status_code == 201, minted.text
    monkeypatch.setenv("E2B_API_KEY", minted.json()["key"])
    sbx = Sandbox.create(timeout=300)
    try:
        assert sbx.run_code("1+1").text == "2"
        owner = httpx.get(
            hub.service_url + f"sandbox/api/sandboxes/{sbx.sandbox_id}",
            headers={"Authorization": f"token {alice_token}"},
            timeout=60,
        ).json()["owner"]
        assert owner == hub.users["alice"]
        # a Hub API token is a key of its user: alice's sees her sandbox, bob's does not
        assert BaseSandbox.get_info(sbx.sandbox_id, api_key=alice_token).sandbox_id == sbx.sandbox_id
        with pytest.raises(NotFoundException):
            BaseSandbox.get_info(sbx.sandbox_id, api_key=bob_token)
        assert BaseSandbox.kill(sbx.sandbox_id, api_key=bob_token) is False
        r = httpx.post(
            hub.service_url + "sandbox/e2b/plane/execute",
            json={"code": "1"},
            headers={"E2b-Sandbox-Id": sbx.sandbox_id, "E2b-Sandbox-Port": "49999", "X-API-KEY": bob_token},
            timeout=60,
        )
        assert r.status_code == 404, r.text
        with pytest.raises(AuthenticationException):
            BaseSandbox.get_info(sbx.sandbox_id, api_key="not-a-token")
    finally:
        sbx.kill()
