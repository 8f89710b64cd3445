"""`jupyter sandbox e2b-env` and `jupyter sandbox keys`, run as a person runs them, then the
unmodified SDK with nothing but the environment they print."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from servers import JupyterServer

COMMAND = [sys.executable, "-m", "jupyter_sandbox.cli"]
SDK_RUN = """
from e2b_code_interpreter import Sandbox
sbx = Sandbox.create(timeout=60)
print(sbx.run_code("6*7").text)
sbx.kill()
"""

pytestmark = pytest.mark.usefixtures("docker_ready")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with JupyterServer(tmp_path_factory.mktemp("e2b-cli"), users=True) as server:
        yield server


def cli(server: JupyterServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("E2B_", "JUPYTER_SANDBOX_"))}
    return subprocess.run(
        [*COMMAND, *args, "--url", server.url, "--token", server.token],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def exports(text: str) -> dict[str, str]:
    """The variables of `export NAME=value` lines, as a shell would set them."""
    out = subprocess.run(["bash", "-c", text + "\nenv -0"], capture_output=True, text=True, check=True).stdout
    return {k: v for k, _, v in (item.partition("=") for item in out.split("\0")) if k.startswith("E2B_")}


@pytest.mark.parametrize("new_key", [False, True])
def test_e2b_env_is_all_an_unmodified_program_needs(server, new_key):
    done = cli(server, "e2b-env", *(["--new-key"] if new_key else []))
    assert done.returncode == 0, done.stderr
    env = exports(done.stdout)
    assert env["E2B_API_URL"] == server.url + "sandbox/e2b/api"
    assert env["E2B_SANDBOX_URL"] == server.url + "sandbox/e2b/plane"
    if new_key:
        assert env["E2B_API_KEY"].startswith("e2b_")
    else:
        assert env["E2B_API_KEY"] == server.token
    clean = {k: v for k, v in os.environ.items() if not k.startswith("E2B_")}
    run = subprocess.run(
        [sys.executable, "-c", SDK_RUN], env={**clean, **env}, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "42"


def test_keys_new_list_revoke(server):
    made = cli(server, "keys", "new", "--name", "laptop")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("e2b_") and "shown only now" in made.stderr
    listed = cli(server, "keys", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if key[:10] in line)
    assert "laptop" in line and key not in listed.stdout
    key_id = line.split()[0]
    assert cli(server, "keys", "revoke", key_id).returncode == 0
    assert key[:10] not in cli(server, "keys", "list").stdout
    gone = cli(server, "keys", "revoke", key_id)
    assert gone.returncode == 1 and "404" in gone.stderr
    assert cli(server, "keys", "frobnicate").returncode == 2
