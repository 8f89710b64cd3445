"""The verbs every stored resource shares, as the API defines them: create (name, generateName,
namespace checks, 409 on a taken name), get, list (label and field selectors, the list's
resourceVersion) and watch (JSON lines of events; from a resourceVersion, or ADDED for what
exists and then changes; 410 Expired for a version older than the history)."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

from aiohttp import web

from .store import Store
from .wire import (
    DNS_SUBDOMAIN,
    ApiError,
    RequestInfo,
    check_labels,
    field_selector_matches,
    invalid,
    label_selector_matches,
    not_found,
    status,
)
from .wiretypes import KINDS

GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # as the API server's generateName suffixes


def dry_run(request: web.Request) -> bool:
    value = request.query.get("dryRun")
    if value not in (None, "All"):
        raise ApiError(400, "BadRequest", f'invalid dry run value "{value}": only "All" is supported')
    return value == "All"


class StoredResources:
    store: Store
    namespaces: set[str]

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
        check_labels(kind, name, meta.get("labels") or {})
        annotations = meta.get("annotations") or {}
        if not isinstance(annotations, dict) or len(json.dumps(annotations)) > 256 * 1024:
            raise invalid(kind, name, "metadata.annotations", "Too long: must be a map of strings of at most 256 KiB")
        if self.store.get(info.resource, info.namespace, name) is not None:
            raise ApiError(
                409, "AlreadyExists", f'{info.resource} "{name}" already exists', {"name": name, "kind": info.resource}
            )
        if check:
            check(obj)
        obj.update(kind=kind, apiVersion=api_version)
        if dry_run(request):
            return obj  # validated and defaulted, not stored (nor run)
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
            for o in self._select(request, self.store.find(info.resource, info.namespace))
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
                for obj in self._select(request, self.store.find(info.resource, info.namespace)):
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
