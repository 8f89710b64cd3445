"""``jupyter sandbox list``: this user's sandboxes on this host, with what their servers know.

The containers (found by their labels, as ``prune`` finds them) are the rows, so a dead server's
leftovers are listed too. Each live local Jupyter server (its runtime file) is asked for its
sandboxes, their memory and the notebook sessions, which give the name, the notebook and the
memory columns; a sandbox whose server does not answer keeps only what its labels say.

``--json`` prints a list of objects with the keys of ``JSON_KEYS`` (documented in README.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from traitlets import Bool, Unicode

from .backends.base import LABEL_PREFIX, labelled_id
from .cli import _Leftovers
from .models import format_size


@dataclass
class ListedSandbox:
    """One row of ``list`` (the ``--json`` object has exactly these keys)."""

    id: str
    name: str | None  # None: no live server said it
    kind: str | None  # "sandbox" or "kernel" (a sandboxed kernel's)
    status: str | None
    notebook: str | None  # the notebook path of the kernel it belongs to (the server's session)
    kernel_id: str | None
    owner: str | None
    memory_used: int | None  # bytes now (None: not running, or unknown)
    memory_limit: int | None  # bytes it may use
    network: str | None  # "none", "on", or its egress allow-list, "only pypi.org; not x.org" (issue 23)
    server: str  # the server's id (its label)
    server_state: str  # alive | gone | unknown (see _Leftovers.found)
    server_url: str | None  # the server that answered for it


JSON_KEYS = tuple(ListedSandbox.__dataclass_fields__)


def _servers(url: str, token: str) -> list[tuple[str, str | None]]:
    """(url, token) of each server to ask: the one given, else every local one (runtime files)."""
    if url:
        return [(url, token or None)]
    from jupyter_server.serverapp import list_running_servers

    try:
        return [(info["url"], info.get("token") or None) for info in list_running_servers()]
    except OSError:  # an unreadable runtime dir is "no server to ask"
        return []


def _ask(url: str, token: str | None) -> dict[str, dict[str, Any]]:
    """Sandbox id -> what the server at ``url`` says of it (``notebook``, ``memory_used`` added);
    {} when it does not answer the sandbox API (another server, or gone)."""
    headers = {"Authorization": f"token {token}"} if token else {}
    base = url.rstrip("/") + "/"
    with httpx.Client(base_url=base, headers=headers, timeout=10.0) as http:
        try:
            answer = http.get("sandbox/api/sandboxes")
            if answer.status_code != 200:
                return {}
            sandboxes = answer.json()
            sessions = http.get("api/sessions")
            paths = (
                {s["kernel"]["id"]: s["path"] for s in sessions.json() if s.get("kernel")}
                if sessions.status_code == 200
                else {}
            )
            out = {}
            for sandbox in sandboxes:
                # the server's own notebook_path where it gives one, else its session of the kernel
                sandbox["notebook"] = sandbox.get("notebook_path") or paths.get(sandbox.get("kernel_id") or "")
                sandbox["memory_used"] = None
                if sandbox["status"] == "running":
                    stats = http.get(f"sandbox/api/sandboxes/{sandbox['id']}/stats")
                    if stats.status_code == 200:
                        sandbox["memory_used"] = stats.json().get("memory_used")
                sandbox["server_url"] = base
                out[sandbox["id"]] = sandbox
            return out
        except (httpx.HTTPError, ValueError):  # not a server with the extension, or it went away
            return {}


def _approximately(size: int) -> str:
    """A reading in people's units: 37.2M, 1.1G (format_size is for the exact sizes people set)."""
    if size >= 1024**3:
        return f"{size / 1024**3:.1f}G"
    return f"{size / 1024**2:.1f}M"


def network_text(spec: dict[str, Any]) -> str | None:
    """A spec's network as the panel says it: none, on, or its allow-list (None: unknown)."""
    if "network" not in spec:
        return None
    egress = spec.get("egress")
    if not spec["network"]:
        return "none"
    if not egress:
        return "on"
    allow = ", ".join(egress.get("allow") or []) or "nothing"
    deny = ", ".join(egress.get("deny") or [])
    return f"only {allow}; not {deny}" if deny else f"only {allow}"


def _memory(row: ListedSandbox) -> str:
    if row.memory_limit is None:
        return "-"
    used = "-" if row.memory_used is None else _approximately(row.memory_used)
    return f"{used}/{format_size(row.memory_limit)}"


class ListApp(_Leftovers):
    name = "jupyter-sandbox-list"
    description = """List the sandboxes of this user's Jupyter servers on this host: name, notebook, memory
    (used/limit) and whether their server lives. --json prints them as JSON objects."""

    json = Bool(False, help="Print a JSON list of objects (keys: " + ", ".join(JSON_KEYS) + ").").tag(config=True)
    url = Unicode("", help="Ask only this server (default: every local server, from the runtime files).").tag(
        config=True
    )
    token = Unicode("", help="The token for --url (default: JUPYTER_SANDBOX_TOKEN).").tag(config=True)
    aliases = {"state-dir": "ListApp.state_dir", "url": "ListApp.url", "token": "ListApp.token"}
    flags = {"json": ({"ListApp": {"json": True}}, "Print a JSON list of objects with stable keys.")}

    def rows(self) -> list[ListedSandbox]:
        known: dict[str, dict[str, Any]] = {}
        token = self.token or os.environ.get("JUPYTER_SANDBOX_TOKEN", "")
        for url, server_token in _servers(self.url, token):
            known.update(_ask(url, server_token))
        rows = []
        for labels, state in self.found():
            sandbox_id = labelled_id(labels) or "?"
            said = known.get(sandbox_id, {})
            spec = said.get("spec") or {}
            rows.append(
                ListedSandbox(
                    id=sandbox_id,
                    name=said.get("name"),
                    kind=said.get("kind"),
                    status=said.get("status"),
                    notebook=said.get("notebook"),
                    kernel_id=said.get("kernel_id"),
                    owner=labels.get(f"{LABEL_PREFIX}.owner") or None,
                    memory_used=said.get("memory_used"),
                    memory_limit=spec.get("memory"),
                    network=network_text(spec),
                    server=labels.get(f"{LABEL_PREFIX}.server", "?"),
                    server_state=state,
                    server_url=said.get("server_url"),
                )
            )
        return rows

    def start(self) -> None:
        rows = self.rows()
        if self.json:
            print(json.dumps([asdict(row) for row in rows], indent=2))
            return
        if not rows:
            print("no sandboxes")
            return
        print(
            f"{'SANDBOX':<20} {'NAME':<24} {'NOTEBOOK':<30} {'MEMORY':<16} {'NETWORK':<24} {'OWNER':<12} "
            f"{'SERVER':<22} STATE"
        )
        for row in rows:
            # a kernel's sandbox whose notebook no session names: the kernel says which one it is
            notebook = row.notebook or (f"kernel {row.kernel_id[:8]}" if row.kernel_id else "-")
            network = row.network or "-"
            network = network if len(network) <= 24 else network[:23] + "…"  # (all of it in --json)
            print(
                f"{row.id:<20} {row.name or '-':<24} {notebook:<30} {_memory(row):<16} {network:<24} "
                f"{row.owner or '-':<12} "
                f"{row.server:<22} server {row.server_state}"
            )
