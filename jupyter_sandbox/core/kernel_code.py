"""Code the manager runs in a sandbox's kernels, in the user's namespace: the in-sandbox programs
(backends/programs/) without their docstrings, and the call lines that use them. Their names
start with ``_jsbx_`` and are deleted when done, so the user's namespace stays clean.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from collections.abc import Iterable

from ..backends import programs
from ..errors import InvalidInput


@functools.cache
def program_code(name: str) -> str:
    """The in-sandbox program ``name`` (backends/programs/) as code for a kernel to run in the
    user's namespace: without its docstring, which would set the user's ``__doc__`` there."""
    module = ast.parse(programs.source(name))
    if ast.get_docstring(module, clean=False) is not None:
        module.body = module.body[1:]
    return ast.unparse(module)


def swap_env(env_vars: dict[str, str]) -> str:
    """Code that sets ``env_vars`` in a kernel and keeps what they replace (programs/env_vars.py)."""
    return f"{program_code('env_vars')}\n_jsbx_env = _jsbx_swap_env({env_vars!r})\ndel _jsbx_swap_env\n"


def restore_env() -> str:
    """Code that puts back what ``swap_env`` replaced, and leaves no name behind."""
    return f"{program_code('env_vars')}\n_jsbx_swap_env(_jsbx_env)\ndel _jsbx_swap_env, _jsbx_env\n"


# Other languages: the same swap done in the kernel's own language, each keeping what it replaced
# in a name of its own (bash ``_jsbx_old_NAME``, JavaScript/TypeScript ``globalThis._jsbx_env``,
# R ``.jsbx_env``) until the restore puts it back and removes that name.
_BASH_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_JS = ("javascript", "typescript")


def _bash_quoted(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def _r_strings(values: Iterable[str]) -> str:
    return "c(" + ", ".join(json.dumps(v) for v in values) + ")"


def language_swap_env(env_vars: dict[str, str], language: str) -> str:
    """Code of ``language`` that sets ``env_vars`` in its kernel and keeps what they replace."""
    if language == "python":
        return swap_env(env_vars)
    if language == "bash":
        bad = [name for name in env_vars if not _BASH_NAME.match(name)]
        if bad:
            raise InvalidInput(f"not a bash variable name: {bad[0]!r}", field="env_vars")
        return "; ".join(
            f'if [ "${{{n}+x}}" ]; then _jsbx_old_{n}="${n}"; else unset _jsbx_old_{n}; fi; export {n}={_bash_quoted(v)}'
            for n, v in env_vars.items()
        )
    if language in _JS:
        return (
            f'globalThis["_jsbx_env"] = Object.fromEntries(Object.entries({json.dumps(env_vars)}).map(([k, v]) => '
            "{ const old = Deno.env.get(k) ?? null; Deno.env.set(k, v); return [k, old]; }));"
        )
    if language == "r":
        names = _r_strings(env_vars)
        return (
            f".jsbx_env <- Sys.getenv({names}, unset = NA, names = TRUE); "
            f"do.call(Sys.setenv, setNames(as.list({_r_strings(env_vars.values())}), {names}))"
        )
    raise InvalidInput(f"environment variables per execution are not supported for {language} code", field="env_vars")


def language_restore_env(env_vars: dict[str, str], language: str) -> str:
    """Code of ``language`` that puts back what ``language_swap_env`` replaced."""
    if language == "python":
        return restore_env()
    if language == "bash":
        return "; ".join(
            f'if [ "${{_jsbx_old_{n}+x}}" ]; then export {n}="$_jsbx_old_{n}"; unset _jsbx_old_{n}; else unset {n}; fi'
            for n in env_vars
        )
    if language in _JS:
        return (
            'for (const [k, v] of Object.entries(globalThis["_jsbx_env"] ?? {})) '
            "{ if (v === null) Deno.env.delete(k); else Deno.env.set(k, v); } "
            'delete globalThis["_jsbx_env"];'
        )
    return (
        "for (.jsbx_n in names(.jsbx_env)) if (is.na(.jsbx_env[[.jsbx_n]])) Sys.unsetenv(.jsbx_n) else "
        "do.call(Sys.setenv, setNames(list(.jsbx_env[[.jsbx_n]]), .jsbx_n)); rm(.jsbx_env, .jsbx_n)"
    )
