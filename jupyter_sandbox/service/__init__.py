"""``jupyter sandbox serve``: the sandbox API as a JupyterHub service (see app.py's docstring)."""

from __future__ import annotations

# The Hub's custom scope whose holders see and stop every user's sandboxes (the admin routes).
# Define it in the Hub: c.JupyterHub.custom_scopes = {ADMIN_SCOPE: {"description": ...}}.
ADMIN_SCOPE = "custom:sandbox:admin"
# Owners of sandboxes made with a Hub service's token (an admin service's): never a user's name.
SERVICE_OWNER_PREFIX = "service:"
