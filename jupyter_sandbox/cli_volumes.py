"""``jupyter sandbox volumes``: your persistent volumes on a server, with their usage (issue 23).

    jupyter sandbox volumes [list] [--json]      name, used / limit, the sandboxes that mount it
    jupyter sandbox volumes create NAME [--size 1G]
    jupyter sandbox volumes remove NAME           deletes its files (refused while mounted)

The server is found as ``jupyter sandbox keys`` finds it (cli_e2b.py), or --url/--token.
"""

from __future__ import annotations

import json

from traitlets import Bool, Unicode

from .cli_e2b import _ServerCommand
from .client.connection import url_part
from .models import VolumeModel, human_size

VOLUMES = "sandbox/api/volumes"


class VolumesApp(_ServerCommand):
    name = "jupyter-sandbox-volumes"
    description = "List (default), create or remove your persistent volumes, with their usage."
    size = Unicode("", help="Size of a new volume, e.g. 1G ('' = the server's default).").tag(config=True)
    as_json = Bool(False, help="Print the list as JSON.").tag(config=True)
    aliases = {"url": "VolumesApp.url", "token": "VolumesApp.token", "size": "VolumesApp.size"}
    flags = {"json": ({"VolumesApp": {"as_json": True}}, "Print the list as JSON.")}

    def start(self) -> None:
        action, *rest = self.extra_args or ["list"]
        if action == "list" and not rest:
            volumes = [VolumeModel.from_dict(v) for v in self.call("GET", VOLUMES)]
            if self.as_json:
                print(json.dumps([v.to_dict() for v in volumes], indent=2))
                return
            if not volumes:
                print("no volumes (make one with: jupyter sandbox volumes create NAME, or create a sandbox with one)")
            for v in volumes:
                where = ", ".join(v.sandboxes) or "not mounted"
                print(f"{v.name:<20} {v.usage:<28} at {v.mount_path}  ({where})")
        elif action == "create" and len(rest) == 1:
            body = {"name": rest[0], **({"size": self.size} if self.size else {})}
            v = VolumeModel.from_dict(self.call("POST", VOLUMES, json=body))
            print(f"made {v.name}: {human_size(v.size)}, mounted at {v.mount_path} in sandboxes that ask for it")
        elif action == "remove" and len(rest) == 1:
            self.call("DELETE", f"{VOLUMES}/{url_part(rest[0])}")
            print(f"removed {rest[0]} and its files")
        else:
            self.fail("usage: jupyter sandbox volumes [list [--json] | create NAME [--size S] | remove NAME]", 2)
