"""The pure parts of server/e2b_api.py: template names, the SDK's metadata query, page tokens."""

from __future__ import annotations

import urllib.parse

import pytest

from jupyter_sandbox.errors import InvalidInput
from jupyter_sandbox.models import SandboxModel, SandboxSpec
from jupyter_sandbox.server.e2b_api import _after, _metadata_filter, _template_image, _token


def test_template_names():
    aliases = {"data": "my-image:1"}
    for default in ("", "base", "code-interpreter-v1"):
        assert _template_image(default, aliases) is None  # the server's default image
    assert _template_image("data", aliases) == "my-image:1"
    assert _template_image("base", {"base": "custom:2"}) == "custom:2"  # an alias may take a default's name
    with pytest.raises(InvalidInput, match=r"unknown template 'nope': this server has 'base', .*'data'"):
        _template_image("nope", aliases)


def test_metadata_query_as_the_sdk_writes_it():
    # e2b's paginator: urlencode({quote(k): quote(v)})
    wanted = {"a key": "x&y=z", "ünï": "ok/1"}
    query = urllib.parse.urlencode({urllib.parse.quote(k): urllib.parse.quote(v) for k, v in wanted.items()})
    assert _metadata_filter(query) == wanted
    assert _metadata_filter(None) == {} and _metadata_filter("") == {}


def test_page_tokens_round_trip_and_bad_ones_are_400():
    model = SandboxModel(
        id="sbx_0123456789ab", name="n", owner="o", status="running", backend="docker", spec=SandboxSpec(),
        created=1765000000.123456, last_activity=0.0,
    )  # fmt: skip
    assert _after(_token(model)) == (model.created, model.id)
    assert _after(None) is None
    for bad in ("%%%", "bm90LWEtbnVtYmVy"):  # not base64; base64 of "not-a-number"
        with pytest.raises(InvalidInput, match="nextToken"):
            _after(bad)
