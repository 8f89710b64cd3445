"""Which languages a container sandbox has kernels for, and how each starts: the kernelspecs of its
image, read once per sandbox from inside it (programs/kernelspecs.py). Python's kernel is the
backend's own (ipykernel, with the server's extras); the others start as their kernelspec says."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..errors import InvalidInput
from . import programs
from .docker_files import program_answer

# a kernelspec's argv (with {connection_file}) and env
KernelCommand = tuple[list[str], dict[str, str]]
# (sandbox id, argv) -> exit code, stdout, stderr of a short command run as the sandbox's user
RunCommand = Callable[[str, list[str]], Awaitable[tuple[int | None, bytes, bytes]]]


class KernelLanguages:
    def __init__(self, run: RunCommand, python: Callable[[], str]) -> None:
        self._run = run
        self._python = python
        self._found: dict[str, dict[str, KernelCommand]] = {}

    async def of(self, sandbox_id: str) -> dict[str, KernelCommand]:
        """``{language: (argv, env)}`` of the sandbox's kernels besides Python's ({} when it has none)."""
        if sandbox_id not in self._found:
            code, out, _ = await self._run(sandbox_id, [self._python(), "-I", "-c", programs.source("kernelspecs")])
            # a sandbox whose image has no such program's python: no other languages, said once
            found = program_answer(out, dict, "its kernelspecs") if code == 0 else {}
            self._found[sandbox_id] = {
                str(language): ([str(a) for a in spec["argv"]], {str(k): str(v) for k, v in spec["env"].items()})
                for language, spec in found.items()
                if _is_command(spec)  # (what a program in the sandbox prints is checked, not trusted)
            }
        return self._found[sandbox_id]

    async def command(self, sandbox_id: str, language: str) -> KernelCommand:
        """The command (and environment) that starts the sandbox's kernel of ``language``; a 400
        when it has none."""
        found = await self.of(sandbox_id)
        if language not in found:
            have = ", ".join(sorted({"python", *found}))
            raise InvalidInput(
                f"language {language!r} is not available in this sandbox (it has {have})", field="language"
            )
        return found[language]

    def forget(self, sandbox_id: str) -> None:
        self._found.pop(sandbox_id, None)


def _is_command(spec: object) -> bool:
    return (
        isinstance(spec, dict)
        and isinstance(spec.get("argv"), list)
        and bool(spec["argv"])
        and isinstance(spec.get("env"), dict)
    )
