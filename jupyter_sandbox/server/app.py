"""The Jupyter Server extension: configuration, the manager's lifetime, the routes."""

from __future__ import annotations

import getpass
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_server import CallContext
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.serverapp import ServerApp
from jupyter_server.services.events.handlers import EventHandler
from jupyter_server.utils import url_path_join
from traitlets import Bool, Dict, Instance, Int, Unicode, default

from ..backends import make_backend
from ..backends.docker import DockerBackend
from ..backends.local import LocalBackend
from ..core.api_keys import ApiKeys
from ..core.current import set_running
from ..core.deadlines import Deadlines
from ..core.identity import ServerIdentity
from ..core.manager import SandboxManager
from ..core.state import SandboxRecords
from ..core.volumes import SandboxVolumes
from ..oneshot.runner import OneShotRunner
from ..outputs import OutputPolicy
from . import (
    admin,
    command_routes,
    e2b,
    e2b_api,
    e2b_plane,
    e2b_process,  # noqa: F401  (registers envd's process service on the plane)
    e2b_volumes,
    envd_files,  # registers envd's filesystem service on the plane
    envd_http,  # and its /files
    events,
    handlers,
    kernel_ws,
    keys,
    mcp_http,
    oneshot,
    pause_routes,
    service_proxy,
    terminal_proxy,
    terminal_ws,
    volume_routes,
)
from .e2b import E2B, scrub_logs
from .envd_watchers import Watchers
from .events import EventStreams
from .handlers import SHARED_OWNER, SHARED_TOKEN_PROVIDERS, owner_of
from .service_proxy import SERVICE_URL_ENV, ServiceLink

KERNEL_ACTIONS = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"


class SandboxApp(ExtensionApp):
    """``jupyter_sandbox`` as a Jupyter Server extension (config section ``SandboxApp``)."""

    name = "jupyter_sandbox"
    load_other_extensions = True
    # listed so `python -m jupyter_sandbox.app --help-all` documents every setting
    classes = [
        *ExtensionApp.classes,
        SandboxManager,
        SandboxVolumes,
        DockerBackend,
        LocalBackend,
        OneShotRunner,
        OutputPolicy,
    ]

    backend = Unicode(
        "auto",
        help="Sandbox backend: 'docker', 'local', 'kubernetes' (pods; the 'kubernetes' extra, docs/kubernetes.md), or "
        "'auto' (docker when an engine answers, else local).",
    ).tag(config=True)
    allow_local_fallback = Bool(
        True,
        help="Whether backend 'auto' may fall back to 'local' when no Docker engine answers. 'local' is no "
        "security boundary (code runs as the server's user): a shared host should set False, so that without "
        "an engine every sandbox request is refused (503, naming the cause) instead. backend='docker' never "
        "falls back.",
    ).tag(config=True)
    max_body_size = Int(64 * 1024**2, help="Largest request body in bytes, on every route (413 beyond).").tag(
        config=True
    )
    max_code_size = Int(
        4 * 1024**2,
        help="Largest code in bytes: an execute request's code, a one-shot eval's code or files (413 beyond).",
    ).tag(config=True)
    public_url = Unicode(
        "",
        help="scheme://host[:port] through which clients reach this server, used in each sandbox's "
        "e2b_url (e.g. behind a TLS-terminating proxy). '' = the scheme and host of the request.",
    ).tag(config=True)
    keep_sandboxes_on_stop = Bool(
        False,
        help="Leave the sandboxes running when the server stops cleanly, for its next start (same state_dir, "
        "root dir and base URL) to take back with their variables, as after a crash. False removes them. The "
        "sandbox service (jupyter sandbox serve) defaults to True: restarting it must not cost every user "
        "their work.",
    ).tag(config=True)
    e2b_routes = Bool(
        True,
        help="Serve the routes E2B's SDK calls (sandbox/e2b/...) and give each sandbox an e2b_url. Those routes "
        "take a per-sandbox secret in the URL instead of the server's auth (a proxy in front passes them as "
        "they are): False serves none and gives no sandbox an e2b_url.",
    ).tag(config=True)
    e2b_templates = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        help="E2B template names -> images, for the templateID of E2B's create (sandbox/e2b/api). The SDKs' "
        "defaults ('base', 'code-interpreter-v1') and no name mean the default image; other names are refused.",
    ).tag(config=True)
    keepalive_interval = Int(15, help="Seconds of silence before a keepalive line in streamed executions.").tag(
        config=True
    )

    state_dir = Unicode(
        help="Private folder (mode 0700, owned by the server's user) for the server's state: its identity "
        "slot (so a restarted server recognises its own containers). Default: <jupyter data dir>/jupyter_sandbox."
    ).tag(config=True)

    service_url = Unicode(
        help="Hub mode: the URL of the JupyterHub sandbox service (e.g. http://127.0.0.1:10101/services/sandbox/), "
        "which alone holds the container engine. When set, this server runs no sandbox itself and never touches "
        f"Docker: it forwards the sandbox routes there. Default: ${SERVICE_URL_ENV} ('' = no service).",
    ).tag(config=True)
    service_token = Unicode(
        help="Hub mode: the token sent to the sandbox service (the owner of the sandboxes is its Hub user). "
        "Default: $JUPYTERHUB_API_TOKEN, this server's own Hub token."
    ).tag(config=True)

    manager = Instance(SandboxManager, allow_none=True)
    deadlines: Deadlines | None = None
    identity: ServerIdentity | None = None
    # kernel id -> who started it (kernel_owner() at its start), for the sandboxes tied to it
    kernel_starters: dict[str, str]

    @default("service_url")
    def _service_url_default(self) -> str:
        return os.environ.get(SERVICE_URL_ENV, "")

    @default("service_token")
    def _service_token_default(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    @property
    def hub_mode(self) -> bool:
        """The one rule of the mode: a service URL means sandboxes only through the service."""
        return bool(self.service_url)

    @default("state_dir")
    def _state_dir_default(self) -> str:
        return os.path.join(jupyter_data_dir(), "jupyter_sandbox")

    def initialize_settings(self) -> None:
        assert self.serverapp is not None  # an extension is always linked to its server first
        # no E2B secret in any line of the server's log, whatever the route (see e2b.ScrubSecrets)
        scrub_logs(self.serverapp.log, self.log, logging.getLogger("tornado"), logging.getLogger())
        self.event_streams = EventStreams()
        self.kernel_starters = {}
        if self.hub_mode:
            # No backend, no manager, no one-shot runner: nothing here may reach an engine (or run
            # code on this host with the local backend). set_running stays unset: the sandboxed
            # kernel's provisioner finds no manager in this process.
            self.settings.update(
                sandbox_service=ServiceLink.from_environment(self.service_url, self.service_token),
                sandbox_event_streams=self.event_streams,
                sandbox_manager=None,
                sandbox_app=self,
                sandbox_executions=None,
            )
            self.log.info("jupyter-sandbox: Hub mode, sandboxes through the service at %s", self.service_url)
            return
        backend = make_backend(self.backend, log=self.log, allow_local=self.allow_local_fallback, parent=self)
        self.identity = ServerIdentity.claim(
            self.state_dir, {"root_dir": str(self.serverapp.root_dir), "base_url": self.serverapp.base_url}
        )
        if self.identity.previous:
            self.log.info(
                "jupyter-sandbox: server id %s, taken over from this server's earlier run (pid %s, gone)",
                self.identity.server_id,
                self.identity.previous.get("pid"),
            )
        else:
            self.log.info("jupyter-sandbox: server id %s (new)", self.identity.server_id)
        self.manager = SandboxManager(parent=self, backend=backend, log=self.log, server_id=self.identity.server_id)
        if self.e2b_routes:  # no prefix, no e2b_url (kernel_kind.give_e2b_url)
            self.manager.e2b_prefix = url_path_join(self.serverapp.base_url, E2B) + "/"
        self.manager.records = SandboxRecords(os.path.join(self.identity.folder, "sandboxes"))
        # snapshots outlive a server's slot: every server of the user shares them (issue 23)
        self.manager.pausing.archives.folder = os.path.join(self.state_dir, "snapshots")
        if not backend.volume_dir:  # persistent volumes (issue 23) live with the server's state
            backend.volume_dir = os.path.join(self.state_dir, "volumes")
        if self.serverapp.event_logger is None:
            raise RuntimeError("jupyter_sandbox needs jupyter_server's event logger (jupyter_server >= 2)")
        self.manager.add_listener(self.event_streams.send)
        self.executions = OneShotRunner(parent=self, manager=self.manager, log=self.log)
        self.settings.update(
            sandbox_event_streams=self.event_streams,
            sandbox_manager=self.manager,
            sandbox_app=self,
            sandbox_executions=self.executions,
        )
        # sandboxes made with a timeout (E2B's lifecycle API) end at their deadline unless extended
        self.deadlines = Deadlines(self.manager, self.log)
        self.settings[e2b_api.DEADLINES_SETTING] = self.deadlines
        self.settings[envd_files.WATCHERS_SETTING] = Watchers()
        # the keys users mint for E2B's SDKs (X-API-KEY); a token the server's auth takes works too
        self.settings[e2b_plane.API_KEYS_SETTING] = ApiKeys(os.path.join(self.state_dir, "api_keys.json"))
        self.log.info("jupyter-sandbox: backend %s (%s)", backend.name, backend.isolation)
        # The sandboxed kernel's provisioner (jupyter_sandbox.kernel) runs in this process and uses
        # this manager: known from now on, since a kernel may start before the extension's start ends.
        set_running(self.manager, self.kernel_owner)
        self._stop_on_sigint()

    def _stop_on_sigint(self) -> None:
        """Without a TTY, SIGINT stops the server as SIGTERM does. JupyterHub stops a server with
        SIGINT, and jupyter_server handles SIGINT only on a TTY (to ask first): elsewhere the event
        loop dies of KeyboardInterrupt, no extension's stop runs, and the sandboxes outlive the server."""
        if sys.platform.startswith("win") or (sys.stdin is not None and sys.stdin.isatty()):
            return
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers: a server embedded in a thread keeps its host's
        stop = signal.getsignal(signal.SIGTERM)  # jupyter_server's init_signal ran before extensions load
        # a SIGINT handler of someone else's (JupyterHub's, an embedding app's) stands
        if callable(stop) and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, stop)
            self.log.debug("jupyter-sandbox: SIGINT stops the server as SIGTERM does (no TTY)")

    def kernel_owner(self) -> str:
        """Whom a notebook kernel starting now belongs to: the user whose request starts it, by the
        handlers' rule. jupyter_server starts kernels (POST /api/kernels, /api/sessions) in the
        request's own task chain, where its CallContext holds the handler."""
        handler = CallContext.get(CallContext.JUPYTER_HANDLER)
        if isinstance(handler, JupyterHandler) and handler.current_user is not None:
            return owner_of(handler)
        # no request (a kernel the server starts by itself): the user the server serves
        if self.serverapp is None or type(self.serverapp.identity_provider) in SHARED_TOKEN_PROVIDERS:
            return SHARED_OWNER
        return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()

    async def _start_jupyter_server_extension(self, serverapp: ServerApp) -> None:
        if self.manager is not None:  # None in Hub mode
            await self.manager.start()
            self.executions.start()  # the pool of one-shot containers fills in the background
        if self.deadlines is not None:
            self.deadlines.start()
        # A notebook kernel's own sandbox goes when the server shuts the kernel down (a restart
        # keeps it: jupyter_server emits "shutdown" only for a real shutdown, culling included).
        assert serverapp.event_logger is not None  # initialize_settings refused a server without one
        serverapp.event_logger.add_listener(schema_id=KERNEL_ACTIONS, listener=self._on_kernel_action)

    async def _on_kernel_action(self, logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        kernel_id, action = data.get("kernel_id"), data.get("action")
        if not isinstance(kernel_id, str) or not kernel_id:
            return
        # jupyter_events runs a listener in a task made where the event was emitted, so jupyter_server's
        # CallContext holds the request behind it. Anyone may post these events (POST /api/events):
        # one posted is a claim, not a kernel action.
        handler = CallContext.get(CallContext.JUPYTER_HANDLER)
        posted = isinstance(handler, EventHandler)
        if action == "start" and data.get("status") == "success" and not posted:
            self.kernel_starters[kernel_id] = self.kernel_owner()
        elif action == "interrupt" and isinstance(handler, JupyterHandler) and not posted:
            # the interrupter's sandbox cell for this kernel stops too (JupyterLab's Stop button)
            self.event_streams.send(owner_of(handler), {"action": "kernel_interrupted", "kernel_id": kernel_id})
        elif action == "shutdown":
            await self._kernel_shut_down(kernel_id)

    async def _kernel_shut_down(self, kernel_id: str) -> None:
        """Remove the sandboxes of a kernel that shut down, if the kernel manager agrees it did."""
        # jupyter_client drops the kernel from its maps right after the shutdown that emits the event;
        # a kernel still starting is in its pending map only.
        kernels = self.serverapp.kernel_manager if self.serverapp is not None else None
        if kernels is None or kernel_id in kernels or kernel_id in getattr(kernels, "_pending_kernels", {}):
            self.log.warning(
                "jupyter-sandbox: ignored a shutdown event for kernel %r, which is still running", kernel_id[:64]
            )
            return
        self.kernel_starters.pop(kernel_id, None)
        try:
            if self.manager is not None:
                await self.manager.remove_kernel_sandboxes(kernel_id)
            else:  # Hub mode: the service's sandboxes this server tied to the kernel
                await self.settings["sandbox_service"].remove_kernel_sandboxes(kernel_id, self.log)
        except Exception:  # a listener's error would vanish in jupyter_events' task: say it here
            self.log.exception("jupyter-sandbox: removing the sandboxes of kernel %s failed", kernel_id)

    def initialize_handlers(self) -> None:
        routes = (
            [*service_proxy.ROUTES, *terminal_proxy.ROUTES]
            if self.hub_mode
            else [
                *handlers.ROUTES,
                *command_routes.ROUTES,
                *pause_routes.ROUTES,
                *volume_routes.ROUTES,
                *keys.ROUTES,
                *admin.ROUTES,
                *kernel_ws.ROUTES,
                *terminal_ws.ROUTES,
                *events.ROUTES,
                *(e2b.ROUTES if self.e2b_routes else []),
                *(e2b_plane.routes() if self.e2b_routes else []),
                *(e2b_volumes.ROUTES if self.e2b_routes else []),  # before e2b_api's catch-all
                *(e2b_api.ROUTES if self.e2b_routes else []),
                *(envd_http.ROUTES if self.e2b_routes else []),
                *oneshot.ROUTES,
                *mcp_http.ROUTES,
            ]
        )
        for template, handler in routes:
            self.handlers.append((handlers.route_pattern(template), handler))

    async def stop_extension(self) -> None:
        await envd_files.close_watchers(self.settings)
        await mcp_http.stop(self.settings)
        if getattr(self, "executions", None) is not None:
            await self.executions.shutdown()  # kills running one-shot executions
        set_running(None)
        if self.deadlines is not None:
            await self.deadlines.stop()
        keep = self.keep_sandboxes_on_stop
        if self.manager is not None:
            verb = "keeping" if keep else "removing"
            self.log.info("jupyter-sandbox: %s %d sandboxes on shutdown", verb, len(self.manager.list()))
            await self.manager.shutdown(keep_sandboxes=keep)
        if self.identity is not None:
            # forgotten when every sandbox of this server is gone; kept, the next start takes them back
            self.identity.release(forget=not keep)


# jupyter_server's launch_instance carries no annotations: typed here, for the call below
main: Callable[[], None] = SandboxApp.launch_instance
launch_new_instance = main

if __name__ == "__main__":
    main()
