"""One output message bigger than the link's 8 MiB, end to end on real Docker: a stream goes on in
pieces (programs/frames.py, cut in the sandbox by the launcher), so the collector keeps up to
c.SandboxManager.max_output_size and reports the rest, as it does for many small messages; a
display that cannot be split is still dropped in the sandbox and reported."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(300)
MiB = 1024**2
PRINT_20_MB = "import sys\nsys.stdout.write('x' * 20_000_000)\nsys.stdout.flush()"


async def test_one_stream_message_of_20_mb_arrives_in_pieces_up_to_max_output_size(docker_manager):
    manager = docker_manager
    default = manager.max_output_size
    model = await manager.create("gina")
    try:
        # the default: 10 MiB kept, the rest said to be dropped
        execution = await manager.execute("gina", model.id, PRINT_20_MB)
        assert "".join(execution.logs.stdout) == "x" * default
        said = "".join(execution.logs.stderr)
        assert f"{20_000_000 - default} more bytes of output were not kept" in said, said[-300:]
        # with room for it, all of it
        manager.max_output_size = 256 * MiB
        execution = await manager.execute("gina", model.id, PRINT_20_MB)
        assert "".join(execution.logs.stdout) == "x" * 20_000_000
        # in pieces of at most 2 MiB (frames.STREAM_PIECE: what the server holds of it at once)
        assert len(execution.logs.stdout) >= 10 and max(map(len, execution.logs.stdout)) <= 2 * MiB
        assert execution.logs.stderr == [] and execution.error is None
        # a display of one huge image cannot be split: dropped in the sandbox, and said so
        code = "from IPython.display import display\ndisplay({'image/png': 'A' * 9_000_000}, raw=True)"
        execution = await manager.execute("gina", model.id, code)
        (result,) = execution.results
        assert "was dropped in the sandbox" in result.text, result.text
        assert (await manager.execute("gina", model.id, "1 + 1")).text == "2"
    finally:
        manager.max_output_size = default
        await manager.remove("gina", model.id)
