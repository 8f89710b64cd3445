"""A test Kubernetes API server (aiohttp) whose pods are real Docker containers.

It serves, with the API's wire semantics, what the project's Kubernetes backend uses: discovery,
namespaces (read), pods (create, get, list, watch, delete; exec over WebSocket; log), network
policies, SelfSubjectAccessReview, RuntimeClasses and the metrics API. Every request needs the
bearer token (401 otherwise); with ``rules`` set (a Role's rules) anything else is 403. Every
request is recorded in ``requests`` for tests to assert on. See tests/k8s/README.md."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from aiohttp import web

from .clusterapis import ClusterApis
from .podexec import PROTOCOLS, offers_protocol, serve_exec, serve_tty_exec, wants_websocket
from .podruntime import PodRuntime
from .pods import pod_status, validate
from .resources import dry_run
from .store import Store, now
from .wire import (
    ApiError,
    RequestInfo,
    invalid,
    request_info,
    status,
)
from .wiretypes import GROUPS, discovery

log = logging.getLogger(__name__)
BASIC_USER = {"selfsubjectaccessreviews", "selfsubjectrulesreviews"}
INFO = web.RequestKey("info", RequestInfo)
CONNECT = {"exec", "attach", "portforward"}  # GET over WebSocket also needs "create" (as Kubernetes 1.35)


class ApiServer(ClusterApis):
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
        entry: dict[str, Any] = {
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
        except Exception as e:  # a bug of this server: a 500 Status, as the API server answers, and the traceback
            log.exception("test API server: %s %s failed", request.method, request.path)
            message = f"the test API server failed: {type(e).__name__}: {e}"
            response = web.json_response(status(500, "InternalError", message), status=500)
        entry["status"] = response.status
        return response

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

    # -- core/v1 ----------------------------------------------------------------------------------

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
        if not dry_run(request):
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

    async def _core_pods_log(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
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
        if request.query.get("follow", "false").lower() not in ("1", "true"):
            return web.Response(body=await self.pods.logs(cid, lines), content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        try:
            async for chunk in self.pods.follow_logs(cid, lines):
                await response.write(chunk)
        except ConnectionResetError:
            pass  # the client stopped following
        return response

    async def _core_pods_exec(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        pod = self._get(info)
        own = pod["spec"]["containers"][0]["name"]
        q = request.query
        command = q.getall("command", [])
        if not command:
            raise ApiError(400, "BadRequest", "you must specify at least one command for the container")
        if q.get("container", own) != own:
            raise ApiError(400, "BadRequest", f"container {q.get('container')} is not valid for pod {info.name}")
        if not wants_websocket(request):
            raise ApiError(
                400, "BadRequest", "Upgrade request required: the test API server speaks only the WebSocket protocols"
            )
        if not offers_protocol(request):
            offered = request.headers.get("Sec-WebSocket-Protocol", "")
            raise ApiError(
                400,
                "BadRequest",
                f"unable to upgrade connection: requested protocol(s) [{offered}] are not supported: {', '.join(PROTOCOLS)}",
            )
        cid = self.pods.container(info.namespace, info.name)
        if cid is None or pod["status"].get("phase") != "Running":
            raise ApiError(400, "BadRequest", f'unable to upgrade connection: container not found ("{own}")')

        def flag(name: str) -> bool:
            return q.get(name, "false").lower() in ("1", "true")

        if flag("tty"):
            return await serve_tty_exec(request, self.pods.docker.api, cid, command, stdin=flag("stdin"))
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
