"""E2B's lifecycle API, as its SDKs call it (their ``E2B_API_URL``): ``{base_url}sandbox/e2b/api``.

Create, list (metadata and state filters, pages with an ``x-next-token`` header), get, kill,
set the timeout, refresh, connect and metrics of the caller's sandboxes. Anything else the SDKs
can ask (pause, resume, snapshots, templates, ...) is answered with a message saying it
is not supported here.

Authentication (an explicit alternative to jupyter_server's, documented in docs/e2b.md): an API
key of the user in ``X-API-KEY`` (core/api_keys.py), else the user's own Jupyter login. The key's
user owns every sandbox made with it and sees no one else's (404).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, unquote

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.utils import url_path_join
from tornado import web

from ..core.deadlines import Deadlines, check_seconds
from ..errors import Conflict, InvalidInput, NotFound, SandboxError
from ..models import (
    E2BListedSandbox,
    E2BMetric,
    E2BNewSandbox,
    E2BPause,
    E2BRefresh,
    E2BSandbox,
    E2BSandboxDetail,
    E2BTimeout,
    SandboxModel,
)
from .e2b import E2B
from .e2b_mounts import volume_mount_spec
from .e2b_plane import ENVD_VERSION, cookie_credentials, request_owner, take_api_key
from .handlers import SandboxAPIHandler

API = f"{E2B}/api"
DEADLINES_SETTING = "sandbox_deadlines"
# template names that mean the server's default image: the SDKs' own defaults, and none at all
DEFAULT_TEMPLATES = ("", "base", "code-interpreter-v1", "code-interpreter")
DEFAULT_TIMEOUT = 300  # seconds, when create says none (the SDKs always do)
CLIENT_ID = "jupyter-sandbox"
MAX_PAGE = 100
NO_DEADLINE = "9999-12-31T00:00:00Z"  # endAt of a sandbox without one (E2B's shape has no "never")
UNSUPPORTED_OPTIONS = ("autoPause", "autoPauseMemory", "autoResume", "mcp", "iam")
# ``network`` options that state what is true here already: a sandbox has no public URL, only the
# data plane, which asks for its access token (also as E2B-Traffic-Access-Token)
NETWORK_AS_IT_IS = {"allowPublicTraffic": False}
ALL_TRAFFIC = "0.0.0.0/0"  # E2B's ALL_TRAFFIC, the one address rule that maps onto the allow-list


def e2b_network(allow_internet_access: bool | None, network: Any) -> bool | dict[str, list[str]] | None:
    """E2B's ``allow_internet_access`` and ``network: {allowOut, denyOut}`` as the spec's ``network``
    (issue 23): ``denyOut: [ALL_TRAFFIC]`` with names in ``allowOut`` is an allow-list; allowOut
    without denying all traffic allows everything (E2B's allow wins over deny, and nothing is
    denied). Addresses have no place in either (the proxy passes names, never an IP)."""
    if network is not None and not isinstance(network, dict):
        raise InvalidInput("network must be an object", field="network")
    rules = dict(network or {})
    if rules.pop("allowPublicTraffic", False) is not False:
        raise InvalidInput(
            "network other than allow_public_traffic=False is not supported by this server (sandboxes here have "
            "no public URL)",
            field="network",
        )
    allow_out, deny_out = rules.pop("allowOut", None) or [], rules.pop("denyOut", None) or []
    if rules:
        raise InvalidInput(f"network.{sorted(rules)[0]} is not supported by this server", field="network")
    for name, entries in (("allowOut", allow_out), ("denyOut", deny_out)):
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise InvalidInput(f"network.{name} must be a list of strings", field=f"network.{name}")
    addresses = [e for e in allow_out if _is_address(e)] + [e for e in deny_out if e != ALL_TRAFFIC]
    if addresses:
        raise InvalidInput(
            f"network: {addresses[0]} is an address; this server filters egress by name (allowOut takes names, "
            f"denyOut only {ALL_TRAFFIC}) and never lets a raw IP through",
            field="network",
        )
    if allow_internet_access is False or not deny_out:
        return allow_internet_access
    return {"allow": allow_out, "deny": []}


def _is_address(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry, strict=False)
        return True
    except ValueError:
        return False


def e2b_api_path(*parts: str) -> str:
    return url_path_join("/", API, *parts)


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat().replace("+00:00", "Z")


def _int_argument(handler: web.RequestHandler, name: str, default: int) -> int:
    value = handler.get_query_argument(name, None)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, not {value[:40]!r}", field=name) from None


class E2BApiHandler(SandboxAPIHandler):
    """Base: the caller is the user of the API key (or of the Jupyter login)."""

    _api_owner = ""

    def check_xsrf_cookie(self) -> None:
        if not cookie_credentials(self):
            return None
        return super().check_xsrf_cookie()

    async def prepare(self) -> None:  # type: ignore[override]
        key, key_owner = take_api_key(self)
        await super().prepare()
        self._api_owner = request_owner(self, key, key_owner)

    @property
    def owner(self) -> str:
        return self._api_owner

    def error_body(self, e: SandboxError) -> dict[str, Any]:
        return {**e.to_dict(), "code": e.status}  # E2B's Error: code and message

    @property
    def deadlines(self) -> Deadlines:
        deadlines: Deadlines = self.settings[DEADLINES_SETTING]
        return deadlines

    def _secret(self, model: SandboxModel) -> str:
        return self.manager.registry.get(self.owner, model.id).e2b_secret

    def created_json(self, model: SandboxModel) -> dict[str, Any]:
        secret = self._secret(model)
        template = model.template or "base"
        return E2BSandbox(
            templateID=template,
            sandboxID=model.id,
            alias=template,
            clientID=CLIENT_ID,
            envdVersion=ENVD_VERSION,
            envdAccessToken=secret,
            trafficAccessToken=secret,
        ).to_dict()

    def _listed(self, model: SandboxModel, shape: type[E2BListedSandbox], **more: Any) -> dict[str, Any]:
        spec, template = model.spec, model.template or "base"
        return shape(
            templateID=template,
            alias=template,
            sandboxID=model.id,
            clientID=CLIENT_ID,
            startedAt=_iso(model.created),
            endAt=_iso(model.end_at) if model.end_at is not None else NO_DEADLINE,
            cpuCount=max(1, math.ceil(spec.cpus)),
            memoryMB=spec.memory // 2**20,
            diskSizeMB=spec.disk // 2**20,
            state="paused" if model.paused else "running",  # (core/pausing.py)
            envdVersion=ENVD_VERSION,
            metadata=dict(spec.metadata),
            **more,
        ).to_dict()

    def listed_json(self, model: SandboxModel) -> dict[str, Any]:
        return self._listed(model, E2BListedSandbox)

    def detail_json(self, model: SandboxModel) -> dict[str, Any]:
        return self._listed(
            model, E2BSandboxDetail, envdAccessToken=self._secret(model), allow_internet_access=model.spec.network
        )

    def mine(self) -> list[SandboxModel]:
        """The caller's sandboxes E2B's API shows: code sandboxes (not notebook kernels) that still run."""
        return [m for m in self.manager.list(self.owner) if m.kind == "sandbox" and m.status != "exited"]


def _template_image(name: str, aliases: dict[str, str]) -> str | None:
    """The image of an E2B template name (None: the server's default image)."""
    if name in aliases:
        return aliases[name]
    if name in DEFAULT_TEMPLATES:
        return None
    allowed = ", ".join(repr(n) for n in (*DEFAULT_TEMPLATES[1:], *aliases))
    raise InvalidInput(f"unknown template {name!r}: this server has {allowed}", field="templateID")


def _metadata_filter(query: str | None) -> dict[str, str]:
    """The SDK's ``metadata`` query: ``k=v&...`` of percent-encoded keys and values."""
    if not query:
        return {}
    return {unquote(k): unquote(v) for k, v in parse_qsl(query, keep_blank_values=True)}


def _after(token: str | None) -> tuple[float, str] | None:
    """The position a ``nextToken`` stands for: the sort key of the last sandbox of the page before."""
    if not token:
        return None
    try:
        created, _, sandbox_id = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        return float(created), sandbox_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput("nextToken is not one this server gave", field="nextToken") from None


def _token(model: SandboxModel) -> str:
    return base64.urlsafe_b64encode(f"{model.created!r}:{model.id}".encode()).decode()


class SandboxesHandler(E2BApiHandler):
    """GET /sandboxes (all at once) and POST /sandboxes; /v2/sandboxes is the same with pages."""

    paged = False

    def filtered(self) -> list[SandboxModel]:
        wanted = _metadata_filter(self.get_query_argument("metadata", None))
        states = {s for s in ",".join(self.get_query_arguments("state")).split(",") if s}
        if states - {"running", "paused"}:
            raise InvalidInput("state must be 'running' or 'paused'", field="state")
        template = self.get_query_argument("template", None)
        found = [
            m
            for m in self.mine()
            if all(m.spec.metadata.get(k) == v for k, v in wanted.items())
            and (not states or ("paused" if m.paused else "running") in states)
            and (not template or (m.template or "base") == template)
        ]
        order = self.get_query_argument("order", None) or "asc"
        if order not in ("asc", "desc"):
            raise InvalidInput("order must be 'asc' or 'desc'", field="order")
        return sorted(found, key=lambda m: (m.created, m.id), reverse=order == "desc")

    @allow_unauthenticated
    async def get(self) -> None:
        found = self.filtered()
        if self.paged:
            limit = _int_argument(self, "limit", MAX_PAGE)
            if not 1 <= limit <= MAX_PAGE:
                raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
            after = _after(self.get_query_argument("nextToken", None))
            if after is not None:
                descending = self.get_query_argument("order", None) == "desc"
                found = [m for m in found if ((m.created, m.id) < after if descending else (m.created, m.id) > after)]
            if len(found) > limit:
                found = found[:limit]
                self.set_header("x-next-token", _token(found[-1]))
        self.write_json([self.listed_json(m) for m in found])

    @allow_unauthenticated
    async def post(self) -> None:
        body = E2BNewSandbox.parse(self.json_body())
        for option in UNSUPPORTED_OPTIONS:
            if getattr(body, option) not in (None, False, {}, []):
                raise InvalidInput(f"{option} is not supported by this server", field=option)
        network = e2b_network(body.allow_internet_access, body.network)
        timeout = check_seconds(DEFAULT_TIMEOUT if body.timeout is None else body.timeout, "timeout")
        image = _template_image(body.templateID, self.sandbox_app.e2b_templates)
        spec = {"image": image, "env": body.envVars, "metadata": body.metadata, "network": network}
        spec.update(volume_mount_spec(body.volumeMounts, self.manager.backend.volume_path))  # issue 23
        model = await self.manager.create(self.owner, None, {k: v for k, v in spec.items() if v is not None})
        model.template = body.templateID or "base"
        model = self.deadlines.set(self.owner, model.id, timeout)  # saves the record, template included
        self.write_json(self.created_json(model), status=201)


class SandboxesV2Handler(SandboxesHandler):
    paged = True


class SandboxHandler(E2BApiHandler):
    @allow_unauthenticated
    async def get(self, sandbox_id: str) -> None:
        self.write_json(self.detail_json(self.manager.get(self.owner, sandbox_id)))

    @allow_unauthenticated
    async def delete(self, sandbox_id: str) -> None:
        await self.manager.remove(self.owner, sandbox_id)
        self.no_content()


class TimeoutHandler(E2BApiHandler):
    @allow_unauthenticated
    async def post(self, sandbox_id: str) -> None:
        body = E2BTimeout.parse(self.json_body())
        if body.timeout is None:
            raise InvalidInput("timeout (seconds) is required", field="timeout")
        self.deadlines.set(self.owner, sandbox_id, body.timeout)
        self.no_content()


class RefreshHandler(E2BApiHandler):
    @allow_unauthenticated
    async def post(self, sandbox_id: str) -> None:
        body = E2BRefresh.parse(self.json_body())
        self.deadlines.extend(self.owner, sandbox_id, DEFAULT_TIMEOUT if body.duration is None else body.duration)
        self.no_content()


class ConnectHandler(E2BApiHandler):
    """Connecting gives a sandbox's credentials again and lengthens its life to ``timeout`` if that is
    later than its deadline; a paused sandbox is resumed first (201, as E2B's auto-resume)."""

    @allow_unauthenticated
    async def post(self, sandbox_id: str) -> None:
        body = E2BTimeout.parse(self.json_body())
        model = self.manager.get(self.owner, sandbox_id)
        if model.status == "exited":
            raise NotFound(f"sandbox {sandbox_id} has ended")
        resumed = model.paused
        if resumed:
            model = await self.manager.pausing.resume(self.owner, sandbox_id)
        if body.timeout is not None:
            model = self.deadlines.extend(self.owner, sandbox_id, body.timeout, field="timeout")
        self.write_json(self.created_json(model), status=201 if resumed else 200)


class PauseHandler(E2BApiHandler):
    """E2B's pause: 204; 409 when it is paused already (core/pausing.py: the memory is kept under gVisor,
    unless the body says ``"memory": false``, E2B's mode="filesystem")."""

    @allow_unauthenticated
    async def post(self, sandbox_id: str) -> None:
        body = E2BPause.parse(self.json_body())
        if self.manager.get(self.owner, sandbox_id).paused:
            raise Conflict(f"sandbox {sandbox_id} is paused already")
        await self.manager.pausing.pause(self.owner, sandbox_id, keep_memory=body.memory is not False)
        self.no_content()


class ResumeHandler(E2BApiHandler):
    """E2B's (deprecated) resume: 201 with the sandbox's credentials; 409 when it is not paused."""

    @allow_unauthenticated
    async def post(self, sandbox_id: str) -> None:
        body = E2BTimeout.parse(self.json_body())
        if not self.manager.get(self.owner, sandbox_id).paused:
            raise Conflict(f"sandbox {sandbox_id} is not paused")
        model = await self.manager.pausing.resume(self.owner, sandbox_id)
        if body.timeout is not None:
            model = self.deadlines.extend(self.owner, sandbox_id, body.timeout, field="timeout")
        self.write_json(self.created_json(model), status=201)


class MetricsHandler(E2BApiHandler):
    """One reading, now (E2B keeps a history; this server does not)."""

    @allow_unauthenticated
    async def get(self, sandbox_id: str) -> None:
        model = self.manager.get(self.owner, sandbox_id)
        stats = await self.manager.stats(self.owner, sandbox_id)
        moment = time.time()
        metric = E2BMetric(
            timestamp=_iso(moment),
            timestampUnix=int(moment),
            cpuCount=max(1, math.ceil(model.spec.cpus)),
            cpuUsedPct=float(stats.get("cpu_percent") or 0.0),
            memUsed=int(stats.get("memory_used") or 0),
            memTotal=int(stats.get("memory_limit") or model.spec.memory),
            memCache=0,
            diskUsed=0,  # not measured: the working directory's tmpfs is diskTotal
            diskTotal=model.spec.disk,
        )
        self.write_json([metric.to_dict()])


class UnsupportedHandler(E2BApiHandler):
    """Every other route of E2B's API: a message instead of a silent 404."""

    def _refuse(self, rest: str) -> None:
        parts = [p for p in rest.split("/") if p]
        if parts[:1] == ["v2"]:
            parts = parts[1:]
        if len(parts) >= 3 and parts[0] == "sandboxes":
            raise InvalidInput(f"{parts[2]!r} of a sandbox is not supported by this server")
        raise NotFound(
            f"{self.request.method} {rest!r} is not supported by this server: it serves E2B's sandbox lifecycle "
            "(create, list, get, kill, timeout, refresh, connect, metrics, pause, resume) and volumes, not templates or "
            "snapshots"
        )

    @allow_unauthenticated
    async def get(self, rest: str) -> None:
        self._refuse(rest)

    post = put = patch = delete = get


ROUTES: list[tuple[str, type[web.RequestHandler]]] = [
    (e2b_api_path("sandboxes"), SandboxesHandler),
    (e2b_api_path("v2/sandboxes"), SandboxesV2Handler),
    (e2b_api_path("sandboxes/{sandbox_id}"), SandboxHandler),
    (e2b_api_path("sandboxes/{sandbox_id}/timeout"), TimeoutHandler),
    (e2b_api_path("sandboxes/{sandbox_id}/refreshes"), RefreshHandler),
    (e2b_api_path("sandboxes/{sandbox_id}/connect"), ConnectHandler),
    (e2b_api_path("v2/sandboxes/{sandbox_id}/connect"), ConnectHandler),
    (e2b_api_path("sandboxes/{sandbox_id}/metrics"), MetricsHandler),
    (e2b_api_path("sandboxes/{sandbox_id}/pause"), PauseHandler),
    (e2b_api_path("sandboxes/{sandbox_id}/resume"), ResumeHandler),
    (e2b_api_path("(?P<rest>.*)"), UnsupportedHandler),  # last: tornado takes the first match
]
