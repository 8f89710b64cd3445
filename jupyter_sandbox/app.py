"""The Jupyter Server extension: configuration, the manager's lifetime, the routes."""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from traitlets import Instance, Int, Unicode

from .backends import make_backend
from .backends.docker import DockerBackend
from .backends.local import LocalBackend
from .executions import OneShotRunner
from .manager import SandboxManager


class SandboxApp(ExtensionApp):
    """``jupyter_sandbox`` as a Jupyter Server extension (config section ``SandboxApp``)."""

    name = "jupyter_sandbox"
    load_other_extensions = True
    # listed so `python -m jupyter_sandbox.app --help-all` documents every setting
    classes = [*ExtensionApp.classes, SandboxManager, DockerBackend, LocalBackend, OneShotRunner]

    backend = Unicode(
        "auto", help="Sandbox backend: 'docker', 'local', or 'auto' (docker when an engine answers, else local)."
    ).tag(config=True)
    max_body_size = Int(64 * 1024**2, help="Largest request body in bytes (413 beyond).").tag(config=True)
    max_code_size = Int(4 * 1024**2, help="Largest code string in an execute request, in bytes.").tag(config=True)
    public_url = Unicode(
        "", help="scheme://host[:port] through which clients reach this server, used in each sandbox's "
        "e2b_url (e.g. behind a TLS-terminating proxy). '' = the scheme and host of the request."
    ).tag(config=True)
    keepalive_interval = Int(15, help="Seconds of silence before a keepalive line in streamed executions.").tag(config=True)

    manager = Instance(SandboxManager, allow_none=True)

    def initialize_settings(self) -> None:
        backend = make_backend(self.backend, log=self.log, parent=self)
        self.manager = SandboxManager(parent=self, backend=backend, log=self.log)
        self.executions = OneShotRunner(parent=self, manager=self.manager, log=self.log)
        self.settings.update(
            sandbox_manager=self.manager,
            sandbox_app=self,
            sandbox_executions=self.executions,
        )
        self.log.info("jupyter-sandbox: backend %s (%s)", backend.name, backend.isolation)

    async def _start_jupyter_server_extension(self, serverapp) -> None:
        await self.manager.start()
        await self.executions.start()

    def initialize_handlers(self) -> None:
        from .handlers import default_handlers

        self.handlers.extend(default_handlers)
        from .oneshot_handlers import oneshot_handlers

        self.handlers.extend(oneshot_handlers)

    async def stop_extension(self) -> None:
        if getattr(self, "executions", None) is not None:
            await self.executions.shutdown()  # kills running one-shot executions
        if self.manager is not None:
            self.log.info("jupyter-sandbox: removing %d sandboxes on shutdown", len(self.manager.list()))
            await self.manager.shutdown()


def _jupyter_server_extension_points():
    return [{"module": "jupyter_sandbox", "app": SandboxApp}]


main = launch_new_instance = SandboxApp.launch_instance

if __name__ == "__main__":
    main()
