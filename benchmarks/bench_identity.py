"""An identity provider for the benchmark's server: one user per token.

jupyter_server's built-in token login cannot tell token holders apart (jupyter-sandbox maps
all of them to one owner), so "another user's latency while someone else holds 50 sandboxes"
needs real identities. The benchmark's server loads this class from ``benchmarks/`` (put on
PYTHONPATH) with ``c.ServerApp.identity_provider_class``.
"""

from __future__ import annotations

from jupyter_server.auth.identity import IdentityProvider, User
from traitlets import Dict, Unicode


class TokenUsersIdentityProvider(IdentityProvider):
    users = Dict(key_trait=Unicode(), value_trait=Unicode(), help="token -> username").tag(config=True)

    async def get_user_token(self, handler):
        name = self.users.get(self.get_token(handler) or "")
        return User(username=name) if name else None
