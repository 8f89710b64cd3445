"""The stream-less watchers E2B's sync SDK polls (server/envd_watchers.py), over a scripted watch."""

from __future__ import annotations

import pytest

from jupyter_sandbox.backends.dir_watch import Batch, QueueWatch
from jupyter_sandbox.errors import NotFound, QuotaExceeded
from jupyter_sandbox.server.envd_watchers import PER_SANDBOX, Watchers


class Scripted(QueueWatch):
    """A watch whose sandbox finds ``pending`` when asked to look."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[tuple[str, str]] = []
        self.closed = False

    def look_now(self) -> None:
        found, self.pending = self.pending, []
        self.put(Batch(found, asked=True))

    async def close(self) -> None:
        self.closed = True


async def test_events_are_kept_until_asked_and_belong_to_their_owner():
    watchers = Watchers()
    watch = Scripted()
    watchers.reserve("sbx_1")
    wid = watchers.add("alice", "sbx_1", "/home/user/d", watch, False)
    watch.put(Batch([("a.txt", "create")]))  # found by a periodic look
    watch.pending = [("a.txt", "write")]  # found by the look the ask makes
    assert await watchers.events("alice", "sbx_1", wid) == [("a.txt", "create"), ("a.txt", "write")]
    assert await watchers.events("alice", "sbx_1", wid) == []
    with pytest.raises(NotFound):
        await watchers.events("bob", "sbx_1", wid)
    with pytest.raises(NotFound):
        await watchers.events("alice", "sbx_2", wid)
    await watchers.remove("alice", "sbx_1", wid)
    assert watch.closed
    with pytest.raises(NotFound):
        await watchers.events("alice", "sbx_1", wid)


async def test_a_sandbox_has_a_bounded_number_of_watches():
    watchers = Watchers()
    for _ in range(PER_SANDBOX - 1):
        watchers.reserve("sbx_1")  # streams
    watchers.reserve("sbx_1")
    wid = watchers.add("alice", "sbx_1", "/home/user", Scripted(), False)  # and a watcher
    with pytest.raises(QuotaExceeded):
        watchers.reserve("sbx_1")
    watchers.reserve("sbx_2")  # another sandbox has its own share
    await watchers.remove("alice", "sbx_1", wid)
    watchers.reserve("sbx_1")
    await watchers.close_all()


async def test_an_ended_watch_gives_its_last_events_then_goes():
    watchers = Watchers()
    watch = Scripted()
    watchers.reserve("sbx_1")
    wid = watchers.add("alice", "sbx_1", "/home/user/d", watch, False)
    watch.put(Batch([("", "remove")], last=True))  # the directory went away
    assert await watchers.events("alice", "sbx_1", wid) == [("", "remove")]
    assert watch.closed
    with pytest.raises(NotFound):
        await watchers.events("alice", "sbx_1", wid)
