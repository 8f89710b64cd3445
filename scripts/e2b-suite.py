#!/usr/bin/env python
"""Run E2B's own code-interpreter test suite, unchanged, against a fresh server of this project.

    python scripts/e2b-suite.py CHECKOUT [--commit SHA] [--debug] [--image IMAGE] [-- PYTEST ARGS]

CHECKOUT is a clone of e2b-dev/code-interpreter (a work tree, or a bare git directory such as
the one the project's `fetch` tool makes). Its ``python/tests`` at the pinned commit are
exported into a temporary directory (never into this repository), a Jupyter server with the
extension is started on Docker, and their pytest runs with the unmodified PyPI SDK
(``e2b-code-interpreter``), given only E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY.

``--debug`` measures the way the SDK's deprecated debug mode reaches one sandbox
(E2B_DEBUG=true, E2B_SANDBOX_URL = a sandbox's ``e2b_url``): the tests marked skip_debug are
skipped and every other test shares that one sandbox.

It prints the passed, failed and skipped counts, and compares the failures with
scripts/e2b-suite-expected-failures.txt (one node-id pattern and its reason a line): the exit
status is 1 when a test not listed there failed, 0 otherwise. Listed tests that passed are
named, so the list can shrink.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from servers import JupyterServer  # noqa: E402 (the tests' one way to start a server)

PINNED = "7df1757bfd5baa037f909ce97c2dbe014da973c0"  # e2b-dev/code-interpreter, 2026-08-21
EXPECTED = HERE / "e2b-suite-expected-failures.txt"
E2B = "sandbox/e2b"


def export_tests(checkout: Path, commit: str, into: Path) -> Path:
    """``python/`` of ``commit`` (its tests and pytest.ini) under ``into``; its path."""
    archive = subprocess.run(
        [
            "git",
            f"--git-dir={git_dir(checkout)}",
            "archive",
            "--format=tar",
            commit,
            "python/tests",
            "python/pytest.ini",
        ],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "python"


def git_dir(checkout: Path) -> Path:
    return checkout / ".git" if (checkout / ".git").exists() else checkout


def expected_failures(path: Path) -> dict[str, str]:
    """Node-id pattern -> reason, from lines ``PATTERN  REASON`` (# starts a comment line)."""
    out: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pattern, _, reason = line.strip().partition(" ")
        if not reason.strip():
            raise SystemExit(f"{path}:{number}: {pattern} has no reason")
        out[pattern] = reason.strip()
    return out


def listed(node: str, patterns: dict[str, str]) -> str | None:
    return next((p for p in patterns if fnmatch.fnmatchcase(node, p)), None)


def e2b_environment(server: JupyterServer, debug: bool) -> dict[str, str]:
    """What the SDK is given: the server's E2B URLs and a key of the user; in debug mode the
    ``e2b_url`` of one sandbox made for the whole run."""
    base = server.url.rstrip("/")
    if not debug:
        minted = server.api("POST", "keys", json={"name": "e2b-suite"})  # a key of the user, as a person mints one
        minted.raise_for_status()
        return {
            "E2B_API_URL": f"{base}/{E2B}/api",
            "E2B_SANDBOX_URL": f"{base}/{E2B}/plane",
            "E2B_API_KEY": minted.json()["key"],
        }
    # every test shares it: room for the contexts they make, which are never removed
    r = server.api("POST", "sandboxes", json={"memory": "2G"})
    r.raise_for_status()
    return {"E2B_DEBUG": "true", "E2B_SANDBOX_URL": r.json()["e2b_url"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="a clone of e2b-dev/code-interpreter (work tree or git dir)")
    parser.add_argument("--commit", default=PINNED, help=f"the suite's commit (default: the pinned {PINNED[:12]})")
    parser.add_argument("--debug", action="store_true", help="E2B_DEBUG mode against one sandbox")
    parser.add_argument("--image", default=os.environ.get("JUPYTER_SANDBOX_TEST_IMAGE", "jupyter-sandbox:latest"))
    parser.add_argument("--expected", type=Path, default=EXPECTED, help="the expected failures, with reasons")
    parser.add_argument("--timeout", type=int, default=300, help="seconds one test may take")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --), e.g. -k charts")
    args = parser.parse_args()
    patterns = expected_failures(args.expected)

    with tempfile.TemporaryDirectory(prefix="e2b-suite-") as tmp:
        suite = export_tests(args.checkout.resolve(), args.commit, Path(tmp))
        outcomes_file = Path(tmp) / "outcomes.json"
        config: dict[str, Any] = {"DockerBackend": {"default_image": args.image}}
        if args.debug:
            config["SandboxManager"] = {"max_contexts_per_sandbox": 32}
        started = time.monotonic()
        with JupyterServer(Path(tmp) / "server", config=config) as server:
            env = {k: v for k, v in os.environ.items() if not k.startswith("E2B_")}
            env.update(e2b_environment(server, args.debug))
            env["E2B_SUITE_OUTCOMES"] = str(outcomes_file)
            env["PYTHONPATH"] = os.pathsep.join([str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])
            command = [
                sys.executable,
                "-m",
                "pytest",
                "tests",
                "-p",
                "e2b_suite_plugin",
                "-p",
                "no:cacheprovider",
                # their addopts ask for pytest-xdist's 2 processes: one here (a shared 2-core machine)
                "-o",
                "addopts=--import-mode=importlib",
                f"--timeout={args.timeout}",
                "-q",
                "-rfE",
                *args.pytest_args,
            ]
            print(f"[e2b-suite] {args.commit[:12]} against {server.url} ({'debug' if args.debug else 'E2B URLs'})")
            subprocess.run(command, cwd=suite, env=env, check=False)
        minutes = (time.monotonic() - started) / 60
        outcomes: dict[str, str] = json.loads(outcomes_file.read_text()) if outcomes_file.exists() else {}

    counts = {kind: sum(1 for o in outcomes.values() if o == kind) for kind in ("passed", "failed", "skipped")}
    failed = sorted(node for node, outcome in outcomes.items() if outcome == "failed")
    unexpected = [node for node in failed if listed(node, patterns) is None]
    fixed = sorted(node for node, o in outcomes.items() if o == "passed" and listed(node, patterns) is not None)
    print(
        f"[e2b-suite] {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped in {minutes:.1f} min"
    )
    print(f"[e2b-suite] {len(failed) - len(unexpected)} of the failures are listed in {args.expected.name}")
    for node in fixed:
        print(f"[e2b-suite] listed but passed (take it off the list): {node}")
    for node in unexpected:
        print(f"[e2b-suite] UNEXPECTED failure: {node}")
    return 1 if unexpected or not outcomes else 0


if __name__ == "__main__":
    sys.exit(main())
