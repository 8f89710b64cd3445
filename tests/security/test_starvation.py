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
