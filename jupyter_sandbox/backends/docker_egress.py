"""A sandbox's egress allow-list on Docker (issue 23): a filtering proxy of its own, its only way out.

For a sandbox whose spec has ``egress`` (``{"allow": [...], "deny": [...]}``):
- an internal network of its own, ``jupyter-sandbox-egress-<id>``: a bridge with no route out, whose
  host interface has no address (``inhibit_ipv4``), so nothing on the host listens on it and the
  sandbox reaches no host service, and a /29 of ``DockerBackend.egress_subnets`` (the proxy at .2);
- its proxy, the container ``jupyter-sandbox-egress-<id>`` (programs/egress_proxy.py, run from the
  server's default image as nobody, read-only, no capability, small limits), on that network and on
  ``DockerBackend.egress_network`` (the fenced jupyter-sandbox bridge) for its own way out;
- the sandbox's container on the internal network only, with ``HTTP_PROXY``/``HTTPS_PROXY`` (both
  spellings, as pip, requests and curl read them) pointing at the proxy.
A network per sandbox, not one shared: sandboxes must not reach each other, and a bridge without
traffic between its containers (icc off) would cut them off from the proxy too. The proxy resolves
names for the sandbox, which needs no DNS of its own. What the proxy refuses it prints, and
``denials`` gives those lines for the sandbox's logs. A paused sandbox's proxy is stopped with it
and started before it at the resume (``stop``, ``start``); it goes when the sandbox goes (``remove``).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
from typing import TYPE_CHECKING, Any

from ..errors import BackendUnavailable, NotFound
from ..models import SandboxSpec
from . import programs
from .base import LABEL_PREFIX
from .docker_containers import SANDBOX_NETWORK, seccomp_profile
from .docker_engine import EngineClient

if TYPE_CHECKING:  # (only for types: docker.py imports this module)
    from .docker import DockerBackend

PROXY_PORT = 3128
PROXY_USER = "65534:65534"  # nobody: the proxy needs no account and no capability
SUBNET_TRIES = 32  # /29s tried from the sandbox's own slot on, when others' networks hold some
READY_WAIT = 15.0  # seconds for the proxy to say it listens
READY_LINE = "egress proxy for sandbox"  # what the proxy prints when it listens


def egress_name(sandbox_id: str) -> str:
    """The name of a sandbox's internal network and of its proxy's container."""
    return f"jupyter-sandbox-egress-{sandbox_id}"


def bridge_name(sandbox_id: str) -> str:
    """Its host interface: ``jsbx`` + 11 characters (an interface name has at most 15), so one
    firewall rule (``-i jsbx+``) matches every sandbox's network."""
    return "jsbx" + hashlib.sha256(sandbox_id.encode()).hexdigest()[:11]


def proxy_env(address: str) -> dict[str, str]:
    url = f"http://{address}:{PROXY_PORT}"
    env = {name: url for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")}
    return {**env, "NO_PROXY": "", "no_proxy": ""}


class DockerEgress:
    """The proxies and internal networks of one backend's sandboxes with an allow-list."""

    def __init__(self, backend: DockerBackend) -> None:
        self.backend = backend

    def subnets(self, sandbox_id: str) -> list[ipaddress.IPv4Network]:
        """The /29s a sandbox's network may take, its own slot (by id) first."""
        try:
            pool = ipaddress.IPv4Network(self.backend.egress_subnets)
        except ValueError as e:
            raise BackendUnavailable(f"DockerBackend.egress_subnets is not an IPv4 network: {e}") from e
        if pool.prefixlen > 29:
            raise BackendUnavailable("DockerBackend.egress_subnets must hold at least a /29")
        count = 2 ** (29 - pool.prefixlen)
        first = int.from_bytes(hashlib.sha256(sandbox_id.encode()).digest()[:8], "big") % count
        base = int(pool.network_address)
        return [ipaddress.IPv4Network((base + 8 * ((first + i) % count), 29)) for i in range(min(SUBNET_TRIES, count))]

    async def prepare(self, sandbox_id: str, spec: SandboxSpec, labels: dict[str, str]) -> dict[str, Any]:
        """Make the sandbox's internal network and its proxy (started, listening); the container
        options that put the sandbox behind it."""
        assert spec.egress is not None
        backend = self.backend
        name = egress_name(sandbox_id)
        # whose it is, but not a sandbox: no "managed" or "sandbox" label (those find sandboxes to adopt or reap)
        kept = {k: v for k, v in labels.items() if k not in (f"{LABEL_PREFIX}.managed", f"{LABEL_PREFIX}.sandbox")}
        owned = {f"{LABEL_PREFIX}.egress-of": sandbox_id, **kept}
        subnet = await backend.engine.call(lambda c: self._make_network(c, sandbox_id, owned))
        proxy_ip = str(subnet.network_address + 2)
        rules = {
            "sandbox": sandbox_id,
            "allow": spec.egress.get("allow", []),
            "deny": spec.egress.get("deny", []),
            "port": PROXY_PORT,
            "hosts": dict(backend.egress_test_hosts),
        }
        command = [backend.python, "-I", "-c", programs.source("egress_proxy"), json.dumps(rules)]

        def make_proxy(c: EngineClient) -> str:
            container = c.containers.create(
                backend.default_image,  # the server's own image, never one a user picked: it enforces the rules
                command=command,
                name=name,
                user=PROXY_USER,
                network=backend.egress_network,
                read_only=True,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges", f"seccomp={seccomp_profile()}"],
                pids_limit=64,
                mem_limit="96m",
                memswap_limit="96m",
                nano_cpus=int(0.5e9),
                init=True,
                runtime="runc",  # the proxy needs a network, which runsc has none of here
                labels={**backend.extra_labels, **owned},
                log_config={"type": "json-file", "config": {"max-size": backend.container_log_size, "max-file": "1"}},
            )
            c.api.connect_container_to_network(container.id, name, ipv4_address=proxy_ip)
            c.api.start(container.id)
            cid: str = container.id
            return cid

        if backend.egress_network == SANDBOX_NETWORK:
            await backend.containers.ensure_network()
        cid = await backend.engine.call(make_proxy)
        await self._wait_listening(cid, 0)
        return {"network_mode": name, "environment": proxy_env(proxy_ip), "dns": ["127.0.0.1"]}

    def _make_network(self, c: EngineClient, sandbox_id: str, labels: dict[str, str]) -> ipaddress.IPv4Network:
        import docker.errors  # deferred: docker-py (see docker_engine.py)
        import docker.types

        name = egress_name(sandbox_id)
        found = [n for n in c.api.networks(names=[name]) if n.get("Name") == name]  # (names= matches parts)
        if found:  # left by an earlier try: take its subnet
            subnet = found[0].get("IPAM", {}).get("Config") or c.api.inspect_network(name)["IPAM"]["Config"]
            return ipaddress.IPv4Network(subnet[0]["Subnet"])
        last: Exception | None = None
        for subnet in self.subnets(sandbox_id):
            ipam = docker.types.IPAMConfig(
                pool_configs=[docker.types.IPAMPool(subnet=str(subnet), gateway=str(subnet.network_address + 1))]
            )
            try:
                c.api.create_network(
                    name,
                    driver="bridge",
                    internal=True,
                    check_duplicate=True,
                    ipam=ipam,
                    options={
                        "com.docker.network.bridge.name": bridge_name(sandbox_id),
                        "com.docker.network.bridge.inhibit_ipv4": "true",  # no host address on it
                        "com.docker.network.bridge.enable_icc": "true",  # the sandbox and its proxy only
                    },
                    labels=labels,
                )
                return subnet
            except docker.errors.APIError as e:
                if "overlap" not in str(e.explanation or e):
                    raise
                last = e
        raise BackendUnavailable(f"no free /29 in DockerBackend.egress_subnets for a sandbox's network: {last}")

    async def _wait_listening(self, cid: str, starts_before: int) -> None:
        """Until the proxy prints that it listens (it starts in a fraction of a second), once more than
        the ``starts_before`` times its log already says so (the log outlives a stop)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_WAIT
        while loop.time() < deadline:
            text = (await self.backend.engine.call(lambda c: c.api.logs(cid))).decode(errors="replace")
            if text.count(READY_LINE) > starts_before:
                return
            state = await self.backend.engine.call(lambda c: c.api.inspect_container(cid))
            if not state["State"]["Running"]:
                raise BackendUnavailable(f"the sandbox's egress proxy did not start: {text[-500:]}")
            await asyncio.sleep(0.1)
        raise BackendUnavailable("the sandbox's egress proxy did not start listening in time")

    async def stop(self, sandbox_id: str) -> None:
        """A paused sandbox's proxy stops too (its network stays, and the proxy's address on it)."""
        name = egress_name(sandbox_id)
        try:
            await self.backend.engine.call(lambda c: c.api.stop(name, timeout=2))
        except NotFound:  # gone already: the resume makes it again
            pass

    async def start(self, sandbox_id: str, spec: SandboxSpec) -> None:
        """The proxy of a sandbox being resumed, started again and listening before the sandbox is;
        made again (at the same address: its network keeps its subnet) if it was removed meanwhile."""
        name = egress_name(sandbox_id)

        def start(c: EngineClient) -> int:
            log: bytes = c.api.logs(name)
            c.api.start(name)
            return log.decode(errors="replace").count(READY_LINE)

        try:
            starts = await self.backend.engine.call(start)
        except NotFound:
            cid = self.backend.container_id(sandbox_id)
            state = await self.backend.engine.call(lambda c: c.api.inspect_container(cid))
            await self.prepare(sandbox_id, spec, dict(state["Config"].get("Labels") or {}))
            return
        await self._wait_listening(name, starts)

    async def denials(self, sandbox_id: str) -> str:
        """What the sandbox's proxy refused (and its first line: the rules), "" without a proxy."""
        name = egress_name(sandbox_id)
        try:
            found: bytes = await self.backend.engine.call(lambda c: c.api.logs(name, tail=500))
        except NotFound:
            return ""
        return found.decode(errors="replace")

    async def remove(self, sandbox_id: str) -> None:
        """The sandbox's proxy and network gone (nothing when it had none)."""
        import docker.errors  # deferred: docker-py (see docker_engine.py)

        await self.backend.engine.remove_container(egress_name(sandbox_id))

        def remove_network(c: EngineClient) -> None:
            try:
                c.api.remove_network(egress_name(sandbox_id))
            except docker.errors.NotFound:
                pass

        await self.backend.engine.call(remove_network)
