"""Test HTTP and HTTPS servers that stand for names on the internet in the egress tests (issue 23).

Each answers any GET with ``hello from <port>: Host=<the Host header>``, so a test sees which server
a request reached and under which name. The HTTPS one has a self-signed certificate (clients in the
tests skip verification: what they check is the proxy's SNI rule, not the certificate).
"""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

INDEX = Path(__file__).parent / "data" / "index"  # a package index (PEP 503) of one tiny wheel, jsbx-demo


class Hello(http.server.SimpleHTTPRequestHandler):
    """Hello to any path but /simple/..., which is served from INDEX."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(INDEX), **kwargs)

    def do_GET(self) -> None:
        if self.path.startswith("/simple/"):
            return super().do_GET()
        body = f"hello from {self.server.server_address[1]}: Host={self.headers.get('Host')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate and its key, made with openssl."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=allowed.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@contextmanager
def hello_servers(address: str, folder: Path) -> Iterator[tuple[int, int]]:
    """An HTTP and an HTTPS server on ``address`` (their ports), stopped after."""
    plain = http.server.ThreadingHTTPServer((address, 0), Hello)
    secure = http.server.ThreadingHTTPServer((address, 0), Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed(folder))
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (plain, secure)]
    for thread in threads:
        thread.start()
    try:
        yield plain.server_address[1], secure.server_address[1]
    finally:
        for server in (plain, secure):
            server.shutdown()
            server.server_close()


def proxy_hosts(address: str, http_port: int, https_port: int) -> dict[str, str]:
    """The proxy's test-only mapping: every test name to those servers, by port."""
    names = ("allowed.test", "denied.test", "unlisted.test", "sub.allowed.test")
    hosts = {f"{name}:80": f"{address}:{http_port}" for name in names}
    hosts.update({f"{name}:443": f"{address}:{https_port}" for name in names})
    return hosts


# What a sandbox (or a test process) runs to reach a URL through the proxy in $HTTPS_PROXY/$HTTP_PROXY:
# the outcome as text, never an exception.
FETCH = """
import ssl, urllib.request
def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=20, context=ssl._create_unverified_context()) as r:
            return 'ok ' + r.read().decode()
    except Exception as e:
        return 'refused ' + type(e).__name__ + ' ' + str(getattr(e, 'code', '') or e)[:120]
"""

# CONNECT to an allowed name, then a TLS ClientHello naming another one.
OTHER_SNI = """
import socket, ssl, os
def other_sni(proxy_host, proxy_port, name, sni):
    s = socket.create_connection((proxy_host, proxy_port), timeout=20)
    s.sendall(f'CONNECT {name}:443 HTTP/1.1\\r\\nHost: {name}:443\\r\\n\\r\\n'.encode())
    head = s.recv(4096).decode()
    if ' 200 ' not in head:
        return 'refused at CONNECT ' + head.split('\\r\\n')[0]
    try:
        t = ssl._create_unverified_context().wrap_socket(s, server_hostname=sni)
        t.sendall(f'GET / HTTP/1.1\\r\\nHost: {name}\\r\\n\\r\\n'.encode())
        return 'ok ' + t.recv(4096).decode(errors='replace')[-60:]
    except (OSError, ssl.SSLError) as e:
        return 'refused ' + type(e).__name__
"""
