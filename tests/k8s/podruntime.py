"""The test API server's kubelet: runs each pod as a Docker container, keeps the pod's status in
step with the container (polling), stops it on delete after the grace period, switches its
network when NetworkPolicies change, and reads its logs and stats. Runs on the server's loop;
Docker calls go to threads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import docker
import docker.errors

from .pods import POD_LABEL, SANDBOX_NETWORK, SERVER_LABEL, config_error, docker_options, egress_allowed, pod_status
from .store import Store, now

POLL = 0.5  # seconds between status refreshes
log = logging.getLogger(__name__)


class PodRuntime:
    def __init__(
        self,
        store: Store,
        server_id: str,
        *,
        extra_labels: dict[str, str],
        runtime_classes: dict[str, str],
        pids_limit: int,
    ) -> None:
        self.store = store
        self.server_id = server_id
        self.extra_labels = extra_labels
        self.runtime_classes = runtime_classes
        self.pids_limit = pids_limit
        self.docker = docker.from_env()
        self.containers: dict[tuple[str, str], str] = {}  # (namespace, name) -> container id
        self.waiting: dict[tuple[str, str], tuple[str, str]] = {}  # why a pod's container is not there
        self._tasks: set[asyncio.Task[Any]] = set()
        self._poller: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._poller = asyncio.ensure_future(self._poll())

    def background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self, pod: dict[str, Any]) -> None:
        """Create and start the pod's container (what the kubelet does after scheduling)."""
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        key = (ns, name)
        image = pod["spec"]["containers"][0]["image"]
        try:
            image_user = (await asyncio.to_thread(self.docker.images.get, image)).attrs["Config"].get("User") or "0"
        except docker.errors.ImageNotFound:
            await self._wait_reason(pod, "ErrImagePull", f'image "{image}" not found (nothing can be pulled here)')
            return
        problem = config_error(pod, image_user)
        if problem:
            await self._wait_reason(pod, "CreateContainerConfigError", problem)
            return
        labels = {POD_LABEL: f"{ns}/{name}", SERVER_LABEL: self.server_id, **self.extra_labels}
        runtime = self.runtime_classes.get(pod["spec"].get("runtimeClassName") or "")
        network = egress_allowed(self.store.find("networkpolicies", ns), pod["metadata"].get("labels") or {})
        opts = docker_options(pod, labels=labels, network=network, runtime=runtime, pids_limit=self.pids_limit)
        try:
            container = await asyncio.to_thread(
                self.docker.containers.create, name=f"k8s-{ns}-{name}-{self.server_id}", **opts
            )
            self.containers[key] = container.id
            current = self.store.get("pods", ns, name)
            if current is None or "deletionTimestamp" in current["metadata"]:  # deleted while being created
                self.containers.pop(key, None)
                await asyncio.to_thread(container.remove, force=True, v=True)
                return
            await asyncio.to_thread(container.start)
        except docker.errors.APIError as e:
            await self._wait_reason(pod, "RunContainerError", str(e))
            return
        await self.refresh()

    async def _wait_reason(self, pod: dict[str, Any], reason: str, message: str) -> None:
        self.waiting[(pod["metadata"]["namespace"], pod["metadata"]["name"])] = (reason, message)
        await self.refresh()

    async def delete(self, pod: dict[str, Any], grace: int) -> None:
        """Stop the container (SIGTERM, SIGKILL after ``grace`` seconds), then the pod is gone."""
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        cid = self.containers.pop((ns, name), None)
        self.waiting.pop((ns, name), None)
        if cid:
            try:
                container = await asyncio.to_thread(self.docker.containers.get, cid)
                if grace > 0:
                    await asyncio.to_thread(container.stop, timeout=grace)
                await asyncio.to_thread(container.remove, force=True, v=True)
            except docker.errors.APIError as e:  # gone, or its removal already under way
                if e.status_code not in (404, 409):
                    raise
        await self.store.remove("pods", ns, name)

    def mark_deleting(self, pod: dict[str, Any], grace: int) -> None:
        when = datetime.now(timezone.utc) + timedelta(seconds=grace)
        pod["metadata"]["deletionTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        pod["metadata"]["deletionGracePeriodSeconds"] = grace

    async def shutdown(self) -> None:
        if self._poller:
            self._poller.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.to_thread(self.remove_all)

    def remove_all(self) -> None:
        for c in self.docker.containers.list(all=True, filters={"label": f"{SERVER_LABEL}={self.server_id}"}):
            try:
                c.remove(force=True, v=True)
            except docker.errors.APIError as e:  # gone, or its removal already under way
                if e.status_code not in (404, 409):
                    raise
        self.docker.close()

    # -- status ---------------------------------------------------------------------------------

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL)
            try:
                await self.refresh()
            except Exception:  # the poller must outlive one bad answer from the engine
                log.exception("test API server: refreshing pod status failed")

    def _inspect_all(self, ids: dict[tuple[str, str], str]) -> dict[tuple[str, str], dict[str, Any] | None]:
        out: dict[tuple[str, str], dict[str, Any] | None] = {}
        for key, cid in ids.items():
            try:
                out[key] = self.docker.api.inspect_container(cid)
            except docker.errors.NotFound:
                out[key] = None
        return out

    async def refresh(self) -> None:
        """Bring every pod's status in line with its container; a change is a MODIFIED event."""
        inspected = await asyncio.to_thread(self._inspect_all, dict(self.containers))
        for pod in self.store.find("pods"):
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            if "deletionTimestamp" in pod["metadata"] and key not in self.containers:
                continue  # its container is being removed: the last status stands
            new = pod_status(pod, inspected.get(key), self.waiting.get(key))
            new["startTime"] = pod["status"].get("startTime") or now()  # when the kubelet took the pod
            if new != pod["status"]:
                pod["status"] = new
                await self.store.modified("pods", pod)

    def container(self, namespace: str, name: str) -> str | None:
        return self.containers.get((namespace, name))

    # -- network --------------------------------------------------------------------------------

    async def apply_network(self, namespace: str) -> None:
        """Join each pod of the namespace to the fenced network or to none, as its policies say."""
        policies = self.store.find("networkpolicies", namespace)
        for pod in self.store.find("pods", namespace):
            cid = self.containers.get((namespace, pod["metadata"]["name"]))
            if cid:
                want = egress_allowed(policies, pod["metadata"].get("labels") or {})
                await asyncio.to_thread(self._switch_network, cid, want)
        await self.refresh()

    def _switch_network(self, cid: str, egress: bool) -> None:
        attached = set(self.docker.api.inspect_container(cid)["NetworkSettings"]["Networks"])
        target, other = (SANDBOX_NETWORK, "none") if egress else ("none", SANDBOX_NETWORK)
        if target in attached:
            return
        if other in attached:
            self.docker.api.disconnect_container_from_network(cid, other)
        self.docker.api.connect_container_to_network(cid, target)

    # -- logs and stats ---------------------------------------------------------------------------

    async def logs(self, cid: str, tail: int | None) -> bytes:
        return await asyncio.to_thread(
            self.docker.api.logs, cid, stdout=True, stderr=True, tail="all" if tail is None else tail
        )

    async def follow_logs(self, cid: str, tail: int | None) -> AsyncIterator[bytes]:
        """The log, then what the container writes, until it stops (``docker logs --follow``)."""
        argv = ["docker", "logs", "--follow", "--tail", "all" if tail is None else str(tail), cid]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        assert proc.stdout is not None
        try:
            while chunk := await proc.stdout.read(64 * 1024):
                yield chunk
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()

    async def usage(self, cid: str) -> dict[str, str]:
        """CPU (nanocores over the last sample) and working-set memory, as metrics-server reports."""
        stats = await asyncio.to_thread(self.docker.api.stats, cid, stream=False)
        cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
        used = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get("total_usage", 0)
        span = _seconds(stats.get("read", "")) - _seconds(stats.get("preread", ""))
        nanocores = int(used / span) if span > 0 and used > 0 else 0
        mem = stats.get("memory_stats") or {}
        inactive = (mem.get("stats") or {}).get("total_inactive_file", (mem.get("stats") or {}).get("inactive_file", 0))
        working_set = max(0, mem.get("usage", 0) - inactive)
        return {"cpu": f"{nanocores}n", "memory": f"{working_set // 1024}Ki"}


def _seconds(stamp: str) -> float:
    if not stamp or stamp.startswith("0001-"):
        return 0.0
    base, _, frac = stamp.rstrip("Z").partition(".")
    whole = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return whole + float(f"0.{frac or 0}")
