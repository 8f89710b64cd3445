"""Bad values answer 400 naming their field, too-large uploads 413 at once; secrets never reach
the logs."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlparse

import pytest
from attacks import ATTACKER, assert_whole, create, guarded  # noqa: F401 (guarded is a fixture)
from urllib3 import encode_multipart_formdata

from jupyter_sandbox.oneshot.archive import make_archive

DEEP = "[" * 30000 + "]" * 30000

BAD_CREATES = [
    ('{"cpus": NaN}', "cpus"),
    ('{"cpus": Infinity}', "cpus"),
    ('{"memory": 1e30}', "memory"),
    ('{"memory": "1000000000000000000000000000000"}', "memory"),
    ('{"pids": 1e30}', "pids"),
    ('{"pids": 1e400}', "pids"),
    ('{"env": {"A": "x\\u0000y"}}', "env"),
    ('{"timeout": -Infinity}', "timeout"),
    (DEEP, "body"),
]


@pytest.mark.parametrize("body, field", BAD_CREATES, ids=[f for _, f in BAD_CREATES])
def test_bad_values_in_a_create_are_400s_naming_the_field(guarded, body, field):
    server, bystander = guarded
    r = server.api("POST", "sandboxes", content=body, headers={"Content-Type": "application/json"}, user=ATTACKER)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field
    assert_whole(server, bystander)


BAD_EVALS = [
    ({"code": "1", "config": {"timeout_seconds": float("nan")}}, "config.timeout_seconds"),
    ({"code": "1", "config": {"memory_mb": 1e400}}, "config.memory_mb"),
    ({"code": "1", "config": {"memory_mb": 10**30}}, "config.memory_mb"),
]


def test_bad_values_in_one_shot_runs_are_400s_naming_the_field(guarded):
    server, bystander = guarded
    for body, field in BAD_EVALS:
        r = server.api("POST", "v1/eval", content=json.dumps(body), user=ATTACKER)
        assert r.status_code == 400 and r.json()["field"] == field, (body, r.text)
    r = server.api("POST", "v1/eval", content=DEEP, user=ATTACKER)
    assert r.status_code == 400 and r.json()["field"] == "body", r.text
    for config, field in (
        [{"timeout_seconds": float("nan")}, "config.timeout_seconds"],
        [{"disk_mb": 1e400}, "config.disk_mb"],
    ):
        body, content_type = encode_multipart_formdata(
            {
                "tar": ("code.tar", make_archive({"main.py": "print(1)"}), "application/octet-stream"),
                "metadata": (None, json.dumps({"config": config}), "application/json"),
            }
        )
        r = server.api("POST", "v1/exec/sync", content=body, headers={"Content-Type": content_type}, user=ATTACKER)
        assert r.status_code == 400 and r.json()["field"] == field, (config, r.text)
    assert_whole(server, bystander)


def test_an_upload_larger_than_the_disk_is_refused_at_once_and_leaves_nothing(guarded):
    server, bystander = guarded
    sandbox = create(server, disk="64M")
    # declare 2 GB and send nothing: the answer comes from the headers alone
    url = urlparse(server.url)
    started = time.monotonic()
    with socket.create_connection((url.hostname, url.port), timeout=30) as conn:
        conn.sendall(
            (
                f"PUT /sandbox/api/sandboxes/{sandbox}/files?path=huge.bin HTTP/1.1\r\nHost: {url.netloc}\r\n"
                f"Authorization: token {server.token}\r\nX-Test-User: {ATTACKER}\r\n"
                f"Content-Length: {2 * 1024**3}\r\n\r\n"
            ).encode()
        )
        answer = conn.recv(65536).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer[:300]
    assert time.monotonic() - started < 5.0
    # one that passes the first check but not the space left: 413, no partial file
    server.execute(sandbox, "open('filler', 'wb').write(b'0' * 40 * 1024 * 1024)", user=ATTACKER)
    r = server.api(
        "PUT", f"sandboxes/{sandbox}/files", params={"path": "more.bin"}, content=b"1" * (40 * 1024**2), user=ATTACKER
    )
    assert r.status_code == 413, r.text
    names = [e["name"] for e in server.api("GET", f"sandboxes/{sandbox}/files", user=ATTACKER).json()]
    assert "more.bin" not in names and "huge.bin" not in names, names
    assert_whole(server, bystander)


def test_the_e2b_secret_never_reaches_the_logs(guarded):
    server, bystander = guarded
    r = server.api("POST", "sandboxes", json={}, user=ATTACKER)
    e2b_url = r.json()["e2b_url"]
    secret = e2b_url.rsplit("/", 1)[1]
    # valid secret, bad requests (4xx); wrong secret (404); a good request
    assert server.request("POST", urlparse(e2b_url).path.lstrip("/") + "/execute", content="{nope").status_code == 400
    assert (
        server.request("POST", urlparse(e2b_url).path.lstrip("/") + "/contexts", json={"cwd": "../x"}).status_code
        == 400
    )
    wrong = e2b_url[: -len(secret)] + secret[::-1]
    assert server.request("POST", urlparse(wrong).path.lstrip("/") + "/execute", json={"code": "1"}).status_code == 404
    assert (
        server.request("POST", urlparse(e2b_url).path.lstrip("/") + "/execute", json={"code": "1"}).status_code == 200
    )
    log = server.log(tail=10**7)
    assert secret not in log and secret[::-1] not in log
    assert "<secret>" in log  # the requests were logged, without it
    assert_whole(server, bystander)
