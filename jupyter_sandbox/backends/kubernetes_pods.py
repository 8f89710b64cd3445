"""What the Kubernetes backend creates, as plain manifests: a sandbox's pod and its NetworkPolicy.

Pure functions of the backend's settings (``PodSettings``, from its traitlets) and the sandbox's
spec, so the manifests can be validated (tests/test_k8s_manifests.py), checked against Pod Security
"restricted" and printed in docs/kubernetes.md without a cluster. ``API_CALLS`` lists every
(API group, resource, subresource, verb) the backend uses: the shipped Role grants exactly these.

Hardening (the "restricted" Pod Security level and more): non-root uid/gid, no privilege
escalation, no capability, the runtime's default seccomp profile, a read-only root filesystem, no
service-account token, no service links, no host namespace or path. The working directory and /tmp
are memory-backed emptyDirs whose sizes are part of the memory limit (as on Docker, where the
tmpfs mounts count against the container's memory); requests equal limits.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInput
from ..models import SandboxSpec
from . import programs
from .base import LABEL_PREFIX, WORKDIR

POD_PREFIX = "jupyter-sandbox-"
CONTAINER = "sandbox"
TMP_DIR = "/tmp"
# labels every sandbox pod carries, for selectors (the NetworkPolicy, list_existing)
APP_LABELS = {"app.kubernetes.io/name": "jupyter-sandbox", "app.kubernetes.io/component": "sandbox"}
MANAGED_LABEL = f"{LABEL_PREFIX}.managed"
SANDBOX_LABEL = f"{LABEL_PREFIX}.sandbox"
# the sandbox's own labels, exactly (a label value is limited to 63 characters of [A-Za-z0-9_.-])
LABELS_ANNOTATION = f"{LABEL_PREFIX}/labels"
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")

# (API group, resource, subresource, verb): every call the backend makes. The Role grants these.
# pods/exec: a websocket exec is an HTTP GET; API servers since 1.30 also ask for "create" on it.
API_CALLS: list[tuple[str, str, str, str]] = [
    ("", "pods", "", "create"),
    ("", "pods", "", "get"),
    ("", "pods", "", "list"),
    ("", "pods", "", "watch"),
    ("", "pods", "", "delete"),
    ("", "pods", "exec", "create"),
    ("", "pods", "exec", "get"),
    ("", "pods", "log", "get"),
    ("networking.k8s.io", "networkpolicies", "", "create"),
    ("networking.k8s.io", "networkpolicies", "", "delete"),
    ("metrics.k8s.io", "pods", "", "get"),
]


@dataclass
class PodSettings:
    """The backend's settings that shape a sandbox's pod (``KubernetesBackend.pod_settings()``)."""

    namespace: str = "default"
    image: str = "jupyter-sandbox:latest"  # for a spec that names none
    python: str = "python"
    uid: int = 1000
    gid: int = 1000
    tmp_size: int = 128 * 1024**2
    runtime_class_name: str = ""  # "" = the cluster's default; e.g. "gvisor", "kata"
    # a spec's runtime ("runc", "runsc") -> the RuntimeClass that gives it ("" = the cluster's default)
    runtime_classes: dict[str, str] = field(default_factory=lambda: {"runc": "", "runsc": "gvisor"})
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    affinity: dict[str, Any] = field(default_factory=dict)
    image_pull_secrets: list[str] = field(default_factory=list)
    image_pull_policy: str = "IfNotPresent"
    priority_class_name: str = ""
    service_account_name: str = ""  # "" = none named (the namespace's default); its token is never mounted
    extra_labels: dict[str, str] = field(default_factory=dict)
    # NetworkPolicy for sandboxes with network: egress anywhere but these (cluster, metadata)
    blocked_cidrs: list[str] = field(
        default_factory=lambda: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"]
    )
    blocked_cidrs_v6: list[str] = field(default_factory=lambda: ["fc00::/7", "fe80::/10"])
    dns_egress: bool = True  # sandboxes with network may ask the cluster's DNS (kube-dns pods, port 53)


def pod_name(sandbox_id: str) -> str:
    """The name of a sandbox's pod (and NetworkPolicy): a DNS label, so the id is lowercased and what
    a name cannot hold becomes '-' (then a hash of the id keeps two ids apart)."""
    safe = re.sub(r"[^a-z0-9-]", "-", sandbox_id.lower()).strip("-")
    if safe != sandbox_id:
        safe = f"{safe[:40]}-{hashlib.sha256(sandbox_id.encode()).hexdigest()[:8]}"
    return f"{POD_PREFIX}{safe}"


def memory_limit(spec: SandboxSpec, settings: PodSettings) -> int:
    """The pod's memory limit: the memory asked for, plus its working directory and /tmp (memory-backed)."""
    return spec.memory + spec.disk + settings.tmp_size


def cpu_quantity(cpus: float) -> str:
    """CPUs as a Kubernetes quantity, in millicores (at least 1m)."""
    return f"{max(1, round(cpus * 1000))}m"


def pod_labels(sandbox_id: str, labels: dict[str, str], settings: PodSettings) -> dict[str, str]:
    """The pod's Kubernetes labels: the app's, and each of the sandbox's whose value a label can
    hold (all of them stay exact in the LABELS_ANNOTATION annotation)."""
    out = {k: v for k, v in {**settings.extra_labels, **labels}.items() if LABEL_VALUE.match(v)}
    return {**out, **APP_LABELS, MANAGED_LABEL: "true", SANDBOX_LABEL: sandbox_id}


def runtime_class(spec: SandboxSpec, settings: PodSettings) -> str:
    """The RuntimeClass of a spec's pod ("" = the cluster's default); InvalidInput for a runtime
    this backend has none for."""
    if not spec.runtime:
        return settings.runtime_class_name
    if spec.runtime not in settings.runtime_classes:
        raise InvalidInput(
            f"runtime {spec.runtime!r} has no RuntimeClass on this cluster (KubernetesBackend.runtime_classes "
            f"has {', '.join(sorted(settings.runtime_classes)) or 'none'})",
            field="runtime",
        )
    return settings.runtime_classes[spec.runtime]


def init_command(python: str) -> list[str]:
    """PID 1 of the pod: sleeps, and reaps orphaned processes (programs/pod_init.py)."""
    return [python, "-I", "-c", programs.source("pod_init")]


def sandbox_pod(sandbox_id: str, spec: SandboxSpec, labels: dict[str, str], settings: PodSettings) -> dict[str, Any]:
    """The pod of one sandbox (a Pod manifest, as the API takes it)."""
    memory = str(memory_limit(spec, settings))
    resources = {"cpu": cpu_quantity(spec.cpus), "memory": memory}
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "hostname": "sandbox",
        "terminationGracePeriodSeconds": 2,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.uid,
            "runAsGroup": settings.gid,
            "fsGroup": settings.gid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": CONTAINER,
                "image": spec.image or settings.image,
                "imagePullPolicy": settings.image_pull_policy,
                "command": init_command(settings.python),
                "workingDir": WORKDIR,
                "env": [],
                "resources": {"requests": dict(resources), "limits": dict(resources)},
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": settings.uid,
                    "runAsGroup": settings.gid,
                    "allowPrivilegeEscalation": False,
                    "privileged": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "volumeMounts": [
                    {"name": "workdir", "mountPath": WORKDIR},
                    {"name": "tmp", "mountPath": TMP_DIR},
                ],
            }
        ],
        "volumes": [
            {"name": "workdir", "emptyDir": {"medium": "Memory", "sizeLimit": str(spec.disk)}},
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": str(settings.tmp_size)}},
        ],
    }
    runtime = runtime_class(spec, settings)
    if runtime:
        pod_spec["runtimeClassName"] = runtime
    if settings.node_selector:
        pod_spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in settings.tolerations]
    if settings.affinity:
        pod_spec["affinity"] = dict(settings.affinity)
    if settings.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": name} for name in settings.image_pull_secrets]
    if settings.priority_class_name:
        pod_spec["priorityClassName"] = settings.priority_class_name
    if settings.service_account_name:
        pod_spec["serviceAccountName"] = settings.service_account_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(sandbox_id),
            "namespace": settings.namespace,
            "labels": pod_labels(sandbox_id, labels, settings),
            "annotations": {LABELS_ANNOTATION: json.dumps({**settings.extra_labels, **labels}, sort_keys=True)},
        },
        "spec": pod_spec,
    }


def sandbox_network_policy(
    sandbox_id: str, spec: SandboxSpec, settings: PodSettings, owner_uid: str | None = None
) -> dict[str, Any]:
    """The NetworkPolicy of one sandbox's pod: no ingress; no egress, or (``spec.network``) egress
    anywhere but the blocked ranges (the cluster's, the metadata address), DNS to kube-dns allowed.
    With ``owner_uid`` (the pod's uid) it goes with its pod."""
    egress: list[dict[str, Any]] = []
    if spec.network:
        egress.append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(settings.blocked_cidrs)}}]})
        if settings.blocked_cidrs_v6:
            egress.append({"to": [{"ipBlock": {"cidr": "::/0", "except": list(settings.blocked_cidrs_v6)}}]})
        if settings.dns_egress:
            egress.append(
                {
                    "to": [
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }
                    ],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                }
            )
    metadata: dict[str, Any] = {
        "name": pod_name(sandbox_id),
        "namespace": settings.namespace,
        "labels": {**APP_LABELS, MANAGED_LABEL: "true", SANDBOX_LABEL: sandbox_id},
    }
    if owner_uid:
        metadata["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Pod", "name": pod_name(sandbox_id), "uid": owner_uid, "controller": False}
        ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata,
        "spec": {
            "podSelector": {"matchLabels": {SANDBOX_LABEL: sandbox_id}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": egress,
        },
    }
