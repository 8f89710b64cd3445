"""The relay's record of the cells a kernel is running (backends/running_cells.py), and the one
description of a sandbox's limit (models.limit_text). The end-to-end side, a real kernel killed
out of memory, is in test_kernel.py and test_deaths.py."""

from __future__ import annotations

from jupyter_client.session import Session

from jupyter_sandbox.backends.programs.frames import IOPUB, SHELL
from jupyter_sandbox.backends.running_cells import RunningCells
from jupyter_sandbox.models import human_size, limit_text

KEY = "secret-key"


def test_the_limit_is_said_as_set():
    assert limit_text(1024**3, 512 * 1024**2) == "1 GiB of memory plus 512 MiB of disk"
    assert limit_text(256 * 1024**2, 1536 * 1024**2) == "256 MiB of memory plus 1.5 GiB of disk"
    assert human_size(1000) == "1000 bytes" and human_size(64 * 1024**3) == "64 GiB"


def test_the_running_cell_is_told_why_its_kernel_died_and_gets_its_reply():
    client, kernel = Session(key=KEY.encode()), Session(key=KEY.encode())
    cells = RunningCells(KEY, {})
    first = client.msg("execute_request", {"code": "x = bytearray(10**10)"})
    second = client.msg("execute_request", {"code": "print(1)"})
    cells.sent(SHELL, client.serialize(client.msg("kernel_info_request", {}), ident=[b"client"]))  # not a cell
    done = client.msg("execute_request", {"code": "1"})
    for msg in (done, first, second):
        cells.sent(SHELL, client.serialize(msg, ident=[b"client"]))
    cells.replied(
        SHELL, kernel.serialize(kernel.msg("execute_reply", {"status": "ok"}, parent=done), ident=[b"client"])
    )

    messages = cells.death_messages("The kernel died: out of memory")
    assert [kind for kind, _ in messages] == [IOPUB, IOPUB, SHELL]
    parsed = []
    for kind, frames in messages:
        identities, rest = client.feed_identities(frames)
        assert identities == ([b"client"] if kind == SHELL else [b"kernel.error"])
        parsed.append(client.deserialize(rest))  # signed with the kernel's key: checked here
    error, idle, reply = parsed
    assert all(m["parent_header"]["msg_id"] == first["header"]["msg_id"] for m in parsed)
    assert error["msg_type"] == "error" and error["content"]["evalue"] == "The kernel died: out of memory"
    assert idle["content"] == {"execution_state": "idle"}
    assert reply["msg_type"] == "execute_reply" and reply["content"]["status"] == "error"
    assert cells.death_messages("again") == []  # told once; the queued cells go with the kernel


def test_a_requested_stop_tells_no_cell():
    client = Session(key=KEY.encode())
    cells = RunningCells(KEY, {})
    cells.sent(
        SHELL, client.serialize(client.msg("execute_request", {"code": "import time; time.sleep(60)"}), ident=[b"c"])
    )
    cells.clear()
    assert cells.death_messages("stopped") == []
