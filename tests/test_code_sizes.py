"""Issue 25's rule for a house that is easy to change: no class of the package over 400 lines and
no module of core/ over 400 lines (counted as the closing notes count them: a class from its
``class`` line to its last line)."""

from __future__ import annotations

import ast
from pathlib import Path

import jupyter_sandbox

PACKAGE = Path(jupyter_sandbox.__file__).parent
LIMIT = 400


def test_no_class_of_the_package_is_over_400_lines():
    big = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > LIMIT:
                    big.append(f"{path.relative_to(PACKAGE)}: {node.name} has {lines} lines")
    assert not big, big


def test_no_module_of_core_is_over_400_lines():
    big = [
        f"{path.name} has {n} lines"
        for path in sorted((PACKAGE / "core").glob("*.py"))
        if (n := len(path.read_text().splitlines())) > LIMIT
    ]
    assert not big, big
