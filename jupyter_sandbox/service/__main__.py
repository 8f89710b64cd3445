"""``python -m jupyter_sandbox.service``: what a Hub's ``c.JupyterHub.services`` entry runs."""

from __future__ import annotations

from .app import main

if __name__ == "__main__":
    main()
