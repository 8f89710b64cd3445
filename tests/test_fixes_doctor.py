"""`jupyter sandbox doctor` names a socket the user may not open, and says when the engine cannot
enforce the sandboxes' limits (rootless without cgroup v2 delegation, cgroups without controllers)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import docker
import pytest

from jupyter_sandbox.backends.docker_images import unenforced_limits

# the real engine's `docker info`, as this project's CI host reports it (cgroup v1, root daemon)
ROOT_ENGINE = {
    "MemoryLimit": True,
    "CpuCfsQuota": True,
    "PidsLimit": True,
    "CgroupVersion": "1",
    "CgroupDriver": "cgroupfs",
    "SecurityOptions": ["name=seccomp,profile=default"],
}

WITHOUT_DAC_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_doctor_names_a_socket_the_user_may_not_open(tmp_path):
    # An engine's socket the user may not open: mode 000. CI runs as root, which file modes bind
    # only without CAP_DAC_OVERRIDE: setpriv drops it (and DAC_READ_SEARCH) for the doctor.
    path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as engine:
        engine.bind(str(path))
        engine.listen()
        os.chmod(path, 0)
        env = {**os.environ, "DOCKER_HOST": f"unix://{path}"}
        env.pop("JUPYTER_SANDBOX_URL", None)
        answer = subprocess.run(
            [*WITHOUT_DAC_OVERRIDE, sys.executable, "-m", "jupyter_sandbox.cli", "doctor"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert answer.returncode == 1, answer.stdout + answer.stderr
    lines = answer.stdout.splitlines()
    engine_line = next(i for i, line in enumerate(lines) if "Docker engine" in line)
    assert lines[engine_line].startswith("FAIL"), answer.stdout
    assert f"your user cannot open {path} (permission denied)" in lines[engine_line], answer.stdout
    fix = lines[engine_line + 1]
    assert "sandbox service" in fix and "docs/jupyterhub.md" in fix and "docker group, which is root" in fix
    assert "start it" not in fix


def test_an_engine_that_enforces_every_limit_passes(docker_ready):
    assert unenforced_limits(ROOT_ENGINE) == ""
    assert unenforced_limits(docker.from_env().info()) == ""  # this host's engine


def test_rootless_on_cgroup_v1_enforces_no_limit():
    info = {
        **ROOT_ENGINE,
        "MemoryLimit": False,
        "CpuCfsQuota": False,
        "PidsLimit": False,
        "CgroupDriver": "none",
        "SecurityOptions": ["name=seccomp,profile=default", "name=rootless"],
    }
    problem = unenforced_limits(info)
    assert problem.startswith("limits are not enforced: the engine reports no memory, CPU, pids limit support")
    assert "rootless" in problem and "cgroup v1" in problem


def test_rootless_on_cgroup_v2_without_delegation():
    info = {
        **ROOT_ENGINE,
        "CgroupVersion": "2",
        "CgroupDriver": "systemd",
        "MemoryLimit": True,
        "CpuCfsQuota": False,
        "SecurityOptions": ["name=rootless", "name=cgroupns"],
    }
    problem = unenforced_limits(info)
    assert "no CPU limit support" in problem and "not delegated" in problem


def test_a_driver_of_none_enforces_nothing_whatever_the_flags_say():
    problem = unenforced_limits({**ROOT_ENGINE, "CgroupDriver": "none"})
    assert "no memory, CPU, pids limit support" in problem


def test_doctor_fails_the_limits_check_when_the_engine_enforces_none(monkeypatch):
    from jupyter_sandbox.backends import docker_images
    from jupyter_sandbox.cli import DoctorApp

    facts = docker_images.EngineFacts(
        reachable=True, version="28", runtimes=["runc"], unenforced_limits="limits are not enforced: (test)"
    )
    monkeypatch.setattr(docker_images, "engine_facts", lambda images, docker_url="": facts)
    (check,) = [c for c in DoctorApp().checks() if c[0] == "resource limits"]
    assert check[1] is False and check[2] == "limits are not enforced: (test)" and "delegated" in check[3]
