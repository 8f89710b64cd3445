"""Issue 26 in a real browser (labextension/ui-tests/tests/labterm.spec.ts, tagged @labterm): a
terminal in a sandbox runs `ls`; in a "Python 3 (sandboxed)" notebook, run-in-sandbox and the
terminal use the kernel's own sandbox; an ipywidgets slider there is a widget that moves. The
server is test_labextension_ui's fixture (real `jupyter lab`, Docker backend, Debian's Chromium).
"""

from __future__ import annotations

import nbformat.v4
import pytest
from test_labextension_ui import ARTIFACTS, lab_server, need_chromium, playwright  # noqa: F401

from test_labextension import node_modules  # noqa: F401  (a fixture)

KERNEL_NOTEBOOK = "labterm-kernel.ipynb"
WIDGET_NOTEBOOK = "labterm-widget.ipynb"


def sandboxed_notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in sources])
    nb.metadata["kernelspec"] = {
        "name": "python3-sandboxed",
        "display_name": "Python 3 (sandboxed)",
        "language": "python",
    }
    return nb


@pytest.mark.timeout(1200)
def test_terminal_kernel_sandbox_and_widgets_in_a_real_browser(lab_server, node_modules):  # noqa: F811
    need_chromium()
    root = lab_server["root"]
    nbformat.write(
        sandboxed_notebook(
            "open('kernel-file.txt', 'w').write('written by the kernel')",
            "import socket\nprint(socket.gethostname() + ':', open('kernel-file.txt').read())",
        ),
        root / KERNEL_NOTEBOOK,
    )
    nbformat.write(
        sandboxed_notebook(
            "import ipywidgets as w\ns = w.IntSlider(value=3, max=10)\ndisplay(s)",
            "print('value', s.value)",
        ),
        root / WIDGET_NOTEBOOK,
    )
    stdout = playwright(
        lab_server,
        ["--grep", "@labterm"],
        {"TERM_KERNEL_NOTEBOOK": KERNEL_NOTEBOOK, "TERM_WIDGET_NOTEBOOK": WIDGET_NOTEBOOK},
        timeout=1100,
    )
    assert "3 passed" in stdout, stdout
    for name in (
        "60-terminal-light",
        "60-terminal-dark",
        "61-run-in-kernel-sandbox",
        "62-terminal-in-kernel-sandbox",
        "63-widget-slider-light",
        "63-widget-slider-dark",
    ):
        assert (ARTIFACTS / f"labextension-{name}.png").stat().st_size > 10_000, name
