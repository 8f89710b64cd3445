"""``jupyter sandbox pause|resume|snapshot|fork``: pause and resume, snapshots and fork (issue 23;
docs/pause.md) through a Jupyter server's REST API.

    jupyter sandbox pause SANDBOX               its container stops; says whether its memory is kept
    jupyter sandbox resume SANDBOX
    jupyter sandbox snapshot SANDBOX NAME       a named copy of its working directory
    jupyter sandbox snapshot list               your snapshots
    jupyter sandbox snapshot delete NAME
    jupyter sandbox fork SANDBOX [--name N]     a running copy (spec and files, not variables)

SANDBOX is a sandbox's id or name. The server is the one ``find_server`` picks (JUPYTER_SANDBOX_URL /
_TOKEN, the Hub's single-user server, or the one local server with the extension), or --url/--token.
"""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import quote

from traitlets import Unicode

from .cli_e2b import _ServerCommand
from .models import human_size

API = "sandbox/api"


def _part(text: str) -> str:
    return quote(text, safe="")


def _said(model: dict[str, Any]) -> str:
    """One line for a sandbox after a pause or resume."""
    line = f"{model['name']} ({model['id']}): {model['status']}"
    if model.get("paused"):
        line += ", memory kept" if model.get("memory_kept") else f", files kept, not memory: {model.get('memory_note')}"
    elif model.get("status_reason"):
        line += f"; {model['status_reason']}"
    return line


class _PauseCommand(_ServerCommand):
    request_timeout = 600.0  # a pause or snapshot moves a working directory (up to its disk size)

    def sandbox_arg(self, usage: str) -> str:
        if len(self.extra_args) != 1:
            self.fail(f"usage: {usage}", 2)
        return str(self.extra_args[0])


class PauseApp(_PauseCommand):
    name = "jupyter-sandbox-pause"
    description = "Pause a sandbox: its container stops (no CPU, no memory); its memory is kept under gVisor."
    aliases = {"url": "PauseApp.url", "token": "PauseApp.token"}

    def start(self) -> None:
        sandbox = self.sandbox_arg("jupyter sandbox pause SANDBOX")
        print(_said(self.call("POST", f"{API}/sandboxes/{_part(sandbox)}/pause")))


class ResumeApp(_PauseCommand):
    name = "jupyter-sandbox-resume"
    description = "Resume a paused sandbox."
    aliases = {"url": "ResumeApp.url", "token": "ResumeApp.token"}

    def start(self) -> None:
        sandbox = self.sandbox_arg("jupyter sandbox resume SANDBOX")
        print(_said(self.call("POST", f"{API}/sandboxes/{_part(sandbox)}/resume")))


class SnapshotApp(_PauseCommand):
    name = "jupyter-sandbox-snapshot"
    description = "Take (SANDBOX NAME), list or delete (delete NAME) your snapshots of sandboxes' working directories."
    aliases = {"url": "SnapshotApp.url", "token": "SnapshotApp.token"}

    def start(self) -> None:
        args = [str(a) for a in self.extra_args]
        if args == ["list"] or not args:
            snapshots = self.call("GET", f"{API}/snapshots")
            if not snapshots:
                print("no snapshots (take one with: jupyter sandbox snapshot SANDBOX NAME)")
            for s in snapshots:
                made = datetime.datetime.fromtimestamp(s["created"]).strftime("%Y-%m-%d %H:%M")
                print(f"{s['name']:<24} {human_size(s['size']):>10}  {made}  of {s['source']}")
        elif len(args) == 2 and args[0] == "delete":
            self.call("DELETE", f"{API}/snapshots/{_part(args[1])}")
            print(f"deleted snapshot {args[1]}")
        elif len(args) == 2:
            s = self.call("POST", f"{API}/sandboxes/{_part(args[0])}/snapshots", json={"name": args[1]})
            print(f"snapshot {s['name']} of {s['source']}: {human_size(s['size'])} (files; memory is not kept)")
        else:
            self.fail("usage: jupyter sandbox snapshot [list | SANDBOX NAME | delete NAME]", 2)


class ForkApp(_PauseCommand):
    name = "jupyter-sandbox-fork"
    description = "Fork a sandbox: a running copy with its spec and files (not its variables)."
    fork_name = Unicode("", help="The new sandbox's name ('' = its id).").tag(config=True)
    aliases = {"url": "ForkApp.url", "token": "ForkApp.token", "name": "ForkApp.fork_name"}

    def start(self) -> None:
        sandbox = self.sandbox_arg("jupyter sandbox fork SANDBOX [--name N]")
        body = {"name": self.fork_name} if self.fork_name else {}
        model = self.call("POST", f"{API}/sandboxes/{_part(sandbox)}/fork", json=body)
        print(f"{model['name']} ({model['id']}): a copy of {sandbox}, {model['status']}")
