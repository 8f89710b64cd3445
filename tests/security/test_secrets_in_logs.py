"""The E2B secret (the credential in a sandbox's ``e2b_url``) never reaches the server's log: not
through the access log of a route that matches, nor of one that matches nothing under the URL
(``/health``, ``/files``, ``execute/``: what E2B's SDK and curious clients also ask for), nor
through a Referer, however the URL is written."""

from __future__ import annotations

import time
from urllib.parse import quote

from servers import JupyterServer


def test_no_e2b_secret_in_any_log_line(docker_ready, tmp_path):
    # DEBUG: jupyter_server logs successful requests at debug level; every line must be clean
    config = {"ServerApp": {"log_level": "DEBUG"}, "DockerBackend": {"runtime": "runc"}}
    with JupyterServer(tmp_path, users=True, config=config) as server:
        mine = server.api("POST", "sandboxes", json={"name": "mine"}, user="alice").json()
        bobs = server.api("POST", "sandboxes", json={"name": "bobs"}, user="bob").json()
        url = mine["e2b_url"]
        secret = url.rsplit("/", 1)[1]
        assert len(secret) > 20 and secret in url
        path = url.removeprefix(server.url.rstrip("/"))
        context = server.request("POST", path.lstrip("/") + "/contexts", json={}).json()
        ctx = f"{path}/contexts/{context['id']}"
        unmatched = [  # under the URL, matching no route
            ("GET", path + "/health", {}),
            ("GET", path + "/files", {"params": {"path": "x.txt"}}),
            ("POST", path + "/execute/", {"json": {"code": "1"}}),
            ("GET", path, {}),
            ("GET", path + "/", {}),
            ("GET", path + "/contexts/nope/restart/more", {}),
            # written oddly: percent-encoded, repeated slashes, another case, another sandbox's id
            ("GET", path.replace(secret, quote(secret, safe="")[:-1] + "%" + f"{ord(secret[-1]):02X}"), {}),
            ("GET", path.replace("/sandbox/e2b/", "/sandbox//e2b//") + "/health", {}),
            ("POST", path.replace("/sandbox/e2b/", "/Sandbox/E2B/") + "/execute", {"json": {"code": "1"}}),
            ("GET", quote(path, safe="") + "/health", {}),
            ("GET", f"/sandbox/e2b/{bobs['id']}/{secret}/contexts", {}),
            # where the login redirect of an unauthenticated one leads
            ("GET", "/login", {"params": {"next": path + "/health"}}),
        ]
        requests = [
            # E2B's routes, matched (E2B clients send no token)
            ("POST", path + "/execute", {"json": {"code": "1 + 1"}, "token": False}),
            ("GET", path + "/contexts", {"token": False}),
            ("POST", ctx + "/restart", {"token": False}),
            ("DELETE", ctx, {"token": False}),
            # matched, with a method they do not take
            ("GET", path + "/execute", {"token": False}),
            ("PUT", path + "/contexts", {"token": False}),
            # the others without a token (a redirect to log in, a refusal) and with one (404)
            *[(method, target, {**kwargs, "token": False}) for method, target, kwargs in unmatched],
            *unmatched,
            # the URL as the Referer of a failing request (logged for 4xx)
            ("GET", "/sandbox/api/nothing-here", {"headers": {"Referer": url + "/health"}}),
        ]
        answers = []
        for method, target, kwargs in requests:
            headers = kwargs.pop("headers", {})
            if not kwargs.pop("token", True):
                headers["Authorization"] = ""
            r = server.request(method, target.lstrip("/"), headers=headers, timeout=60, **kwargs)
            answers.append((method, target, r.status_code))
        assert answers[0][2] == 200 and answers[1][2] == 200, answers  # the secret works where it should
        time.sleep(1)  # the access log is written as each request ends; give the last one a moment
        log = server.log_path.read_text(errors="replace")
    leaks = [line for line in log.splitlines() if secret in line or secret[:24] in line]
    assert not leaks, "\n".join(leaks)
    # the test saw the lines it checked: the access log of every request above is there, scrubbed
    assert log.count("<secret>") >= len(requests), log[-4000:]
    assert "/health" in log and "/execute/" in log
