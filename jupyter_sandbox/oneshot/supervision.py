"""The supervisor's side of a one-shot run: its program text, and the JSON header that tells it
what to do (files to write, pre-commands, the pip install, the entrypoint, the caps)."""

from __future__ import annotations

import posixpath
from importlib import resources
from typing import Any

from ..backends.base import WORKDIR
from .requests import Job

WHEELHOUSE_MOUNT = "/run/wheelhouse"
EVAL_RUNNER_PATH = "/tmp/.jsbx-eval.py"
RESULT_PATH = "/tmp/.jsbx-result"
REQUIREMENTS_PATH = "/tmp/.jsbx-requirements.txt"
PACKAGES_DIR = "/tmp/.jsbx-site"


def program(name: str) -> str:
    """The source of one of the programs that run inside sandboxes (package data)."""
    return resources.files(__package__).joinpath("programs", name).read_text()


def supervisor_header(job: Job, python: str, wheelhouse: str, max_output_size: int) -> dict[str, Any]:
    """The supervisor's job: the steps of ``job`` run with the sandbox's ``python``."""
    files: dict[str, str] = {}
    steps: list[dict[str, Any]] = [{"argv": ["sh", "-c", command]} for command in job.pre_commands]
    main_env: dict[str, str] = {}
    if job.requirements:
        files[REQUIREMENTS_PATH] = job.requirements
        pip = [
            python,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--quiet",
            "--target",
            PACKAGES_DIR,
            "-r",
            REQUIREMENTS_PATH,
        ]
        if wheelhouse:
            pip += ["--find-links", WHEELHOUSE_MOUNT]
            if not job.network:
                pip.append("--no-index")
        steps.append({"argv": pip})
        main_env["PYTHONPATH"] = PACKAGES_DIR + ":" + job.env["PYTHONPATH"] if "PYTHONPATH" in job.env else PACKAGES_DIR
    entry = posixpath.join(WORKDIR, job.entrypoint)
    if job.eval_last_expr:
        files[EVAL_RUNNER_PATH] = program("eval_runner.py")
        argv = [python, EVAL_RUNNER_PATH, RESULT_PATH, entry, *job.args]
    else:
        argv = [python, entry, *job.args]
    steps.append({"argv": argv, "stdin": True, "env": main_env})
    return {
        "tar_size": len(job.archive),
        "stdin_size": len(job.stdin),
        "env": job.env,
        "workdir": WORKDIR,
        "timeout": job.timeout,
        "cap": max_output_size,
        "files": files,
        "steps": steps,
        "result_path": RESULT_PATH,
    }
