"""The frame codec shared by the relay and the launcher (backends/programs/frames.py): the cut of a
message too big for the link, and the launcher shipped with the codec as one ``python -I -c``."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
from jupyter_client.session import Session

from jupyter_sandbox.backends import kernel_relay, programs
from jupyter_sandbox.backends.programs import frames, launcher
from jupyter_sandbox.backends.programs.frames import (
    DELIMITER,
    DROPPED,
    IOPUB,
    LAUNCHER,
    SHELL,
    FrameDecoder,
    FrameError,
    cut_message,
    encode,
)

KEY = b"k" * 64
MiB = 1 << 20


def signed(session: Session, msg_type: str, content: dict, metadata: dict | None = None) -> list[bytes]:
    msg = session.msg(msg_type, content, parent={"msg_id": "p1"}, metadata=metadata)
    return [b"kernel.k1.stream", *session.serialize(msg)]


def unpack(session: Session, parts: list[bytes]) -> dict:
    return session.deserialize(session.feed_identities(parts)[1])  # checks the signature


TEXTS = {"ascii": "x" * (20 * MiB), "emoji": "\U0001f600" * (5 * MiB) + "end", "lone surrogates": "ab\ud800cd" * MiB}


@pytest.mark.parametrize("kind", TEXTS)
def test_a_stream_over_the_cap_goes_on_in_pieces_each_within_it(kind):
    text = TEXTS[kind]
    session = Session(key=KEY)
    parts = signed(session, "stream", {"name": "stdout", "text": ""}, metadata={"m": 1})
    # as JSON escapes it: jupyter_client cannot write a lone surrogate, code in a sandbox can
    parts[-1] = json.dumps({"name": "stdout", "text": text}).encode()
    parts[parts.index(DELIMITER) + 1] = session.sign(parts[-4:])
    cap = 4 * MiB
    pieces = cut_message(parts, KEY, iopub=True, cap=cap)
    assert len(pieces) > 1
    messages = [unpack(session, piece) for piece in pieces]
    for piece in pieces:
        assert sum(len(p) for p in piece) <= cap
        assert piece[0] == b"kernel.k1.stream"
    assert "".join(m["content"]["text"] for m in messages) == text
    assert {m["content"]["name"] for m in messages} == {"stdout"}
    assert all(m["parent_header"] == {"msg_id": "p1"} for m in messages)
    ids = [m["header"]["msg_id"] for m in messages]
    assert ids[0] == json.loads(parts[3])["msg_id"] and len(set(ids)) == len(ids)
    # the kernel's metadata once (a count of dropped bytes in it must not be multiplied)
    assert [m["metadata"] for m in messages] == [{"m": 1}] + [{}] * (len(messages) - 1)
    assert all(DROPPED not in m["metadata"] for m in messages)


@pytest.mark.parametrize("seed", range(6))
def test_pieces_are_cut_between_characters_whatever_the_text(seed):
    """Many cuts through escapes, multi-byte characters and surrogate pairs: each piece is valid
    JSON within the cap, and the pieces' texts joined are the text."""
    rng = random.Random(seed)
    alphabet = ["a", "\\", '"', "\n", "\x01", "\u00e9", "\u2028", "\U0001f600", "\\u0041"]
    if seed % 2:  # lone surrogates: the whole text is then written with escapes, pairs included
        alphabet += ["\ud800", "\udc00"]
    text = "".join(rng.choice(alphabet) for _ in range(60_000))
    session = Session(key=KEY)
    parts = signed(session, "stream", {"name": "stderr", "text": ""})
    parts[-1] = json.dumps({"name": "stderr", "text": text}).encode()
    parts[parts.index(DELIMITER) + 1] = session.sign(parts[-4:])
    cap = 8 * 1024 + rng.randrange(1024)
    pieces = cut_message(parts, KEY, iopub=True, cap=cap)
    assert len(pieces) > 10
    assert all(sum(len(p) for p in piece) <= cap for piece in pieces)
    whole = json.loads(parts[-1])["text"]  # as the client reads it uncut (JSON joins "\ud800\udc00")
    assert "".join(unpack(session, piece)["content"]["text"] for piece in pieces) == whole


def test_at_most_so_much_of_a_stream_goes_on_and_the_rest_is_counted():
    session = Session(key=KEY)
    text = "x" * (30 * MiB)
    parts = signed(session, "stream", {"name": "stdout", "text": text})
    pieces = cut_message(parts, KEY, iopub=True, most_text=10 * MiB)
    messages = [unpack(session, piece) for piece in pieces]
    sent = "".join(m["content"]["text"] for m in messages)
    assert sent == "x" * (10 * MiB)
    assert [m["metadata"] for m in messages] == [{}] * (len(messages) - 1) + [{DROPPED: 20 * MiB}]


def test_outputs_that_cannot_be_split_are_cut_down_and_others_dropped():
    session = Session(key=KEY)
    display = signed(session, "display_data", {"data": {"image/png": "A" * (9 * MiB)}, "metadata": {}})
    (cut,) = cut_message(display, KEY, iopub=True, where="in the sandbox")
    message = unpack(session, cut)
    assert message["content"]["data"] == {
        "text/plain": f"[jupyter-sandbox: an output of {len(display[-1])} bytes was dropped in the sandbox]"
    }
    assert message["metadata"] == {DROPPED: len(display[-1])}
    error = signed(session, "error", {"ename": "E", "evalue": "v" * (9 * MiB), "traceback": ["t" * 9000] * 300})
    (cut,) = cut_message(error, KEY, iopub=True)
    content = unpack(session, cut)["content"]
    assert len(content["evalue"]) == 4096 and len(content["traceback"]) == 200
    assert {len(line) for line in content["traceback"]} == {4096}
    status = signed(session, "status", {"execution_state": "busy", "x": "y" * (9 * MiB)})
    assert cut_message(status, KEY, iopub=True) == []
    assert cut_message([b"topic", b"no delimiter", b"x" * (9 * MiB)], KEY, iopub=True) == []


def test_a_bad_signature_stays_bad():
    session = Session(key=KEY)
    parts = signed(session, "stream", {"name": "stdout", "text": "w" * (9 * MiB)})
    parts[parts.index(DELIMITER) + 1] = b"0" * 64
    (cut,) = cut_message(parts, KEY, iopub=True)
    assert cut[-1] == b"{}" and sum(len(p) for p in cut) < 4096
    with pytest.raises(ValueError, match="Signature"):
        unpack(session, cut)


def test_the_launchers_decoder_refuses_what_is_over_its_cap():
    out: list[bytes] = []
    encode(SHELL, [b"x" * 600, b"y" * 600], out)
    encode(LAUNCHER, [b"{}"], out)
    with pytest.raises(FrameError, match="larger than 1000"):
        FrameDecoder(1000, skip=False).feed(b"".join(out))
    assert FrameDecoder(2000, skip=False).feed(b"".join(out)) == [
        (SHELL, [b"x" * 600, b"y" * 600]),
        (LAUNCHER, [b"{}"]),
    ]


def test_what_is_dropped_is_counted_in_the_text_s_bytes_not_its_json_escapes():
    # lines end in "\n" (two bytes in JSON, one printed), quotes and "é" (\u00e9 in JSON, two
    # bytes printed): the count is what the program printed and did not get through
    session = Session(key=KEY)
    line = 'row "é"\t' + "x" * 1000 + "\n"
    text = line * 30_000
    parts = signed(session, "stream", {"name": "stdout", "text": text})
    pieces = cut_message(parts, KEY, iopub=True, most_text=10 * MiB)
    messages = [unpack(session, piece) for piece in pieces]
    sent = "".join(m["content"]["text"] for m in messages)
    assert text.startswith(sent) and len(sent) < len(text)
    dropped = messages[-1]["metadata"][DROPPED]
    assert dropped == len(text.encode()) - len(sent.encode())


def test_the_launcher_peer_fits_only_iopub_messages():
    session = Session(key=KEY)
    big = signed(session, "stream", {"name": "stdout", "text": "x" * (9 * MiB)})
    peer = launcher.Peer(IOPUB, "/nonexistent", b"SUB", b"")
    peer.key = KEY
    pieces = peer.fitted(big)
    # a stream in pieces of at most STREAM_PIECE (2 MiB), well under the link's 8 MiB
    assert len(pieces) == 5 and all(sum(len(p) for p in piece) <= 2 * MiB for piece in pieces)
    assert pieces == cut_message(big, KEY, iopub=True, cap=frames.STREAM_PIECE, where="in the sandbox")
    assert "".join(unpack(session, piece)["content"]["text"] for piece in pieces) == "x" * (9 * MiB)
    # over a piece but under the link's cap: a stream is cut, a display goes as it is
    medium = signed(session, "stream", {"name": "stdout", "text": "x" * (3 * MiB)})
    assert len(peer.fitted(medium)) == 2
    display = signed(session, "display_data", {"data": {"text/plain": "x" * (3 * MiB)}, "metadata": {}})
    assert peer.fitted(display) == [display]
    huge = signed(session, "stream", {"name": "stdout", "text": "x" * (frames.STREAM_MOST + MiB)})
    *_, last = peer.fitted(huge)
    assert unpack(session, last)["metadata"] == {DROPPED: MiB}
    assert peer.fitted([b"small"]) == [[b"small"]]
    shell = launcher.Peer(SHELL, "/nonexistent", b"DEALER", b"id")
    assert shell.fitted(big) == [big]


def test_the_launcher_is_shipped_with_the_codec_in_one_command_line():
    command = kernel_relay.launcher_command("start", sys.executable)
    assert command[:3] == [sys.executable, "-I", "-c"] and command[4] == "start"
    shipped = kernel_relay._without_docstring(programs.source("frames"))  # (same line numbers, shorter)
    assert repr(shipped) in command[3]
    assert len(command[3].encode()) < 128 * 1024  # Linux's MAX_ARG_STRLEN: one argument's limit
    # a bad request: the shipped launcher answers with an exited event, encoded by the shipped codec
    done = subprocess.run(command, input=b"{}\n", capture_output=True, timeout=30)
    assert done.returncode == 2, done.stderr
    (kind, (event,)), *_ = FrameDecoder(1 << 20).feed(done.stdout)
    assert kind == LAUNCHER and json.loads(event)["error"].startswith("bad request: kernel_id")
