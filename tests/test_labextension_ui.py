"""The labextension in a real browser: Playwright drives Debian's headless Chromium against a
real `jupyter lab` (Docker backend). Screenshots land in test-artifacts/.

The fixture starts the server on a free port with a random token and its own runtime and
data directories (so the magics in its kernels find this server and no other), writes the
notebooks the specs open, and always stops it (its extension removes the sandboxes it made
on shutdown; conftest checks none are left). The specs in labextension/ui-tests/tests:
the whole story (sandbox.spec.ts), the panel (panel.spec.ts), sandbox cells (cells.spec.ts),
one sandbox per notebook shared with %%sandbox (shared.spec.ts), and a notebook on the
"Python 3 (sandboxed)" kernel picked in the launcher, listed in the panel as a notebook kernel
(kernel.spec.ts). keys.spec.ts (issue 22) mints, uses and revokes an API key in the panel.
untrusted.spec.ts (issue 27) has a test and a server of its own: active
outputs from a sandbox, on every route, never run in the page.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat.v4
import pytest

from conftest import IN_CI
from servers import server_config
from test_labextension import node_modules  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parent.parent
LABEXT = ROOT / "labextension"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
NOTEBOOK = "sandbox-ui.ipynb"
# cells.spec.ts: the first cell becomes a sandbox cell; Run All must not run it locally
CELLS_NOTEBOOK = [
    "in_sandbox = 'yes, in the sandbox'",
    "print('local kernel has in_sandbox:', 'in_sandbox' in globals())",
]
STOP_NOTEBOOK = ["import time\nprint('sleeping', flush=True)\ntime.sleep(600)"]
# shared.spec.ts: %%sandbox and "Run cell in sandbox" use the same sandbox
SHARED_NOTEBOOK = ["%load_ext jupyter_sandbox", "%%sandbox\nshared = 41", "shared + 1"]
# running.spec.ts (issue 26): a %%sandbox sandbox named by its notebook, renamed there
LABRUN_NOTEBOOK = ["%load_ext jupyter_sandbox", "%%sandbox\nprint('in the sandbox')"]

# untrusted.spec.ts (issue 27): for each route an output can take out of a sandbox, one notebook
# with one cell per kind of active content. Each payload, if it ever ran in the page, would fetch
# /jsbx-pwned-<route>-<kind> and write jsbx-pwned-<route>-<kind>.txt through the Contents API
# with the user's login (what a real attack does next: start a host kernel).
UNTRUSTED_ROUTES = {
    # the notebook's whole kernel runs in a sandbox
    "kernel": ("python3-sandboxed", "Python 3 (sandboxed)", "", ""),
    # %%sandbox republishes the sandbox's MIME bundle in the host kernel (%remote_eval: a value's repr)
    "magic": (
        "python3",
        "Python 3",
        "%load_ext jupyter_sandbox\n%remote_eval \"<img src=x onerror=fetch('/jsbx-pwned-magic-remote-eval')>\"",
        "%%sandbox\n",
    ),
    # cells carrying the run-in-sandbox mark, in a notebook file someone sent (Run All runs them)
    "marked": ("python3", "Python 3", "", ""),
}
ACTIVE_KINDS = (
    "javascript",
    "html-script",
    "html-onerror",
    "svg",
    "svg-inline",
    "markdown",
    "widget",
    "bokeh",
)


def pwn_js(marker: str) -> str:
    """JavaScript that proves it ran: a request for the marker URL, then a file written as the user."""
    return (
        f"(function(){{var m='{marker}';fetch('/'+m);"
        "var x=(document.cookie.match(/_xsrf=([^;]*)/)||[])[1]||'';"
        "fetch('/api/contents/'+m+'.txt',{method:'PUT',headers:{'Content-Type':'application/json',"
        "'X-XSRFToken':decodeURIComponent(x)},body:JSON.stringify({type:'file',format:'text',content:'pwned'})})})()"
    )


def active_cell(route: str, kind: str) -> str:
    """The code of a cell that displays active content of `kind` (double-quote free JS in attributes)."""
    js = pwn_js(f"jsbx-pwned-{route}-{kind}")
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20" onload="{js}"><script>{js}</script></svg>'
    bundles = {
        "javascript": {"application/javascript": js},
        "html-script": {"text/html": f"<b>html</b><script>{js}</script>"},
        "html-onerror": {"text/html": f'<img src="x" onerror="{js}">'},
        "svg": {"image/svg+xml": svg},
        "svg-inline": {"text/html": svg},
        "markdown": {"text/markdown": f'**md**\n\n<img src="x" onerror="{js}">\n\n<script>{js}</script>\n'},
        # what bokeh's show() publishes: its renderer runs the bundle's JavaScript
        "bokeh": {"application/vnd.bokehjs_exec.v0+json": "", "application/javascript": js},
    }
    if kind == "widget":
        value = f'<img src="x" onerror="{js}">'
        code = f"import ipywidgets\ndisplay(ipywidgets.HTML(value={value!r}))"
    else:
        code = f"display({bundles[kind]!r}, raw=True)"
    return UNTRUSTED_ROUTES[route][3] + code


def untrusted_notebook(route: str) -> nbformat.NotebookNode:
    """Cell 0 prepares (may be empty), then one cell per kind in ACTIVE_KINDS' order."""
    kernel, display_name, setup, _ = UNTRUSTED_ROUTES[route]
    cells = [nbformat.v4.new_code_cell(setup or "print('ready')")]
    cells += [nbformat.v4.new_code_cell(active_cell(route, kind)) for kind in ACTIVE_KINDS]
    if route == "marked":
        for cell in cells:
            cell.metadata["jupyter_sandbox"] = {"run_in_sandbox": True}
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": display_name, "language": "python"}
    return nb


CELL_PLOT = """\
import os
import matplotlib.pyplot as plt
open("hello.txt", "w").write("hi from the sandbox")
os.makedirs("out", exist_ok=True)
open("out/data.csv", "w").write("1,2,3,4")
print("hello from the sandbox in", os.getcwd())
plt.plot([1, 4, 9, 16])
plt.show()"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab_server(tmp_path, docker_ready):
    root = tmp_path / "root"
    root.mkdir()
    notebooks = {
        NOTEBOOK: [CELL_PLOT, "1 / 0"],
        "cells.ipynb": CELLS_NOTEBOOK,
        "stop.ipynb": STOP_NOTEBOOK,
        "shared.ipynb": SHARED_NOTEBOOK,
        "labrun.ipynb": LABRUN_NOTEBOOK,
    }
    for name, sources in notebooks.items():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in sources])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, root / name)
    for route in UNTRUSTED_ROUTES:
        nbformat.write(untrusted_notebook(route), root / f"untrusted-{route}.ipynb")
    # this checkout's build of the extension (the installed one may be another checkout's): the
    # server's own data dir (JUPYTER_DATA_DIR below) comes first in JupyterLab's search path
    built = ROOT / "jupyter_sandbox" / "labextension"
    assert (built / "package.json").exists(), "build it first: cd labextension && npm run build"
    (tmp_path / "data" / "labextensions").mkdir(parents=True)
    (tmp_path / "data" / "labextensions" / "jupyter-sandbox").symlink_to(built)
    # Fresh lab settings: no news/update prompts over the page, no workspace of an earlier run.
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    port, token = free_port(), secrets.token_hex(16)
    config = tmp_path / "jupyter_server_config.json"
    config.write_text(
        json.dumps(
            {
                "ServerApp": {
                    "jpserver_extensions": {"jupyter_sandbox": True},
                    "ip": "127.0.0.1",
                    "port": port,
                    "port_retries": 0,
                    "open_browser": False,
                    "root_dir": str(root),
                    "allow_root": True,  # CI runs as root
                },
                "IdentityProvider": {"token": token},
                "LabApp": {
                    "user_settings_dir": str(tmp_path / "settings"),
                    "workspaces_dir": str(tmp_path / "workspaces"),
                    "news_url": None,
                    "extension_manager": "readonly",  # no PyPI look-ups from the page
                },
                **{k: v for k, v in server_config().items() if k != "ServerApp"},
            }
        )
    )
    log_path = tmp_path / "jupyter-lab.log"
    log = log_path.open("w")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    env.pop("JUPYTER_SANDBOX_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", f"--config={config}"],
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"jupyter lab exited:\n{log_path.read_text()}"
            try:
                with urllib.request.urlopen(f"{url}api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"jupyter lab did not answer:\n{log_path.read_text()}"
            time.sleep(0.5)
        yield {"url": url, "token": token, "log": log_path, "root": root}
    finally:
        # SIGTERM: the server shuts down its extensions, which remove their sandboxes.
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing (scripts/test.sh installs Debian's chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    ARTIFACTS.mkdir(exist_ok=True)


def playwright(lab_server: dict, args: list[str], env: dict[str, str], timeout: float) -> str:
    """Run the specs against the fixture's server; their output, or the test fails with the server's log."""
    env = {
        **os.environ,
        "JUPYTER_URL": lab_server["url"],
        "JUPYTER_TOKEN": lab_server["token"],
        "ARTIFACTS": str(ARTIFACTS),
        "CHROMIUM": CHROMIUM,
        **env,
    }
    r = subprocess.run(
        ["npx", "playwright", "test", "-c", "ui-tests/playwright.config.ts", *args],
        cwd=LABEXT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if r.returncode != 0:
        server_log = lab_server["log"].read_text()[-6000:]
        pytest.fail(f"playwright failed ({r.returncode}):\n{r.stdout}\n{r.stderr}\n--- server log ---\n{server_log}")
    return r.stdout


@pytest.mark.timeout(1500)
def test_panel_and_run_cell_in_a_real_browser(lab_server, node_modules):  # noqa: F811 (the imported fixture)
    need_chromium()
    from jupyter_sandbox.client import OneShot

    # a long one-shot for the panel to list and kill
    oneshot_id = OneShot(lab_server["url"], lab_server["token"]).execute_async(
        files={"main.py": "import time\ntime.sleep(600)\n"}
    )
    # untrusted.spec.ts, keys.spec.ts, running.spec.ts and copyfile.spec.ts have their own tests (below);
    # labterm.spec.ts, deaths.spec.ts and removal.spec.ts theirs in test_labextension_term.py and
    # test_labextension_deaths.py
    stdout = playwright(
        lab_server,
        ["--grep-invert", "@untrusted|@keys|@labrun|@labterm|@deaths|@removal|@labcopy|@pause|@volumes"],
        {"NOTEBOOK": NOTEBOOK, "ONESHOT_ID": oneshot_id},
        timeout=1400,
    )
    assert "5 passed" in stdout, stdout
    print(stdout)  # the specs' measurements (event latency, contrast ratios, Stop latency)
    for name in (
        "01-field-error",
        "02-created",
        "03-cell-output",
        "04-files-download",
        "05-removed",
        "06-docs",
        "panel-light",
        "panel-dark",
        "10-panel-light",
        "10-panel-dark",
        "11-logs",
        "20-run-all-marked",
        "21-sandbox-cell-running",
        "22-stopped",
        "30-shared",
        "31-shared-after-rename",
        "40-sandboxed-kernel",
        "41-confirm-remove-light",
        "42-offer-restart-light",
    ):
        assert (ARTIFACTS / f"labextension-{name}.png").stat().st_size > 10_000, name


@pytest.mark.timeout(600)
def test_sandbox_outputs_never_run_script_in_the_page(lab_server, node_modules):  # noqa: F811
    """Issue 27: every kind of active content, through every route out of a sandbox, in a real
    Chromium: no payload's request leaves the page, no file is written, the note is shown."""
    need_chromium()
    stdout = playwright(lab_server, ["--grep", "@untrusted"], {"ACTIVE_KINDS": ",".join(ACTIVE_KINDS)}, timeout=540)
    assert f"{len(UNTRUSTED_ROUTES)} passed" in stdout, stdout
    print(stdout)
    # what a payload that ran would have left on the server: its file, and its request in the log
    assert sorted(p.name for p in lab_server["root"].glob("jsbx-pwned*")) == []
    assert "jsbx-pwned" not in lab_server["log"].read_text()
    for route in UNTRUSTED_ROUTES:
        assert (ARTIFACTS / f"labextension-50-untrusted-{route}.png").stat().st_size > 10_000, route


@pytest.mark.timeout(600)
def test_api_key_minted_used_and_revoked_in_the_panel(lab_server, node_modules):  # noqa: F811
    """Issue 22: a key minted from the panel's toolbar is shown once with its exports and listed by its
    prefix; E2B's lifecycle API answers it 200, and 401 once it is revoked in the panel."""
    need_chromium()
    stdout = playwright(lab_server, ["--grep", "@keys"], {}, timeout=540)
    assert "1 passed" in stdout, stdout
    print(stdout)  # the secret's contrast in the dark theme
    for name in ("70-key-minted-dark", "71-key-revoked-dark"):
        assert (ARTIFACTS / f"labextension-{name}.png").stat().st_size > 10_000, name


@pytest.mark.timeout(400)
def test_a_row_menu_pauses_and_resumes_a_sandbox(lab_server, node_modules):  # noqa: F811
    """Issue 23 (pause.spec.ts): Pause and Resume in a sandbox row's menu, the paused badge."""
    need_chromium()
    stdout = playwright(lab_server, ["--grep", "@pause"], {}, timeout=360)
    assert "1 passed" in stdout, stdout
    assert (ARTIFACTS / "labextension-90-paused-light.png").is_file()


@pytest.mark.timeout(900)
def test_running_panel_row_menus_logs_tab_and_notebook_names(lab_server, node_modules):  # noqa: F811
    """Issue 26: sandboxes in JupyterLab's Running panel (open, remove, Shut Down All), a row's
    right-click menu opening its logs in a main-area tab, a %%sandbox sandbox named by its notebook
    after a rename."""
    need_chromium()
    stdout = playwright(lab_server, ["--grep", "@labrun"], {}, timeout=840)
    assert "3 passed" in stdout, stdout
    print(stdout)
    for name in (
        "80-running-light",
        "80-running-dark",
        "81-row-menu-light",
        "82-logs-tab-light",
        "82-logs-tab-dark",
        "83-named-by-notebook-light",
    ):
        assert (ARTIFACTS / f"labextension-{name}.png").stat().st_size > 10_000, name


@pytest.mark.timeout(600)
def test_one_shot_code_and_copying_a_sandbox_file_into_the_workspace(lab_server, node_modules):  # noqa: F811
    """Issue 26: a one-shot row shows the code it ran (light and dark), and a sandbox's file is
    copied into the workspace from the panel (its right-click menu, the row's command asking for
    the path), listed by the file browser with the same bytes, replaced only when the user says so."""
    need_chromium()
    stdout = playwright(lab_server, ["--grep", "@labcopy"], {}, timeout=540)
    assert "2 passed" in stdout, stdout
    print(stdout)
    for name in (
        "90-one-shot-code-light",
        "90-one-shot-code-dark",
        "91-copy-file-menu-light",
        "92-copied-file-light",
        "93-replace-dialog-light",
    ):
        assert (ARTIFACTS / f"labextension-{name}.png").stat().st_size > 10_000, name
