"""magic_options' pure parts: which options differ from a sandbox's, and the cell labels."""

from __future__ import annotations

from jupyter_sandbox.magic_options import CellNumbers, differences, mismatch_message, relabel_cells
from jupyter_sandbox.models import SandboxModel, SandboxSpec


def model(**spec) -> SandboxModel:
    return SandboxModel(
        id="abc",
        name="box",
        owner="u",
        status="running",
        backend="docker",
        spec=SandboxSpec(**spec),
        created=0,
        last_activity=0,
    )


def test_only_options_that_differ_count():
    m = model(image="jupyter-sandbox", memory=512 * 1024**2, cpus=1.0, network=False)
    same = {"image": "jupyter-sandbox:latest", "memory": "512M", "cpus": 1, "network": None}
    assert differences(same, m) == {}
    found = differences({"image": "python:3.12", "memory": "64G", "cpus": 2.0, "network": True}, m)
    assert list(found) == ["image", "memory", "cpus", "network"]
    text = mismatch_message("box", found, default=False)
    assert "exists with jupyter-sandbox, 512M, 1 CPUs, no network" in text
    assert "`%sandbox restart box --image python:3.12 --memory 64G --cpus 2.0 --network`" in text


def test_cell_labels_are_the_notebooks_and_stale_numbers_go():
    numbers = CellNumbers()
    numbers.note("abc", None, 3, 7)
    known = numbers.note("abc", None, 5, 9)
    coloured = "\x1b[36mCell\x1b[39m \x1b[32mIn[5]\x1b[39m, line 1"
    assert relabel_cells([coloured, "Cell In[3], line 2, in f", "Cell In[4]"], known) == [
        "\x1b[36mCell\x1b[39m \x1b[32mIn[9]\x1b[39m, line 1",
        "Cell In[7], line 2, in f",
        "Cell In[4]",  # not run by the magics: left as the sandbox said it
    ]
    # the sandbox's kernel restarted: its new cell 2 forgets the numbers from before
    assert numbers.note("abc", None, 2, 12) == {2: 12}
