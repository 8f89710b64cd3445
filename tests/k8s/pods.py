"""Pods as Docker containers: a pod spec mapped to Docker's create options (what the kubelet and
container runtime would do with it), and a container's state mapped back to the pod's status.
One container per pod; what cannot be honoured here is refused with 422, not ignored."""

from __future__ import annotations

from typing import Any

from docker.types import Mount

from .wire import DNS_LABEL, invalid, match_labels, quantity

SANDBOX_NETWORK = "jupyter-sandbox"  # scripts/setup-docker.sh fences it (no host, no metadata address)
POD_LABEL = "org.jupyter-sandbox.test-k8s.pod"  # namespace/name of the pod a container is
SERVER_LABEL = "org.jupyter-sandbox.test-k8s.server"  # which test API server made it
# The kubelet gives every container the API server's service variables, enableServiceLinks or
# not (the address is a typical cluster's; nothing answers there).
MASTER_SERVICE_ENV = {
    "KUBERNETES_SERVICE_HOST": "10.96.0.1",
    "KUBERNETES_SERVICE_PORT": "443",
    "KUBERNETES_SERVICE_PORT_HTTPS": "443",
    "KUBERNETES_PORT": "tcp://10.96.0.1:443",
    "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443",
    "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
    "KUBERNETES_PORT_443_TCP_PORT": "443",
    "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1",
}
_UNSUPPORTED_SPEC = (
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "initContainers",
    "ephemeralContainers",
    "shareProcessNamespace",
)


def security(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """The container's effective securityContext: the pod's, overridden field by field by its own."""
    pod_sc = pod["spec"].get("securityContext") or {}
    own = container.get("securityContext") or {}
    merged = {k: pod_sc[k] for k in ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile") if k in pod_sc}
    merged.update(own)
    return merged


def validate(pod: dict[str, Any]) -> None:
    """422 for a pod this server cannot run as written."""
    name = pod["metadata"].get("name", "")
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        raise invalid("Pod", name, "spec", "Required value")
    containers = spec.get("containers")
    if not isinstance(containers, list) or len(containers) != 1:
        raise invalid("Pod", name, "spec.containers", "the test API server runs exactly one container per pod")
    for key in _UNSUPPORTED_SPEC:
        if spec.get(key):
            raise invalid("Pod", name, f"spec.{key}", "not supported by the test API server")
    container = containers[0]
    for key in ("name", "image"):
        if not container.get(key):
            raise invalid("Pod", name, f"spec.containers[0].{key}", "Required value")
    if not DNS_LABEL.match(container["name"]) or len(container["name"]) > 63:
        raise invalid(
            "Pod", name, "spec.containers[0].name", f'Invalid value: "{container["name"]}": must be an RFC 1123 label'
        )
    for i, v in enumerate(spec.get("volumes") or []):
        if not DNS_LABEL.match(str(v.get("name", ""))):
            raise invalid(
                "Pod", name, f"spec.volumes[{i}].name", f'Invalid value: "{v.get("name")}": must be an RFC 1123 label'
            )
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    for i, v in enumerate(volumes.values()):
        if set(v) - {"name", "emptyDir"}:
            raise invalid(
                "Pod", name, f"spec.volumes[{i}]", "only emptyDir volumes are supported by the test API server"
            )
    for i, m in enumerate(container.get("volumeMounts") or []):
        if m.get("name") not in volumes:
            raise invalid("Pod", name, f"spec.containers[0].volumeMounts[{i}].name", f'Not found: "{m.get("name")}"')
    for i, e in enumerate(container.get("env") or []):
        if not e.get("name") or "=" in e["name"]:
            raise invalid("Pod", name, f"spec.containers[0].env[{i}].name", f'Invalid value: "{e.get("name")}"')
        if "valueFrom" in e:
            raise invalid("Pod", name, f"spec.containers[0].env[{i}].valueFrom", "not supported by the test API server")
    for key, value in ((container.get("resources") or {}).get("limits") or {}).items():
        quantity(value, f"spec.containers[0].resources.limits[{key}]")


def config_error(pod: dict[str, Any], image_user: str) -> str:
    """Why the kubelet would refuse to start the container (CreateContainerConfigError), or ""."""
    sc = security(pod, pod["spec"]["containers"][0])
    uid = sc.get("runAsUser")
    if sc.get("runAsNonRoot"):
        if uid is None and not image_user.split(":")[0].isdigit():
            return "container has runAsNonRoot and image has non-numeric user, cannot verify user is non-root"
        if uid == 0 or (uid is None and image_user.split(":")[0] == "0"):
            return "container's runAsUser breaks non-root policy"
    return ""


def docker_options(
    pod: dict[str, Any], *, labels: dict[str, str], network: bool, runtime: str | None, pids_limit: int
) -> dict[str, Any]:
    """Keyword arguments of docker's ``containers.create`` for this pod."""
    spec = pod["spec"]
    c = spec["containers"][0]
    sc = security(pod, c)
    opts: dict[str, Any] = {
        "image": c["image"],
        "hostname": pod["metadata"]["name"][:63],
        "labels": {**pod["metadata"].get("labels", {}), **labels},
        "environment": {**MASTER_SERVICE_ENV, **{e["name"]: str(e.get("value", "")) for e in c.get("env") or []}},
        "network_mode": SANDBOX_NETWORK if network else "none",
        "pids_limit": pids_limit,  # the kubelet's podPidsLimit: a node setting, not in the pod spec
        "detach": True,
    }
    if "command" in c:
        opts["entrypoint"] = c["command"]
        opts["command"] = c.get("args", [])
    elif "args" in c:
        opts["command"] = c["args"]
    if c.get("workingDir"):
        opts["working_dir"] = c["workingDir"]
    if "runAsUser" in sc:
        opts["user"] = f"{sc['runAsUser']}:{sc.get('runAsGroup', sc['runAsUser'])}"
    if sc.get("readOnlyRootFilesystem"):
        opts["read_only"] = True
    if sc.get("privileged"):
        opts["privileged"] = True
    caps = sc.get("capabilities") or {}
    if caps.get("drop"):
        opts["cap_drop"] = caps["drop"]
    if caps.get("add"):
        opts["cap_add"] = caps["add"]
    security_opt = []
    if sc.get("allowPrivilegeEscalation") is False:
        security_opt.append("no-new-privileges")
    if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        security_opt.append("seccomp=unconfined")
    if security_opt:
        opts["security_opt"] = security_opt
    limits = (c.get("resources") or {}).get("limits") or {}
    if "memory" in limits:
        opts["mem_limit"] = opts["memswap_limit"] = int(quantity(limits["memory"]))
    if "cpu" in limits:
        opts["nano_cpus"] = int(quantity(limits["cpu"]) * 1e9)
    if runtime:
        opts["runtime"] = runtime
    volumes = {v["name"]: v.get("emptyDir") or {} for v in spec.get("volumes") or []}
    tmpfs, mounts = {}, []
    for m in c.get("volumeMounts") or []:
        empty_dir = volumes[m["name"]]
        if empty_dir.get("medium") == "Memory":
            # emptyDir is world-writable and executable in Kubernetes; Docker's tmpfs default is noexec
            size = f",size={int(quantity(empty_dir['sizeLimit']))}" if empty_dir.get("sizeLimit") else ""
            # and writable by the pod's user: this engine ignores a tmpfs's mode, so it is owned by that user
            owner = f",uid={sc['runAsUser']},gid={sc.get('runAsGroup', sc['runAsUser'])}" if "runAsUser" in sc else ""
            tmpfs[m["mountPath"]] = f"rw,exec,nosuid,nodev,mode=1777{size}{owner}"
        else:
            mounts.append(Mount(m["mountPath"], None, type="volume", read_only=bool(m.get("readOnly"))))
    if tmpfs:
        opts["tmpfs"] = tmpfs
    if mounts:
        opts["mounts"] = mounts
    return opts


def _time(docker_time: str) -> str | None:
    if not docker_time or docker_time.startswith("0001-"):
        return None
    return docker_time.split(".")[0].rstrip("Z") + "Z"


def pod_status(
    pod: dict[str, Any], inspected: dict[str, Any] | None, waiting: tuple[str, str] | None = None
) -> dict[str, Any]:
    """The pod's status from its container's ``docker inspect`` (None: no container yet)."""
    c = pod["spec"]["containers"][0]
    limits = (c.get("resources") or {}).get("limits") or {}
    requests = (c.get("resources") or {}).get("requests") or {}
    out: dict[str, Any] = {"hostIP": "127.0.0.1", "qosClass": _qos(limits, requests)}
    cstatus: dict[str, Any] = {
        "name": c["name"],
        "image": c["image"],
        "imageID": "",
        "restartCount": 0,
        "ready": False,
        "started": False,
    }
    state = (inspected or {}).get("State") or {}
    if inspected is None or state.get("Status") in (None, "created"):
        reason, message = waiting or ("ContainerCreating", "")
        out["phase"] = "Pending"
        cstatus["state"] = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
    else:
        cstatus["containerID"] = f"docker://{inspected['Id']}"
        cstatus["imageID"] = inspected.get("Image", "")
        if state.get("Running"):
            out["phase"] = "Running"
            cstatus.update(
                ready=True, started=True, state={"running": {"startedAt": _time(state.get("StartedAt", ""))}}
            )
        else:
            code = state.get("ExitCode", 0)
            reason = "OOMKilled" if state.get("OOMKilled") else ("Completed" if code == 0 else "Error")
            out["phase"] = "Succeeded" if code == 0 and not state.get("OOMKilled") else "Failed"
            terminated = {
                "exitCode": code,
                "reason": reason,
                "startedAt": _time(state.get("StartedAt", "")),
                "finishedAt": _time(state.get("FinishedAt", "")),
                "containerID": cstatus["containerID"],
            }
            cstatus["state"] = {"terminated": terminated}
        networks = (inspected.get("NetworkSettings") or {}).get("Networks") or {}
        ip = (networks.get(SANDBOX_NETWORK) or {}).get("IPAddress")
        if ip:
            out.update(podIP=ip, podIPs=[{"ip": ip}])
    ready = "True" if cstatus["ready"] else "False"
    out["conditions"] = [
        {"type": "PodScheduled", "status": "True"},
        {"type": "Initialized", "status": "True"},
        {"type": "ContainersReady", "status": ready},
        {"type": "Ready", "status": ready},
    ]
    out["containerStatuses"] = [cstatus]
    return out


def _qos(limits: dict[str, Any], requests: dict[str, Any]) -> str:
    if not limits and not requests:
        return "BestEffort"
    both = {"cpu", "memory"}
    if both <= set(limits) and all(quantity(requests.get(k, limits[k])) == quantity(limits[k]) for k in both):
        return "Guaranteed"
    return "Burstable"


def egress_allowed(policies: list[dict[str, Any]], labels: dict[str, str]) -> bool:
    """Whether a NetworkPolicy selecting the pod lets it send anything. Deliberately closed: a pod no
    policy selects gets no network here (in Kubernetes it would be unrestricted)."""
    for p in policies:
        spec = p.get("spec") or {}
        types = spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])
        if "Egress" in types and spec.get("egress") and match_labels(spec.get("podSelector") or {}, labels):
            return True
    return False
