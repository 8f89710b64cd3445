"""Models: JSON round trips, MIME mapping, spec validation with clear field errors."""

import json
import re
import subprocess
import sys

import pytest
from docker.errors import DockerException
from docker.utils import parse_bytes

from jupyter_sandbox.errors import InvalidInput
from jupyter_sandbox.models import (
    ContextModel,
    Execution,
    ExecutionError,
    Logs,
    Result,
    SandboxModel,
    SandboxSpec,
    parse_size,
)


def test_result_from_bundle_maps_mime_types_and_keeps_extra():
    r = Result.from_bundle(
        {"text/plain": "df", "text/html": "<table/>", "image/png": "iVBO\n", "application/vnd.custom+json": {"a": 1}},
        is_main_result=True,
    )
    assert (r.text, r.html, r.png) == ("df", "<table/>", "iVBO")
    assert r.extra == {"application/vnd.custom+json": {"a": 1}}
    assert r.formats() == ["text", "html", "png", "application/vnd.custom+json"]
    assert r.bundle()["image/png"] == "iVBO"
    assert r._repr_mimebundle_()["text/html"] == "<table/>"


def test_execution_json_round_trip_and_text():
    e = Execution(
        results=[Result(text="1"), Result(text="2", html="<b>2</b>", is_main_result=True)],
        logs=Logs(stdout=["a\n"], stderr=["b\n"]),
        error=ExecutionError("ValueError", "bad", "Traceback\nValueError: bad"),
        execution_count=3,
    )
    again = Execution.from_dict(json.loads(json.dumps(e.to_dict())))
    assert again == e
    assert again.text == "2"


def test_apply_event_folds_wire_lines():
    e = Execution()
    for event in [
        {"type": "stdout", "text": "a", "timestamp": 1},
        {"type": "stderr", "text": "b", "timestamp": 2},
        {"type": "result", "text": "3", "is_main_result": True},
        {"type": "number_of_executions", "execution_count": 7},
        {"type": "error", "name": "E", "value": "v", "traceback": "tb"},
        {"type": "keepalive"},
    ]:
        e.apply_event(event)
    assert e.logs.stdout == ["a"] and e.logs.stderr == ["b"]
    assert e.text == "3" and e.execution_count == 7 and e.error.name == "E"


def test_spec_defaults_and_sizes():
    spec = SandboxSpec.from_dict({"memory": "256M", "cpus": 0.5, "network": True, "env": {"A": "1"}})
    assert spec.memory == 256 * 1024**2 and spec.cpus == 0.5 and spec.network and spec.env == {"A": "1"}
    assert parse_size("1g", "memory") == 1024**3
    assert parse_size(2048, "memory") == 2048


SIZE_TEXTS = [
    "512M",
    "1g",
    "2GiB",
    "1gb",
    "3k",
    "10",
    "1.5m",
    "0",
    "",
    " ",
    "b",
    "kb",
    "1bb",
    "1t",
    "1tb",
    "12x",
    "m",
    "-1g",
    "1e3k",
    "inf",
    "nan",
    "1\u00b2",
    "1 g",
    "0x10",
]


@pytest.mark.parametrize("text", SIZE_TEXTS)
def test_parse_size_answers_as_docker_py_did(text):
    """models.py reads sizes without docker-py, with the answers (and refusals) it gave using docker-py."""
    # parse_size's own clean-up of what people write ("GiB"), before docker-py saw the text
    cleaned = re.sub(r"(?i)([kmgt])i?b$", r"\1", text.strip())
    try:
        expected = parse_bytes(cleaned)
        ok = 0 < expected <= 2**50
    except (DockerException, ValueError, OverflowError):
        ok = False
    if ok:
        assert parse_size(text, "memory") == int(expected)
    else:
        with pytest.raises((InvalidInput, ValueError)):
            parse_size(text, "memory")


def test_models_does_not_import_docker_py():
    code = "import sys, jupyter_sandbox.models; assert 'docker' not in sys.modules, 'docker imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "data, field",
    [
        ({"memory": "lots"}, "memory"),
        ({"memory": "1M"}, "memory"),
        ({"cpus": "two"}, "cpus"),
        ({"cpus": 0}, "cpus"),
        ({"network": "yes"}, "network"),
        ({"env": {"1BAD": "x"}}, "env"),
        ({"env": {"A": 1}}, "env"),
        ({"runtime": "kata"}, "runtime"),
        ({"image": ""}, "image"),
        ({"colour": "blue"}, "colour"),
        ({"timeout": -1}, "timeout"),
        ({"pids": 1}, "pids"),
    ],
)
def test_spec_rejects_bad_fields_naming_them(data, field):
    with pytest.raises(InvalidInput) as info:
        SandboxSpec.from_dict(data)
    assert info.value.field == field
    assert info.value.status == 400


def test_sandbox_model_round_trip():
    m = SandboxModel(
        id="sbx_1",
        name="n",
        owner="alice",
        status="running",
        backend="docker",
        spec=SandboxSpec(),
        created=1.0,
        last_activity=2.0,
        contexts=[ContextModel(id="ctx_1")],
        isolation="x",
    )
    assert SandboxModel.from_dict(json.loads(json.dumps(m.to_dict()))) == m
