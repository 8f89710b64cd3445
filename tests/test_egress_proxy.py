"""The egress proxy's program (programs/egress_proxy.py) on this host, against test servers: what it
lets through and what it refuses (issue 23). The same program in Docker: tests/test_egress_docker.py."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time

import pytest
from egress_servers import FETCH, OTHER_SNI, hello_servers, proxy_hosts

from jupyter_sandbox.backends import programs
from jupyter_sandbox.backends.programs import egress_proxy

from servers import free_port


def client_hello(name: str | None) -> bytes:
    """The first TLS record a client sends for ``name`` (its SNI; None: none)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    tls = context.wrap_bio(incoming, outgoing, server_hostname=name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_server_name_is_read_from_a_client_hello():
    assert egress_proxy.server_name(client_hello("pypi.org")) == "pypi.org"
    assert egress_proxy.server_name(client_hello("Files.PythonHosted.org")) == "files.pythonhosted.org"
    assert egress_proxy.server_name(client_hello(None)) is None
    assert egress_proxy.server_name(b"GET / HTTP/1.1\r\n\r\n") is None
    assert egress_proxy.server_name(client_hello("pypi.org")[:40]) is None  # cut short: no name, no crash


@pytest.mark.parametrize(
    "host", ["1.2.3.4", "[::1]", "::ffff:127.0.0.1", "2130706433", "0x7f000001", "127.1", "10.0.0.1."]
)
def test_every_spelling_of_an_address_is_an_address(host):
    assert egress_proxy.is_address(host)


def test_a_logged_target_is_one_line_without_control_characters(capsys):
    # what a sandbox sends as a host name must not move a terminal's cursor or forge a line
    egress_proxy.log("denied", "evil.test\x1b[2J\r\negress allowed CONNECT x:443", "not in the allow list")
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "\x1b" not in out and "\r" not in out
    assert "evil.test\\x1b[2J\\x0d\\x0aegress allowed" in out


def test_verdicts(monkeypatch):
    monkeypatch.setattr(
        egress_proxy, "RULES", {"allow": ["pypi.org", "*.pythonhosted.org"], "deny": ["bad.pythonhosted.org"]}
    )
    assert egress_proxy.verdict("pypi.org") is None
    assert egress_proxy.verdict("PyPI.org.") is None
    assert egress_proxy.verdict("files.pythonhosted.org") is None
    assert egress_proxy.verdict("pythonhosted.org") == "not in the allow list"  # *.x: names under x only
    assert egress_proxy.verdict("evilpythonhosted.org") == "not in the allow list"
    assert egress_proxy.verdict("bad.pythonhosted.org") == "in the deny list"
    assert egress_proxy.verdict("151.101.0.223") == "a raw IP address is never allowed, only names"
    monkeypatch.setattr(egress_proxy, "RULES", {"allow": ["*"], "deny": []})
    assert egress_proxy.verdict("anything.example") is None
    assert egress_proxy.verdict("8.8.8.8") is not None


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    """The program on loopback, its names mapped onto two test servers; (port, its output file)."""
    with hello_servers("127.0.0.1", tmp_path_factory.mktemp("tls")) as (http_port, https_port):
        port = free_port()
        rules = {
            "sandbox": "sbx-test",
            "allow": ["allowed.test", "*.allowed.test", "localhost"],
            "deny": ["denied.test"],
            "port": port,
            "bind": "127.0.0.1",
            "hosts": proxy_hosts("127.0.0.1", http_port, https_port),
        }
        output = tmp_path_factory.mktemp("proxy") / "out.txt"
        with open(output, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-I", "-c", programs.source("egress_proxy"), __import__("json").dumps(rules)],
                stdout=out,
            )
        try:
            for _ in range(100):
                if "egress proxy for sandbox sbx-test" in output.read_text():
                    break
                time.sleep(0.1)
            yield port, output, (http_port, https_port)
        finally:
            process.terminate()
            process.wait(10)


def through(proxy, code: str) -> str:
    port = proxy[0]
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HTTP_PROXY": url, "HTTPS_PROXY": url, "NO_PROXY": ""}
    run = subprocess.run(
        [sys.executable, "-c", FETCH + OTHER_SNI + f"print({code})"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_allowed_names_get_through_by_http_and_https(proxy):
    http_port, https_port = proxy[2]
    assert through(proxy, "fetch('http://allowed.test/x')") == f"ok hello from {http_port}: Host=allowed.test"
    assert through(proxy, "fetch('https://allowed.test/x')") == f"ok hello from {https_port}: Host=allowed.test"
    assert through(proxy, "fetch('https://sub.allowed.test/')").startswith("ok hello")


def test_denied_unlisted_and_raw_addresses_are_refused_and_logged(proxy):
    http_port, https_port = proxy[2]
    for url in ("http://denied.test/", "https://denied.test/", "https://unlisted.test/", "http://unlisted.test/"):
        assert through(proxy, f"fetch({url!r})").startswith("refused"), url
    for url in (f"http://127.0.0.1:{http_port}/", f"https://127.0.0.1:{https_port}/"):
        assert through(proxy, f"fetch({url!r})").startswith("refused"), url
    log = proxy[1].read_text()
    assert "egress denied CONNECT denied.test:443 (sandbox sbx-test): in the deny list" in log
    assert "egress denied GET http://unlisted.test:80 (sandbox sbx-test): not in the allow list" in log
    assert f"egress denied CONNECT 127.0.0.1:{https_port} (sandbox sbx-test): a raw IP address" in log


def test_a_client_hello_naming_another_host_is_refused(proxy):
    port = proxy[0]
    assert through(proxy, f"other_sni('127.0.0.1', {port}, 'allowed.test', 'allowed.test')").startswith("ok")
    assert through(proxy, f"other_sni('127.0.0.1', {port}, 'allowed.test', 'denied.test')").startswith("refused")
    assert "egress denied CONNECT allowed.test:443 (sandbox sbx-test): its TLS ClientHello names denied.test" in (
        proxy[1].read_text()
    )


def test_a_host_header_naming_another_host_is_refused(proxy):
    import socket

    with socket.create_connection(("127.0.0.1", proxy[0]), timeout=20) as s:
        s.sendall(b"GET http://allowed.test/ HTTP/1.1\r\nHost: denied.test\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 403")
    with socket.create_connection(("127.0.0.1", proxy[0]), timeout=20) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")  # not a proxy request
        assert s.recv(4096).startswith(b"HTTP/1.1 400")


def test_an_allowed_name_that_resolves_to_no_public_address_is_refused(proxy):
    """A name pointed at this host (or the metadata address) is no way around the fence."""
    http_port, https_port = proxy[2]
    assert through(proxy, f"fetch('http://localhost:{http_port}/')") == "refused HTTPError 502"
    assert through(proxy, f"fetch('https://localhost:{https_port}/')").startswith("refused")
