"""The magics on a newcomer's first day (issue 26): options never silently ignored, subcommands on
the notebook's own sandbox, a sandbox file copied into the workspace, and remote tracebacks that
name the notebook's cells. Real notebooks run by nbclient in a real ipykernel, against the real
server with the Docker backend (``sandbox_server``)."""

from __future__ import annotations

import re

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook
from test_magics import kernel_env, outputs_of, stream_text

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_cells(cells: list[str], server, tmp_path) -> list:
    """The cells run in order in one notebook kernel whose working directory is ``tmp_path`` (the
    notebook's folder); each cell's outputs, errors included (the run goes on after one)."""
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    client = NotebookClient(
        nb, timeout=180, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=kernel_env(server))
    nbformat.validate(nb)
    return nb.cells


def error_text(cell) -> str:
    (err,) = outputs_of(cell, "error")
    return ANSI.sub("", "\n".join(err.traceback))


def result(cell) -> str:
    (out,) = outputs_of(cell, "execute_result")
    return out.data["text/plain"]


def test_options_that_differ_fail_and_restart_recreates(sandbox_server, tmp_path):
    cells = [
        "%load_ext jupyter_sandbox",
        "%%sandbox --memory 256M\nx = 1\nprint('made')",
        "%%sandbox --memory 256m --cpus 1\nprint('same settings run')",
        "%%sandbox --memory 384M --network\nprint('must not run')",
        "%%sandbox --cpus 0.5\nprint('must not run')",
        "%%sandbox --image python:3.12-slim\nprint('must not run')",
        "%%sandbox --timeout 2\nimport time\ntime.sleep(30)\nprint('must not finish')",
        "%sandbox restart --memory 320M --cpus 0.5",
        "%%sandbox --memory 320M --cpus 0.5\nprint('x' in globals())\ny = 2",
        "%sandbox status",
        "%sandbox restart --memory lots",
        "%%sandbox\nprint(y)",
        "%sandbox status --memory 1G",
        "%sandbox restart --network",  # this server allows no network: refused, made again as it was
        "%sandbox status",
    ]
    c = run_cells(cells, sandbox_server, tmp_path)
    assert "made" in stream_text(c[1]), c[1].outputs
    assert "same settings run" in stream_text(c[2]), c[2].outputs
    # memory and network differ: the cell fails, nothing ran, and it says how to get them
    message = error_text(c[3])
    assert "must not run" not in stream_text(c[3])
    assert "exists with 256M, no network" in message, message
    assert "`%sandbox restart --memory 384M --network` recreates it" in message
    assert "files and variables are lost" in message and "`%%sandbox NEW-NAME --memory 384M --network`" in message
    assert "exists with 1 CPUs" in error_text(c[4]) and "--cpus 0.5" in error_text(c[4])
    assert "--image python:3.12-slim" in error_text(c[5]) and "must not run" not in stream_text(c[5])
    # the timeout applies to the live sandbox: the run is cut short
    assert outputs_of(c[6], "error"), c[6].outputs
    assert "must not finish" not in stream_text(c[6])
    # restart with options: recreated with them, and empty
    assert "with image" in stream_text(c[7]) and "320M memory, 0.5 CPUs" in stream_text(c[7]), c[7].outputs
    assert "variables and files are reset" in stream_text(c[7])
    assert stream_text(c[8]).strip() == "False", c[8].outputs
    assert "320M memory, 0.5 CPUs" in stream_text(c[9]), c[9].outputs
    # a bad size is caught before the sandbox goes: its variables are still there
    assert "memory must be a size such as 512M" in error_text(c[10])
    assert stream_text(c[11]).strip() == "2", c[11].outputs
    assert "go with %sandbox restart" in stream_text(c[12], "stderr") + str(c[12].outputs)
    refused = error_text(c[13])
    assert "does not allow sandboxes with network access" in refused and "made again with its old settings" in refused
    assert "320M memory, 0.5 CPUs, network off" in stream_text(c[14]), c[14].outputs


def test_subcommands_default_to_the_notebooks_sandbox_and_pull_copies_files(sandbox_server, tmp_path):
    (tmp_path / "kept.txt").write_text("the notebook's own")
    cells = [
        "%load_ext jupyter_sandbox",
        "local_df = {'a': [1, 2]}\n%sandbox push local_df",
        "%%sandbox\nlocal_df['b'] = 3\nopen('result.txt', 'w').write('from the sandbox')\n"
        "open('kept.txt', 'w').write('from the sandbox')\nimport os\nos.mkdir('out')",
        "%sandbox status",
        "%sandbox files",
        "del local_df\n%sandbox pull local_df\nlocal_df",
        "%sandbox pull result.txt",
        "%sandbox pull kept.txt",
        "%sandbox pull result.txt copies/",
        "%sandbox pull ./result.txt renamed.txt --force",
        "%config SandboxMagics.pull_max_size = 4\n%sandbox pull result.txt big.txt",
        "%sandbox pull out",
        "%sandbox pull ./out",
        "%%sandbox named-one\nz = 5",
        "%sandbox pull named-one z\nz",
        "%sandbox status named-one",
        "%sandbox files --name named-one",
        "%sandbox kill named-one",
    ]
    c = run_cells(cells, sandbox_server, tmp_path)
    assert re.search(r"pushed local_df to notebook-\S+", stream_text(c[1])), c[1].outputs
    assert not outputs_of(c[2], "error"), c[2].outputs
    assert re.match(r"notebook-\S+ \(", stream_text(c[3])) and "running" in stream_text(c[3]), c[3].outputs
    assert "result.txt" in stream_text(c[4]) and "out/" in stream_text(c[4]), c[4].outputs
    assert result(c[5]) == "{'a': [1, 2], 'b': 3}"
    # a file into the notebook's folder; an existing one is not overwritten
    assert "copied result.txt from notebook-" in stream_text(c[6]), c[6].outputs
    assert (tmp_path / "result.txt").read_text() == "from the sandbox"
    assert "kept.txt exists: nothing copied (--force overwrites it)" in error_text(c[7])
    assert (tmp_path / "kept.txt").read_text() == "the notebook's own"
    assert (tmp_path / "copies" / "result.txt").read_text() == "from the sandbox", c[8].outputs
    assert (tmp_path / "renamed.txt").read_text() == "from the sandbox", c[9].outputs
    assert "over the 4 pull limit: nothing copied" in error_text(c[10]), c[10].outputs
    assert not (tmp_path / "big.txt").exists()
    # `out` is a Python name, so a variable (there is none); ./out is the folder, which pull refuses
    assert "NameError" in error_text(c[11]) and "out" in error_text(c[11])
    assert "is a folder in the sandbox" in error_text(c[12])
    # explicit names keep working: a first word naming a sandbox, or --name
    assert result(c[14]) == "5"
    assert stream_text(c[15]).startswith("named-one (")
    assert not outputs_of(c[16], "error"), c[16].outputs
    assert "removed named-one" in stream_text(c[17])


def test_a_remote_traceback_names_the_notebooks_cells(sandbox_server, tmp_path):
    cells = [
        "%load_ext jupyter_sandbox",
        "print('a local cell')",
        "%%sandbox\ndef f():\n    return 1 / 0",
        "print('another local cell')",
        "%%sandbox --out failed\nf()",
        "failed.execution_count",
    ]
    c = run_cells(cells, sandbox_server, tmp_path)
    tb = error_text(c[4])
    remote = int(result(c[5]))
    assert remote != c[4].execution_count, "the test needs the sandbox to number cells differently"
    assert f"Cell In[{c[4].execution_count}], line 1" in tb, tb
    assert f"Cell In[{c[2].execution_count}], line 2, in f" in tb, tb
    assert f"Cell In[{remote}]" not in tb
