"""What the test API server serves, as the discovery documents say it: API groups, their
resources and verbs, and the version it claims."""

from __future__ import annotations

from typing import Any

GROUPS = {  # group -> the one version served
    "": "v1",
    "networking.k8s.io": "v1",
    "authorization.k8s.io": "v1",
    "node.k8s.io": "v1",
    "metrics.k8s.io": "v1beta1",
}
KINDS = {"pods": ("Pod", "v1"), "networkpolicies": ("NetworkPolicy", "networking.k8s.io/v1")}
VERSION = {
    "major": "1",
    "minor": "34",
    "gitVersion": "v1.34.0+jupyter-sandbox-test",
    "gitCommit": "",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "",
    "compiler": "",
    "platform": "linux/amd64",
}
_RW = ["create", "delete", "get", "list", "watch"]
RESOURCES: dict[str, list[dict[str, Any]]] = {
    "": [
        {
            "name": "namespaces",
            "singularName": "namespace",
            "namespaced": False,
            "kind": "Namespace",
            "verbs": ["get", "list"],
        },
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": _RW, "shortNames": ["po"]},
        {
            "name": "pods/exec",
            "singularName": "",
            "namespaced": True,
            "kind": "PodExecOptions",
            "verbs": ["create", "get"],
        },
        {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
        {"name": "pods/status", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
    ],
    "networking.k8s.io": [
        {
            "name": "networkpolicies",
            "singularName": "networkpolicy",
            "namespaced": True,
            "kind": "NetworkPolicy",
            "verbs": _RW,
            "shortNames": ["netpol"],
        },
    ],
    "authorization.k8s.io": [
        {
            "name": "selfsubjectaccessreviews",
            "singularName": "selfsubjectaccessreview",
            "namespaced": False,
            "kind": "SelfSubjectAccessReview",
            "verbs": ["create"],
        },
    ],
    "node.k8s.io": [
        {
            "name": "runtimeclasses",
            "singularName": "runtimeclass",
            "namespaced": False,
            "kind": "RuntimeClass",
            "verbs": ["get", "list"],
        },
    ],
    "metrics.k8s.io": [
        {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics", "verbs": ["get", "list"]},
    ],
}


def _group(name: str) -> dict[str, Any]:
    version = {"groupVersion": f"{name}/{GROUPS[name]}", "version": GROUPS[name]}
    return {"name": name, "versions": [version], "preferredVersion": version}


def discovery(path: str, *, metrics: bool) -> dict[str, Any] | None:
    """The document at a discovery path (/version, /api, /apis, /api/v1, /apis/GROUP[/VERSION])."""
    groups = [g for g in GROUPS if g and (metrics or g != "metrics.k8s.io")]
    parts = [p for p in path.split("/") if p]
    if parts == ["version"]:
        return VERSION
    if parts == ["api"]:
        cidrs = [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": cidrs}
    if parts == ["apis"]:
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(g) for g in groups]}
    if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups:
        return {"kind": "APIGroup", "apiVersion": "v1", **_group(parts[1])}
    if parts == ["api", "v1"]:
        group = ""
    elif len(parts) == 3 and parts[0] == "apis" and parts[1] in groups and parts[2] == GROUPS[parts[1]]:
        group = parts[1]
    else:
        return None
    group_version = f"{group}/{GROUPS[group]}" if group else "v1"
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": RESOURCES[group]}
