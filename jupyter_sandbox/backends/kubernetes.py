"""Sandboxes as Pod-Security-"restricted" pods on Kubernetes; kernels reached over ``pods/exec``.

One pod per sandbox, in one namespace, with a NetworkPolicy of its own (no ingress; no egress
unless the sandbox has network, and then none to the cluster's ranges or the metadata address).
Its manifests are kubernetes_pods.py's. A kernel is started by the same launcher as on Docker
(programs/launcher.py), run through ``pods/exec`` (websocket, ``v5.channel.k8s.io``, else v4),
relaying the kernel's messages over the exec's stdin/stdout: no Service, no port, nothing mounted.
Files and usage figures are short execs too. The pods carry the server's labels, so a restarted
server finds and takes back its sandboxes (``list_existing``, ``adopt``, ``attach_kernel``).

``KubernetesBackend`` holds the settings (c.KubernetesBackend.*) and which sandbox is whose, and
hands each job to a part: the API connection (kubernetes_api.py), the pods (kubernetes_cluster.py),
kernels (kubernetes_kernels.py), files and usage (kubernetes_files.py).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from traitlets import Bool, Dict, Float, Int, List, Unicode

from ..errors import BackendUnavailable, Conflict, InvalidInput, NotFound
from ..models import SandboxSpec, format_size, parse_size
from .base import LOG_LIMIT, WORKDIR, SandboxBackend, confine, kernel_argv, kernel_extras, notebook_settings
from .dir_watch import DirWatch
from .docker_containers import IDENTITY_ENV
from .exec_stream import ExecStream
from .kernel_channels import DirectKernelClient
from .kernel_client import KernelClient
from .kernel_languages import KernelLanguages
from .kernel_relay import attach_request, start_request
from .kubernetes_api import KubeApi
from .kubernetes_cluster import SandboxPods, pod_labels_exact
from .kubernetes_exec import Connect
from .kubernetes_files import KubernetesFiles
from .kubernetes_kernels import KubernetesKernels
from .kubernetes_pods import CONTAINER, PodSettings, memory_limit, pod_name
from .kubernetes_processes import KubernetesProcesses


class KubernetesBackend(SandboxBackend):
    """Hardened pods: restricted Pod Security, no network unless asked, requests equal to limits."""

    name = "kubernetes"
    isolation = (
        "Kubernetes pod at Pod Security 'restricted': non-root uid, no capabilities, no privilege escalation, "
        "RuntimeDefault seccomp, read-only root, memory-backed working directory, no service-account token, "
        "a NetworkPolicy with no ingress and no egress unless asked, memory/CPU limits"
    )

    namespace = Unicode("default", help="Namespace of the sandboxes' pods (the server's Role must be there).").tag(
        config=True
    )
    kubeconfig = Unicode("", help="kubeconfig file; '' = $KUBECONFIG or ~/.kube/config (unless in-cluster).").tag(
        config=True
    )
    context = Unicode("", help="kubeconfig context; '' = its current one.").tag(config=True)
    in_cluster = Bool(
        None,
        allow_none=True,
        help="Use the pod's own service account (the server runs in the cluster). None: when "
        "KUBERNETES_SERVICE_HOST is set and no kubeconfig is named.",
    ).tag(config=True)
    runtime_class_name = Unicode(
        "", help="RuntimeClass of sandboxes that name no runtime, e.g. 'gvisor' or 'kata'; '' = the cluster's default."
    ).tag(config=True)
    runtime_classes = Dict(
        {"runc": "", "runsc": "gvisor"},
        help="A spec's runtime -> the RuntimeClass that gives it ('' = the cluster's default).",
    ).tag(config=True)
    node_selector = Dict(help="nodeSelector of the sandboxes' pods.").tag(config=True)
    tolerations = List(Dict(), help="tolerations of the sandboxes' pods (as in a pod spec).").tag(config=True)
    affinity = Dict(help="affinity of the sandboxes' pods (as in a pod spec).").tag(config=True)
    image_pull_secrets = List(Unicode(), help="Names of Secrets to pull the sandbox image with.").tag(config=True)
    image_pull_policy = Unicode("IfNotPresent", help="imagePullPolicy of the sandbox container.").tag(config=True)
    priority_class_name = Unicode("", help="priorityClassName of the sandboxes' pods ('' = none).").tag(config=True)
    service_account_name = Unicode(
        "",
        help="ServiceAccount of the pods ('' = none named: the namespace's default). Its token is never mounted "
        "(automountServiceAccountToken false): code in a sandbox gets no credentials either way.",
    ).tag(config=True)
    extra_labels = Dict(help="Labels added to every pod.").tag(config=True)
    uid = Int(1000, help="uid the pod runs as (never 0); the image's files must allow it.").tag(config=True)
    gid = Int(1000, help="gid the pod runs as (never 0).").tag(config=True)
    tmp_size = Unicode("128m", help="Size of /tmp (memory-backed, counted in the memory limit).").tag(config=True)
    network_policies = Bool(
        True, help="Give each pod a NetworkPolicy (no ingress; egress only with network). Off: the cluster's own."
    ).tag(config=True)
    blocked_cidrs = List(
        Unicode(),
        PodSettings().blocked_cidrs,
        help="IPv4 ranges a sandbox with network cannot reach: the cluster's (pods, services, nodes) and 169.254.0.0/16 "
        "(the metadata address). Name your cluster's ranges if they differ.",
    ).tag(config=True)
    blocked_cidrs_v6 = List(
        Unicode(), PodSettings().blocked_cidrs_v6, help="IPv6 ranges a sandbox with network cannot reach."
    ).tag(config=True)
    dns_egress = Bool(True, help="A sandbox with network may ask the cluster's DNS (kube-dns, port 53).").tag(
        config=True
    )
    python = Unicode("python", help="Python command in the image that has ipykernel.").tag(config=True)
    socket_root = Unicode("", help="Where the server makes its private folder for kernel sockets ('' = temp).").tag(
        config=True
    )
    pod_start_timeout = Float(120.0, help="Seconds for a sandbox's pod to run (image pull included).").tag(config=True)
    request_timeout = Float(30.0, help="Seconds before a call to the API server (or a file command) is given up.").tag(
        config=True
    )
    kernel_start_timeout = Float(60.0, help="Seconds for the launcher to start a kernel in a sandbox.").tag(config=True)
    liveness_timeout = Float(
        10.0, help="Seconds of silence, pings unanswered, after which a kernel's stream is dead."
    ).tag(config=True)
    relay_bytes_per_second = Int(4 << 20, help="Bytes per second the server reads from one kernel's link.").tag(
        config=True
    )
    relay_messages_per_second = Int(500, help="Messages per second the server takes from one kernel's link.").tag(
        config=True
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        in_cluster = self.in_cluster
        if in_cluster is None:
            in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not self.kubeconfig
        self.api = KubeApi(self.kubeconfig, self.context, in_cluster, self.request_timeout)
        self.pods = SandboxPods(self)
        self.kernels = KubernetesKernels(self)
        self.files = KubernetesFiles(self)
        self.kernelspecs = KernelLanguages(
            lambda sandbox_id, argv: self.files.run(sandbox_id, (argv, b"")), lambda: self.python
        )
        self.processes = KubernetesProcesses(self)
        self._specs: dict[str, SandboxSpec] = {}
        self._labels: dict[str, dict[str, str]] = {}

    def pod_settings(self) -> PodSettings:
        """The settings that shape a pod (kubernetes_pods.py), checked."""
        if self.uid <= 0 or self.gid <= 0:
            raise BackendUnavailable("KubernetesBackend.uid and gid must not be root (0)")
        return PodSettings(
            namespace=self.namespace,
            image=self.default_image,
            python=self.python,
            uid=self.uid,
            gid=self.gid,
            tmp_size=parse_size(self.tmp_size, "tmp_size"),
            runtime_class_name=self.runtime_class_name,
            runtime_classes=dict(self.runtime_classes),
            node_selector=dict(self.node_selector),
            tolerations=list(self.tolerations),
            affinity=dict(self.affinity),
            image_pull_secrets=list(self.image_pull_secrets),
            image_pull_policy=self.image_pull_policy,
            priority_class_name=self.priority_class_name,
            service_account_name=self.service_account_name,
            extra_labels=dict(self.extra_labels),
            blocked_cidrs=list(self.blocked_cidrs),
            blocked_cidrs_v6=list(self.blocked_cidrs_v6),
            dns_egress=self.dns_egress,
        )

    # -- the sandboxes this backend holds (its parts ask here) ------------------------------
    def holds(self, sandbox_id: str) -> bool:
        return sandbox_id in self._specs

    def spec(self, sandbox_id: str) -> SandboxSpec:
        spec = self._specs.get(sandbox_id)
        if spec is None:
            raise NotFound(f"no sandbox {sandbox_id} on this backend")
        return spec

    def spec_if_known(self, sandbox_id: str) -> SandboxSpec | None:
        return self._specs.get(sandbox_id)

    def exec_connect(self, sandbox_id: str, tty: bool = False) -> Connect:
        """How to open an exec in the sandbox's pod (for kubernetes_exec.py); ``tty``: in a terminal."""
        self.spec(sandbox_id)
        name = pod_name(sandbox_id)

        async def connect(command: list[str], stdin: bool) -> aiohttp.ClientWebSocketResponse:
            return await self.api.exec_websocket(self.namespace, name, CONTAINER, command, stdin, tty)

        return connect

    def memory_limit(self, spec: SandboxSpec) -> int:
        """The pod's memory limit: the memory asked for, plus its working directory and /tmp."""
        return memory_limit(spec, self.pod_settings())

    # -- lifecycle ----------------------------------------------------------------------
    async def create(self, sandbox_id: str, spec: SandboxSpec, labels: dict[str, str]) -> None:
        self.log.info(
            "creating pod for sandbox %s: image=%s memory=%s cpus=%s network=%s",
            sandbox_id,
            spec.image or self.default_image,
            format_size(spec.memory),
            spec.cpus,
            spec.network,
        )
        self._specs[sandbox_id] = spec
        self._labels[sandbox_id] = dict(labels)
        self.kernels.forget_ended(sandbox_id)
        try:
            await self.pods.create(sandbox_id, spec, labels)
        except Conflict:
            self._specs.pop(sandbox_id, None)  # another's pod: never removed by this create
            raise
        except BaseException:
            # a pod that never ran (or a create given up): removed, so nothing is left behind
            self._specs.pop(sandbox_id, None)
            await self.pods.delete_quietly(sandbox_id)
            raise

    async def adopt(self, sandbox_id: str, spec: SandboxSpec, paused: bool = False) -> None:  # (never paused here)
        pod = await self.pods.get(sandbox_id)
        phase = (pod.get("status") or {}).get("phase")
        if phase != "Running" or (pod.get("metadata") or {}).get("deletionTimestamp"):
            raise NotFound(f"the pod of sandbox {sandbox_id} is not running ({phase})")
        self._specs[sandbox_id] = spec
        self._labels[sandbox_id] = pod_labels_exact(pod)  # a restart makes its new pod with them
        self.kernels.forget_ended(sandbox_id)

    async def restart(self, sandbox_id: str) -> None:
        """A fresh pod with the same spec: the old one deleted (and awaited), a new one made."""
        spec = self.spec(sandbox_id)
        labels = self._labels.get(sandbox_id) or {}
        await self.processes.table.close(sandbox_id)
        await self.kernels.drop_all(sandbox_id)
        await self.pods.delete(sandbox_id)
        await self._wait_gone(sandbox_id)
        self.files.forget(sandbox_id)
        await self.create(sandbox_id, spec, labels)

    async def _wait_gone(self, sandbox_id: str) -> None:
        deadline = asyncio.get_running_loop().time() + self.pod_start_timeout
        while asyncio.get_running_loop().time() < deadline:
            try:
                await self.pods.get(sandbox_id)
            except NotFound:
                return
            await asyncio.sleep(0.2)
        raise BackendUnavailable(
            f"the old pod of sandbox {sandbox_id} was not gone within {self.pod_start_timeout:g} s"
        )

    async def languages(self, sandbox_id: str) -> list[str]:
        return sorted(await self.kernelspecs.of(sandbox_id))

    async def remove(self, sandbox_id: str) -> None:
        await self.processes.table.close(sandbox_id)
        self.kernelspecs.forget(sandbox_id)
        await self.kernels.drop_all(sandbox_id)
        self._specs.pop(sandbox_id, None)
        self._labels.pop(sandbox_id, None)
        self.files.forget(sandbox_id)
        self.kernels.forget_ended(sandbox_id)
        await self.pods.delete(sandbox_id)

    async def list_existing(self, labels: dict[str, str] | None = None) -> list[dict[str, str]]:
        return await self.pods.list(labels)

    async def logs(self, sandbox_id: str, kernel_ids: list[str]) -> dict[str, Any]:
        self.spec(sandbox_id)
        text = (await self.pods.log(sandbox_id, 4 * LOG_LIMIT))[-LOG_LIMIT:]
        return {
            "container": text,
            "kernels": {k: (await self.kernels.log(sandbox_id, k))[-LOG_LIMIT:] for k in kernel_ids},
        }

    # -- kernels ------------------------------------------------------------------------
    async def start_kernel(
        self,
        sandbox_id: str,
        kernel_id: str,
        cwd: str | None = None,
        key: bytes | None = None,
        debugger: bool = True,
        language: str = "python",
    ) -> dict[str, Any]:
        spec = self.spec(sandbox_id)
        workdir = confine(cwd) if cwd else WORKDIR
        if workdir != WORKDIR:
            code, _, _ = await self.files.run(sandbox_id, (["test", "-d", workdir], b""))
            if code != 0:
                raise InvalidInput(f"the working directory {workdir} does not exist in the sandbox", field="cwd")
        hmac_key = key.decode() if isinstance(key, bytes) else key or secrets.token_hex(32)
        # a notebook's kernel is the one with the debugger (core/kernels.py): no E2B formats there
        extra_argv, extra_env = kernel_extras(
            offline=not spec.network,
            e2b_formats=not debugger,
            notebook=notebook_settings(sandbox_id, spec) if debugger else None,
        )
        argv = [*kernel_argv(self.python, debugger=debugger), *extra_argv]
        if language != "python":  # another language's kernel starts as its kernelspec says
            argv, extra_env = await self.kernelspecs.command(sandbox_id, language)
        env = {**IDENTITY_ENV, **extra_env, **spec.env}  # the sandbox's env wins
        transport = "ipc" if language == "python" else "tcp"  # every kernel takes tcp, not all ipc (Deno)
        request = start_request(kernel_id, hmac_key, argv, cwd=workdir, env=env, transport=transport)
        return await self.kernels.launch(sandbox_id, kernel_id, hmac_key, request)

    async def attach_kernel(
        self, sandbox_id: str, kernel_id: str, key: str, timeout: float | None = None
    ) -> dict[str, Any]:
        return await self.kernels.launch(sandbox_id, kernel_id, key, attach_request(kernel_id, key), timeout)

    async def kernel_client(self, sandbox_id: str, kernel_id: str, info: dict[str, Any]) -> KernelClient:
        relay = self.kernels.relay(sandbox_id, kernel_id)
        if relay is None:
            return await super().kernel_client(sandbox_id, kernel_id, info)
        return DirectKernelClient(relay)  # the relay's messages read in-process: no second ZMQ hop

    async def kernel_exit_reason(self, sandbox_id: str, kernel_id: str) -> str | None:
        return await self.kernels.exit_reason(sandbox_id, kernel_id)

    async def stop_kernel(self, sandbox_id: str, kernel_id: str) -> None:
        await self.kernels.stop(sandbox_id, kernel_id)

    # -- stats and files ----------------------------------------------------------------
    async def stats(self, sandbox_id: str) -> dict[str, Any]:
        return await self.files.stats(sandbox_id)

    async def write_file(self, sandbox_id: str, path: str, data: bytes) -> None:
        await self.files.write(sandbox_id, path, data)

    def stream_file(self, sandbox_id: str, path: str) -> AsyncIterator[bytes]:
        return self.files.stream(sandbox_id, path)

    async def list_files(self, sandbox_id: str, path: str) -> list[dict[str, Any]]:
        return await self.files.list(sandbox_id, path)

    async def remove_file(self, sandbox_id: str, path: str) -> None:
        await self.files.remove(sandbox_id, path)

    # -- one-shot runs: not on this backend ------------------------------------------------
    async def stat_file(self, sandbox_id: str, path: str) -> dict[str, Any]:
        return await self.files.stat(sandbox_id, path)

    async def list_tree(self, sandbox_id: str, path: str, depth: int) -> list[dict[str, Any]]:
        return await self.files.tree(sandbox_id, path, depth)

    async def make_dir(self, sandbox_id: str, path: str) -> dict[str, Any]:
        return await self.files.make_dir(sandbox_id, path)

    async def move_file(self, sandbox_id: str, source: str, destination: str) -> dict[str, Any]:
        return await self.files.move(sandbox_id, source, destination)

    async def watch_dir(self, sandbox_id: str, path: str, recursive: bool) -> DirWatch:
        return await self.files.watch(sandbox_id, path, recursive)

    # -- commands (kubernetes_processes.py) ---------------------------------------------------
    async def exec_stream(
        self,
        sandbox_id: str,
        argv: list[str],
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        user: str | None = None,
        pty: tuple[int, int] | None = None,
        stdin: bool = False,
        tag: str | None = None,
    ) -> ExecStream:
        self.check_exec_user(user)
        return await self.processes.start(sandbox_id, argv, cwd, env or {}, pty, stdin, tag)

    def exec_streams(self, sandbox_id: str) -> list[ExecStream]:
        return self.processes.table.running(sandbox_id)

    def find_exec(self, sandbox_id: str, pid: int) -> ExecStream:
        return self.processes.table.find(sandbox_id, pid)

    def require_once(self) -> None:
        raise BackendUnavailable(
            "one-shot executions are not available on the kubernetes backend (a pod per run would take seconds "
            "to schedule); run the code in a sandbox instead"
        )

    async def close(self) -> None:
        await self.processes.table.close_all()
        await self.kernels.close()  # the kernels stay (a restarted server may reattach)
        await self.api.close()
