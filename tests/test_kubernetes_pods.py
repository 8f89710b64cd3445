"""The Kubernetes backend's manifests (backends/kubernetes_pods.py), without a cluster: hardened as
Pod Security "restricted" asks, sized as the spec says, valid against the API's schemas."""

from __future__ import annotations

import json
import re
from pathlib import Path

import kubernetes_validate
import pytest

from jupyter_sandbox.backends.base import WORKDIR, labels
from jupyter_sandbox.backends.kubernetes import KubernetesBackend
from jupyter_sandbox.backends.kubernetes_files import quantity
from jupyter_sandbox.backends.kubernetes_kernels import pod_stopped_reason
from jupyter_sandbox.backends.kubernetes_pods import (
    API_CALLS,
    LABELS_ANNOTATION,
    SANDBOX_LABEL,
    PodSettings,
    memory_limit,
    pod_name,
    sandbox_network_policy,
    sandbox_pod,
)
from jupyter_sandbox.errors import InvalidInput
from jupyter_sandbox.models import SandboxSpec

MAXIMAL = PodSettings(
    namespace="sandboxes",
    runtime_class_name="kata",
    node_selector={"sandbox-node": "yes"},
    tolerations=[{"key": "sandbox", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}],
    affinity={
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]
            }
        }
    },
    image_pull_secrets=["registry-key"],
    priority_class_name="sandbox-low",
    service_account_name="sandboxes",
    extra_labels={"team": "data"},
)
SPEC = SandboxSpec(memory=256 * 1024**2, disk=64 * 1024**2, cpus=1.5, env={"SECRET": "x"})


def owner_labels() -> dict[str, str]:
    return labels("server1", "alice@example.org", sandbox="abc123")


@pytest.mark.parametrize("settings", [PodSettings(), MAXIMAL], ids=["default", "maximal"])
def test_pod_validates_against_the_api_schema(settings):
    pod = sandbox_pod("abc123", SPEC, owner_labels(), settings)
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
    policy = sandbox_network_policy("abc123", SandboxSpec(network=True), settings, owner_uid="u-1")
    kubernetes_validate.validate(policy, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize("settings", [PodSettings(), MAXIMAL], ids=["default", "maximal"])
def test_pod_is_hardened(settings):
    pod = sandbox_pod("abc123", SPEC, owner_labels(), settings)["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert not pod["hostNetwork"] and not pod["hostPID"] and not pod["hostIPC"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000 and pod["securityContext"]["runAsGroup"] == 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]} and "add" not in context["capabilities"]
    assert all("hostPath" not in v for v in pod["volumes"])
    assert container["env"] == []  # the sandbox's env goes to its kernels only


def test_requests_equal_limits_and_memory_counts_the_memory_backed_dirs():
    pod = sandbox_pod("abc123", SPEC, owner_labels(), PodSettings(tmp_size=32 * 1024**2))["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources["requests"] == resources["limits"]
    assert resources["limits"] == {"cpu": "1500m", "memory": str((256 + 64 + 32) * 1024**2)}
    assert int(resources["limits"]["memory"]) == memory_limit(SPEC, PodSettings(tmp_size=32 * 1024**2))
    volumes = {v["name"]: v["emptyDir"] for v in pod["volumes"]}
    assert volumes == {
        "workdir": {"medium": "Memory", "sizeLimit": str(64 * 1024**2)},
        "tmp": {"medium": "Memory", "sizeLimit": str(32 * 1024**2)},
    }
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts == {WORKDIR, "/tmp"}


def test_scheduling_settings_reach_the_pod():
    pod = sandbox_pod("abc123", SPEC, owner_labels(), MAXIMAL)
    spec = pod["spec"]
    assert spec["runtimeClassName"] == "kata"
    assert spec["nodeSelector"] == {"sandbox-node": "yes"}
    assert spec["tolerations"] == MAXIMAL.tolerations and spec["affinity"] == MAXIMAL.affinity
    assert spec["imagePullSecrets"] == [{"name": "registry-key"}]
    assert spec["serviceAccountName"] == "sandboxes" and spec["automountServiceAccountToken"] is False
    assert pod["metadata"]["namespace"] == "sandboxes"
    assert "runtimeClassName" not in sandbox_pod("abc123", SPEC, owner_labels(), PodSettings())["spec"]


def test_a_spec_runtime_picks_its_runtime_class_and_an_unknown_one_is_refused():
    gvisor = sandbox_pod("abc123", SandboxSpec(runtime="runsc"), owner_labels(), PodSettings())
    assert gvisor["spec"]["runtimeClassName"] == "gvisor"
    with pytest.raises(InvalidInput) as info:
        sandbox_pod("abc123", SandboxSpec(runtime="runsc"), owner_labels(), PodSettings(runtime_classes={}))
    assert info.value.field == "runtime"


def test_labels_that_cannot_be_label_values_are_kept_exactly_in_an_annotation():
    given = owner_labels()
    meta = sandbox_pod("abc123", SPEC, given, MAXIMAL)["metadata"]
    assert "org.jupyter-sandbox.owner" not in meta["labels"]  # '@' cannot be in a label value
    assert meta["labels"][SANDBOX_LABEL] == "abc123" and meta["labels"]["team"] == "data"
    assert json.loads(meta["annotations"][LABELS_ANNOTATION]) == {**given, "team": "data"}


def test_network_policy_denies_everything_unless_the_sandbox_has_network():
    closed = sandbox_network_policy("abc123", SandboxSpec(network=False), PodSettings())
    assert closed["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert closed["spec"]["ingress"] == [] and closed["spec"]["egress"] == []
    assert closed["spec"]["podSelector"] == {"matchLabels": {SANDBOX_LABEL: "abc123"}}
    settings = PodSettings(blocked_cidrs=["10.0.0.0/8", "169.254.169.254/32"], blocked_cidrs_v6=[], dns_egress=False)
    opened = sandbox_network_policy("abc123", SandboxSpec(network=True), settings)
    assert opened["spec"]["ingress"] == []
    assert opened["spec"]["egress"] == [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "169.254.169.254/32"]}}]}
    ]


def test_api_calls_are_distinct_and_well_formed():
    assert len(set(API_CALLS)) == len(API_CALLS)
    verbs = {"create", "get", "list", "watch", "delete", "patch", "update"}
    assert all(len(call) == 4 and call[3] in verbs for call in API_CALLS)
    assert ("", "pods", "exec", "create") in API_CALLS and ("", "pods", "log", "get") in API_CALLS


def test_pod_names_are_dns_labels_and_distinct():
    names = {pod_name(i) for i in ("sbx_d6ad09b7b7e2", "sbx-d6ad09b7b7e2", "SBX_d6ad09b7b7e2", "abc123")}
    assert len(names) == 4
    assert all(re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", n) for n in names), names
    assert pod_name("abc123") == "jupyter-sandbox-abc123"


def test_the_docs_list_every_backend_setting():
    docs = Path(__file__).resolve().parent.parent / "docs" / "kubernetes.md"
    section = docs.read_text().split("## Backend settings", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in KubernetesBackend.class_traits(config=True) if f"`{name}`" not in section]
    assert missing == []


def test_a_stopped_pod_says_why():
    def pod(terminated=None, phase="Running", deleting=False):
        state = {"terminated": terminated} if terminated else {"running": {}}
        meta = {"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {}
        return {"metadata": meta, "status": {"phase": phase, "containerStatuses": [{"state": state}]}}

    assert pod_stopped_reason(pod()) is None
    assert "out of memory" in pod_stopped_reason(pod({"reason": "OOMKilled", "exitCode": 137}, "Failed"))
    assert "exit code 2" in pod_stopped_reason(pod({"reason": "Error", "exitCode": 2}, "Failed"))
    assert "deleted" in pod_stopped_reason(None) and "being deleted" in pod_stopped_reason(pod(deleting=True))


def test_quantities_are_read_as_the_api_writes_them():
    assert quantity("1152Mi") == 1152 * 1024**2 and quantity("1207959552") == 1207959552
    assert quantity("250m") == 0.25 and quantity("123456789n") == pytest.approx(0.123456789)
    assert quantity("2k") == 2000
    with pytest.raises(ValueError):
        quantity("12 bananas")
