"""A pod spec to Docker options, and a container's state back to the pod's status: pure
functions, checked without an engine (the API server tests check them against Docker)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from .pods import POD_LABEL, SANDBOX_NETWORK, config_error, docker_options, egress_allowed, pod_status, validate
from .test_api_server import pod_manifest
from .wire import ApiError


def options(pod: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return docker_options(
        pod, **{"labels": {POD_LABEL: "ns/p"}, "network": False, "runtime": None, "pids_limit": 64, **kwargs}
    )


def test_restricted_pod_to_docker_options() -> None:
    pod = pod_manifest("p", ["sleep", "infinity"], memory="512Mi")
    opts = options(pod)
    assert opts["entrypoint"] == ["sleep", "infinity"] and opts["command"] == []
    assert opts["user"] == "1000:1000" and opts["read_only"] is True and opts["cap_drop"] == ["ALL"]
    assert opts["security_opt"] == ["no-new-privileges"]
    assert opts["mem_limit"] == opts["memswap_limit"] == 512 * 2**20 and opts["nano_cpus"] == 500_000_000
    assert opts["pids_limit"] == 64 and opts["network_mode"] == "none"
    assert opts["labels"] == {"app": "k8sapi-test", POD_LABEL: "ns/p"}
    assert opts["environment"]["GREETING"] == "hello" and opts["working_dir"] == "/home/user"
    assert "size=33554432" in opts["tmpfs"]["/home/user"] and "exec" in opts["tmpfs"]["/tmp"].split(",")
    assert "runtime" not in opts and "privileged" not in opts


def test_args_without_command_keep_the_image_entrypoint_and_network_and_runtime_apply() -> None:
    pod = pod_manifest("p", [])
    container = pod["spec"]["containers"][0]
    del container["command"]
    container["args"] = ["-c", "print(1)"]
    opts = options(pod, network=True, runtime="runsc")
    assert "entrypoint" not in opts and opts["command"] == ["-c", "print(1)"]
    assert opts["network_mode"] == SANDBOX_NETWORK and opts["runtime"] == "runsc"


def test_container_security_context_overrides_the_pods() -> None:
    pod = pod_manifest("p", ["true"])
    pod["spec"]["containers"][0]["securityContext"]["runAsUser"] = 2000
    assert options(pod)["user"] == "2000:1000"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p["spec"]["containers"].append(copy.deepcopy(p["spec"]["containers"][0])), "spec.containers"),
        (lambda p: p["spec"].update(hostNetwork=True), "spec.hostNetwork"),
        (lambda p: p["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/"}}), "spec.volumes[2]"),
        (lambda p: p["spec"]["containers"][0].update(name="Not_A_Label"), "spec.containers[0].name"),
        (lambda p: p["spec"]["containers"][0]["resources"]["limits"].update(memory="lots"), "resources.limits[memory]"),
        (lambda p: p["spec"]["containers"][0]["env"].append({"name": "X", "valueFrom": {}}), "env[1].valueFrom"),
        (
            lambda p: p["spec"]["containers"][0]["volumeMounts"].append({"name": "nope", "mountPath": "/x"}),
            "volumeMounts[2].name",
        ),
    ],
)
def test_pods_the_server_cannot_run_are_422(change: Any, field: str) -> None:
    pod = pod_manifest("p", ["true"])
    change(pod)
    with pytest.raises(ApiError) as bad:
        validate(pod)
    assert bad.value.code == 422 and field in bad.value.message


def test_run_as_non_root_against_the_image_user() -> None:
    pod = pod_manifest("p", ["true"])
    assert config_error(pod, "0") == ""  # runAsUser 1000 decides, not the image
    for sc in (pod["spec"]["securityContext"], pod["spec"]["containers"][0]["securityContext"]):
        sc.pop("runAsUser", None)
    assert config_error(pod, "1000:1000") == ""
    assert "non-root" in config_error(pod, "0") and "non-numeric" in config_error(pod, "sandbox")


def inspected(status: str, **state: Any) -> dict[str, Any]:
    base = {"Status": status, "Running": status == "running", "StartedAt": "2026-12-07T10:00:00.123Z"}
    networks = {SANDBOX_NETWORK: {"IPAddress": "172.18.0.5"}}
    return {"Id": "abc", "Image": "sha256:1", "State": {**base, **state}, "NetworkSettings": {"Networks": networks}}


def test_status_from_the_container() -> None:
    pod = pod_manifest("p", ["true"])
    pending = pod_status(pod, None)
    assert (
        pending["phase"] == "Pending"
        and pending["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    )
    assert pending["qosClass"] == "Guaranteed"
    running = pod_status(pod, inspected("running"))
    assert running["phase"] == "Running" and running["podIP"] == "172.18.0.5"
    assert {c["type"]: c["status"] for c in running["conditions"]}["Ready"] == "True"
    done = pod_status(pod, inspected("exited", ExitCode=0, FinishedAt="2026-12-07T10:00:01Z"))
    assert done["phase"] == "Succeeded" and done["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    failed = pod_status(pod, inspected("exited", ExitCode=3))
    assert failed["phase"] == "Failed" and failed["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    oom = pod_status(pod, inspected("exited", ExitCode=137, OOMKilled=True))
    assert oom["containerStatuses"][0]["state"]["terminated"]["reason"] == "OOMKilled"
    waiting = pod_status(pod, None, ("ErrImagePull", "not here"))
    assert waiting["containerStatuses"][0]["state"]["waiting"] == {"reason": "ErrImagePull", "message": "not here"}


def test_egress_only_through_a_selecting_policy_with_egress_rules() -> None:
    labels = {"app": "sandbox", "id": "a"}
    deny = {"spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
    allow_a = {"spec": {"podSelector": {"matchLabels": {"id": "a"}}, "policyTypes": ["Egress"], "egress": [{}]}}
    allow_b = {"spec": {"podSelector": {"matchLabels": {"id": "b"}}, "policyTypes": ["Egress"], "egress": [{}]}}
    assert not egress_allowed([], labels)
    assert not egress_allowed([deny], labels)
    assert not egress_allowed([deny, allow_b], labels)
    assert egress_allowed([deny, allow_a], labels)
