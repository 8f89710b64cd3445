"""The Kubernetes API as the backend uses it: JSON in and out, errors as the project's.

kubernetes_asyncio gives the connection (a kubeconfig file or the pod's in-cluster service
account, token refresh, TLS) and the websocket for ``pods/exec``; the requests themselves are
plain paths with JSON bodies (the manifests of kubernetes_pods.py), so nothing is converted to the
client's model classes and back. Every path used here is in ``kubernetes_pods.API_CALLS``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
from kubernetes_asyncio import client as kube_client
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.stream import WsApiClient

from ..errors import BackendUnavailable, Conflict, InvalidInput, NotFound, SandboxError
from .kubernetes_exec import PROTOCOLS

JSON = {"Content-Type": "application/json", "Accept": "application/json"}
AUTH = ["BearerToken"]


class ExecClient(WsApiClient):
    """kubernetes_asyncio's websocket client, asking for the v5 channel protocol first (v4 accepted)
    and telling which one the server chose (``ws.protocol``)."""

    async def request(
        self,
        method: Any,
        url: Any,
        query_params: Any = None,
        headers: Any = None,
        post_params: Any = None,
        body: Any = None,
        _preload_content: Any = True,
        _request_timeout: Any = None,
    ) -> Any:
        if query_params:
            url += "?" + "&".join(f"{k}={v}" for k, v in _quoted(query_params))
        url = "ws" + url[4:] if url.startswith("http") else url
        headers = {k: v for k, v in (headers or {}).items() if k.lower() != "sec-websocket-protocol"}
        return await self.rest_client.pool_manager.ws_connect(url, headers=headers, protocols=PROTOCOLS)


def _quoted(params: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    return [(quote(k, safe=""), quote(str(v), safe="")) for k, v in params]


def api_error(status: int, body: bytes, what: str) -> SandboxError:
    """The project's error for an API answer that is not a success (its Status message kept)."""
    try:
        message = json.loads(body).get("message") or ""
    except (ValueError, AttributeError):
        message = body.decode(errors="replace")[:300]
    text = f"{what}: {message or f'HTTP {status}'}"
    if status == 404:
        return NotFound(text)
    if status == 409:
        return Conflict(text)
    if status in (400, 422):
        return InvalidInput(text)
    if status in (401, 403):
        return BackendUnavailable(f"{text} (does the server's service account have the Role of deploy/kubernetes?)")
    return BackendUnavailable(text)


class KubeApi:
    """One connection to the API server, made on first use from a kubeconfig or in-cluster."""

    def __init__(self, kubeconfig: str, context: str, in_cluster: bool, timeout: float) -> None:
        self.kubeconfig, self.context, self.in_cluster, self.timeout = kubeconfig, context, in_cluster, timeout
        self._config: kube_client.Configuration | None = None
        self._client: kube_client.ApiClient | None = None
        self._exec_client: ExecClient | None = None
        self._loading = asyncio.Lock()

    async def configuration(self) -> kube_client.Configuration:
        async with self._loading:
            if self._config is None:
                config = kube_client.Configuration()
                try:
                    if self.in_cluster:
                        kube_config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
                    else:
                        await kube_config.load_kube_config(
                            config_file=self.kubeconfig or None,
                            context=self.context or None,
                            client_configuration=config,
                        )
                except (kube_config.ConfigException, OSError, ValueError) as e:
                    where = "in-cluster" if self.in_cluster else self.kubeconfig or "~/.kube/config ($KUBECONFIG)"
                    raise BackendUnavailable(f"cannot load the Kubernetes configuration ({where}): {e}") from None
                self._config = config
            return self._config

    async def client(self) -> kube_client.ApiClient:
        if self._client is None:
            self._client = kube_client.ApiClient(await self.configuration())
        return self._client

    async def request(
        self, method: str, path: str, body: Any = None, query: list[tuple[str, Any]] | None = None, what: str = ""
    ) -> dict[str, Any]:
        """One API call's JSON answer; the project's errors (NotFound, Conflict, ...) otherwise."""
        api = await self.client()
        try:
            response = await api.call_api(
                path,
                method,
                query_params=query or [],
                header_params=dict(JSON),
                body=body,
                auth_settings=AUTH,
                _preload_content=False,
                _request_timeout=self.timeout,
            )
            async with response:
                data = await response.read()
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise BackendUnavailable(f"the Kubernetes API server does not answer: {e or type(e).__name__}") from None
        if not 200 <= status < 300:
            raise api_error(status, data, what or f"{method} {path}")
        answer: dict[str, Any] = json.loads(data) if data else {}
        return answer

    async def text(self, path: str, query: list[tuple[str, Any]], what: str) -> str:
        """A plain-text answer (pods/log)."""
        api = await self.client()
        try:
            response = await api.call_api(
                path,
                "GET",
                query_params=query,
                header_params={"Accept": "*/*"},
                auth_settings=AUTH,
                _preload_content=False,
                _request_timeout=self.timeout,
            )
            async with response:
                data = await response.read()
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise BackendUnavailable(f"the Kubernetes API server does not answer: {e or type(e).__name__}") from None
        if not 200 <= status < 300:
            raise api_error(status, data, what)
        return bytes(data).decode(errors="replace")

    async def watch(
        self, path: str, query: list[tuple[str, Any]], timeout: float, what: str
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of a watch (``{"type", "object"}``), for at most ``timeout`` seconds."""
        api = await self.client()
        query = [*query, ("watch", "true"), ("timeoutSeconds", max(1, int(timeout)))]
        try:
            response = await api.call_api(
                path,
                "GET",
                query_params=query,
                header_params=dict(JSON),
                auth_settings=AUTH,
                _preload_content=False,
                _request_timeout=timeout + 5,
            )
            async with response:
                if not 200 <= response.status < 300:
                    raise api_error(response.status, await response.read(), what)
                async for line in response.content:
                    if line.strip():
                        yield json.loads(line)
        except (aiohttp.ClientError, OSError) as e:
            raise BackendUnavailable(f"watching {what}: {e or type(e).__name__}") from None

    async def exec_websocket(
        self, namespace: str, pod: str, container: str, command: list[str], stdin: bool, tty: bool = False
    ) -> aiohttp.ClientWebSocketResponse:
        """A websocket to ``pods/exec`` running ``command`` (stdout and stderr apart; with ``tty`` in a
        terminal, whose output comes on stdout alone: the kubelet serves no stderr with a tty)."""
        if self._exec_client is None:
            config = await self.configuration()
            # each running kernel holds one exec websocket for its whole life: no cap on connections here
            # (the client's default, 100, would leave the 101st kernel waiting forever)
            config.connection_pool_maxsize, pool_size = 0, config.connection_pool_maxsize
            try:
                self._exec_client = ExecClient(config)
            finally:
                config.connection_pool_maxsize = pool_size
        query: list[tuple[str, Any]] = [("container", container), ("stdout", "true")]
        query += [("tty", "true")] if tty else [("stderr", "true")]
        query += [("stdin", "true")] if stdin else []
        query += [("command", part) for part in command]
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/exec"
        try:
            ws: aiohttp.ClientWebSocketResponse = await self._exec_client.call_api(
                path, "GET", query_params=query, header_params={}, auth_settings=AUTH, _preload_content=False
            )
        except aiohttp.WSServerHandshakeError as e:
            raise api_error(e.status, e.message.encode(), f"exec in pod {pod}") from None
        except (aiohttp.ClientError, OSError) as e:
            raise BackendUnavailable(f"exec in pod {pod}: {e or type(e).__name__}") from None
        return ws

    async def close(self) -> None:
        for api in (self._client, self._exec_client):
            if api is not None:
                await api.close()
        self._client = self._exec_client = None
