"""The notebook's files (c.SandboxProvisioner.notebook_files): a "Python 3 (sandboxed)" notebook's
folder is copied into its sandbox when the kernel starts, size-capped, symlinks never followed.
A real `jupyter server` starts the kernel through its sessions API, as JupyterLab does, and the
test runs cells over the kernel websocket."""

from __future__ import annotations

import asyncio

from test_kernel import KernelSocket, stream_of

from jupyter_sandbox.kernel import KERNEL_NAME

from servers import IMAGE, JupyterServer


async def open_notebook(server: JupyterServer, path: str) -> tuple[str, str]:
    """(session id, kernel id) of a notebook at ``path`` on the sandboxed kernel."""
    body = {"path": path, "type": "notebook", "kernel": {"name": KERNEL_NAME}}
    r = await asyncio.to_thread(server.request, "POST", "api/sessions", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["kernel"]["id"]


async def test_the_notebooks_folder_is_copied_capped_without_symlinks(docker_ready, tmp_path):
    root = tmp_path / "root"
    project = root / "project"
    (project / "sub").mkdir(parents=True)
    (project / "data.csv").write_text("a,b\n1,2\n")
    (project / "sub" / "x.txt").write_text("deeper")
    secret = tmp_path / "secret.txt"  # outside the server's root: a symlink must not carry it in
    secret.write_text("host secret")
    (project / "link.txt").symlink_to(secret)
    big = root / "big"
    big.mkdir()
    (big / "huge.bin").write_bytes(b"0" * 200 * 1024)
    config = {
        "DockerBackend": {"default_image": IMAGE},
        "SandboxProvisioner": {"notebook_files": True, "notebook_files_cap": "64K"},
    }
    with JupyterServer(tmp_path / "home", root_dir=root, config=config) as server:
        session, kernel_id = await open_notebook(server, "project/report.ipynb")
        ks = await KernelSocket.open(server, kernel_id)
        try:
            _reply, outputs = await ks.execute(
                "import os\nprint(open('data.csv').read().splitlines()[1], open('sub/x.txt').read())\n"
                "print('link:', os.path.lexists('link.txt'))"
            )
            assert stream_of(outputs).splitlines() == ["1,2 deeper", "link: False"], outputs
            # the first cell is told what was not copied
            assert "Not copied into the sandbox (symlinks are never followed): link.txt" in stream_of(outputs, "stderr")
        finally:
            ks.close()
            await asyncio.to_thread(server.request, "DELETE", f"api/sessions/{session}")

        # over the cap: nothing copied, and the first cell says why and what the cap is
        session, kernel_id = await open_notebook(server, "big/report.ipynb")
        ks = await KernelSocket.open(server, kernel_id)
        try:
            _reply, outputs = await ks.execute("import os\nprint(sorted(os.listdir('.')))")
            assert "huge.bin" not in stream_of(outputs), outputs
            notice = stream_of(outputs, "stderr")
            assert "The notebook's files were not copied" in notice and "over the cap of 64K" in notice, notice
        finally:
            ks.close()
            await asyncio.to_thread(server.request, "DELETE", f"api/sessions/{session}")


async def test_off_by_default_the_sandbox_starts_empty(docker_ready, tmp_path):
    root = tmp_path / "root"
    (root / "project").mkdir(parents=True)
    (root / "project" / "data.csv").write_text("a,b\n")
    with JupyterServer(tmp_path / "home", root_dir=root, config={"DockerBackend": {"default_image": IMAGE}}) as server:
        session, kernel_id = await open_notebook(server, "project/report.ipynb")
        ks = await KernelSocket.open(server, kernel_id)
        try:
            _reply, outputs = await ks.execute("import os\nprint(os.path.exists('data.csv'))")
            assert stream_of(outputs) == "False\n" and not stream_of(outputs, "stderr"), outputs
        finally:
            ks.close()
            await asyncio.to_thread(server.request, "DELETE", f"api/sessions/{session}")


def test_sandbox_with_files_copies_the_notebooks_folder(sandbox_server, tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    from test_magics import run_notebook, stream_text

    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    (tmp_path / "secret.txt").write_text("host secret")
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "link.txt").symlink_to(tmp_path / "secret.txt")
    cells = [
        "%load_ext jupyter_sandbox",
        "%%sandbox withfiles\nimport os\nprint(os.path.exists('data.csv'))",
        "%%sandbox withfiles --with-files\nprint(open('data.csv').read().splitlines()[1])\n"
        "print(os.path.lexists('inputs/link.txt'))",
        "%sandbox kill withfiles",
    ]
    nb, error = run_notebook(new_notebook(cells=[new_code_cell(c) for c in cells]), sandbox_server, tmp_path)
    assert error is None, error
    nbformat.validate(nb)
    assert stream_text(nb.cells[1]) == "False\n"  # without the option: nothing of the host
    assert stream_text(nb.cells[2]).splitlines() == ["1,2", "False"], nb.cells[2].outputs
    assert f"not copied, a symlink (never followed): {tmp_path / 'inputs' / 'link.txt'}" in stream_text(
        nb.cells[2], "stderr"
    )
