"""The routes E2B's code-interpreter SDK calls: ``{e2b_url}execute`` and ``{e2b_url}contexts``.

The SDK sends no custom headers, so it cannot carry the Jupyter token. These routes
authenticate by the per-sandbox secret in the URL path instead (made by the manager when the
sandbox gets its owner, valid for that sandbox only, shown only to its owner as ``e2b_url``,
gone with the sandbox). A wrong secret answers 404, like an unknown sandbox.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.utils import url_path_join
from tornado import web

from ..errors import NotFound
from .e2b_code import e2b_event
from .handlers import (
    ContextHandler,
    ContextRestartHandler,
    ContextsHandler,
    ExecuteHandler,
    SandboxAPIHandler,
    owner_of,
)

E2B = "sandbox/e2b"
# A tornado setting: when true (the Hub service sets it), the secret is not enough, the request
# must also be authenticated as the sandbox's owner (the Hub's proxy lets anyone reach the service).
E2B_REQUIRES_LOGIN = "sandbox_e2b_requires_login"
# An E2B URL in a text (a URI, a Referer), however oddly written (case, repeated slashes).
_E2B_URL = re.compile(r"(sandbox/+e2b/)([^?#\s]*)", re.IGNORECASE)
# the only parts of it logged as they are: ids (a secret is longer) and the words of routes
_KEPT = re.compile(
    r"(sbx|ctx)_[0-9a-f]{12}|contexts|execute|restart|health|files|api|plane|v2|sandboxes|timeout|refreshes|connect|"
    r"metrics|"
)


def _scrub_url(match: re.Match[str]) -> str:
    parts = match.group(2).split("/")
    return match.group(1) + "/".join(p if _KEPT.fullmatch(p) else "<secret>" for p in parts)


def scrub(text: str) -> str:
    """``text`` with the secret of any E2B URL in it replaced by ``<secret>``: every part of its
    path that is not an id or a route's word is (the secret's place differs in a malformed URL).

    Percent-encoding cannot hide one: a text that decodes to an E2B URL is logged decoded.
    """
    decoded = text
    for _ in range(4):  # encoded more than once is still a URL someone can decode
        if _E2B_URL.search(decoded):
            return _E2B_URL.sub(_scrub_url, decoded)
        if "%" not in decoded:
            break
        decoded = unquote(decoded)
    return text


class ScrubSecrets(logging.Filter):
    """Takes the E2B secret out of every log line a handler writes: the URL of a request reaches
    the log before any handler of ours sees it (tornado's access log and its warnings, such as an
    XSRF refusal of a ``POST .../execute/`` that matches no route; the Referer of a failed one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format: the handler says so when it writes it (a filter must not raise)
            return True
        scrubbed = scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


def scrub_logs(*loggers: logging.Logger | logging.LoggerAdapter[Any]) -> None:
    """Every handler that writes these loggers' lines (theirs and their ancestors') scrubs secrets."""
    for logger in loggers:
        current: logging.Logger | None = logger.logger if isinstance(logger, logging.LoggerAdapter) else logger
        while current is not None:
            for handler in current.handlers:
                if not any(isinstance(f, ScrubSecrets) for f in handler.filters):
                    handler.addFilter(ScrubSecrets())
            current = current.parent if current.propagate else None


def e2b_path(*parts: str) -> str:
    return url_path_join("/", E2B, *parts)


class E2BMixin(SandboxAPIHandler):
    """Authenticates by the path's secret; acts as the sandbox's owner."""

    _e2b_owner: str | None = None

    def check_xsrf_cookie(self) -> None:
        # Cookies grant nothing here: the credential is the secret in the path, which a
        # cross-site page cannot know. The SDK sends no XSRF token.
        return None

    async def prepare(self) -> None:  # type: ignore[override]
        kwargs = self.path_kwargs
        # Routing is done: from here on the request's URL is only logged, and the logs (the
        # access log included) must never hold a credential.
        request = self.request
        request.uri, request.path = scrub(request.uri or ""), scrub(request.path)
        await super().prepare()
        self._e2b_owner = self.manager.owner_by_e2b_secret(kwargs["sandbox_id"], kwargs["secret"])
        if self.settings.get(E2B_REQUIRES_LOGIN):
            if self.current_user is None:
                raise web.HTTPError(403, "log in to the Hub first: its E2B routes need the sandbox owner's token")
            if owner_of(self) != self._e2b_owner:
                raise NotFound(f"no sandbox {kwargs['sandbox_id']!r}")

    @property
    def owner(self) -> str:
        return self._e2b_owner or ""


class E2BContextsHandler(E2BMixin, ContextsHandler):
    @allow_unauthenticated
    async def get(self, sandbox_id: str, secret: str) -> None:
        await self.list_contexts(sandbox_id)

    @allow_unauthenticated
    async def post(self, sandbox_id: str, secret: str) -> None:
        await self.create_context(sandbox_id)


class E2BContextHandler(E2BMixin, ContextHandler):
    @allow_unauthenticated
    async def delete(self, sandbox_id: str, secret: str, context_id: str) -> None:
        await self.remove_context(sandbox_id, context_id)


class E2BContextRestartHandler(E2BMixin, ContextRestartHandler):
    @allow_unauthenticated
    async def post(self, sandbox_id: str, secret: str, context_id: str) -> None:
        await self.restart_context(sandbox_id, context_id)


class E2BExecuteHandler(E2BMixin, ExecuteHandler):
    async def _send(self, event: dict[str, Any]) -> None:
        await super()._send(e2b_event(event))

    @allow_unauthenticated
    async def post(self, sandbox_id: str, secret: str) -> None:
        await self.stream_execute(sandbox_id)


ROUTES: list[tuple[str, type[web.RequestHandler]]] = [
    (e2b_path("{sandbox_id}/{secret}/contexts"), E2BContextsHandler),
    (e2b_path("{sandbox_id}/{secret}/contexts/{context_id}"), E2BContextHandler),
    (e2b_path("{sandbox_id}/{secret}/contexts/{context_id}/restart"), E2BContextRestartHandler),
    (e2b_path("{sandbox_id}/{secret}/execute"), E2BExecuteHandler),
]
