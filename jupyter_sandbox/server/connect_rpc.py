"""Connect-RPC over tornado: what envd's services speak to the E2B SDKs.

A ``ConnectService`` is a table of methods (name, request and response messages, a coroutine or an
async generator); a ``ConnectHandler`` subclass serves one at ``/<package.Service>/<Method>``:

- unary: ``POST`` with ``Content-Type: application/json`` (or ``application/proto``), the message
  as the body; the reply is one message, or an HTTP error status with Connect's error JSON
  ``{"code": "not_found", "message": ...}``;
- server-streaming: ``application/connect+json`` (or ``+proto``), the request in one envelope
  (a flags byte, a 4-byte big-endian length, the message); the reply is a stream of envelopes
  ending with an end-of-stream envelope (flags ``0x02``) that carries the error, if any, and
  trailers.

The body is read only after ``prepare()`` (``stream_request_body``), so a subclass authenticates
there before a byte of it is taken. Errors are the project's classes; ``connect_code`` turns their
HTTP status into Connect's code, so the mapping stays the one in errors.py.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from tornado import web
from tornado.iostream import StreamClosedError
from tornado.log import app_log as LOG

from ..errors import InvalidInput, SandboxError, TooLarge
from . import envd_proto
from .envd_proto import Codec, Message

MAX_REQUEST = 4 << 20  # bytes of one RPC request (file contents go over /files, not RPC)
END_STREAM = 0x02
COMPRESSED = 0x01

# The project's HTTP statuses (errors.py) as Connect codes (Connect's own HTTP mapping, reversed).
_CODES = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    409: "already_exists",
    413: "resource_exhausted",
    415: "internal",
    429: "resource_exhausted",
    499: "canceled",
    501: "unimplemented",
    502: "unavailable",
    503: "unavailable",
    504: "deadline_exceeded",
}
# and back, for the HTTP status of a unary error
_STATUSES = {
    "canceled": 499,
    "invalid_argument": 400,
    "deadline_exceeded": 504,
    "not_found": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "resource_exhausted": 429,
    "failed_precondition": 400,
    "unimplemented": 501,
    "unavailable": 503,
    "unauthenticated": 401,
}


def connect_code(status: int) -> str:
    return _CODES.get(status, "unknown" if status < 500 else "internal")


class ConnectError(SandboxError):
    """An error with a Connect code of its own (one no HTTP status of errors.py stands for)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = _STATUSES.get(code, 500)


def error_json(error: BaseException) -> dict[str, str]:
    if isinstance(error, ConnectError):
        return {"code": error.code, "message": error.message}
    if isinstance(error, SandboxError):
        return {"code": connect_code(error.status), "message": error.message}
    if isinstance(error, web.HTTPError):
        return {"code": connect_code(error.status_code), "message": error.log_message or error.reason or ""}
    return {"code": "internal", "message": "internal error (the server's log has the details)"}


def _decode_json(message: Message, data: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(data or b"{}")
    except ValueError:
        raise InvalidInput(f"the {message.name} is not valid JSON") from None
    return envd_proto.from_json(message, parsed)


def _encode_json(message: Message, values: dict[str, Any]) -> bytes:
    return json.dumps(envd_proto.to_json(message, values), separators=(",", ":")).encode()


CODECS = {
    "json": Codec("json", _decode_json, _encode_json),
    "proto": Codec("proto", envd_proto.from_binary, envd_proto.to_binary),
}

Unary = Callable[[Any, dict[str, Any]], Awaitable[dict[str, Any]]]
Stream = Callable[[Any, dict[str, Any]], AsyncIterator[dict[str, Any]]]


@dataclass(frozen=True)
class Method:
    name: str
    request: Message
    response: Message
    call: Callable[..., Any]  # (handler, request) -> reply, or an async iterator of replies
    streaming: bool = False


class ConnectService:
    """A service's methods by name; ``unary``/``stream`` register a handler's method into it."""

    def __init__(self, name: str) -> None:
        self.name = name  # e.g. "filesystem.Filesystem"
        self.methods: dict[str, Method] = {}

    def unary(self, name: str, request: Message, response: Message) -> Callable[[Unary], Unary]:
        def register(call: Unary) -> Unary:
            self.methods[name] = Method(name, request, response, call)
            return call

        return register

    def stream(self, name: str, request: Message, response: Message) -> Callable[[Stream], Stream]:
        def register(call: Stream) -> Stream:
            self.methods[name] = Method(name, request, response, call, streaming=True)
            return call

        return register

    @property
    def template(self) -> str:
        """The path of its methods (``{method}`` for the method's name), below the plane's root."""
        return f"{self.name}/{{method}}"


def envelope(flags: int, data: bytes) -> bytes:
    return struct.pack(">BI", flags, len(data)) + data


def open_envelope(body: bytes) -> bytes:
    """The one message of a streaming request's body."""
    if len(body) < 5:
        raise InvalidInput("a streaming request must hold one enveloped message")
    flags, size = struct.unpack(">BI", body[:5])
    if flags & COMPRESSED:
        raise ConnectError("internal", "compressed messages are not accepted (send them uncompressed)")
    if len(body) != 5 + size:
        raise InvalidInput("a streaming request must hold exactly one enveloped message")
    return body[5:]


@web.stream_request_body
class ConnectHandler(web.RequestHandler):
    """Serves ``service``'s methods; a subclass authenticates in ``prepare()`` (before the body)."""

    service: ClassVar[ConnectService]
    _body: bytearray

    def data_received(self, chunk: bytes) -> None:
        if not hasattr(self, "_body"):
            self._body = bytearray()
        if len(self._body) + len(chunk) > MAX_REQUEST:
            raise TooLarge(f"an RPC request is at most {MAX_REQUEST} bytes")
        self._body += chunk

    def _codec(self, streaming: bool) -> Codec:
        content_type = (self.request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        prefix = "application/connect+" if streaming else "application/"
        name = content_type[len(prefix) :] if content_type.startswith(prefix) else ""
        if name not in CODECS:
            expected = " or ".join(prefix + n for n in CODECS)
            raise ConnectError("invalid_argument", f"Content-Type {content_type!r}: send {expected}")
        return CODECS[name]

    async def post(self, method: str) -> None:
        found = self.service.methods.get(method)
        if found is None:
            raise ConnectError("unimplemented", f"{self.service.name} has no method {method!r}")
        codec = self._codec(found.streaming)
        body = bytes(getattr(self, "_body", b""))
        if found.streaming:
            await self._stream(found, codec, codec.decode(found.request, open_envelope(body)))
        else:
            reply = await found.call(self, codec.decode(found.request, body))
            self.set_header("Content-Type", f"application/{codec.name}")
            self.write(codec.encode(found.response, reply))
            # sent before finish(): jupyter_server's APIHandler.finish() would make it application/json
            await self.flush()
            self.finish()

    async def _stream(self, method: Method, codec: Codec, request: dict[str, Any]) -> None:
        replies: AsyncIterator[dict[str, Any]] = method.call(self, request)
        error: BaseException | None = None
        self.set_header("Content-Type", f"application/connect+{codec.name}")
        try:
            async for reply in replies:
                self.write(envelope(0, codec.encode(method.response, reply)))
                await self.flush()
        except StreamClosedError:
            return  # the client went away: nothing to tell it
        except (SandboxError, web.HTTPError) as e:
            error = e
        except Exception as e:
            LOG.error("%s failed", self.request.path, exc_info=e)
            error = e
        finally:
            closing = getattr(replies, "aclose", None)
            if closing is not None:
                await closing()
        if error is not None:
            LOG.info("%s ended with an error: %s", self.request.path, error)
        end = {"error": error_json(error)} if error is not None else {}
        self.write(envelope(END_STREAM, json.dumps(end).encode()))
        try:
            await self.flush()
        except StreamClosedError:
            pass
        self.finish()

    def on_connection_close(self) -> None:
        # A stream's generator learns of it at its next write; a waiting one is told now.
        self.client_gone.set()
        super().on_connection_close()

    @property
    def client_gone(self) -> asyncio.Event:
        """Set when the client hangs up (a server stream waits on it beside its events)."""
        if not hasattr(self, "_closed"):
            self._closed = asyncio.Event()
        return self._closed

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, SandboxError) and not self._finished:
            level = LOG.warning if e.status < 500 else LOG.error
            level("jupyter-sandbox: %s %s -> %s %s", self.request.method, self.request.path, e.status, e.message)
            self.clear()
            self.set_status(e.status, e.reason if not isinstance(e, ConnectError) else None)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(error_json(e)))
            return
        super()._handle_request_exception(e)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Connect's error JSON for what is not the project's error (tornado's HTTPError, a bug)."""
        error = kwargs.get("exc_info", (None, None, None))[1]
        body = error_json(error) if error is not None else {"code": connect_code(status_code), "message": self._reason}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))
