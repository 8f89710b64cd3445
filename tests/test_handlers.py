"""The REST API through a real Jupyter server (pytest-jupyter) on the Docker backend:
lifecycle, contexts, files, authentication and ownership, bad input, Docker down,
shutdown, and the OpenAPI file kept true to the registered handlers."""

from __future__ import annotations

import dataclasses
import json
import re
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
import yaml
from jupyter_server.serverapp import _has_tornado_web_authenticated
from tornado import web, websocket

import jupyter_sandbox
from jupyter_sandbox import models
from jupyter_sandbox.backends.base import LABEL_PREFIX
from jupyter_sandbox.models import STATUSES
from jupyter_sandbox.oneshot.records import ExecutionRecord
from jupyter_sandbox.server import (
    admin,
    command_routes,
    e2b,
    e2b_api,
    e2b_plane,
    e2b_volumes,
    handlers,
    kernel_ws,
    keys,
    oneshot,
    pause_routes,
    terminal_ws,
    volume_routes,
)
from jupyter_sandbox.server.e2b import E2BMixin

from servers import TwoUsers

ROUTES = [
    *handlers.ROUTES,
    *command_routes.ROUTES,
    *volume_routes.ROUTES,
    *keys.ROUTES,
    *admin.ROUTES,
    *kernel_ws.ROUTES,
    *terminal_ws.ROUTES,
    *e2b.ROUTES,
    *oneshot.ROUTES,
    *pause_routes.ROUTES,
]

API = ("sandbox", "api", "sandboxes")
BOB = {"Authorization": "token bob-token"}
MAX_BODY = 64 * 1024
MAX_CODE = 1024


@pytest.fixture
def server_overrides():
    return {}


@pytest.fixture
def jp_server_config(jp_server_config, docker_ready, server_overrides):
    config = jp_server_config
    config["ServerApp"]["identity_provider_class"] = TwoUsers
    config["SandboxApp"].update(max_body_size=MAX_BODY, max_code_size=MAX_CODE)
    config["SandboxManager"]["max_sandboxes_per_user"] = 2
    config["SandboxManager"]["max_memory"] = "4G"
    for section, values in server_overrides.items():
        config.setdefault(section, {}).update(values)
    return config


async def fetch(jp_fetch, *parts, **kwargs):
    """jp_fetch that returns error responses instead of raising them."""
    kwargs.setdefault("request_timeout", 120)
    kwargs.setdefault("raise_error", False)
    return await jp_fetch(*parts, **kwargs)


def body_of(response):
    return json.loads(response.body)


async def create_sandbox(jp_fetch, headers=None, **body) -> dict:
    r = await fetch(jp_fetch, *API, method="POST", body=json.dumps(body), headers=headers)
    assert r.code == 201, r.body
    return body_of(r)


async def run(jp_fetch, sandbox_id, code, headers=None):
    r = await fetch(
        jp_fetch, *API, sandbox_id, "execute", method="POST", body=json.dumps({"code": code}), headers=headers
    )
    assert r.code == 200, r.body
    execution = jupyter_sandbox.Execution()
    for line in r.body.decode().splitlines():
        execution.apply_event(json.loads(line))
    return execution


def containers_of(sandbox_id: str) -> list:
    import docker

    client = docker.from_env()
    try:
        return client.containers.list(all=True, filters={"label": f"{LABEL_PREFIX}.sandbox={sandbox_id}"})
    finally:
        client.close()


async def test_sandbox_lifecycle_contexts_and_files(jp_fetch, jp_base_url):
    r = await fetch(jp_fetch, *API, method="POST", body=json.dumps({"name": "first", "memory": "256M", "cpus": 0.5}))
    assert r.code == 201
    model = body_of(r)
    sid = model["id"]
    assert r.headers["Location"] == f"{jp_base_url}sandbox/api/sandboxes/{sid}"
    assert (model["name"], model["owner"], model["status"], model["backend"]) == ("first", "alice", "running", "docker")
    assert model["spec"]["memory"] == 256 * 1024**2 and model["spec"]["cpus"] == 0.5
    assert len(model["contexts"]) == 1 and model["isolation"]
    assert len(containers_of(sid)) == 1

    listed = body_of(await fetch(jp_fetch, *API))
    assert [m["id"] for m in listed] == [sid]
    assert body_of(await fetch(jp_fetch, *API, "first"))["id"] == sid  # by name too

    stats = body_of(await fetch(jp_fetch, *API, sid, "stats"))
    assert set(stats) >= {"cpu_percent", "memory_used", "memory_limit", "pids"}
    # memory asked for + the working directory (default 512M) + /tmp (128M): both tmpfs, held in memory
    assert stats["memory_limit"] == (256 + 512 + 128) * 1024**2 and 0 < stats["memory_used"] < stats["memory_limit"]

    # Contexts, E2B's shapes.
    # python's, and E2B's default contexts of the image's other languages (their kernels start on first use)
    contexts = body_of(await fetch(jp_fetch, *API, sid, "contexts"))
    assert all(set(c) == {"id", "language", "cwd"} for c in contexts)
    assert [c["language"] for c in contexts].count("python") == 1
    r = await fetch(jp_fetch, *API, sid, "contexts", method="POST", body=json.dumps({"language": "python"}))
    assert r.code == 201
    context = body_of(r)
    assert context["language"] == "python" and context["cwd"] == "/home/user"
    r = await fetch(jp_fetch, *API, sid, "contexts", context["id"], "restart", method="POST", body="")
    assert r.code == 200 and body_of(r)["id"] == context["id"]
    r = await fetch(jp_fetch, *API, sid, "contexts", context["id"], method="DELETE")
    assert r.code == 204
    assert [c["id"] for c in body_of(await fetch(jp_fetch, *API, sid, "contexts"))] == [c["id"] for c in contexts]

    # Files: upload raw bytes, download them, list, remove.
    payload = bytes(range(256)) * 10
    r = await fetch(jp_fetch, *API, sid, "files", method="PUT", params={"path": "data/blob.bin"}, body=payload)
    assert r.code == 204
    r = await fetch(jp_fetch, *API, sid, "files", params={"path": "data/blob.bin"})
    assert r.code == 200 and r.body == payload and r.headers["Content-Type"] == "application/octet-stream"
    entries = body_of(await fetch(jp_fetch, *API, sid, "files", params={"path": "data"}))
    assert [(e["name"], e["path"], e["type"], e["size"]) for e in entries] == [
        ("blob.bin", "/home/user/data/blob.bin", "file", len(payload))
    ]
    assert "data" in [e["name"] for e in body_of(await fetch(jp_fetch, *API, sid, "files"))]
    assert (await run(jp_fetch, sid, "len(open('data/blob.bin', 'rb').read())")).text == str(len(payload))
    r = await fetch(jp_fetch, *API, sid, "files", method="DELETE", params={"path": "data/blob.bin"})
    assert r.code == 204
    assert (await fetch(jp_fetch, *API, sid, "files", params={"path": "data/blob.bin"})).code == 404

    # Interrupt (nothing running: still 204), restart (state gone), delete.
    r = await fetch(jp_fetch, *API, sid, "interrupt", method="POST", body="")
    assert r.code == 204
    await run(jp_fetch, sid, "before_restart = 1")
    r = await fetch(jp_fetch, *API, sid, "restart", method="POST", body="")
    assert r.code == 200 and body_of(r)["status"] == "running" and body_of(r)["id"] == sid
    assert (await run(jp_fetch, sid, "'before_restart' in globals()")).text == "False"
    r = await fetch(jp_fetch, *API, sid, method="DELETE")
    assert r.code == 204
    assert (await fetch(jp_fetch, *API, sid)).code == 404
    assert body_of(await fetch(jp_fetch, *API)) == []
    assert containers_of(sid) == []


async def test_authentication_ownership_and_xsrf(jp_fetch):
    sandbox = await create_sandbox(jp_fetch)
    sid = sandbox["id"]

    # No token, or a wrong one: 403 on every route, saying so (not "'_xsrf' argument missing").
    for headers in ({"Authorization": ""}, {"Authorization": "token wrong"}):
        answers = [
            await fetch(jp_fetch, *API, headers=headers),
            await fetch(jp_fetch, *API, method="POST", body="{}", headers=headers),
            await fetch(jp_fetch, *API, sid, "execute", method="POST", body='{"code": "1"}', headers=headers),
            await fetch(jp_fetch, *API, sid, "files", headers=headers),
        ]
        for r in answers:
            assert r.code == 403 and body_of(r)["message"].startswith("not authenticated: "), (r.code, r.body)

    # Another user: the sandbox does not exist for them (404), by id or by name.
    assert body_of(await fetch(jp_fetch, *API, headers=BOB)) == []
    for method, parts, body in [
        ("GET", (sid,), None),
        ("GET", (sandbox["name"],), None),
        ("DELETE", (sid,), None),
        ("POST", (sid, "restart"), ""),
        ("POST", (sid, "interrupt"), ""),
        ("GET", (sid, "stats"), None),
        ("GET", (sid, "contexts"), None),
        ("POST", (sid, "contexts"), "{}"),
        ("POST", (sid, "execute"), '{"code": "1"}'),
        ("GET", (sid, "files"), None),
    ]:
        r = await fetch(jp_fetch, *API, *parts, method=method, body=body, headers=BOB)
        assert r.code == 404, (method, parts, r.code)
        assert body_of(r)["message"] == f"no sandbox {parts[0]!r}"
    # Bob's own sandbox lives beside it; alice still has hers.
    bobs = await create_sandbox(jp_fetch, headers=BOB)
    assert bobs["owner"] == "bob"
    assert [m["id"] for m in body_of(await fetch(jp_fetch, *API))] == [sid]
    assert (await run(jp_fetch, sid, "6 * 7")).text == "42"

    # Cookie authentication: a POST without the XSRF token is refused ...
    r = await fetch(jp_fetch, *API)
    login = SimpleCookie()
    for header in r.headers.get_list("Set-Cookie"):
        login.load(header)
    assert login, "token authentication set the login cookie"
    cookie = "; ".join(f"{k}={v.value}" for k, v in login.items())
    cookie_only = {"Authorization": "", "Cookie": cookie}
    assert (await fetch(jp_fetch, *API, headers=cookie_only)).code == 200  # GET needs no XSRF token
    r = await fetch(jp_fetch, *API, sid, "interrupt", method="POST", body="", headers=cookie_only)
    assert r.code == 403 and "_xsrf" in body_of(r)["message"]
    r = await fetch(jp_fetch, *API, method="POST", body="{}", headers=cookie_only)
    assert r.code == 403
    # ... and accepted with it (so the 403 above was the XSRF check).
    with_xsrf = {"Authorization": "", "Cookie": cookie + "; _xsrf=abc123", "X-XSRFToken": "abc123"}
    r = await fetch(jp_fetch, *API, sid, "interrupt", method="POST", body="", headers=with_xsrf)
    assert r.code == 204
    assert len(body_of(await fetch(jp_fetch, *API))) == 1


async def test_quota_per_user(jp_fetch):
    await create_sandbox(jp_fetch)
    await create_sandbox(jp_fetch)
    r = await fetch(jp_fetch, *API, method="POST", body="{}")
    assert r.code == 429
    error = body_of(r)
    assert error["reason"] == "Too Many Requests" and "remove one first" in error["message"]
    # The quota is per user: bob may still create one.
    assert (await create_sandbox(jp_fetch, headers=BOB))["owner"] == "bob"


async def test_bad_inputs_get_4xx_with_a_message(jp_fetch):
    sid = (await create_sandbox(jp_fetch))["id"]
    x = "execute"
    cases = [
        # (method, path after sandboxes/, query, body, status, field or None, words in the message)
        ("POST", (), None, "{not json", 400, "body", "not valid JSON"),
        ("POST", (), None, "[1, 2]", 400, "body", "JSON object"),
        ("POST", (), None, '{"memory": "lots"}', 400, "memory", "size such as 512M"),
        ("POST", (), None, '{"memory": "64G"}', 400, "memory", "above this server's maximum of 4G"),
        ("POST", (), None, '{"cpus": "two"}', 400, "cpus", "must be a number"),
        ("POST", (), None, '{"cpus": 16}', 400, "cpus", "maximum"),
        ("POST", (), None, '{"pids": 1}', 400, "pids", "at least"),
        ("POST", (), None, '{"network": "yes"}', 400, "network", "true or false"),
        ("POST", (), None, '{"image": "evil:latest"}', 400, "image", "not allowed"),
        ("POST", (), None, '{"name": "no spaces!"}', 400, "name", "letters, digits"),
        ("POST", (), None, '{"env": {"A": 1}}', 400, "env", "strings"),
        ("POST", (), None, '{"colour": "red"}', 400, "colour", "unknown field"),
        ("POST", (), None, '{"kernel_id": "not-a-kernel"}', 400, "kernel_id", "not a running kernel of this server"),
        ("POST", (), None, '{"kernel_id": 7}', 400, "kernel_id", "must be a string"),
        ("POST", (), None, '{"cpus": NaN}', 400, "cpus", "must be a number"),
        ("POST", (), None, '{"memory": 1e30}', 400, "memory", "larger than any machine"),
        ("POST", (), None, '{"pids": 1e400}', 400, "pids", "must be an integer"),
        ("POST", (), None, "[" * 30000 + "]" * 30000, 400, "body", "nested too deeply"),
        ("POST", (), None, json.dumps({"name": sid}), 409, "name", f"already have a sandbox named {sid!r}"),
        ("POST", (), None, json.dumps({"metadata": {"k": "v" * MAX_BODY}}), 413, None, f"over {MAX_BODY} bytes"),
        ("GET", ("sbx_nope",), None, None, 404, None, "no sandbox 'sbx_nope'"),
        ("DELETE", ("sbx_nope",), None, None, 404, None, "no sandbox"),
        ("POST", ("sbx_nope", x), None, '{"code": "1"}', 404, None, "no sandbox"),
        ("POST", (sid, x), None, "{}", 400, "code", "code is required"),
        ("POST", (sid, x), None, '{"code": 5}', 400, "code", "must be a string"),
        ("POST", (sid, x), None, '{"code": "1", "timeout": "soon"}', 400, "timeout", "must be a number"),
        ("POST", (sid, x), None, '{"code": "1", "timeout": -1}', 400, "timeout", "positive number"),
        ("POST", (sid, x), None, '{"code": "1", "env_vars": {"A": 1}}', 400, "env_vars", "strings"),
        ("POST", (sid, x), None, '{"code": "1", "language": "cobol"}', 400, "language", "not available"),
        ("POST", (sid, x), None, '{"code": "1", "contextId": "c"}', 400, "contextId", "unknown field"),
        ("POST", (sid, x), None, '{"code": "1", "context_id": "ctx_nope"}', 404, None, "no context 'ctx_nope'"),
        ("POST", (sid, x), None, json.dumps({"code": "#" * (MAX_CODE + 1)}), 413, "code", f"over {MAX_CODE} bytes"),
        ("POST", (sid, "contexts"), None, '{"language": "cobol"}', 400, "language", "not available"),
        ("POST", (sid, "contexts"), None, '{"cwd": "../.."}', 400, "path", "outside the sandbox"),
        ("POST", (sid, "contexts"), None, '{"cwd": 7}', 400, "cwd", "must be a string"),
        ("DELETE", (sid, "contexts", "ctx_nope"), None, None, 404, None, "no context"),
        ("POST", (sid, "contexts", "ctx_nope", "restart"), None, "", 404, None, "no context"),
        ("POST", (sid, "interrupt"), None, '{"context_id": 3}', 400, "context_id", "must be a string"),
        ("GET", (sid, "files"), {"path": "../../etc/passwd"}, None, 400, "path", "outside the sandbox"),
        ("GET", (sid, "files"), {"path": "/etc/passwd"}, None, 400, "path", "outside the sandbox"),
        ("GET", (sid, "files"), {"path": "missing.txt"}, None, 404, None, "missing.txt"),
        ("PUT", (sid, "files"), None, b"data", 400, "path", "'path' is required"),
        ("PUT", (sid, "files"), {"path": "../escape.txt"}, b"data", 400, "path", "outside the sandbox"),
        ("PUT", (sid, "files"), {"path": "big.bin"}, b"\0" * (MAX_BODY + 1), 413, None, f"limit of {MAX_BODY} bytes"),
        ("DELETE", (sid, "files"), {"path": "missing.txt"}, None, 404, None, "missing.txt"),
        ("DELETE", (sid, "files"), {"path": "."}, None, 400, "path", "working directory"),
    ]
    for method, parts, query, body, status, field, words in cases:
        r = await fetch(jp_fetch, *API, *parts, method=method, params=query, body=body)
        case = (method, parts, query, body if not body or len(body) < 80 else "<big>")
        assert r.code == status, (case, r.code, r.body)
        error = body_of(r)
        assert words in error["message"], (case, error)
        assert error["reason"], (case, error)
        assert error.get("field") == field, (case, error)
    # The server still answers, and the sandbox still works.
    assert len(body_of(await fetch(jp_fetch, *API))) == 1
    assert (await run(jp_fetch, sid, "1 + 1")).text == "2"


@pytest.mark.parametrize("server_overrides", [{"SandboxApp": {"public_url": "https://hub.example.org/"}}])
async def test_e2b_url_uses_the_configured_public_url(jp_fetch):
    r = await fetch(jp_fetch, *API, method="POST", body="{}")
    model = body_of(r)
    assert model["e2b_url"].startswith(f"https://hub.example.org/a%40b/sandbox/e2b/{model['id']}/"), model["e2b_url"]
    assert body_of(await fetch(jp_fetch, *API, model["id"]))["e2b_url"] == model["e2b_url"]
    assert (await fetch(jp_fetch, *API, model["id"], method="DELETE")).code == 204


@pytest.mark.parametrize("server_overrides", [{"DockerBackend": {"docker_url": "tcp://127.0.0.1:9"}}])
async def test_docker_unreachable_gives_503_with_a_hint(jp_fetch):
    r = await fetch(jp_fetch, *API, method="POST", body="{}")
    assert r.code == 503
    error = body_of(r)
    assert error["reason"] == "Service Unavailable"
    assert "Docker engine not reachable" in error["message"]
    assert "scripts/setup-docker.sh" in error["message"] and "c.SandboxApp.backend = 'local'" in error["message"]
    assert body_of(await fetch(jp_fetch, *API)) == []  # the rest of the API still answers


async def test_server_shutdown_removes_its_sandboxes(jp_fetch, jp_serverapp):
    ids = [(await create_sandbox(jp_fetch))["id"], (await create_sandbox(jp_fetch, headers=BOB))["id"]]
    assert all(len(containers_of(i)) == 1 for i in ids)
    await jp_serverapp.cleanup_extensions()  # what the server runs when it shuts down
    assert [containers_of(i) for i in ids] == [[], []]


async def test_nobody_is_a_sandbox_admin_in_a_plain_server(jp_fetch):
    """The admin routes answer only identities that say so (the Hub service's admin scope)."""
    mine = await create_sandbox(jp_fetch)
    for headers in (None, BOB):
        r = await fetch(jp_fetch, "sandbox", "api", "admin", "sandboxes", headers=headers)
        assert r.code == 403, r.body
        r = await fetch(jp_fetch, "sandbox", "api", "admin", "sandboxes", mine["id"], method="DELETE", headers=headers)
        assert r.code == 403, r.body
    assert body_of(await fetch(jp_fetch, *API, mine["id"]))["status"] == "running"


def test_every_handler_is_authenticated_and_authorized():
    """Jupyter API: @web.authenticated + @authorized. E2B routes: the path's secret instead."""
    checked = 0
    for template, handler in ROUTES:
        for verb in ("get", "post", "put", "delete", "patch"):
            method = getattr(handler, verb)
            if method is getattr(web.RequestHandler, verb):
                continue
            checked += 1
            if issubclass(handler, E2BMixin):
                assert getattr(method, "__allow_unauthenticated", False), (template, verb)
                continue
            if issubclass(handler, websocket.WebSocketHandler):  # 403 rather than a login redirect
                assert method.__code__.co_qualname.startswith("ws_authenticated"), (template, verb)
            else:
                assert _has_tornado_web_authenticated(method), (template, verb)
            # (functools.wraps copies names; the code object tells whose wrapper it is)
            assert method.__wrapped__.__code__.co_filename.endswith("auth/decorator.py"), (template, verb)
            assert handler.auth_resource == "sandboxes"
    # 26, + config and logs (GET), + a context's input (POST), + sandbox/health (GET), + admin's GET and
    # DELETE, + the notebook kernel routes (POST kernels; GET, DELETE kernel; POST kernel/restart; GET channels),
    # + the API keys (GET, POST keys; DELETE key), + commands (GET, POST commands; GET, DELETE a command; POST
    # its stdin), watch (GET), files/info (GET), files/dir and files/move (POST), timeout (POST), + terminal (GET),
    # + pause, resume, fork, a sandbox's snapshots (POST), snapshots (GET), a snapshot (GET, DELETE)
    # + volumes (GET, POST volumes; GET, DELETE a volume)
    assert checked == 62


def test_e2b_api_and_plane_authenticate_in_prepare():
    """E2B's lifecycle API and data plane: the explicit alternative (docs/e2b.md). Every verb is
    open to jupyter_server (the SDK sends no Jupyter credentials) and the handler's prepare, which
    runs first, authenticates by API key, access token or login (401 without)."""
    checked = 0
    for routes, base in (
        (e2b_api.ROUTES, e2b_api.E2BApiHandler),
        (e2b_volumes.ROUTES, e2b_api.E2BApiHandler),
        (e2b_plane.routes(), e2b_plane.E2BPlaneMixin),
    ):
        for template, handler in routes:
            assert issubclass(handler, base), template
            for verb in ("get", "post", "put", "delete", "patch"):
                method = getattr(handler, verb)
                if method is not getattr(web.RequestHandler, verb):
                    checked += 1
                    assert getattr(method, "__allow_unauthenticated", False), (template, verb)
    assert checked >= 20


def test_openapi_describes_every_route_and_method():
    spec = yaml.safe_load((Path(jupyter_sandbox.__file__).parent / "server" / "openapi.yaml").read_text())
    assert spec["openapi"].startswith("3.")
    documented = {
        (path, verb)
        for path, item in spec["paths"].items()
        for verb in item
        if verb in ("get", "post", "put", "delete", "patch")
    }
    registered = set()
    for template, handler in ROUTES:
        for verb in ("get", "post", "put", "delete", "patch"):
            if getattr(handler, verb) is not getattr(web.RequestHandler, verb):
                registered.add((template, verb))
    assert any(t.startswith("/sandbox/api/v1/") for t, _ in registered)
    assert documented == registered

    def resolve(node):
        if "$ref" in node:
            *_, section, name = node["$ref"].split("/")
            return spec["components"][section][name]
        return node

    # Every path parameter is declared, every operation says what it answers.
    for path, item in spec["paths"].items():
        params = [resolve(p) for p in item.get("parameters", [])]
        names = {p["name"] for p in params if p["in"] == "path"}
        assert names == set(re.findall(r"\{(\w+)\}", path)), path
        for verb, operation in item.items():
            if verb == "parameters":
                continue
            assert operation.get("responses") and operation.get("summary"), (path, verb)

    # ExecutionResult says exactly what ExecutionRecord.to_dict() answers: every key (the
    # error_type/error_line pair only after a traceback) and, as required, those always there.
    schema = spec["components"]["schemas"]["ExecutionResult"]
    plain = ExecutionRecord(
        id="exe_1", owner="alice", job=None, status="completed", started=1.0, finished=2.5, exit_code=0
    ).to_dict()
    traceback = ExecutionRecord(
        id="exe_2",
        owner="alice",
        job=None,
        status="completed",
        started=1.0,
        finished=2.0,
        exit_code=1,
        error_type="NameError",
        error_line=1,
    ).to_dict()
    assert set(schema["properties"]) == set(traceback)
    assert set(schema["required"]) == set(plain) == set(traceback) - {"error_type", "error_line"}
    assert resolve(schema["properties"]["status"])["enum"] == list(STATUSES)

    # Every request shape is declared once (models.py); the spec names the same fields.
    shapes = {
        "SandboxCreate": models.SandboxRequest,
        "ExecuteRequest": models.ExecuteRequest,
        "ContextCreate": models.ContextRequest,
        "InterruptRequest": models.InterruptRequest,
        "InputReply": models.InputReply,
        "OneShotConfig": models.OneShotConfig,
        "ExecMetadata": models.ExecMetadata,
        "EvalRequest": models.EvalRequest,
        "CommandRequest": models.CommandRequest,
        "CommandInput": models.CommandInput,
        "MoveRequest": models.MoveRequest,
        "TimeoutRequest": models.TimeoutRequest,
    }
    for schema_name, shape in shapes.items():
        declared = {f.name for f in dataclasses.fields(shape)}
        assert set(spec["components"]["schemas"][schema_name]["properties"]) == declared, schema_name
