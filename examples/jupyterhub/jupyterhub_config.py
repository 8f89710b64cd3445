"""JupyterHub with jupyter-sandbox as a Hub-managed service: the one process that talks to Docker.

Run it as root on a machine with Docker, jupyter-sandbox[hub] and configurable-http-proxy:

    jupyterhub -f examples/jupyterhub/jupyterhub_config.py [--ip=0.0.0.0 --port=8000]

Users log in with their Unix account (PAM); each gets a single-user server running as that
account (LocalProcessSpawner). No user needs to be in the `docker` group (which would make them
root on the host): their servers, kernels and terminals reach sandboxes only through the
service, with their own Hub token. See docs/jupyterhub.md.

Edit the constants below; everything else follows from them.
"""

import sys
from pathlib import Path

# The service's admin scope ("custom:sandbox:admin"), named once, where the service checks it.
from jupyter_sandbox.service import ADMIN_SCOPE

# What a deployer edits -----------------------------------------------------------------------
SERVICE_NAME = "sandbox"
# Where the service listens: on the host only. The Hub's proxy serves it publicly under
# /services/<SERVICE_NAME>/; users' servers (on this host) call it here directly.
SERVICE_PORT = 10101
SERVICE_URL = f"http://127.0.0.1:{SERVICE_PORT}"
# Hub users who see and stop every user's sandboxes (and are Hub admins).
ADMIN_USERS: set[str] = set()

# Names the other parts rely on ---------------------------------------------------------------
ACCESS_SCOPE = f"access:services!service={SERVICE_NAME}"
SERVICE_ROLE = "sandbox-service"
SANDBOX_ADMIN_ROLE = "sandbox-admin"

c = get_config()  # type: ignore[name-defined]  # noqa: F821 (given by JupyterHub's config loader)

# Real Unix users; the service and the single-user servers run from the Python environment the Hub
# itself runs from (so it must be readable by every user: not a Python under /root).
c.JupyterHub.authenticator_class = "pam"
c.JupyterHub.spawner_class = "localprocess"
c.Authenticator.admin_users = ADMIN_USERS
# Every Unix account that can log in may use the Hub (narrow with c.Authenticator.allowed_users or
# c.PAMAuthenticator.allowed_groups), except root: a server running as root holds the engine.
c.Authenticator.allow_all = True
c.Authenticator.blocked_users = {"root"}
c.JupyterHub.allow_named_servers = True
c.Spawner.cmd = [str(Path(sys.executable).with_name("jupyterhub-singleuser"))]

# The sandbox service, started and restarted by the Hub. It alone holds the Docker socket; it
# authenticates every request with the Hub (OAuth for browsers, tokens for scripts).
c.JupyterHub.services = [
    {
        "name": SERVICE_NAME,
        "url": SERVICE_URL,
        "command": [sys.executable, "-m", "jupyter_sandbox.service"],
        # It is part of the Hub: users are not asked to grant it access to their identity.
        "oauth_no_confirm": True,
    }
]

c.JupyterHub.custom_scopes = {
    ADMIN_SCOPE: {"description": "See and stop every user's sandboxes."},
}

c.JupyterHub.load_roles = [
    # The service's own token: who the users are, their groups (limits per group) and whether
    # their servers still run (a stopped server's sandboxes are removed).
    {
        "name": SERVICE_ROLE,
        "description": "The sandbox service: users, their groups and their servers",
        "scopes": ["list:users", "read:users:groups", "read:servers"],
        "services": [SERVICE_NAME],
    },
    # Every user may use the service (the default "user" role is ["self"]).
    {
        "name": "user",
        "description": "Standard user privileges, and the sandbox service",
        "scopes": ["self", ACCESS_SCOPE],
    },
    {
        "name": SANDBOX_ADMIN_ROLE,
        "description": "See and stop every user's sandboxes",
        "scopes": [ADMIN_SCOPE],
        "users": sorted(ADMIN_USERS),
    },
]

# The token a user's server (and its kernels and terminals) holds: the default server role's
# scopes, plus the service, so the extension and the sandboxed kernel reach the service as the user.
# A user who lacks a scope does not get it here: the Hub grants only the subset the user holds.
c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", ACCESS_SCOPE]
# The extension in a user's server sends every sandbox/api/* request to the service (Hub mode).
c.Spawner.environment = {"JUPYTER_SANDBOX_SERVICE_URL": f"{SERVICE_URL}/services/{SERVICE_NAME}/"}
