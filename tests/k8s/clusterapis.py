"""The read-mostly cluster APIs: namespaces, SelfSubjectAccessReview (answered from the
server's Role rules), RuntimeClasses (name -> Docker runtime) and the metrics API's PodMetrics
(from docker stats)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .podruntime import PodRuntime
from .resources import StoredResources
from .store import now
from .wire import ApiError, RequestInfo, not_found, rule_allows


class ClusterApis(StoredResources):
    pods: PodRuntime
    runtime_classes: dict[str, str]

    rules: list[dict[str, Any]] | None  # a Role's rules; None: everything is allowed

    def allowed(self, group: str, resource: str, subresource: str, verb: str, name: str = "") -> bool:
        return self.rules is None or rule_allows(self.rules, group, resource, subresource, verb, name)

    async def _core_namespaces_get(self, request: web.Request, info: RequestInfo) -> web.Response:
        if info.name not in self.namespaces:
            raise not_found("namespaces", info.name)
        return web.json_response(self._namespace_object(info.name))

    async def _core_namespaces_list(self, request: web.Request, info: RequestInfo) -> web.Response:
        items = [self._namespace_object(n) for n in sorted(self.namespaces)]
        return web.json_response(
            {
                "kind": "NamespaceList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self.store.revision)},
                "items": items,
            }
        )

    def _namespace_object(self, name: str) -> dict[str, Any]:
        meta = {"name": name, "labels": {"kubernetes.io/metadata.name": name}}
        return {"kind": "Namespace", "apiVersion": "v1", "metadata": meta, "status": {"phase": "Active"}}

    async def _authorization_selfsubjectaccessreviews_create(
        self, request: web.Request, info: RequestInfo
    ) -> web.Response:
        review = await self._body(request)
        attrs = (review.get("spec") or {}).get("resourceAttributes")
        if attrs is None:
            allowed = True  # nonResourceAttributes: discovery paths are open to everyone here
        else:
            allowed = self.allowed(
                attrs.get("group", ""),
                attrs.get("resource", ""),
                attrs.get("subresource", ""),
                attrs.get("verb", ""),
                attrs.get("name", ""),
            )
        reason = "allowed by the test API server's Role rules" if allowed else ""
        review.update(
            kind="SelfSubjectAccessReview",
            apiVersion="authorization.k8s.io/v1",
            status={"allowed": allowed, "reason": reason},
        )
        review.setdefault("metadata", {})["creationTimestamp"] = None
        return web.json_response(review, status=201)

    def _runtime_class(self, name: str) -> dict[str, Any]:
        meta = {"name": name, "resourceVersion": "1", "uid": f"runtimeclass-{name}"}
        return {
            "kind": "RuntimeClass",
            "apiVersion": "node.k8s.io/v1",
            "metadata": meta,
            "handler": self.runtime_classes[name],
        }

    async def _node_runtimeclasses_get(self, request: web.Request, info: RequestInfo) -> web.Response:
        if info.name not in self.runtime_classes:
            raise not_found("runtimeclasses", info.name, info.group)
        return web.json_response(self._runtime_class(info.name))

    async def _node_runtimeclasses_list(self, request: web.Request, info: RequestInfo) -> web.Response:
        items = [
            {k: v for k, v in self._runtime_class(n).items() if k not in ("kind", "apiVersion")}
            for n in sorted(self.runtime_classes)
        ]
        return web.json_response(
            {
                "kind": "RuntimeClassList",
                "apiVersion": "node.k8s.io/v1",
                "metadata": {"resourceVersion": "1"},
                "items": items,
            }
        )

    async def _pod_metrics(self, pod: dict[str, Any]) -> dict[str, Any] | None:
        meta = pod["metadata"]
        cid = self.pods.container(meta["namespace"], meta["name"])
        if cid is None or pod["status"].get("phase") != "Running":
            return None
        usage = await self.pods.usage(cid)
        return {
            "kind": "PodMetrics",
            "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "labels": meta.get("labels") or {},
                "creationTimestamp": now(),
            },
            "timestamp": now(),
            "window": "10s",
            "containers": [{"name": pod["spec"]["containers"][0]["name"], "usage": usage}],
        }

    async def _metrics_pods_get(self, request: web.Request, info: RequestInfo) -> web.Response:
        metrics = await self._pod_metrics(self._get(info))
        if metrics is None:
            raise ApiError(404, "NotFound", f'podmetrics.metrics.k8s.io "{info.namespace}/{info.name}" not found')
        return web.json_response(metrics)

    async def _metrics_pods_list(self, request: web.Request, info: RequestInfo) -> web.Response:
        found = [await self._pod_metrics(p) for p in self._select(request, self.store.find("pods", info.namespace))]
        items = [m for m in found if m is not None]
        return web.json_response(
            {"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items}
        )
