"""One-shot executions without Docker: archive safety, request validation, error parsing.

The same rules run for real through the server in test_executions_server.py.
"""

from __future__ import annotations

import io
import json
import tarfile
import time

import pytest

from jupyter_sandbox.backends import make_backend
from jupyter_sandbox.core.manager import SandboxManager
from jupyter_sandbox.errors import InvalidInput, TooLarge
from jupyter_sandbox.oneshot.archive import check_archive, make_archive
from jupyter_sandbox.oneshot.outcome import capped
from jupyter_sandbox.oneshot.records import parse_error
from jupyter_sandbox.oneshot.requests import parse_eval, parse_exec
from jupyter_sandbox.oneshot.runner import OneShotRunner


def tar_of(*members: tuple[str, str, str | bytes]) -> bytes:
    """(name, kind, content-or-linkname) -> an uncompressed tar; kind is file/dir/sym/hard/fifo/chr."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            data = None
            if kind == "file":
                data = value.encode() if isinstance(value, str) else value
                info.size = len(data)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, value
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, value
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            elif kind == "chr":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


# Each one must be refused with a 400 naming the member.
SLIP_ARCHIVES = {
    "absolute path": (tar_of(("main.py", "file", "x"), ("/etc/cron.d/evil", "file", "x")), "/etc/cron.d/evil"),
    "dot-dot": (tar_of(("../evil.py", "file", "x")), "../evil.py"),
    "dot-dot inside": (tar_of(("a/../../evil.py", "file", "x")), "a/../../evil.py"),
    "symlink to absolute": (tar_of(("link", "sym", "/etc/passwd")), "link"),
    "symlink up": (tar_of(("sub", "dir", ""), ("sub/link", "sym", "../../x")), "sub/link"),
    "symlink chain escape": (
        tar_of(("sub", "dir", ""), ("sub/up", "sym", ".."), ("out", "sym", "sub/up/..")),
        "out",
    ),
    "write through symlink": (tar_of(("d", "sym", "."), ("d/main.py", "file", "x")), "d/main.py"),
    "hard link outside": (tar_of(("h", "hard", "/etc/shadow")), "h"),
    "hard link to a missing file": (tar_of(("h", "hard", "nothere")), "h"),
    "char device": (tar_of(("null", "chr", "")), "null"),
    "fifo": (tar_of(("pipe", "fifo", "")), "pipe"),
}


@pytest.mark.parametrize("case", sorted(SLIP_ARCHIVES))
def test_unsafe_archives_are_refused_naming_the_member(case):
    data, member = SLIP_ARCHIVES[case]
    with pytest.raises(InvalidInput) as info:
        check_archive(data, 10**7, 100)
    assert repr(member) in info.value.message
    assert info.value.status == 400


def test_safe_links_and_dirs_are_accepted():
    data = tar_of(
        ("pkg", "dir", ""),
        ("pkg/__init__.py", "file", ""),
        ("pkg/mod.py", "file", "X = 1"),
        ("alias.py", "sym", "pkg/mod.py"),
        ("pkg/up", "sym", "../main.py"),
        ("main.py", "file", "print(1)"),
        ("copy.py", "hard", "pkg/mod.py"),
    )
    assert sorted(check_archive(data, 10**7, 100)) == ["copy.py", "main.py", "pkg/__init__.py", "pkg/mod.py"]


def test_archive_caps_are_413():
    big = tar_of(("main.py", "file", "x" * 5000))
    with pytest.raises(TooLarge):
        check_archive(big, 4096, 100)
    many = tar_of(*[(f"f{i}.py", "file", "") for i in range(20)])
    with pytest.raises(TooLarge):
        check_archive(many, 10**7, 10)
    with pytest.raises(InvalidInput, match="not an uncompressed tar"):
        check_archive(b"PK\x03\x04 this is a zip", 10**7, 10)


def test_parse_error_takes_the_users_frame():
    stderr = (
        'Traceback (most recent call last):\n  File "/home/user/main.py", line 3, in <module>\n    f()\n'
        '  File "/home/user/lib/util.py", line 7, in f\n    json.loads("x")\n'
        '  File "/usr/lib/python3.11/json/__init__.py", line 346, in loads\n    return x\n'
        "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)\n"
    )
    assert parse_error(stderr) == ("JSONDecodeError", 7)
    syntax = "  File \"/home/user/main.py\", line 2\n    x = (\n        ^\nSyntaxError: '(' was never closed\n"
    assert parse_error(syntax) == ("SyntaxError", 2)
    assert parse_error("just some text\n") == (None, None)


MAX_CODE = 100 * 1024


@pytest.fixture
def runner():
    manager = SandboxManager(backend=make_backend("local"), allow_network=False)
    return OneShotRunner(manager=manager)


def test_metadata_is_validated(runner):
    files = make_archive({"main.py": b"print(1)", "helper.py": b""})
    job = parse_exec(
        runner,
        files,
        json.dumps(
            {
                "entrypoint": "./main.py",
                "stdin": "in",
                "env_vars": ["A=1", "B=x=y"],
                "script_args": ["-v"],
                "pre_commands": ["true"],
                "config": {"timeout_seconds": 5, "memory_mb": 256, "disk_mb": 64, "cpu_shares": 512},
            }
        ),
    )
    assert (job.entrypoint, job.stdin, job.env, job.args) == ("main.py", b"in", {"A": "1", "B": "x=y"}, ["-v"])
    assert (job.timeout, job.memory_mb, job.disk_mb, job.cpu_shares, job.network) == (5, 256, 64, 512, False)
    assert job.image == runner.manager.backend.default_image

    bad = [
        ({"entrypoint": "nothere.py"}, "entrypoint"),
        ({"entrypoint": "../main.py"}, "entrypoint"),
        ({"env_vars": ["NOEQUALS"]}, "env_vars"),
        ({"env_vars": ["1BAD=x"]}, "env_vars"),
        ({"script_args": "not-a-list"}, "script_args"),
        ({"config": {"timeout_seconds": 10**6}}, "config.timeout_seconds"),
        ({"config": {"memory_mb": 8}}, "config.memory_mb"),
        ({"config": {"bogus": 1}}, "config.bogus"),
        ({"config": {"network_disabled": False}}, "config.network_disabled"),  # this server forbids network
        ({"surprise": 1}, "surprise"),
    ]
    for metadata, field in bad:
        with pytest.raises(InvalidInput) as info:
            parse_exec(runner, files, json.dumps({"entrypoint": "main.py", **metadata}))
        assert info.value.field == field, metadata
    with pytest.raises(InvalidInput, match="not valid JSON"):
        parse_exec(runner, files, b"{nope")


# The one entrypoint rule: (files in the archive, the file that runs or the words of the 400).
# tests/test_client.py runs the client's side on the same cases.
ENTRYPOINT_CASES = [
    (["a.py", "main.py"], "main.py"),
    (["a.py", "__main__.py"], "__main__.py"),
    (["main.py", "__main__.py"], "main.py"),
    (["only.py", "data.txt"], "only.py"),
    (["pkg/run.py"], "pkg/run.py"),
    (["a.py", "b.py"], "several .py files"),
    (["data.txt"], "no .py file"),
]


@pytest.mark.parametrize("names, expected", ENTRYPOINT_CASES)
def test_entrypoint_detection_on_the_server(runner, names, expected):
    archive = make_archive({name: b"" for name in names})
    if expected.endswith(".py"):
        assert parse_exec(runner, archive, "{}").entrypoint == expected
    else:
        with pytest.raises(InvalidInput, match=expected) as info:
            parse_exec(runner, archive, "{}")
        assert info.value.field == "entrypoint"


def test_images_and_python_versions_come_from_the_allow_list(runner):
    default = runner.manager.backend.default_image
    files = make_archive({"main.py": b""})
    assert parse_exec(runner, files, json.dumps({"docker_image": default})).image == default
    with pytest.raises(InvalidInput) as info:
        parse_exec(runner, files, json.dumps({"docker_image": "python:3.11-slim"}))
    assert info.value.field == "docker_image" and default in info.value.message
    assert parse_eval(runner, {"code": "1", "python_version": "3.11"}, MAX_CODE).image == default
    assert parse_eval(runner, {"code": "1"}, MAX_CODE).image == default
    with pytest.raises(InvalidInput) as info:
        parse_eval(runner, {"code": "1", "python_version": "3.12"}, MAX_CODE)
    assert info.value.field == "python_version" and "allowed: 3.11" in info.value.message

    runner.images = {"python:3.11-slim": default}
    assert parse_exec(runner, files, json.dumps({"docker_image": "python:3.11-slim"})).image == default


def test_requirements_need_network_or_a_wheelhouse(runner, tmp_path):
    files = make_archive({"main.py": b""})
    with pytest.raises(InvalidInput, match="wheelhouse") as info:
        parse_exec(runner, files, json.dumps({"requirements_txt": "numpy"}))
    assert info.value.field == "requirements_txt"
    runner.wheelhouse = str(tmp_path)
    assert parse_exec(runner, files, json.dumps({"requirements_txt": "numpy"})).requirements == "numpy"


def test_eval_requests(runner):
    job = parse_eval(
        runner,
        {
            "files": [{"name": "lib.py", "content": "X = 1"}, {"name": "run.py", "content": "X"}],
            "entrypoint": "run.py",
            "stdin": "s",
            "config": {"timeout_seconds": 9},
        },
        MAX_CODE,
    )
    assert (job.entrypoint, job.stdin, job.timeout, job.eval_last_expr) == ("run.py", b"s", 9, True)
    assert parse_eval(runner, {"files": [{"name": "a.py", "content": ""}]}, MAX_CODE).entrypoint == "a.py"
    with pytest.raises(InvalidInput, match=r"several \.py files"):  # the same rule as for exec
        parse_eval(runner, {"files": [{"name": "a.py", "content": ""}, {"name": "b.py", "content": ""}]}, MAX_CODE)
    assert parse_eval(runner, {"code": "1", "eval_last_expr": False}, MAX_CODE).eval_last_expr is False
    with pytest.raises(TooLarge):
        parse_eval(runner, {"code": "x" * (MAX_CODE + 1)}, MAX_CODE)
    with pytest.raises(InvalidInput):
        parse_eval(runner, {"files": [{"name": "../up.py", "content": ""}]}, MAX_CODE)
    with pytest.raises(InvalidInput, match="give code"):
        parse_eval(runner, {}, MAX_CODE)


def test_the_record_keeps_the_entrypoints_code_capped(runner):
    from jupyter_sandbox.oneshot.records import ExecutionRecord, code_of

    job = parse_eval(
        runner,
        {
            "files": [{"name": "lib.py", "content": "X = 1"}, {"name": "run.py", "content": "print('é')"}],
            "entrypoint": "run.py",
        },
        MAX_CODE,
    )
    assert code_of(job) == "print('é')"
    cut = code_of(job, limit=4)
    assert cut == "prin\n[code truncated: 7 more bytes not kept]\n"  # 11 bytes: "é" is two
    record = ExecutionRecord(id="exe_1", owner="alice", job=job, code=code_of(job))
    assert record.to_dict()["code"] == "print('é')"
    assert code_of(parse_exec(runner, make_archive({"main.py": b"1"}), "{}")) == "1"


def test_output_cap_marker(runner):
    runner.max_output_size = 10
    assert capped("short", 5, runner.max_output_size) == "short"
    cut = capped("0123456789", 25, runner.max_output_size)
    assert cut.startswith("0123456789\n[output truncated: 15 more bytes")


async def test_finished_executions_expire_after_the_retention_time(runner):
    from jupyter_sandbox.errors import NotFound
    from jupyter_sandbox.oneshot.records import ExecutionRecord

    old = ExecutionRecord(id="exe_old", owner="alice", job=None, status="completed", finished=1.0)
    new = ExecutionRecord(id="exe_new", owner="alice", job=None, status="completed", finished=time.time())
    runner._records.by_id = {r.id: r for r in (old, new)}
    assert runner.get("alice", "exe_new") is new
    with pytest.raises(NotFound):
        runner.get("alice", "exe_old")
    with pytest.raises(NotFound):
        runner.get("bob", "exe_new")  # only the owner sees it
    assert [e["execution_id"] for e in runner.list("alice")["executions"]] == ["exe_new"]


async def test_one_shot_runs_need_a_container_backend(runner):
    from jupyter_sandbox.errors import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="need a container backend") as info:
        await runner.submit("alice", parse_eval(runner, {"code": "1"}, MAX_CODE))
    assert info.value.status == 503


def test_finished_records_are_bounded_per_user_by_count_bytes_and_age(runner):
    """A user cannot grow the server's memory with finished one-shot runs (issue 10, 6b)."""
    from jupyter_sandbox.oneshot.records import ExecutionRecord

    runner.max_records_per_user, runner.max_record_bytes_per_user = 3, 10**6
    now = time.time()

    def finished(owner, n, stdout="", age=0.0):
        record = ExecutionRecord(id=f"{owner}-{n}", owner=owner, job=None, status="completed", stdout=stdout)
        record.created = record.finished = now - age + n  # higher n: newer
        runner._records.add(record)

    for n in range(5):
        finished("alice", n)
    finished("bob", 0)
    assert [r["execution_id"] for r in runner.list("alice")["executions"]] == ["alice-4", "alice-3", "alice-2"]
    assert runner.list("bob")["total"] == 1  # another user's count is their own

    runner.max_records_per_user, runner.max_record_bytes_per_user = 100, 25_000
    for n in range(5, 8):
        finished("carol", n, stdout="x" * 10_000)
    assert [r["execution_id"] for r in runner.list("carol")["executions"]] == ["carol-7", "carol-6"]

    finished("dave", 0, age=runner.retention_seconds + 60)
    assert runner.list("dave")["total"] == 0
