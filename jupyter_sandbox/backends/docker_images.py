"""Building the sandbox image offline, and what the Docker engine has (for `jupyter sandbox`).

No registry is needed: the default base is a Debian rootfs made with ``debootstrap`` from the
Debian mirror and imported as an image, and Python packages come from a wheelhouse filled on the
host (``pip download``), installed in the image with ``--no-index`` (containers may not reach or
verify the package index). A base image you already have (``python:3.12-slim``) works too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from ..errors import BackendUnavailable, SandboxError
from .docker_engine import EngineClient, why_unreachable

# "-r": the base holds R and IRkernel (Debian's r-cran-irkernel); a base made before had neither,
# and a new name makes build-images.sh debootstrap the new one instead of reusing the old.
DEBOOTSTRAP_BASE = "jupyter-sandbox-base:bookworm-r"
DEBOOTSTRAP_PACKAGES = ("python3", "python3-venv", "r-cran-irkernel")
DEFAULT_IMAGE = "jupyter-sandbox:latest"
# The common scientific stack a newcomer expects (a sandbox has no network to pip install it)
SCIENTIFIC_PACKAGES = ("scipy", "scikit-learn", "seaborn", "requests", "pyarrow")
# What every sandbox image holds: the kernel, the data stack the examples use, ipywidgets
# (comms for widgets in the sandboxed notebook kernel), e2b-charts (a figure's data as E2B's
# ``result.chart``, programs/e2b_display.py; MIT, 9 kB, adds pydantic) and bash_kernel (bash).
DEFAULT_PACKAGES = (
    "ipykernel",
    "numpy",
    "pandas",
    "matplotlib",
    "ipywidgets",
    "e2b-charts",
    "bash_kernel",
    *SCIENTIFIC_PACKAGES,
)
PACKAGES_LABEL = "org.jupyter-sandbox.packages"
# The languages the image has kernels for (sorted, space-separated): a later build rebuilds an
# image that lacks one it would now have.
LANGUAGES_LABEL = "org.jupyter-sandbox.languages"
# Deno's own Jupyter kernel runs JavaScript and TypeScript; its binary comes from npm.
DENO_VERSION = "2.9.6"
DENO_NPM_PACKAGE = "@deno/linux-x64-glibc"


def image_languages(packages: list[str], has_r: bool) -> list[str]:
    """The languages an image built with ``packages`` on a base with (or without) R has kernels for."""
    languages = ["python", "javascript", "typescript"]
    if "bash_kernel" in packages or "bash-kernel" in packages:
        languages.append("bash")
    if has_r:
        languages.append("r")
    return sorted(languages)


class BuildError(SandboxError):
    """A step of the image build failed; the message says which and shows its last output."""


# A step's progress: (step number, steps in all, what happens now)
Progress = Callable[[int, int, str], None]


@dataclass
class BuildPlan:
    tag: str = DEFAULT_IMAGE
    base: str = DEBOOTSTRAP_BASE
    packages: list[str] = field(default_factory=lambda: list(DEFAULT_PACKAGES))
    wheelhouse: str | None = None  # None: <cache>/wheels-cp<version>
    cache: str = "/var/cache/jupyter-sandbox"
    force: bool = False
    docker_url: str = ""


class EngineUnreachable(BackendUnavailable):
    """No engine answers; ``fix`` says what to do when it is not "start one" (a socket the user may not open)."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.fix = fix


def _client(docker_url: str = "") -> EngineClient:
    import docker  # deferred: docker-py (~0.3 s), which the CLI's other commands never need

    try:
        client = docker.DockerClient(base_url=docker_url) if docker_url else docker.from_env()
        client.ping()
    except Exception as e:
        problem, fix = why_unreachable(e, docker_url)
        raise EngineUnreachable(f"Docker engine not reachable: {problem}", fix) from e
    return client


def _has_image(client: EngineClient, name: str) -> Any:
    """The image of that name (docker-py's Image), None when the engine has none."""
    import docker.errors  # deferred: docker-py (see _client)

    try:
        return client.images.get(name)
    except docker.errors.ImageNotFound:
        return None


def _run(command: list[str], what: str, on_line: Callable[[str], None] | None = None, **kwargs: Any) -> None:
    """Run ``command``, each output line to ``on_line``; BuildError with its last lines if it fails."""
    tail: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if line and not line.startswith("WARNING: Location"):  # pip's noise about absent local mirrors
                tail = [*tail[-19:], line]
                if on_line:
                    on_line(line)
    if proc.returncode != 0:
        raise BuildError(f"{what} failed (exit code {proc.returncode}):\n" + "\n".join(tail))


def build_image(plan: BuildPlan, progress: Progress, log: Callable[[str], None] = print) -> bool:
    """Build ``plan.tag`` (three steps: base, wheelhouse, image). False when it was already there
    with the same packages and ``force`` is off."""
    client = _client(plan.docker_url)
    wanted = " ".join(sorted(plan.packages))
    present = _has_image(client, plan.tag)
    if present is not None and not plan.force:
        labels = present.labels or {}
        has = set(labels.get(LANGUAGES_LABEL, "").split())
        if labels.get(PACKAGES_LABEL) == wanted and has >= set(image_languages(plan.packages, has_r=False)):
            log(f"{plan.tag} is present with {wanted} ({' '.join(sorted(has))})")
            return False
        log(f"{plan.tag} is present but holds other packages or languages than {wanted}: rebuilding it")

    progress(1, 3, f"base image {plan.base}")
    if _has_image(client, plan.base) is None:
        if plan.base != DEBOOTSTRAP_BASE:
            raise BuildError(
                f"base image {plan.base} is not on this engine: `docker pull {plan.base}` or load it first"
            )
        _debootstrap(client, plan, lambda line: progress(1, 3, f"debootstrap: {line[:60]}"))

    version, r_found = (
        client.containers.run(
            plan.base,
            [
                "python3",
                "-c",
                "import shutil, sys; print(f'{sys.version_info[0]}{sys.version_info[1]}', shutil.which('R'))",
            ],
            remove=True,
            network_mode="none",
        )
        .decode()
        .split()
    )
    languages = image_languages(plan.packages, has_r=r_found != "None")
    wheelhouse = plan.wheelhouse or os.path.join(plan.cache, f"wheels-cp{version}")
    os.makedirs(wheelhouse, exist_ok=True)
    progress(2, 3, f"wheelhouse for cp{version}: {wanted}")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--python-version",
            version,
            "--implementation",
            "cp",
            "--platform",
            "manylinux2014_x86_64",
            "--platform",
            "manylinux_2_17_x86_64",
            "--platform",
            "manylinux_2_28_x86_64",
            "--find-links",
            wheelhouse,
            "-d",
            wheelhouse,
            *plan.packages,
        ],
        "pip download",
        lambda line: progress(2, 3, line[:70]),
    )

    deno = _fetch_deno(plan.cache, lambda line: progress(2, 3, line[:70]))

    progress(3, 3, f"docker build {plan.tag}")
    with tempfile.TemporaryDirectory(prefix="jsbx-build-") as context:
        shutil.copy(str(files("jupyter_sandbox") / "images" / "Dockerfile"), context)
        shutil.copytree(wheelhouse, os.path.join(context, "wheels"))
        shutil.copy(deno, os.path.join(context, "deno"))
        args = {
            "BASE": plan.base,
            "PACKAGES": " ".join(plan.packages),
            "PACKAGES_LABEL": wanted,
            "LANGUAGES_LABEL": " ".join(languages),
        }
        tail: list[str] = []
        for chunk in client.api.build(path=context, tag=plan.tag, buildargs=args, rm=True, forcerm=True, decode=True):
            if "error" in chunk:
                raise BuildError("docker build failed:\n" + "\n".join(tail[-15:]) + "\n" + str(chunk["error"]).strip())
            text = str(chunk.get("stream", "")).strip()
            if text:
                tail.append(text)
                step = re.match(r"Step (\d+)/(\d+) : (.*)", text)
                progress(
                    3,
                    3,
                    f"docker build step {step.group(1)}/{step.group(2)}: {step.group(3)[:50]}" if step else text[:70],
                )
    size = client.images.get(plan.tag).attrs.get("Size", 0)
    log(f"built {plan.tag} ({size / 1e6:.0f} MB) with {wanted}; languages {' '.join(languages)}")
    return True


def _fetch_deno(cache: str, on_line: Callable[[str], None]) -> str:
    """Deno's binary (DENO_VERSION, from npm) in the build cache, fetched with ``npm pack`` when absent."""
    folder = os.path.join(cache, f"deno-{DENO_VERSION}")
    binary = os.path.join(folder, "package", "deno")
    if os.path.isfile(binary):
        return binary
    if shutil.which("npm") is None:
        raise BuildError("npm is not installed: it fetches Deno (JavaScript and TypeScript kernels) for the image")
    os.makedirs(folder, exist_ok=True)
    _run(["npm", "pack", f"{DENO_NPM_PACKAGE}@{DENO_VERSION}", "--pack-destination", folder], "npm pack", on_line)
    tarballs = [name for name in os.listdir(folder) if name.endswith(".tgz")]
    if not tarballs:
        raise BuildError(f"npm pack left no tarball of {DENO_NPM_PACKAGE}@{DENO_VERSION} in {folder}")
    _run(["tar", "-xzf", os.path.join(folder, tarballs[0]), "-C", folder, "package/deno"], "unpacking Deno", on_line)
    return binary


def _debootstrap(client: EngineClient, plan: BuildPlan, on_line: Callable[[str], None]) -> None:
    """A minimal Debian bookworm with python3 and R with IRkernel, imported as ``plan.base`` (needs
    root and debootstrap)."""
    if shutil.which("debootstrap") is None:
        raise BuildError(
            "debootstrap is not installed: `apt-get install -y debootstrap` (as root), or give --base IMAGE"
        )
    os.makedirs(plan.cache, exist_ok=True)
    root = tempfile.mkdtemp(prefix="rootfs-", dir=plan.cache)
    try:
        _run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(DEBOOTSTRAP_PACKAGES)}", "bookworm", root],
            "debootstrap",
            on_line,
        )
        for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for name in os.listdir(os.path.join(root, leftovers)):
                path = os.path.join(root, leftovers, name)
                if os.path.isfile(path):
                    os.unlink(path)
        repository, _, tag = plan.base.rpartition(":")
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        try:
            client.api.import_image_from_stream(tar.stdout, repository=repository, tag=tag)
        finally:
            tar.wait()
        if tar.returncode != 0:
            raise BuildError(f"tar of the debootstrapped root failed (exit code {tar.returncode})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


# docker info's flags for each limit a sandbox has
LIMIT_FLAGS = {"memory": "MemoryLimit", "CPU": "CpuCfsQuota", "pids": "PidsLimit"}


def unenforced_limits(info: dict[str, Any]) -> str:
    """Which sandbox limits the engine cannot enforce, and why, from ``docker info``; '' when it enforces all."""
    driver = info.get("CgroupDriver")
    missing = [name for name, flag in LIMIT_FLAGS.items() if driver == "none" or not info.get(flag)]
    if not missing:
        return ""
    rootless = any("name=rootless" in option for option in info.get("SecurityOptions") or [])
    version = info.get("CgroupVersion") or "?"
    if rootless and version != "2":
        why = f"a rootless engine on cgroup v{version}: rootless Docker enforces limits only on cgroup v2"
    elif rootless:
        why = "a rootless engine whose user was not delegated these cgroup v2 controllers"
    else:
        why = f"the engine's cgroups (v{version}, driver {driver}) lack these controllers"
    return f"limits are not enforced: the engine reports no {', '.join(missing)} limit support ({why})"


@dataclass
class EngineFacts:
    """What `jupyter sandbox doctor` needs to know about the engine."""

    reachable: bool
    problem: str = ""
    fix: str = ""  # what to do about ``problem`` when it is not "start an engine"
    version: str = ""
    runtimes: list[str] = field(default_factory=list)
    images: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> labels, for the images asked about
    unenforced_limits: str = ""  # '' when the engine enforces memory, CPU and pids limits


def engine_facts(images: list[str], docker_url: str = "") -> EngineFacts:
    try:
        client = _client(docker_url)
    except EngineUnreachable as e:
        return EngineFacts(reachable=False, problem=e.message, fix=e.fix)
    info = client.info()
    found = {}
    for name in images:
        image = _has_image(client, name)
        if image is not None:
            found[name] = dict(image.labels or {})
    client.close()
    return EngineFacts(
        reachable=True,
        version=str(info.get("ServerVersion", "")),
        runtimes=sorted(info.get("Runtimes") or {}),
        images=found,
        unenforced_limits=unenforced_limits(info),
    )
