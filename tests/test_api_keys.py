"""core/api_keys.py: minted keys belong to one user, are stored hashed, and revoked ones open nothing."""

from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest

from jupyter_sandbox.core.api_keys import ApiKeys
from jupyter_sandbox.errors import InvalidInput, NotFound


def test_minted_keys_belong_to_their_owner_and_are_stored_hashed(tmp_path):
    keys = ApiKeys(str(tmp_path / "state" / "api_keys.json"))
    alice_key, alice_info = keys.mint("alice", "laptop")
    bob_key, _ = keys.mint("bob")
    assert alice_key.startswith("e2b_") and len(alice_key) == 44 and alice_key != bob_key
    assert keys.owner_of(alice_key) == "alice" and keys.owner_of(bob_key) == "bob"
    assert keys.owner_of("e2b_" + "0" * 40) is None
    assert [(i.id, i.prefix, i.name) for i in keys.list("alice")] == [(alice_info.id, alice_key[:10], "laptop")]
    path = tmp_path / "state" / "api_keys.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    stored = path.read_text()
    assert alice_key not in stored and hashlib.sha256(alice_key.encode()).hexdigest() in json.loads(stored)


def test_revoke_is_the_owners_only_and_final(tmp_path):
    keys = ApiKeys(str(tmp_path / "api_keys.json"))
    key, info = keys.mint("alice")
    with pytest.raises(NotFound):
        keys.revoke("bob", info.id)
    assert keys.owner_of(key) == "alice"
    keys.revoke("alice", info.id)
    assert keys.owner_of(key) is None and keys.list("alice") == []
    with pytest.raises(NotFound):
        keys.revoke("alice", info.id)


def test_a_key_minted_by_another_process_is_seen(tmp_path):
    path = str(tmp_path / "api_keys.json")
    server, cli = ApiKeys(path), ApiKeys(path)
    assert server.owner_of("e2b_x") is None  # read (and cached) before the other one writes
    key, _ = cli.mint("alice")
    assert server.owner_of(key) == "alice"


def test_a_long_name_is_refused(tmp_path):
    with pytest.raises(InvalidInput):
        ApiKeys(str(tmp_path / "k.json")).mint("alice", "x" * 101)
