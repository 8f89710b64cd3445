"""API keys for E2B's SDKs, managed by their owner: ``{base_url}sandbox/api/keys`` lists them
(prefixes only), mints one (shown once, in the answer) and revokes one. See core/api_keys.py."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web

from ..core.api_keys import ApiKeys
from ..models import KeyRequest
from .e2b_plane import API_KEYS_SETTING
from .handlers import SandboxAPIHandler, api_path


class KeysAPIHandler(SandboxAPIHandler):
    @property
    def keys(self) -> ApiKeys:
        keys: ApiKeys = self.settings[API_KEYS_SETTING]
        return keys


class KeysHandler(KeysAPIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json([info.to_dict() for info in self.keys.list(self.owner)])

    @web.authenticated
    @authorized
    async def post(self) -> None:
        request = KeyRequest.parse(self.json_body())
        key, info = self.keys.mint(self.owner, request.name or "")
        self.set_header("Location", url_path_join(self.base_url, api_path("keys", info.id)))
        self.write_json({**info.to_dict(), "key": key}, status=201)


class KeyHandler(KeysAPIHandler):
    @web.authenticated
    @authorized
    async def delete(self, key_id: str) -> None:
        self.keys.revoke(self.owner, key_id)
        self.no_content()


ROUTES: list[tuple[str, type[web.RequestHandler]]] = [
    (api_path("keys"), KeysHandler),
    (api_path("keys/{key_id}"), KeyHandler),
]
