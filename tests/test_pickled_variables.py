"""programs/pickled_variables.py, run the way %sandbox push and pull run it: as a cell's code in a
Python 3.8 (the oldest a sandbox image may have), stdlib only."""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys

import pytest
from IPython.core.interactiveshell import InteractiveShell

from jupyter_sandbox.magics import pull_code, push_code

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
