"""`jupyter sandbox ...`, run as a person runs it: a subprocess of the installed console script."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import docker
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from jupyter_sandbox.backends import docker_images, programs
from jupyter_sandbox.backends.base import LABEL_PREFIX
from jupyter_sandbox.cli import BuildImageApp

from servers import IMAGE, SESSION, SESSION_LABEL, JupyterServer

COMMAND = [sys.executable, "-m", "jupyter_sandbox.cli"]


def jupyter_sandbox(*args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 600):
    environ = {**os.environ, **(env or {})}
    environ.pop("JUPYTER_SANDBOX_URL", None)
    environ.pop("JUPYTER_SANDBOX_TOKEN", None)
    return subprocess.run([*COMMAND, *args], env=environ, input=input, capture_output=True, text=True, timeout=timeout)


def test_the_console_script_is_installed():
    import shutil

    assert shutil.which("jupyter-sandbox", path=os.path.dirname(sys.executable)), "pip install . gives jupyter-sandbox"
    answer = jupyter_sandbox()
    assert answer.returncode == 2 and "build-image" in answer.stdout + answer.stderr


def test_doctor_without_an_engine_says_so_and_what_to_do(tmp_path):
    answer = jupyter_sandbox("doctor", env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert answer.returncode == 1
    lines = answer.stdout.splitlines()
    engine = next(i for i, line in enumerate(lines) if "Docker engine" in line)
    assert lines[engine].startswith("FAIL") and "not reachable" in lines[engine]
    assert "fix:" in lines[engine + 1] and "DOCKER_HOST" in lines[engine + 1] and "local" in lines[engine + 1]
    # the checks that need no engine still ran
    assert any(line.startswith("ok") and "sandboxed kernelspec" in line for line in lines), answer.stdout


def test_doctor_with_the_engine(docker_ready):
    answer = jupyter_sandbox("doctor", "--image", IMAGE)
    lines = answer.stdout.splitlines()
    for check in ("Docker engine", "runtime runc", "server extension", "sandboxed kernelspec"):
        assert any(line.startswith("ok") and check in line for line in lines), (check, answer.stdout)
    assert any(check in line and not line.startswith("FAIL") for line in lines for check in ["sandbox image"])


def plot_notebook(*extra: str):
    nb = new_notebook(
        cells=[
            new_markdown_cell("# a plot"),
            new_code_cell("import matplotlib.pyplot as plt\nx = 21"),
            new_code_cell("plt.plot([1, 3, 2])\nplt.show()"),
            *[new_code_cell(code) for code in extra],
            new_code_cell("print(x * 2)"),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def test_run_a_notebook_on_the_sandboxed_kernel(docker_ready, tmp_path):
    path, out = tmp_path / "plot.ipynb", tmp_path / "plot.out.ipynb"
    nbformat.write(plot_notebook(), path)
    answer = jupyter_sandbox("run", str(path), "-o", str(out), "--image", IMAGE, "--memory", "512M", "--timeout", "120")
    assert answer.returncode == 0, answer.stderr
    assert "3/3" in answer.stderr  # the progress bar went over the three code cells
    executed = nbformat.read(out, as_version=4)
    nbformat.validate(executed)
    pngs = [o for o in executed.cells[2].outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert pngs and len(pngs[0].data["image/png"]) > 1000
    assert executed.cells[3].outputs[0].text == "42\n"
    assert nbformat.read(path, as_version=4).cells[2].outputs == []  # -o leaves the input alone


def test_a_failing_notebook_exits_non_zero_naming_the_cell(docker_ready, tmp_path):
    path = tmp_path / "fails.ipynb"
    nbformat.write(plot_notebook("print('about to fail')\n1 / 0"), path)
    answer = jupyter_sandbox("run", str(path), "--image", IMAGE, "--timeout", "120")
    assert answer.returncode == 1
    assert "cell 4" in answer.stderr and "ZeroDivisionError" in answer.stderr, answer.stderr
    executed = nbformat.read(path, as_version=4)  # written in place, with what ran
    assert [o.output_type for o in executed.cells[3].outputs] == ["stream", "error"]
    assert executed.cells[4].outputs == []


def test_exec_streams_a_script_and_keeps_its_exit_status(docker_ready, tmp_path):
    script = tmp_path / "hello.py"
    script.write_text(
        "import sys\nprint('args', sys.argv[1:])\nname = input('name? ')\nprint('hi', name)\n"
        "print('oops', file=sys.stderr)\nsys.exit(3)\n"
    )
    # no server anywhere: an in-process manager runs the sandbox
    env = {"JUPYTER_RUNTIME_DIR": str(tmp_path / "no-servers"), "JUPYTER_SANDBOX_TEST_IMAGE": IMAGE}
    answer = jupyter_sandbox("exec", str(script), "one", "--two", env=env, input="Ada\n")
    assert answer.returncode == 3, answer.stderr
    # in order: what the script printed before input(), then the prompt (shown here), then the rest
    assert answer.stdout.splitlines() == ["args ['one', '--two']", "name? hi Ada"], answer.stdout
    assert "oops" in answer.stderr
    failing = tmp_path / "fails.py"
    failing.write_text("raise ValueError('bad input')\n")
    answer = jupyter_sandbox("exec", str(failing), env=env)
    assert answer.returncode == 1 and "ValueError: bad input" in answer.stderr
    # the traceback is the script's own, as `python fails.py` prints it: no wrapper, no runpy
    assert 'File "fails.py", line 1, in <module>' in answer.stderr, answer.stderr
    assert "runpy" not in answer.stderr and "_jupyter_sandbox_run_script" not in answer.stderr, answer.stderr
    # this terminal's input at its end is the end of the script's input too
    reader = tmp_path / "reads.py"
    reader.write_text(
        "import sys\ntry:\n    input('more? ')\nexcept EOFError:\n    print('at the end')\n    sys.exit(5)\n"
    )
    answer = jupyter_sandbox("exec", str(reader), env=env, input="")
    assert (answer.returncode, answer.stdout.splitlines()[-1:]) == (5, ["more? at the end"]), answer


def test_prune_removes_only_what_servers_that_are_gone_left(docker_ready, tmp_path):
    data_dir = tmp_path / "data"  # both servers are "the same user's" (one state folder)
    client = docker.from_env()
    crashed = JupyterServer(tmp_path / "crashed", data_dir=data_dir).start()
    try:
        gone = crashed.api("POST", "sandboxes", json={"name": "left-behind"}).json()
    finally:
        crashed.kill()  # SIGKILL: nothing is cleaned up
    stranger = None
    with JupyterServer(tmp_path / "live", data_dir=data_dir) as live:
        kept = live.api("POST", "sandboxes", json={"name": "in-use"}).json()
        (left,) = client.containers.list(all=True, filters={"label": f"{LABEL_PREFIX}.sandbox={gone['id']}"})
        # Another Unix user's container naming the same dead server: never touched.
        labels = {
            **left.labels,
            f"{LABEL_PREFIX}.uid": str(os.getuid() + 4242),
            f"{LABEL_PREFIX}.sandbox": "sbx_stranger",
            SESSION_LABEL: SESSION,
        }
        stranger = client.containers.create(IMAGE, ["sleep", "infinity"], labels=labels, network_mode="none")
        try:
            env = {"JUPYTER_DATA_DIR": str(data_dir)}
            listed = jupyter_sandbox("list", env=env)
            assert listed.returncode == 0
            rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
            assert rows[gone["id"]].endswith("server gone") and rows[kept["id"]].endswith("server alive")
            assert "sbx_stranger" not in rows

            dry = jupyter_sandbox("prune", "--dry-run", env=env)
            assert f"would remove {gone['id']}" in dry.stdout and kept["id"] not in dry.stdout
            assert client.containers.list(
                all=True, sparse=True, filters={"label": f"{LABEL_PREFIX}.sandbox={gone['id']}"}
            )

            pruned = jupyter_sandbox("prune", env=env)
            assert pruned.returncode == 0 and f"removed {gone['id']}" in pruned.stdout, pruned.stdout
            assert not client.containers.list(
                all=True, sparse=True, filters={"label": f"{LABEL_PREFIX}.sandbox={gone['id']}"}
            )
            assert client.containers.list(
                all=True, sparse=True, filters={"label": f"{LABEL_PREFIX}.sandbox={kept['id']}"}
            )
            stranger.reload()  # still there
            assert live.execute("in-use", "1 + 1")[-1]["type"] == "end_of_execution"
        finally:
            stranger.remove(force=True)
    client.close()


def test_build_image_is_the_scripts_one_implementation():
    script = (Path(__file__).parent.parent / "scripts" / "build-images.sh").read_text()
    assert "jupyter_sandbox.cli build-image" in script and "debootstrap" not in script.split("set -euo")[1]
    answer = jupyter_sandbox("build-image", "--help")
    assert answer.returncode == 0 and "--wheelhouse" in answer.stdout and "--packages" in answer.stdout


def test_build_image_builds_a_labelled_image(docker_ready, tmp_path):
    tag = f"jupyter-sandbox-test-build:{SESSION}"
    answer = jupyter_sandbox(
        "build-image",
        "--base",
        "jupyter-sandbox-base:bookworm-r",
        "--tag",
        tag,
        "--packages",
        "ipykernel",
        "--cache",
        str(tmp_path),
    )
    client = docker.from_env()
    try:
        assert answer.returncode == 0, answer.stderr
        assert "[3/3]" in answer.stderr
        image = client.images.get(tag)
        assert image.labels["org.jupyter-sandbox.packages"] == "ipykernel"
        # no bash_kernel asked for: no bash; Deno's two, and R from the base
        assert image.labels["org.jupyter-sandbox.languages"] == "javascript python r typescript"
        again = jupyter_sandbox(
            "build-image",
            "--base",
            "jupyter-sandbox-base:bookworm-r",
            "--tag",
            tag,
            "--packages",
            "ipykernel",
            "--cache",
            str(tmp_path),
        )
        assert again.returncode == 0 and "is present with ipykernel" in again.stderr
    finally:
        client.images.remove(tag, force=True)
        client.close()


def _build_with_progress(monkeypatch, stream: io.StringIO) -> str:
    """build-image's progress path, with a build that reports what a real one does: a progress
    call per line of its output (hundreds per step), then a log line."""

    def build(plan, progress, log):
        for step in (1, 2, 3):
            for line in range(300):
                progress(step, 3, f"step {step}, output line {line}")
        log(f"built {plan.tag}")
        return True

    monkeypatch.setattr(docker_images, "build_image", build)
    monkeypatch.setattr(sys, "stderr", stream)
    BuildImageApp(tag="test:progress").start()
    return stream.getvalue()


def test_unit_build_image_progress_is_one_line_per_step_when_not_a_terminal(monkeypatch):
    out = _build_with_progress(monkeypatch, io.StringIO())
    assert out.splitlines() == [
        "[build-image] [1/3] step 1, output line 0",
        "[build-image] [2/3] step 2, output line 0",
        "[build-image] [3/3] step 3, output line 0",
        "[build-image] built test:progress",
        "[build-image] done",
    ]
    assert "\r" not in out


def test_unit_build_image_progress_is_a_bar_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = _build_with_progress(monkeypatch, Terminal())
    assert out.count("\r") > 300 and "[3/3] step 3, output line 299" in out and "built test:progress" in out


@pytest.mark.parametrize(
    "script, shown",
    [
        (
            "def f():\n    raise ValueError('bad')\nf()\n",
            ['File "script.py", line 3, in <module>', "line 2, in f", "ValueError: bad"],
        ),
        ("x = (\n", ['File "script.py", line 1', "SyntaxError"]),
    ],
)
def test_unit_exec_program_shows_only_the_scripts_frames(tmp_path, script, shown):
    """What IPython prints of a failed script (its _render_traceback_) starts at the script's frames."""
    (tmp_path / "script.py").write_text(script)
    code = programs.source("run_script") + (
        "\ntry:\n    _jupyter_sandbox_run_script('script.py', ['script.py'])\n"
        "except BaseException as e:\n    print('\\n'.join(e._render_traceback_()))\n"
    )
    answer = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert all(part in answer.stdout for part in shown), answer.stdout
    assert "runpy" not in answer.stdout and "_jupyter_sandbox_run_script" not in answer.stdout, answer.stdout


@pytest.mark.parametrize(
    "script, status, stderr",
    [
        ("import sys; print(sys.argv)", 0, ""),
        ("import sys; sys.exit(3)", 3, ""),
        ("import sys; sys.exit()", 0, ""),
        ("import sys; sys.exit(True)", 1, ""),
        ("import sys; sys.exit('it went wrong')", 1, "it went wrong\n"),
    ],
)
def test_unit_exec_program_gives_the_scripts_exit_status(tmp_path, script, status, stderr):
    """programs/run_script.py as `jupyter sandbox exec` sends it: the cell's value is the status."""
    (tmp_path / "script.py").write_text(script)
    code = programs.source("run_script") + "\nprint(_jupyter_sandbox_run_script('script.py', ['script.py', '-x']))\n"
    answer = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    argv = "['script.py', '-x']\n" if "argv" in script else ""
    assert (answer.stdout, answer.stderr) == (f"{argv}{status}\n", stderr)


def test_list_shows_names_notebooks_memory_and_json(docker_ready, tmp_path):
    import json
    import time

    from jupyter_sandbox.cli_list import JSON_KEYS

    with JupyterServer(tmp_path / "server") as server:
        made = server.api("POST", "sandboxes", json={"name": "analysis", "memory": "256M"}).json()
        # a notebook on the sandboxed kernel: its sandbox belongs to the notebook's kernel
        session = server.request(
            "POST",
            "api/sessions",
            json={"path": "work/report.ipynb", "type": "notebook", "kernel": {"name": "python3-sandboxed"}},
        )
        assert session.status_code == 201, session.text
        kernel_id = session.json()["kernel"]["id"]
        deadline = time.monotonic() + 120
        while not any(s.get("kernel_id") == kernel_id for s in server.api("GET", "sandboxes").json()):
            assert time.monotonic() < deadline, server.api("GET", "sandboxes").text
            time.sleep(1)
        env = {"JUPYTER_DATA_DIR": str(server.data_dir), "JUPYTER_RUNTIME_DIR": str(server.runtime_dir)}
        answer = jupyter_sandbox("list", "--json", env=env)
        assert answer.returncode == 0, answer.stderr
        rows = {row["id"]: row for row in json.loads(answer.stdout)}
        assert all(tuple(row) == JSON_KEYS for row in rows.values())
        mine = rows[made["id"]]
        assert (mine["name"], mine["kind"], mine["status"], mine["server_state"]) == (
            "analysis",
            "sandbox",
            "running",
            "alive",
        )
        assert mine["memory_limit"] == 256 * 1024**2 and 0 < mine["memory_used"] < mine["memory_limit"]
        assert mine["network"] == "none"
        (kernels,) = [row for row in rows.values() if row["kernel_id"] == kernel_id]
        assert kernels["notebook"] == "work/report.ipynb", kernels

        table = jupyter_sandbox("list", env=env)
        assert table.returncode == 0, table.stderr
        header, *lines = table.stdout.splitlines()
        assert header.split()[:5] == ["SANDBOX", "NAME", "NOTEBOOK", "MEMORY", "NETWORK"]
        line = next(line for line in lines if line.startswith(made["id"]))
        assert " analysis " in line and "/256M" in line and line.endswith("server alive")
        assert any("work/report.ipynb" in line for line in lines), table.stdout
        server.request("DELETE", f"api/sessions/{session.json()['id']}")


def test_exec_sends_files_and_folders_beside_the_script(docker_ready, tmp_path):
    env = {"JUPYTER_RUNTIME_DIR": str(tmp_path / "no-servers"), "JUPYTER_SANDBOX_TEST_IMAGE": IMAGE}
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    inputs = tmp_path / "inputs"
    (inputs / "deep").mkdir(parents=True)
    (inputs / "deep" / "x.txt").write_text("deep inside")
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    (inputs / "link.txt").symlink_to(secret)
    script = tmp_path / "reads.py"
    script.write_text(
        "import os\nprint(open('data.csv').read().splitlines()[1])\nprint(open('inputs/deep/x.txt').read())\n"
        "print('link there:', os.path.lexists('inputs/link.txt'))\n"
    )
    answer = jupyter_sandbox("exec", "--file", str(tmp_path / "data.csv"), "--dir", str(inputs), str(script), env=env)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.splitlines() == ["1,2", "deep inside", "link there: False"], answer.stdout
    assert f"not sent, a symlink (never followed): {inputs / 'link.txt'}" in answer.stderr

    # a symlink named outright, a missing file, and more than the cap: said, and nothing runs
    (tmp_path / "alias.csv").symlink_to(tmp_path / "data.csv")
    refused = jupyter_sandbox("exec", "--file", str(tmp_path / "alias.csv"), str(script), env=env)
    assert refused.returncode == 2 and "is a symlink; symlinks are not followed" in refused.stderr
    missing = jupyter_sandbox("exec", "--file", str(tmp_path / "nope.csv"), str(script), env=env)
    assert missing.returncode == 2 and "nope.csv: no such file" in missing.stderr
    (tmp_path / "big.bin").write_bytes(b"0" * 2048)
    over = jupyter_sandbox("exec", "--max-upload", "1K", "--file", str(tmp_path / "big.bin"), str(script), env=env)
    assert over.returncode == 2 and "over the cap of 1K" in over.stderr, over.stderr
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "data.csv").write_text("x")
    twice = jupyter_sandbox(
        "exec",
        "--file",
        str(tmp_path / "data.csv"),
        "--file",
        str(tmp_path / "other" / "data.csv"),
        str(script),
        env=env,
    )
    assert twice.returncode == 2 and "two files would both be data.csv" in twice.stderr, twice.stderr


def test_unit_build_image_takes_every_package_after_packages(monkeypatch):
    plans = []
    monkeypatch.setattr(docker_images, "build_image", lambda plan, progress, log: plans.append(plan) or False)
    app = BuildImageApp()
    app.parse_command_line(["--packages", "ipykernel", "scipy", "seaborn"])
    app.start()
    assert plans[0].packages == ["ipykernel", "scipy", "seaborn"]
    # without --packages, a stray word is an error, never silently dropped
    answer = jupyter_sandbox("build-image", "scipy")
    assert answer.returncode == 2 and "unexpected arguments: scipy" in answer.stderr, answer.stderr
