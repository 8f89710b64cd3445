"""What a sandbox's kernel sends on its link is hostile (issue 27): code in the sandbox holds the
kernel's key and can publish anything on iopub. Each attack is made from inside the sandbox,
through the kernel, on runc and runsc; alice attacks, bob's sandbox must not notice.

- iopub messages the launcher's 8 MiB cut lets through at 48 MiB (JSON escapes): cut on the host;
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


def test_huge_signed_iopub_messages_are_cut_on_the_server(guarded):
    server, bystander = guarded
    sandbox = create(server, memory="1G")
    usable(server, sandbox)  # the kernel and its connections exist before measuring
    rss_before, peak_before = server.rss()
    # 4 M emoji: the launcher keeps 4 M characters, which JSON writes as 48 MiB of \\ud83d\\ude00
    code = (
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
    assert "dropped on the server" in said, [(e["type"], str(e)[:300]) for e in events]
    assert "done" in "".join(e.get("text", "") for e in events if e.get("type") == "stdout")
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
