"""``jupyter sandbox serve`` (also ``python -m jupyter_sandbox.service``): the sandbox API as a
JupyterHub service, the one process on the host that talks to the container engine.

It serves what the ``jupyter_sandbox`` extension serves (the same SandboxApp: REST routes, NDJSON
streaming, the events websocket, E2B and one-shot routes, the admin routes) under the service's
prefix, and nothing else of jupyter_server: no contents, files, kernels, terminals, lab or other
extension. It runs as root (or a user in the docker group): any of those would hand the host to
any Hub user. Every request is authenticated by the Hub (auth.py); a sandbox's owner is the Hub
user's name.

Hub-managed (``c.JupyterHub.services = [{"name": "sandbox", "url": "http://127.0.0.1:10101",
"command": [sys.executable, "-m", "jupyter_sandbox.service"], "oauth_no_confirm": True}]``): every
setting comes from the environment the Hub gives a managed service:

- ``JUPYTERHUB_SERVICE_URL``: the address to listen on (ip and port);
- ``JUPYTERHUB_SERVICE_PREFIX``: the base URL (``/services/sandbox/``);
- ``JUPYTERHUB_API_TOKEN``, ``JUPYTERHUB_API_URL``: the service's token and the Hub's API;
- ``JUPYTERHUB_CLIENT_ID``, ``JUPYTERHUB_OAUTH_CALLBACK_URL``: OAuth for browsers;
- ``JUPYTERHUB_OAUTH_ACCESS_SCOPES``: the scopes a token needs (``access:services!service=sandbox``).

Standalone (a systemd unit, a Deployment), the same values as flags or config:
``jupyter sandbox serve --ip=127.0.0.1 --port=10101 --base-url=/services/sandbox/
--hub-api-url=http://127.0.0.1:8081/hub/api --HubOAuth.api_token=... --HubOAuth.oauth_client_id=service-sandbox
--HubOAuth.oauth_redirect_uri=... '--HubOAuth.access_scopes={"access:services!service=sandbox"}'``
(or the environment variables above; register the service in the Hub with its ``url`` and ``api_token``).

The service's role in the Hub needs ``read:users:groups``, ``read:servers`` and ``list:users``
(policy.py). Holders of ``custom:sandbox:admin`` (``ADMIN_SCOPE``) see and stop every user's
sandboxes. Config: ``jupyter_sandbox_service_config.py`` in the Jupyter config path of the user the
service runs as (for root: ``/etc/jupyter``, ``/usr/local/etc/jupyter``, ``~root/.jupyter``), never a
Hub user's: ``c.SandboxManager.*`` (limits, quotas per Hub user across all their servers, idle
cull), ``c.SandboxApp.state_dir`` (where a restarted service finds the sandboxes to take back:
keep it stable), ``c.SandboxService.*`` (group limits, on_server_stop; policy.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from jupyter_server.serverapp import ServerApp
from jupyter_server.serverapp import aliases as server_aliases
from jupyter_server.services.contents.filemanager import FileContentsManager
from jupyterhub.services.auth import HubOAuth
from traitlets import Dict, default

from ..server.app import SandboxApp
from ..server.e2b import E2B_REQUIRES_LOGIN
from .auth import SandboxAuthorizer, SandboxIdentityProvider
from .policy import SandboxService

EXTENSION = "jupyter_sandbox"


class NoFiles(FileContentsManager):
    """ServerApp always makes a contents manager; this one adds no ``/files/`` route to the service."""

    def get_extra_handlers(self) -> list[Any]:
        return []


class SandboxServiceApp(ServerApp):
    """A Jupyter server with the ``jupyter_sandbox`` extension and nothing else."""

    name = "jupyter-sandbox-service"  # its config file: jupyter_sandbox_service_config.py
    description = "The jupyter-sandbox API as a JupyterHub service: the one process that talks to the engine."
    # jupyter_server's own services: none (not even its events bus: anyone may post to it)
    default_services = ()  # type: ignore[assignment]  # the base declares its own 13 names as the type
    classes = [*ServerApp.classes, SandboxApp, SandboxService, HubOAuth]
    aliases = Dict({**server_aliases, "hub-api-url": "HubOAuth.api_url", "state-dir": "SandboxApp.state_dir"})

    sandbox_service: SandboxService | None = None

    # -- what the Hub gives a managed service ------------------------------------------------
    @default("ip")
    def _ip_default(self) -> str:
        url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", ""))
        return url.hostname or "127.0.0.1"

    @default("port")
    def _port_default(self) -> int:
        url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", ""))
        return url.port or 10101

    @default("base_url")
    def _base_url_default(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/services/sandbox/"

    @default("identity_provider_class")
    def _identity_provider_class_default(self) -> type:
        return SandboxIdentityProvider

    @default("authorizer_class")
    def _authorizer_class_default(self) -> type:
        return SandboxAuthorizer

    @default("contents_manager_class")
    def _contents_manager_class_default(self) -> type:
        return NoFiles

    @default("root_dir")
    def _root_dir_default(self) -> str:
        # nothing is served from it; fixed, so that a restarted service finds its own slot (identity.py)
        return "/"

    @default("terminals_enabled")
    def _terminals_enabled_default(self) -> bool:
        return False

    @default("allow_root")
    def _allow_root_default(self) -> bool:
        return True  # it holds the engine, root's in effect anyway; it serves no files or terminals

    @default("open_browser")
    def _open_browser_default(self) -> bool:
        return False

    @default("allow_remote_access")
    def _allow_remote_access_default(self) -> bool:
        return True  # the Hub's proxy forwards requests for the public host

    @default("port_retries")
    def _port_retries_default(self) -> int:
        return 0  # the Hub's proxy routes to the configured port only

    # -- only our extension ----------------------------------------------------------------
    def find_server_extensions(self) -> None:
        """Enabled server extensions (jupyter_server_config.d) are not looked for: only ours runs."""

    def init_server_extensions(self) -> None:
        self.jpserver_extensions = {EXTENSION: True}
        # before the extension reads its config: a restart of the service (the Hub's, an upgrade)
        # leaves every user's sandboxes for the next start to take back
        if "keep_sandboxes_on_stop" not in self.config.SandboxApp:
            self.config.SandboxApp.keep_sandboxes_on_stop = True
        super().init_server_extensions()

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        if self._dispatching:  # a subcommand, or --help
            return
        settings = self.web_app.settings
        # as in jupyterhub's single-user servers: tornado's own XSRF check runs before the request
        # is authenticated (a token-authenticated request needs none); jupyter_server checks after it
        settings["xsrf_cookies"] = False
        settings.setdefault("headers", {}).setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        # the Hub's proxy lets anyone reach the service: E2B's secret URLs need the owner's Hub login too
        settings[E2B_REQUIRES_LOGIN] = True
        # the extension is loaded by now: its manager gets the Hub-wide policy
        manager = self.web_app.settings["sandbox_manager"]
        provider = self.identity_provider
        assert isinstance(provider, SandboxIdentityProvider)  # unless configured otherwise
        hub_auth = provider.hub_auth
        self.sandbox_service = SandboxService(
            parent=self, log=self.log, manager=manager, api_url=hub_auth.api_url, api_token=hub_auth.api_token
        )
        provider.on_user = self.sandbox_service.on_user

    async def _post_start(self) -> None:
        await super()._post_start()  # type: ignore[no-untyped-call]  # the extension starts: its manager takes back earlier sandboxes
        if self.sandbox_service is not None:
            self.sandbox_service.start()

    async def _cleanup(self) -> None:
        if self.sandbox_service is not None:
            await self.sandbox_service.stop()
        await super()._cleanup()


# jupyter_server's launch_instance carries no annotations: typed here
main: Callable[[], None] = SandboxServiceApp.launch_instance
