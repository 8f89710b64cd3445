"""A pytest plugin for scripts/e2b-suite.py: each test's outcome, by node id, into a JSON file.

Loaded with ``-p e2b_suite_plugin`` into E2B's own test run; the file is named by the
environment variable E2B_SUITE_OUTCOMES. A test whose set-up or tear-down fails counts as failed.
"""

from __future__ import annotations

import json
import os
from typing import Any

_outcomes: dict[str, str] = {}


def pytest_runtest_logreport(report: Any) -> None:
    if report.failed:
        _outcomes[report.nodeid] = "failed"
    elif report.skipped and report.nodeid not in _outcomes:
        _outcomes[report.nodeid] = "skipped"
    elif report.when == "call" and report.passed:
        _outcomes.setdefault(report.nodeid, "passed")


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    path = os.environ.get("E2B_SUITE_OUTCOMES")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(_outcomes, f, indent=1, sort_keys=True)
