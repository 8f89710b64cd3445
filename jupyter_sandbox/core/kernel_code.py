"""Code the manager runs in a sandbox's kernels, in the user's namespace: the in-sandbox programs
(backends/programs/) without their docstrings, and the call lines that use them. Their names
start with ``_jsbx_`` and are deleted when done, so the user's namespace stays clean.
"""

from __future__ import annotations

import ast
import functools

from ..backends import programs


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
