"""Backends behind one interface; ``make_backend`` picks one by name ("auto" tries Docker)."""

from __future__ import annotations

import logging

from .base import SandboxBackend

BACKENDS = {
    "docker": "jupyter_sandbox.backends.docker:DockerBackend",
    "local": "jupyter_sandbox.backends.local:LocalBackend",
}


def backend_class(name: str) -> type[SandboxBackend]:
    from importlib import import_module

    module, _, attr = BACKENDS[name].partition(":")
    return getattr(import_module(module), attr)


def make_backend(name: str = "auto", log: logging.Logger | None = None, **kwargs) -> SandboxBackend:
    """An instance of the named backend; ``auto`` is docker when an engine answers, else local."""
    log = log or logging.getLogger("jupyter_sandbox")
    if name == "auto":
        from .docker import DockerBackend

        name = "docker" if DockerBackend.available() else "local"
        log.info(
            "jupyter-sandbox: backend 'auto' chose %s%s",
            name,
            "" if name == "docker" else " (no Docker engine reachable)",
        )
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of auto, {', '.join(BACKENDS)}")
    return backend_class(name)(**kwargs)


__all__ = ["BACKENDS", "SandboxBackend", "backend_class", "make_backend"]
