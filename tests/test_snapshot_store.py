"""core/snapshots.py without an engine: each owner's snapshots apart, the cap, names, nothing half-kept."""

from __future__ import annotations

import os
import stat

import pytest

from jupyter_sandbox.core import snapshots
from jupyter_sandbox.core.snapshots import ArchiveStore
from jupyter_sandbox.errors import AlreadyExists, InvalidInput, NotFound, QuotaExceeded
from jupyter_sandbox.models import SandboxSpec


async def chunks(*parts: bytes):
    for part in parts:
        yield part


async def read(store: ArchiveStore, owner: str, name: str) -> bytes:
    return b"".join([c async for c in store.chunks(owner, name)])


async def test_owners_see_only_their_own_snapshots(tmp_path):
    store = ArchiveStore(str(tmp_path / "snapshots"))
    spec = SandboxSpec(memory=256 * 1024**2)
    kept = await store.save("alice", "base", "sbx_a", spec, chunks(b"tar", b"bytes"), cap=0)
    assert (kept.name, kept.owner, kept.size, kept.source, kept.spec.memory) == (
        "base",
        "alice",
        8,
        "sbx_a",
        spec.memory,
    )
    await store.save("bob", "base", "sbx_b", spec, chunks(b"bob's"), cap=0)
    assert await read(store, "alice", "base") == b"tarbytes" and await read(store, "bob", "base") == b"bob's"
    assert [s.source for s in store.list("alice")] == ["sbx_a"]
    with pytest.raises(NotFound):
        store.get("carol", "base")
    with pytest.raises(AlreadyExists):
        await store.save("alice", "base", "sbx_a", spec, chunks(b"again"), cap=0)
    store.delete("alice", "base")
    assert store.list("alice") == [] and [s.owner for s in store.list("bob")] == ["bob"]
    with pytest.raises(NotFound):
        store.delete("alice", "base")
    # private: the folders are the server user's only, and an owner's name never makes a path
    assert stat.S_IMODE(os.stat(tmp_path / "snapshots").st_mode) == 0o700
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(InvalidInput):
            await store.save("alice", bad, "sbx_a", spec, chunks(b"x"), cap=0)
    await store.save("../../etc", "ok", "sbx_c", spec, chunks(b"x"), cap=0)
    assert all(len(entry) == 32 for entry in os.listdir(tmp_path / "snapshots"))


async def test_the_cap_counts_all_of_an_owners_snapshots_and_keeps_nothing_past_it(tmp_path):
    store = ArchiveStore(str(tmp_path))
    spec = SandboxSpec()
    await store.save("alice", "one", "sbx_a", spec, chunks(b"x" * 600), cap=1000)
    with pytest.raises(QuotaExceeded, match="1000"):
        await store.save("alice", "two", "sbx_a", spec, chunks(b"y" * 300, b"y" * 300), cap=1000)
    assert [s.name for s in store.list("alice")] == ["one"]
    assert sorted(os.listdir(os.path.dirname(store._paths("alice", "one")[0]))) == ["one.json", "one.tar"]
    await store.save("bob", "two", "sbx_b", spec, chunks(b"y" * 600), cap=1000)  # bob's own share


async def test_paused_sandboxes_files(tmp_path):
    store = ArchiveStore(str(tmp_path))
    assert await store.save_paused("sbx_1", chunks(b"a", b"b"), disk=1024) == 2
    assert store.has_paused("sbx_1")
    assert b"".join([c async for c in store.paused_chunks("sbx_1")]) == b"ab"
    store.drop_paused("sbx_1")
    store.drop_paused("sbx_1")  # twice: nothing
    assert not store.has_paused("sbx_1")


async def test_a_paused_sandboxs_archive_is_held_to_what_its_disk_can_hold(tmp_path):
    # the archive is made inside the sandbox: an endless one is cut, and nothing is kept
    store = ArchiveStore(str(tmp_path))
    most = 2 * 1024 + snapshots.PAUSED_MARGIN

    async def endless():
        while True:
            yield b"x" * (1024 * 1024)

    with pytest.raises(QuotaExceeded, match="more than it can hold"):
        await store.save_paused("sbx_1", endless(), disk=1024)
    assert not store.has_paused("sbx_1") and os.listdir(tmp_path / "paused") == []
    assert await store.save_paused("sbx_1", chunks(b"y" * most), disk=1024) == most
