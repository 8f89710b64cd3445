"""The routes E2B's code-interpreter SDK calls: ``{e2b_url}execute`` and ``{e2b_url}contexts``.

The SDK sends no custom headers, so it cannot carry the Jupyter token. These routes
authenticate by the per-sandbox secret in the URL path instead (made by the manager when the
sandbox gets its owner, valid for that sandbox only, shown only to its owner as ``e2b_url``,
gone with the sandbox). A wrong secret answers 404, like an unknown sandbox.
"""

from __future__ import annotations

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.utils import url_path_join
from tornado import web

from .handlers import ContextHandler, ContextRestartHandler, ContextsHandler, ExecuteHandler, SandboxAPIHandler

E2B = "sandbox/e2b"


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
        request.uri = request.uri.replace(kwargs["secret"], "<secret>")
        request.path = request.path.replace(kwargs["secret"], "<secret>")
        await super().prepare()
        self._e2b_owner = self.manager.owner_by_e2b_secret(kwargs["sandbox_id"], kwargs["secret"])

    @property
    def owner(self) -> str:
        return self._e2b_owner or ""


class E2BContextsHandler(E2BMixin, ContextsHandler):
    @allow_unauthenticated
    async def get(self, sandbox_id, secret):
        await self.list_contexts(sandbox_id)

    @allow_unauthenticated
    async def post(self, sandbox_id, secret):
        await self.create_context(sandbox_id)


class E2BContextHandler(E2BMixin, ContextHandler):
    @allow_unauthenticated
    async def delete(self, sandbox_id, secret, context_id):
        await self.remove_context(sandbox_id, context_id)


class E2BContextRestartHandler(E2BMixin, ContextRestartHandler):
    @allow_unauthenticated
    async def post(self, sandbox_id, secret, context_id):
        await self.restart_context(sandbox_id, context_id)


class E2BExecuteHandler(E2BMixin, ExecuteHandler):
    @allow_unauthenticated
    async def post(self, sandbox_id, secret):
        await self.stream_execute(sandbox_id)


ROUTES: list[tuple[str, type[web.RequestHandler]]] = [
    (e2b_path("{sandbox_id}/{secret}/contexts"), E2BContextsHandler),
    (e2b_path("{sandbox_id}/{secret}/contexts/{context_id}"), E2BContextHandler),
    (e2b_path("{sandbox_id}/{secret}/contexts/{context_id}/restart"), E2BContextRestartHandler),
    (e2b_path("{sandbox_id}/{secret}/execute"), E2BExecuteHandler),
]
