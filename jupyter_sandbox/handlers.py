"""Thin REST handlers. Errors go through one mapping: SandboxError.status -> HTTP."""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from .errors import InvalidInput, SandboxError, TooLarge

AUTH_RESOURCE = "sandboxes"
API = "sandbox/api"


class SandboxAPIHandler(APIHandler):
    """Base: owner from jupyter_server's identity, JSON bodies, project errors -> HTTP."""

    auth_resource = AUTH_RESOURCE

    @property
    def manager(self):
        return self.settings["sandbox_manager"]

    @property
    def sandbox_app(self):
        return self.settings["sandbox_app"]

    @property
    def owner(self) -> str:
        return self.current_user.username

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object (400 naming the problem otherwise)."""
        body = self.request.body or b""
        if len(body) > self.sandbox_app.max_body_size:
            raise TooLarge(f"request body over {self.sandbox_app.max_body_size} bytes")
        if not body.strip():
            return {}
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InvalidInput(f"request body is not valid JSON: {e}", field="body") from e
        if not isinstance(data, dict):
            raise InvalidInput("request body must be a JSON object", field="body")
        return data

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, SandboxError):
            level = self.log.warning if e.status < 500 else self.log.error
            level("jupyter-sandbox: %s %s -> %s %s", self.request.method, self.request.path, e.status, e.message)
            if self._finished:
                return
            if self._headers_written:
                # Mid-stream (NDJSON): the status is already sent; say it as a line.
                self.write(json.dumps({"type": "error", "name": type(e).__name__, "value": e.message, "traceback": ""}) + "\n")
                self.finish()
                return
            self.clear()
            self.set_status(e.status, e.reason)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(e.to_dict()))
            return
        super()._handle_request_exception(e)


def api_path(*parts: str) -> str:
    return url_path_join("/", API, *parts)


default_handlers: list[tuple[str, type[web.RequestHandler]]] = []
