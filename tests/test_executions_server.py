"""One-shot executions through a real server (pytest-jupyter) on real Docker containers.

Requests are built the way python-executor's client builds them: a multipart body with an
uncompressed tar part named ``tar`` and a JSON part named ``metadata``.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import tarfile
import time
import zipfile
from datetime import datetime

import docker
import pytest
import requests
from tornado.httpclient import HTTPClientError
from urllib3 import encode_multipart_formdata

from jupyter_sandbox.backends.base import LABEL_PREFIX
from jupyter_sandbox.oneshot.archive import make_archive

from conftest import IMAGE
from servers import SESSION, SESSION_LABEL, HeaderUsers
from test_executions import SLIP_ARCHIVES

V1 = ("sandbox", "api", "v1")
OUTPUT_CAP = 64 * 1024


def make_wheel(directory) -> None:
    """A tiny pure-Python wheel (``jsbx-demo``), so a wheelhouse install needs no network."""
    name = "jsbx_demo-1.0-py3-none-any.whl"
    files = {
        "jsbx_demo.py": "ANSWER = 42\n",
        "jsbx_demo-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: jsbx-demo\nVersion: 1.0\n",
        "jsbx_demo-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in files) + "jsbx_demo-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(os.path.join(directory, name), "w") as zf:
        for path, text in {**files, "jsbx_demo-1.0.dist-info/RECORD": record}.items():
            zf.writestr(path, text)
    os.chmod(os.path.join(directory, name), 0o644)


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory):
    directory = tmp_path_factory.mktemp("wheelhouse")
    os.chmod(directory, 0o755)  # bind-mounted read-only; the sandbox user must read it
    make_wheel(directory)
    return str(directory)


@pytest.fixture
def jp_server_config(jp_server_config, docker_ready, wheelhouse):
    jp_server_config["ServerApp"]["identity_provider_class"] = HeaderUsers
    jp_server_config["OneShotRunner"] = {
        "wheelhouse": wheelhouse,
        "max_output_size": OUTPUT_CAP,
        "max_archive_size": 1024 * 1024,
        "max_running_per_user": 8,
    }
    jp_server_config["SandboxApp"]["max_body_size"] = 2 * 1024 * 1024
    jp_server_config["SandboxManager"]["allow_network"] = True
    return jp_server_config


def multipart(files: dict[str, str] | bytes, metadata: dict) -> tuple[bytes, dict[str, str]]:
    archive = files if isinstance(files, bytes) else make_archive({k: v.encode() for k, v in files.items()})
    body, content_type = encode_multipart_formdata(
        {
            "tar": ("code.tar", archive, "application/octet-stream"),
            "metadata": (None, json.dumps(metadata), "application/json"),
        }
    )
    return body, {"Content-Type": content_type}


async def exec_sync(jp_fetch, files, metadata=None, **kwargs) -> dict:
    body, headers = multipart(files, metadata or {})
    r = await jp_fetch(*V1, "exec", "sync", method="POST", body=body, headers=headers, request_timeout=180, **kwargs)
    assert r.code == 200
    return json.loads(r.body)


async def evaluate(jp_fetch, **body) -> dict:
    r = await jp_fetch(*V1, "eval", method="POST", body=json.dumps(body), request_timeout=180)
    assert r.code == 200
    return json.loads(r.body)


async def expect_error(status: int, call) -> dict:
    with pytest.raises(HTTPClientError) as info:
        await call
    assert info.value.code == status, info.value.response.body if info.value.response else info.value
    return json.loads(info.value.response.body)


def labelled_containers(*labels: str) -> list:
    """Containers with all these labels. docker-py inspects each container it lists, which races a
    removal in the background (a finished run's container): listed again then."""
    client = docker.from_env()
    try:
        for _ in range(10):
            try:
                return client.containers.list(all=True, filters={"label": list(labels)})
            except docker.errors.NotFound:
                continue
        raise AssertionError(f"containers labelled {labels} kept vanishing while listed")
    finally:
        client.close()


def containers_of(execution_id: str) -> list:
    return labelled_containers(f"{LABEL_PREFIX}.execution={execution_id}")


async def removed(execution_id: str, within: float = 60) -> bool:
    """Whether the execution's container is gone within ``within`` seconds (a finished run's
    container is removed in the background, after its answer)."""
    deadline = time.monotonic() + within
    while containers_of(execution_id):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


async def test_every_metadata_field(jp_fetch, wheelhouse):
    files = {
        "main.py": (
            "import os, sys, json\n"
            "from pkg.helper import greet\n"
            "import jsbx_demo\n"
            "def read(path):\n"
            "    try:\n"
            "        return open(path).read().strip()\n"
            "    except OSError:\n"
            "        return None\n"
            "print(json.dumps({\n"
            "    'greet': greet(), 'argv': sys.argv[1:], 'stdin': sys.stdin.read(), 'env': os.environ.get('GREETING'),\n"
            "    'pre': open('pre.txt').read().strip(), 'answer': jsbx_demo.ANSWER,\n"
            "    'net': sorted(os.listdir('/sys/class/net')),\n"
            "    'mem': read('/sys/fs/cgroup/memory/memory.limit_in_bytes') or read('/sys/fs/cgroup/memory.max'),\n"
            "    'shares': read('/sys/fs/cgroup/cpu/cpu.shares'),\n"
            "    'disk': os.statvfs('/home/user').f_blocks * os.statvfs('/home/user').f_frsize,\n"
            "    'uid': os.getuid(), 'cwd': os.getcwd(),\n"
            "}))\n"
            "sys.stderr.write('to stderr\\n')\n"
            "sys.exit(3)\n"
        ),
        "pkg/__init__.py": "",
        "pkg/helper.py": "def greet():\n    return 'hello from pkg.helper'\n",
    }
    metadata = {
        "entrypoint": "main.py",
        "docker_image": IMAGE,
        "requirements_txt": "jsbx-demo==1.0\n",
        "pre_commands": ["echo pre-ran > pre.txt", "echo pre-command output"],
        "stdin": "line one\nline two\n",
        "env_vars": ["GREETING=hi there", "EMPTY="],
        "script_args": ["--verbose", "input file.txt"],
        "config": {"timeout_seconds": 60, "network_disabled": True, "memory_mb": 300, "disk_mb": 64, "cpu_shares": 512},
    }
    result = await exec_sync(jp_fetch, files, metadata)
    assert result["status"] == "completed", result
    assert result["exit_code"] == 3
    assert result["execution_id"].startswith("exe_") and len(result["execution_id"]) == 40
    assert result["stderr"] == "to stderr\n"
    first, report = result["stdout"].splitlines()
    assert first == "pre-command output"
    seen = json.loads(report)
    assert seen["greet"] == "hello from pkg.helper"  # multi-file import from a package
    assert seen["argv"] == ["--verbose", "input file.txt"]
    assert seen["stdin"] == "line one\nline two\n"
    assert seen["env"] == "hi there"
    assert seen["pre"] == "pre-ran"
    assert seen["answer"] == 42  # installed from the wheelhouse with the network off
    assert seen["net"] == ["lo"]  # network_disabled: no interface but loopback
    # memory_mb, plus room for the tmpfs working directory (disk_mb) and /tmp (128M), held in memory
    assert int(seen["mem"]) == (300 + 64 + 128) * 1024**2
    assert seen["shares"] == "512"
    assert seen["disk"] == 64 * 1024**2
    assert seen["uid"] != 0 and seen["cwd"] == "/home/user"
    started = datetime.fromisoformat(result["started_at"].rstrip("Z"))
    finished = datetime.fromisoformat(result["finished_at"].rstrip("Z"))
    assert started <= finished and result["duration_ms"] >= 0
    assert await removed(result["execution_id"])  # used once, then removed


async def test_entrypoint_detection_and_script_errors(jp_fetch):
    result = await exec_sync(jp_fetch, {"__main__.py": "import sys; print(sys.argv[0])", "other.txt": ""})
    assert result["stdout"] == "/home/user/__main__.py\n"
    result = await exec_sync(jp_fetch, {"tool.py": "def f():\n    return 1 / 0\nf()\n"})
    assert (result["status"], result["exit_code"]) == ("completed", 1)
    assert (result["error_type"], result["error_line"]) == ("ZeroDivisionError", 2)
    # network only when asked (this server allows it): an interface besides loopback
    result = await exec_sync(
        jp_fetch,
        {"main.py": "import os; print(sorted(os.listdir('/sys/class/net')))"},
        {"config": {"network_disabled": False}},
    )
    assert "'eth0'" in result["stdout"], result
    # a failing pre-command stops the run with its exit status
    result = await exec_sync(jp_fetch, {"main.py": "print('never')"}, {"pre_commands": ["echo no >&2; exit 7"]})
    assert (result["status"], result["exit_code"], result["stdout"], result["stderr"]) == ("completed", 7, "", "no\n")


EVAL_TABLE = [
    ("2 + 2", "4", ""),
    ("x = 5\nx * 2", "10", ""),
    ("x = 5", None, ""),
    ("print('hi')", None, "hi\n"),
    ('"hello"', "'hello'", ""),
]


async def test_eval_table(jp_fetch):
    for code, expected, stdout in EVAL_TABLE:
        result = await evaluate(jp_fetch, code=code)
        assert (result["status"], result["exit_code"]) == ("completed", 0), (code, result)
        assert result["result"] == expected, code
        assert result["stdout"] == stdout, code
    result = await evaluate(jp_fetch, code="undefined_var")
    assert (result["error_type"], result["error_line"], result["exit_code"]) == ("NameError", 1, 1)
    assert result["result"] is None
    assert "NameError: name 'undefined_var' is not defined" in result["stderr"]
    assert ".jsbx-eval" not in result["stderr"]  # the runner's frames are not the user's business


async def test_eval_options(jp_fetch):
    result = await evaluate(
        jp_fetch,
        files=[
            {"name": "run.py", "content": "import lib, sys\nlib.twice(int(sys.stdin.read()))"},
            {"name": "lib.py", "content": "def twice(x):\n    return x * 2\n"},
        ],
        entrypoint="run.py",
        stdin="21",
        python_version="3.11",
        config={"timeout_seconds": 30},
    )
    assert result["result"] == "42"
    result = await evaluate(jp_fetch, code="1 + 1", eval_last_expr=False)
    assert (result["result"], result["exit_code"]) == (None, 0)
    result = await evaluate(jp_fetch, code="x = 1\n\ny = (")
    assert (result["error_type"], result["error_line"]) == ("SyntaxError", 3)
    error = await expect_error(400, evaluate(jp_fetch, code="1", python_version="3.12"))
    assert error["field"] == "python_version" and "3.11" in error["message"]


async def test_async_submit_poll_kill(jp_fetch, jp_serverapp):
    body, headers = multipart({"main.py": "import time\nprint('started', flush=True)\ntime.sleep(3600)\n"}, {})
    r = await jp_fetch(*V1, "exec", "async", method="POST", body=body, headers=headers)
    assert r.code == 202
    execution_id = json.loads(r.body)["execution_id"]
    assert r.headers["Location"].endswith(f"/sandbox/api/v1/executions/{execution_id}")

    deadline = time.monotonic() + 60
    while True:
        state = json.loads((await jp_fetch(*V1, "executions", execution_id)).body)
        assert state["status"] in ("pending", "running"), state
        if state["status"] == "running":
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    assert state["finished_at"] is None and state["exit_code"] is None
    [container] = containers_of(execution_id)
    assert container.status == "running"
    labels = container.labels
    assert labels[f"{LABEL_PREFIX}.managed"] == "true"
    assert labels[f"{LABEL_PREFIX}.server"] == jp_serverapp.web_app.settings["sandbox_app"].identity.server_id
    assert labels[SESSION_LABEL] == SESSION
    assert labels[f"{LABEL_PREFIX}.owner"]
    host = container.attrs["HostConfig"]
    assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"] and host["NetworkMode"] == "none"

    # its owner sees the code it runs, in the execution and in the list
    assert state["code"] == "import time\nprint('started', flush=True)\ntime.sleep(3600)\n"
    listing = json.loads((await jp_fetch(*V1, "executions")).body)
    assert [e["code"] for e in listing["executions"] if e["execution_id"] == execution_id] == [state["code"]]

    # someone else neither sees nor kills it
    other = {"X-Test-User": "mallory"}
    await expect_error(404, jp_fetch(*V1, "executions", execution_id, headers=other))
    await expect_error(404, jp_fetch(*V1, "executions", execution_id, method="DELETE", headers=other))
    listing = json.loads((await jp_fetch(*V1, "executions", headers=other)).body)
    assert listing["executions"] == [] and listing["total"] == 0

    r = await jp_fetch(*V1, "executions", execution_id, method="DELETE")
    assert json.loads(r.body) == {"status": "killed"}
    assert containers_of(execution_id) == []  # gone when DELETE returns
    state = json.loads((await jp_fetch(*V1, "executions", execution_id)).body)
    assert (state["status"], state["exit_code"]) == ("killed", 137)
    assert state["finished_at"] is not None
    # killing a finished execution changes nothing
    r = await jp_fetch(*V1, "executions", execution_id, method="DELETE")
    assert json.loads(r.body) == {"status": "killed"}


async def test_server_shutdown_kills_running_executions(jp_fetch, jp_serverapp):
    body, headers = multipart({"main.py": "import time\ntime.sleep(3600)\n"}, {})
    execution_id = json.loads((await jp_fetch(*V1, "exec", "async", method="POST", body=body, headers=headers)).body)[
        "execution_id"
    ]
    runner = jp_serverapp.web_app.settings["sandbox_executions"]
    deadline = time.monotonic() + 60
    while runner.get("alice", execution_id).status != "running":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    assert len(containers_of(execution_id)) == 1
    await runner.shutdown()  # what SandboxApp.stop_extension calls
    assert runner.get("alice", execution_id).status == "killed"
    assert containers_of(execution_id) == []


async def test_listing_is_newest_first_and_paginated(jp_fetch):
    ids = [(await evaluate(jp_fetch, code=f"{i}"))["execution_id"] for i in range(3)]
    page = json.loads((await jp_fetch(*V1, "executions", params={"limit": 2})).body)
    assert [e["execution_id"] for e in page["executions"]] == ids[::-1][:2]
    assert (page["total"], page["offset"], page["limit"], page["next_offset"]) == (3, 0, 2, 2)
    page = json.loads((await jp_fetch(*V1, "executions", params={"limit": 2, "offset": 2})).body)
    assert [e["execution_id"] for e in page["executions"]] == [ids[0]]
    assert page["next_offset"] is None
    await expect_error(400, jp_fetch(*V1, "executions", params={"limit": "lots"}))
    await expect_error(404, jp_fetch(*V1, "executions", "exe_nope"))


async def test_unsafe_archives_rejected(jp_fetch):
    for case, (archive, member) in SLIP_ARCHIVES.items():
        error = await expect_error(400, exec_sync(jp_fetch, archive, {"entrypoint": "main.py"}))
        assert repr(member) in error["message"], case
    big = make_archive({"main.py": b"#" * (1024 * 1024 + 10)})
    await expect_error(413, exec_sync(jp_fetch, big))
    body, content_type = encode_multipart_formdata(
        {
            "tar": ("code.tar", make_archive({"main.py": b""}), "application/octet-stream"),
            "metadata": (None, "{}", "application/json"),
            "padding": ("pad", b"x" * (2 * 1024 * 1024), "application/octet-stream"),
        }
    )
    error = await expect_error(
        413, jp_fetch(*V1, "exec", "sync", method="POST", body=body, headers={"Content-Type": content_type})
    )
    assert "request body" in error["message"]
    error = await expect_error(400, exec_sync(jp_fetch, {"main.py": ""}, {"docker_image": "ubuntu:latest"}))
    assert error["field"] == "docker_image" and IMAGE in error["message"]
    error = await expect_error(400, jp_fetch(*V1, "exec", "sync", method="POST", body=b"{}"))
    assert "multipart" in error["message"]


async def test_timeout_oom_and_output_cap(jp_fetch):
    result = await evaluate(
        jp_fetch, code="import time\nprint('before', flush=True)\ntime.sleep(60)", config={"timeout_seconds": 2}
    )
    assert (result["status"], result["exit_code"]) == ("failed", 124)
    assert "timed out after 2s" in result["error"]
    assert result["stdout"] == "before\n"  # output written before the timeout is kept

    body, headers = multipart(
        {"main.py": "x = bytearray(512 * 1024 * 1024)\nprint(len(x))"}, {"config": {"memory_mb": 64, "disk_mb": 64}}
    )  # a 256M container in all
    r = await jp_fetch(*V1, "exec", "sync", method="POST", body=body, headers=headers, request_timeout=120)
    result = json.loads(r.body)
    assert (result["status"], result["exit_code"]) == ("failed", 137), result
    assert "out of memory" in result["error"]

    result = await evaluate(jp_fetch, code=f"import sys\nprint('y' * {3 * OUTPUT_CAP})\nsys.stderr.write('e' * 10)")
    assert result["stdout"].startswith("y" * OUTPUT_CAP + "\n[output truncated: ")
    assert f"{2 * OUTPUT_CAP + 1} more bytes" in result["stdout"]
    assert result["stderr"] == "e" * 10


async def test_python_executor_client_wire_format(jp_fetch, jp_http_port, jp_base_url, jp_auth_header):
    """What python-executor's PythonExecutorClient sends and parses, with requests, unchanged.

    Mirrors python_executor_client/client.py (geraldthewes/python-executor): the base URL is
    ``.../sandbox``; exec/sync and exec/async post ``files={"tar": ("code.tar", tar,
    "application/octet-stream"), "metadata": (None, json, "application/json")}``; eval posts
    JSON; kill is DELETE executions/{id}; results go through ExecutionResult.from_dict.
    """
    # (jp_fetch is requested because it starts pytest-jupyter's HTTP server on jp_http_port.)
    base_url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}sandbox"
    session = requests.Session()
    session.headers.update(jp_auth_header)

    def client_tar(files: dict[str, str]) -> bytes:  # the client's _create_tar for a dict
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for filename, content in files.items():
                info = tarfile.TarInfo(name=filename)
                data = content.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    def from_dict(data: dict) -> dict:  # the client's ExecutionResult.from_dict
        assert data["status"] in ("pending", "running", "completed", "failed", "killed")
        for key in ("started_at", "finished_at"):
            if data.get(key):
                datetime.fromisoformat(data[key].rstrip("Z"))
        return {
            k: data.get(k)
            for k in ("execution_id", "status", "stdout", "stderr", "exit_code", "error", "duration_ms", "result")
        }

    def execute(path: str, files: dict[str, str], metadata: dict) -> requests.Response:
        files_data = {
            "tar": ("code.tar", client_tar(files), "application/octet-stream"),
            "metadata": (None, json.dumps(metadata), "application/json"),
        }
        response = session.post(f"{base_url}/api/v1/exec/{path}", files=files_data, timeout=120)
        response.raise_for_status()
        return response

    def scenario() -> None:
        # Metadata(...).to_dict() with an ExecutionConfig: every config field is sent.
        metadata = {
            "entrypoint": "main.py",
            "stdin": "abc",
            "config": {
                "timeout_seconds": 300,
                "network_disabled": True,
                "memory_mb": 1024,
                "disk_mb": 2048,
                "cpu_shares": 1024,
            },
        }
        files = {
            "main.py": "from helper import greet; greet()",
            "helper.py": "def greet(): print('Hello from helper!')",
        }
        result = from_dict(execute("sync", files, metadata).json())
        assert (result["status"], result["exit_code"], result["stdout"]) == ("completed", 0, "Hello from helper!\n")

        exec_id = execute("async", {"main.py": "import time; time.sleep(3600)"}, {"entrypoint": "main.py"}).json()[
            "execution_id"
        ]
        while (
            from_dict(session.get(f"{base_url}/api/v1/executions/{exec_id}", timeout=30).json())["status"] == "pending"
        ):
            time.sleep(0.2)
        session.delete(f"{base_url}/api/v1/executions/{exec_id}", timeout=60).raise_for_status()
        assert (
            from_dict(session.get(f"{base_url}/api/v1/executions/{exec_id}", timeout=30).json())["status"] == "killed"
        )

        response = session.post(
            f"{base_url}/api/v1/eval", json={"eval_last_expr": True, "code": "x = 5\ny = 10\nx + y"}, timeout=120
        )
        response.raise_for_status()
        assert from_dict(response.json())["result"] == "15"

    await asyncio.to_thread(scenario)


async def submit_async(jp_fetch, code: str) -> str:
    body, headers = multipart({"main.py": code}, {})
    r = await jp_fetch(*V1, "exec", "async", method="POST", body=body, headers=headers)
    assert r.code == 202
    return json.loads(r.body)["execution_id"]


async def finished(jp_fetch, execution_id: str, within: float = 120) -> dict:
    deadline = time.monotonic() + within
    while True:
        state = json.loads((await jp_fetch(*V1, "executions", execution_id)).body)
        if state["status"] not in ("pending", "running"):
            return state
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.2)


async def test_health_answers_with_the_token_only(jp_fetch, jp_http_port, jp_base_url, jp_auth_header):
    """python-executor's scripts call ``GET {server}/health`` first, where ``{server}`` is the base URL
    its client is given (``{base_url}sandbox``)."""
    r = await jp_fetch("sandbox", "health")
    assert json.loads(r.body) == {"status": "ok", "backend": "docker", "one_shot": True}
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}sandbox/health"
    assert (await asyncio.to_thread(requests.get, url, headers=jp_auth_header, timeout=30)).status_code == 200
    # as its benchmark script calls it (no token): refused like every route
    assert (await asyncio.to_thread(requests.get, url, timeout=30)).status_code == 403


async def test_six_async_submissions_in_a_row_all_complete(jp_fetch, jp_serverapp):
    """Beyond max_running_per_user (4) they wait as pending, in order, and all complete (python-executor's
    concurrent_5, one more); never more than 4 run at once."""
    runner = jp_serverapp.web_app.settings["sandbox_executions"]
    runner.max_running_per_user = 4
    ids = [await submit_async(jp_fetch, f"import time\ntime.sleep(6)\nprint({i})") for i in range(6)]
    states = {json.loads((await jp_fetch(*V1, "executions", i)).body)["status"] for i in ids[4:]}
    assert states == {"pending"}  # the four before them hold the running slots for 6 s each
    results = [await finished(jp_fetch, i) for i in ids]
    assert [(r["status"], r["exit_code"], r["stdout"]) for r in results] == [
        ("completed", 0, f"{i}\n") for i in range(6)
    ]
    # at most four ran at once: each start is covered by fewer than four other runs
    spans = [
        (datetime.fromisoformat(r["started_at"][:-1]), datetime.fromisoformat(r["finished_at"][:-1])) for r in results
    ]
    for start, _ in spans:
        assert sum(1 for s, f in spans if s <= start < f) <= 4
    # the waiting ones started after a running one finished
    assert min(f for _, f in spans[:4]) <= min(s for s, _ in spans[4:])


async def test_queue_bound_gives_429_past_it(jp_fetch, jp_serverapp):
    runner = jp_serverapp.web_app.settings["sandbox_executions"]
    runner.max_running_per_user, runner.max_queued_per_user = 1, 1
    running = await submit_async(jp_fetch, "import time\ntime.sleep(3600)")
    waiting = await submit_async(jp_fetch, "print('never')")
    body, headers = multipart({"main.py": "print('refused')"}, {})
    error = await expect_error(429, jp_fetch(*V1, "exec", "async", method="POST", body=body, headers=headers))
    assert "1 running and 1 waiting" in error["message"]
    # another user has their own slots and queue
    other = await jp_fetch(*V1, "exec", "async", method="POST", body=body, headers={**headers, "X-Test-User": "bob"})
    assert other.code == 202
    assert json.loads((await jp_fetch(*V1, "executions", waiting)).body)["status"] == "pending"
    r = await jp_fetch(*V1, "executions", waiting, method="DELETE")
    assert json.loads(r.body) == {"status": "killed"}  # killed while pending: it never ran
    state = json.loads((await jp_fetch(*V1, "executions", waiting)).body)
    assert (state["status"], state["stdout"]) == ("killed", "")
    assert await removed(waiting)
    await jp_fetch(*V1, "executions", running, method="DELETE")
    assert containers_of(running) == []


def server_containers(server_id: str) -> list:
    return labelled_containers(f"{LABEL_PREFIX}.server={server_id}", f"{SESSION_LABEL}={SESSION}")


async def full_pool(runner) -> None:
    runner.start()
    deadline = time.monotonic() + 120
    while len(runner.pool.ready) < runner.pool_size or runner.pool.making:
        assert time.monotonic() < deadline, "the pool did not fill"
        await asyncio.sleep(0.2)


async def test_pooled_containers_are_used_once_and_none_is_left_behind(jp_fetch, jp_serverapp):
    runner = jp_serverapp.web_app.settings["sandbox_executions"]
    server_id = jp_serverapp.web_app.settings["sandbox_app"].identity.server_id
    await full_pool(runner)
    waiting = {c.labels[f"{LABEL_PREFIX}.execution"]: c for c in server_containers(server_id)}
    assert len(waiting) == runner.pool_size == 2
    assert all(c.labels[f"{LABEL_PREFIX}.owner"] == "" for c in waiting.values())  # its owner comes later
    # a pooled container that died while waiting is never handed out
    dead_id, dead = next(iter(waiting.items()))
    dead.kill()
    dead.wait(timeout=60)
    # Each run leaves a mark in its container's /tmp: a reused container would find it.
    code = "import os\nseen = os.path.exists('/tmp/mark')\nopen('/tmp/mark', 'w').close()\nprint(seen)"
    results = [await evaluate(jp_fetch, code=code) for _ in range(5)]
    assert [(r["status"], r["stdout"]) for r in results] == [("completed", "False\n")] * 5
    ids = [r["execution_id"] for r in results]
    assert len(set(ids)) == 5 and dead_id not in ids
    assert ids[0] == next(i for i in waiting if i != dead_id)  # the live pooled one served the first
    for execution_id in ids:
        assert await removed(execution_id)
    await runner.shutdown()  # what the server runs when it stops: the waiting ones go too
    deadline = time.monotonic() + 60
    while server_containers(server_id):
        assert time.monotonic() < deadline, [c.name for c in server_containers(server_id)]
        await asyncio.sleep(0.2)


async def test_other_limits_start_their_own_container(jp_fetch, jp_serverapp):
    """A request with other limits than the default ones never gets a pooled container."""
    runner = jp_serverapp.web_app.settings["sandbox_executions"]
    await full_pool(runner)
    pooled = {b.run_id for b in runner.pool.ready}
    code = "print(open('/sys/fs/cgroup/memory/memory.limit_in_bytes').read().strip())"
    result = await evaluate(jp_fetch, code=code, config={"memory_mb": 300})
    assert result["execution_id"] not in pooled
    assert int(result["stdout"]) == (300 + 512 + 128) * 1024**2  # its own limits
    assert {b.run_id for b in runner.pool.ready} == pooled
