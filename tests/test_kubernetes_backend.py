"""What the kubernetes backend does beyond the contract suite (tests/test_contract.py runs that on it
too): a restarted server takes its pods back with their kernels' variables, a kernel out of memory
says so, the pod is made as kubernetes_pods.py says, and every call it makes is one the Role grants.
Against the k8s_api fixture: the test API server (real Docker containers), or $KUBECONFIG's cluster."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest
import yaml

from jupyter_sandbox.backends import kubernetes_api
from jupyter_sandbox.backends.base import LABEL_PREFIX, labels
from jupyter_sandbox.backends.kubernetes_files import quantity
from jupyter_sandbox.backends.kubernetes_pods import pod_name, sandbox_network_policy
from jupyter_sandbox.core.state import SandboxRecords
from jupyter_sandbox.errors import BackendUnavailable, KernelDied, NotFound
from jupyter_sandbox.models import SandboxSpec

from conftest import SESSION_SERVER_ID, make_manager

OWNER = "carol"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def kubernetes(k8s_api, request):
    """make_manager's settings for the kubernetes backend (as backend_name sets them)."""
    from conftest import KUBERNETES

    KUBERNETES.update(kubeconfig=k8s_api.kubeconfig, namespace=k8s_api.namespace)
    return k8s_api


def role_rules() -> list[dict[str, list[str]]]:
    """The rules of the Role shipped in deploy/kubernetes/rbac.yaml (tests/test_k8s_manifests.py checks
    that it grants exactly API_CALLS)."""
    documents = yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "rbac.yaml").read_text())
    (role,) = [d for d in documents if d and d.get("kind") == "Role"]
    rules: list[dict[str, list[str]]] = role["rules"]
    return rules


async def test_a_restarted_server_takes_its_pods_back_with_their_variables(kubernetes, tmp_path):
    server_id = SESSION_SERVER_ID + "-k8s-adopt"
    records = SandboxRecords(str(tmp_path / "records"))
    first = make_manager("kubernetes", server_id=server_id, reap_on_start=False)
    first.records = records
    model = await first.create(OWNER)
    assert (await first.execute(OWNER, model.id, "kept = 41")).error is None
    await first.backend.close()  # the server "crashes": its relays go, the pod and kernel stay

    second = make_manager("kubernetes", server_id=server_id, pool_size=0)  # a new backend instance
    second.records = records
    try:
        found = await second.backend.list_existing({f"{LABEL_PREFIX}.server": server_id})
        assert [f[f"{LABEL_PREFIX}.sandbox"] for f in found] == [model.id]
        assert found[0][f"{LABEL_PREFIX}.owner"] == OWNER
        await second.start()
        assert second.get(OWNER, model.id).status == "running"
        assert (await second.execute(OWNER, model.id, "kept + 1")).text == "42"
        await second.restart(OWNER, model.id)  # its new pod keeps the labels: still this server's
        found = await second.backend.list_existing({f"{LABEL_PREFIX}.server": server_id})
        assert [f[f"{LABEL_PREFIX}.owner"] for f in found] == [OWNER]
    finally:
        await second.shutdown()
    assert await second.backend.list_existing({f"{LABEL_PREFIX}.server": server_id}) == []


async def test_a_kernel_out_of_memory_says_so(kubernetes):
    manager = make_manager("kubernetes", reap_on_start=False)
    try:
        model = await manager.create(OWNER, spec={"memory": "128M", "disk": "16M"})
        code = "x = bytearray(400 * 1024 * 1024)"  # more than the whole pod holds
        try:
            execution = await manager.execute(OWNER, model.id, code)
            assert execution.error is not None
            text = f"{execution.error.name}: {execution.error.value}"
        except KernelDied as e:
            text = str(e)
        assert "out of memory" in text, text
        # the sandbox goes on: a fresh kernel answers
        await manager.restart_context(OWNER, model.id)
        assert (await manager.execute(OWNER, model.id, "1 + 1")).text == "2"
    finally:
        await manager.shutdown()


async def test_the_pod_is_made_as_its_manifest_says(kubernetes):
    manager = make_manager("kubernetes", reap_on_start=False)
    backend = manager.backend
    try:
        model = await manager.create(OWNER, spec={"memory": "256M", "cpus": 0.5})
        pod = await backend.pods.get(model.id)
        assert pod["metadata"]["name"] == pod_name(model.id)
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["automountServiceAccountToken"] is False
        limits = spec["containers"][0]["resources"]["limits"]
        assert quantity(limits["memory"]) == backend.memory_limit(model.spec)  # a cluster may write it "1152Mi"
        assert spec["containers"][0]["resources"]["requests"] == limits
        code = "import os; print(os.getuid(), os.getgid()); open('/etc/x', 'w')"
        execution = await manager.execute(OWNER, model.id, code)
        assert execution.logs.stdout == ["1000 1000\n"]
        assert execution.error is not None and execution.error.name == "OSError"  # read-only root
    finally:
        await manager.shutdown()


async def test_every_call_is_one_the_role_grants(kubernetes):
    manager = make_manager("kubernetes", reap_on_start=False)
    first = len(kubernetes.requests)  # the record is the session's: this test's calls come after
    with kubernetes.rules(role_rules()):
        try:
            model = await manager.create(OWNER)
            await manager.write_file(OWNER, model.id, "f.txt", b"x")
            assert await manager.read_file(OWNER, model.id, "f.txt") == b"x"
            assert (await manager.execute(OWNER, model.id, "print('hi')")).logs.stdout == ["hi\n"]
            await manager.stats(OWNER, model.id)
            await manager.backend.logs(model.id, [])
            await manager.restart(OWNER, model.id)
            await manager.backend.list_existing({})
        finally:
            await manager.shutdown()
    made = kubernetes.requests[first:]
    assert {(r["resource"], r["subresource"]) for r in made} >= {("pods", ""), ("pods", "exec"), ("pods", "log")}
    assert [r for r in made if r.get("status") == 403] == []
    # and the rules bite: without pods/exec, a kernel cannot start
    rules = [r for r in role_rules() if r["resources"] != ["pods/exec"]]
    assert len(rules) == len(role_rules()) - 1
    manager = make_manager("kubernetes", reap_on_start=False)
    with kubernetes.rules(rules):
        try:
            with pytest.raises(BackendUnavailable):
                await manager.create(OWNER)
        finally:
            await manager.shutdown()


async def test_an_image_that_cannot_run_is_refused_and_leaves_no_pod(kubernetes):
    manager = make_manager("kubernetes", reap_on_start=False, allowed_images=["jupyter-sandbox:no-such-tag"])
    try:
        with pytest.raises(Exception) as info:
            await asyncio.wait_for(manager.create(OWNER, spec={"image": "jupyter-sandbox:no-such-tag"}), 120)
        assert "image" in str(info.value)
        assert [f for f in await manager.backend.list_existing({f"{LABEL_PREFIX}.owner": OWNER})] == []
    finally:
        await manager.shutdown()


@pytest.mark.parametrize("protocols", [("v4.channel.k8s.io",), kubernetes_api.PROTOCOLS], ids=["v4", "v5"])
async def test_kernels_and_files_work_over_either_channel_protocol(kubernetes, monkeypatch, protocols):
    monkeypatch.setattr(kubernetes_api, "PROTOCOLS", protocols)
    manager = make_manager("kubernetes", reap_on_start=False)
    chosen = []
    opened = manager.backend.api.exec_websocket

    async def recording(*args, **kwargs):
        ws = await opened(*args, **kwargs)
        chosen.append(ws.protocol)
        return ws

    manager.backend.api.exec_websocket = recording
    try:
        model = await manager.create(OWNER)
        data = bytes(range(256)) * 4096  # 1 MiB: several websocket messages
        await manager.write_file(OWNER, model.id, "blob.bin", data)
        assert await manager.read_file(OWNER, model.id, "blob.bin") == data
        execution = await manager.execute(OWNER, model.id, "len(open('blob.bin', 'rb').read())")
        assert execution.text == str(len(data))
    finally:
        await manager.shutdown()
    assert chosen and set(chosen) == {protocols[0]}


async def test_restart_gives_a_fresh_pod_and_stats_come_from_inside_without_metrics(kubernetes):
    manager = make_manager("kubernetes", reap_on_start=False)
    backend = manager.backend
    try:
        model = await manager.create(OWNER)
        before = (await backend.pods.get(model.id))["metadata"]["uid"]
        await manager.write_file(OWNER, model.id, "old.txt", b"x")
        await manager.restart(OWNER, model.id)
        assert (await backend.pods.get(model.id))["metadata"]["uid"] != before
        assert "old.txt" not in {e["name"] for e in await manager.list_files(OWNER, model.id, ".")}
        assert (await manager.execute(OWNER, model.id, "21 * 2")).text == "42"

        backend.files._metrics = False  # as on a cluster without the metrics API
        await manager.execute(OWNER, model.id, "hold = bytearray(64 * 1024 * 1024)")
        stats = await manager.stats(OWNER, model.id)
        assert stats["memory_limit"] == backend.memory_limit(model.spec)
        assert 64 * 1024 * 1024 < stats["memory_used"] < stats["memory_limit"]
        assert stats["pids"] >= 3  # PID 1, the launcher, the kernel
    finally:
        await manager.shutdown()


async def test_a_pod_deleted_outside_the_server_is_told(kubernetes):
    manager = make_manager("kubernetes", reap_on_start=False)
    try:
        model = await manager.create(OWNER)
        ((_, kernel_id),) = [k for k in manager.backend.kernels._relays if k[0] == model.id]  # its one kernel
        await manager.backend.pods.delete(model.id)  # as `kubectl delete pod` would
        reason = None
        for _ in range(200):
            reason = await manager.backend.kernel_exit_reason(model.id, kernel_id)
            if reason and "stream" not in reason:
                break
            await asyncio.sleep(0.1)
        assert reason is not None and "deleted" in reason, reason
    finally:
        await manager.shutdown()


async def test_a_leftover_network_policy_of_the_same_name_is_replaced(kubernetes):
    manager = make_manager("kubernetes", reap_on_start=False)
    backend = manager.backend
    sandbox_id = "leftover" + secrets.token_hex(4)
    stale = sandbox_network_policy(sandbox_id, SandboxSpec(network=True), backend.pod_settings())
    await backend.api.request("POST", backend.pods._policies, stale)
    try:
        await backend.create(sandbox_id, SandboxSpec(), labels(SESSION_SERVER_ID, OWNER, sandbox=sandbox_id))
        policy = await backend.api.request("GET", f"{backend.pods._policies}/{pod_name(sandbox_id)}")
        assert policy["spec"]["egress"] == []  # the sandbox's own (no network), not the stale one's
    finally:
        await backend.remove(sandbox_id)
        await manager.shutdown()


async def test_a_spec_asking_for_gvisor_runs_under_its_runtime_class(kubernetes, request):
    if kubernetes.server is not None:
        request.getfixturevalue("runsc_ready")  # the test API server's gvisor RuntimeClass is the engine's runsc
    manager = make_manager("kubernetes", reap_on_start=False)
    try:
        model = await manager.create(OWNER, spec={"runtime": "runsc"})
        assert (await manager.backend.pods.get(model.id))["spec"]["runtimeClassName"] == "gvisor"
        # gVisor's own kernel answers inside (dmesg is its, not the host's)
        code = "import subprocess; print(subprocess.run(['dmesg'], capture_output=True, text=True).stdout[:200])"
        execution = await manager.execute(OWNER, model.id, code)
        assert "gVisor" in "".join(execution.logs.stdout), execution
    finally:
        await manager.shutdown()


# how many `sleep 300`/`sleep 301` run in the pod (no ps in the image: their /proc cmdlines)
LIVE_SLEEPS = "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done 2>/dev/null | grep -c '^sleep 30[01] $'"


async def _collect(stream, timeout: float = 60) -> tuple[bytes, int | None]:
    out = b""
    async with asyncio.timeout(timeout):
        async for event in stream:
            if event.kind == "exit":
                return out, event.exit_code
            out += event.data
    return out, None


@pytest.mark.parametrize("protocols", [("v4.channel.k8s.io",), kubernetes_api.PROTOCOLS], ids=["v4", "v5"])
async def test_commands_and_the_filesystem_over_either_channel_protocol(kubernetes, monkeypatch, protocols):
    """The process and filesystem services over pods/exec: stdin, a signal to the process group, stat,
    tree, mkdir, move and a watch; closing stdin needs v5 (v4 cannot say it: a clear 503)."""
    monkeypatch.setattr(kubernetes_api, "PROTOCOLS", protocols)
    manager = make_manager("kubernetes", reap_on_start=False)
    backend = manager.backend
    try:
        sid = (await manager.create(OWNER)).id
        cat = await backend.exec_stream(sid, ["sh", "-c", "id -u; head -n1; echo after"], stdin=True)
        await cat.write(b"typed\n")
        out, code = await _collect(cat)
        assert out == f"{backend.uid}\ntyped\nafter\n".encode() and code == 0

        sleeper = await backend.exec_stream(sid, ["sh", "-c", "sleep 300 & sleep 301; wait"], stdin=True)
        assert [s.pid for s in backend.exec_streams(sid)] == [sleeper.pid]
        if protocols[0] == "v4.channel.k8s.io":
            with pytest.raises(BackendUnavailable, match=r"v5\.channel\.k8s\.io"):
                await sleeper.close_stdin()
        else:
            await sleeper.close_stdin()
        running, _ = await _collect(await backend.exec_stream(sid, ["sh", "-c", LIVE_SLEEPS]))
        assert running.strip() == b"2"
        await sleeper.signal(9)
        assert (await _collect(sleeper))[1] == -9
        ps, _ = await _collect(await backend.exec_stream(sid, ["sh", "-c", LIVE_SLEEPS]))
        assert ps.strip() == b"0"  # the whole group went

        assert (await backend.make_dir(sid, "a/b"))["type"] == "dir"
        await backend.write_file(sid, "a/b/f.txt", b"hello")
        watch = await backend.watch_dir(sid, "a", recursive=True)
        try:
            moved = await backend.move_file(sid, "a/b/f.txt", "a/g.txt")
            assert moved["path"] == "/home/user/a/g.txt" and moved["size"] == 5
            seen: set[tuple[str, str]] = set()
            async with asyncio.timeout(60):
                while ("g.txt", "create") not in seen and ("g.txt", "rename") not in seen:
                    seen.update((await watch.next()).changes)
        finally:
            await watch.close()
        assert (await backend.stat_file(sid, "a/g.txt"))["type"] == "file"
        assert sorted(e["path"] for e in await backend.list_tree(sid, "a", 2)) == [
            "/home/user/a/b",
            "/home/user/a/g.txt",
        ]
        with pytest.raises(NotFound):
            await backend.stat_file(sid, "a/b/f.txt")
    finally:
        await manager.shutdown()
