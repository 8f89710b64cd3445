"""``AsyncSandbox``, the implementation, and ``Sandbox``, its blocking twin made from it.

The API is E2B's code interpreter's: ``Sandbox().run_code(code)`` returns an ``Execution``,
and callbacks get ``OutputMessage``, ``Result`` and ``ExecutionError`` as lines arrive.
``Sandbox`` runs ``AsyncSandbox``'s coroutines on the client's private loop (the way
nbclient makes its sync methods with ``run_sync``), except that ``run_code``'s callbacks fire
on the caller's thread: in a notebook kernel that is the cell's, which keeps output in the
right cell.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import functools
import queue
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

from ..errors import NotFound
from ..models import (
    ContextModel,
    ExecuteRequest,
    Execution,
    InputReply,
    InputRequest,
    NetworkRules,
    OutputMessage,
    SandboxModel,
    SandboxRequest,
    SnapshotModel,
)
from .commands import AsyncCommands, Commands
from .connection import Connection, Event, maybe_await
from .discovery import connect
from .files import AsyncFiles, Files
from .loop import blocking, private_loop

Callback = Callable[[Any], Any]


def _context_id(context: ContextModel | str | None) -> str | None:
    return context.id if isinstance(context, ContextModel) else context


class _Dispatcher:
    """Folds events into an Execution (Execution.apply_event) and fires E2B-style callbacks."""

    def __init__(
        self,
        on_stdout: Callback | None = None,
        on_stderr: Callback | None = None,
        on_result: Callback | None = None,
        on_error: Callback | None = None,
    ):
        self.execution = Execution()
        self.callbacks = (on_stdout, on_stderr, on_result, on_error)

    def __call__(self, event: Event) -> Any:
        on_stdout, on_stderr, on_result, on_error = self.callbacks
        self.execution.apply_event(event)
        kind = event.get("type")
        if kind in ("stdout", "stderr"):
            callback = on_stdout if kind == "stdout" else on_stderr
            if callback:
                return callback(
                    OutputMessage(event.get("text", ""), event.get("timestamp") or time.time_ns(), kind == "stderr")
                )
        elif kind == "result" and on_result:
            return on_result(self.execution.results[-1])
        elif kind == "error" and on_error:
            return on_error(self.execution.error)
        return None


# ipykernel's input() raises EOFError when answered with this (EOT), as at the end of a terminal's input
END_OF_INPUT = "\x04"


class NoInput(Exception):
    """An ``on_input`` handler that cannot answer raises this: the code's input() then fails with
    an InputNotAvailable error carrying this message."""


class InputInterrupted(NoInput):
    """The caller was interrupted while it was asked for input."""


async def _remove(connection: Connection, key: str) -> bool:
    try:
        await connection.remove(key)
    except NotFound:
        return False
    return True


OnClass = TypeVar("OnClass")
OnInstance = TypeVar("OnInstance")


class ClassOrInstance(Generic[OnClass, OnInstance]):
    """A method E2B offers both ways: on the class with a sandbox id (``Sandbox.kill(id)``), on an
    instance for itself (``sandbox.kill()``). Typed by what each way returns."""

    def __init__(self, on_class: Callable[..., OnClass], on_instance: Callable[..., OnInstance]):
        # a classmethod object in the class body: its function, given the class on each call
        self.on_class: Callable[..., OnClass] = getattr(on_class, "__func__", on_class)
        self.on_instance = on_instance
        self.__doc__ = on_instance.__doc__

    @overload
    def __get__(self, instance: None, owner: type) -> Callable[..., OnClass]: ...

    @overload
    def __get__(self, instance: object, owner: type) -> Callable[..., OnInstance]: ...

    def __get__(self, instance: object, owner: type) -> Callable[..., Any]:
        if instance is None:
            return functools.partial(self.on_class, owner)
        return functools.partial(self.on_instance, instance)


class AsyncSandbox:
    """A sandbox: a container with stateful kernels ("contexts"), E2B-style, for asyncio.

    ``sandbox = await AsyncSandbox.create()``; ``async with sandbox:`` removes it on exit
    unless ``keep=True``. Callbacks may be plain functions or coroutine functions.
    """

    def __init__(self, connection: Connection, model: SandboxModel, keep: bool = False):
        self._connection = connection
        self._model = model
        self.keep = keep
        self.files = AsyncFiles(self)
        self.commands = AsyncCommands(self)

    @classmethod
    async def create(
        cls,
        name: str | None = None,
        *,
        image: str | None = None,
        memory: str | int | None = None,
        cpus: float | None = None,
        network: bool | dict[str, list[str]] = False,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
        server_url: str | None = None,
        token: str | None = None,
        keep: bool = False,
        kernel_id: str | None = None,
        snapshot: str | None = None,
        volume: str | None = None,
        volume_read_only: bool = False,
        _connection: Connection | None = None,
    ) -> AsyncSandbox:
        """A new sandbox. ``kernel_id`` ties it to a notebook kernel of the server (removed with it);
        ``network`` may be an egress allow-list, ``{"allow": ["pypi.org"], "deny": [...]}``.
        ``snapshot``: one of yours, whose files (and spec, unless you ask for other resources) it starts with.
        ``volume`` names your persistent volume to mount (made on first use; "" for none)."""
        connection = _connection or await _connect(server_url, token)
        request = SandboxRequest(
            name=name,
            image=image,
            memory=memory,
            cpus=cpus,
            network=NetworkRules.parse(network, where="network") if isinstance(network, dict) else network or None,
            env=env,
            timeout=timeout,
            kernel_id=kernel_id,
            snapshot=snapshot,
            volume=volume,
            volume_read_only=volume_read_only or None,
        )
        return cls(connection, await connection.create(request), keep)

    @classmethod
    async def connect(
        cls,
        name_or_id: str,
        *,
        server_url: str | None = None,
        token: str | None = None,
        keep: bool = True,
        _connection: Connection | None = None,
    ) -> AsyncSandbox:
        """An existing sandbox, by name or id (kept on exit by default)."""
        connection = _connection or await _connect(server_url, token)
        return cls(connection, await connection.get(name_or_id), keep)

    @classmethod
    async def list(
        cls, *, server_url: str | None = None, token: str | None = None, _connection: Connection | None = None
    ) -> list[SandboxModel]:
        """Your sandboxes on the server."""
        connection = _connection or await _connect(server_url, token)
        return await connection.list()

    @property
    def id(self) -> str:
        return self._model.id

    sandbox_id = id  # E2B's name for it

    @property
    def name(self) -> str:
        return self._model.name

    @property
    def connection(self) -> Connection:
        return self._connection

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, name={self.name!r}, server={self._connection.description!r})"

    async def __aenter__(self) -> AsyncSandbox:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if not self.keep:
            await self.kill()

    async def get_model(self) -> SandboxModel:
        """The sandbox as the server sees it now."""
        self._model = await self._connection.get(self.id)
        return self._model

    async def run_code(
        self,
        code: str,
        *,
        context: ContextModel | str | None = None,
        language: str | None = None,
        on_stdout: Callback | None = None,
        on_stderr: Callback | None = None,
        on_result: Callback | None = None,
        on_error: Callback | None = None,
        envs: dict[str, str] | None = None,
        timeout: float | None = None,
        on_input: Callback | None = None,
    ) -> Execution:
        """Run ``code`` and return its Execution; callbacks fire as output arrives.

        ``on_input(InputRequest)`` answers input() and getpass() in the code (it returns the line,
        or raises to fail the input with its message). Without it, input() fails at once with an
        InputNotAvailable error.
        """
        dispatch = _Dispatcher(on_stdout, on_stderr, on_result, on_error)
        request = ExecuteRequest(
            code=code,
            context_id=_context_id(context),
            language=language,
            env_vars=envs,
            timeout=timeout,
            allow_stdin=True if on_input else None,
        )

        async def on_event(event: Event) -> None:
            if event.get("type") == "input_request" and on_input is not None:
                await self._answer_input(event, on_input)
            else:
                await maybe_await(dispatch(event))

        await self._connection.execute(self.id, request, on_event)
        return dispatch.execution

    async def _answer_input(self, event: Event, on_input: Callback) -> None:
        request = InputRequest(
            prompt=event.get("prompt", ""), password=bool(event.get("password")), context_id=event.get("context_id")
        )
        try:
            value = await maybe_await(on_input(request))
        except EOFError:  # the caller's input is at its end: so is the code's (ipykernel's EOT answer)
            reply = InputReply(value=END_OF_INPUT)
        except NoInput as e:
            reply = InputReply(error=str(e))
        except Exception as e:  # the code in the sandbox fails with this, instead of waiting forever
            reply = InputReply(error=f"on_input failed: {type(e).__name__}: {e}")
        else:
            reply = InputReply(value=str(value)) if value is not None else InputReply(error="on_input gave no answer")
        await self._connection.answer_input(self.id, request.context_id or "", reply)

    async def create_context(self, *, language: str | None = None, cwd: str | None = None) -> ContextModel:
        return await self._connection.create_context(self.id, language, cwd)

    async def list_contexts(self) -> builtins.list[ContextModel]:
        return await self._connection.list_contexts(self.id)

    async def restart_context(self, context: ContextModel | str) -> ContextModel:
        return await self._connection.restart_context(self.id, _context_id(context) or "")

    async def remove_context(self, context: ContextModel | str) -> None:
        await self._connection.remove_context(self.id, _context_id(context) or "")

    async def interrupt(self) -> None:
        await self._connection.interrupt(self.id)

    async def restart(self) -> SandboxModel:
        """A fresh container with the same id and spec: variables and files are lost."""
        self._model = await self._connection.restart(self.id)
        return self._model

    async def stats(self) -> dict[str, Any]:
        return await self._connection.stats(self.id)

    # -- pause, resume, snapshots, fork (issue 23; docs/pause.md) --
    async def pause(self) -> SandboxModel:
        """Stop the sandbox, freeing its CPU and memory; ``memory_kept`` says whether its variables
        will come back (gVisor), else only its files (``memory_note`` says why)."""
        self._model = await self._connection.pause(self.id)
        return self._model

    async def resume(self) -> SandboxModel:
        """Start a paused sandbox again (code sent to a paused one resumes it too, by default)."""
        self._model = await self._connection.resume(self.id)
        return self._model

    async def snapshot(self, name: str) -> SnapshotModel:
        """Keep a named copy of the working directory on the server (yours only)."""
        return await self._connection.snapshot(self.id, name)

    async def fork(self, name: str | None = None, *, keep: bool | None = None) -> AsyncSandbox:
        """A running copy: a new sandbox with this one's spec and a copy of its files (not its variables)."""
        model = await self._connection.fork(self.id, name)
        return AsyncSandbox(self._connection, model, self.keep if keep is None else keep)

    @classmethod
    async def list_snapshots(
        cls, *, server_url: str | None = None, token: str | None = None, _connection: Connection | None = None
    ) -> builtins.list[SnapshotModel]:
        """Your snapshots, oldest first."""
        return await (_connection or await _connect(server_url, token)).list_snapshots()

    @classmethod
    async def delete_snapshot(
        cls,
        name: str,
        *,
        server_url: str | None = None,
        token: str | None = None,
        _connection: Connection | None = None,
    ) -> None:
        await (_connection or await _connect(server_url, token)).delete_snapshot(name)

    async def _kill(self) -> bool:
        """Remove the sandbox; False when it was gone already."""
        return await _remove(self._connection, self.id)

    @classmethod
    async def _kill_by_id(
        cls,
        sandbox_id: str,
        *,
        server_url: str | None = None,
        token: str | None = None,
        _connection: Connection | None = None,
    ) -> bool:
        """Remove a sandbox of yours by id or name; False when there is none."""
        return await _remove(_connection or await _connect(server_url, token), sandbox_id)

    # E2B's both: ``await AsyncSandbox.kill(sandbox_id)`` and ``await sandbox.kill()``
    kill = ClassOrInstance(_kill_by_id, _kill)

    async def _set_timeout(self, timeout: int) -> None:
        """The sandbox ends ``timeout`` seconds from now (unless set again)."""
        self._model = await self._connection.set_timeout(self.id, timeout)

    @classmethod
    async def _set_timeout_by_id(
        cls,
        sandbox_id: str,
        timeout: int,
        *,
        server_url: str | None = None,
        token: str | None = None,
        _connection: Connection | None = None,
    ) -> None:
        await (_connection or await _connect(server_url, token)).set_timeout(sandbox_id, timeout)

    set_timeout = ClassOrInstance(_set_timeout_by_id, _set_timeout)

    @classmethod
    async def _get_info_by_id(
        cls,
        sandbox_id: str,
        *,
        server_url: str | None = None,
        token: str | None = None,
        _connection: Connection | None = None,
    ) -> SandboxModel:
        return await (_connection or await _connect(server_url, token)).get(sandbox_id)

    # E2B's get_info: the sandbox as the server sees it now (its end_at, state, spec...)
    get_info = ClassOrInstance(_get_info_by_id, get_model)


async def _connect(server_url: str | None, token: str | None) -> Connection:
    loop = asyncio.get_running_loop()
    return await asyncio.to_thread(connect, server_url, token, loop=loop)  # finding a server may probe, which blocks


# ---------------------------------------------------------------------------------------
# The blocking twins, made from the async classes


def _blocking(name: str) -> Callable[..., Any]:
    return blocking(name, AsyncSandbox)


class Sandbox:
    """A sandbox: a container with stateful kernels ("contexts"), E2B-style.

    ``with Sandbox() as sandbox: sandbox.run_code("x = 1")`` -- the sandbox is removed on
    exit unless ``keep=True``. ``Sandbox.connect(name)`` attaches to an existing one (kept on
    exit by default).
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        image: str | None = None,
        memory: str | int | None = None,
        cpus: float | None = None,
        network: bool | dict[str, list[str]] = False,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
        server_url: str | None = None,
        token: str | None = None,
        keep: bool = False,
        kernel_id: str | None = None,
        snapshot: str | None = None,
        volume: str | None = None,
        volume_read_only: bool = False,
        _connection: Connection | None = None,
        _model: SandboxModel | None = None,
    ):
        connection = _connection or connect(server_url, token)
        if _model is None:
            self._async = private_loop().run(
                AsyncSandbox.create(
                    name,
                    image=image,
                    memory=memory,
                    cpus=cpus,
                    network=network,
                    env=env,
                    timeout=timeout,
                    keep=keep,
                    kernel_id=kernel_id,
                    snapshot=snapshot,
                    volume=volume,
                    volume_read_only=volume_read_only,
                    _connection=connection,
                )
            )
        else:
            self._async = AsyncSandbox(connection, _model, keep)
        self.files = Files(self._async.files)
        self.commands = Commands(self._async.commands)

    @classmethod
    def create(cls, name: str | None = None, **options: Any) -> Sandbox:
        """A new sandbox (E2B 2.x's spelling of ``Sandbox(...)``, with the same options)."""
        return cls(name, **options)

    @classmethod
    def connect(
        cls,
        name_or_id: str,
        *,
        server_url: str | None = None,
        token: str | None = None,
        keep: bool = True,
        _connection: Connection | None = None,
    ) -> Sandbox:
        connection = _connection or connect(server_url, token)
        model = private_loop().run(connection.get(name_or_id))
        return cls(_connection=connection, _model=model, keep=keep)

    @classmethod
    def list(
        cls, *, server_url: str | None = None, token: str | None = None, _connection: Connection | None = None
    ) -> list[SandboxModel]:
        connection = _connection or connect(server_url, token)
        return private_loop().run(connection.list())

    id = property(lambda self: self._async.id)
    sandbox_id = id
    name = property(lambda self: self._async.name)
    connection = property(lambda self: self._async.connection)

    @property
    def keep(self) -> bool:
        return self._async.keep

    @keep.setter
    def keep(self, value: bool) -> None:
        self._async.keep = value

    def __repr__(self) -> str:
        return repr(self._async).replace("AsyncSandbox", "Sandbox", 1)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.keep:
            self.kill()

    @property
    def model(self) -> SandboxModel:
        """The sandbox as the server sees it now."""
        return private_loop().run(self._async.get_model())

    def run_code(
        self,
        code: str,
        *,
        context: ContextModel | str | None = None,
        language: str | None = None,
        on_stdout: Callback | None = None,
        on_stderr: Callback | None = None,
        on_result: Callback | None = None,
        on_error: Callback | None = None,
        envs: dict[str, str] | None = None,
        timeout: float | None = None,
        on_input: Callback | None = None,
    ) -> Execution:
        """Run ``code`` and return its Execution; callbacks fire, on this thread, as output arrives.

        ``on_input(InputRequest)`` answers input() and getpass() in the code (see AsyncSandbox).
        Interrupting the caller (Ctrl-C, a notebook's interrupt) interrupts the sandbox's
        kernel and still returns what the code produced.
        """
        calls: queue.SimpleQueue[Any] = queue.SimpleQueue()  # (callback, its argument) pairs, then ``done``
        done = object()

        def here(callback: Callback | None) -> Callback | None:
            # on the loop thread: hand the call to this thread, which waits for it below
            return (lambda obj: calls.put((callback, obj))) if callback else None

        def ask(request: InputRequest) -> asyncio.Future[Any]:
            # on the loop thread: this thread answers (input() must run here, in a notebook the
            # kernel's main thread); the loop awaits the answer meanwhile
            answer: concurrent.futures.Future[Any] = concurrent.futures.Future()

            def answer_here(obj: InputRequest) -> None:
                assert on_input is not None  # only asked for when given
                try:
                    answer.set_result(on_input(obj))
                except KeyboardInterrupt:  # the person interrupted instead of answering
                    answer.set_exception(InputInterrupted("the input was interrupted"))
                except Exception as e:
                    answer.set_exception(e)

            calls.put((answer_here, request))
            return asyncio.wrap_future(answer)

        future = private_loop().submit(
            self._async.run_code(
                code,
                context=context,
                language=language,
                envs=envs,
                timeout=timeout,
                on_stdout=here(on_stdout),
                on_stderr=here(on_stderr),
                on_result=here(on_result),
                on_error=here(on_error),
                on_input=ask if on_input else None,
            )
        )
        future.add_done_callback(lambda _: calls.put(done))
        while True:
            try:
                item = calls.get()  # blocks; a signal (Ctrl-C) still interrupts it
            except KeyboardInterrupt:
                self.interrupt()
                continue
            if item is done:
                return future.result()
            callback, obj = item
            callback(obj)

    create_context = _blocking("create_context")
    list_contexts = _blocking("list_contexts")
    restart_context = _blocking("restart_context")
    remove_context = _blocking("remove_context")
    interrupt = _blocking("interrupt")
    restart = _blocking("restart")
    stats = _blocking("stats")
    pause = _blocking("pause")
    resume = _blocking("resume")
    snapshot = _blocking("snapshot")

    def fork(self, name: str | None = None, *, keep: bool | None = None) -> Sandbox:
        """A running copy: a new sandbox with this one's spec and a copy of its files (not its variables)."""
        connection = self._async.connection
        model: SandboxModel = private_loop().run(connection.fork(self.id, name))
        return Sandbox(_connection=connection, _model=model, keep=self.keep if keep is None else keep)

    @classmethod
    def list_snapshots(cls, **where: Any) -> builtins.list[SnapshotModel]:
        """Your snapshots, oldest first (``server_url``, ``token``)."""
        found: builtins.list[SnapshotModel] = private_loop().run(AsyncSandbox.list_snapshots(**where))
        return found

    @classmethod
    def delete_snapshot(cls, name: str, **where: Any) -> None:
        private_loop().run(AsyncSandbox.delete_snapshot(name, **where))

    def _kill(self) -> bool:
        """Remove the sandbox; False when it was gone already."""
        removed: bool = private_loop().run(self._async.kill())
        return removed

    @classmethod
    def _kill_by_id(cls, sandbox_id: str, **where: Any) -> bool:
        """Remove a sandbox of yours by id or name (``server_url``, ``token``); False when there is none."""
        removed: bool = private_loop().run(AsyncSandbox.kill(sandbox_id, **where))
        return removed

    kill = ClassOrInstance(_kill_by_id, _kill)

    def _set_timeout(self, timeout: int) -> None:
        """The sandbox ends ``timeout`` seconds from now (unless set again)."""
        private_loop().run(self._async.set_timeout(timeout))

    @classmethod
    def _set_timeout_by_id(cls, sandbox_id: str, timeout: int, **where: Any) -> None:
        private_loop().run(AsyncSandbox.set_timeout(sandbox_id, timeout, **where))

    set_timeout = ClassOrInstance(_set_timeout_by_id, _set_timeout)

    def _get_info(self) -> SandboxModel:
        """The sandbox as the server sees it now."""
        model: SandboxModel = private_loop().run(self._async.get_info())
        return model

    @classmethod
    def _get_info_by_id(cls, sandbox_id: str, **where: Any) -> SandboxModel:
        model: SandboxModel = private_loop().run(AsyncSandbox.get_info(sandbox_id, **where))
        return model

    get_info = ClassOrInstance(_get_info_by_id, _get_info)
