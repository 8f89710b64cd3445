"""Hub-wide policy of the service: limits by Hub group, and what happens to a user's sandboxes
when the Hub stops the server they were made through.

The service learns about users from the Hub's REST API with its own token (its role needs
``read:users:groups``, ``read:servers`` and ``list:users``):
- a user's groups (``GET {api}/users/{name}``), kept ``users_cache_seconds``, refreshed on their
  requests; ``group_limits`` maps groups to limits, the most generous over a user's groups wins;
- every ``server_poll_interval`` seconds, the servers of the users whose sandboxes came through one
  (``handlers.HUB_SERVER_HEADER``); with ``on_server_stop = "remove"`` a sandbox whose server
  stopped (or was restarted since) goes. Sandboxes made with no server (a script with its own
  token) follow the idle cull (``c.SandboxManager.cull_idle_timeout``) only.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import Dict, Enum, Float, Unicode
from traitlets.config import LoggingConfigurable

from ..core.manager import SandboxManager
from ..core.spec_policy import most_generous
from ..models import SandboxModel
from ..server.handlers import HUB_SERVER_KEY
from . import SERVICE_OWNER_PREFIX


class HubUsers:
    """Hub users as the Hub's API tells the service (its own token), each kept for ``max_age`` s."""

    def __init__(self, api_url: str, api_token: str, max_age: float):
        self.api_url, self.api_token, self.max_age = api_url.rstrip("/"), api_token, max_age
        self._users: dict[str, tuple[float, dict[str, Any] | None]] = {}

    async def fetch(self, name: str) -> dict[str, Any] | None:
        """The user's model now (None: no such user); the Hub's errors are raised."""
        try:
            response = await AsyncHTTPClient().fetch(
                f"{self.api_url}/users/{quote(name, safe='')}",
                headers={"Authorization": f"token {self.api_token}"},
                request_timeout=20,
            )
        except HTTPClientError as e:
            if e.code == 404:
                self._users[name] = (time.monotonic(), None)
                return None
            raise
        model: dict[str, Any] = json.loads(response.body)
        self._users[name] = (time.monotonic(), model)
        return model

    async def refresh(self, name: str) -> None:
        """Fetch the user again if what is kept is older than ``max_age``."""
        kept = self._users.get(name)
        if kept is None or time.monotonic() - kept[0] > self.max_age:
            await self.fetch(name)

    def groups(self, name: str) -> list[str]:
        """The user's groups as last fetched ([] when unknown)."""
        model = self._users.get(name, (0.0, None))[1] or {}
        return list(model.get("groups") or [])


def _started(server: dict[str, Any]) -> float | None:
    started = server.get("started")
    if not isinstance(started, str):
        return None
    try:
        return datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def stale_sandboxes(sandboxes: list[SandboxModel], users: dict[str, dict[str, Any] | None]) -> list[SandboxModel]:
    """The sandboxes whose Hub server is no longer the one they were made through.

    ``users``: owner -> the Hub's model of that user (None: no such user; an owner absent from it
    is unknown, e.g. the Hub did not answer, and keeps their sandboxes). A sandbox goes when its
    server is not among the user's active servers, is stopping, or started after the sandbox was
    made (stopped and started again between two polls). Sandboxes with no server are kept.
    """
    stale = []
    for model in sandboxes:
        server_name = model.spec.metadata.get(HUB_SERVER_KEY)
        if server_name is None or model.owner not in users:
            continue
        user = users[model.owner]
        if user is not None and "servers" not in user:
            continue  # the service's token may not read servers: nothing can be told
        server = (user or {}).get("servers", {}).get(server_name)
        started = _started(server) if server else None
        if not server or server.get("pending") == "stop" or (started is not None and started > model.created):
            stale.append(model)
    return stale


class SandboxService(LoggingConfigurable):
    """The service's Hub-wide policy (config section ``SandboxService``)."""

    group_limits = Dict(
        help="Limits by Hub group: {group: {limit: value}}, limits being these c.SandboxManager traits: "
        "max_memory, max_disk, max_memory_per_user, max_sandboxes_per_user, max_contexts_per_sandbox, "
        "max_cpus, max_pids, max_timeout, allow_network, allowed_images. A user in several groups gets "
        'the most generous value of each. E.g. {"big": {"max_memory": "8G", "max_sandboxes_per_user": 4}}.'
    ).tag(config=True)
    on_server_stop = Enum(
        ["remove", "keep"],
        "remove",
        help="What happens to the sandboxes made through a user's server when the Hub stops it: 'remove' "
        "them, or 'keep' them until the idle cull (c.SandboxManager.cull_idle_timeout).",
    ).tag(config=True)
    server_poll_interval = Float(10.0, help="Seconds between looks at the Hub for stopped servers.").tag(config=True)
    users_cache_seconds = Float(30.0, help="Seconds a user's groups, as the Hub said them, are kept.").tag(config=True)
    hub_api_url = Unicode(help="The Hub's API URL. Default: HubOAuth's ($JUPYTERHUB_API_URL).").tag(config=True)

    def __init__(self, manager: SandboxManager, api_url: str, api_token: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        most_generous(list(self.group_limits.values()))  # a limit that does not exist fails the start
        self.manager = manager
        self.users = HubUsers(self.hub_api_url or api_url, api_token, self.users_cache_seconds)
        manager.owner_limits = self.limits_of
        self._watch: asyncio.Task[None] | None = None

    def limits_of(self, owner: str) -> dict[str, Any]:
        """SandboxManager.owner_limits: the limits of the user's groups (none: the configured ones)."""
        return most_generous([self.group_limits[g] for g in self.users.groups(owner) if g in self.group_limits])

    async def on_user(self, name: str) -> None:
        """A request of this user: their groups are fresh enough for its limits."""
        try:
            await self.users.refresh(name)
        except Exception as e:  # the Hub's API is down: their last known groups stay
            self.log.warning("jupyter-sandbox: cannot read Hub user %s's groups: %s", name, e)

    def start(self) -> None:
        if self.on_server_stop == "remove" and self._watch is None:
            self._watch = asyncio.ensure_future(self._watch_servers())

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
            self._watch = None

    async def remove_stale(self) -> list[str]:
        """Remove the sandboxes whose server stopped; their ids."""
        tied = [
            m
            for m in self.manager.list()
            if HUB_SERVER_KEY in m.spec.metadata and not m.owner.startswith(SERVICE_OWNER_PREFIX)
        ]
        users: dict[str, dict[str, Any] | None] = {}
        for owner in {m.owner for m in tied}:
            try:
                users[owner] = await self.users.fetch(owner)
            except Exception as e:  # unknown this time: kept until the Hub answers
                self.log.warning("jupyter-sandbox: cannot read Hub user %s's servers: %s", owner, e)
        removed = []
        for model in stale_sandboxes(tied, users):
            server = model.spec.metadata[HUB_SERVER_KEY] or "(default)"
            self.log.info("jupyter-sandbox: %s's server %s stopped: removing sandbox %s", model.owner, server, model.id)
            try:
                await self.manager.remove(model.owner, model.id)
                removed.append(model.id)
            except Exception as e:  # gone meanwhile, or the engine failed: tried again next time
                self.log.warning("jupyter-sandbox: removing sandbox %s failed: %s", model.id, e)
        return removed

    async def _watch_servers(self) -> None:
        while True:
            await asyncio.sleep(self.server_poll_interval)
            try:
                await self.remove_stale()
            except Exception:  # keep watching
                self.log.exception("jupyter-sandbox: looking for stopped servers failed")
