"""envd's ``GET/POST /files`` on the E2B data plane (port 49983), and the signed file URLs of the
SDK's ``download_url``/``upload_url``.

- ``GET /files?path=P``: the file's bytes (404 missing, 400 a directory).
- ``POST /files?path=P``: ``application/octet-stream`` (``Content-Encoding: gzip`` allowed), or
  ``multipart/form-data`` with one or more ``file`` parts, each named by its path (``path``
  overrides the name of a single part). Answers ``[{"name", "type": "file", "path"}]``.
- ``username`` is accepted and ignored: a sandbox has one user.
- Signed URLs: the SDK builds them by joining ``/files`` to the sandbox URL, which drops its
  path, so they reach the server's root: ``/files?path=P&signature=v1_...`` with no sandbox
  header. The signature (sha256 of ``path:operation:username:access token[:expiration]``) names
  the sandbox: the one whose access token makes it. They work when the server's base URL is
  ``/`` (behind a prefix the request never reaches this server).

The body is read after ``prepare()`` has authenticated, and at most the sandbox's disk size of it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import posixpath
import time
import zlib
from urllib.parse import quote

from jupyter_server.auth.decorator import allow_unauthenticated
from tornado import httputil, web

from ..backends.base import confine
from ..errors import InvalidInput, NotFound, TooLarge, Unauthorized
from ..models import format_size
from .e2b import E2B_REQUIRES_LOGIN
from .e2b_plane import ENVD_PORT, E2BPlaneMixin, register
from .handlers import SandboxAPIHandler, owner_of

CHUNK_LIMIT = 1 << 20  # bytes of a gzip body inflated at once
MULTIPART_SLACK = 64 << 10  # bytes a multipart body may hold beyond its files (headers, boundaries)


def signature(path: str, operation: str, username: str, token: str, expiration: str | None) -> str:
    """The SDK's v1 file-URL signature."""
    raw = f"{path}:{operation}:{username}:{token}" + (f":{expiration}" if expiration else "")
    digest = hashlib.sha256(raw.encode()).digest()
    return "v1_" + base64.b64encode(digest).rstrip(b"=").decode("ascii")


@web.stream_request_body
class FilesRoute(SandboxAPIHandler):
    """``/files``'s verbs for ``self.owner``'s ``self.sandbox_id`` (set by a subclass's prepare)."""

    sandbox_id = ""
    _body: bytearray

    def limit(self) -> int:
        return self.manager.get(self.owner, self.sandbox_id).spec.disk + MULTIPART_SLACK

    def data_received(self, chunk: bytes) -> None:
        if not hasattr(self, "_body"):
            self._body = bytearray()
        if len(self._body) + len(chunk) > self.limit():
            raise TooLarge(f"the upload is over the sandbox's disk size ({format_size(self.limit())})")
        self._body += chunk

    def path_argument(self) -> str:
        path = self.get_query_argument("path", "")
        if not path:
            raise InvalidInput("say which file: the path query argument is missing", field="path")
        return path

    async def download(self) -> None:
        path = self.path_argument()
        name = posixpath.basename(confine(path))
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{_quoted(name)}")
        started = False
        async for chunk in self.manager.stream_file(self.owner, self.sandbox_id, path):
            self.write(chunk)
            await self.flush()
            started = True
        if not started:  # an empty file: its headers go now (APIHandler.finish() would say JSON)
            await self.flush()
        self.finish()

    async def upload(self) -> None:
        body = bytes(getattr(self, "_body", b""))
        content_type = self.request.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() == "multipart/form-data":
            files = self._parts(content_type, body)
        else:
            if self.request.headers.get("Content-Encoding", "").lower() == "gzip":
                body = self._inflate(body)
            files = [(self.path_argument(), body)]
        written = []
        for path, data in files:
            await self.manager.write_file(self.owner, self.sandbox_id, path, data)
            full = confine(path)
            written.append({"name": posixpath.basename(full), "type": "file", "path": full})
        self.write_json(written)

    def _parts(self, content_type: str, body: bytes) -> list[tuple[str, bytes]]:
        arguments: dict[str, list[bytes]] = {}
        found: dict[str, list[httputil.HTTPFile]] = {}
        httputil.parse_body_arguments(content_type, body, arguments, found)
        parts = found.get("file", [])
        if not parts:
            raise InvalidInput("the multipart body has no 'file' part", field="file")
        path = self.get_query_argument("path", "")
        if path and len(parts) == 1:
            return [(path, parts[0].body)]
        if any(not part.filename for part in parts):
            raise InvalidInput("each 'file' part needs its path as its filename", field="file")
        return [(part.filename, part.body) for part in parts]

    def _inflate(self, body: bytes) -> bytes:
        """A gzip body, inflated no further than the limit (a small bomb cannot fill the memory)."""
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        out = bytearray()
        try:
            out += inflater.decompress(body, CHUNK_LIMIT)
            while inflater.unconsumed_tail and len(out) <= self.limit():
                out += inflater.decompress(inflater.unconsumed_tail, CHUNK_LIMIT)
        except zlib.error:
            raise InvalidInput("the body is not valid gzip (Content-Encoding: gzip)") from None
        if len(out) > self.limit():
            raise TooLarge(f"the upload is over the sandbox's disk size ({format_size(self.limit())})")
        return bytes(out)


def _quoted(name: str) -> str:
    return quote(name, safe="")


@register(ENVD_PORT, "files")
class PlaneFilesHandler(FilesRoute, E2BPlaneMixin):
    """``/files`` with the plane's headers and credentials (e2b_plane.py)."""

    @allow_unauthenticated  # the plane's own authentication, in prepare
    async def get(self) -> None:
        await self.download()

    @allow_unauthenticated
    async def post(self) -> None:
        await self.upload()


class SignedFilesHandler(FilesRoute):
    """``/files`` at the server's root, the signature its credential (see the module's docstring)."""

    _signed_owner = ""

    def check_xsrf_cookie(self) -> None:
        return None  # the signature in the URL is the credential; cookies grant nothing here

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        given = self.get_query_argument("signature", "")
        if not given:
            raise Unauthorized("this file URL is not signed: make it with the SDK's download_url/upload_url")
        expiration = self.get_query_argument("signature_expiration", "") or None
        if expiration is not None:
            if not expiration.isdigit():
                raise InvalidInput("signature_expiration must be a Unix time", field="signature_expiration")
            if int(expiration) < time.time():
                raise Unauthorized("this file URL has expired")
        operation = "write" if self.request.method == "POST" else "read"
        path = self.path_argument()
        username = self.get_query_argument("username", "")
        for sandbox in list(self.manager.registry.sandboxes.values()):
            secret = sandbox.e2b_secret
            if not secret:
                continue
            expected = signature(path, operation, username, secret, expiration)
            if hmac.compare_digest(expected.encode(), given.encode()):
                if self.settings.get(E2B_REQUIRES_LOGIN) and (
                    self.current_user is None or owner_of(self) != sandbox.model.owner
                ):
                    break  # the Hub service: as on the plane, the owner must be logged in too
                self._signed_owner, self.sandbox_id = sandbox.model.owner, sandbox.model.id
                return
        raise NotFound("no sandbox signed this URL (a wrong signature, or the sandbox is gone)")

    @property
    def owner(self) -> str:
        return self._signed_owner

    @allow_unauthenticated  # the signature is the credential, checked in prepare
    async def get(self) -> None:
        await self.download()

    @allow_unauthenticated
    async def post(self) -> None:
        await self.upload()


ROUTES: list[tuple[str, type[web.RequestHandler]]] = [("/files", SignedFilesHandler)]
