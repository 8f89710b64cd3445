"""Hub mode (issue 20): a single-user server that reaches sandboxes only through the sandbox service.

Two real `jupyter server` processes: A, a server on the Docker backend with its own token, stands
in for the service; B is in Hub mode (``c.SandboxApp.service_url`` = A, ``service_token`` = A's
token), with its own token, JupyterHub's user in its environment (``JUPYTERHUB_USER=alice``,
users told apart by HeaderUsers) and no Docker engine it could reach (``DOCKER_HOST`` points
nowhere). Everything below goes through B with B's token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time

import httpx
import pytest
from jupyter_server.serverapp import _has_tornado_web_authenticated
from test_magics import run_cell
from tornado import web
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.websocket import websocket_connect

from jupyter_sandbox.backends.base import LABEL_PREFIX
from jupyter_sandbox.server import (
    admin,
    command_routes,
    events,
    handlers,
    keys,
    oneshot,
    pause_routes,
    service_proxy,
    terminal_proxy,
    terminal_ws,
    volume_routes,
)

from servers import JupyterServer, free_port, result_text

NO_ENGINE = "unix:///nonexistent/docker.sock"


@pytest.fixture(scope="module")
def service_a(docker_ready, tmp_path_factory):
    with JupyterServer(tmp_path_factory.mktemp("service-a")) as a:
        yield a


def hub_mode_server(home, service_url: str, service_token: str) -> JupyterServer:
    return JupyterServer(
        home,
        users=True,
        config={"SandboxApp": {"service_url": service_url, "service_token": service_token}},
        env={"JUPYTERHUB_USER": "alice", "JUPYTERHUB_SERVER_NAME": "", "DOCKER_HOST": NO_ENGINE},
    )


@pytest.fixture(scope="module")
def server_b(service_a, tmp_path_factory):
    with hub_mode_server(tmp_path_factory.mktemp("server-b"), service_a.url, service_a.token) as b:
        assert b.token != service_a.token
        yield b


def create(server: JupyterServer, name: str, **body) -> dict:
    r = server.api("POST", "sandboxes", json={"name": name, **body})
    assert r.status_code == 201, r.text
    return r.json()


def stream_execute(server: JupyterServer, sandbox: str, code: str):
    """The events of an execution, each as it arrives."""
    with httpx.stream(
        "POST",
        f"{server.url}sandbox/api/sandboxes/{sandbox}/execute",
        json={"code": code},
        headers={"Authorization": f"token {server.token}"},
        timeout=180,
    ) as r:
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/x-ndjson", r.read()
        for line in r.iter_lines():
            if line.strip():
                yield json.loads(line)


def test_rest_through_the_service(service_a, server_b):
    b = server_b
    config = b.api("GET", "config")
    assert config.status_code == 200, config.text
    assert config.json()["mode"] == "hub" and config.json()["backend"] == "docker"
    assert service_a.api("GET", "config").json()["mode"] == "server"

    r = b.api("POST", "sandboxes", json={"name": "via-b"})
    assert r.status_code == 201, r.text
    sandbox = r.json()
    assert r.headers["Location"] == f"/sandbox/api/sandboxes/{sandbox['id']}"
    # it lives in the service: A knows it (B's token is not A's: B sent A's)
    assert service_a.api("GET", "sandboxes/via-b").json()["id"] == sandbox["id"]
    try:
        assert [m["name"] for m in b.api("GET", "sandboxes").json()] == ["via-b"]
        assert result_text(b.execute("via-b", "6 * 7")) == "42"

        # a binary file of a few MB, up and down
        blob = os.urandom(3 * 1024 * 1024 + 17)
        put = b.api("PUT", "sandboxes/via-b/files", params={"path": "data/blob.bin"}, content=blob)
        assert put.status_code == 204, put.text
        got = b.api("GET", "sandboxes/via-b/files", params={"path": "data/blob.bin", "type": "file"})
        assert got.status_code == 200 and got.headers["Content-Type"] == "application/octet-stream"
        assert got.content == blob
        listing = b.api("GET", "sandboxes/via-b/files", params={"path": "data"}).json()
        assert [(e["name"], e["size"]) for e in listing] == [("blob.bin", len(blob))]

        logs = b.api("GET", "sandboxes/via-b/logs")
        assert logs.status_code == 200 and "contexts" in logs.json()
        stats = b.api("GET", "sandboxes/via-b/stats")
        assert stats.status_code == 200 and "memory" in json.dumps(stats.json())

        # a 4xx of the service arrives as it was sent
        mine, direct = b.api("GET", "sandboxes/no-such-sandbox"), service_a.api("GET", "sandboxes/no-such-sandbox")
        assert mine.status_code == direct.status_code == 404
        assert mine.json() == direct.json() and "no-such-sandbox" in mine.json()["message"]
        bad = b.api("POST", "sandboxes/via-b/execute", json={"code": 5})
        assert (
            bad.status_code == 400
            and bad.json() == service_a.api("POST", "sandboxes/via-b/execute", json={"code": 5}).json()
        )
        # a method the extension does not offer there: this server's own 405
        assert b.api("PUT", "sandboxes/via-b/logs").status_code == 405
    finally:
        assert b.api("DELETE", "sandboxes/via-b").status_code == 204
    assert b.api("GET", "sandboxes/via-b").status_code == 404
    assert service_a.api("GET", "sandboxes/via-b").status_code == 404


def test_an_execution_streams_line_by_line_and_interrupts(server_b):
    b = server_b
    create(b, "streams")
    try:
        code = "import time\nprint('first', flush=True)\ntime.sleep(3)\nprint('last', flush=True)"
        arrivals = {}
        for event in stream_execute(b, "streams", code):
            if event.get("type") == "stdout":
                arrivals[event["text"].strip()] = time.monotonic()
        assert arrivals["last"] - arrivals["first"] >= 2, arrivals  # the first line came while the code slept

        # interrupt: an execution that would run for minutes ends with KeyboardInterrupt
        started, events = threading.Event(), []

        def run() -> None:
            code = "import time\nprint('started', flush=True)\ntime.sleep(300)"
            for event in stream_execute(b, "streams", code):
                events.append(event)
                if event.get("type") == "stdout" and "started" in event["text"]:
                    started.set()

        runner = threading.Thread(target=run)
        runner.start()
        assert started.wait(60), events
        assert b.api("POST", "sandboxes/streams/interrupt").status_code == 204
        runner.join(120)
        assert not runner.is_alive()
        assert any(e.get("type") == "error" and e.get("name") == "KeyboardInterrupt" for e in events), events
    finally:
        assert b.api("DELETE", "sandboxes/streams").status_code == 204


def test_a_caller_that_leaves_stops_its_execution_in_the_service(server_b):
    """The caller's connection to B closes mid-execution: B closes its request to the service at the
    service's next line (a keepalive at the latest, 15 s), which interrupts the code, as for any
    client that leaves. The context is then free again for the next execution."""
    b = server_b
    create(b, "left")
    try:
        for event in stream_execute(b, "left", "import time\nprint('sleeping', flush=True)\ntime.sleep(600)"):
            if event.get("type") == "stdout":
                break  # leaves: the stream's connection closes here
        started = time.monotonic()
        assert result_text(b.execute("left", "'free'")) == "'free'"
        assert time.monotonic() - started < 120  # not after the 600 s of the abandoned execution
    finally:
        assert b.api("DELETE", "sandboxes/left").status_code == 204


async def test_events_websocket_through_the_service(server_b):
    b = server_b
    url = b.url.replace("http", "ws", 1) + "sandbox/api/events"
    ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {b.token}"}))
    try:
        sandbox = await asyncio.to_thread(create, b, "evented")
        await asyncio.to_thread(b.api, "DELETE", "sandboxes/evented")
        seen = []
        while "removed" not in seen:
            message = await asyncio.wait_for(ws.read_message(), 60)
            assert message is not None, "the events socket closed"
            event = json.loads(message)
            if event.get("sandbox_id") == sandbox["id"]:
                seen.append(event["action"])
        assert seen[0] == "created", seen
        # the interrupt of one of B's notebook kernels (which only B sees) reaches the same socket
        r = await asyncio.to_thread(b.request, "POST", "api/kernels", json={"name": "python3"})
        assert r.status_code == 201, r.text
        kernel_id = r.json()["id"]
        try:
            r = await asyncio.to_thread(b.request, "POST", f"api/kernels/{kernel_id}/interrupt")
            assert r.status_code == 204, r.text
            while (event := json.loads(await asyncio.wait_for(ws.read_message(), 60))).get("action") != (
                "kernel_interrupted"
            ):
                pass
            assert event["kernel_id"] == kernel_id
        finally:
            await asyncio.to_thread(b.request, "DELETE", f"api/kernels/{kernel_id}")
    finally:
        ws.close()


def test_one_shot_eval_through_the_service(server_b):
    r = server_b.api("POST", "v1/eval", json={"code": "x = 5\nx * 2"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed" and r.json()["result"] == "10"
    assert server_b.request("GET", "sandbox/health").json()["status"] == "ok"


async def test_a_guest_of_the_server_is_refused(server_b):
    """JupyterHub sharing: bob authenticated on alice's server makes no sandbox through it."""
    r = await asyncio.to_thread(server_b.api, "GET", "sandboxes", user="bob")
    assert r.status_code == 403 and "your own server" in r.json()["message"]
    r = await asyncio.to_thread(server_b.api, "POST", "sandboxes", user="bob", json={"name": "bobs"})
    assert r.status_code == 403 and "your own server" in r.json()["message"]
    url = server_b.url.replace("http", "ws", 1) + "sandbox/api/events"
    headers = {"Authorization": f"token {server_b.token}", "X-Test-User": "bob"}
    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(HTTPRequest(url, headers=headers))
    assert refused.value.code == 403
    # what bob could not make does not exist in the service
    assert "bobs" not in [m["name"] for m in (await asyncio.to_thread(server_b.api, "GET", "sandboxes")).json()]


@contextlib.contextmanager
def server_kernel(server: JupyterServer):
    """A notebook kernel started by the server (as JupyterLab starts one) and a client on its
    connection file; shut down through the server's API at the end."""
    from jupyter_client import BlockingKernelClient

    r = server.request("POST", "api/kernels", json={"name": "python3"})
    assert r.status_code == 201, r.text
    kernel_id = r.json()["id"]
    kc = BlockingKernelClient()
    kc.load_connection_file(str(server.runtime_dir / f"kernel-{kernel_id}.json"))
    # before start_channels: the heartbeat's first wait already uses it (a kernel still starting on a
    # loaded 2-core machine misses jupyter_client's default of one second, and is called dead)
    kc.hb_channel.time_to_dead = 10.0
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=90)
        yield kernel_id, kc
    finally:
        kc.stop_channels()
        server.request("DELETE", f"api/kernels/{kernel_id}")


def test_the_sandbox_magic_in_a_kernel_of_the_hub_mode_server(service_a, server_b):
    with server_kernel(server_b) as (kernel_id, kc):
        config = run_cell(kc, "%load_ext jupyter_sandbox\n%sandbox config")
        assert f"server: {server_b.url}" in config, config
        assert "the answer is 42" in run_cell(kc, "%%sandbox on-hub\nprint('the answer is', 6 * 7)")
        # the kernel's own sandbox: tied to the kernel by B (the service cannot see B's kernels)
        run_cell(kc, "%%sandbox\nx = 1")
        default = f"notebook-{kernel_id[:12]}"
        assert service_a.api("GET", f"sandboxes/{default}").status_code == 200
        # a kernel that is not B's (or not the caller's) is refused by B, as without a Hub
        r = server_b.api("POST", "sandboxes", json={"name": "tied", "kernel_id": "not-a-kernel"})
        assert r.status_code == 400 and r.json()["field"] == "kernel_id", r.text
        r = server_b.request("DELETE", f"api/kernels/{kernel_id}")
        assert r.status_code == 204, r.text
    # B removed the kernel's sandbox in the service when the kernel shut down; the named one stays
    deadline = time.monotonic() + 60
    while service_a.api("GET", f"sandboxes/{default}").status_code != 404:
        assert time.monotonic() < deadline, "the kernel's sandbox outlived the kernel"
        time.sleep(0.5)
    assert service_a.api("GET", "sandboxes/on-hub").status_code == 200
    assert server_b.api("DELETE", "sandboxes/on-hub").status_code == 204


def test_the_hub_mode_server_made_no_container(service_a, server_b):
    """B claimed no server id at all (it has no engine to claim one for), and the container of a
    sandbox made through B is A's."""
    import docker

    a_id = re.search(r"jupyter-sandbox: server id (\S+)", service_a.log(tail=10**6)).group(1)
    sandbox = create(server_b, "counted")
    try:
        client = docker.from_env()
        found = client.containers.list(all=True, filters={"label": [f"{LABEL_PREFIX}.sandbox={sandbox['id']}"]})
        client.close()
        assert [c.labels[f"{LABEL_PREFIX}.server"] for c in found] == [a_id]
        assert not (server_b.data_dir / "jupyter_sandbox").exists()
    finally:
        assert server_b.api("DELETE", "sandboxes/counted").status_code == 204
    assert "Hub mode" in server_b.log(tail=10**6)


def test_an_unreachable_service_is_a_502_naming_it(tmp_path):
    """The service stopped (nothing listens on its port): B says so, with the URL and the cause."""
    dead = f"http://127.0.0.1:{free_port()}/services/sandbox/"
    with hub_mode_server(tmp_path / "b-alone", dead, "some-token") as b:
        r = b.api("GET", "sandboxes")
        assert r.status_code == 502, r.text
        assert dead in r.json()["message"] and "refused" in r.json()["message"].lower()
        r = b.api("PUT", "sandboxes/x/files", params={"path": "a.bin"}, content=b"\0" * 100_000)
        assert r.status_code == 502, r.text
        assert dead in b.log(tail=10**6)


def test_the_client_finds_the_hub_mode_server_from_jupyterhubs_environment(server_b, monkeypatch):
    """What a user's kernel or terminal has under JupyterHub: the server's prefix, URL and token."""
    from jupyter_sandbox.client import Sandbox
    from jupyter_sandbox.client.discovery import find_server

    for name in ("JUPYTER_SANDBOX_URL", "JUPYTER_SANDBOX_TOKEN", "JPY_PARENT_PID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", server_b.token)
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", f"http://0.0.0.0:{server_b.port}/")
    choice = find_server()
    assert (choice.url, choice.token) == (server_b.url, server_b.token)
    stdout = []
    with Sandbox("from-the-client") as sandbox:
        execution = sandbox.run_code("print('hi from', 'the service')\n21 * 2", on_stdout=stdout.append)
        assert execution.text == "42" and [m.line for m in stdout] == ["hi from the service\n"]
    assert server_b.api("GET", "sandboxes/from-the-client").status_code == 404


def test_the_clients_commands_and_watch_through_the_service(server_b):
    """Commands (streamed, background, killed) and a directory watch pass the Hub mode server's proxy."""
    from jupyter_sandbox.client import CommandExitException, FilesystemEventType, Sandbox

    with Sandbox("commands-via-hub", server_url=server_b.url, token=server_b.token) as sandbox:
        lines = []
        result = sandbox.commands.run("echo one; sleep 1; echo two", on_stdout=lines.append)
        assert result.stdout == "one\ntwo\n" and "".join(lines) == "one\ntwo\n"
        sleeper = sandbox.commands.run("sleep 120", background=True)
        assert sleeper.pid in [p.pid for p in sandbox.commands.list()]
        assert sleeper.kill() is True
        with pytest.raises(CommandExitException):
            sleeper.wait()
        seen = []
        watch = sandbox.files.watch_dir(".", on_event=seen.append)
        try:
            sandbox.commands.run("touch seen.txt")
            deadline = time.monotonic() + 20
            while not any(e.name == "seen.txt" for e in seen) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            watch.stop()
        assert any(e.name == "seen.txt" and e.type is FilesystemEventType.CREATE for e in seen)


def doctor(env: dict[str, str]) -> subprocess.CompletedProcess:
    environ = {**os.environ, "DOCKER_HOST": NO_ENGINE, **env}
    return subprocess.run(
        [sys.executable, "-m", "jupyter_sandbox.cli", "doctor"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_doctor_says_hub_mode_first_and_skips_docker(service_a):
    answer = doctor({"JUPYTER_SANDBOX_SERVICE_URL": service_a.url, "JUPYTERHUB_API_TOKEN": service_a.token})
    first, *rest = answer.stdout.splitlines()
    assert first.startswith("ok") and f"Hub service at {service_a.url} (JUPYTER_SANDBOX_SERVICE_URL)" in first
    assert "answers (backend docker" in first, answer.stdout
    assert any("Docker engine" in line and "not checked: in Hub mode" in line for line in rest), answer.stdout
    # this machine has no engine for the doctor (DOCKER_HOST points nowhere): in Hub mode no problem
    assert answer.returncode == 0, answer.stdout

    answer = doctor({"JUPYTER_SANDBOX_SERVICE_URL": service_a.url, "JUPYTERHUB_API_TOKEN": "wrong"})
    first = answer.stdout.splitlines()[0]
    assert first.startswith("FAIL") and "answers 403" in first and answer.returncode == 1, answer.stdout


def test_hub_mode_serves_the_extensions_routes_each_authenticated_and_authorized():
    """The same templates and methods as the extension (E2B aside), every verb behind @web.authenticated
    and jupyter_server's @authorized, with the "execute" action where the extension's own asks for it."""
    own = {
        (template, verb)
        for template, handler in [
            *handlers.ROUTES,
            *command_routes.ROUTES,
            *volume_routes.ROUTES,
            *keys.ROUTES,
            *admin.ROUTES,
            *events.ROUTES,
            *oneshot.ROUTES,
            *pause_routes.ROUTES,
            *terminal_ws.ROUTES,
        ]
        for verb in ("get", "post", "put", "delete", "patch")
        if getattr(handler, verb) is not getattr(web.RequestHandler, verb)
    }
    proxied = set()
    for template, handler in service_proxy.ROUTES:
        verbs = (
            [m.lower() for m in handler.SUPPORTED_METHODS]
            if handler is not service_proxy.EventsProxyHandler
            else ["get"]
        )
        for verb in verbs:
            proxied.add((template, verb))
            method = getattr(handler, verb)
            if handler is service_proxy.EventsProxyHandler:  # jupyter_server's ws_authenticated, then @authorized
                assert method.__code__.co_filename.endswith("auth/decorator.py")
            else:
                assert _has_tornado_web_authenticated(method), (template, verb)
            assert method.__wrapped__.__code__.co_filename.endswith("auth/decorator.py"), (template, verb)
            assert handler.auth_resource == "sandboxes"
    for template, handler in terminal_proxy.ROUTES:  # a websocket relayed to the service's terminal
        proxied.add((template, "get"))
        assert handler.get.__code__.co_qualname.startswith("ws_authenticated"), template
        assert handler.get.__wrapped__.__code__.co_filename.endswith("auth/decorator.py"), template
        assert handler.auth_resource == "sandboxes"
    assert proxied == own
    executing = {t for t, h in service_proxy.ROUTES if issubclass(h, service_proxy.ExecutingProxyHandler)}
    own_executing = {t for t, h in [*handlers.ROUTES, *command_routes.ROUTES] if h in service_proxy.EXECUTING}
    assert executing == own_executing and len(executing) == 7


# -- in process: the settings of a Hub mode server, and a service that breaks off --------------


class BreaksOff(web.RequestHandler):
    """A "service" whose connections close: before any answer, or in the middle of a download; and
    that says which headers reached it (``GET .../logs``)."""

    async def get(self, *args: str) -> None:
        if self.request.path.endswith("/logs"):  # what reached the service, said back
            self.finish({"headers": dict(self.request.headers), "path": self.request.path})
            return
        if self.request.path.endswith("/files"):
            self.set_header("Content-Type", "application/octet-stream")
            self.write(b"x" * 100_000)
            await self.flush()
        self.request.connection.stream.close()


@pytest.fixture
async def breaking_service():
    port = free_port()
    server = HTTPServer(web.Application([(r"/.*", BreaksOff)]))
    server.listen(port, "127.0.0.1")
    yield f"http://127.0.0.1:{port}/"
    server.stop()


@pytest.fixture
def jp_server_config(monkeypatch, breaking_service):
    from servers import server_config

    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    monkeypatch.setenv("JUPYTERHUB_SERVER_NAME", "second")  # a named server of alice's
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    return server_config(SandboxApp={"service_url": breaking_service, "service_token": "a-token"})


async def test_a_hub_mode_server_has_no_manager(jp_serverapp, jp_fetch):
    settings = jp_serverapp.web_app.settings
    assert settings["sandbox_manager"] is None and settings["sandbox_executions"] is None
    assert settings["sandbox_service"].hub_user == "alice"
    (app,) = jp_serverapp.extension_manager.extension_apps["jupyter_sandbox"]
    assert app.hub_mode
    # no E2B routes: the service serves them behind Hub auth
    assert not [pattern for pattern, _ in app.handlers if "e2b" in pattern]
    # the service closed the connection without an answer: 502
    with pytest.raises(HTTPClientError) as answer:
        await jp_fetch("sandbox", "api", "sandboxes")
    assert answer.value.code == 502
    assert "did not answer" in json.loads(answer.value.response.body)["message"]


async def test_a_download_the_service_breaks_off_does_not_look_complete(jp_serverapp, jp_fetch):
    with pytest.raises(HTTPClientError) as answer:
        await jp_fetch("sandbox", "api", "sandboxes", "s", "files", params={"path": "big.bin"})
    assert answer.value.code == 599  # the connection closed unfinished, not a 200 with part of the file


async def test_the_callers_credentials_never_reach_the_service(jp_fetch, jp_base_url):
    r = await jp_fetch(
        "sandbox",
        "api",
        "sandboxes",
        "s",
        "logs",
        headers={
            "Cookie": "session=secret",
            "Origin": "http://elsewhere",
            "X-Other": "1",
            "Accept": "application/json",
        },
    )
    seen = json.loads(r.body)
    assert seen["path"] == "/sandbox/api/sandboxes/s/logs"
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert headers["authorization"] == "token a-token"  # the server's token, not the caller's
    assert headers["x-jupyter-sandbox-server"] == "second" and headers["accept"] == "application/json"
    assert not {"cookie", "origin", "x-other", "referer"} & set(headers)
