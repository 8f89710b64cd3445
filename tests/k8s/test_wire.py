"""The test API server's wire rules, without a server: request attributes, RBAC matching,
quantities, selectors (each as the Kubernetes documents define them)."""

from __future__ import annotations

import pytest

from .wire import (
    ApiError,
    check_labels,
    field_selector_matches,
    label_selector_matches,
    match_labels,
    quantity,
    request_info,
    rule_allows,
)
from .wiretypes import discovery


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/ns/pods", {}, ("list", "", "ns", "pods", "", "")),
        ("GET", "/api/v1/namespaces/ns/pods", {"watch": "true"}, ("watch", "", "ns", "pods", "", "")),
        ("GET", "/api/v1/namespaces/ns/pods/p1", {}, ("get", "", "ns", "pods", "", "p1")),
        ("GET", "/api/v1/namespaces/ns/pods/p1/exec", {}, ("get", "", "ns", "pods", "exec", "p1")),
        ("POST", "/api/v1/namespaces/ns/pods/p1/exec", {}, ("create", "", "ns", "pods", "exec", "p1")),
        ("DELETE", "/api/v1/namespaces/ns/pods/p1", {}, ("delete", "", "ns", "pods", "", "p1")),
        ("DELETE", "/api/v1/namespaces/ns/pods", {}, ("deletecollection", "", "ns", "pods", "", "")),
        ("GET", "/api/v1/namespaces/ns", {}, ("get", "", "ns", "namespaces", "", "ns")),
        (
            "POST",
            "/apis/networking.k8s.io/v1/namespaces/ns/networkpolicies",
            {},
            ("create", "networking.k8s.io", "ns", "networkpolicies", "", ""),
        ),
        (
            "GET",
            "/apis/node.k8s.io/v1/runtimeclasses/gvisor",
            {},
            ("get", "node.k8s.io", "", "runtimeclasses", "", "gvisor"),
        ),
    ],
)
def test_request_info(method: str, path: str, query: dict[str, str], expected: tuple[str, ...]) -> None:
    info = request_info(method, path, query)
    assert info.resource_request
    assert (info.verb, info.group, info.namespace, info.resource, info.subresource, info.name) == expected


@pytest.mark.parametrize("path", ["/version", "/api", "/api/v1", "/apis", "/apis/node.k8s.io/v1", "/healthz"])
def test_discovery_paths_are_not_resource_requests(path: str) -> None:
    assert not request_info("GET", path, {}).resource_request


def test_discovery_documents() -> None:
    assert discovery("/api", metrics=True)["versions"] == ["v1"]
    names = {g["name"] for g in discovery("/apis", metrics=False)["groups"]}
    assert "networking.k8s.io" in names and "metrics.k8s.io" not in names
    pods = {r["name"]: r["verbs"] for r in discovery("/api/v1", metrics=True)["resources"]}
    assert set(pods["pods/exec"]) == {"create", "get"}
    assert discovery("/apis/metrics.k8s.io/v1beta1", metrics=False) is None


def test_rbac_rules() -> None:
    rules = [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
        {"apiGroups": ["networking.k8s.io"], "resources": ["*"], "verbs": ["*"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"], "resourceNames": ["only-this"]},
    ]
    assert rule_allows(rules, "", "pods", "", "watch")
    assert not rule_allows(rules, "", "pods", "", "create")
    assert rule_allows(rules, "", "pods", "exec", "create")
    assert not rule_allows(rules, "", "pods", "exec", "get")
    assert rule_allows(rules, "networking.k8s.io", "networkpolicies", "", "delete")
    assert not rule_allows(rules, "apps", "deployments", "", "get")
    assert rule_allows(rules, "", "pods", "log", "get", "only-this")
    assert not rule_allows(rules, "", "pods", "log", "get", "another")


@pytest.mark.parametrize(
    ("text", "value"),
    [("512Mi", 512 * 2**20), ("1Gi", 2**30), ("500m", 0.5), ("2", 2.0), ("1.5", 1.5), ("64M", 64e6), ("1e3", 1000.0)],
)
def test_quantities(text: str, value: float) -> None:
    assert quantity(text) == pytest.approx(value)


def test_a_bad_quantity_is_422() -> None:
    with pytest.raises(ApiError) as bad:
        quantity("12 parsecs")
    assert bad.value.code == 422 and bad.value.reason == "Invalid"


LABELS = {"app": "sandbox", "tier": "kernel", "owner": "alice"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("app=sandbox", True),
        ("app==sandbox,tier=kernel", True),
        ("app!=sandbox", False),
        ("app=other", False),
        ("owner in (alice, bob)", True),
        ("owner notin (alice,bob)", False),
        ("tier,owner", True),
        ("!missing", True),
        ("!owner", False),
        ("missing", False),
        ("app=sandbox,owner in (bob)", False),
    ],
)
def test_label_selectors(selector: str, matches: bool) -> None:
    assert label_selector_matches(selector, LABELS) is matches


def test_label_selector_objects() -> None:
    assert match_labels({"matchLabels": {"app": "sandbox"}}, LABELS)
    assert match_labels({}, LABELS)  # the empty selector selects every pod
    assert not match_labels({"matchExpressions": [{"key": "owner", "operator": "NotIn", "values": ["alice"]}]}, LABELS)
    assert match_labels({"matchExpressions": [{"key": "gone", "operator": "DoesNotExist"}]}, LABELS)


def test_field_selectors() -> None:
    pod = {"metadata": {"name": "p1", "namespace": "ns"}, "status": {"phase": "Running"}}
    assert field_selector_matches("metadata.name=p1,status.phase!=Failed", pod)
    assert not field_selector_matches("status.phase=Pending", pod)
    with pytest.raises(ApiError) as bad:
        field_selector_matches("spec.secret=x", pod)
    assert bad.value.code == 400


@pytest.mark.parametrize(
    ("labels", "valid"),
    [
        ({"app": "sandbox", "org.jupyter-sandbox/owner": "alice", "empty": ""}, True),
        ({"owner": "alice@example.com"}, False),
        ({"owner": "a" * 64}, False),
        ({"Bad Key": "x"}, False),
        ({"UPPER.example.com/key": "x"}, False),
        ({"key": "-leading-dash"}, False),
    ],
)
def test_label_validation(labels: dict[str, str], valid: bool) -> None:
    if valid:
        check_labels("Pod", "p", labels)
    else:
        with pytest.raises(ApiError) as bad:
            check_labels("Pod", "p", labels)
        assert bad.value.code == 422 and "metadata.labels" in bad.value.message
