"""Contexts in other languages than Python: E2B's names for languages, which ones a sandbox has
(its backend reads the kernelspecs of its image), and each language's default context.

As in E2B's sandbox, code sent with a language and no context runs in that language's default
context, started the first time; its id is known before then (made from the sandbox's id and the
language), so the default JavaScript context is listed before any code ran in it, as E2B lists it.
"""

from __future__ import annotations

import hashlib

from ..backends.base import SandboxBackend
from ..errors import InvalidInput
from ..models import ContextModel
from .kernels import KernelPlumbing
from .sandbox import Context, Sandbox

PYTHON = "python"
# E2B's names (and the usual short ones) for the languages the kernelspecs name
ALIASES = {"python3": PYTHON, "py": PYTHON, "js": "javascript", "ts": "typescript", "sh": "bash", "shell": "bash"}
# Besides Python's, E2B's sandbox lists a default context of these from its start (when the image has them)
LISTED_DEFAULTS = ("javascript",)


def language_name(language: str | None) -> str:
    """The language a name means: python for none, E2B's short names resolved, case ignored."""
    name = (language or PYTHON).strip().lower()
    return ALIASES.get(name, name)


def default_context_id(sandbox_id: str, language: str) -> str:
    return "ctx_" + hashlib.sha256(f"{sandbox_id}/{language}".encode()).hexdigest()[:12]


async def check_language(backend: SandboxBackend, sandbox_id: str, language: str | None) -> str:
    """The language's name when the sandbox has a kernel for it; else a 400 naming the ones it has."""
    name = language_name(language)
    if name == PYTHON:
        return name
    found = await backend.languages(sandbox_id)
    if name not in found:
        have = ", ".join(sorted({PYTHON, *found}))
        raise InvalidInput(f"language {language!r} is not available in this sandbox (it has {have})", field="language")
    return name


async def listed_contexts(backend: SandboxBackend, sandbox: Sandbox) -> list[ContextModel]:
    """The sandbox's contexts, after the default contexts E2B lists that have not started yet (first,
    as E2B's sandbox starts them first: the last listed is the last made)."""
    out = [c.model for c in sandbox.contexts.values()]
    if sandbox.is_notebook_kernel:
        return out
    found = await backend.languages(sandbox.model.id)
    pending = [
        ContextModel(id=cid, language=language)
        for language in LISTED_DEFAULTS
        if language in found and (cid := default_context_id(sandbox.model.id, language)) not in sandbox.contexts
    ]
    return [*pending, *out]


async def context_for(
    kernels: KernelPlumbing, sandbox: Sandbox, context_id: str | None, language: str | None
) -> Context:
    """The context code runs in: ``context_id``'s, or the default one of ``language`` (Python's:
    the sandbox's first), starting a language's default context the first time it is asked for."""
    sandbox_id = sandbox.model.id
    if context_id:
        if context_id in sandbox.contexts:
            return sandbox.contexts[context_id]
        found = await kernels.backend.languages(sandbox_id)
        name = next((n for n in found if default_context_id(sandbox_id, n) == context_id), None)
        if name is None:
            return sandbox.context(context_id)  # NotFound
    else:
        name = await check_language(kernels.backend, sandbox_id, language)
        if name == PYTHON:
            return sandbox.context(None)
    cid = default_context_id(sandbox_id, name)
    async with sandbox.defaults_lock:  # two first executions of a language start one kernel
        if cid not in sandbox.contexts:
            await kernels.start_context(sandbox, ContextModel(id=cid, language=name))
    return sandbox.contexts[cid]
