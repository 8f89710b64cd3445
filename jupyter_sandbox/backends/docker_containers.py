"""What a sandbox's container is made of: its hardened options, seccomp profile, runtime and network.

``DockerContainers`` makes containers (never pulling an image) after checking that the engine has
the runtime asked for and, for a sandbox with network, that the sandboxes' own network exists.
The users inside (see docker.py's docstring) are the backend's ``user`` and ``launcher_user``,
checked here; ``as_user`` is how a root exec drops to the sandbox's user (programs/as_user.py).
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..errors import BackendUnavailable, InvalidInput
from ..models import SandboxSpec
from . import programs
from .base import LABEL_PREFIX, WORKDIR, labelled_id
from .docker_engine import EngineClient

if TYPE_CHECKING:  # (only for types: docker.py imports this module)
    from .docker import DockerBackend

SANDBOX_NETWORK = "jupyter-sandbox"
SANDBOX_BRIDGE = "jsbx0"  # its host interface, named so firewall rules can match it


# who a sandbox's programs are, for a uid no account in the image has: getpass, pip and others read
# $USER and $LOGNAME before the passwd file (the name is the image's account, images/Dockerfile)
IDENTITY_ENV = {"USER": "sandbox", "LOGNAME": "sandbox"}


@functools.cache
def seccomp_profile() -> str:
    """The sandboxes' seccomp profile as the engine takes it (JSON text): Docker's default one of
    the 20.10 engine (moby/moby profiles/seccomp/default.json, Apache-2.0) without io_uring_setup,
    io_uring_enter, io_uring_register and the unconditional ptrace."""
    text = resources.files(__package__).joinpath("seccomp.json").read_text(encoding="utf-8")
    return json.dumps(json.loads(text), separators=(",", ":"))


def checked_ids(user: str, launcher_user: str) -> tuple[str, str]:
    """``user`` and ``launcher_user`` as "uid:gid", checked (a bad setting is the server's fault)."""
    ids = []
    for name, value in (("user", user), ("launcher_user", launcher_user)):
        uid, _, gid = value.partition(":")
        if not uid.isdigit() or not (gid or uid).isdigit() or 0 in (int(uid), int(gid or uid)):
            raise BackendUnavailable(f"DockerBackend.{name} must be a numeric 'uid:gid' other than root")
        ids.append(f"{int(uid)}:{int(gid or uid)}")
    if ids[0].partition(":")[0] == ids[1].partition(":")[0]:
        raise BackendUnavailable("DockerBackend.launcher_user must be another uid than DockerBackend.user")
    return ids[0], ids[1]


def uid_pair(sandbox_id: str, base: int, count: int) -> tuple[str, str]:
    """The kernels' and the launcher's "uid:gid" of a sandbox: a pair of the ``count`` pairs from
    ``base`` up, chosen by its id (so a restarted server finds the same one). Another sandbox may
    draw the same pair (as all once shared uid 1000); no host account has one when the range is
    free of them, which ``base`` far above the accounts' uids keeps true."""
    if base < 65536 or count < 1 or base + 2 * count > 2**31 - 1:
        raise BackendUnavailable(
            "DockerBackend.sandbox_uid_base must be at least 65536 and sandbox_uid_base + 2 * sandbox_uid_count "
            "at most 2**31 - 1"
        )
    slot = int.from_bytes(hashlib.sha256(sandbox_id.encode()).digest()[:8], "big") % count
    uid = base + 2 * slot
    return f"{uid}:{uid}", f"{uid + 1}:{uid + 1}"


class DockerContainers:
    """Makes the containers of one backend: options, runtime checks, the sandboxes' network."""

    def __init__(self, backend: DockerBackend) -> None:
        self.backend = backend
        self._runtimes: dict[str, list[str]] | None = None  # name -> its runtime args, as the engine says
        self._network_ready = False

    def ids(self, sandbox_id: str | None) -> tuple[str, str]:
        """The kernels' and the launcher's "uid:gid" in that sandbox (or one-shot run), checked: a pair of
        its own from the backend's uid range when it has one, else ``user`` and ``launcher_user``."""
        backend = self.backend
        if backend.sandbox_uid_base and sandbox_id:
            # a sandbox with a persistent volume has its volume's pair (docker_volumes.py)
            return uid_pair(backend.volumes.uid_key(sandbox_id), backend.sandbox_uid_base, backend.sandbox_uid_count)
        return checked_ids(backend.user, backend.launcher_user)

    def as_user(self, sandbox_id: str, command: list[str]) -> list[str]:
        """``command`` for a root exec that runs it as the sandbox's user, with no capability."""
        uid, _, gid = self.ids(sandbox_id)[0].partition(":")
        return [self.backend.python, "-I", "-c", programs.source("as_user"), uid, gid, *command]

    def options(self, spec: SandboxSpec, labels: dict[str, str], once: bool = False) -> dict[str, Any]:
        """The hardened ``containers.run`` keyword arguments for a spec (``DockerBackend.container_options``)."""
        backend = self.backend
        user = self.ids(labelled_id(labels))[0]
        uid, _, gid = user.partition(":")
        runtime = spec.runtime or backend.runtime
        options: dict[str, Any] = dict(
            user=user if once else "0:0",
            network_mode=backend.network_mode if spec.network else "none",
            read_only=True,
            tmpfs={
                "/tmp": f"rw,nosuid,nodev,size={backend.tmp_size}",
                WORKDIR: f"rw,nosuid,nodev,size={spec.disk},uid={uid},gid={gid},mode=0755",
            },
            cap_drop=["ALL"],
            cap_add=[] if once else ["SETUID", "SETGID", "KILL"],
            security_opt=["no-new-privileges", f"seccomp={seccomp_profile()}"],
            pids_limit=max(spec.pids, backend.runsc_min_pids) if runtime == "runsc" else spec.pids,
            # The tmpfs mounts are charged to the container's memory: room for them on top of
            # the memory asked for, so a full disk is ENOSPC and never kills the kernel.
            mem_limit=backend.memory_limit(spec),
            memswap_limit=backend.memory_limit(spec),
            nano_cpus=int(spec.cpus * 1e9),
            init=True,
            labels={**backend.extra_labels, **labels},
            environment={**IDENTITY_ENV, **spec.env} if once else {},
            working_dir=WORKDIR,
            hostname="sandbox",
            runtime=runtime,
            ipc_mode="private",
            # The container's own output lands in a file on the host (the engine's log): code in
            # a one-shot run can write there (/proc/1/fd/1: its PID 1 is the sandbox's user), so it is capped.
            log_config={"type": "json-file", "config": {"max-size": backend.container_log_size, "max-file": "1"}},
        )
        return options

    async def create(self, name: str, image: str, command: list[str], options: dict[str, Any]) -> str:
        """A created (not started) container's id; never pulls (a registry may hang or be absent)."""
        await self.check_runtime(options["runtime"], network=options["network_mode"] != "none")
        if options["network_mode"] == SANDBOX_NETWORK:
            await self.ensure_network()
        container = await self.backend.engine.call(
            lambda c: c.containers.create(image, command=command, name=name, **options)
        )
        container_id: str = container.id
        return container_id

    async def check_runtime(self, runtime: str, network: bool = False) -> None:
        """InvalidInput naming the field when the engine has no such runtime, or runs it without
        a network for a sandbox that asks for one (the engine's runtimes are asked once)."""
        if self._runtimes is None:
            info = await self.backend.engine.call(lambda c: c.info())
            self._runtimes = {
                name: list((spec or {}).get("runtimeArgs") or []) for name, spec in (info.get("Runtimes") or {}).items()
            }
        if network and "--network=none" in self._runtimes.get(runtime, []):
            raise InvalidInput(
                f"sandboxes with network are not available under {runtime} on this Docker engine (it runs "
                f"{runtime} with --network=none); ask for runtime 'runc' or no network",
                field="network",
            )
        if runtime not in self._runtimes:
            raise InvalidInput(
                f"runtime {runtime!r} is not available on this Docker engine (it has {', '.join(sorted(self._runtimes))}); "
                "scripts/setup-docker.sh registers runsc",
                field="runtime",
            )

    async def ensure_network(self) -> None:
        """The sandboxes' own network, made when missing: a bridge where containers cannot reach
        each other (the host firewall rules that fence it off come from scripts/setup-docker.sh)."""
        if self._network_ready:
            return

        def ensure(c: EngineClient) -> bool:
            if c.api.networks(names=[SANDBOX_NETWORK]):
                return False
            c.api.create_network(
                SANDBOX_NETWORK,
                driver="bridge",
                check_duplicate=True,
                options={
                    "com.docker.network.bridge.name": SANDBOX_BRIDGE,
                    "com.docker.network.bridge.enable_icc": "false",
                },
                labels={f"{LABEL_PREFIX}.managed": "true"},
            )
            return True

        if await self.backend.engine.call(ensure):
            self.backend.log.warning(
                "jupyter-sandbox: made the Docker network %s for sandboxes with network; without the firewall rules "
                "of scripts/setup-docker.sh they can reach this host's services and the cloud metadata address",
                SANDBOX_NETWORK,
            )
        self._network_ready = True
