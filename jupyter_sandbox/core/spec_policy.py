"""The spec policy: what sandboxes may ask for on this server. The configured defaults and maxima
of their limits (memory, disk, CPUs, processes, timeout), the images and network they may use,
and the per-user quotas; ``resolve_spec`` fills and checks a request, ``describe`` tells a form.

The maxima and quotas may differ by owner: ``limits_for(owner)`` is what every check reads, the
configured traits unless ``owner_limits`` (a hook, e.g. the Hub service's group limits) raises some
for that owner.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from traitlets import Bool, Float, HasTraits, Instance, Int, List, Unicode, default

from ..backends.base import SandboxBackend
from ..errors import InvalidInput, QuotaExceeded
from ..models import (
    ConfigDefaults,
    ConfigMaximums,
    NetworkRules,
    SandboxModel,
    SandboxSpec,
    ServerConfig,
    SpecRequest,
    egress_covers,
    egress_patterns,
    format_size,
    parse_size,
)

# The traits an owner's limits may override (``owner_limits``), and how "more generous" compares them.
SIZE_LIMITS = ("max_memory", "max_disk", "max_memory_per_user")
LIMIT_TRAITS = (
    *SIZE_LIMITS,
    "max_sandboxes_per_user",
    "max_contexts_per_sandbox",
    "max_cpus",
    "max_pids",
    "max_timeout",
    "allow_network",
    "allowed_images",
)


@dataclass(frozen=True)
class Limits:
    """One owner's maxima and quotas (sizes in bytes)."""

    max_sandboxes_per_user: int
    max_memory_per_user: int
    max_contexts_per_sandbox: int
    max_memory: int
    max_cpus: float
    max_disk: int
    max_pids: int
    max_timeout: float
    allow_network: bool
    allowed_images: tuple[str, ...]


def most_generous(overrides: builtins.list[dict[str, Any]]) -> dict[str, Any]:
    """Several sets of limit overrides (e.g. one per group of a user) merged: each limit at its most
    generous (the largest number or size, network if any allows it, every image any allows)."""
    merged: dict[str, Any] = {}
    for limits in overrides:
        for name, value in limits.items():
            if name not in LIMIT_TRAITS:
                raise ValueError(f"{name!r} is not a limit; limits are: {', '.join(LIMIT_TRAITS)}")
            if name not in merged:
                merged[name] = builtins.list(value) if name == "allowed_images" else value
            elif name == "allowed_images":
                merged[name] += [i for i in value if i not in merged[name]]
            elif name == "allow_network":
                merged[name] = bool(merged[name] or value)
            elif name in SIZE_LIMITS:
                if parse_size(value, name) > parse_size(merged[name], name):
                    merged[name] = value
            else:
                merged[name] = max(merged[name], value)
    return merged


class SpecPolicy(HasTraits):
    """The limits, images and network sandboxes may have. SandboxManager inherits it after its
    Configurable base, so these traits are its own: configured, and listed in --help-all, as
    c.SandboxManager.*."""

    backend = Instance(SandboxBackend)  # type: ignore[type-abstract]  # traitlets checks isinstance only

    max_sandboxes_per_user = Int(8, help="Sandboxes one user may have at once (429 beyond).").tag(config=True)
    max_memory_per_user = Unicode(
        help="Memory and disk all of one user's sandboxes may ask for together (429 beyond). Default: half the "
        "host's memory."
    ).tag(config=True)
    max_sandboxes_total = Int(
        0,
        help="Sandboxes of all users together at once (429 beyond); 0: no such limit. Behind JupyterHub the "
        "service holds every user's sandboxes, so this is the host's total.",
    ).tag(config=True)
    max_memory_total = Unicode(
        "",
        help="Memory and disk all users' sandboxes may ask for together (429 beyond), e.g. '48G'; '': no such limit.",
    ).tag(config=True)
    max_contexts_per_sandbox = Int(8, help="Contexts (kernels) per sandbox.").tag(config=True)
    default_memory = Unicode("1G", help="Memory for sandboxes that ask for none.").tag(config=True)
    max_memory = Unicode(
        help="Largest memory a sandbox may ask for. Default: a quarter of the host's memory (at least 1G, at most 16G)."
    ).tag(config=True)
    default_cpus = Float(1.0, help="CPUs for sandboxes that ask for none.").tag(config=True)
    max_cpus = Float(help="Most CPUs a sandbox may ask for. Default: the host's cores.").tag(config=True)
    default_disk = Unicode(
        "512M",
        help="Writable working-directory size for sandboxes that ask for none (on Docker a tmpfs, held "
        "in memory: the container's memory limit is memory + disk, so a full disk is ENOSPC, not an OOM kill).",
    ).tag(config=True)
    max_disk = Unicode(help="Largest working-directory size a sandbox may ask for. Default: half of max_memory.").tag(
        config=True
    )
    default_pids = Int(256, help="Process limit for sandboxes that ask for none.").tag(config=True)
    max_pids = Int(1024, help="Largest process limit a sandbox may ask for.").tag(config=True)
    default_timeout = Float(300.0, help="Per-execution timeout (s) when neither sandbox nor call sets one.").tag(
        config=True
    )
    max_timeout = Float(3600.0, help="Longest per-execution timeout (s).").tag(config=True)
    allow_network = Bool(
        False,
        help="Whether sandboxes may ask for network access. Before turning it on, see the README's "
        "security model: a Docker sandbox with network joins the 'jupyter-sandbox' network, which "
        "scripts/setup-docker.sh fences off from the host and the cloud metadata address.",
    ).tag(config=True)
    allowed_images = List(Unicode(), help="Images sandboxes may use; empty allows only the default image.").tag(
        config=True
    )
    # -- the egress allow-list (issue 23): on a backend that filters egress (Docker)
    network_allow_max = List(
        Unicode(),
        help="The names sandboxes may ever be allowed to reach, e.g. ['pypi.org', '*.pythonhosted.org'] "
        "('*.domain': any name under it; '*': any). Empty: any name. When set, every sandbox with network "
        "goes through the filtering proxy: `network: true` gets network_allow_default, else this list.",
    ).tag(config=True)
    network_allow_default = List(
        Unicode(),
        help="The allow-list of a sandbox that asks for `network: true` (empty: unfiltered network, unless "
        "network_allow_max or network_deny_always is set).",
    ).tag(config=True)
    network_deny_always = List(
        Unicode(), help="Names no sandbox may reach, added to every sandbox's deny list (its network filtered)."
    ).tag(config=True)
    default_runtime = Unicode("", help="Runtime for sandboxes that ask for none ('' = backend default).").tag(
        config=True
    )

    # The maxima fit the host they run on unless configured.
    @default("max_memory")
    def _max_memory_default(self) -> str:
        return format_size(min(max(host_memory() // 4, 1024**3), 16 * 1024**3) // 1024**2 * 1024**2)

    @default("max_disk")
    def _max_disk_default(self) -> str:
        return format_size(parse_size(self.max_memory, "max_memory") // 2 // 1024**2 * 1024**2)

    @default("max_cpus")
    def _max_cpus_default(self) -> float:
        return float(os.cpu_count() or 1)

    @default("max_memory_per_user")
    def _max_memory_per_user_default(self) -> str:
        return format_size(host_memory() // 2 // 1024**2 * 1024**2)

    # Overrides of some LIMIT_TRAITS for one owner (more generous or not: they replace the traits).
    owner_limits: Callable[[str], dict[str, Any]] = staticmethod(lambda owner: {})

    def limits_for(self, owner: str | None = None) -> Limits:
        """The maxima and quotas of ``owner`` (None: the configured ones)."""
        values: dict[str, Any] = {name: getattr(self, name) for name in LIMIT_TRAITS}
        if owner:
            values.update(self.owner_limits(owner))
        for name in SIZE_LIMITS:
            values[name] = parse_size(values[name], name)
        values["allowed_images"] = tuple(values["allowed_images"])
        return Limits(**values)

    def images_for(self, limits: Limits) -> builtins.list[str]:
        default = self.backend.default_image
        return [default, *[i for i in limits.allowed_images if i != default]]

    @property
    def images(self) -> builtins.list[str]:
        return self.images_for(self.limits_for())

    def resolve_spec(
        self, data: SpecRequest | dict[str, Any] | SandboxSpec | None, owner: str | None = None
    ) -> SandboxSpec:
        """Fill defaults and enforce ``owner``'s maxima (InvalidInput names the field)."""
        limits = self.limits_for(owner)
        if isinstance(data, SandboxSpec):
            given = data.to_dict()
            egress = given.pop("egress", None)
            request = SpecRequest(**given)
            if egress is not None:
                request.network = NetworkRules(**egress)
        elif isinstance(data, SpecRequest):
            request = data
        else:
            request = SpecRequest.parse(data)
        # absent and null both mean "the server's default"
        request = replace(
            request,
            memory=self.default_memory if request.memory is None else request.memory,
            disk=self.default_disk if request.disk is None else request.disk,
            cpus=self.default_cpus if request.cpus is None else request.cpus,
            pids=self.default_pids if request.pids is None else request.pids,
            timeout=self.default_timeout if request.timeout is None else request.timeout,
            runtime=request.runtime or self.default_runtime or None,
        )
        spec = SandboxSpec.from_request(request)
        checks: builtins.list[tuple[str, float, float, Callable[[Any], str]]] = [
            ("memory", spec.memory, limits.max_memory, format_size),
            ("disk", spec.disk, limits.max_disk, format_size),
            ("cpus", spec.cpus, limits.max_cpus, str),
            ("pids", spec.pids, limits.max_pids, str),
        ]
        for name, value, limit, show in checks:
            if value > limit:
                raise InvalidInput(f"{name} {show(value)} is above this server's maximum of {show(limit)}", field=name)
        if spec.timeout is not None and spec.timeout > limits.max_timeout:
            raise InvalidInput(
                f"timeout {spec.timeout:g}s is above the maximum of {limits.max_timeout:g}s", field="timeout"
            )
        if spec.network and not limits.allow_network:
            raise InvalidInput("this server does not allow sandboxes with network access", field="network")
        if spec.network:
            self._filter_egress(spec)
        if spec.image is None:
            spec.image = self.backend.default_image
        images = self.images_for(limits)
        if spec.image not in images:
            raise InvalidInput(f"image {spec.image!r} is not allowed; allowed: {', '.join(images)}", field="image")
        return spec

    def _filter_egress(self, spec: SandboxSpec) -> None:
        """``spec.egress`` as this server's config makes it: the default allow-list for `network: true`,
        the names always denied added, each allowed pattern within ``network_allow_max``."""
        most = egress_patterns(self.network_allow_max, "network_allow_max")
        always = egress_patterns(self.network_deny_always, "network_deny_always")
        if spec.egress is None:
            default = egress_patterns(self.network_allow_default, "network_allow_default")
            if not (default or most or always):
                return  # unfiltered, as before the allow-list existed
            spec.egress = {"allow": default or most or ["*"], "deny": []}
        if most:
            beyond = [p for p in spec.egress["allow"] if not any(egress_covers(m, p) for m in most)]
            if beyond:
                raise InvalidInput(
                    f"network.allow: {', '.join(beyond)} is beyond what this server allows ({', '.join(most)})",
                    field="network.allow",
                )
        spec.egress["deny"] += [p for p in always if p not in spec.egress["deny"]]
        if not self.backend.filters_egress:
            raise InvalidInput(
                f"the {self.backend.name} backend cannot filter a sandbox's network by name; ask for network "
                "true or false",
                field="network",
            )

    def describe(self, max_upload_size: int, owner: str | None = None) -> ServerConfig:
        """What a create form needs: this server's defaults, ``owner``'s maxima and images, the backend
        (no secrets); ``max_upload_size`` is the server's request limit."""
        defaults = self.resolve_spec(None)
        limits = self.limits_for(owner)
        return ServerConfig(
            backend=self.backend.name,
            isolation=self.backend.isolation,
            images=self.images_for(limits),
            defaults=ConfigDefaults(
                image=defaults.image or self.backend.default_image,
                memory=defaults.memory,
                cpus=defaults.cpus,
                disk=defaults.disk,
                pids=defaults.pids,
                timeout=defaults.timeout,
                network=defaults.network,
            ),
            maximums=ConfigMaximums(
                memory=limits.max_memory,
                cpus=limits.max_cpus,
                disk=limits.max_disk,
                pids=limits.max_pids,
                timeout=limits.max_timeout,
                sandboxes_per_user=limits.max_sandboxes_per_user,
                contexts_per_sandbox=limits.max_contexts_per_sandbox,
            ),
            allow_network=limits.allow_network,
            max_upload_size=max_upload_size,
            network_allow_max=egress_patterns(self.network_allow_max, "network_allow_max"),
        )

    def check_quota(
        self,
        mine: builtins.list[SandboxModel],
        spec: SandboxSpec,
        owner: str | None = None,
        everyone: builtins.list[SandboxModel] | None = None,
    ) -> None:
        """QuotaExceeded when ``owner``, with sandboxes ``mine``, may not have one more with ``spec``,
        or when all users' sandboxes (``everyone``) leave no room on this server."""
        limits = self.limits_for(owner)
        if everyone is not None:
            if self.max_sandboxes_total and len(everyone) >= self.max_sandboxes_total:
                raise QuotaExceeded(
                    f"this server holds {len(everyone)} sandboxes of all its users, the most it allows; "
                    "try again when some are gone"
                )
            total = sum(m.spec.memory + m.spec.disk for m in everyone) + spec.memory + spec.disk
            if self.max_memory_total and total > parse_size(self.max_memory_total, "max_memory_total"):
                raise QuotaExceeded(
                    f"all users' sandboxes together would hold {format_size(total)} of memory and disk, over this "
                    f"server's limit of {self.max_memory_total}; ask for less or try again when some are gone"
                )
        if len(mine) >= limits.max_sandboxes_per_user:
            raise QuotaExceeded(
                f"you have {len(mine)} sandboxes, the most this server allows per user; remove one first"
            )
        # a sandbox's disk counts: on Docker it is a tmpfs, held in memory
        held = sum(m.spec.memory + m.spec.disk for m in mine)
        asked, allowed = spec.memory + spec.disk, limits.max_memory_per_user
        if held + asked > allowed:
            raise QuotaExceeded(
                f"your sandboxes hold {format_size(held)} of memory and disk; with {format_size(asked)} more you "
                f"would pass this server's limit of {format_size(allowed)} per user; remove one or ask for less"
            )


def host_memory() -> int:
    """Bytes of RAM on this host."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
