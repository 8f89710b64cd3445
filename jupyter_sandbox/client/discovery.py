"""Which server a client talks to, and the connection to it.

``connect`` picks the implementation of ``Connection``: an ``HTTPConnection`` to the server
``find_server`` finds, else (for plain scripts) the embedded manager of jupyter_sandbox/embedded.py.
That one is imported only here, when it is the choice. A registry that embedded.py fills would
need something to import embedded.py before ``connect`` runs: either every client import (core,
backends and jupyter_client with it, which is what client/ must not carry) or the script itself
(a step the "runs as a plain script" promise does not have). The one deferred import keeps the
dependency in one visible place, paid for only when no server is there.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from dataclasses import dataclass
from urllib.parse import urlparse

import httpx

from ..errors import ServerUnreachable
from .connection import HOW_TO_CONNECT, Connection, HTTPConnection
from .loop import private_loop


@dataclass
class ServerChoice:
    """The server a client talks to, and why that one (shown by ``%sandbox config``)."""

    url: str
    token: str | None
    why: str


def _probe(url: str, token: str | None) -> bool:
    """Whether a Jupyter server at ``url`` answers the sandbox API."""
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        return httpx.get(url.rstrip("/") + "/sandbox/api/sandboxes", headers=headers, timeout=3.0).status_code == 200
    except httpx.HTTPError:
        return False


def find_server(server_url: str | None = None, token: str | None = None) -> ServerChoice | None:
    """The server to use, or None when there is none.

    In order: explicit arguments; JUPYTER_SANDBOX_URL / JUPYTER_SANDBOX_TOKEN; a JupyterHub
    single-user server's environment; the Jupyter server that started this kernel (its runtime
    file has the pid jupyter_client puts in JPY_PARENT_PID); else the one local server (runtime
    files) whose extension answers. Several answering is an error that lists them: code must
    not run on a server nobody chose.
    """
    if server_url:
        return ServerChoice(server_url, token or os.environ.get("JUPYTER_SANDBOX_TOKEN"), "given explicitly")
    if os.environ.get("JUPYTER_SANDBOX_URL"):
        return ServerChoice(
            os.environ["JUPYTER_SANDBOX_URL"],
            token or os.environ.get("JUPYTER_SANDBOX_TOKEN"),
            "from JUPYTER_SANDBOX_URL",
        )
    hub_token = os.environ.get("JUPYTERHUB_API_TOKEN")
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    if hub_token and prefix:
        # The single-user server listens on JUPYTERHUB_SERVICE_URL's port; talk to it locally.
        service = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8888/"))
        return ServerChoice(
            f"http://127.0.0.1:{service.port or 8888}{prefix}", token or hub_token, "this JupyterHub single-user server"
        )
    try:
        from jupyter_server.serverapp import list_running_servers

        servers = list(list_running_servers())
    except Exception:  # unreadable runtime files just mean "no local server"
        servers = []
    parent = os.environ.get("JPY_PARENT_PID")
    for info in servers:
        if parent and str(info.get("pid")) == parent and _probe(info["url"], info.get("token")):
            return ServerChoice(info["url"], info.get("token") or None, "the Jupyter server that started this kernel")
    answering = [info for info in servers if _probe(info["url"], info.get("token"))]
    if len(answering) > 1:
        listed = ", ".join(f"{info['url']} (pid {info.get('pid')})" for info in answering)
        raise ServerUnreachable(
            f"several jupyter-sandbox servers are running: {listed}. Choose one with JUPYTER_SANDBOX_URL "
            "(and JUPYTER_SANDBOX_TOKEN), or server_url=/token= in the call"
        )
    if answering:
        info = answering[0]
        return ServerChoice(info["url"], info.get("token") or None, "the one local Jupyter server with the extension")
    return None


# per event loop (an httpx client belongs to the loop it was made on), then per server and token
_CONNECTIONS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str | None], HTTPConnection]] = (
    weakref.WeakKeyDictionary()
)
_CONNECT_LOCK = threading.Lock()


def connect(
    server_url: str | None = None,
    token: str | None = None,
    *,
    in_process: bool = True,
    loop: asyncio.AbstractEventLoop | None = None,
) -> Connection:
    """The connection to use from ``loop`` (default: the private loop, where the blocking
    client runs): one per server and loop; this process's embedded manager when no server is found.

    ``in_process=False`` (the magics) raises ServerUnreachable instead of falling back.
    """
    if loop is None:
        loop = private_loop().loop
    found = find_server(server_url, token)
    if found is None:
        if not in_process:
            raise ServerUnreachable("no jupyter-sandbox server found: " + HOW_TO_CONNECT)
        # deferred, heavy and optional: the embedded manager brings core/, backends and
        # jupyter_client (the module docstring says why this is not a registry)
        from ..embedded import embedded_connection

        return embedded_connection()
    url = found.url.rstrip("/") + "/"
    with _CONNECT_LOCK:
        mine = _CONNECTIONS.setdefault(loop, {})
        connection = mine.setdefault((url, found.token), HTTPConnection(url, found.token))
    connection.description = f"{url} ({found.why})"
    return connection
