"""The egress allow-list end to end (issue 23): a real server on Docker (runc), a sandbox with
``network: {allow, deny}`` behind its own proxy, names served by test HTTP(S) servers on this host
that the proxy resolves through its test-only mapping (DockerBackend.egress_test_hosts). The
proxies reach those servers over Docker's default bridge (egress_network="bridge"): the fenced
jupyter-sandbox network would drop their packets to this host, as it should."""

from __future__ import annotations

import json
import subprocess

import docker
import pytest
from egress_servers import FETCH, OTHER_SNI, hello_servers, proxy_hosts
from test_handlers import API, body_of, fetch, run

from jupyter_sandbox.backends.docker_egress import bridge_name, egress_name

ALLOW_LIST = {"allow": ["allowed.test", "*.allowed.test"], "deny": ["denied.test"]}


@pytest.fixture(scope="module")
def gateway(docker_ready) -> str:
    client = docker.from_env()
    try:
        return client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]
    finally:
        client.close()


@pytest.fixture(scope="module")
def hellos(gateway, tmp_path_factory):
    with hello_servers(gateway, tmp_path_factory.mktemp("tls")) as ports:
        yield ports


@pytest.fixture
def jp_server_config(jp_server_config, docker_ready, gateway, hellos):
    jp_server_config["SandboxManager"]["allow_network"] = True
    jp_server_config["DockerBackend"].update(egress_network="bridge", egress_test_hosts=proxy_hosts(gateway, *hellos))
    return jp_server_config


def engine_has(kind: str, name: str) -> bool:
    client = docker.from_env()
    try:
        getattr(client, kind).get(name)
        return True
    except docker.errors.NotFound:
        return False
    finally:
        client.close()


async def test_a_sandbox_reaches_allowed_names_only(jp_fetch, gateway, hellos):
    http_port, https_port = hellos
    r = await fetch(jp_fetch, *API, method="POST", body=json.dumps({"network": ALLOW_LIST}))
    assert r.code == 201, r.body
    model = body_of(r)
    sid = model["id"]
    assert model["spec"]["network"] is True and model["spec"]["egress"] == ALLOW_LIST
    try:
        assert (await run(jp_fetch, sid, FETCH + OTHER_SNI + "'defined'")).text == "'defined'"

        async def outcome(call: str) -> str:
            text = (await run(jp_fetch, sid, call)).text
            assert text, call
            return text.strip("'\"")

        # allowed names, plain HTTP and HTTPS through CONNECT, with the name they were asked by
        assert await outcome("fetch('http://allowed.test/a')") == f"ok hello from {http_port}: Host=allowed.test"
        assert await outcome("fetch('https://allowed.test/a')") == f"ok hello from {https_port}: Host=allowed.test"
        assert (await outcome("fetch('https://sub.allowed.test/')")).startswith("ok hello")
        # a denied name, an unlisted one, and the test servers' own address, through the proxy
        for url in (
            "http://denied.test/",
            "https://denied.test/",
            "https://unlisted.test/",
            f"http://{gateway}:{http_port}/",
            f"https://{gateway}:{https_port}/",
        ):
            assert (await outcome(f"fetch({url!r})")).startswith("refused"), url
        # CONNECT to an allowed name whose TLS ClientHello names another host
        proxy = "__import__('os').environ['HTTPS_PROXY'].rsplit('/', 1)[1].split(':')"
        sni = f"other_sni({proxy}[0], int({proxy}[1]), 'allowed.test', 'denied.test')"
        assert (await outcome(sni)).startswith("refused"), sni
        # no way around the proxy: no route to any address, the host's included, and no DNS
        direct = (
            "import socket\ndef direct(host, port):\n    try:\n"
            "        socket.create_connection((host, port), timeout=5).close(); return 'connected'\n"
            "    except OSError as e:\n        return 'refused ' + type(e).__name__\n"
        )
        await run(jp_fetch, sid, direct)
        internal_gateway = f"{proxy}[0].rsplit('.', 1)[0] + '.1'"
        for host, port in ((f"{gateway!r}", http_port), ("'1.1.1.1'", 443), (internal_gateway, http_port)):
            assert (await outcome(f"direct({host}, {port})")).startswith("refused"), host
        for port in (22, 8888, 2375):
            assert (await outcome(f"direct({internal_gateway}, {port})")).startswith("refused")
        lookup = "try:\n    socket.gethostbyname('allowed.test'); r = 'resolved'\nexcept OSError:\n    r = 'no dns'\nr"
        assert await outcome(lookup) == "no dns"
        # the host has no address on the sandbox's network: nothing of it listens there
        shown = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "dev", bridge_name(sid)], capture_output=True, text=True
        )
        assert shown.returncode == 0 and "inet" not in shown.stdout, shown
        # the denials are in the sandbox's logs
        logs = body_of(await fetch(jp_fetch, *API, sid, "logs"))["container"]
        assert "egress denied CONNECT denied.test:443" in logs and "in the deny list" in logs
        assert "egress denied CONNECT unlisted.test:443" in logs and "not in the allow list" in logs
        assert f"egress denied CONNECT {gateway}:{https_port}" in logs and "raw IP" in logs
        assert "egress denied CONNECT allowed.test:443" in logs and "ClientHello names denied.test" in logs
    finally:
        assert (await fetch(jp_fetch, *API, sid, method="DELETE")).code == 204
    # its proxy and network go with it
    assert not engine_has("containers", egress_name(sid)) and not engine_has("networks", egress_name(sid))


async def test_allow_lists_are_checked(jp_fetch):
    async def refused(network, **more) -> dict:
        r = await fetch(jp_fetch, *API, method="POST", body=json.dumps({"network": network, **more}))
        assert r.code == 400, r.body
        return body_of(r)

    assert "IP addresses are never allowed" in (await refused({"allow": ["10.0.0.1"]}))["message"]
    assert (await refused({"allow": ["http://pypi.org"]}))["field"] == "network.allow"
    assert (await refused({"allow": "pypi.org"}))["field"] == "network.allow"
    assert (await refused(["pypi.org"]))["field"] == "network"
    assert (await refused({"allow": ["pypi.org"], "block": []}))["field"] == "network.block"
    # gVisor here has no network at all: an allow-list is refused there, said plainly
    assert "runsc" in (await refused({"allow": ["pypi.org"]}, runtime="runsc"))["message"]


async def test_pip_installs_through_an_allowed_index(jp_fetch):
    """pip honours the sandbox's HTTPS_PROXY: an index at an allowed name (HTTPS, through CONNECT;
    --trusted-host for the test server's self-signed certificate) installs; the same index at a name
    outside the allow-list does not."""
    r = await fetch(jp_fetch, *API, method="POST", body=json.dumps({"network": ALLOW_LIST}))
    assert r.code == 201, r.body
    sid = body_of(r)["id"]
    try:
        pip = (
            "import subprocess, sys\ndef pip(name):\n"
            "    return subprocess.run([sys.executable, '-m', 'pip', 'install', '--target', '/home/user/pkgs', '--no-cache-dir',"
            " '--retries', '0', '--timeout', '10', '--index-url', f'https://{name}/simple/', '--trusted-host', name,"
            " 'jsbx-demo'], capture_output=True, text=True)\n"
        )
        await run(jp_fetch, sid, pip)
        denied = await run(
            jp_fetch, sid, "p = pip('unlisted.test'); (p.returncode, 'No matching distribution' in p.stderr)"
        )
        assert denied.text == "(1, True)", denied  # (the proxy's refusal is in the logs, below)
        installed = await run(jp_fetch, sid, "p = pip('allowed.test'); p.returncode and p.stdout + p.stderr")
        assert installed.text == "0", installed
        assert (
            await run(
                jp_fetch,
                sid,
                "sys.path.append('/home/user/pkgs'); import jsbx_demo; jsbx_demo.ANSWER",
            )
        ).text == "42"
        logs = body_of(await fetch(jp_fetch, *API, sid, "logs"))["container"]
        assert "egress denied CONNECT unlisted.test:443" in logs
    finally:
        assert (await fetch(jp_fetch, *API, sid, method="DELETE")).code == 204


def test_e2b_network_rules_are_the_allow_list(gateway, hellos, tmp_path, monkeypatch):
    """E2B's SDK, unchanged: ``network={"allow_out": [...], "deny_out": [ALL_TRAFFIC]}`` is an allow-list."""
    from e2b import ALL_TRAFFIC
    from e2b_code_interpreter import Sandbox

    from servers import JupyterServer

    config = {
        "SandboxManager": {"allow_network": True},
        "DockerBackend": {"egress_network": "bridge", "egress_test_hosts": proxy_hosts(gateway, *hellos)},
    }
    with JupyterServer(tmp_path / "e2b", config=config) as server:
        key = server.api("POST", "keys", json={"name": "egress"}).json()["key"]
        monkeypatch.delenv("E2B_DEBUG", raising=False)
        monkeypatch.setenv("E2B_API_URL", server.url + "sandbox/e2b/api")
        monkeypatch.setenv("E2B_SANDBOX_URL", server.url + "sandbox/e2b/plane")
        monkeypatch.setenv("E2B_API_KEY", key)
        sandbox = Sandbox.create(network={"allow_out": ["allowed.test"], "deny_out": [ALL_TRAFFIC]}, timeout=120)
        try:
            sandbox.run_code(FETCH)
            assert sandbox.run_code("fetch('http://allowed.test/')").text.startswith("ok hello")
            assert sandbox.run_code("fetch('https://unlisted.test/')").text.startswith("refused")
            spec = server.api("GET", f"sandboxes/{sandbox.sandbox_id}").json()["spec"]
            assert spec["egress"] == {"allow": ["allowed.test"], "deny": []}
        finally:
            sandbox.kill()
