"""envd's process.proto as envd_proto.py's tables: the messages of the process service."""

from __future__ import annotations

from .envd_proto import Enum, Field, Message

_EMPTY = Message("Empty")
# Signal numbers are the enum's: SIGKILL is 9, SIGTERM 15 (the others are no signal of envd's)
SIGNAL = Enum(
    "Signal",
    tuple({0: "SIGNAL_UNSPECIFIED", 9: "SIGNAL_SIGKILL", 15: "SIGNAL_SIGTERM"}.get(n, f"_{n}") for n in range(16)),
)
PTY_SIZE = Message("Size", (Field("cols", 1, "uint32"), Field("rows", 2, "uint32")))
PTY = Message("PTY", (Field("size", 1, PTY_SIZE),))
PROCESS_CONFIG = Message(
    "ProcessConfig",
    (
        Field("cmd", 1, "string"),
        Field("args", 2, "string", repeated=True),
        Field("envs", 3, "string", map_of="string"),
        Field("cwd", 4, "string", optional=True),
    ),
)
PROCESS_INFO = Message(
    "ProcessInfo",
    (Field("config", 1, PROCESS_CONFIG), Field("pid", 2, "uint32"), Field("tag", 3, "string", optional=True)),
)
SELECTOR = Message(  # a oneof
    "ProcessSelector", (Field("pid", 1, "uint32", optional=True), Field("tag", 2, "string", optional=True))
)
_SELECTED = (Field("process", 1, SELECTOR),)
PROCESS_INPUT = Message(  # a oneof
    "ProcessInput", (Field("stdin", 1, "bytes", optional=True), Field("pty", 2, "bytes", optional=True))
)

LIST_REQUEST = Message("ListRequest")
LIST_RESPONSE = Message("ListResponse", (Field("processes", 1, PROCESS_INFO, repeated=True),))
START_REQUEST = Message(
    "StartRequest",
    (
        Field("process", 1, PROCESS_CONFIG),
        Field("pty", 2, PTY, optional=True),
        Field("tag", 3, "string", optional=True),
        Field("stdin", 4, "bool", optional=True),
    ),
)
CONNECT_REQUEST = Message("ConnectRequest", _SELECTED)
UPDATE_REQUEST = Message("UpdateRequest", (*_SELECTED, Field("pty", 2, PTY, optional=True)))
SEND_INPUT_REQUEST = Message("SendInputRequest", (*_SELECTED, Field("input", 2, PROCESS_INPUT)))
SEND_SIGNAL_REQUEST = Message("SendSignalRequest", (*_SELECTED, Field("signal", 2, SIGNAL)))
CLOSE_STDIN_REQUEST = Message("CloseStdinRequest", _SELECTED)
STREAM_INPUT_REQUEST = Message(  # a oneof: the first names the process, the others carry input
    "StreamInputRequest",
    (
        Field("start", 1, Message("StartEvent", _SELECTED), optional=True),
        Field("data", 2, Message("DataEvent", (Field("input", 2, PROCESS_INPUT),)), optional=True),
        Field("keepalive", 3, _EMPTY, optional=True),
    ),
)
UPDATE_RESPONSE = Message("UpdateResponse")
SEND_INPUT_RESPONSE = Message("SendInputResponse")
SEND_SIGNAL_RESPONSE = Message("SendSignalResponse")
CLOSE_STDIN_RESPONSE = Message("CloseStdinResponse")
STREAM_INPUT_RESPONSE = Message("StreamInputResponse")

DATA_EVENT = Message(  # a oneof
    "DataEvent",
    (
        Field("stdout", 1, "bytes", optional=True),
        Field("stderr", 2, "bytes", optional=True),
        Field("pty", 3, "bytes", optional=True),
    ),
)
END_EVENT = Message(
    "EndEvent",
    (
        Field("exit_code", 1, "sint32"),
        Field("exited", 2, "bool"),
        Field("status", 3, "string"),
        Field("error", 4, "string", optional=True),
    ),
)
PROCESS_EVENT = Message(  # a oneof
    "ProcessEvent",
    (
        Field("start", 1, Message("StartEvent", (Field("pid", 1, "uint32"),)), optional=True),
        Field("data", 2, DATA_EVENT, optional=True),
        Field("end", 3, END_EVENT, optional=True),
        Field("keepalive", 4, _EMPTY, optional=True),
    ),
)
START_RESPONSE = Message("StartResponse", (Field("event", 1, PROCESS_EVENT),))
CONNECT_RESPONSE = Message("ConnectResponse", (Field("event", 1, PROCESS_EVENT),))
