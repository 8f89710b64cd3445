"""The seam between core and the backends for talking to a kernel: what core needs of a kernel client.

``KernelClient`` is the subset of jupyter_client's ``AsyncKernelClient`` that core uses (send an
execute, a kernel_info or an input reply; receive on shell, iopub and stdin; interrupt through the
control channel; stop). Both jupyter_client's client and the relay's in-process client
(``kernel_channels.DirectKernelClient``) satisfy it. ``zmq_kernel_client`` builds jupyter_client's,
over ZMQ, from a kernel's connection info: what a backend without a relay hands core.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.session import Session


class ControlChannel(Protocol):
    def send(self, msg: dict[str, Any]) -> None:
        """Send a message made by ``KernelClient.session.msg`` (e.g. an interrupt_request)."""


class IopubChannel(Protocol):
    def close(self) -> None:
        """Stop receiving iopub: nothing queues unread (a notebook reads this kernel's output)."""


class KernelClient(Protocol):
    """A client connected to one kernel. ``get_*_msg`` raise ``queue.Empty`` when nothing came
    within ``timeout`` seconds; messages are dicts shaped as jupyter_client's ``Session.deserialize``
    returns them (``header``, ``parent_header``, ``metadata``, ``content``, ``buffers``, ``msg_id``,
    ``msg_type``)."""

    @property
    def session(self) -> Session: ...

    @property
    def control_channel(self) -> ControlChannel: ...

    @property
    def iopub_channel(self) -> IopubChannel: ...

    def execute(
        self,
        code: str,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, Any] | None = None,
        allow_stdin: bool | None = None,
        stop_on_error: bool = True,
    ) -> str: ...

    def kernel_info(self) -> str: ...

    def input(self, string: str) -> None: ...

    async def get_shell_msg(self, timeout: float | None = None) -> dict[str, Any]: ...

    async def get_iopub_msg(self, timeout: float | None = None) -> dict[str, Any]: ...

    async def get_stdin_msg(self, timeout: float | None = None) -> dict[str, Any]: ...

    def stop_channels(self) -> None: ...


def zmq_kernel_client(info: dict[str, Any]) -> KernelClient:
    """jupyter_client's client for the kernel at ``info`` (its connection info), channels started."""
    client = AsyncKernelClient()
    client.load_connection_info(cast("KernelConnectionInfo", info))
    client.start_channels()
    return client
