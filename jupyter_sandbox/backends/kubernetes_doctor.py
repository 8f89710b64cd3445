"""``jupyter sandbox doctor --backend kubernetes``: what the Kubernetes backend needs from a cluster.

Each line is (what, ok, detail, how to fix), ok being True, False, or None for something optional:
the API answers; each call in ``API_CALLS`` is allowed (a SelfSubjectAccessReview per call, in the
sandboxes' namespace: the answer of the API server's own authorizer, RBAC or another); each
configured RuntimeClass exists; the metrics API is there (optional: without it a sandbox's stats
are read inside the sandbox).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client as kube_client
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client.exceptions import ApiException
from traitlets.config import Config

from .kubernetes import KubernetesBackend
from .kubernetes_pods import API_CALLS

# The doctor's own call beyond the backend's: RuntimeClasses are cluster-scoped (a ClusterRole,
# deploy/kubernetes/rbac.yaml). (API group, resource, subresource, verb), as API_CALLS.
DOCTOR_CALLS: list[tuple[str, str, str, str]] = [("node.k8s.io", "runtimeclasses", "", "get")]
METRICS_GROUP = "metrics.k8s.io"
RBAC_FIX = "kubectl apply -k deploy/kubernetes (rbac.yaml: the Role in the sandboxes' namespace, bound to the service's account)"

Line = tuple[str, bool | None, str, str]


@dataclass
class ClusterTarget:
    """Where and how the backend reaches the cluster (the backend's settings, or the doctor's flags)."""

    namespace: str = "default"
    kubeconfig: str = ""  # "" = $KUBECONFIG, else ~/.kube/config
    context: str = ""
    in_cluster: bool = False  # the pod's service-account token instead of a kubeconfig
    # RuntimeClasses the backend is set to use: the default one must exist, the others may not
    runtime_class: str = ""
    other_runtime_classes: list[str] = field(default_factory=list)


def call_name(call: tuple[str, str, str, str]) -> str:
    group, resource, subresource, verb = call
    what = f"{resource}/{subresource}" if subresource else resource
    return f"{verb} {what}" + (f" ({group})" if group else "")


async def _configuration(target: ClusterTarget) -> kube_client.Configuration:
    configuration = kube_client.Configuration()
    if target.in_cluster:
        kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]  # unannotated upstream
    else:
        path = target.kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
        if not os.path.isfile(os.path.expanduser(path or "~/.kube/config")):
            raise FileNotFoundError("no such file")
        await kube_config.load_kube_config(
            config_file=path, context=target.context or None, client_configuration=configuration, persist_config=False
        )
    return configuration


async def kubernetes_checks(target: ClusterTarget) -> list[Line]:
    """Every line of the doctor's report for this cluster target."""
    where = "in-cluster" if target.in_cluster else target.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    try:
        configuration = await _configuration(target)
    except Exception as e:  # a missing or broken kubeconfig: said, and nothing else can be checked
        return [
            (
                "Kubernetes API",
                False,
                f"no cluster configuration ({where}): {e}",
                "point --kubeconfig (or $KUBECONFIG) at the cluster's kubeconfig, or run inside the cluster",
            )
        ]
    async with kube_client.ApiClient(configuration) as api:
        try:
            version = await kube_client.VersionApi(api).get_code()
        except Exception as e:  # unreachable, refused, TLS: the one line that matters
            return [
                (
                    "Kubernetes API",
                    False,
                    f"{configuration.host} ({where}) does not answer: {type(e).__name__}: {e}",
                    "check the API server's address in the kubeconfig and that it is reachable from here",
                )
            ]
        out: list[Line] = [
            ("Kubernetes API", True, f"{configuration.host} ({where}), version {version.git_version}", "")
        ]
        out += await _access(api, target)
        out += await _runtime_classes(api, target)
        out.append(await _metrics(api))
    return out


async def _allowed(
    api: kube_client.ApiClient, call: tuple[str, str, str, str], namespace: str | None
) -> tuple[bool, str]:
    group, resource, subresource, verb = call
    review = kube_client.V1SelfSubjectAccessReview(
        api_version="authorization.k8s.io/v1",
        kind="SelfSubjectAccessReview",
        spec=kube_client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=kube_client.V1ResourceAttributes(
                group=group, resource=resource, subresource=subresource or None, verb=verb, namespace=namespace
            )
        ),
    )
    answer = await kube_client.AuthorizationV1Api(api).create_self_subject_access_review(body=review)
    status = answer.status
    return bool(status and status.allowed), (status.reason or "") if status else ""


async def _access(api: kube_client.ApiClient, target: ClusterTarget) -> list[Line]:
    out: list[Line] = []
    for call in API_CALLS:
        out.append(await _access_line(api, call, target.namespace, RBAC_FIX))
    if target.runtime_class or target.other_runtime_classes:
        for call in DOCTOR_CALLS:
            fix = "kubectl apply -k deploy/kubernetes (rbac.yaml: the ClusterRole jupyter-sandbox-runtimeclasses)"
            out.append(await _access_line(api, call, None, fix))
    return out


async def _access_line(
    api: kube_client.ApiClient, call: tuple[str, str, str, str], namespace: str | None, fix: str
) -> Line:
    name = f"may {call_name(call)}"
    where = f"in namespace {namespace}" if namespace else "cluster-wide"
    try:
        allowed, reason = await _allowed(api, call, namespace)
    except ApiException as e:
        return (
            name,
            False,
            f"cannot ask the API ({e.status} {e.reason})",
            "the API server must serve SelfSubjectAccessReview",
        )
    if allowed:
        return (name, True, f"allowed {where}", "")
    return (name, False, f"denied {where}" + (f": {reason}" if reason else ""), fix)


async def _runtime_classes(api: kube_client.ApiClient, target: ClusterTarget) -> list[Line]:
    out: list[Line] = []
    wanted = [(target.runtime_class, True)] if target.runtime_class else []
    wanted += [(name, False) for name in target.other_runtime_classes if name and name != target.runtime_class]
    if not wanted:
        out.append(("RuntimeClass", None, "none configured: the cluster's default runtime (runc)", ""))
    for name, required in wanted:
        what = f"RuntimeClass {name}"
        fix = (
            f"install the runtime (gVisor's runsc, Kata) on the nodes and create RuntimeClass {name!r} "
            "(docs/kubernetes.md)"
        )
        try:
            found = await kube_client.NodeV1Api(api).read_runtime_class(name)
        except ApiException as e:
            if e.status == 404:
                detail = "missing" + ("" if required else " (only a spec asking for its runtime needs it)")
                out.append((what, False if required else None, detail, fix))
            else:
                out.append((what, False if required else None, f"cannot read it ({e.status} {e.reason})", RBAC_FIX))
            continue
        out.append((what, True, f"present (handler {found.handler})", ""))
    return out


async def _metrics(api: kube_client.ApiClient) -> Line:
    try:
        groups = await kube_client.ApisApi(api).get_api_versions()
    except ApiException as e:
        return ("metrics API", None, f"cannot list the API groups ({e.status} {e.reason})", "")
    if any(group.name == METRICS_GROUP for group in groups.groups or []):
        return ("metrics API", True, f"{METRICS_GROUP} served: stats come from it", "")
    return (
        "metrics API",
        None,
        f"{METRICS_GROUP} not served: stats are read inside each sandbox",
        "optional: install metrics-server",
    )


def doctor_lines(settings: Mapping[str, Any]) -> list[Line]:
    """The doctor's entry (backends.backend_doctor). ``settings``: its flags (namespace, kubeconfig,
    context, runtime_class; "" = not given) and ``config``, the traitlets config it loaded (the
    sandbox service's file among it). A flag not given takes the backend's configured value, so in
    the service's pod the doctor checks what the service will use."""
    backend = KubernetesBackend(config=settings.get("config") or Config())
    kubeconfig = str(settings.get("kubeconfig") or backend.kubeconfig)
    in_cluster = backend.in_cluster
    if in_cluster is None:  # as the backend decides
        in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not kubeconfig
    target = ClusterTarget(
        namespace=str(settings.get("namespace") or backend.namespace),
        kubeconfig=kubeconfig,
        context=str(settings.get("context") or backend.context),
        in_cluster=in_cluster,
        runtime_class=str(settings.get("runtime_class") or backend.runtime_class_name),
        other_runtime_classes=sorted({name for name in backend.runtime_classes.values() if name}),
    )
    return asyncio.run(kubernetes_checks(target))
