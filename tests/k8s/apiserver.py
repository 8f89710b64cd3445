"""A test Kubernetes API server (aiohttp) whose pods are real Docker containers.

It serves, with the API's wire semantics, what the project's Kubernetes backend uses: discovery,
namespaces (read), pods (create, get, list, watch, delete; exec over WebSocket; log), network
policies, SelfSubjectAccessReview, RuntimeClasses and the metrics API. Every request needs the
bearer token (401 otherwise); with ``rules`` set (a Role's rules) anything else is 403. Every
request is recorded in ``requests`` for tests to assert on. See tests/k8s/README.md."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from typing import Any

from aiohttp import web

from .podexec import serve_exec, wants_websocket
from .podruntime import PodRuntime
from .pods import pod_status, validate
from .store import Store, now
from .wire import (
    ApiError,
    RequestInfo,
    field_selector_matches,
    invalid,
    label_selector_matches,
    not_found,
    request_info,
    rule_allows,
    status,
)
from .wiretypes import GROUPS, KINDS, discovery

log = logging.getLogger(__name__)
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # as the API server's generateName suffixes
BASIC_USER = {"selfsubjectaccessreviews", "selfsubjectrulesreviews"}
INFO = web.RequestKey("info", RequestInfo)
CONNECT = {"exec", "attach", "portforward"}  # GET over WebSocket also needs "create" (as Kubernetes 1.35)


class ApiServer:
    def __init__(
        self,
        *,
        token: str,
        namespaces: list[str],
        user: str = "system:serviceaccount:default:jupyter-sandbox",
        runtime_classes: dict[str, str] | None = None,
        extra_labels: dict[str, str] | None = None,
        pids_limit: int = 1024,
        metrics: bool = True,
    ) -> None:
        self.token = token
        self.user = user
        self.namespaces = set(namespaces)
        self.rules: list[dict[str, Any]] | None = None  # None: everything is allowed
        self.metrics = metrics
        self.requests: list[dict[str, Any]] = []
        self.store = Store()
        self.server_id = secrets.token_hex(4)
        self.runtime_classes = runtime_classes or {}
        self.pods = PodRuntime(
            self.store,
            self.server_id,
            extra_labels=extra_labels or {},
            runtime_classes=self.runtime_classes,
            pids_limit=pids_limit,
        )
        self.app = web.Application(middlewares=[self._middleware], client_max_size=16 * 2**20)
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self.app.on_startup.append(self._startup)
        self.app.on_cleanup.append(self._cleanup)

    async def _startup(self, app: web.Application) -> None:
        self.pods.start()

    async def _cleanup(self, app: web.Application) -> None:
        await self.pods.shutdown()

    # -- middleware: record, authenticate, authorize, Status on errors --------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        info = request_info(request.method, request.path, dict(request.query))
        entry = {
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "verb": info.verb,
            "group": info.group,
            "resource": info.resource,
            "subresource": info.subresource,
            "namespace": info.namespace,
            "name": info.name,
            "status": None,
        }
        self.requests.append(entry)
        try:
            if request.headers.get("Authorization", "") != f"Bearer {self.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            self._authorize(info, websocket=wants_websocket(request))
            request[INFO] = info
            response: web.StreamResponse = await handler(request)
        except ApiError as e:
            log.info("test API server: %s %s -> %s %s", request.method, request.path, e.code, e.message)
            response = web.json_response(status(e.code, e.reason, e.message, e.details), status=e.code)
        entry["status"] = response.status
        return response

    def allowed(self, group: str, resource: str, subresource: str, verb: str, name: str = "") -> bool:
        return self.rules is None or rule_allows(self.rules, group, resource, subresource, verb, name)

    def _authorize(self, info: RequestInfo, *, websocket: bool) -> None:
        if not info.resource_request or info.resource in BASIC_USER:
            return  # discovery and self-reviews are every authenticated user's (system:discovery, system:basic-user)
        verbs = [info.verb]
        if websocket and info.subresource in CONNECT:
            verbs.append("create")
        for verb in verbs:
            if not self.allowed(info.group, info.resource, info.subresource, verb, info.name):
                full = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
                what = f'{info.resource} "{info.name}"' if info.name else info.resource
                where = f' in the namespace "{info.namespace}"' if info.namespace else ""
                message = f'{what} is forbidden: User "{self.user}" cannot {verb} resource "{full}" in API group "{info.group}"{where}'
                raise ApiError(
                    403, "Forbidden", message, {"name": info.name, "group": info.group, "kind": info.resource}
                )

    # -- routing ----------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        info = request[INFO]
        if not info.resource_request:
            body = discovery(request.path, metrics=self.metrics)
            if body is None or request.method != "GET":
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return web.json_response(body)
        versions = GROUPS.get(info.group)
        if versions is None or info.version != versions or (info.group == "metrics.k8s.io" and not self.metrics):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        handler = getattr(
            self, f"_{info.group.split('.')[0] or 'core'}_{info.resource}_{info.subresource or info.verb}", None
        )
        if handler is None:
            raise ApiError(
                405,
                "MethodNotAllowed",
                f"the server does not allow this method on the requested resource ({info.verb} {info.resource})",
            )
        result: web.StreamResponse = await handler(request, info)
        return result

    # -- helpers ----------------------------------------------------------------------------------

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError as e:
            raise ApiError(400, "BadRequest", f"the request body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        return body

    def _namespace(self, namespace: str) -> None:
        if namespace not in self.namespaces:
            raise not_found("namespaces", namespace)

    def _get(self, info: RequestInfo) -> dict[str, Any]:
        obj = self.store.get(info.resource, info.namespace, info.name)
        if obj is None:
            raise not_found(info.resource, info.name, info.group)
        return obj

    async def _create(self, request: web.Request, info: RequestInfo, check: Any = None) -> dict[str, Any]:
        self._namespace(info.namespace)
        obj = await self._body(request)
        kind, api_version = KINDS[info.resource]
        if obj.get("kind", kind) != kind or obj.get("apiVersion", api_version) != api_version:
            raise ApiError(
                400,
                "BadRequest",
                f"the body is a {obj.get('apiVersion')}/{obj.get('kind')}, not a {api_version}/{kind}",
            )
        meta = obj.setdefault("metadata", {})
        if meta.get("namespace", info.namespace) != info.namespace:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(secrets.choice(GENERATE_ALPHABET) for _ in range(5))
        name = meta.get("name", "")
        if not name:
            raise invalid(kind, "", "metadata.name", "Required value: name or generateName is required")
        if len(name) > 253 or not DNS_SUBDOMAIN.match(name):
            raise invalid(
                kind,
                name,
                "metadata.name",
                f"Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'",
            )
        if self.store.get(info.resource, info.namespace, name) is not None:
            raise ApiError(
                409, "AlreadyExists", f'{info.resource} "{name}" already exists', {"name": name, "kind": info.resource}
            )
        if check:
            check(obj)
        obj.update(kind=kind, apiVersion=api_version)
        return await self.store.add(info.resource, info.namespace, obj)

    def _select(self, request: web.Request, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        labels = request.query.get("labelSelector", "")
        fields = request.query.get("fieldSelector", "")
        return [
            o
            for o in objects
            if label_selector_matches(labels, o["metadata"].get("labels") or {}) and field_selector_matches(fields, o)
        ]

    def _list(self, request: web.Request, info: RequestInfo) -> web.Response:
        kind, api_version = KINDS[info.resource]
        items = [
            {k: v for k, v in o.items() if k not in ("kind", "apiVersion")}
            for o in self._select(request, self.store.list(info.resource, info.namespace))
        ]
        meta = {"resourceVersion": str(self.store.revision)}
        return web.json_response({"kind": f"{kind}List", "apiVersion": api_version, "metadata": meta, "items": items})

    async def _watch(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        """Watch events as JSON lines: from ``resourceVersion`` on, or (without one) ADDED for what
        exists now and then every change; 410 Expired when the version is older than the history."""
        since = request.query.get("resourceVersion", "")
        try:
            timeout = float(request.query.get("timeoutSeconds") or 1800)
            revision = int(since) if since not in ("", "0") else self.store.revision
        except ValueError:
            raise ApiError(400, "BadRequest", f'invalid resourceVersion "{since}" or timeoutSeconds') from None
        self._select(request, [{"metadata": {}}])  # a bad selector is a 400 before the stream starts
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)

        async def send(kind: str, obj: dict[str, Any]) -> None:
            await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        try:
            if since in ("", "0"):
                for obj in self._select(request, self.store.list(info.resource, info.namespace)):
                    await send("ADDED", obj)
            elif revision < self.store.oldest() - 1:
                await send(
                    "ERROR", status(410, "Expired", f"too old resource version: {revision} ({self.store.oldest()})")
                )
                return response
            await self._follow(request, info, send, revision, timeout)
        except ConnectionResetError:
            pass  # the client stopped watching
        return response

    async def _follow(self, request: web.Request, info: RequestInfo, send: Any, revision: int, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            seen = self.store.revision
            events = self.store.events_since(info.resource, revision)  # every event up to `seen`
            revision = seen
            for _, kind, obj in events:
                in_namespace = not info.namespace or obj["metadata"].get("namespace") == info.namespace
                if in_namespace and self._select(request, [obj]):
                    await send(kind, obj)
            async with self.store.changed:
                if self.store.revision == seen:  # nothing new while sending
                    try:
                        await asyncio.wait_for(self.store.changed.wait(), max(0.0, deadline - loop.time()))
                    except asyncio.TimeoutError:
                        pass

    # -- core/v1 ----------------------------------------------------------------------------------

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

    async def _core_pods_create(self, request: web.Request, info: RequestInfo) -> web.Response:
        def admit(pod: dict[str, Any]) -> None:
            validate(pod)
            rc = pod["spec"].get("runtimeClassName")
            if rc and rc not in self.runtime_classes:
                raise ApiError(403, "Forbidden", f'pod rejected: RuntimeClass "{rc}" not found')
            spec = pod["spec"]
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("terminationGracePeriodSeconds", 30)
            spec.setdefault("serviceAccountName", "default")
            spec.setdefault("nodeName", "test-node")
            pod["status"] = {**pod_status(pod, None), "startTime": now()}

        pod = await self._create(request, info, admit)
        self.pods.background(self.pods.run(pod))
        return web.json_response(pod, status=201)

    async def _core_pods_get(self, request: web.Request, info: RequestInfo) -> web.Response:
        return web.json_response(self._get(info))

    async def _core_pods_status(self, request: web.Request, info: RequestInfo) -> web.Response:
        if info.verb != "get":
            raise ApiError(405, "MethodNotAllowed", "the test API server only reads pods/status")
        return web.json_response(self._get(info))

    async def _core_pods_list(self, request: web.Request, info: RequestInfo) -> web.Response:
        return self._list(request, info)

    async def _core_pods_watch(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        return await self._watch(request, info)

    async def _core_pods_delete(self, request: web.Request, info: RequestInfo) -> web.Response:
        pod = self._get(info)
        options = await self._body(request) if request.can_read_body else {}
        grace_text = request.query.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
        try:
            grace = int(pod["spec"]["terminationGracePeriodSeconds"] if grace_text is None else grace_text)
        except ValueError:
            raise ApiError(400, "BadRequest", f'gracePeriodSeconds must be an integer, not "{grace_text}"') from None
        if "deletionTimestamp" in pod["metadata"]:
            return web.json_response(pod)
        self.pods.mark_deleting(pod, max(grace, 0))
        await self.store.modified("pods", pod)
        self.pods.background(self.pods.delete(pod, max(grace, 0)))
        return web.json_response(pod)

    async def _core_pods_log(self, request: web.Request, info: RequestInfo) -> web.Response:
        pod = self._get(info)
        own = pod["spec"]["containers"][0]["name"]
        container = request.query.get("container", own)
        if container != own:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {info.name}")
        cid = self.pods.container(info.namespace, info.name)
        if cid is None:
            raise ApiError(
                400, "BadRequest", f'container "{own}" in pod "{info.name}" is waiting to start: ContainerCreating'
            )
        tail = request.query.get("tailLines")
        try:
            lines = None if tail is None else int(tail)
        except ValueError:
            raise ApiError(400, "BadRequest", f'tailLines must be an integer, not "{tail}"') from None
        return web.Response(body=await self.pods.logs(cid, lines), content_type="text/plain")

    async def _core_pods_exec(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        pod = self._get(info)
        own = pod["spec"]["containers"][0]["name"]
        q = request.query
        command = q.getall("command", [])
        if not command:
            raise ApiError(400, "BadRequest", "you must specify at least one command for the container")
        if q.get("container", own) != own:
            raise ApiError(400, "BadRequest", f"container {q.get('container')} is not valid for pod {info.name}")
        if q.get("tty", "false").lower() in ("1", "true"):
            raise ApiError(400, "BadRequest", "tty is not supported by the test API server")
        if not wants_websocket(request):
            raise ApiError(
                400, "BadRequest", "Upgrade request required: the test API server speaks only the WebSocket protocols"
            )
        cid = self.pods.container(info.namespace, info.name)
        if cid is None or pod["status"].get("phase") != "Running":
            raise ApiError(400, "BadRequest", f'unable to upgrade connection: container not found ("{own}")')

        def flag(name: str) -> bool:
            return q.get(name, "false").lower() in ("1", "true")

        return await serve_exec(
            request, cid, command, stdin=flag("stdin"), stdout=flag("stdout"), stderr=flag("stderr")
        )

    # -- networking.k8s.io/v1 ---------------------------------------------------------------------

    async def _networking_networkpolicies_create(self, request: web.Request, info: RequestInfo) -> web.Response:
        def check(policy: dict[str, Any]) -> None:
            if not isinstance((policy.get("spec") or {}).get("podSelector"), dict):
                raise invalid("NetworkPolicy", policy["metadata"].get("name", ""), "spec.podSelector", "Required value")

        policy = await self._create(request, info, check)
        await self.pods.apply_network(info.namespace)
        return web.json_response(policy, status=201)

    async def _networking_networkpolicies_get(self, request: web.Request, info: RequestInfo) -> web.Response:
        return web.json_response(self._get(info))

    async def _networking_networkpolicies_list(self, request: web.Request, info: RequestInfo) -> web.Response:
        return self._list(request, info)

    async def _networking_networkpolicies_watch(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        return await self._watch(request, info)

    async def _networking_networkpolicies_delete(self, request: web.Request, info: RequestInfo) -> web.Response:
        policy = self._get(info)
        await self.store.remove(info.resource, info.namespace, info.name)
        await self.pods.apply_network(info.namespace)
        details = {"name": info.name, "group": info.group, "kind": info.resource, "uid": policy["metadata"]["uid"]}
        return web.json_response(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
        )

    # -- authorization.k8s.io/v1, node.k8s.io/v1, metrics.k8s.io/v1beta1 ---------------------------

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
        found = [await self._pod_metrics(p) for p in self._select(request, self.store.list("pods", info.namespace))]
        items = [m for m in found if m is not None]
        return web.json_response(
            {"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items}
        )
