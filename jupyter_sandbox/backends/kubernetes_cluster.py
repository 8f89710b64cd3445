"""The sandboxes' pods in the cluster: made (with their NetworkPolicy) and awaited until they run,
looked at, listed by labels, deleted; their logs and metrics. The manifests are kubernetes_pods.py's.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from ..errors import BackendUnavailable, Conflict, InvalidInput, NotFound, SandboxError
from ..models import SandboxSpec
from .kubernetes_pods import LABELS_ANNOTATION, MANAGED_LABEL, pod_name, sandbox_network_policy, sandbox_pod

if TYPE_CHECKING:  # (only for types: kubernetes.py imports this module)
    from .kubernetes import KubernetesBackend

# container waiting reasons that no wait will mend: the pod is given up at once
HOPELESS = {
    "ErrImagePull": "the image cannot be pulled",
    "ImagePullBackOff": "the image cannot be pulled",
    "ErrImageNeverPull": "the image is not on the node (imagePullPolicy Never)",
    "InvalidImageName": "the image name is not valid",
    "CreateContainerConfigError": "the container's configuration is refused",
    "CreateContainerError": "the container cannot be made",
    "RunContainerError": "the container does not start",
}


def pod_running(pod: dict[str, Any]) -> bool:
    """The pod runs, its container started (exec can reach it)."""
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    containers = status.get("containerStatuses") or []
    return bool(containers) and all("running" in (c.get("state") or {}) for c in containers)


def pod_problem(pod: dict[str, Any]) -> str | None:
    """Why a pod that does not run yet never will (a sentence), or None while it may."""
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in HOPELESS:
            return f"{HOPELESS[waiting['reason']]}: {waiting.get('message') or waiting['reason']}"
        if "terminated" in state:
            return f"its container ended at once ({state['terminated'].get('reason')})"
    if status.get("phase") in ("Failed", "Succeeded"):
        return f"the pod ended ({status.get('reason') or status['phase']}: {status.get('message', '')})"
    return None


def pod_labels_exact(pod: dict[str, Any]) -> dict[str, str]:
    """The labels the sandbox was made with, exactly (from the annotation; else the pod's labels)."""
    meta = pod.get("metadata") or {}
    try:
        found = json.loads((meta.get("annotations") or {})[LABELS_ANNOTATION])
        if isinstance(found, dict):
            return {str(k): str(v) for k, v in found.items()}
    except (KeyError, ValueError):
        pass
    return dict(meta.get("labels") or {})


class SandboxPods:
    """The pods (and NetworkPolicies) of one backend, in its namespace."""

    def __init__(self, backend: KubernetesBackend) -> None:
        self.backend = backend

    @property
    def _pods(self) -> str:
        return f"/api/v1/namespaces/{self.backend.namespace}/pods"

    @property
    def _policies(self) -> str:
        return f"/apis/networking.k8s.io/v1/namespaces/{self.backend.namespace}/networkpolicies"

    async def create(self, sandbox_id: str, spec: SandboxSpec, labels: dict[str, str]) -> None:
        """Make the pod and its NetworkPolicy, and return once the pod runs (InvalidInput when
        it never will, e.g. its image cannot be had; BackendUnavailable after pod_start_timeout)."""
        backend = self.backend
        settings = backend.pod_settings()
        manifest = sandbox_pod(sandbox_id, spec, labels, settings)
        try:
            pod = await backend.api.request("POST", self._pods, manifest, what=f"creating pod {pod_name(sandbox_id)}")
        except Conflict:
            raise Conflict(f"a pod {pod_name(sandbox_id)} exists already") from None
        uid = (pod.get("metadata") or {}).get("uid")
        if backend.network_policies:
            policy = sandbox_network_policy(sandbox_id, spec, settings, owner_uid=uid)
            try:
                await backend.api.request("POST", self._policies, policy, what="creating the sandbox's NetworkPolicy")
            except Conflict:  # an earlier pod's of this name, not yet collected with it: replaced
                await backend.api.request("DELETE", f"{self._policies}/{pod_name(sandbox_id)}", what="an old policy")
                await backend.api.request("POST", self._policies, policy, what="creating the sandbox's NetworkPolicy")
        await self.wait_running(sandbox_id, pod)

    async def wait_running(self, sandbox_id: str, pod: dict[str, Any]) -> None:
        """Watch the pod until it runs (from the version ``pod`` is)."""
        name, timeout = pod_name(sandbox_id), self.backend.pod_start_timeout
        deadline = time.monotonic() + timeout
        while not pod_running(pod):
            problem = pod_problem(pod)
            if problem is not None:
                raise InvalidInput(f"the sandbox's pod cannot run: {problem}", field="image")
            left = deadline - time.monotonic()
            if left <= 0:
                raise BackendUnavailable(f"the sandbox's pod {name} did not start within {timeout:g} s")
            version = (pod.get("metadata") or {}).get("resourceVersion", "")
            query: list[tuple[str, Any]] = [("fieldSelector", f"metadata.name={name}")]
            query += [("resourceVersion", version)] if version else []
            async for event in self.backend.api.watch(self._pods, query, left, f"pod {name}"):
                if event.get("type") == "DELETED":
                    raise BackendUnavailable(f"the sandbox's pod {name} was deleted while it started")
                if event.get("type") == "ERROR":  # e.g. 410 Gone: the version is too old; look again
                    pod = await self.get(sandbox_id)
                    break
                if event.get("type") in ("ADDED", "MODIFIED"):
                    pod = event["object"]
                    if pod_running(pod) or pod_problem(pod):
                        break
            else:
                pod = await self.get(sandbox_id)  # the watch ended (its timeout): look once more

    async def get(self, sandbox_id: str) -> dict[str, Any]:
        return await self.backend.api.request("GET", f"{self._pods}/{pod_name(sandbox_id)}", what="the sandbox's pod")

    async def delete(self, sandbox_id: str) -> None:
        """Delete the pod and its NetworkPolicy; nothing when they are gone already."""
        name = pod_name(sandbox_id)
        options = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 1,
            "propagationPolicy": "Background",
        }
        for path in (f"{self._pods}/{name}", *([f"{self._policies}/{name}"] if self.backend.network_policies else [])):
            try:
                await self.backend.api.request("DELETE", path, options, what=f"deleting {path.rsplit('/', 2)[-2]}")
            except NotFound:
                pass

    async def list(self, labels: dict[str, str] | None = None) -> list[dict[str, str]]:
        """The exact labels of this backend's sandbox pods that carry ``labels`` and are not on their way out."""
        answer = await self.backend.api.request(
            "GET", self._pods, query=[("labelSelector", f"{MANAGED_LABEL}=true")], what="the sandbox pods"
        )
        found = []
        for pod in answer.get("items") or []:
            if (pod.get("metadata") or {}).get("deletionTimestamp"):
                continue
            exact = pod_labels_exact(pod)
            if all(exact.get(k) == v for k, v in (labels or {}).items()):
                found.append(exact)
        return found

    async def log(self, sandbox_id: str, limit: int) -> str:
        path = f"{self._pods}/{pod_name(sandbox_id)}/log"
        return await self.backend.api.text(path, [("tailLines", 1000), ("limitBytes", limit)], "the pod's log")

    async def metrics(self, sandbox_id: str) -> dict[str, Any]:
        """The pod's figures from the metrics API (NotFound: none yet, or no such API)."""
        path = f"/apis/metrics.k8s.io/v1beta1/namespaces/{self.backend.namespace}/pods/{pod_name(sandbox_id)}"
        return await self.backend.api.request("GET", path, what="the pod's metrics")

    async def metrics_served(self) -> bool:
        """Whether the cluster serves the metrics API (its discovery document, open to every user)."""
        try:
            await self.backend.api.request("GET", "/apis/metrics.k8s.io/v1beta1", what="the metrics API")
        except SandboxError:
            return False
        return True

    async def delete_quietly(self, sandbox_id: str) -> None:
        """Delete, logging (not raising) what goes wrong: for cleanup after a failed create."""
        try:
            await asyncio.shield(self.delete(sandbox_id))
        except SandboxError as e:
            self.backend.log.warning("jupyter-sandbox: deleting the pod of %s: %s", sandbox_id, e)
