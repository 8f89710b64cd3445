"""envd's protobuf messages, as tables, and their two encodings: proto3 JSON and binary protobuf.

A message is a plain ``dict`` keyed by the proto's (snake_case) field names; a ``Message`` table
says each field's number and kind. The E2B SDKs send and expect proto3 JSON (camelCase names,
enums by name, 64-bit integers as strings, timestamps as RFC 3339, defaults left out); other
Connect clients may send binary protobuf, so both are read and written from the same tables.
The tables follow envd's ``filesystem.proto`` (the process service adds its own beside them).
"""

from __future__ import annotations

import base64
import datetime
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInput

# field kinds: scalars by name; a nested message or an enum by its table
SCALARS = {"string", "bytes", "bool", "int32", "sint32", "uint32", "int64", "uint64", "timestamp"}


@dataclass(frozen=True)
class Enum:
    name: str
    values: tuple[str, ...]  # by number

    def number(self, value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value in self.values:
            return self.values.index(value)
        raise InvalidInput(f"{value!r} is not a {self.name}")

    def label(self, number: int) -> str | int:
        return self.values[number] if 0 <= number < len(self.values) else number


@dataclass(frozen=True)
class Field:
    name: str
    number: int
    kind: str | Enum | Message
    repeated: bool = False
    map_of: str | None = None  # a map<string, map_of> (only string values are used by envd)
    optional: bool = False  # proto3 ``optional`` or a oneof member: written even when default

    @property
    def json_name(self) -> str:
        head, *rest = self.name.split("_")
        return head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True)
class Message:
    name: str
    fields: tuple[Field, ...] = field(default_factory=tuple)

    def by_json(self, key: str) -> Field | None:
        for f in self.fields:
            if key in (f.name, f.json_name):
                return f
        return None

    def by_number(self, number: int) -> Field | None:
        for f in self.fields:
            if f.number == number:
                return f
        return None


def _default(f: Field) -> Any:
    if f.repeated:
        return []
    if f.map_of:
        return {}
    if isinstance(f.kind, Message):
        return None
    if isinstance(f.kind, Enum):
        return 0
    return {"string": "", "bytes": b"", "bool": False, "timestamp": None}.get(f.kind, 0)


def _is_default(f: Field, value: Any) -> bool:
    if f.optional and value is not None:
        return False
    return value is None or value == _default(f) or (isinstance(f.kind, Enum) and f.kind.number(value) == 0)


# ---- JSON ----


def _timestamp_json(value: datetime.datetime) -> str:
    utc = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def _parse_timestamp(text: Any) -> datetime.datetime:
    if not isinstance(text, str):
        raise InvalidInput(f"a timestamp must be an RFC 3339 string, not {text!r}")
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{text!r} is not an RFC 3339 timestamp") from None


def _scalar_to_json(kind: str | Enum | Message, value: Any) -> Any:
    if isinstance(kind, Message):
        return to_json(kind, value)
    if isinstance(kind, Enum):
        return kind.label(kind.number(value))
    if kind in ("int64", "uint64"):
        return str(int(value))
    if kind == "bytes":
        return base64.b64encode(value).decode()
    if kind == "timestamp":
        return _timestamp_json(value)
    return value


def to_json(message: Message, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as proto3 JSON (default values left out)."""
    out: dict[str, Any] = {}
    for f in message.fields:
        value: Any = values.get(f.name)
        if _is_default(f, value):
            continue
        if f.repeated:
            out[f.json_name] = [_scalar_to_json(f.kind, v) for v in value]
        elif f.map_of:
            out[f.json_name] = {str(k): v for k, v in value.items()}
        else:
            out[f.json_name] = _scalar_to_json(f.kind, value)
    return out


def _scalar_from_json(f: Field, kind: str | Enum | Message, value: Any) -> Any:
    if isinstance(kind, Message):
        if not isinstance(value, dict):
            raise InvalidInput(f"{f.name} must be an object")
        return from_json(kind, value)
    if isinstance(kind, Enum):
        return kind.number(value)
    if kind == "string":
        if not isinstance(value, str):
            raise InvalidInput(f"{f.name} must be a string")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise InvalidInput(f"{f.name} must be true or false")
        return value
    if kind == "bytes":
        try:
            return base64.b64decode(
                value + "=" * (-len(value) % 4), altchars=b"-_" if "-" in value or "_" in value else None
            )
        except (TypeError, ValueError):
            raise InvalidInput(f"{f.name} must be base64") from None
    if kind == "timestamp":
        return _parse_timestamp(value)
    try:
        number = int(value)  # 64-bit integers come as strings
    except (TypeError, ValueError):
        raise InvalidInput(f"{f.name} must be an integer, not {value!r}") from None
    if isinstance(value, bool) or (kind.startswith("uint") and number < 0):
        raise InvalidInput(f"{f.name} must be a non-negative integer, not {value!r}")
    return number


def from_json(message: Message, data: Any) -> dict[str, Any]:
    """A message from proto3 JSON; unknown fields are ignored (a newer SDK may send more)."""
    if not isinstance(data, dict):
        raise InvalidInput(f"a {message.name} must be a JSON object")
    values = {f.name: _default(f) for f in message.fields}
    for key, value in data.items():
        f = message.by_json(key)
        if f is None or value is None:
            continue
        if f.repeated:
            if not isinstance(value, list):
                raise InvalidInput(f"{f.name} must be a list")
            values[f.name] = [_scalar_from_json(f, f.kind, v) for v in value]
        elif f.map_of:
            if not isinstance(value, dict):
                raise InvalidInput(f"{f.name} must be an object")
            values[f.name] = {str(k): str(v) for k, v in value.items()}
        else:
            values[f.name] = _scalar_from_json(f, f.kind, value)
    return values


# ---- binary ----

VARINT, I64, LEN, I32 = 0, 1, 2, 5


def _varint(number: int) -> bytes:
    number &= (1 << 64) - 1  # negative numbers as two's complement, as protobuf does
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    number = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise InvalidInput("a protobuf message ends in the middle of a number")
        byte = data[at]
        number |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            return number, at


def _tagged(number: int, wire: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire) + payload


def _encode_one(f: Field, kind: str | Enum | Message, value: Any) -> bytes:
    if isinstance(kind, Message):
        body = to_binary(kind, value)
        return _tagged(f.number, LEN, _varint(len(body)) + body)
    if isinstance(kind, Enum):
        return _tagged(f.number, VARINT, _varint(kind.number(value)))
    if kind in ("string", "bytes"):
        body = value.encode() if kind == "string" else value
        return _tagged(f.number, LEN, _varint(len(body)) + body)
    if kind == "timestamp":
        seconds = value.timestamp()
        whole = int(seconds // 1)
        body = _tagged(1, VARINT, _varint(whole)) + _tagged(2, VARINT, _varint(round((seconds - whole) * 1e9)))
        return _tagged(f.number, LEN, _varint(len(body)) + body)
    if kind == "sint32":  # zigzag: small negative numbers stay short
        return _tagged(f.number, VARINT, _varint((int(value) << 1) ^ (int(value) >> 31)))
    return _tagged(f.number, VARINT, _varint(int(value)))


def to_binary(message: Message, values: dict[str, Any]) -> bytes:
    out = bytearray()
    for f in message.fields:
        value: Any = values.get(f.name)
        if _is_default(f, value):
            continue
        if f.repeated:
            for item in value:
                out += _encode_one(f, f.kind, item)
        elif f.map_of:
            entry = Message("entry", (Field("key", 1, "string"), Field("value", 2, f.map_of)))
            for k, v in value.items():
                out += _encode_one(Field(f.name, f.number, entry), entry, {"key": k, "value": v})
        else:
            out += _encode_one(f, f.kind, value)
    return bytes(out)


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    at = 0
    while at < len(data):
        key, at = _read_varint(data, at)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == VARINT:
            value, at = _read_varint(data, at)
        elif wire == LEN:
            size, at = _read_varint(data, at)
            if at + size > len(data):
                raise InvalidInput("a protobuf message ends in the middle of a field")
            value, at = data[at : at + size], at + size
        elif wire in (I64, I32):
            size = 8 if wire == I64 else 4
            value, at = data[at : at + size], at + size
        else:
            raise InvalidInput(f"a protobuf field of unknown wire type {wire}")
        yield number, wire, value


def _decode_one(f: Field, kind: str | Enum | Message, wire: int, raw: Any) -> Any:
    expected = LEN if isinstance(kind, Message) or kind in ("string", "bytes", "timestamp") else VARINT
    if wire != expected:
        raise InvalidInput(f"protobuf field {f.name} has the wrong wire type")
    if isinstance(kind, Message):
        return from_binary(kind, raw)
    if kind == "string":
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise InvalidInput(f"{f.name} is not UTF-8") from None
    if kind == "bytes":
        return bytes(raw)
    if kind == "timestamp":
        parts = {n: v for n, _, v in _fields(raw)}
        seconds = struct.unpack("<q", struct.pack("<Q", parts.get(1, 0)))[0] + parts.get(2, 0) / 1e9
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    if kind == "bool":
        return bool(raw)
    if kind == "sint32":
        return (raw >> 1) ^ -(raw & 1)
    if kind in ("int32", "int64"):
        return struct.unpack("<q", struct.pack("<Q", raw))[0]
    return raw  # uint32/uint64/enum


def from_binary(message: Message, data: bytes) -> dict[str, Any]:
    values = {f.name: _default(f) for f in message.fields}
    for number, wire, raw in _fields(bytes(data)):
        f = message.by_number(number)
        if f is None:
            continue  # unknown field: ignored, as in JSON
        if f.map_of:
            entry = Message("entry", (Field("key", 1, "string"), Field("value", 2, f.map_of)))
            pair = from_binary(entry, raw)
            values[f.name][pair["key"]] = pair["value"]
        elif f.repeated:
            values[f.name].append(_decode_one(f, f.kind, wire, raw))
        else:
            values[f.name] = _decode_one(f, f.kind, wire, raw)
    return values


@dataclass(frozen=True)
class Codec:
    """One of Connect's codecs: its name in content types and its two directions."""

    name: str
    decode: Callable[[Message, bytes], dict[str, Any]]
    encode: Callable[[Message, dict[str, Any]], bytes]


# ---- envd's filesystem.proto ----

FILE_TYPE = Enum("FileType", ("FILE_TYPE_UNSPECIFIED", "FILE_TYPE_FILE", "FILE_TYPE_DIRECTORY", "FILE_TYPE_SYMLINK"))
EVENT_TYPE = Enum(
    "EventType",
    (
        "EVENT_TYPE_UNSPECIFIED",
        "EVENT_TYPE_CREATE",
        "EVENT_TYPE_WRITE",
        "EVENT_TYPE_REMOVE",
        "EVENT_TYPE_RENAME",
        "EVENT_TYPE_CHMOD",
    ),
)
ENTRY_INFO = Message(
    "EntryInfo",
    (
        Field("name", 1, "string"),
        Field("type", 2, FILE_TYPE),
        Field("path", 3, "string"),
        Field("size", 4, "int64"),
        Field("mode", 5, "uint32"),
        Field("permissions", 6, "string"),
        Field("owner", 7, "string"),
        Field("group", 8, "string"),
        Field("modified_time", 9, "timestamp"),
        Field("symlink_target", 10, "string", optional=True),
        Field("metadata", 11, "string", map_of="string"),
    ),
)
_PATH = (Field("path", 1, "string"),)
_ENTRY = (Field("entry", 1, ENTRY_INFO),)
STAT_REQUEST, STAT_RESPONSE = Message("StatRequest", _PATH), Message("StatResponse", _ENTRY)
MAKE_DIR_REQUEST, MAKE_DIR_RESPONSE = Message("MakeDirRequest", _PATH), Message("MakeDirResponse", _ENTRY)
MOVE_REQUEST = Message("MoveRequest", (Field("source", 1, "string"), Field("destination", 2, "string")))
MOVE_RESPONSE = Message("MoveResponse", _ENTRY)
LIST_DIR_REQUEST = Message("ListDirRequest", (*_PATH, Field("depth", 2, "uint32")))
LIST_DIR_RESPONSE = Message("ListDirResponse", (Field("entries", 1, ENTRY_INFO, repeated=True),))
REMOVE_REQUEST, REMOVE_RESPONSE = Message("RemoveRequest", _PATH), Message("RemoveResponse")
_WATCH = (
    *_PATH,
    Field("recursive", 2, "bool"),
    Field("include_entry", 3, "bool"),
    Field("allow_network_mounts", 4, "bool"),
)
WATCH_DIR_REQUEST = Message("WatchDirRequest", _WATCH)
FILESYSTEM_EVENT = Message(
    "FilesystemEvent",
    (Field("name", 1, "string"), Field("type", 2, EVENT_TYPE), Field("entry", 3, ENTRY_INFO, optional=True)),
)
_EMPTY = Message("Empty")
WATCH_DIR_RESPONSE = Message(  # a oneof: exactly one of these is set
    "WatchDirResponse",
    (
        Field("start", 1, _EMPTY, optional=True),
        Field("filesystem", 2, FILESYSTEM_EVENT, optional=True),
        Field("keepalive", 3, _EMPTY, optional=True),
    ),
)
CREATE_WATCHER_REQUEST = Message("CreateWatcherRequest", _WATCH)
CREATE_WATCHER_RESPONSE = Message("CreateWatcherResponse", (Field("watcher_id", 1, "string"),))
GET_WATCHER_EVENTS_REQUEST = Message("GetWatcherEventsRequest", (Field("watcher_id", 1, "string"),))
GET_WATCHER_EVENTS_RESPONSE = Message(
    "GetWatcherEventsResponse", (Field("events", 1, FILESYSTEM_EVENT, repeated=True),)
)
REMOVE_WATCHER_REQUEST = Message("RemoveWatcherRequest", (Field("watcher_id", 1, "string"),))
REMOVE_WATCHER_RESPONSE = Message("RemoveWatcherResponse")
