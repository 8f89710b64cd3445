"""Who a request to the service is: a Hub user or service, by HubOAuth (a browser's cookie after
OAuth, a script's ``Authorization: token ...``), as jupyterhub's single-user servers know it.

Admitted: a Hub *user* whose token holds the service's access scope
(``access:services!service=<name>``, ``HubOAuth.access_scopes``), and anyone holding the admin
scope (``ADMIN_SCOPE``, a user or a service). Everyone else gets 403: a valid token without the
scope, and a Hub service's token without the admin scope (a service is nobody's sandbox owner).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import User
from jupyter_server.base.handlers import JupyterHandler
from jupyterhub.singleuser.extension import JupyterHubIdentityProvider, JupyterHubUser
from tornado.web import HTTPError

from . import ADMIN_SCOPE, SERVICE_OWNER_PREFIX

_SEEN = "_jupyterhub_user"  # where jupyterhub's provider keeps a request's identity (its name kept)


class HubSandboxUser(JupyterHubUser):  # type: ignore[misc]  # jupyterhub ships no types
    """A Hub identity as the sandbox handlers see it: its ``username`` is the sandbox owner (a Hub
    user's name; ``service:<name>`` for a service), ``sandbox_admin`` is read by ``is_admin``."""

    def __init__(self, hub_user: dict[str, Any], sandbox_admin: bool):
        super().__init__(hub_user)
        self.sandbox_admin = sandbox_admin
        self.is_service = hub_user.get("kind", "user") == "service"
        if self.is_service:
            self.username = SERVICE_OWNER_PREFIX + hub_user["name"]


def admitted(hub_auth: Any, model: dict[str, Any]) -> tuple[bool, bool]:
    """(admitted, admin) for a Hub identity model (from ``/hub/api/user``, with its token's scopes)."""
    admin = bool(hub_auth.check_scopes({ADMIN_SCOPE}, model))
    user_with_access = model.get("kind", "user") == "user" and bool(
        hub_auth.check_scopes(hub_auth.access_scopes, model)
    )
    return admin or user_with_access, admin


class SandboxIdentityProvider(JupyterHubIdentityProvider):  # type: ignore[misc]
    """JupyterHub's single-user identity provider with the service's rule of admission (above)."""

    # called with a Hub user's name on each of their requests (the service refreshes their groups)
    on_user: Callable[[str], Awaitable[None]] | None = None

    async def get_user(self, handler: JupyterHandler) -> User | None:
        if hasattr(handler, _SEEN):  # asked already in this request
            user: User | None = getattr(handler, _SEEN)
            return user
        self._patch_get_login_url(handler)
        self._patch_xsrf(handler)
        model = await self.hub_auth.get_user(handler, sync=False)
        if model is None:
            setattr(handler, _SEEN, None)
            return None
        allowed, admin = admitted(self.hub_auth, model)
        if not allowed:
            self.log.warning(
                "jupyter-sandbox: %s %s lacks the scope to use this service", model.get("kind"), model["name"]
            )

            # authenticated but not allowed: tornado's redirect to the login page becomes a 403
            # (as in jupyterhub's own provider: no redirect loop for a logged-in user)
            def refuse(*args: Any, **kwargs: Any) -> None:
                raise HTTPError(403, "{kind} {name} is not allowed to use this service".format(**model))

            setattr(handler, "redirect", refuse)  # noqa: B010  # (mypy refuses an assignment to a method)
            setattr(handler, _SEEN, None)
            return None
        hub_user = HubSandboxUser(model, admin)
        setattr(handler, _SEEN, hub_user)
        self.hub_auth._persist_url_token_if_set(handler)
        if self.on_user is not None and not hub_user.is_service:
            await self.on_user(hub_user.username)
        return hub_user


class SandboxAuthorizer(Authorizer):
    """Every action for whom the identity provider admitted; checked again here, as jupyterhub's
    own authorizer does, should a handler reach here without the provider's check."""

    def is_authorized(self, handler: JupyterHandler, user: User, action: str, resource: str) -> bool:
        if not isinstance(user, HubSandboxUser):
            return False
        allowed, _ = admitted(getattr(self.identity_provider, "hub_auth"), user.hub_user)  # noqa: B009  # (ours has one)
        return allowed
