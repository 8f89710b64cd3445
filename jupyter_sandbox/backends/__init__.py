"""Backends behind one interface; ``make_backend`` picks one by name ("auto" tries Docker)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

from .base import SandboxBackend

BACKENDS = {
    "docker": "jupyter_sandbox.backends.docker:DockerBackend",
    "local": "jupyter_sandbox.backends.local:LocalBackend",
    "kubernetes": "jupyter_sandbox.backends.kubernetes:KubernetesBackend",
}

# Engine-specific checks of `jupyter sandbox doctor --backend NAME`: a function of the doctor's
# settings giving its report lines (what, ok, detail, fix). Docker's are the doctor's own (cli.py).
DOCTORS = {
    "kubernetes": "jupyter_sandbox.backends.kubernetes_doctor:doctor_lines",
}
DoctorLine = tuple[str, bool | None, str, str]


def backend_doctor(name: str) -> Callable[[Mapping[str, Any]], list[DoctorLine]] | None:
    """The named backend's doctor, its module imported now; None when the doctor checks it itself."""
    if name not in DOCTORS:
        return None
    module, _, attr = DOCTORS[name].partition(":")
    found: Callable[[Mapping[str, Any]], list[DoctorLine]] = getattr(import_module(module), attr)
    return found


def backend_class(name: str) -> type[SandboxBackend]:
    """The backend class of that name, its module imported now (each needs only its own)."""
    module, _, attr = BACKENDS[name].partition(":")
    found = getattr(import_module(module), attr)
    if not (isinstance(found, type) and issubclass(found, SandboxBackend)):
        raise TypeError(f"{BACKENDS[name]} is not a SandboxBackend")
    return found


def make_backend(
    name: str = "auto", log: logging.Logger | None = None, *, allow_local: bool = True, **kwargs: Any
) -> SandboxBackend:
    """An instance of the named backend. ``auto`` is docker when an engine answers at the Docker
    backend's configured ``docker_url`` (else DOCKER_HOST, else the default socket), else local; with
    ``allow_local`` False it stays docker, and every sandbox request fails (503) until an engine answers."""
    log = log or logging.getLogger("jupyter_sandbox")
    if name == "auto":
        # made first, so its docker_url is read as configured (kwargs, or the parent's config)
        from .docker import DockerBackend

        docker = DockerBackend(**kwargs)
        problem = docker.engine_problem()
        if problem is None:
            log.info("jupyter-sandbox: backend 'auto' chose docker")
            return docker
        if not allow_local:
            log.error(
                "jupyter-sandbox: backend 'auto' found no Docker engine (%s), and falling back to 'local' is "
                "not allowed (c.SandboxApp.allow_local_fallback = False): staying on docker, every sandbox "
                "request is refused (503) until the engine answers",
                problem,
            )
            return docker
        log.warning("jupyter-sandbox: backend 'auto' chose local: %s", problem)
        name = "local"
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of auto, {', '.join(BACKENDS)}")
    return backend_class(name)(**kwargs)


__all__ = ["BACKENDS", "DOCTORS", "SandboxBackend", "backend_class", "backend_doctor", "make_backend"]
