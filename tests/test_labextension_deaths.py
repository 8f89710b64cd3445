"""Deaths and denials explained in the browser (issue 26): labextension/ui-tests/tests/deaths.spec.ts
and removal.spec.ts in Debian's Chromium against a real `jupyter lab` on Docker (test_labextension_ui.py's
fixture). A notebook on "Python 3 (sandboxed)" and one with %%sandbox cells: the cell that ran out of
memory says so with the limit as set, and so does the notebook's one dialog about the restart (not
JupyterLab's "appears to have died"); a fetch in a sandbox without network says why. A kernel's
sandbox removed from one page, or outside JupyterLab: every page with its notebook is left without a
kernel and offered one.
"""

from __future__ import annotations

import nbformat.v4
import pytest
from test_labextension_ui import ARTIFACTS, lab_server, need_chromium, playwright  # noqa: F401

from test_labextension import node_modules  # noqa: F401  (a fixture)

FETCH = "import urllib.request\nurllib.request.urlopen('http://example.com/', timeout=10)"
OOM = "x = bytearray(10**10)"
# removal.spec.ts: page A sets x, page B (same notebook, so same kernel) reads it; after the restart it is gone
REMOVAL_CELLS = ["x = 41\nimport socket\nprint('ready in', socket.gethostname())", "x + 1", "'x' in dir()"]
NOTEBOOKS = {
    "deaths-kernel.ipynb": (("python3-sandboxed", "Python 3 (sandboxed)"), [FETCH, OOM]),
    "deaths-magic.ipynb": (
        ("python3", "Python 3"),
        ["%load_ext jupyter_sandbox", f"%%sandbox deaths --memory 256M\n{FETCH}", f"%%sandbox deaths\n{OOM}"],
    ),
}


@pytest.mark.timeout(1200)
def test_out_of_memory_and_no_network_said_in_the_cell(lab_server, node_modules):  # noqa: F811
    need_chromium()
    for name, ((kernel, display), sources) in NOTEBOOKS.items():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in sources])
        nb.metadata["kernelspec"] = {"name": kernel, "display_name": display, "language": "python"}
        nbformat.write(nb, lab_server["root"] / name)
    stdout = playwright(lab_server, ["--grep", "@deaths"], {}, timeout=1100)
    assert "2 passed" in stdout, stdout
    for name in (
        "60-oom-kernel-light",
        "60-oom-kernel-dark",
        "61-oom-magic-light",
        "61-oom-magic-dark",
        "62-oom-dialog-light",
        "62-oom-dialog-dark",
    ):
        assert (ARTIFACTS / f"labextension-{name}.png").stat().st_size > 10_000, name


@pytest.mark.timeout(900)
def test_a_kernels_sandbox_removed_in_one_page_offers_a_restart_in_every_page(lab_server, node_modules):  # noqa: F811
    need_chromium()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in REMOVAL_CELLS])
    nb.metadata["kernelspec"] = {
        "name": "python3-sandboxed",
        "display_name": "Python 3 (sandboxed)",
        "language": "python",
    }
    nbformat.write(nb, lab_server["root"] / "removal.ipynb")
    stdout = playwright(lab_server, ["--grep", "@removal"], {}, timeout=840)
    assert "2 passed" in stdout, stdout
    print(stdout)  # the dialogs' contrast in the dark theme
    for name in (
        "90-confirm-remove-light",
        "90-confirm-remove-dark",
        "91-offer-restart-light",
        "91-offer-restart-other-page-dark",
    ):
        assert (ARTIFACTS / f"labextension-{name}.png").stat().st_size > 10_000, name
