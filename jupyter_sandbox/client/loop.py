"""The private event loop behind the synchronous client.

One daemon thread per process runs an asyncio loop. The sync ``Sandbox`` runs
``AsyncSandbox``'s coroutines there (a notebook kernel already runs a loop on its main
thread, so ``asyncio.run`` cannot be used), and the in-process manager keeps its kernel
clients there whatever loop calls it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    _instance: LoopThread | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="jupyter-sandbox-client", daemon=True)
        self.thread.start()

    @classmethod
    def get(cls) -> LoopThread:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Block until ``coro`` is done on the loop thread; its result or its exception."""
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    async def run_async(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(self.submit(coro))


def private_loop() -> LoopThread:
    return LoopThread.get()


def blocking(name: str, twin: type) -> Callable[..., Any]:
    """A method of a blocking class that runs ``self._async.<name>(...)`` on the private loop and
    waits for it; its signature and help are those of ``twin.<name>`` (the async class)."""
    coroutine = getattr(twin, name)

    @functools.wraps(coroutine)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return private_loop().run(getattr(self._async, name)(*args, **kwargs))

    return method
