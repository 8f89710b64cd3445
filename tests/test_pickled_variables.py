"""programs/pickled_variables.py, run the way %sandbox push and pull run it: as a cell's code in a
Python 3.8 (the oldest a sandbox image may have), stdlib only."""

from __future__ import annotations

import base64
import contextlib
import datetime
import io
import json
import os
import pickle
import subprocess
import sys

import pytest
from IPython.core.interactiveshell import InteractiveShell

from jupyter_sandbox.magic_errors import RemoteError, SandboxMagicError
from jupyter_sandbox.magic_variables import pull_code, pull_variables, push_code, push_variables
from jupyter_sandbox.models import Execution, ExecutionError, Logs

OLDEST = "/root/.pyenv/versions/3.8.18/bin/python"
PYTHONS = [sys.executable, *([OLDEST] if os.path.exists(OLDEST) else [])]

# a kernel's cell: the code runs in the user's namespace; report what it left there
RUN_AS_CELL = """
import json, sys
namespace = {"__name__": "__main__", "kept": 1}
exec(compile(sys.stdin.read(), "<cell>", "exec"), namespace)
print(json.dumps(sorted(k for k in namespace if k != "__builtins__")))
print(json.dumps(namespace.get("d"), default=repr))
"""


def run_as_cell(python: str, code: str) -> list[str]:
    done = subprocess.run([python, "-I", "-c", RUN_AS_CELL], input=code, capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


@pytest.mark.parametrize("python", PYTHONS)
def test_push_sets_the_variables_and_leaves_nothing_else(python):
    value = {"a": 1, "b": [1, 2]}
    data = base64.b64encode(pickle.dumps(value, protocol=4)).decode()
    names, d = run_as_cell(python, push_code({"d": data}))
    assert json.loads(names) == ["__name__", "d", "kept"]
    assert json.loads(d) == value


@pytest.mark.parametrize("python", PYTHONS)
def test_pull_prints_the_variables_pickle_and_leaves_nothing_else(python):
    code = "d = {'a': (1, 2)}\n" + pull_code("d")
    line, names, _ = run_as_cell(python, code)
    assert pickle.loads(base64.b64decode(line)) == {"a": (1, 2)}
    assert json.loads(names) == ["__name__", "d", "kept"]


def test_pull_of_a_missing_variable_fails_with_its_name():
    done = subprocess.run(
        [sys.executable, "-I", "-c", RUN_AS_CELL], input=pull_code("nope"), capture_output=True, text=True
    )
    assert done.returncode != 0 and "NameError: name 'nope' is not defined" in done.stderr


def test_a_push_in_ipython_leaves_the_users_doc_alone():
    """IPython makes any string statement of a cell the user's ``__doc__``: the program's docstring stays home."""
    shell = InteractiveShell.instance()
    doc = shell.user_ns.get("__doc__")
    data = base64.b64encode(pickle.dumps([1, 2])).decode()
    assert shell.run_cell(push_code({"pushed": data})).success
    assert shell.user_ns["pushed"] == [1, 2] and shell.user_ns.get("__doc__") == doc
    assert not [name for name in shell.user_ns if name.startswith("_jsbx")]


def runs_in(kernel: InteractiveShell):
    """A cell's code run as a sandbox's kernel runs it for the magics: its stdout and error collected."""

    def run(code: str) -> Execution:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            error = kernel.run_cell(code).error_in_exec
        failed = ExecutionError(type(error).__name__, str(error)) if error else None
        return Execution(logs=Logs(stdout=[out.getvalue()]), error=failed)

    return run


def test_variables_go_to_a_kernel_and_come_back_as_safe_types_only():
    """%sandbox push and pull as the magics do them, a real IPython shell standing for the sandbox's kernel."""
    kernel = InteractiveShell.instance()
    doc = kernel.user_ns.get("__doc__")
    notebook = {"d": {"a": (1, 2)}, "when": datetime.date(2026, 1, 2)}
    push_variables(runs_in(kernel), notebook, ["d", "when"])
    assert kernel.user_ns["d"] == {"a": (1, 2)} and kernel.user_ns["when"] == datetime.date(2026, 1, 2)
    assert kernel.run_cell("import collections\nd['b'] = 3\ncounter = collections.Counter('aab')").success
    pulled: dict = {}
    pull_variables(runs_in(kernel), pulled, ["d", "when"], trusted=False)
    assert pulled == {"d": {"a": (1, 2), "b": 3}, "when": datetime.date(2026, 1, 2)}
    with pytest.raises(SandboxMagicError, match=r"refusing to unpickle collections\.Counter"):
        pull_variables(runs_in(kernel), pulled, ["counter"], trusted=False)
    assert "counter" not in pulled
    pull_variables(runs_in(kernel), pulled, ["counter"], trusted=True)
    assert pulled["counter"] == {"a": 2, "b": 1}
    # the programs' docstrings and helpers stay out of the kernel's namespace, both ways
    assert kernel.user_ns.get("__doc__") == doc
    assert not [name for name in kernel.user_ns if name.startswith("_jsbx")]
    with pytest.raises(RemoteError) as missing:
        pull_variables(runs_in(kernel), pulled, ["nope"], trusted=False)
    assert missing.value.ename == "NameError" and "nope" not in pulled
