"""The sandbox service starts as deploy/kubernetes/deployment.yaml runs it: its command, its
environment and the ConfigMap's config file, against the k8s_api endpoint (the test API server, or
$KUBECONFIG's cluster), with only what a pod would differ in changed (addresses, writable paths)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from servers import free_port

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"


def manifest(kind: str) -> dict[str, Any]:
    (found,) = [
        doc
        for path in sorted(DEPLOY.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == kind
    ]
    return found


def test_the_service_starts_as_its_deployment_runs_it(k8s_api: Any, tmp_path: Path) -> None:
    container = manifest("Deployment")["spec"]["template"]["spec"]["containers"][0]
    port = free_port()
    env = {e["name"]: e.get("value", "a-hub-token") for e in container["env"]}  # the Secret's value
    # what differs outside a pod: where it listens, where the Hub is, and the writable paths
    env.update(
        JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{port}",
        JUPYTERHUB_API_URL=f"http://127.0.0.1:{free_port()}/hub/api",
        HOME=str(tmp_path),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "etc"),
    )
    (tmp_path / "etc").mkdir()
    source = manifest("ConfigMap")["data"]["jupyter_sandbox_service_config.py"]
    (tmp_path / "etc" / "jupyter_sandbox_service_config.py").write_text(
        source
        + f"\nc.SandboxApp.state_dir = {str(tmp_path / 'state')!r}"
        + f"\nc.KubernetesBackend.kubeconfig = {k8s_api.kubeconfig!r}"
        + f"\nc.KubernetesBackend.namespace = {k8s_api.namespace!r}"
        + "\nc.SandboxManager.pool_size = 0\n"  # no pod made at start: nothing to clean up
    )
    command = [sys.executable if word == "python" else word for word in container["command"]]
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "KUBERNETES_"))}
    before = len(k8s_api.server.requests) if k8s_api.server is not None else 0
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env={**environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}{env['JUPYTERHUB_SERVICE_PREFIX']}sandbox/api/sandboxes"
        answer = None
        deadline = time.monotonic() + 120
        while answer is None and time.monotonic() < deadline and process.poll() is None:
            try:
                answer = httpx.get(url, timeout=5)
            except httpx.TransportError:
                time.sleep(0.5)
        assert answer is not None, f"the service did not answer:\n{log.read_text()[-3000:]}"
        # every request needs a Hub token with the service's scope: none here
        assert answer.status_code == 403, answer.text
        # it reached the API with its configuration: it lists the pods it may take back
        if k8s_api.server is not None:
            for _ in range(60):
                calls = [(r["verb"], r["resource"], r["status"]) for r in k8s_api.server.requests[before:]]
                if ("list", "pods", 200) in calls:
                    break
                time.sleep(0.5)
            assert ("list", "pods", 200) in calls, calls
        text = log.read_text()
        assert "backend kubernetes" in text, text[-3000:]
        assert "cannot load the Kubernetes configuration" not in text, text[-3000:]
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
