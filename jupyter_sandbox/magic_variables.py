"""``%sandbox push VAR...`` and ``%sandbox pull VAR...``: a notebook's variables to and from a
sandbox's kernel, as base64 pickles (programs/pickled_variables.py is the code run there).

A pull unpickles only the types of ``SAFE_GLOBALS`` unless ``SandboxMagics.pull_trusted`` is set:
unpickling anything else would run code chosen by the sandbox in this kernel.
"""

from __future__ import annotations

import ast
import base64
import functools
import io
import pickle
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError

from .backends import programs
from .magic_errors import RemoteError, SandboxMagicError
from .models import Execution

# a cell's code run in the sandbox's kernel, its output collected rather than shown
RunCode = Callable[[str], Execution]

# the last line of a push or pull: the helpers of programs/pickled_variables.py leave the user's namespace
PICKLED_VARIABLES_GONE = "del _jsbx_unpickle, _jsbx_print_pickled"


@functools.cache
def _cell_program(name: str) -> str:
    """A program's text without its module docstring: IPython makes any string statement of a cell
    the user's ``__doc__``."""
    source = programs.source(name)
    first = ast.parse(source).body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return "\n".join(source.splitlines()[first.end_lineno :])
    return source


def push_code(pickles: dict[str, str]) -> str:
    """What a sandbox's kernel runs for ``%sandbox push``: each variable set from its base64 pickle."""
    assignments = [f"{var} = _jsbx_unpickle({data!r})" for var, data in pickles.items()]
    return "\n".join([_cell_program("pickled_variables"), *assignments, PICKLED_VARIABLES_GONE])


def pull_code(var: str) -> str:
    """What a sandbox's kernel runs for ``%sandbox pull`` of one variable: its base64 pickle on stdout."""
    return "\n".join([_cell_program("pickled_variables"), f"_jsbx_print_pickled({var})", PICKLED_VARIABLES_GONE])


# Only these globals may be unpickled by ``%sandbox pull`` unless ``pull_trusted`` is set:
# unpickling anything else would run code chosen by the sandbox in this kernel.
SAFE_GLOBALS = {
    ("builtins", n)
    for n in (
        "dict",
        "list",
        "tuple",
        "set",
        "frozenset",
        "str",
        "bytes",
        "bytearray",
        "int",
        "float",
        "complex",
        "bool",
        "range",
        "slice",
    )
} | {
    ("collections", "OrderedDict"),
    ("datetime", "datetime"),
    ("datetime", "date"),
    ("datetime", "time"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
    ("decimal", "Decimal"),
    ("fractions", "Fraction"),
    ("uuid", "UUID"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in SAFE_GLOBALS:
            raise SandboxMagicError(
                f"refusing to unpickle {module}.{name} from the sandbox (it could run code in this kernel); "
                "`%config SandboxMagics.pull_trusted = True` allows any picklable object"
            )
        return super().find_class(module, name)


def push_variables(run: RunCode, namespace: dict[str, Any], names: list[str]) -> None:
    """Set the sandbox kernel's variables ``names`` to the values they have in ``namespace``."""
    pickles: dict[str, str] = {}
    for var in names:
        if not var.isidentifier():
            raise UsageError(f"{var!r} is not a variable name")
        if var not in namespace:
            raise UsageError(f"no variable {var!r} in this notebook")
        try:
            data = base64.b64encode(pickle.dumps(namespace[var])).decode()
        except Exception as e:  # unpicklable: say which variable and why
            raise SandboxMagicError(f"cannot push {var}: {type(e).__name__}: {e}") from None
        pickles[var] = data
    execution = run(push_code(pickles))
    if execution.error:
        raise RemoteError.of(execution)


def pull_variables(run: RunCode, namespace: dict[str, Any], names: list[str], *, trusted: bool) -> None:
    """Set ``namespace``'s variables ``names`` to the values they have in the sandbox's kernel, one
    by one; ``trusted`` unpickles any type."""
    for var in names:
        if not var.isidentifier():
            raise UsageError(f"{var!r} is not a variable name")
        execution = run(pull_code(var))
        if execution.error:
            raise RemoteError.of(execution)
        data = base64.b64decode("".join(execution.logs.stdout))
        namespace[var] = pickle.loads(data) if trusted else _SafeUnpickler(io.BytesIO(data)).load()
