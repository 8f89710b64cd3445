"""The admin section of the Sandboxes panel in a real browser (issue 20): a `jupyter lab` where
the browser's user (alice) is a sandbox admin lists bob's sandbox under "All users' sandboxes"
and stops it after the confirm dialog; bob himself (no admin scope: a 403) gets no such section and
no error (labextension/ui-tests/tests/admin.spec.ts)."""

from __future__ import annotations

import json
import time

import pytest
from jupyter_server.auth.identity import User
from test_labextension_ui import ARTIFACTS, ROOT, need_chromium, playwright

from servers import HeaderUsers, JupyterServer
from test_labextension import node_modules  # noqa: F401  (a fixture)


class AdminAlice(HeaderUsers):
    """HeaderUsers, with alice (the browser's user) holding the admin scope, as the Hub service's
    identity says it (jupyter_sandbox/service/auth.py)."""

    async def get_user(self, handler):
        user: User | None = await super().get_user(handler)
        if user is not None and user.username == "alice":
            user.sandbox_admin = True  # type: ignore[attr-defined]  (what is_admin reads)
        return user


@pytest.fixture
def admin_lab(tmp_path, docker_ready):
    # no news or update prompts over the page
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    # this checkout's build of the extension (the installed one may be another checkout's):
    # the server's own data dir comes first in JupyterLab's search path
    built = ROOT / "jupyter_sandbox" / "labextension"
    assert (built / "package.json").exists(), "build it first: cd labextension && npm run build"
    (tmp_path / "data" / "labextensions").mkdir(parents=True)
    (tmp_path / "data" / "labextensions" / "jupyter-sandbox").symlink_to(built)
    server = JupyterServer(
        tmp_path,
        root_dir=tmp_path / "root",
        app="jupyterlab",
        config={
            "ServerApp": {"identity_provider_class": "test_labextension_admin_ui.AdminAlice"},
            "LabApp": {
                "user_settings_dir": str(tmp_path / "settings"),
                "workspaces_dir": str(tmp_path / "workspaces"),
                "news_url": None,
                "extension_manager": "readonly",
            },
        },
    )
    server.root_dir.mkdir()
    server.start(timeout=120)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.timeout(600)
def test_admin_sees_and_stops_another_users_sandbox(admin_lab, node_modules):  # noqa: F811
    need_chromium()
    r = admin_lab.api("POST", "sandboxes", json={"name": "bobs-work"}, user="bob")
    assert r.status_code == 201, r.text
    bobs = r.json()["id"]
    assert admin_lab.api("GET", "admin/sandboxes", user="bob").status_code == 403
    server = {"url": admin_lab.url, "token": admin_lab.token, "log": admin_lab.log_path}
    stdout = playwright(server, ["--grep", "@admin"], {"ADMIN_OTHER_ID": bobs, "ADMIN_OTHER_OWNER": "bob"}, timeout=540)
    assert "2 passed" in stdout, stdout
    # the stop reached the server: bob has no sandbox left
    deadline = time.monotonic() + 30
    while admin_lab.api("GET", "sandboxes", user="bob").json():
        assert time.monotonic() < deadline, "bob's sandbox is still there"
        time.sleep(1)
    for name in ("60-admin", "61-admin-dark"):
        assert (ARTIFACTS / f"labextension-{name}.png").stat().st_size > 10_000, name
