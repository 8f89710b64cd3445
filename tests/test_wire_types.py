"""The labextension's TypeScript wire types (labextension/src/wire.ts) against their Python
declarations (issue 12): each interface against its dataclass in jupyter_sandbox/models.py, field
by field, names and types; the shapes that have no dataclass (stats and file entries, built by the
backends; the error body; the sandbox event) against server/openapi.yaml and the event schema. The
dataclasses of the answers are checked against openapi.yaml too, so the three agree.

wire.ts is read with a small parser of the declarations it uses (``export interface`` with
``name: type;`` members), which fails loudly on anything else rather than guessing.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from jupyter_sandbox import models

ROOT = Path(__file__).resolve().parent.parent
WIRE_TS = ROOT / "labextension" / "src" / "wire.ts"
OPENAPI = ROOT / "jupyter_sandbox" / "server" / "openapi.yaml"
EVENT_SCHEMAS = ROOT / "jupyter_sandbox" / "server" / "event_schemas"

# interface -> the dataclass the server answers with
DATACLASSES: dict[str, type] = {
    "ISandbox": models.SandboxModel,
    "ISandboxSpec": models.SandboxSpec,
    "IContext": models.ContextModel,
    "IServerConfig": models.ServerConfig,
    "IConfigDefaults": models.ConfigDefaults,
    "IConfigMaximums": models.ConfigMaximums,
    "ILogs": models.SandboxLogs,
    "IContextLog": models.ContextLog,
    "IOneShot": models.ExecutionResult,
    "IVolume": models.VolumeModel,
    "ISnapshot": models.SnapshotModel,
}
# interface -> the openapi.yaml schema of shapes without a dataclass
SCHEMAS = {
    "IStats": "Stats",
    "IFileEntry": "FileEntry",
    "IErrorBody": "Error",
    "IAdminSandbox": "AdminSandbox",
    "IApiKey": "ApiKey",
}
# interface -> the event schema
EVENTS = {
    "ISandboxEvent": EVENT_SCHEMAS / "sandbox" / "v1.yaml",
    "IKernelInterruptedEvent": EVENT_SCHEMAS / "kernel_interrupted" / "v1.yaml",
}
# one NDJSON line of any kind, read by its "type" (openapi.yaml's Event lists them)
FREE_FORM = {"IWireEvent"}
# fields the server leaves out of some answers (openapi.yaml: present only after a traceback)
SOMETIMES_ABSENT = {("IOneShot", "error_type"), ("IOneShot", "error_line")}
# the openapi.yaml schema of each dataclass's answer
DATACLASS_SCHEMAS = {
    "Sandbox": models.SandboxModel,
    "SandboxSpec": models.SandboxSpec,
    "Context": models.ContextModel,
    "ServerConfig": models.ServerConfig,
    "Logs": models.SandboxLogs,
    "ExecutionResult": models.ExecutionResult,
    "Volume": models.VolumeModel,
    "Snapshot": models.SnapshotModel,
}


# -- reading wire.ts ---------------------------------------------------------------------------
@dataclasses.dataclass
class Member:
    optional: bool
    type: str  # whitespace removed


def _strip_comments(source: str) -> str:
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    return re.sub(r"//[^\n]*", "", source)


def _split_top(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside brackets of any kind."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "{[(<":
            depth += 1
        elif char in "}])>":
            depth -= 1
        if char == sep and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def parse_interfaces(source: str) -> dict[str, dict[str, Member]]:
    source = _strip_comments(source)
    interfaces: dict[str, dict[str, Member]] = {}
    for match in re.finditer(r"export\s+interface\s+(\w+)\s*\{", source):
        depth, end = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(source[end], 0)
            end += 1
        members: dict[str, Member] = {}
        for declaration in _split_top(source[match.end() : end - 1], ";"):
            found = re.fullmatch(r"(\[\s*\w+\s*:\s*string\s*\]|\w+)\s*(\?)?\s*:\s*(.+)", declaration, re.S)
            assert found, f"{match.group(1)}: cannot read the member {declaration!r}"
            name = "[index]" if found.group(1).startswith("[") else found.group(1)
            members[name] = Member(optional=bool(found.group(2)), type=re.sub(r"\s+", "", found.group(3)))
        interfaces[match.group(1)] = members
    assert interfaces, f"no interfaces found in {WIRE_TS}"
    return interfaces


@pytest.fixture(scope="module")
def interfaces() -> dict[str, dict[str, Member]]:
    return parse_interfaces(WIRE_TS.read_text())


# -- the TypeScript a Python annotation is written as ------------------------------------------
INTERFACE_OF = {cls: name for name, cls in DATACLASSES.items()}


def ts_types(hint: Any) -> set[str]:
    """The union members (whitespace removed) a field of this Python type has in wire.ts."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return set().union(*(ts_types(a) for a in args))
    if hint is type(None):
        return {"null"}
    if origin is list:
        (item,) = ts_types(args[0])
        return {f"{item}[]"}
    if origin is dict:
        assert args[0] is str, hint
        (value,) = ts_types(args[1])
        return {f"{{[key:string]:{value}}}"}
    if hint in INTERFACE_OF:
        return {INTERFACE_OF[hint]}
    simple = {str: "string", int: "number", float: "number", bool: "boolean"}
    assert hint in simple, f"no TypeScript spelling for {hint!r}: add one here"
    return {simple[hint]}


def same_type(ts: str, expected: set[str]) -> bool:
    members = set(_split_top(ts, "|"))
    if members == expected:
        return True
    # a Python str may be narrowed to string literals ('sandbox' | 'kernel')
    literals = {m for m in members if re.fullmatch(r"'[^']*'", m)}
    return bool(literals) and "string" in expected and (members - literals) | {"string"} == expected


def openapi_ts_types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    spelled = {"string": "string", "integer": "number", "number": "number", "boolean": "boolean"}
    if kind not in spelled:
        return {"*"}  # a nested object or a $ref: its own interface is checked by name
    return {spelled[kind]} | ({"null"} if schema.get("nullable") else set())


# -- the checks ---------------------------------------------------------------------------------
def test_every_interface_has_a_python_declaration(interfaces):
    declared = set(DATACLASSES) | set(SCHEMAS) | set(EVENTS) | FREE_FORM
    assert set(interfaces) == declared, (
        "each interface of wire.ts needs its Python declaration in this test, and each one here an interface"
    )


@pytest.mark.parametrize("name", sorted(DATACLASSES))
def test_interface_matches_its_dataclass(interfaces, name):
    cls = DATACLASSES[name]
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    members = interfaces[name]
    assert set(members) == set(fields), (
        f"{name} (wire.ts) and {cls.__name__} (models.py) differ: only in wire.ts "
        f"{sorted(set(members) - set(fields))}, only in models.py {sorted(set(fields) - set(members))}"
    )
    for field in fields:
        member = members[field]
        expected = ts_types(hints[field])
        assert same_type(member.type, expected), (
            f"{name}.{field} is {member.type} in wire.ts, but {cls.__name__}.{field} is {hints[field]} "
            f"(written {' | '.join(sorted(expected))})"
        )
        if (name, field) not in SOMETIMES_ABSENT:
            assert not member.optional, f"{name}.{field} is optional in wire.ts, but the server always sends it"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_interface_matches_its_openapi_schema(interfaces, name):
    schema = yaml.safe_load(OPENAPI.read_text())["components"]["schemas"][SCHEMAS[name]]
    members = interfaces[name]
    assert set(members) == set(schema["properties"]), name
    for field, prop in schema["properties"].items():
        expected = openapi_ts_types(prop)
        assert "*" in expected or same_type(members[field].type, expected), (name, field, members[field].type)
        # a field the server may leave out is optional in wire.ts (the code must not count on it)
        if field not in schema.get("required", schema["properties"]):
            assert members[field].optional, f"{name}.{field} may be absent (openapi.yaml) but is required in wire.ts"


def test_sandbox_event_matches_the_event_schema(interfaces):
    for name, path in EVENTS.items():
        schema = yaml.safe_load(path.read_text())
        members = interfaces[name]
        assert set(members) == set(schema["properties"]), name
        for field, prop in schema["properties"].items():
            assert members[field].optional == (field not in schema["required"]), (name, field)
            if "enum" in prop:
                assert set(_split_top(members[field].type, "|")) == {f"'{v}'" for v in prop["enum"]}, (name, field)
            else:
                assert same_type(members[field].type, openapi_ts_types(prop)), (name, field)


@pytest.mark.parametrize("schema_name", sorted(DATACLASS_SCHEMAS))
def test_openapi_answers_match_the_dataclasses(schema_name):
    """The third side: openapi.yaml describes the same fields the dataclasses answer with."""
    schemas = yaml.safe_load(OPENAPI.read_text())["components"]["schemas"]

    def check(schema: dict[str, Any], cls: type, where: str) -> None:
        hints = typing.get_type_hints(cls)
        assert set(schema["properties"]) == {f.name for f in dataclasses.fields(cls)}, where
        for field, prop in schema["properties"].items():
            hint = hints[field]
            if typing.get_origin(hint) in (typing.Union, types.UnionType):
                (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
            if typing.get_origin(hint) is list:
                (hint,), prop = typing.get_args(hint), prop["items"]
            if dataclasses.is_dataclass(hint):
                ref = prop.get("$ref", "")
                check(schemas[ref.rsplit("/", 1)[-1]] if ref else prop, hint, f"{where}.{field}")

    check(schemas[schema_name], DATACLASS_SCHEMAS[schema_name], schema_name)


def test_a_field_on_one_side_only_fails():
    """The parser and comparison see drift: a field added to wire.ts alone, or removed from it."""
    source = WIRE_TS.read_text()
    added = parse_interfaces(source.replace("  cwd: string;\n}", "  cwd: string;\n  shell: string;\n}", 1))
    assert "shell" in added["IContext"]
    assert set(added["IContext"]) != {f.name for f in dataclasses.fields(models.ContextModel)}
    retyped = parse_interfaces(source.replace("  cwd: string;\n}", "  cwd: number;\n}", 1))
    assert not same_type(retyped["IContext"]["cwd"].type, ts_types(str))
    assert same_type("'sandbox'|'kernel'", ts_types(str)) and not same_type("'sandbox'|null", ts_types(str))
    assert same_type("string|null", ts_types(str | None)) and not same_type("string", ts_types(str | None))
