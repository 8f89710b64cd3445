"""``jupyter sandbox mcp``: the MCP server over stdio, for desktop and editor clients.

It finds the server the way the client does (--url/--token; JUPYTER_SANDBOX_URL and
JUPYTER_SANDBOX_TOKEN; a JupyterHub single-user server's environment; the one local Jupyter server
with the extension) and acts as the user its token names there. With no server at all it runs an
in-process manager, as a plain script does. stdout carries the protocol only: messages go to stderr.
"""

from __future__ import annotations

import asyncio
import sys

from jupyter_core.application import JupyterApp
from traitlets import Bool, Unicode

from .. import __version__
from ..errors import SandboxError
from . import missing


class MCPApp(JupyterApp):
    name = "jupyter-sandbox-mcp"
    version = __version__
    description = """Serve the sandbox tools over MCP on stdin/stdout (for Claude Desktop, VS Code,
    jupyter-ai...). The code runs in your sandboxes on the Jupyter server found as the client finds
    it (or --url and --token)."""

    url = Unicode("", help="The Jupyter server's URL ('' = found as the client finds it).").tag(config=True)
    token = Unicode("", help="Its token ('' = found with it).").tag(config=True)
    embedded = Bool(True, help="With no server found, run sandboxes in this process (False: fail instead).").tag(
        config=True
    )
    aliases = {"url": "MCPApp.url", "token": "MCPApp.token"}
    flags = {"no-embedded": ({"MCPApp": {"embedded": False}}, "Fail when no Jupyter server is found.")}

    def fail(self, message: str, code: int = 1) -> None:
        print(f"jupyter sandbox mcp: {message}", file=sys.stderr)
        self.exit(code)

    def start(self) -> None:
        why = missing()
        if why is not None:
            self.fail(why)
        try:
            asyncio.run(self.serve())
        except SandboxError as e:
            self.fail(e.message)

    async def serve(self) -> None:
        from ..client.discovery import connect
        from .access import ConnectionAccess
        from .tools import build_server

        connection = connect(
            self.url or None, self.token or None, in_process=self.embedded, loop=asyncio.get_running_loop()
        )
        print(f"jupyter sandbox mcp: sandboxes on {connection.description}", file=sys.stderr)
        access = ConnectionAccess(connection)
        try:
            await build_server(lambda ctx: access).run_stdio_async()
        finally:
            await connection.close()


main = MCPApp.launch_instance

if __name__ == "__main__":
    main()
