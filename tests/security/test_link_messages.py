"""What a sandbox's kernel sends on its link is hostile (issue 27): code in the sandbox holds the
kernel's key and can publish anything on iopub. Each attack is made from inside the sandbox,
through the kernel, on runc and runsc; alice attacks, bob's sandbox must not notice.

- two signed iopub stream messages of 60 MB each (4-byte characters), after output that filled
  max_output_size: they go on in pieces of at most 8 MiB (32 MiB of each), the server says the
  rest was not kept, its memory flat (a message over 8 MiB that reaches the host anyway is cut
  there: test_relay_stream.py);
- ``raise ValueError('E' * 50_000_000)``: a bounded error, and the context still runs code;
- a malformed message (no delimiter; a bad signature): the execution ends with an error and
  ``end_of_execution``, and the context still runs code;
- a flood of small iopub messages: bob's ``1+1`` still answers within seconds.
"""

from __future__ import annotations

import threading
import time

from attacks import ATTACKER, BYSTANDER, assert_whole, create, guarded  # noqa: F401 (guarded is a fixture)

from servers import result_text

MiB = 1024**2


def usable(server, sandbox: str) -> None:
    """The attacked context still runs code."""
    assert result_text(server.execute(sandbox, "1 + 1", user=ATTACKER)) == "2"


def test_huge_signed_iopub_messages_arrive_in_pieces_within_the_output_cap(guarded):
    server, bystander = guarded
    sandbox = create(server, memory="1G")
    usable(server, sandbox)  # the kernel and its connections exist before measuring
    rss_before, peak_before = server.rss()
    # 15 M emoji, 60 MB of UTF-8 each: pieces of 2 M emoji (the launcher splits by encoded size).
    # The output kept is the 4 MiB printed first: kept emoji would only measure the REST answer.
    code = (
        "import sys\n"
        "print('x' * 5 * 1024 * 1024)\n"
        "sys.stdout.flush()\n"
        "k = get_ipython().kernel\n"
        "for _ in range(2):\n"
        "    k.session.send(k.iopub_socket, 'stream', {'name': 'stdout', 'text': '\\U0001F600' * 15_000_000},"
        " parent=get_ipython().parent_header)\n"
        "print('done')"
    )
    events = server.execute(sandbox, code, user=ATTACKER)
    _, peak_after = server.rss()
    growth = peak_after - max(peak_before, rss_before)
    said = "".join(e.get("text", "") for e in events if e.get("type") == "stderr")
    # (until issue 25 both messages were cut to a note, on the server, and 'done' was kept)
    assert "output truncated" in said, [(e["type"], str(e)[:300]) for e in events]
    kept = "".join(e.get("text", "") for e in events if e.get("type") == "stdout")
    assert kept == "x" * 4 * MiB  # the module's max_output_size
    assert not [e for e in events if e.get("type") == "error"], "the code ran to its end"
    assert events[-1] == {"type": "end_of_execution"}
    assert growth < 100 * MiB, f"the server's peak memory grew by {growth / MiB:.0f} MiB"
    usable(server, sandbox)
    assert_whole(server, bystander)


def test_a_50_mb_exception_is_bounded_and_the_context_stays_usable(guarded):
    server, bystander = guarded
    sandbox = create(server, memory="1G")
    usable(server, sandbox)
    rss_before, peak_before = server.rss()
    started = time.monotonic()
    events = server.execute(sandbox, "raise ValueError('E' * 50_000_000)", user=ATTACKER)
    took = time.monotonic() - started
    _, peak_after = server.rss()
    growth = peak_after - max(peak_before, rss_before)
    errors = [e for e in events if e.get("type") == "error"]
    assert errors, events
    size = sum(len(str(e)) for e in events)
    assert size < 1 * MiB, f"the execution's events hold {size} bytes"
    assert events[-1] == {"type": "end_of_execution"}
    assert growth < 100 * MiB, f"the server's peak memory grew by {growth / MiB:.0f} MiB"
    assert took < 60, took
    usable(server, sandbox)
    assert_whole(server, bystander)


MALFORMED = {
    "no delimiter": "k.iopub_socket.send_multipart([b'kernel.x.stream', b'garbage'])",
    "bad signature": (
        "import json\n"
        "header = {'msg_id': 'm1', 'msg_type': 'stream', 'username': 'u', 'session': 's', 'version': '5.3',"
        " 'date': '2026-01-01T00:00:00Z'}\n"
        "parent = dict(get_ipython().parent_header)\n"
        "frames = [json.dumps(x, default=str).encode() for x in (header, parent, {}, {'name': 'stdout', 'text': 'forged'})]\n"
        "k.iopub_socket.send_multipart([b'kernel.x.stream', b'<IDS|MSG>', b'0' * 64, *frames])"
    ),
}


def test_a_malformed_iopub_message_ends_its_execution_with_an_error(guarded):
    server, bystander = guarded
    sandbox = create(server)
    for name, send in MALFORMED.items():
        code = f"import time\nk = get_ipython().kernel\nprint('before')\ntime.sleep(0.5)\n{send}\ntime.sleep(2)"
        events = server.execute(sandbox, code, user=ATTACKER)
        errors = [e for e in events if e.get("type") == "error"]
        assert [e["name"] for e in errors] == ["MalformedMessage"], (name, events)
        assert "forged" not in str(events), name
        assert events[-1] == {"type": "end_of_execution"}, name
        usable(server, sandbox)
    assert_whole(server, bystander)


def test_a_flood_of_iopub_messages_costs_its_owner_not_the_server(guarded):
    server, bystander = guarded
    sandbox = create(server)
    usable(server, sandbox)
    flood = (
        "import time\n"
        "k, parent = get_ipython().kernel, get_ipython().parent_header\n"
        "end = time.time() + 15\n"
        "while time.time() < end:\n"
        "    k.session.send(k.iopub_socket, 'stream', {'name': 'stdout', 'text': 'x' * 1000}, parent=parent)\n"
    )
    done: list = []

    def attack() -> None:
        try:
            done.append(server.execute(sandbox, flood, user=ATTACKER))
        except Exception as e:
            done.append(e)

    attacker = threading.Thread(target=attack)
    attacker.start()
    try:
        time.sleep(3)  # the flood is under way
        took = []
        for _ in range(10):
            started = time.monotonic()
            assert result_text(server.execute(bystander, "1 + 1", user=BYSTANDER)) == "2"
            took.append(time.monotonic() - started)
    finally:
        attacker.join(120)
    assert max(took) < 3.0, f"bob's 1+1 took up to {max(took):.2f} s during the flood: {took}"
    assert done and isinstance(done[0], list), done
    assert done[0][-1] == {"type": "end_of_execution"}
    usable(server, sandbox)
    assert_whole(server, bystander)


LINK_FLOOD = """
import os, time
def launcher(p):
    try:
        return b'-I' in open(f'/proc/{p}/cmdline', 'rb').read()
    except OSError:
        return False
pids = [p for p in os.listdir('/proc') if p.isdigit() and p != str(os.getpid()) and launcher(p)]
try:
    fd = os.open(f'/proc/{pids[0]}/fd/1', os.O_WRONLY)
except (OSError, IndexError) as e:
    print('link closed to this code:', e)
else:
    payload = b'{"event": "x\\\\nFORGED root logged in"}'
    evil = bytes([255, 0, 0, 0, 1]) + len(payload).to_bytes(4, 'big') + payload
    chunk = (bytes([255, 0, 0, 0, 0]) * 1000 + evil) * 20
    end = time.time() + 8
    while time.time() < end:
        os.write(fd, chunk)
    print('flooded')
"""


def test_control_frames_written_into_the_link_are_read_at_the_relays_pace(guarded):
    """Where code can reach the launcher's stdout (the same uid), it writes empty control frames and
    forged events as fast as it can: the server's log grows by a few lines, none of them forged,
    and bob's 1+1 still answers within seconds."""
    server, bystander = guarded
    sandbox = create(server)
    usable(server, sandbox)
    logged = server.log_path.stat().st_size
    done: list = []
    # alice's own link may stay stuck behind what she wrote (her cost): nobody waits for her execute
    attacker = threading.Thread(
        target=lambda: done.append(server.execute(sandbox, LINK_FLOOD, user=ATTACKER)), daemon=True
    )
    attacker.start()
    time.sleep(2)
    took = []
    for _ in range(5):
        started = time.monotonic()
        assert result_text(server.execute(bystander, "1 + 1", user=BYSTANDER)) == "2"
        took.append(time.monotonic() - started)
    attacker.join(10)  # the flood lasts 8 s
    with open(server.log_path, "rb") as f:
        f.seek(logged)
        lines = f.read().decode(errors="replace").splitlines()
    assert max(took) < 3.0, took
    assert len(lines) < 100, lines[:120]
    assert not [line for line in lines if line.startswith("FORGED")], lines
    assert_whole(server, bystander)
