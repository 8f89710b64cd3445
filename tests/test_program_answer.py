"""program_answer: what an in-sandbox program printed is parsed as the JSON it must be, and anything
else (code in the sandbox can tamper with a program's output) is a 502 with a message, not a crash."""

from __future__ import annotations

import json

import pytest

from jupyter_sandbox.backends.docker_files import program_answer
from jupyter_sandbox.errors import SandboxAnswerInvalid


def test_the_json_a_program_printed_is_its_answer() -> None:
    assert program_answer(b'{"name": "a.txt", "size": 3}', dict, "stat a.txt") == {"name": "a.txt", "size": 3}
    assert program_answer(b'[{"name": "a"}]\n', list, "list /home/user") == [{"name": "a"}]


@pytest.mark.parametrize(
    ("printed", "kind"),
    [
        (b"", dict),
        (b"not json at all", list),
        (b"\xff\xfe", dict),
        (b"[1, 2]", dict),
        (b'{"a": 1}', list),
        (b"null", dict),
    ],
)
def test_anything_else_is_the_sandboxs_fault(printed: bytes, kind: type) -> None:
    with pytest.raises(SandboxAnswerInvalid) as raised:
        program_answer(printed, kind, "list /home/user")
    assert raised.value.status == 502
    assert "list /home/user" in raised.value.message and kind.__name__ in raised.value.message


async def test_a_sandboxs_kernelspecs_are_checked_not_trusted() -> None:
    from jupyter_sandbox.backends.kernel_languages import KernelLanguages

    printed = {
        "r": {"argv": ["R", "--slave", "{connection_file}"], "env": {"R_HOME": "/usr/lib/R"}},
        "bash": {"argv": "not a list", "env": {}},
        "javascript": ["no", "dict"],
        "typescript": {"argv": [], "env": {}},
    }

    async def run(sandbox_id: str, argv: list[str]) -> tuple[int | None, bytes, bytes]:
        return 0, json.dumps(printed).encode() if sandbox_id == "sbx_ok" else b"[1, 2", b""

    languages = KernelLanguages(run, lambda: "python3")
    assert await languages.of("sbx_ok") == {"r": (["R", "--slave", "{connection_file}"], {"R_HOME": "/usr/lib/R"})}
    with pytest.raises(SandboxAnswerInvalid, match="its kernelspecs"):
        await languages.of("sbx_forged")
