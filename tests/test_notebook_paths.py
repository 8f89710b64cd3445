"""Issue 26: a sandbox shows the path of the notebook it goes with, found in jupyter_server's
sessions when it is listed, so a renamed notebook is followed. Through a real Jupyter server
(pytest-jupyter), a real session with a real kernel, on the Docker backend."""

from __future__ import annotations

import json
import time

import pytest
from test_handlers import API, body_of, create_sandbox, fetch, jp_server_config, server_overrides  # noqa: F401  (fixtures)

from jupyter_sandbox.models import SandboxModel, SandboxSpec
from jupyter_sandbox.server.notebook_paths import kernel_paths, notebook_path


def model(name: str, kernel_id: str | None = None) -> SandboxModel:
    now = time.time()
    return SandboxModel(
        id="sb", name=name, owner="alice", status="running", backend="docker", spec=SandboxSpec(),
        created=now, last_activity=now, kernel_id=kernel_id,
    )  # fmt: skip


def test_the_path_is_the_session_of_its_kernel_or_of_its_notebook_name():
    paths = {"0123456789abcdef-kernel": "work/a.ipynb", "fedcba987654-other": "b.ipynb"}
    assert notebook_path(model("anything", kernel_id="0123456789abcdef-kernel"), paths) == "work/a.ipynb"
    assert notebook_path(model("notebook-fedcba987654"), paths) == "b.ipynb"
    # a kernel no session holds, a name that only looks like a notebook's, a plain sandbox
    assert notebook_path(model("x", kernel_id="gone"), paths) is None
    assert notebook_path(model("notebook-fedcba98"), paths) is None
    assert notebook_path(model("notebook-000000000000"), paths) is None
    assert notebook_path(model("analysis"), paths) is None


async def test_without_a_session_manager_no_paths_and_a_failing_one_does_not_fail_the_list():
    class Broken:
        async def list_sessions(self):
            raise RuntimeError("sessions database is locked")

    assert await kernel_paths(None) == {}
    assert await kernel_paths(Broken()) == {}


@pytest.mark.timeout(300)
async def test_the_list_shows_the_notebook_path_and_follows_a_rename(jp_fetch):
    r = await fetch(
        jp_fetch, "api", "sessions", method="POST",
        body=json.dumps({"path": "first.ipynb", "type": "notebook", "name": "", "kernel": {"name": "python3"}}),
    )  # fmt: skip
    assert r.code == 201, r.body
    session = body_of(r)
    kernel_id = session["kernel"]["id"]
    try:
        # what %%sandbox and the panel's run-in-sandbox name a notebook's sandbox
        sandbox = await create_sandbox(jp_fetch, name=f"notebook-{kernel_id[:12]}")
        plain = await create_sandbox(jp_fetch, name="plain")

        def listed(sandboxes: list[dict]) -> dict[str, str | None]:
            return {s["name"]: s["notebook_path"] for s in sandboxes}

        r = await fetch(jp_fetch, *API)
        assert listed(body_of(r)) == {sandbox["name"]: "first.ipynb", "plain": None}

        r = await fetch(
            jp_fetch, "api", "sessions", session["id"], method="PATCH",
            body=json.dumps({"path": "renamed/second.ipynb"}),
        )  # fmt: skip
        assert r.code == 200, r.body
        r = await fetch(jp_fetch, *API)
        assert listed(body_of(r))[sandbox["name"]] == "renamed/second.ipynb"
        r = await fetch(jp_fetch, *API, sandbox["id"])
        assert body_of(r)["notebook_path"] == "renamed/second.ipynb"
        assert plain["notebook_path"] is None  # made, not listed: nothing to look up yet
    finally:
        await fetch(jp_fetch, "api", "sessions", session["id"], method="DELETE")
