"""A Pod Security Standards checker (levels "baseline" and "restricted"), written control by control
from the Pod Security Standards document (kubernetes.io/docs/concepts/security/pod-security-standards/),
for the pods the project ships and makes: no cluster (and so no Pod Security Admission) runs here.

``violations(pod, level)`` takes a Pod, or anything with a pod template (Deployment, StatefulSet,
DaemonSet, ReplicaSet, Job, CronJob), and returns one line per breach, ``"<control>: <field> = <value>"``;
an empty list is a pass. "Restricted" is everything of "baseline" plus its own controls.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

LEVELS = ("baseline", "restricted")

# Baseline "Capabilities": what may be added beyond the default set
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
# Baseline "Sysctls": the safe, namespaced set (the document's list up to Kubernetes 1.29+)
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
# Baseline "SELinux": the types a container may ask for
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
# Restricted "Volume Types": the only volume sources allowed
RESTRICTED_VOLUMES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
TEMPLATE_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"})


def pod_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """The pod a manifest makes (``{"metadata", "spec"}``): a Pod itself, or a workload's template."""
    kind = manifest.get("kind")
    if kind == "Pod":
        return manifest
    if kind in TEMPLATE_KINDS:
        return dict(manifest["spec"]["template"])
    if kind == "CronJob":
        return dict(manifest["spec"]["jobTemplate"]["spec"]["template"])
    raise ValueError(f"{kind} makes no pod")


def _containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for field in CONTAINER_LISTS:
        for container in spec.get(field) or []:
            yield f"spec.{field}[{container.get('name', '?')}]", container


def violations(manifest: dict[str, Any], level: str = "restricted") -> list[str]:
    """Every breach of the level's controls by the manifest's pod (empty: it passes)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    pod = pod_of(manifest)
    out = _baseline(pod)
    if level == "restricted":
        out += _restricted(pod)
    return out


def _baseline(pod: dict[str, Any]) -> list[str]:
    out: list[str] = []
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    pod_sc = spec.get("securityContext") or {}
    containers = list(_containers(spec))

    def bad(control: str, field: str, value: Any) -> None:
        out.append(f"{control}: {field} = {value!r}")

    # HostProcess: undefined/nil or false
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess") not in (None, False):
        bad("HostProcess", "spec.securityContext.windowsOptions.hostProcess", pod_sc["windowsOptions"]["hostProcess"])
    for where, c in containers:
        value = ((c.get("securityContext") or {}).get("windowsOptions") or {}).get("hostProcess")
        if value not in (None, False):
            bad("HostProcess", f"{where}.securityContext.windowsOptions.hostProcess", value)
    # Host Namespaces: undefined/nil or false
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field) not in (None, False):
            bad("Host Namespaces", f"spec.{field}", spec[field])
    for where, c in containers:
        sc = c.get("securityContext") or {}
        # Privileged Containers: undefined/nil or false
        if sc.get("privileged") not in (None, False):
            bad("Privileged Containers", f"{where}.securityContext.privileged", sc["privileged"])
        # Capabilities: added ones only from the default set
        for cap in (sc.get("capabilities") or {}).get("add") or []:
            if cap not in BASELINE_CAPABILITIES:
                bad("Capabilities", f"{where}.securityContext.capabilities.add", cap)
        # Host Ports: undefined/nil or 0
        for port in c.get("ports") or []:
            if port.get("hostPort") not in (None, 0):
                bad("Host Ports", f"{where}.ports[*].hostPort", port["hostPort"])
        # Host Probes / Lifecycle Hooks: no host other than the pod's own
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            for handler in ("httpGet", "tcpSocket"):
                host = ((c.get(probe) or {}).get(handler) or {}).get("host")
                if host not in (None, ""):
                    bad("Host Probes / Lifecycle Hooks", f"{where}.{probe}.{handler}.host", host)
        for hook in ("postStart", "preStop"):
            for handler in ("httpGet", "tcpSocket"):
                host = (((c.get("lifecycle") or {}).get(hook) or {}).get(handler) or {}).get("host")
                if host not in (None, ""):
                    bad("Host Probes / Lifecycle Hooks", f"{where}.lifecycle.{hook}.{handler}.host", host)
        # /proc Mount Type: undefined/nil or Default
        if sc.get("procMount") not in (None, "Default"):
            bad("/proc Mount Type", f"{where}.securityContext.procMount", sc["procMount"])
    # HostPath Volumes: undefined/nil
    for volume in spec.get("volumes") or []:
        if volume.get("hostPath") is not None:
            bad("HostPath Volumes", f"spec.volumes[{volume.get('name', '?')}].hostPath", volume["hostPath"])
    # AppArmor: RuntimeDefault or Localhost (fields); runtime/default or localhost/* (annotations)
    scopes = [("spec", pod_sc)] + [(where, c.get("securityContext") or {}) for where, c in containers]
    for where, sc in scopes:
        kind = (sc.get("appArmorProfile") or {}).get("type")
        if kind not in (None, "RuntimeDefault", "Localhost"):
            bad("AppArmor", f"{where}.securityContext.appArmorProfile.type", kind)
    for key, value in (metadata.get("annotations") or {}).items():
        if key.startswith(APPARMOR_ANNOTATION) and not (value == "runtime/default" or value.startswith("localhost/")):
            bad("AppArmor", f"metadata.annotations[{key}]", value)
    # SELinux: type from the allowed set; user and role undefined/""
    for where, sc in scopes:
        options = sc.get("seLinuxOptions") or {}
        if options.get("type") not in (None, *SELINUX_TYPES):
            bad("SELinux", f"{where}.securityContext.seLinuxOptions.type", options["type"])
        for field in ("user", "role"):
            if options.get(field) not in (None, ""):
                bad("SELinux", f"{where}.securityContext.seLinuxOptions.{field}", options[field])
    # Seccomp (baseline): never Unconfined
    for where, sc in scopes:
        kind = (sc.get("seccompProfile") or {}).get("type")
        if kind == "Unconfined":
            bad("Seccomp", f"{where}.securityContext.seccompProfile.type", kind)
    # Sysctls: only the safe set
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            bad("Sysctls", "spec.securityContext.sysctls[*].name", sysctl.get("name"))
    return out


def _restricted(pod: dict[str, Any]) -> list[str]:
    out: list[str] = []
    spec = pod.get("spec") or {}
    pod_sc = spec.get("securityContext") or {}
    containers = list(_containers(spec))
    # Windows pods are exempt from the privilege escalation, seccomp and capabilities controls
    windows = (spec.get("os") or {}).get("name") == "windows"

    def bad(control: str, field: str, value: Any) -> None:
        out.append(f"{control}: {field} = {value!r}")

    # Volume Types: only the listed core volume sources
    for volume in spec.get("volumes") or []:
        for source in set(volume) - {"name"} - RESTRICTED_VOLUMES:
            bad("Volume Types", f"spec.volumes[{volume.get('name', '?')}].{source}", "not allowed")
    pod_non_root = pod_sc.get("runAsNonRoot")
    if pod_non_root not in (None, True):
        bad("Running as Non-root", "spec.securityContext.runAsNonRoot", pod_non_root)
    # Running as Non-root user: runAsUser never 0
    if pod_sc.get("runAsUser") == 0:
        bad("Running as Non-root user", "spec.securityContext.runAsUser", 0)
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost") and not windows:
        bad("Seccomp", "spec.securityContext.seccompProfile.type", pod_seccomp)
    for where, c in containers:
        sc = c.get("securityContext") or {}
        if not windows:
            # Privilege Escalation: false, set explicitly
            if sc.get("allowPrivilegeEscalation") is not False:
                bad(
                    "Privilege Escalation",
                    f"{where}.securityContext.allowPrivilegeEscalation",
                    sc.get("allowPrivilegeEscalation"),
                )
            # Capabilities: drop ALL; add nothing but NET_BIND_SERVICE
            capabilities = sc.get("capabilities") or {}
            if "ALL" not in (capabilities.get("drop") or []):
                bad("Capabilities", f"{where}.securityContext.capabilities.drop", capabilities.get("drop"))
            for cap in capabilities.get("add") or []:
                if cap != "NET_BIND_SERVICE":
                    bad("Capabilities", f"{where}.securityContext.capabilities.add", cap)
            # Seccomp: RuntimeDefault or Localhost, here or inherited from the pod
            kind = (sc.get("seccompProfile") or {}).get("type")
            if kind is None and pod_seccomp is None:
                bad("Seccomp", f"{where}.securityContext.seccompProfile.type", None)
            elif kind not in (None, "RuntimeDefault", "Localhost"):
                bad("Seccomp", f"{where}.securityContext.seccompProfile.type", kind)
        # Running as Non-root: true here, or undefined when the pod says true
        non_root = sc.get("runAsNonRoot")
        if non_root is False or (non_root is None and pod_non_root is not True):
            bad("Running as Non-root", f"{where}.securityContext.runAsNonRoot", non_root)
        if sc.get("runAsUser") == 0:
            bad("Running as Non-root user", f"{where}.securityContext.runAsUser", 0)
    return out
