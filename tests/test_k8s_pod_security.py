"""The Pod Security Standards checker (tests/k8s/pod_security.py): a hardened pod passes both levels,
and each control fails on a pod that breaks it, at the level that names it (and only that control)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from k8s.pod_security import violations


def good_pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "ok", "annotations": {}},
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "runAsGroup": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "main",
                    "image": "x",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "readinessProbe": {"tcpSocket": {"port": 80}},
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}],
        },
    }


def main(pod: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = pod["spec"]["containers"][0]
    return container


def sc(pod: dict[str, Any]) -> dict[str, Any]:
    return main(pod)["securityContext"]  # type: ignore[no-any-return]


def pod_sc(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["spec"]["securityContext"]  # type: ignore[no-any-return]


Mutation = Callable[[dict[str, Any]], None]

# (control, level that names it, how to break it)
BREACHES: list[tuple[str, str, Mutation]] = [
    ("HostProcess", "baseline", lambda p: pod_sc(p).update(windowsOptions={"hostProcess": True})),
    ("HostProcess", "baseline", lambda p: sc(p).update(windowsOptions={"hostProcess": True})),
    ("Host Namespaces", "baseline", lambda p: p["spec"].update(hostNetwork=True)),
    ("Host Namespaces", "baseline", lambda p: p["spec"].update(hostPID=True)),
    ("Host Namespaces", "baseline", lambda p: p["spec"].update(hostIPC=True)),
    ("Privileged Containers", "baseline", lambda p: sc(p).update(privileged=True)),
    ("Capabilities", "baseline", lambda p: sc(p)["capabilities"].update(add=["SYS_ADMIN"])),
    ("HostPath Volumes", "baseline", lambda p: p["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/"}})),
    ("Host Ports", "baseline", lambda p: main(p).update(ports=[{"containerPort": 80, "hostPort": 8080}])),
    (
        "Host Probes / Lifecycle Hooks",
        "baseline",
        lambda p: main(p)["readinessProbe"]["tcpSocket"].update(host="10.0.0.1"),
    ),
    (
        "Host Probes / Lifecycle Hooks",
        "baseline",
        lambda p: main(p).update(lifecycle={"preStop": {"httpGet": {"port": 80, "host": "metadata"}}}),
    ),
    ("AppArmor", "baseline", lambda p: sc(p).update(appArmorProfile={"type": "Unconfined"})),
    (
        "AppArmor",
        "baseline",
        lambda p: p["metadata"]["annotations"].update(
            {"container.apparmor.security.beta.kubernetes.io/main": "unconfined"}
        ),
    ),
    ("SELinux", "baseline", lambda p: pod_sc(p).update(seLinuxOptions={"type": "spc_t"})),
    ("SELinux", "baseline", lambda p: sc(p).update(seLinuxOptions={"user": "system_u"})),
    ("/proc Mount Type", "baseline", lambda p: sc(p).update(procMount="Unmasked")),
    ("Seccomp", "baseline", lambda p: pod_sc(p).update(seccompProfile={"type": "Unconfined"})),
    ("Sysctls", "baseline", lambda p: pod_sc(p).update(sysctls=[{"name": "kernel.msgmax", "value": "1"}])),
    (
        "Volume Types",
        "restricted",
        lambda p: p["spec"]["volumes"].append({"name": "n", "nfs": {"server": "s", "path": "/"}}),
    ),
    ("Privilege Escalation", "restricted", lambda p: sc(p).pop("allowPrivilegeEscalation")),
    ("Privilege Escalation", "restricted", lambda p: sc(p).update(allowPrivilegeEscalation=True)),
    ("Running as Non-root", "restricted", lambda p: pod_sc(p).pop("runAsNonRoot")),
    ("Running as Non-root", "restricted", lambda p: sc(p).update(runAsNonRoot=False)),
    ("Running as Non-root user", "restricted", lambda p: sc(p).update(runAsUser=0)),
    ("Running as Non-root user", "restricted", lambda p: pod_sc(p).update(runAsUser=0)),
    ("Seccomp", "restricted", lambda p: pod_sc(p).pop("seccompProfile")),
    ("Capabilities", "restricted", lambda p: sc(p).pop("capabilities")),
    ("Capabilities", "restricted", lambda p: sc(p)["capabilities"].update(add=["CHOWN"])),
]


def test_a_hardened_pod_passes_both_levels() -> None:
    assert violations(good_pod(), "baseline") == []
    assert violations(good_pod(), "restricted") == []


@pytest.mark.parametrize(
    ("control", "level", "breach"), BREACHES, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(BREACHES)]
)
def test_each_control_fails_on_a_pod_that_breaks_it(control: str, level: str, breach: Mutation) -> None:
    pod = good_pod()
    breach(pod)
    found = violations(pod, "restricted")
    assert found, f"{control} breach not seen"
    # the document lists hostPath under both HostPath Volumes and (restricted) Volume Types
    also = {"Volume Types"} if control == "HostPath Volumes" else set()
    assert {line.split(":")[0] for line in found} == {control, *also}, found
    # a baseline control fails baseline too; a restricted-only control leaves baseline passing
    assert bool(violations(pod, "baseline")) == (level == "baseline")


def test_container_settings_may_come_from_the_pod() -> None:
    """runAsNonRoot and seccomp set on the pod cover its containers; unset on both, they fail."""
    pod = good_pod()
    assert "runAsNonRoot" not in sc(pod) and "seccompProfile" not in sc(pod)
    assert violations(pod) == []
    bare = copy.deepcopy(pod)
    del pod_sc(bare)["runAsNonRoot"], pod_sc(bare)["seccompProfile"]
    assert {line.split(":")[0] for line in violations(bare)} == {"Running as Non-root", "Seccomp"}
    sc(bare).update(runAsNonRoot=True, seccompProfile={"type": "RuntimeDefault"})
    assert violations(bare) == []


def test_init_and_ephemeral_containers_are_checked() -> None:
    for field in ("initContainers", "ephemeralContainers"):
        pod = good_pod()
        pod["spec"][field] = [{"name": "extra", "image": "x"}]
        found = violations(pod)
        assert any(f"spec.{field}[extra]" in line for line in found), found


def test_a_deployment_is_checked_through_its_template() -> None:
    pod = good_pod()
    sc(pod)["privileged"] = True
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": pod}}
    assert [line.split(":")[0] for line in violations(deployment)] == ["Privileged Containers"]
    with pytest.raises(ValueError):
        violations({"kind": "Service"})
