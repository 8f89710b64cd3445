"""``jupyter sandbox keys`` and ``jupyter sandbox e2b-env``: API keys for E2B's SDKs, and the
environment that points them at a Jupyter server (or, behind JupyterHub, its sandbox service).

    jupyter sandbox keys [list]            the keys you minted (their prefixes)
    jupyter sandbox keys new [--name N]    mint one (shown once)
    jupyter sandbox keys revoke KEY_ID
    jupyter sandbox e2b-env [--new-key]    export lines: eval "$(jupyter sandbox e2b-env)"

The server is the one ``find_server`` picks (JUPYTER_SANDBOX_URL / _TOKEN, the Hub's single-user
server, or the one local server with the extension), or --url/--token.
"""

from __future__ import annotations

import datetime
import os
import shlex
import sys
from typing import Any

import httpx
from jupyter_core.application import JupyterApp
from traitlets import Bool, Unicode

from . import __version__
from .client.discovery import ServerChoice, find_server
from .errors import SandboxError
from .server.service_proxy import SERVICE_URL_ENV

API_KEYS = "sandbox/api/keys"


class _ServerCommand(JupyterApp):
    version = __version__
    request_timeout = 30.0  # seconds a call may take
    url = Unicode("", help="The Jupyter server's URL ('' = found as the client finds it).").tag(config=True)
    token = Unicode("", help="Its token ('' = found with it).").tag(config=True)

    def fail(self, message: str, code: int = 1) -> None:
        print(message, file=sys.stderr)
        self.exit(code)

    def server(self) -> ServerChoice:
        try:
            choice = find_server(self.url or None, self.token or None)
        except SandboxError as e:
            self.fail(f"jupyter sandbox: {e.message}")
            raise  # fail() exits; for the type checker
        if choice is None:
            self.fail(
                "jupyter sandbox: no Jupyter server with jupyter-sandbox found: start one, or give --url and --token"
            )
            raise SystemExit(1)
        return choice

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        choice = self.server()
        headers = {"Authorization": f"token {choice.token}"} if choice.token else {}
        try:
            r = httpx.request(
                method, choice.url.rstrip("/") + "/" + path, headers=headers, timeout=self.request_timeout, **kwargs
            )
        except httpx.HTTPError as e:
            self.fail(f"jupyter sandbox: {choice.url} did not answer: {e}")
        if r.status_code >= 400:
            try:
                message = r.json().get("message") or r.text
            except ValueError:
                message = r.text
            self.fail(f"jupyter sandbox: {r.status_code} {message}")
        return r.json() if r.content else None

    def mint(self, name: str) -> str:
        key: str = self.call("POST", API_KEYS, json={"name": name} if name else {})["key"]
        return key


class KeysApp(_ServerCommand):
    name = "jupyter-sandbox-keys"
    description = "List (default), mint (new) or revoke your API keys for E2B's SDKs (X-API-KEY)."
    key_name = Unicode("", help="A reminder of what a new key is for.").tag(config=True)
    aliases = {"url": "KeysApp.url", "token": "KeysApp.token", "name": "KeysApp.key_name"}

    def start(self) -> None:
        action, *rest = self.extra_args or ["list"]
        if action == "list" and not rest:
            keys = self.call("GET", API_KEYS)
            if not keys:
                print("no keys (mint one with: jupyter sandbox keys new)")
            for key in keys:
                made = datetime.datetime.fromtimestamp(key["created"]).strftime("%Y-%m-%d %H:%M")
                print(f"{key['id']:<18} {key['prefix']}...  {made}  {key.get('name', '')}")
        elif action == "new" and not rest:
            print(self.mint(self.key_name))
            print("(shown only now: keep it somewhere safe)", file=sys.stderr)
        elif action == "revoke" and len(rest) == 1:
            self.call("DELETE", f"{API_KEYS}/{rest[0]}")
            print(f"revoked {rest[0]}")
        else:
            self.fail("usage: jupyter sandbox keys [list | new [--name N] | revoke KEY_ID]", 2)


class E2BEnvApp(_ServerCommand):
    name = "jupyter-sandbox-e2b-env"
    description = 'Print the export lines that point E2B\'s SDKs at the server: eval "$(jupyter sandbox e2b-env)".'
    new_key = Bool(False, help="Mint a new API key for E2B_API_KEY instead of using the server's token.").tag(
        config=True
    )
    aliases = {"url": "E2BEnvApp.url", "token": "E2BEnvApp.token"}
    flags = {"new-key": ({"E2BEnvApp": {"new_key": True}}, "Mint a new API key for E2B_API_KEY.")}

    def start(self) -> None:
        choice = self.server()
        key = self.mint("e2b-env") if self.new_key else choice.token
        if not key:
            self.fail("jupyter sandbox: the server has no token: mint a key with --new-key")
        # behind JupyterHub the sandbox service itself serves E2B's routes (the user's server forwards
        # only the Jupyter API); a Hub API token of the user is a key there
        base = os.environ.get(SERVICE_URL_ENV) or choice.url
        base = base.rstrip("/") + "/sandbox/e2b"
        for name, value in (("E2B_API_URL", base + "/api"), ("E2B_SANDBOX_URL", base + "/plane"), ("E2B_API_KEY", key)):
            print(f"export {name}={shlex.quote(value or '')}")
