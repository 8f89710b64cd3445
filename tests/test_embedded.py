"""The embedded manager (jupyter_sandbox/embedded.py): one factory, shared by the CLI, the client's
embedded connection and the kernel provisioner; client/ a pure client that imports no manager."""

from __future__ import annotations

import ast
import asyncio
import functools
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import jupyter_sandbox
from jupyter_sandbox import embedded
from jupyter_sandbox.client import connect
from jupyter_sandbox.core.manager import SandboxManager
from jupyter_sandbox.embedded import (
    EmbeddedConnection,
    embedded_manager,
    embedded_server_id,
    embedded_server_pid,
)
from jupyter_sandbox.errors import Conflict
from jupyter_sandbox.kernel.provisioner import ManagerKernelHost, SandboxProvisioner

PACKAGE = Path(jupyter_sandbox.__file__).parent


# Parsed in a child process: CPython 3.11's ast.parse keeps its recursion depth per interpreter,
# not per thread, so a parse while another thread of this test process parses or compiles can fail
# with "SystemError: AST constructor recursion depth mismatch" (seen in CI). AST nodes pickle.
_PARSE_ALL = """
import ast, pathlib, pickle, sys
root = pathlib.Path(sys.argv[1])
trees = {str(p.relative_to(root)): ast.parse(p.read_text(encoding="utf-8")) for p in sorted(root.rglob("*.py"))}
sys.stdout.buffer.write(pickle.dumps(trees))
"""


@functools.cache
def _package_trees() -> dict[str, ast.Module]:
    out = subprocess.run([sys.executable, "-c", _PARSE_ALL, str(PACKAGE)], capture_output=True, check=True).stdout
    trees: dict[str, ast.Module] = pickle.loads(out)
    return trees


def _modules(folder: Path = PACKAGE) -> dict[str, ast.Module]:
    prefix = "" if folder == PACKAGE else f"{folder.relative_to(PACKAGE)}/"
    return {name: tree for name, tree in _package_trees().items() if name.startswith(prefix)}


@pytest.fixture
def fresh(monkeypatch):
    """This process's embedded manager made anew for the test (and the earlier one back after)."""
    monkeypatch.setattr(embedded, "_EMBEDDED", None)
    for var in ("JUPYTER_SANDBOX_URL", "JUPYTERHUB_API_TOKEN", "JPY_PARENT_PID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("jupyter_server.serverapp.list_running_servers", lambda: iter([]))


def test_unit_the_factory_is_the_only_place_a_manager_is_built_outside_the_server():
    built_in = sorted(
        name
        for name, module in _modules().items()
        for node in ast.walk(module)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "SandboxManager"
    )
    assert built_in == ["embedded.py", "server/app.py"]
    # and in embedded.py, only in EmbeddedManager (which only embedded_manager() makes)
    (maker,) = [
        node.name
        for node in ast.walk(_modules()["embedded.py"])
        if isinstance(node, ast.ClassDef | ast.FunctionDef)
        and any(isinstance(n, ast.Call) and getattr(n.func, "id", "") == "EmbeddedManager" for n in ast.walk(node))
    ]
    assert maker == "embedded_manager"


def test_unit_cli_connection_and_provisioner_share_one_embedded_manager(fresh):
    chosen = embedded_manager("local")  # as `jupyter sandbox run --backend local` asks for it
    connection = connect()  # no server anywhere: a plain script's connection
    assert isinstance(connection, EmbeddedConnection) and connection.embedded is chosen
    provisioner = SandboxProvisioner()
    host = provisioner._bind()  # what launch_kernel does first, outside a server
    assert isinstance(host, ManagerKernelHost)
    assert host.manager is chosen.manager and isinstance(chosen.manager, SandboxManager)
    assert host.on_loop == chosen.call
    assert chosen.manager.backend.name == "local" and chosen.manager.server_id == embedded_server_id()
    assert asyncio.run(connection.list()) == [] and "local backend" in connection.description
    # asking again for "whatever there is" is the same; asking for another backend is refused
    assert embedded_manager() is chosen and embedded_manager("local") is chosen
    with pytest.raises(Conflict, match="'local' backend"):
        embedded_manager("docker")


def test_unit_cli_asks_the_factory_for_its_manager():
    cli = _modules()["cli.py"]
    called = {node.func.id for node in ast.walk(cli) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert "embedded_manager" in called and "SandboxManager" not in called and "set_running" not in called


def test_unit_embedded_manager_runs_coroutines_on_its_loop_from_any_loop(fresh):
    chosen = embedded_manager("local")

    async def where() -> object:
        return asyncio.get_running_loop()

    assert chosen.run(where()) is chosen.loop.loop
    assert asyncio.run(chosen.call(where())) is chosen.loop.loop


def test_unit_server_ids_of_embedded_managers():
    assert embedded_server_pid(embedded_server_id()) == os.getpid()
    assert embedded_server_pid(embedded_server_id(4242)) == 4242
    assert embedded_server_pid("inproc-some-other-host-4242") is None
    assert embedded_server_pid("a1b2c3d4") is None


def test_unit_client_is_a_pure_client():
    # importing it brings no manager, backend or embedded module
    code = (
        "import sys, jupyter_sandbox.client\n"
        "print(sorted(m for m in sys.modules if m.startswith(('jupyter_sandbox.core', "
        "'jupyter_sandbox.backends', 'jupyter_sandbox.embedded', 'jupyter_sandbox.server'))))"
    )
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert answer.stdout.strip() == "[]", answer.stdout
    # the one import of the embedded manager is the deferred one in discovery.connect
    imports = [
        (name, node.module or ", ".join(alias.name for alias in node.names), node.level, node.col_offset)
        for name, module in _modules(PACKAGE / "client").items()
        for node in ast.walk(module)
        if isinstance(node, ast.ImportFrom) and node.level >= 2
    ]
    assert all(module in ("errors", "models", "oneshot.archive", "embedded") for _, module, _, _ in imports), imports
    assert [(name, col > 0) for name, module, _, col in imports if module == "embedded"] == [
        ("client/discovery.py", True)
    ]


def test_unit_no_private_attributes_across_objects():
    """The CLI, the provisioner and the client use other objects' public names only (self's own
    private names, and IPython's ``_render_traceback_`` protocol, are fine)."""
    files = [
        "cli.py",
        "embedded.py",
        "kernel/provisioner.py",
        *(f"client/{p.name}" for p in (PACKAGE / "client").glob("*.py")),
    ]
    modules = _modules()
    crossing = [
        (name, node.lineno, node.attr)
        for name in files
        for node in ast.walk(modules[name])
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.endswith("_")
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        and not (
            isinstance(node.value, ast.Attribute)
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "self"
            and node.value.attr.startswith("_")
        )
    ]
    assert crossing == []
