"""A jupyter_client kernel provisioner that runs a notebook's whole kernel in a sandbox.

jupyter_client makes one ``SandboxProvisioner`` per kernel (the kernelspec names it in
``metadata.kernel_provisioner``). Inside a Jupyter server with the extension, the sandbox is
made by the server's own SandboxManager: same hardening, limits, backend and labels as every
other sandbox, listed in the Sandboxes panel as ``kind: "kernel"``. Elsewhere (nbclient,
``jupyter console``, ``jupyter sandbox run``) this process's embedded manager makes it
(jupyter_sandbox/embedded.py), on its own loop thread.

How the kernel's sockets reach the host is the backend's business: ``start_kernel`` returns
connection info, which is handed to jupyter_client as is. A restart starts a new kernel process
at the same addresses with the same key, so the notebook's open websocket reaches it.

In Hub mode (``c.SandboxProvisioner.service_url``, or ``JUPYTER_SANDBOX_SERVICE_URL`` in the
environment) this server holds no manager: the sandbox is the sandbox service's, asked for over
HTTP with the user's Hub token, and the kernel's channels travel over the service's kernel
websocket to a local bridge (kernel/remote.py, kernel/bridge.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar, cast

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from traitlets import Bool, Dict, Float, Int, Unicode, Union

from ..backends import programs
from ..core.current import running
from ..core.manager import SandboxManager
from ..core.replies import reply_to
from ..embedded import embedded_manager
from ..errors import NotFound, SandboxError
from ..host_files import gather_folder
from ..models import NetworkRules, SpecRequest, parse_size
from .remote import KernelHost, ServiceKernelHost, service_settings

T = TypeVar("T")

# how long a restarted kernel may take to run the death notice (within its start time)
NOTICE_TIMEOUT = 60.0
CELL_TOLD_GRACE = 1.0  # seconds between a kernel's death being seen and the server restarting it


class RunsOnManagerLoop(Protocol):
    """Awaits a coroutine of the manager on the loop the manager lives on."""

    def __call__(self, coro: Coroutine[Any, Any, T], /) -> Awaitable[T]: ...


async def _on_this_loop(coro: Coroutine[Any, Any, T]) -> T:
    # a server's manager lives on the server's loop, where jupyter_client runs this provisioner
    return await coro


class ManagerKernelHost:
    """The kernel's sandbox made by a SandboxManager of this process (the server's, or the
    embedded one, awaited on its own loop through ``on_loop``), for ``owner``."""

    def __init__(self, manager: SandboxManager, owner: str, on_loop: RunsOnManagerLoop) -> None:
        self.manager, self.owner, self.on_loop = manager, owner, on_loop
        self.description = f"{manager.backend.name} backend"

    async def _call(self, method: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kwargs: Any) -> T:
        """``await method(*args, **kwargs)``, a coroutine method of the manager, on its loop."""
        return await self.on_loop(method(*args, **kwargs))

    async def create(self, name: str, spec: SpecRequest, kernel_id: str | None = None) -> str:
        model = await self._call(self.manager.create, self.owner, name, spec, kernel_id=kernel_id, kind="kernel")
        return model.id

    async def connection(self, sandbox_id: str) -> dict[str, Any]:
        return self.manager.kernel_connection(self.owner, sandbox_id)

    async def exit_reason(self, sandbox_id: str) -> str | None:
        return await self._call(self.manager.kernel_exit_reason, self.owner, sandbox_id)

    async def interrupt(self, sandbox_id: str) -> None:
        await self._call(self.manager.interrupt, self.owner, sandbox_id)

    async def stop_kernel(self, sandbox_id: str) -> None:
        await self._call(self.manager.stop_kernel, self.owner, sandbox_id)

    async def restart_kernel(self, sandbox_id: str) -> None:
        await self._call(self.manager.restart_kernel, self.owner, sandbox_id)

    async def remove(self, sandbox_id: str) -> None:
        await self._call(self.manager.remove, self.owner, sandbox_id)

    async def write_file(self, sandbox_id: str, path: str, data: bytes) -> None:
        await self._call(self.manager.write_file, self.owner, sandbox_id, path, data)

    async def close(self) -> None:
        pass  # the manager is the server's (or the process's), not this kernel's


class SandboxProvisioner(KernelProvisionerBase):
    """Runs the kernel in a sandbox. Config (kernelspec ``metadata.kernel_provisioner.config`` or
    ``c.SandboxProvisioner.*``): image, memory, cpus, pids, disk, network, runtime, env. Unset
    values are the server's defaults, and its maxima and allowed images apply."""

    image = Unicode(None, allow_none=True, help="Image of the kernel's sandbox (None: the server's default).").tag(
        config=True
    )
    memory = Unicode(None, allow_none=True, help="Memory limit, e.g. '2G' (None: the server's default).").tag(
        config=True
    )
    cpus = Float(None, allow_none=True, help="CPUs (None: the server's default).").tag(config=True)
    pids = Int(None, allow_none=True, help="Process limit (None: the server's default).").tag(config=True)
    disk = Unicode(None, allow_none=True, help="Size of the writable working directory (None: default).").tag(
        config=True
    )
    network = Union(
        [Bool(), Dict()],
        default_value=False,
        help="Whether the kernel gets network access (if the server allows it), or an egress allow-list "
        '{"allow": ["pypi.org", "*.pythonhosted.org"], "deny": [...]}.',
    ).tag(config=True)
    runtime = Unicode(None, allow_none=True, help="'runc' or 'runsc' (gVisor); None: the server's default.").tag(
        config=True
    )
    env = Dict(help="Environment variables of the kernel. The server's own environment never reaches it.").tag(
        config=True
    )
    notebook_files = Bool(
        False,
        help="Copy the notebook's folder into the sandbox's working directory when the kernel starts "
        "(symlinks are not followed; nothing of the host is mounted). Off: the sandbox starts empty.",
    ).tag(config=True)
    notebook_files_cap = Unicode("100M", help="Most bytes notebook_files copies; over it, none are.").tag(config=True)
    poll_interval = Float(0.5, help="Seconds between liveness checks while waiting for the kernel to end.").tag(
        config=True
    )
    service_url = Unicode(
        None,
        allow_none=True,
        help="Base URL of the sandbox service (Hub mode: this server holds no engine; the kernel's sandbox "
        "is the service's, its channels travel over the service's websocket). None: c.SandboxApp.service_url, "
        "else $JUPYTER_SANDBOX_SERVICE_URL; unset there too: this server's own manager.",
    ).tag(config=True)
    service_token = Unicode(
        None,
        allow_none=True,
        help="Token for the sandbox service (None: c.SandboxApp.service_token, else $JUPYTERHUB_API_TOKEN, "
        "the user's Hub token).",
    ).tag(config=True)

    sandbox_id: str | None = None
    exit_reason: str | None = None  # why the kernel last died (None: it did not, or was shut down)

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._host: KernelHost | None = None
        self._stopping = False  # a stop we asked for: its end is not a death
        self._notebook_folder: str | None = None

    # -- where the sandbox lives ----------------------------------------------------------
    def _service(self) -> tuple[str, str | None] | None:
        """(URL, token) of the sandbox service in Hub mode, else None: this class's traits, else the
        server's ``c.SandboxApp.service_url``/``service_token`` (the one line that sets Hub mode; this
        provisioner shares the server's config), else the environment."""
        server = self.config.get("SandboxApp", {})
        return service_settings(
            self.service_url or server.get("service_url"), self.service_token or server.get("service_token")
        )

    def _bind(self) -> KernelHost:
        """The sandbox service (Hub mode), else the running server's manager, else this process's
        embedded one."""
        if self._host is not None:
            return self._host
        service = self._service()
        here = running()
        if service is not None:
            self._host = ServiceKernelHost(*service, self.log)
        elif here is not None:
            # asked now, in launch_kernel: inside the server, the request starting the kernel decides
            self._host = ManagerKernelHost(here.manager, here.owner(), _on_this_loop)
        else:
            embedded = embedded_manager()
            self._host = ManagerKernelHost(embedded.manager, embedded.owner, embedded.call)
        return self._host

    def _spec(self) -> SpecRequest:
        return SpecRequest(
            image=self.image,
            memory=self.memory,
            cpus=self.cpus,
            pids=self.pids,
            disk=self.disk,
            network=NetworkRules.parse(self.network, where="network")
            if isinstance(self.network, dict)
            else self.network or None,
            runtime=self.runtime,
            env=dict(self.env) or None,
        )

    # -- KernelProvisionerBase --------------------------------------------------------------
    @property
    def has_process(self) -> bool:
        return self.sandbox_id is not None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        kwargs = await super().pre_launch(**kwargs)
        # Interrupt through the control channel (an interrupt_request, as the manager does for
        # every sandbox): no signal path from the host reaches a process in a container. In Hub
        # mode "signal" makes it send_signal's: the service's interrupt route, which does the same
        # on its side, and needs no open websocket.
        if self.kernel_spec is not None:
            hub_mode = self._service() is not None
            self.kernel_spec.interrupt_mode = "signal" if hub_mode else "message"
        km = self.parent
        extra = kwargs.get("extra_arguments", [])
        kwargs["cmd"] = km.format_kernel_cmd(extra) if km is not None else list(self.kernel_spec.argv)
        # What runs in the sandbox is the backend's command; the server's environment (tokens,
        # paths) and working directory are not the kernel's business.
        kwargs.pop("env", None)
        # jupyter_server starts a kernel in its notebook's folder: the folder notebook_files copies
        self._notebook_folder = kwargs.pop("cwd", None)
        return kwargs

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        host = self._bind()
        self._stopping = False
        notice = None  # what the next cell says of the notebook's files
        if self.sandbox_id is None:
            self.sandbox_id = await host.create(f"kernel-{self.kernel_id}", self._spec(), kernel_id=self.kernel_id)
            self.log.info(
                "jupyter-sandbox: kernel %s runs in sandbox %s (%s)", self.kernel_id, self.sandbox_id, host.description
            )
            if self.notebook_files:
                notice = await self._copy_notebook_files(host)
        else:
            await host.restart_kernel(self.sandbox_id)
        try:
            info = await host.connection(self.sandbox_id)
        except BaseException:
            await self.cleanup()  # no kernel reached: its sandbox would be left to nobody
            raise
        if isinstance(info.get("key"), str):
            info["key"] = info["key"].encode()  # as jupyter_client keeps it (session.key is bytes)
        self.connection_info = cast("KernelConnectionInfo", info)
        if self.exit_reason:
            await self._tell_next_cell(f"The previous kernel died: {self.exit_reason}")
            self.exit_reason = None
        elif notice:
            await self._tell_next_cell(notice)
        return self.connection_info

    async def _copy_notebook_files(self, host: KernelHost) -> str | None:
        """Copy the notebook's folder into the new sandbox; what the notebook should be told of it
        (over the cap, symlinks skipped), or None."""
        folder = self._notebook_folder
        if not folder:
            return "The notebook's files were not copied: this kernel was not started from a notebook's folder."
        try:
            # read in a thread: the server's loop runs this, and the files may be up to the cap
            cap = parse_size(self.notebook_files_cap, "notebook_files_cap")
            found = await asyncio.to_thread(gather_folder, folder, cap)
        except SandboxError as e:
            self.log.warning("jupyter-sandbox: kernel %s: %s", self.kernel_id, e.message)
            return f"The notebook's files were not copied: {e.message}."
        assert self.sandbox_id is not None
        try:
            for path, data in found.files:
                await host.write_file(self.sandbox_id, path, data)
        except SandboxError as e:  # e.g. over the sandbox's disk: the kernel runs on, told so
            self.log.warning("jupyter-sandbox: kernel %s: copying %s: %s", self.kernel_id, folder, e.message)
            return f"The notebook's files were copied only in part: {e.message}."
        self.log.info("jupyter-sandbox: copied %d files (%d bytes) of %s", len(found.files), found.size, folder)
        if found.skipped:
            names = ", ".join(os.path.relpath(path, folder) for path in found.skipped)
            return f"Not copied into the sandbox (symlinks are never followed): {names}"
        return None

    async def _tell_next_cell(self, text: str) -> None:
        """Print ``text`` in the next cell that runs (its variables were lost with the old kernel)."""
        client = AsyncKernelClient()
        client.load_connection_info(self.connection_info)
        client.start_channels(iopub=False, stdin=False, hb=False, control=False)
        try:
            code = (
                programs.source("death_notice")
                + f"\n_jupyter_sandbox_death_notice(get_ipython(), {text!r})\ndel _jupyter_sandbox_death_notice\n"
            )
            msg_id = client.execute(code, silent=True, store_history=False)
            if await reply_to(client.get_shell_msg, msg_id, NOTICE_TIMEOUT) is not None:
                self.log.info(
                    "jupyter-sandbox: kernel %s restarted; its next cell says why the last one died", self.kernel_id
                )
            else:
                self.log.warning("jupyter-sandbox: kernel %s did not take the note about its death", self.kernel_id)
        finally:
            client.stop_channels()

    async def poll(self) -> int | None:
        if self.sandbox_id is None or self._host is None:
            return 0
        try:
            reason = await self._host.exit_reason(self.sandbox_id)
        except NotFound:
            reason = "The kernel's sandbox was removed."
        except SandboxError as e:
            self.log.warning("jupyter-sandbox: cannot tell whether kernel %s runs: %s", self.kernel_id, e)
            return None
        if reason is None:
            return None
        if not self._stopping and self.exit_reason is None:
            # the server restarts the kernel by itself: the backend's advice to restart is moot here
            self.exit_reason = re.sub(r"\s*Restart the (context|sandbox) to continue\.", "", reason)
            self.log.warning("jupyter-sandbox: kernel %s died: %s", self.kernel_id, reason)
            km = self.parent
            if km is not None and km.has_trait("reason"):
                # jupyter_server shows it in the kernel's model: JupyterLab's death dialog says it (deaths.ts)
                km.reason = self.exit_reason
            # the relay told the running cell why (running_cells.py): let that error reach the
            # notebook before the restart's status, which makes JupyterLab drop the cell's replies
            await asyncio.sleep(CELL_TOLD_GRACE)
        return 1

    async def wait(self) -> int | None:
        while True:
            status = await self.poll()
            if status is not None:
                return status
            await asyncio.sleep(self.poll_interval)

    async def send_signal(self, signum: int) -> None:
        if self.sandbox_id is None or self._host is None or signum == 0:
            return
        if signum == signal.SIGINT:
            await self._host.interrupt(self.sandbox_id)
        elif signum in (signal.SIGTERM, signal.SIGKILL):
            await self.kill()
        else:
            self.log.warning("jupyter-sandbox: signal %s cannot be sent into a sandbox; ignored", signum)

    async def kill(self, restart: bool = False) -> None:
        if self.sandbox_id is None or self._host is None:
            return
        self._stopping = True
        try:
            await self._host.stop_kernel(self.sandbox_id)
        except NotFound:
            pass  # the sandbox went first (server shutdown removes every sandbox)

    async def terminate(self, restart: bool = False) -> None:
        # There is no gentler signal path into the sandbox: the shutdown_request before this was it.
        await self.kill(restart=restart)

    async def shutdown_requested(self, restart: bool = False) -> None:
        self._stopping = True

    async def cleanup(self, restart: bool = False) -> None:
        if restart or self.sandbox_id is None or self._host is None:
            return
        sandbox_id, self.sandbox_id = self.sandbox_id, None
        try:
            await self._host.remove(sandbox_id)
        except NotFound:
            pass  # removed already (with the server's other sandboxes, or by its kernel-shutdown listener)
        finally:
            await self._host.close()
            self._host = None

    def get_stable_start_time(self, recommended: float = 10.0) -> float:
        # a new container and a kernel in it; under gVisor a few seconds more
        return max(recommended, 30.0)

    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info["sandbox_id"] = self.sandbox_id
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.sandbox_id = provisioner_info.get("sandbox_id")
