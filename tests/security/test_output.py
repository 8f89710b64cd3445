"""Output is capped on the server: the server's memory stays flat while a sandbox prints 200 MB."""

from __future__ import annotations

from attacks import ATTACKER, assert_whole, create, guarded  # noqa: F401 (guarded is a fixture)


def test_200_mb_of_stdout_keeps_the_server_flat(guarded):
    server, bystander = guarded
    sandbox = create(server, memory="1G")
    server.execute(sandbox, "1", user=ATTACKER)  # the kernel and its connections exist before measuring
    rss_before, peak_before = server.rss()
    # in many writes, and as one 200 MB message (ipykernel sends one print as one message)
    code = "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 1_000_000)\nprint('y' * 100_000_000)"
    events = server.execute(sandbox, code, user=ATTACKER)
    _, peak_after = server.rss()
    growth = peak_after - max(peak_before, rss_before)
    kept = sum(len(e.get("text", "")) for e in events if e.get("type") == "stdout")
    said = "".join(e.get("text", "") for e in events if e.get("type") == "stderr")
    assert kept <= 4 * 1024**2, kept  # the module's max_output_size
    assert "output truncated" in said, said[-500:]
    assert events[-1] == {"type": "end_of_execution"}
    assert growth < 100 * 1024**2, f"the server's peak memory grew by {growth / 1024**2:.0f} MB"
    assert_whole(server, bystander)
