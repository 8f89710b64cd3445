"""Runs in a sandbox's egress proxy container: the one way out of a sandbox with an allow-list.

Started as ``python -I -c <this source> rules-json``; ``rules-json`` is ``{"sandbox": id, "allow":
[patterns], "deny": [patterns], "port": 3128, "hosts": {name[:port]: "ip[:port]"}}`` (``hosts`` is a
test-only mapping used instead of DNS; ``bind``, the address it listens on, is for tests too). A
pattern is a host name, ``*.domain`` (any name under it, not the domain itself) or ``*`` (any name).
Deny wins over allow.

The sandbox reaches nothing but this proxy (an internal network), and the proxy takes only:
- ``CONNECT name:port``, for an allowed name, after which the client's first bytes must be a TLS
  ClientHello whose server name (SNI) is that same name;
- plain HTTP in absolute form (``GET http://name/...``), for an allowed name whose Host header
  matches, one request per connection.
A raw IP address is never a name, and a name that resolves to no public address is refused (a
name pointed at the host or the cloud metadata address). Every decision that refuses is one line
on stdout, ``egress denied ...``, which the server folds into the sandbox's logs.

Standard library only, Python 3.8+.
"""

import asyncio
import ipaddress
import json
import re
import socket
import sys

HEAD_LIMIT = 16 * 1024
HEAD_TIMEOUT = 30.0
CONNECT_TIMEOUT = 15.0
HOP_BY_HOP = ("proxy-connection", "proxy-authorization", "connection", "keep-alive")

RULES = json.loads(sys.argv[1]) if __name__ == "__main__" else {}


def is_address(host):
    """Whether ``host`` is an IP address in any spelling a resolver would take (``1.2.3.4``,
    ``[::1]``, ``2130706433``, ``0x7f.1``): a name's last label is never all digits or hex."""
    bare = host.strip("[]")
    try:
        ipaddress.ip_address(bare)
        return True
    except ValueError:
        pass
    last = bare.rstrip(".").rsplit(".", 1)[-1].lower()
    return last.isdigit() or (last.startswith("0x") and all(c in "0123456789abcdef" for c in last[2:]))


def matches(pattern, host):
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def verdict(host):
    """None when ``host`` may be reached, else why not."""
    host = host.lower().rstrip(".")
    if not host or is_address(host):
        return "a raw IP address is never allowed, only names"
    if any(matches(p, host) for p in RULES.get("deny", [])):
        return "in the deny list"
    if not any(matches(p, host) for p in RULES.get("allow", [])):
        return "not in the allow list"
    return None


async def resolve(host, port):
    """The (address, port) to connect to: the test mapping's, else a public address from DNS."""
    hosts = RULES.get("hosts") or {}
    mapped = hosts.get(f"{host}:{port}") or hosts.get(host)
    if mapped:
        address, _, mapped_port = mapped.partition(":")
        return address, int(mapped_port or port)
    infos = await asyncio.get_event_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for info in sorted(infos, key=lambda info: info[0] != socket.AF_INET):  # IPv4 first: its network has no IPv6
        address = info[4][0]
        if ipaddress.ip_address(address).is_global:
            return address, port
    raise OSError(f"{host} has no public address")


def log(verb, target, reason):
    line = "egress {} {} (sandbox {}): {}".format(verb, target, RULES.get("sandbox", "?"), reason)
    # the target is what the sandbox sent: one line, with no control character (a terminal's escape
    # sequences, a carriage return) reaching whoever reads the sandbox's logs
    line = re.sub("[\x00-\x1f\x7f-\x9f]", lambda m: f"\\x{ord(m.group()):02x}", line)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def server_name(hello):
    """The SNI host name of a TLS ClientHello record (None when it is not one, or names none)."""
    try:
        if hello[0] != 0x16 or hello[5] != 0x01:
            return None
        at = 9 + 2 + 32  # record header (5), handshake header (4), version, random
        at += 1 + hello[at]  # session id
        at += 2 + int.from_bytes(hello[at : at + 2], "big")  # cipher suites
        at += 1 + hello[at]  # compression methods
        end = at + 2 + int.from_bytes(hello[at : at + 2], "big")
        at += 2
        while at + 4 <= end:
            kind, size = int.from_bytes(hello[at : at + 2], "big"), int.from_bytes(hello[at + 2 : at + 4], "big")
            body = hello[at + 4 : at + 4 + size]
            if kind == 0:  # server_name: list length, then (type 0, length, name)
                if body[2] == 0:
                    length = int.from_bytes(body[3:5], "big")
                    return body[5 : 5 + length].decode("ascii").lower()
                return None
            at += 4 + size
    except (IndexError, UnicodeDecodeError):
        return None
    return None


async def read_hello(reader):
    """The client's first TLS record, whole (a ClientHello fits in one)."""
    header = await reader.readexactly(5)
    length = int.from_bytes(header[3:5], "big")
    if header[0] != 0x16 or length > HEAD_LIMIT:
        return header
    return header + await reader.readexactly(length)


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except OSError:
            pass


async def answer(writer, status, text):
    body = (text + "\n").encode()
    writer.write(
        b"HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
        % (status.encode(), len(body), body)
    )
    try:
        await writer.drain()
    finally:
        writer.close()


def split_host(authority, default_port):
    host, sep, port = authority.rpartition(":")
    if not sep or "]" in port:
        return authority.lower(), default_port
    return host.lower(), int(port)


async def open_upstream(host, port):
    address, port = await resolve(host, port)
    return await asyncio.wait_for(asyncio.open_connection(address, port), CONNECT_TIMEOUT)


async def tunnel(reader, writer, authority):
    host, port = split_host(authority, 443)
    why = verdict(host)
    if why:
        log("denied", f"CONNECT {host}:{port}", why)
        return await answer(writer, "403 Forbidden", f"egress to {host} denied: {why}")
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await writer.drain()
    hello = await asyncio.wait_for(read_hello(reader), HEAD_TIMEOUT)
    named = server_name(hello)
    if named != host.rstrip("."):
        why = f"its TLS ClientHello names {named or 'no server'}" if hello[:1] == b"\x16" else "it is not TLS"
        log("denied", f"CONNECT {host}:{port}", why)
        writer.close()
        return
    upstream_reader, upstream_writer = await open_upstream(host, port)
    upstream_writer.write(hello)
    await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


async def forward(reader, writer, method, target, version, headers):
    if not target.lower().startswith("http://"):
        log("denied", f"{method} {target[:200]}", "only CONNECT or absolute http:// requests go through")
        return await answer(writer, "400 Bad Request", "send requests through this proxy as a proxy client does")
    authority, _, path = target[7:].partition("/")
    host, port = split_host(authority.rpartition("@")[2], 80)
    why = verdict(host)
    named = [v for k, v in headers if k.lower() == "host"]
    if not why and named and split_host(named[0].strip(), 80)[0] != host:
        why = f"its Host header names {named[0].strip()[:200]}"
    if why:
        log("denied", f"{method} http://{host}:{port}", why)
        return await answer(writer, "403 Forbidden", f"egress to {host} denied: {why}")
    upstream_reader, upstream_writer = await open_upstream(host, port)
    kept = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
    head = f"{method} /{path} {version}\r\n" + "".join("{}: {}\r\n".format(*kv) for kv in kept)
    upstream_writer.write((head + "Connection: close\r\n\r\n").encode("latin-1"))
    await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


async def serve(reader, writer):
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = ([*lines[0].split(" "), "", ""])[:3]
        headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:] if ":" in line]
        if method.upper() == "CONNECT":
            await tunnel(reader, writer, target)
        else:
            await forward(reader, writer, method, target, version or "HTTP/1.1", headers)
    except ValueError:  # a port that is no number
        await answer(writer, "400 Bad Request", "a malformed request")
    except asyncio.LimitOverrunError:
        await answer(writer, "431 Request Header Fields Too Large", "request head too large")
    except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
        writer.close()
    except OSError as e:
        try:
            await answer(writer, "502 Bad Gateway", f"cannot reach it: {e}")
        except OSError:
            pass


async def main():
    address = RULES.get("bind", "0.0.0.0")  # (its container's every interface; a test binds loopback)
    server = await asyncio.start_server(serve, address, int(RULES.get("port", 3128)), limit=HEAD_LIMIT)
    sys.stdout.write(
        "egress proxy for sandbox {}: allow {}, deny {}\n".format(
            RULES.get("sandbox", "?"), ", ".join(RULES.get("allow", [])) or "nothing", ", ".join(RULES.get("deny", []))
        )
    )
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
