"""`jupyter sandbox doctor --backend kubernetes`, run as a person runs it, against the k8s_api endpoint
(the test API server, with the shipped Role's rules as the only ones granted; or $KUBECONFIG's cluster)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from jupyter_sandbox.backends.kubernetes_doctor import doctor_lines
from jupyter_sandbox.backends.kubernetes_pods import API_CALLS

from k8s.fixtures import write_kubeconfig

ROOT = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-m", "jupyter_sandbox.cli", "doctor", "--backend", "kubernetes"]


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("KUBERNETES_SERVICE_HOST", "JUPYTER_SANDBOX_SERVICE_URL")
    }
    environ.update(env or {})
    return subprocess.run([*COMMAND, *args], env=environ, capture_output=True, text=True, timeout=120)


def shipped_rules() -> list[dict[str, Any]]:
    """The Role's and the ClusterRole's rules of deploy/kubernetes/rbac.yaml: what the service holds."""
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "rbac.yaml").read_text()))
    return [rule for doc in docs if doc["kind"] in ("Role", "ClusterRole") for rule in doc["rules"]]


def lines(output: str) -> dict[str, str]:
    """Each report line's name -> its mark (ok, FAIL, note)."""
    out = {}
    for line in output.splitlines():
        mark, _, rest = line.partition("  ")
        if mark.strip() in ("ok", "FAIL", "note"):
            out[rest.strip().split("  ")[0]] = mark.strip()
    return out


def call_line(group: str, resource: str, subresource: str, verb: str) -> str:
    what = f"{resource}/{subresource}" if subresource else resource
    return f"may {verb} {what}" + (f" ({group})" if group else "")


def test_with_the_shipped_role_everything_is_in_place(k8s_api: Any, request: pytest.FixtureRequest) -> None:
    if k8s_api.server is not None:
        request.getfixturevalue("runsc_ready")  # the test API server's gvisor RuntimeClass is the engine's runsc
        assert "gvisor" in k8s_api.server.runtime_classes
    with k8s_api.rules(shipped_rules()):
        result = doctor(
            "--kubeconfig", k8s_api.kubeconfig, "--namespace", k8s_api.namespace, "--runtime-class", "gvisor"
        )
    assert result.returncode == 0, result.stdout + result.stderr
    report = lines(result.stdout)
    assert report["Kubernetes API"] == "ok"
    for call in API_CALLS:
        assert report[call_line(*call)] == "ok", result.stdout
    assert report["may get runtimeclasses (node.k8s.io)"] == "ok"
    assert report["RuntimeClass gvisor"] == "ok"
    assert report["metrics API"] == "ok"
    assert "Everything jupyter-sandbox needs is in place." in result.stdout


def test_a_missing_verb_fails_and_says_how_to_fix_it(k8s_api: Any, tmp_path: Path) -> None:
    rules = shipped_rules()
    for rule in rules:
        if rule["resources"] == ["pods"] and rule["apiGroups"] == [""]:
            rule["verbs"] = [v for v in rule["verbs"] if v != "delete"]
    # no flags: the doctor takes the sandbox service's own config file, as in the service's pod
    config_dir = tmp_path / "jupyter-config"
    config_dir.mkdir()
    (config_dir / "jupyter_sandbox_service_config.py").write_text(
        f"c.KubernetesBackend.kubeconfig = {k8s_api.kubeconfig!r}\nc.KubernetesBackend.namespace = {k8s_api.namespace!r}\n"
    )
    with k8s_api.rules(rules):
        result = doctor(env={"JUPYTER_CONFIG_DIR": str(config_dir)})
    assert result.returncode == 1, result.stdout + result.stderr
    report = lines(result.stdout)
    assert report["may delete pods"] == "FAIL"
    assert [name for name, mark in report.items() if mark == "FAIL"] == ["may delete pods"]
    assert (
        f"denied in namespace {k8s_api.namespace}" in result.stdout
        and "fix: kubectl apply -k deploy/kubernetes" in result.stdout
    )
    assert "1 problem(s) found." in result.stdout


def marks(report: list[tuple[str, bool | None, str, str]]) -> dict[str, str]:
    return {name: {True: "ok", False: "FAIL", None: "note"}[ok] for name, ok, _, _ in report}


# in-process from here: the command's start (importing kubernetes_asyncio) takes seconds on a busy machine
def test_a_missing_runtime_class_fails_and_no_metrics_api_is_a_note(k8s_api: Any) -> None:
    if k8s_api.server is None:
        pytest.skip("whether a real cluster serves the metrics API is its own")
    settings = {"kubeconfig": k8s_api.kubeconfig, "namespace": k8s_api.namespace, "runtime_class": "kata-nowhere"}
    k8s_api.server.metrics = False
    try:
        report = doctor_lines(settings)
    finally:
        k8s_api.server.metrics = True
    found = marks(report)
    assert found["RuntimeClass kata-nowhere"] == "FAIL"
    assert found["metrics API"] == "note"
    assert [name for name, mark in found.items() if mark == "FAIL"] == ["RuntimeClass kata-nowhere"]
    details = {name: detail for name, _, detail, _ in report}
    assert details["RuntimeClass kata-nowhere"] == "missing"
    assert "metrics.k8s.io not served" in details["metrics API"]


def test_an_api_server_that_does_not_answer_is_said(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}", "token", "default")
    report = doctor_lines({"kubeconfig": str(kubeconfig)})
    assert marks(report) == {"Kubernetes API": "FAIL"}, report
    assert f"http://127.0.0.1:{port}" in report[0][2] and "does not answer" in report[0][2]
