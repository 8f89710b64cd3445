"""An MCP server for sandboxes (issue 24): tools and resources that let an AI agent run code, files
and commands in the user's own sandboxes, never in the user's kernel.

- ``access.py``: ``SandboxAccess``, what the tools need; ``ManagerAccess`` (a SandboxManager in this
  process, for one owner: the HTTP route) and ``ConnectionAccess`` (a client ``Connection``: stdio).
- ``tools.py``: the MCP server (the official ``mcp`` SDK's ``MCPServer``), written once against
  ``SandboxAccess``; ``content.py`` turns an Execution into MCP content.
- ``stdio.py``: ``jupyter sandbox mcp``. The streamable HTTP route is ``server/mcp_http.py``.

The ``mcp`` package is optional (the ``mcp`` extra): nothing here is imported by the server or the
CLI unless it is there; ``missing()`` says how to get it.
"""

from __future__ import annotations

INSTALL_HINT = "pip install 'jupyter-sandbox[mcp]' (or pip install 'mcp>=2.3,<3')"


def missing() -> str | None:
    """Why the MCP server cannot run here (the SDK is not installed), or None."""
    try:
        import mcp.server.mcpserver  # noqa: F401  (what the server needs of the SDK: 2.x)
    except ImportError as e:
        return f"the MCP server needs the mcp package (2.x), which cannot be imported ({e}): {INSTALL_HINT}"
    return None
