"""The frame codec of the link between the server's relay and the in-sandbox launcher, both ends.

Owns the wire format, its incremental decoder, and the one cut of a message too big for the
link. The relay (backends/kernel_relay.py) imports it; the launcher (programs/launcher.py) gets
it shipped with its own source (``kernel_relay.launcher_source``): standard library only, Python
3.8+, nothing from jupyter_sandbox.

Wire format (both directions, on the byte stream after the launcher's request line)::

    message := kind:u8  count:u32be  part{count}
    part    := length:u32be  bytes{length}

kinds: 0 shell, 1 iopub, 2 stdin, 3 control, 4 hb (the parts are the raw ZMQ multipart frames),
255 launcher control (one part, a JSON object). See launcher.py for what goes in them.

A message bigger than ``OUTPUT_CAP`` is made to fit by :func:`cut_message`, in the sandbox and
again on the server (which must not trust the sandbox): a ``stream`` message goes on in pieces
of at most the cap each (the server keeps what ``max_output_size`` allows, and counts the rest),
other outputs are replaced by a line saying what was dropped, with the bytes dropped in the
metadata under ``jupyter_sandbox_dropped``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import struct
from typing import Any

SHELL, IOPUB, STDIN, CONTROL, HB, LAUNCHER = 0, 1, 2, 3, 4, 255
MAX_PARTS = 1 << 16
DELIMITER = b"<IDS|MSG>"
DROPPED = "jupyter_sandbox_dropped"  # metadata of a cut-down message: bytes it lost (the collector counts them)
OUTPUT_CAP = 8 << 20  # bytes of one message on the link; a bigger one is cut (in the sandbox, and on the server)
# Of one stream message, what the launcher sends on (in pieces): the rest is dropped in the sandbox
# and counted. While the server reads a big output at its budget, the launcher does not read the
# kernel, whose messages then wait in its memory: a 200 MB print sent whole got it OOM-killed in a
# 1G sandbox (tests/security/test_output.py).
STREAM_MOST = 32 << 20
# The pieces the launcher cuts a long stream into. The server holds each piece several times over
# as it passes it on (the frame, its parsed text, the NDJSON line and its bytes): 8 MiB pieces made
# a 100 MB print cost it ~50 MB at its peak, 2 MiB pieces ~20 (benchmarks/run.py's output row).
STREAM_PIECE = 2 << 20
SIGNATURE_SIZE = 64  # hex of an HMAC-SHA256

HEAD = struct.Struct(">BI")
LENGTH = struct.Struct(">I")


class FrameError(Exception):
    """The byte stream does not follow the wire format."""


def encode(kind: int, parts: list[bytes], out: list[bytes]) -> None:
    """Append one message's frames to ``out`` (joined and written by the caller)."""
    out.append(HEAD.pack(kind, len(parts)))
    for p in parts:
        out.append(LENGTH.pack(len(p)))
        out.append(p)


class Skipped:
    """A part too big to keep (see FrameDecoder): only its size, and for a message's content
    whether the message's signature held (computed while its bytes streamed past)."""

    __slots__ = ("size", "valid")

    def __init__(self, size: int):
        self.size = size
        self.valid: bool | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Skipped) and other.size == self.size

    def __hash__(self) -> int:
        return hash(self.size)

    def __repr__(self) -> str:
        return f"Skipped({self.size})"


class FrameDecoder:
    """Incremental decoder: state is kept across chunks, each byte is looked at once.

    At most ``max_message_bytes`` of one message are held. With ``skip`` (the server), a part
    that would go over is not buffered but skipped as its bytes arrive, and stands in the
    message as a :class:`Skipped`; with the kernel's ``key``, a skipped content part still gets
    its signature checked. Without ``skip`` (the launcher), such a message is a FrameError.
    """

    def __init__(self, max_message_bytes: int, key: bytes = b"", skip: bool = True):
        self.max_message_bytes = max_message_bytes
        self._key = key
        self._skip_oversized = skip
        self._buf = bytearray()
        self._kind: int | None = None
        self._left = 0
        self._parts: list[bytes | Skipped] = []
        self._size = 0
        self._skip = 0  # bytes of the current (skipped) part still to come
        self._skipped: Skipped | None = None
        self._mac: Any = None  # the signature being computed over a skipped content part
        self.consumed = 0  # bytes taken from the stream so far (skipped ones included)
        self.skipped = 0  # of which skipped

    def push(self, data: bytes) -> None:
        """Buffer ``data`` to be parsed by the next ``feed``."""
        self._buf += data

    @property
    def buffered(self) -> bytes:
        """The first bytes not parsed yet (what a broken stream said, for an error message)."""
        return bytes(self._buf[:300])

    @property
    def partial(self) -> bool:
        """Whether a message has begun and not ended (or bytes wait to be parsed)."""
        return bool(self._buf) or self._kind is not None

    def feed(self, data: bytes, limit: int | None = None) -> list[tuple[int, list[Any]]]:
        """The messages completed by ``data``; with ``limit``, at most that many (the rest of the
        data stays buffered: call ``feed(b"")`` again)."""
        buf = self._buf
        buf += data
        out: list[tuple[int, list[Any]]] = []
        with memoryview(buf) as view:  # slices of a view: each part is copied once
            pos = self._parse(view, out, limit)
        del buf[:pos]  # bytearray drops a prefix in O(1) amortized
        self.consumed += pos
        return out

    def _parse(self, buf: memoryview, out: list[tuple[int, list[Any]]], limit: int | None) -> int:
        """Take whole parts from buf; returns how many bytes were consumed."""
        pos, end = 0, len(buf)
        while True:
            if self._skip:
                take = min(self._skip, end - pos)
                if self._mac is not None:
                    self._mac.update(buf[pos : pos + take])
                pos += take
                self.skipped += take
                self._skip -= take
                if self._skip:
                    return pos
                self._end_skip()
            elif self._kind is None:
                if limit is not None and len(out) >= limit:
                    return pos
                if end - pos < 5:
                    return pos
                kind, count = HEAD.unpack_from(buf, pos)
                pos += 5
                if kind > HB and kind != LAUNCHER:
                    raise FrameError(f"unknown message kind {kind}")
                if count > MAX_PARTS:
                    raise FrameError(f"message with {count} parts")
                self._kind, self._left, self._parts, self._size = kind, count, [], 0
            elif self._left:
                if end - pos < 4:
                    return pos
                (n,) = LENGTH.unpack_from(buf, pos)
                if self._size + n > self.max_message_bytes:
                    if not self._skip_oversized:
                        raise FrameError(f"message larger than {self.max_message_bytes} bytes")
                    pos += 4
                    self._start_skip(n)
                    continue
                if end - pos < 4 + n:
                    return pos
                self._parts.append(bytes(buf[pos + 4 : pos + 4 + n]))
                pos += 4 + n
                self._size += n
                self._left -= 1
            if self._kind is not None and not self._left and not self._skip:
                out.append((self._kind, self._parts))
                self._kind = None

    def _start_skip(self, n: int) -> None:
        self._skipped = Skipped(n)
        self._skip = n
        parts = self._parts
        try:
            d = parts.index(DELIMITER)
        except ValueError:
            d = -1
        # content (the 4th signed frame) after a whole header, parent and metadata: its
        # signature can still be checked as its bytes go by
        if self._key and d >= 0 and len(parts) == d + 5 and all(isinstance(p, bytes) for p in parts[d + 1 :]):
            self._mac = hmac.new(self._key, digestmod=hashlib.sha256)
            for p in parts[d + 2 :]:
                if isinstance(p, bytes):  # always, checked just above (and so mypy knows it)
                    self._mac.update(p)
        if not n:
            self._end_skip()

    def _end_skip(self) -> None:
        skipped = self._skipped
        assert skipped is not None
        if self._mac is not None:
            signature = self._parts[-4]
            skipped.valid = isinstance(signature, bytes) and hmac.compare_digest(
                self._mac.hexdigest().encode(), signature
            )
            self._mac = None
        self._parts.append(skipped)
        self._skipped = None
        self._left -= 1


# -- the cut of a message too big for the link ------------------------------------------------
def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _dumps(value: Any) -> bytes:
    """JSON as jupyter_client writes it (UTF-8, not escaped); escaped where that cannot encode."""
    try:
        return json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return json.dumps(value).encode()


def _sign(key: bytes, frames: list[bytes]) -> bytes:
    if not key:
        return b""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for frame in frames:
        mac.update(frame)
    return mac.hexdigest().encode()


def is_stream(parts: list[Any]) -> bool:
    """Whether a Jupyter message's header says it is a ``stream`` (its text may be cut in pieces)."""
    try:
        d = parts.index(DELIMITER)
    except ValueError:
        return False
    header = _json(parts[d + 2]) if len(parts) > d + 2 and isinstance(parts[d + 2], bytes) else None
    return isinstance(header, dict) and header.get("msg_type") == "stream"


def cut_message(
    parts: list[Any],
    key: bytes,
    iopub: bool,
    cap: int = OUTPUT_CAP,
    where: str = "on the server",
    most_text: int | None = None,
) -> list[list[bytes]]:
    """A message over ``cap`` bytes (or with Skipped parts) made to fit, as messages of at most
    ``cap`` bytes each, signed again: a stream's text in pieces, other outputs cut down; none
    to drop it. A message whose signature does not hold keeps a bad signature, so that the
    client still rejects it. ``where`` says in the notes where the bytes were dropped.
    With ``most_text``, at most that many bytes of a stream's text go on; the last piece
    says in its metadata how many were dropped."""
    try:
        d = parts.index(DELIMITER)
    except ValueError:
        return []
    signature, *signed = parts[d + 1 : d + 6]
    if len(signed) != 4 or not all(isinstance(p, bytes) for p in [*parts[:d], signature, *signed[:3]]):
        return []
    header_b, parent_b, metadata_b, content_b = signed
    size = content_b.size if isinstance(content_b, Skipped) else len(content_b)
    if isinstance(content_b, Skipped):
        valid = content_b.valid if key else True
    else:
        valid = hmac.compare_digest(_sign(key, signed), signature) if key else True
    if not valid:
        return [[*parts[: d + 5], b"{}"]]
    header = _json(header_b)
    msg_type = header.get("msg_type") if isinstance(header, dict) else None
    if not isinstance(msg_type, str):
        return []
    if msg_type == "stream" and isinstance(content_b, bytes):
        pieces = _stream_pieces(parts[:d], header_b, header, parent_b, metadata_b, content_b, key, cap, most_text)
        if pieces:
            return pieces
    content = None if isinstance(content_b, Skipped) else _json(content_b)
    cut, dropped = _cut_content(msg_type, content, size, iopub, where)
    if cut is None:
        return []
    metadata = _json(metadata_b) if dropped == 0 else {DROPPED: dropped}
    frames = [header_b, parent_b, json.dumps(metadata).encode(), json.dumps(cut).encode()]
    return [[*parts[:d], DELIMITER, _sign(key, frames), *frames]]


# the start of a stream's content as jupyter_client writes it, up to the text's opening quote
_STREAM_OPENING = re.compile(rb'\{\s*"name"\s*:\s*(?:"(?:[^"\\]|\\.)*"|null)\s*,\s*"text"\s*:\s*"')


def _text_span(content_b: bytes) -> tuple[int, int] | None:
    """Where the inside of the text's JSON string is in a stream's content, without decoding it
    (a big text is not held twice), or None when the content is not laid out as expected."""
    opening = _STREAM_OPENING.match(content_b)
    end = len(content_b)
    while end and content_b[end - 1] in b" \t\r\n":
        end -= 1
    if opening is None or content_b[end - 2 : end] != b'"}' or end - 2 < opening.end():
        return None
    # every quote before the closing one escaped: the text is all there is after the name
    quote = content_b.find(b'"', opening.end(), end - 2)
    while True:
        at = end - 2 if quote < 0 else quote
        run = at
        while content_b[run - 1] == 0x5C:
            run -= 1
        if quote < 0:
            return (opening.end(), at) if (at - run) % 2 == 0 else None
        if (at - run) % 2 == 0:
            return None
        quote = content_b.find(b'"', quote + 1, end - 2)


def _stream_pieces(
    prefix: list[bytes],
    header_b: bytes,
    header: dict[str, Any],
    parent_b: bytes,
    metadata_b: bytes,
    content_b: bytes,
    key: bytes,
    cap: int,
    most_text: int | None,
) -> list[list[bytes]]:
    """A stream message as several of at most ``cap`` bytes each (same parent, same stream);
    none when it has no text, or the rest of the message leaves no room for any.

    The text's JSON is cut as it is, between two characters (never inside an escape, a UTF-8
    sequence or a surrogate pair), so each piece is valid JSON and the pieces' texts joined are
    the text; content laid out otherwise is written again first."""
    span = _text_span(content_b)
    if span is None:
        content = _json(content_b)
        text = content.get("text") if isinstance(content, dict) else None
        if not isinstance(text, str):
            return []
        content_b = _dumps({"name": content.get("name"), "text": text})
        span = _text_span(content_b)
        if span is None:
            return []
    start, end = span
    opening, closing = content_b[:start], content_b[end:]
    # bytes left for the text: the rest, with the longest header a piece can get
    longest_header = max(len(header_b), len(_dumps(dict(header, msg_id=f"{header.get('msg_id')}.{cap}"))))
    rest = sum(len(p) for p in prefix) + len(DELIMITER) + SIGNATURE_SIZE + len(parent_b) + max(len(metadata_b), 64)
    room = cap - rest - longest_header - len(opening) - len(closing)
    if room < cap // 2 or start == end:
        return []
    pieces: list[list[bytes]] = []
    text = memoryview(content_b)  # slices of a view: each piece's text is copied once
    dropped = 0
    if most_text is not None and end - start > most_text:
        end = _cut_point(content_b, start + most_text, start)
        dropped = _text_bytes(content_b, end, len(content_b) - len(closing))
    while start < end:
        cut = end if end - start <= room else _cut_point(content_b, start + room, start)
        piece = b"".join((opening, text[start:cut], closing))
        metadata = json.dumps({DROPPED: dropped}).encode() if dropped and cut == end else b"{}"
        if pieces:  # the first piece is the kernel's message; the others get ids of their own
            head = _dumps(dict(header, msg_id=f"{header.get('msg_id')}.{len(pieces)}"))
            frames = [head, parent_b, metadata, piece]
        else:
            frames = [header_b, parent_b, metadata_b if metadata == b"{}" else metadata, piece]
        pieces.append([*prefix, DELIMITER, _sign(key, frames), *frames])
        start = cut
    return pieces


def _text_bytes(data: bytes, start: int, end: int, chunk: int = 1 << 20) -> int:
    """The UTF-8 bytes of the text a JSON string's inside spells between ``start`` and ``end``
    (escapes decoded: the figure a person reads as "bytes dropped"), a chunk at a time so that
    tens of MB never take a second copy."""
    size = 0
    while start < end:
        cut = end if end - start <= chunk else _cut_point(data, start + chunk, start)
        text = json.loads(b'"' + bytes(data[start:cut]) + b'"')
        size += len(text.encode("utf-8", "surrogatepass"))
        start = cut
    return size


def _cut_point(data: bytes, pos: int, start: int) -> int:
    """The last position at or before ``pos`` (after ``start``) between two characters of a
    JSON string's inside in ``data``."""
    while True:
        moved = _step_back(data, pos, start)
        if moved == pos:
            return pos
        pos = moved


def _step_back(data: bytes, pos: int, start: int) -> int:
    while pos > start and data[pos] & 0xC0 == 0x80:  # inside a UTF-8 sequence
        pos -= 1
    backslash = data.rfind(b"\\", max(pos - 6, start), pos)
    if backslash >= 0:
        run = backslash
        while run > start and data[run - 1] == 0x5C:
            run -= 1
        if (backslash - run) % 2:  # the second of an escaped backslash
            escape, length = backslash - 1, 2
        else:
            escape, length = backslash, 6 if data[backslash + 1 : backslash + 2] == b"u" else 2
        if escape + length > pos:
            return escape
    # a surrogate pair written as two escapes: keep it whole
    low, high = data[pos : pos + 4].lower(), data[max(pos - 6, start) : max(pos - 2, start)].lower()
    if low[:3] == high[:3] == b"\\ud" and low[3:] in b"cdef" and high[3:] in b"89ab" and low[3:] and high[3:]:
        return pos - 6
    return pos


def _cut_content(msg_type: str, content: Any, size: int, iopub: bool, where: str) -> tuple[dict[str, Any] | None, int]:
    """A message's content cut down (or made up, when it was skipped), and how many bytes that dropped."""
    content = content if isinstance(content, dict) else {}
    if msg_type == "stream":
        note = f"[jupyter-sandbox: {size} bytes of output were dropped {where}]\n"
        return {"name": "stderr", "text": note}, size
    if msg_type in ("display_data", "execute_result", "update_display_data"):
        note = f"[jupyter-sandbox: an output of {size} bytes was dropped {where}]"
        cut = {k: content[k] for k in ("transient", "execution_count") if k in content}
        return {**cut, "data": {"text/plain": note}, "metadata": {}}, size
    if msg_type == "error" or "ename" in content or msg_type == "execute_reply":
        traceback = content.get("traceback")
        traceback = traceback[:200] if isinstance(traceback, list) else []
        evalue = content.get("evalue")
        cut = {
            "status": "error",
            "ename": str(content.get("ename") or "OutputTooLarge")[:200],
            "evalue": str(evalue)[:4096]
            if evalue is not None
            else f"the kernel's {msg_type} message of {size} bytes was too large for the server",
            "traceback": [str(line)[:4096] for line in traceback],
        }
        if msg_type == "execute_reply":
            cut["execution_count"] = content.get("execution_count")
            if content.get("status") == "ok":
                cut = {"status": "ok", "execution_count": cut["execution_count"], "user_expressions": {}, "payload": []}
        return cut, size
    if iopub:
        return None, size  # status, comm messages...: better lost than held
    note = f"the kernel's {msg_type} message of {size} bytes was too large for the server"
    return {"status": "error", "ename": "MessageTooLarge", "evalue": note, "traceback": []}, size
