"""One user's stuck or huge transfers never hold up another user; transfers run in linear time."""

from __future__ import annotations

import concurrent.futures
import hashlib
import time

from attacks import ATTACKER, BYSTANDER, assert_whole, create, guarded  # noqa: F401 (guarded is a fixture)

from servers import result_text


def test_reads_of_a_fifo_never_hold_up_another_users_execute(guarded):
    server, bystander = guarded
    sandbox = create(server)
    server.execute(sandbox, "import os\nos.mkfifo('pipe')", user=ATTACKER)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        # the reported attack: six downloads of a FIFO at once, which used to wait forever
        reads = [
            pool.submit(
                server.api, "GET", f"sandboxes/{sandbox}/files", params={"path": "pipe"}, user=ATTACKER, timeout=60
            )
            for _ in range(6)
        ]
        started = time.monotonic()
        other = pool.submit(server.execute, bystander, "sum(range(10))", user=BYSTANDER)
        assert result_text(other.result(timeout=30)) == "45"
        assert time.monotonic() - started < 5.0, "another user's execute waited on the FIFO reads"
        answers = [r.result(timeout=60) for r in reads]
    assert {a.status_code for a in answers} == {400}
    assert "not a regular file" in answers[0].json()["message"]
    assert_whole(server, bystander)


def test_a_128_mb_download_takes_seconds_not_minutes(guarded):
    server, bystander = guarded
    sandbox = create(server, disk="512M")
    code = (
        "import hashlib, os\n"
        "data = os.urandom(128 * 1024 * 1024)\n"
        "open('big.bin', 'wb').write(data)\n"
        "hashlib.sha256(data).hexdigest()"
    )
    digest = result_text(server.execute(sandbox, code, user=ATTACKER)).strip("'")
    started = time.monotonic()
    r = server.api("GET", f"sandboxes/{sandbox}/files", params={"path": "big.bin"}, user=ATTACKER, timeout=120)
    elapsed = time.monotonic() - started
    assert r.status_code == 200 and len(r.content) == 128 * 1024 * 1024
    assert hashlib.sha256(r.content).hexdigest() == digest
    assert elapsed < 5.0, f"128 MB took {elapsed:.1f} s"
    assert_whole(server, bystander)


STOPPER = """
import os, signal, threading, time
stopped, stop_stopping = [], threading.Event()

def stop_listings():
    # SIGSTOP every process that runs the server's listing program (it runs as this sandbox's user)
    while not stop_stopping.is_set():
        for pid in os.listdir('/proc'):
            if pid.isdigit() and int(pid) not in stopped:
                try:
                    cmdline = open(f'/proc/{pid}/cmdline', 'rb').read()
                except OSError:
                    continue
                if b'def list_entries(' in cmdline and b'\\x00list\\x00' in cmdline:  # programs/files.py list
                    try:
                        os.kill(int(pid), signal.SIGSTOP)  # refused while it is root, before it drops to our uid
                    except PermissionError:
                        continue
                    stopped.append(int(pid))
        time.sleep(0.005)

threading.Thread(target=stop_listings, daemon=True).start()
"""


def test_a_file_command_the_sandbox_stops_is_given_up_and_frees_its_thread(guarded):
    """The sandbox stops the command that lists its files: the owner gets a 503 once the engine
    timeout (15 s here) has passed, never a request that hangs, and another user is not held up."""
    server, bystander = guarded
    sandbox = create(server)
    # The listing runs as the sandbox's user only once it has dropped root, and a small folder is
    # listed in a millisecond after that: 50,000 entries keep it there for a good part of a second,
    # which the stopper (looking every 5 ms) cannot miss.
    server.execute(
        sandbox, "import os\nos.mkdir('many')\nfor i in range(50000): open(f'many/{i:05d}', 'w').close()", user=ATTACKER
    )
    server.execute(sandbox, STOPPER, user=ATTACKER)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        started = time.monotonic()
        listing = pool.submit(
            server.api, "GET", f"sandboxes/{sandbox}/files?path=/home/user/many", user=ATTACKER, timeout=120
        )
        other = pool.submit(server.execute, bystander, "sum(range(10))", user=BYSTANDER)
        assert result_text(other.result(timeout=30)) == "45"
        answer = listing.result(timeout=120)
        elapsed = time.monotonic() - started
    assert answer.status_code == 503, answer.text
    assert "did not answer" in answer.json()["message"]
    assert 14 < elapsed < 60, f"given up after {elapsed:.1f} s"
    assert result_text(server.execute(sandbox, "len(stopped)", user=ATTACKER)) == "1"
    server.execute(sandbox, "stop_stopping.set()", user=ATTACKER)
    assert server.api("GET", f"sandboxes/{sandbox}/files", user=ATTACKER).status_code == 200
    assert_whole(server, bystander)
