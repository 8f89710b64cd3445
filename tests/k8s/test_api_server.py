"""The test Kubernetes API server, driven as the backend drives it: with kubernetes_asyncio.

Each test also runs against a real cluster when KUBECONFIG is set (those that inspect the
server's own record or its Docker containers skip there)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import docker
import pytest
from aiohttp import WSServerHandshakeError
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.stream import WsApiClient

from .fixtures import K8sApi
from .pods import POD_LABEL
from servers import IMAGE

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


async def configuration(api: K8sApi) -> client.Configuration:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=api.kubeconfig, client_configuration=cfg)
    return cfg


@pytest.fixture
async def core(k8s_api: K8sApi) -> AsyncIterator[client.CoreV1Api]:
    async with client.ApiClient(await configuration(k8s_api)) as api_client:
        yield client.CoreV1Api(api_client)


def pod_manifest(
    name: str, command: list[str], *, memory: str = "256Mi", restart: str = "Never", **labels: str
) -> dict[str, Any]:
    """A pod as the backend makes them: Pod Security "restricted", requests == limits."""
    limits = {"memory": memory, "cpu": "500m"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "k8sapi-test", **labels}},
        "spec": {
            "restartPolicy": restart,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "runAsGroup": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "sandbox",
                    "image": IMAGE,
                    "command": command,
                    "workingDir": "/home/user",
                    "env": [{"name": "GREETING", "value": "hello"}],
                    "resources": {"limits": limits, "requests": limits},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "work", "mountPath": "/home/user"}, {"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [
                {"name": "work", "emptyDir": {"medium": "Memory", "sizeLimit": "32Mi"}},
                {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
            ],
        },
    }


async def wait_phase(
    core: client.CoreV1Api, namespace: str, name: str, phases: set[str], timeout: int = 120
) -> client.V1Pod:
    """Watch the pod (as a backend waits for Running) until its phase is one of ``phases``."""
    w = watch.Watch()
    async with w.stream(
        core.list_namespaced_pod, namespace, field_selector=f"metadata.name={name}", timeout_seconds=timeout
    ) as stream:
        async for event in stream:
            if event["type"] != "DELETED" and event["object"].status.phase in phases:
                return event["object"]
    raise AssertionError(f"pod {name} never reached {phases}")


@pytest.fixture
async def running_pod(core: client.CoreV1Api, k8s_api: K8sApi) -> AsyncIterator[str]:
    name = f"sleeper-{secrets.token_hex(3)}"
    await core.create_namespaced_pod(k8s_api.namespace, pod_manifest(name, ["sleep", "infinity"]))
    await wait_phase(core, k8s_api.namespace, name, {"Running"})
    yield name
    await core.delete_namespaced_pod(name, k8s_api.namespace, grace_period_seconds=0)


async def exec_ws(
    k8s_api: K8sApi, pod: str, command: list[str], protocol: str, stdin: bytes = b"", close_stdin: bool = False
) -> tuple[bytes, bytes, dict[str, Any]]:
    """One exec over the raw channel protocol: stdin sent in pieces, then (v5) closed; returns
    stdout, stderr and the error channel's Status."""
    cfg = await configuration(k8s_api)
    async with WsApiClient(cfg) as ws_client:
        core = client.CoreV1Api(ws_client)
        ws_ctx = await core.connect_get_namespaced_pod_exec(
            pod,
            k8s_api.namespace,
            command=command,
            stdin=bool(stdin) or close_stdin,
            stdout=True,
            stderr=True,
            tty=False,
            _preload_content=False,
            _headers={"sec-websocket-protocol": protocol},
        )
        out, err, status = b"", b"", None
        async with ws_ctx as ws:
            assert ws.protocol is None or ws.protocol == protocol
            for i in range(0, len(stdin), 1000):
                await ws.send_bytes(bytes([STDIN]) + stdin[i : i + 1000])
            if close_stdin:
                await ws.send_bytes(bytes([CLOSE, STDIN]))
            async for msg in ws:
                data: bytes = msg.data
                channel, payload = data[0], data[1:]
                if channel == STDOUT:
                    out += payload
                elif channel == STDERR:
                    err += payload
                elif channel == ERROR and payload:
                    status = json.loads(payload)
        assert status is not None, "no Status on the error channel"
        return out, err, status


async def test_pod_lifecycle_create_watch_get_list_delete(core: client.CoreV1Api, k8s_api: K8sApi) -> None:
    ns, name = k8s_api.namespace, f"life-{secrets.token_hex(3)}"
    created = await core.create_namespaced_pod(ns, pod_manifest(name, ["sleep", "infinity"], role="one"))
    assert created.metadata.name == name and created.metadata.uid and created.metadata.resource_version
    running = await wait_phase(core, ns, name, {"Running"})
    assert running.status.container_statuses[0].ready
    assert int(running.metadata.resource_version) > int(created.metadata.resource_version)
    got = await core.read_namespaced_pod(name, ns)
    assert got.status.phase == "Running" and got.spec.containers[0].image == IMAGE

    listed = await core.list_namespaced_pod(ns, label_selector="app=k8sapi-test,role=one")
    assert name in [p.metadata.name for p in listed.items]
    others = await core.list_namespaced_pod(ns, label_selector="app=k8sapi-test,role notin (one)")
    assert name not in [p.metadata.name for p in others.items]

    with pytest.raises(ApiException) as exists:
        await core.create_namespaced_pod(ns, pod_manifest(name, ["sleep", "1"]))
    assert exists.value.status == 409 and json.loads(exists.value.body)["reason"] == "AlreadyExists"

    # Delete with a grace period: the pod is marked, then DELETED reaches a watcher.
    w = watch.Watch()
    async with w.stream(
        core.list_namespaced_pod, ns, field_selector=f"metadata.name={name}", timeout_seconds=60
    ) as stream:
        deleted = await core.delete_namespaced_pod(name, ns, grace_period_seconds=1)
        assert deleted.metadata.deletion_timestamp is not None
        kinds = [e["type"] async for e in _until_deleted(stream)]
    assert kinds[-1] == "DELETED"
    with pytest.raises(ApiException) as gone:
        await core.read_namespaced_pod(name, ns)
    body = json.loads(gone.value.body)
    assert (
        gone.value.status == 404 and body["kind"] == "Status" and body["reason"] == "NotFound" and body["code"] == 404
    )


async def _until_deleted(stream: Any) -> AsyncIterator[dict[str, Any]]:
    async for event in stream:
        yield event
        if event["type"] == "DELETED":
            return


async def test_exec_v5_stdin_round_trip_is_binary_safe(k8s_api: K8sApi, running_pod: str) -> None:
    data = bytes(range(256)) * 400  # every byte value, 100 KiB, in 1000-byte messages
    out, err, status = await exec_ws(k8s_api, running_pod, ["cat"], "v5.channel.k8s.io", stdin=data, close_stdin=True)
    assert out == data, f"stdout differs ({len(out)} bytes back of {len(data)}); stderr: {err!r}"
    assert status["status"] == "Success"


async def test_exec_v4_stdin_stderr_and_exit_code(k8s_api: K8sApi, running_pod: str) -> None:
    # v4 has no close of stdin: the command reads a known number of bytes.
    script = 'head -c 5 > /tmp/in; cat /tmp/in; echo " to $GREETING" >&2; exit 3'
    out, err, status = await exec_ws(k8s_api, running_pod, ["sh", "-c", script], "v4.channel.k8s.io", stdin=b"12345")
    assert out == b"12345" and err == b" to hello\n"
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert WsApiClient.parse_error_data(json.dumps(status)) == 3


async def test_exec_preloaded_as_kubernetes_asyncio_does_by_default(k8s_api: K8sApi, running_pod: str) -> None:
    async with WsApiClient(await configuration(k8s_api)) as ws_client:
        core = client.CoreV1Api(ws_client)
        out = await core.connect_get_namespaced_pod_exec(
            running_pod, k8s_api.namespace, command=["sh", "-c", "id -u; pwd"], stdout=True, stderr=True, tty=False
        )
        env = await core.connect_get_namespaced_pod_exec(
            running_pod, k8s_api.namespace, command=["env"], stdout=True, stderr=True, tty=False
        )
    assert out == "1000\n/home/user\n"
    assert "GREETING=hello" in env.splitlines() and "KUBERNETES_SERVICE_HOST=" in env  # as the kubelet sets it


async def test_exited_pod_phase_and_log_tail(core: client.CoreV1Api, k8s_api: K8sApi) -> None:
    ns, name = k8s_api.namespace, f"exits-{secrets.token_hex(3)}"
    await core.create_namespaced_pod(
        ns, pod_manifest(name, ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; exit 2"])
    )
    try:
        pod = await wait_phase(core, ns, name, {"Succeeded", "Failed"})
        assert pod.status.phase == "Failed"
        terminated = pod.status.container_statuses[0].state.terminated
        assert terminated.exit_code == 2 and terminated.reason == "Error"
        assert await core.read_namespaced_pod_log(name, ns, tail_lines=2) == "line 4\nline 5\n"
        assert (await core.read_namespaced_pod_log(name, ns, container="sandbox")).count("line") == 5
        with pytest.raises(ApiException) as bad:
            await core.read_namespaced_pod_log(name, ns, container="nope")
        assert bad.value.status == 400
    finally:
        await core.delete_namespaced_pod(name, ns, grace_period_seconds=0)


async def test_memory_limit_oomkilled(core: client.CoreV1Api, k8s_api: K8sApi) -> None:
    ns, name = k8s_api.namespace, f"oom-{secrets.token_hex(3)}"
    hog = ["python3", "-c", "b = bytearray(400 * 2**20); b[::4096] = b'x' * len(b[::4096])"]
    await core.create_namespaced_pod(ns, pod_manifest(name, hog, memory="96Mi"))
    try:
        pod = await wait_phase(core, ns, name, {"Succeeded", "Failed"})
        assert pod.status.phase == "Failed"
        assert pod.status.container_statuses[0].state.terminated.reason == "OOMKilled"
    finally:
        await core.delete_namespaced_pod(name, ns, grace_period_seconds=0)


async def test_pod_security_maps_to_docker(k8s_api: K8sApi, running_pod: str) -> None:
    if k8s_api.server is None:
        pytest.skip("inspects the test API server's Docker containers")
    engine = docker.from_env()
    try:
        (container,) = engine.containers.list(filters={"label": f"{POD_LABEL}={k8s_api.namespace}/{running_pod}"})
        host = container.attrs["HostConfig"]
    finally:
        engine.close()
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Memory"] == host["MemorySwap"] == 256 * 2**20 and host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] > 0 and host["NetworkMode"] == "none"
    assert "size=33554432" in host["Tmpfs"]["/home/user"] and "size=16777216" in host["Tmpfs"]["/tmp"]
    assert container.attrs["Config"]["User"] == "1000:1000"


async def test_network_policy_switches_egress(core: client.CoreV1Api, k8s_api: K8sApi, running_pod: str) -> None:
    if k8s_api.server is None:
        pytest.skip("inspects the test API server's Docker containers")
    ns = k8s_api.namespace
    async with client.ApiClient(await configuration(k8s_api)) as api_client:
        net = client.NetworkingV1Api(api_client)
        policy = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": f"egress-{running_pod}"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "k8sapi-test"}},
                "policyTypes": ["Ingress", "Egress"],
                "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}]}],
            },
        }
        await net.create_namespaced_network_policy(ns, policy)
        assert (await core.read_namespaced_pod(running_pod, ns)).status.pod_ip
        names = [p.metadata.name for p in (await net.list_namespaced_network_policy(ns)).items]
        assert f"egress-{running_pod}" in names
        await net.delete_namespaced_network_policy(f"egress-{running_pod}", ns)
        assert (await core.read_namespaced_pod(running_pod, ns)).status.pod_ip is None


async def test_requests_are_recorded(core: client.CoreV1Api, k8s_api: K8sApi, running_pod: str) -> None:
    before = len(k8s_api.requests)
    await core.read_namespaced_pod(running_pod, k8s_api.namespace)
    await core.list_namespaced_pod(k8s_api.namespace)
    seen = [(r["method"], r["verb"], r["resource"], r["name"], r["status"]) for r in k8s_api.requests[before:]]
    assert ("GET", "get", "pods", running_pod, 200) in seen and ("GET", "list", "pods", "", 200) in seen


async def test_no_token_is_401(k8s_api: K8sApi) -> None:
    cfg = await configuration(k8s_api)
    cfg.api_key = {}
    cfg.cert_file = cfg.key_file = None  # no credentials at all
    async with client.ApiClient(cfg) as api_client:
        with pytest.raises(ApiException) as denied:
            await client.CoreV1Api(api_client).list_namespaced_pod(k8s_api.namespace)
    if k8s_api.server is None and denied.value.status == 403:
        return  # a real cluster with anonymous auth on: system:anonymous may not list pods
    assert denied.value.status == 401 and json.loads(denied.value.body)["reason"] == "Unauthorized"


async def test_rules_outside_the_role_are_403(core: client.CoreV1Api, k8s_api: K8sApi) -> None:
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    with k8s_api.rules(rules):
        await core.list_namespaced_pod(k8s_api.namespace)
        with pytest.raises(ApiException) as denied:
            await core.create_namespaced_pod(k8s_api.namespace, pod_manifest("never", ["true"]))
        body = json.loads(denied.value.body)
        assert (
            denied.value.status == 403
            and body["reason"] == "Forbidden"
            and 'cannot create resource "pods"' in body["message"]
        )
        async with client.ApiClient(await configuration(k8s_api)) as api_client:
            auth = client.AuthorizationV1Api(api_client)
            answers = {}
            for verb in ("list", "create"):
                review = {
                    "spec": {"resourceAttributes": {"namespace": k8s_api.namespace, "verb": verb, "resource": "pods"}}
                }
                answers[verb] = (await auth.create_self_subject_access_review(review)).status.allowed
    assert answers == {"list": True, "create": False}
    assert not any(
        r["verb"] == "create" and r["resource"] == "pods" and r["status"] == 201 for r in k8s_api.requests[-4:]
    )


async def test_discovery_runtimeclasses_and_metrics(k8s_api: K8sApi, running_pod: str) -> None:
    async with client.ApiClient(await configuration(k8s_api)) as api_client:
        version = await client.VersionApi(api_client).get_code()
        assert version.major == "1"
        groups = {g.name for g in (await client.ApisApi(api_client).get_api_versions()).groups}
        assert {"networking.k8s.io", "authorization.k8s.io", "node.k8s.io"} <= groups
        classes = await client.NodeV1Api(api_client).list_runtime_class()
        assert all(rc.handler for rc in classes.items)
        if "metrics.k8s.io" not in groups:
            pytest.skip("the cluster has no metrics API (metrics-server)")
        custom = client.CustomObjectsApi(api_client)
        metrics = await custom.get_namespaced_custom_object(
            "metrics.k8s.io", "v1beta1", k8s_api.namespace, "pods", running_pod
        )
    usage = metrics["containers"][0]["usage"]
    assert usage["memory"].endswith("Ki") and int(usage["memory"][:-2]) > 0


async def test_invalid_pod_is_422(core: client.CoreV1Api, k8s_api: K8sApi) -> None:
    bad = pod_manifest("Not_A_Name", ["true"])
    with pytest.raises(ApiException) as invalid:
        await core.create_namespaced_pod(k8s_api.namespace, bad)
    body = json.loads(invalid.value.body)
    assert invalid.value.status == 422 and body["reason"] == "Invalid" and "metadata.name" in body["message"]
    await asyncio.sleep(0)


# A length-prefixed echo inside the pod: each frame back reversed, until a zero-length frame.
FRAMED_ECHO = """
import struct, sys
i, o = sys.stdin.buffer, sys.stdout.buffer
while True:
    n = struct.unpack('>I', i.read(4))[0]
    if n == 0:
        break
    data = i.read(n)
    o.write(struct.pack('>I', n) + data[::-1]); o.flush()
"""


async def test_exec_is_a_long_lived_binary_conversation(k8s_api: K8sApi, running_pod: str) -> None:
    """What the kernel relay does over exec: request, wait for the answer, again, over one stream."""
    cfg = await configuration(k8s_api)
    async with WsApiClient(cfg) as ws_client:
        ws_ctx = await client.CoreV1Api(ws_client).connect_get_namespaced_pod_exec(
            running_pod,
            k8s_api.namespace,
            command=["python3", "-c", FRAMED_ECHO],
            stdin=True,
            stdout=True,
            stderr=True,
            tty=False,
            _preload_content=False,
            _headers={"sec-websocket-protocol": "v5.channel.k8s.io"},
        )
        async with ws_ctx as ws:
            buffered = b""
            for size in (1, 255, 4096, 70_000, 3, 200_000, 17):
                payload = secrets.token_bytes(size)
                await ws.send_bytes(bytes([STDIN]) + len(payload).to_bytes(4, "big") + payload)
                while len(buffered) < 4 or len(buffered) < 4 + int.from_bytes(buffered[:4], "big"):
                    msg = await asyncio.wait_for(ws.receive(), 60)
                    assert msg.data[0] == STDOUT, f"unexpected message on channel {msg.data[0]}: {msg.data[1:]!r}"
                    buffered += msg.data[1:]
                assert buffered == len(payload).to_bytes(4, "big") + payload[::-1]
                buffered = b""
            await ws.send_bytes(bytes([STDIN]) + (0).to_bytes(4, "big"))
            status = None
            async for msg in ws:
                if msg.data[0] == ERROR and msg.data[1:]:
                    status = json.loads(msg.data[1:])
    assert status == {"metadata": {}, "status": "Success"}


async def test_watch_from_a_list_resource_version(core: client.CoreV1Api, k8s_api: K8sApi) -> None:
    """List, then watch from the list's resourceVersion: only what changed after it arrives."""
    ns, name = k8s_api.namespace, f"rv-{secrets.token_hex(3)}"
    listed = await core.list_namespaced_pod(ns)
    await core.create_namespaced_pod(ns, pod_manifest(name, ["sleep", "infinity"], run=name))
    try:
        w = watch.Watch()
        seen = []
        async with w.stream(
            core.list_namespaced_pod,
            ns,
            label_selector=f"run={name}",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=60,
        ) as stream:
            async for event in stream:
                seen.append((event["type"], event["object"].metadata.name))
                if event["object"].status.phase == "Running":
                    break
        assert seen[0] == ("ADDED", name) and all(n == name for _, n in seen)
        assert ("MODIFIED", name) in seen
    finally:
        await core.delete_namespaced_pod(name, ns, grace_period_seconds=0)


async def test_exec_into_a_missing_or_stopped_pod_is_refused(k8s_api: K8sApi, core: client.CoreV1Api) -> None:
    ns, name = k8s_api.namespace, f"done-{secrets.token_hex(3)}"
    await core.create_namespaced_pod(ns, pod_manifest(name, ["true"]))
    try:
        await wait_phase(core, ns, name, {"Succeeded"})
        for pod, code in ((name, 400), ("no-such-pod", 404)):
            with pytest.raises(WSServerHandshakeError) as refused:
                await exec_ws(k8s_api, pod, ["true"], "v5.channel.k8s.io")
            assert refused.value.status == code
    finally:
        await core.delete_namespaced_pod(name, ns, grace_period_seconds=0)


async def test_run_as_root_under_run_as_non_root_never_starts(core: client.CoreV1Api, k8s_api: K8sApi) -> None:
    ns, name = k8s_api.namespace, f"root-{secrets.token_hex(3)}"
    manifest = pod_manifest(name, ["sleep", "infinity"])
    manifest["spec"]["containers"][0]["securityContext"]["runAsUser"] = 0
    await core.create_namespaced_pod(ns, manifest)
    try:
        for _ in range(60):
            pod = await core.read_namespaced_pod(name, ns)
            waiting = pod.status.container_statuses[0].state.waiting
            if waiting and waiting.reason != "ContainerCreating":
                break
            await asyncio.sleep(0.5)
        assert pod.status.phase == "Pending" and waiting.reason == "CreateContainerConfigError"
    finally:
        await core.delete_namespaced_pod(name, ns, grace_period_seconds=0)


async def test_unknown_runtime_class_is_rejected(core: client.CoreV1Api, k8s_api: K8sApi) -> None:
    manifest = pod_manifest(f"rc-{secrets.token_hex(3)}", ["true"])
    manifest["spec"]["runtimeClassName"] = "no-such-class"
    with pytest.raises(ApiException) as rejected:
        await core.create_namespaced_pod(k8s_api.namespace, manifest)
    assert rejected.value.status == 403 and "RuntimeClass" in json.loads(rejected.value.body)["message"]


async def test_exec_over_websocket_needs_get_and_create(k8s_api: K8sApi, running_pod: str) -> None:
    pods = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
    for verbs, allowed in ((["create"], False), (["get"], False), (["create", "get"], True)):
        with k8s_api.rules([pods, {"apiGroups": [""], "resources": ["pods/exec"], "verbs": verbs}]):
            if allowed:
                out, _, status = await exec_ws(k8s_api, running_pod, ["echo", "in"], "v5.channel.k8s.io")
                assert out == b"in\n" and status["status"] == "Success"
            else:
                with pytest.raises(WSServerHandshakeError) as refused:
                    await exec_ws(k8s_api, running_pod, ["echo", "in"], "v5.channel.k8s.io")
                assert refused.value.status == 403, verbs


async def test_watch_from_an_expired_resource_version_is_410(k8s_api: K8sApi, monkeypatch: pytest.MonkeyPatch) -> None:
    if k8s_api.server is None:
        pytest.skip("a real cluster's watch history cannot be shortened by a test")
    monkeypatch.setattr("k8s.store.HISTORY", 2)  # read by the server's thread at its next event
    base = f"{k8s_api.url}/apis/networking.k8s.io/v1/namespaces/{k8s_api.namespace}/networkpolicies"
    headers = {"Authorization": f"Bearer {k8s_api.token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        start = None
        for i in range(3):
            policy = {"metadata": {"name": f"short-{i}-{secrets.token_hex(2)}"}, "spec": {"podSelector": {}}}
            async with http.post(base, json=policy) as created:
                assert created.status == 201
                start = start or int((await created.json())["metadata"]["resourceVersion"])
            async with http.delete(f"{base}/{policy['metadata']['name']}") as deleted:
                assert (await deleted.json())["status"] == "Success"
        async with http.get(base, params={"watch": "true", "resourceVersion": str(start - 1)}) as watched:
            event = json.loads(await watched.content.readline())
        async with http.post(base, data=b"{not json") as bad:
            assert bad.status == 400 and (await bad.json())["reason"] == "BadRequest"
        async with http.get(f"{k8s_api.url}/apis/apps/v1/namespaces/{k8s_api.namespace}/deployments") as unknown:
            assert unknown.status == 404 and (await unknown.json())["kind"] == "Status"
    assert event["type"] == "ERROR" and event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"


async def test_dry_run_and_label_validation(core: client.CoreV1Api, k8s_api: K8sApi) -> None:
    ns, name = k8s_api.namespace, f"dry-{secrets.token_hex(3)}"
    checked = await core.create_namespaced_pod(ns, pod_manifest(name, ["sleep", "infinity"]), dry_run="All")
    assert checked.metadata.name == name
    with pytest.raises(ApiException) as absent:
        await core.read_namespaced_pod(name, ns)
    assert absent.value.status == 404
    with pytest.raises(ApiException) as bad:
        await core.create_namespaced_pod(ns, pod_manifest(name, ["true"], owner="alice@example.com"))
    assert bad.value.status == 422 and "metadata.labels" in json.loads(bad.value.body)["message"]


async def test_exec_ends_when_its_pod_is_deleted(core: client.CoreV1Api, k8s_api: K8sApi) -> None:
    ns, name = k8s_api.namespace, f"gone-{secrets.token_hex(3)}"
    await core.create_namespaced_pod(ns, pod_manifest(name, ["sleep", "infinity"]))
    await wait_phase(core, ns, name, {"Running"})
    exec_task = asyncio.ensure_future(exec_ws(k8s_api, name, ["sleep", "1000"], "v5.channel.k8s.io", stdin=b"x"))
    await asyncio.sleep(2)
    assert not exec_task.done()
    await core.delete_namespaced_pod(name, ns, grace_period_seconds=0)
    _, _, status = await asyncio.wait_for(exec_task, 60)
    assert status["status"] == "Failure"


async def test_gvisor_runtime_class_runs_the_pod_under_runsc(core: client.CoreV1Api, k8s_api: K8sApi) -> None:
    async with client.ApiClient(await configuration(k8s_api)) as api_client:
        classes = {rc.metadata.name for rc in (await client.NodeV1Api(api_client).list_runtime_class()).items}
    if "gvisor" not in classes:
        pytest.skip("no gvisor RuntimeClass (the Docker engine has no runsc runtime)")
    ns, name = k8s_api.namespace, f"gvisor-{secrets.token_hex(3)}"
    manifest = pod_manifest(name, ["sleep", "infinity"])
    manifest["spec"]["runtimeClassName"] = "gvisor"
    await core.create_namespaced_pod(ns, manifest)
    try:
        await wait_phase(core, ns, name, {"Running"})
        out, _, status = await exec_ws(k8s_api, name, ["dmesg"], "v5.channel.k8s.io")
        assert b"gVisor" in out and status["status"] == "Success"  # runsc's own kernel log
    finally:
        await core.delete_namespaced_pod(name, ns, grace_period_seconds=0)


async def test_exec_without_a_served_channel_protocol_is_400(k8s_api: K8sApi, running_pod: str) -> None:
    if k8s_api.server is None:
        pytest.skip("a real API server also serves the older channel protocols")
    for offered in ("v3.channel.k8s.io", "v4.base64.channel.k8s.io"):
        with pytest.raises(WSServerHandshakeError) as refused:
            await exec_ws(k8s_api, running_pod, ["true"], offered)
        assert refused.value.status == 400
    out, _, _ = await exec_ws(k8s_api, running_pod, ["echo", "ok"], "v3.channel.k8s.io, v4.channel.k8s.io")
    assert out == b"ok\n"


async def test_log_follow_streams_until_the_container_stops(core: client.CoreV1Api, k8s_api: K8sApi) -> None:
    ns, name = k8s_api.namespace, f"follow-{secrets.token_hex(3)}"
    await core.create_namespaced_pod(ns, pod_manifest(name, ["sh", "-c", "echo first; sleep 2; echo second"]))
    try:
        await wait_phase(core, ns, name, {"Running", "Succeeded"})
        response = await core.read_namespaced_pod_log(name, ns, follow=True, _preload_content=False)
        text = (await asyncio.wait_for(response.read(), 60)).decode()
        assert text == "first\nsecond\n"
    finally:
        await core.delete_namespaced_pod(name, ns, grace_period_seconds=0)


async def test_concurrent_execs_keep_their_streams_apart(k8s_api: K8sApi, running_pod: str) -> None:
    payloads = [secrets.token_bytes(50_000 + i) for i in range(8)]
    results = await asyncio.gather(
        *(exec_ws(k8s_api, running_pod, ["cat"], "v5.channel.k8s.io", stdin=p, close_stdin=True) for p in payloads)
    )
    assert [out for out, _, _ in results] == payloads
    assert all(status["status"] == "Success" for _, _, status in results)


async def test_exec_with_a_tty_is_one_stream_resized_by_channel_4(k8s_api: K8sApi, running_pod: str) -> None:
    """tty=true: a terminal (stdout only, stderr folded in), sized by resize messages, in order with stdin."""
    cfg = await configuration(k8s_api)
    async with WsApiClient(cfg) as ws_client:
        ws_ctx = await client.CoreV1Api(ws_client).connect_get_namespaced_pod_exec(
            running_pod,
            k8s_api.namespace,
            command=["sh", "-c", "read a; stty size; echo oops >&2; read b; stty size"],
            stdin=True,
            stdout=True,
            tty=True,
            _preload_content=False,
            _headers={"sec-websocket-protocol": "v5.channel.k8s.io"},
        )
        channels, out, status = set(), b"", None
        async with ws_ctx as ws:

            async def until(text: bytes) -> None:
                nonlocal out, status
                async with asyncio.timeout(60):
                    while text not in out.replace(b"\r", b""):
                        msg = await ws.receive()
                        if msg.type != aiohttp.WSMsgType.BINARY:
                            return
                        channel, payload = msg.data[0], msg.data[1:]
                        if channel == ERROR and payload:
                            status = json.loads(payload)
                        elif payload:
                            channels.add(channel)
                            out += payload

            for rows, cols, line, printed in ((24, 80, b"x", b"24 80\noops\n"), (50, 132, b"y", b"50 132\n")):
                # the size first, then the line the command waits for before it prints its size
                await ws.send_bytes(bytes([RESIZE]) + json.dumps({"Width": cols, "Height": rows}).encode())
                await ws.send_bytes(bytes([STDIN]) + line + b"\r")
                await until(printed)
            await until(b"\0")  # (never printed: read to the end, the Status)
    text = out.decode().replace("\r", "")
    assert text == "x\n24 80\noops\ny\n50 132\n"
    assert channels == {STDOUT} and status == {"metadata": {}, "status": "Success"}
