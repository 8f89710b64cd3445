"""The unmodified ``e2b-code-interpreter`` SDK against this server.

With ``E2B_DEBUG=true`` and ``E2B_SANDBOX_URL`` set to a sandbox's ``e2b_url``, the SDK
sends ``/execute`` and ``/contexts`` to that URL. The SDK is synchronous, so it runs in a
thread while the server runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

API = ("sandbox", "api", "sandboxes")


@pytest.fixture
def jp_server_config(jp_server_config, docker_ready):
    return jp_server_config


@pytest.fixture
def e2b_env(monkeypatch):
    monkeypatch.setenv("E2B_DEBUG", "true")
    monkeypatch.delenv("E2B_API_KEY", raising=False)

    def point_at(url: str) -> None:
        monkeypatch.setenv("E2B_SANDBOX_URL", url)

    return point_at


async def create_sandbox(jp_fetch) -> dict:
    r = await jp_fetch(*API, method="POST", body="{}", request_timeout=120)
    assert r.code == 201
    return json.loads(r.body)


async def test_run_code_with_callbacks_errors_and_contexts(jp_fetch, e2b_env):
    sandbox = await create_sandbox(jp_fetch)
    assert sandbox["e2b_url"].startswith("http://127.0.0.1:")
    assert f"/sandbox/e2b/{sandbox['id']}/" in sandbox["e2b_url"]
    e2b_env(sandbox["e2b_url"])

    def use_sdk() -> dict:
        from e2b_code_interpreter import Sandbox

        seen: dict = {"stdout": [], "stderr": [], "results": [], "errors": []}
        sbx = Sandbox.create()
        # The README's first example: state kept between run_code calls.
        sbx.run_code("x = 1")
        seen["text"] = sbx.run_code("x+=1; x").text
        seen["string"] = sbx.run_code("'bar'").text  # as E2B gives it: no repr quotes
        # Callbacks, with the time each output reached the SDK.
        start = time.monotonic()
        code = (
            "import sys, time, pandas as pd\n"
            "print('hello')\n"
            "print('careful', file=sys.stderr)\n"
            "time.sleep(2)\n"
            "display(pd.DataFrame({'A': [1, 3], 'B': [2, 4]}))\n"
            "print('world')\n"
            "41 + 1\n"
        )
        execution = sbx.run_code(
            code,
            on_stdout=lambda m: seen["stdout"].append((time.monotonic() - start, m.line, m.timestamp, m.error)),
            on_stderr=lambda m: seen["stderr"].append((m.line, m.error)),
            on_result=lambda r: seen["results"].append((time.monotonic() - start, r)),
        )
        seen["execution"] = execution
        # Errors come back as ExecutionError (and through on_error).
        seen["error_execution"] = sbx.run_code("raise ValueError('bad value')", on_error=seen["errors"].append)
        # Contexts: create, list, use, restart, remove.
        context = sbx.create_code_context(cwd="/home/user")
        seen["context"] = context
        seen["listed"] = [(c.id, c.language) for c in sbx.list_code_contexts()]
        sbx.run_code("only_here = 1", context=context)
        seen["isolated"] = sbx.run_code("'only_here' in globals()").text
        seen["in_context"] = sbx.run_code("only_here", context=context).text
        sbx.restart_code_context(context)
        seen["after_restart"] = sbx.run_code("'only_here' in globals()", context=context)
        sbx.remove_code_context(context)
        seen["listed_after"] = [(c.id, c.language) for c in sbx.list_code_contexts()]
        return seen

    seen = await asyncio.to_thread(use_sdk)
    assert seen["text"] == "2" and seen["string"] == "bar"

    execution = seen["execution"]
    assert [line for _, line, _, _ in seen["stdout"]] == ["hello\n", "world\n"]
    assert all(isinstance(ts, int) and not err for _, _, ts, err in seen["stdout"])
    assert seen["stderr"] == [("careful\n", True)]
    assert execution.logs.stdout == ["hello\n", "world\n"] and execution.logs.stderr == ["careful\n"]
    (t_table, table), (_, main) = seen["results"]
    assert "<table" in table.html and not table.is_main_result
    assert main.is_main_result and main.text == "42" and execution.text == "42"
    t_hello, t_world = seen["stdout"][0][0], seen["stdout"][1][0]
    print(f"SDK callbacks: hello at {t_hello:.2f}s, table at {t_table:.2f}s, world at {t_world:.2f}s")
    assert 1.5 < t_world - t_hello < 3.5, "hello reached the SDK about 2 s before world"

    error = seen["error_execution"].error
    assert (error.name, error.value) == ("ValueError", "bad value")
    assert "ValueError" in error.traceback
    assert [e.name for e in seen["errors"]] == ["ValueError"]

    context = seen["context"]
    assert context.id.startswith("ctx_") and context.language == "python" and context.cwd == "/home/user"
    # python's default context and this one; E2B lists a default javascript context beside them when
    # the image has that language (its kernel starts on first use)
    python = [cid for cid, language in seen["listed"] if language == "python"]
    assert context.id in python and len(python) == 2
    assert {language for _, language in seen["listed"]} <= {"python", "javascript"}
    assert seen["isolated"] == "False" and seen["in_context"] == "1"
    assert seen["after_restart"].text == "False", seen["after_restart"]
    assert seen["listed_after"] == [c for c in seen["listed"] if c[0] != context.id]

    # The Jupyter API sees the same contexts.
    r = await jp_fetch(*API, sandbox["id"], "contexts")
    assert [(c["id"], c["language"]) for c in json.loads(r.body)] == seen["listed_after"]


async def test_secret_is_required_and_only_opens_its_own_sandbox(jp_fetch, e2b_env):
    first, second = await create_sandbox(jp_fetch), await create_sandbox(jp_fetch)
    first_secret = first["e2b_url"].rsplit("/", 1)[1]
    second_base, _ = second["e2b_url"].rsplit("/", 1)
    wrong = [
        second_base + "/" + first_secret,  # another sandbox's secret
        second_base + "/" + "x" * len(first_secret),  # a made-up one
    ]

    def try_urls() -> list[str]:
        from e2b.exceptions import NotFoundException
        from e2b_code_interpreter import Sandbox

        outcomes = []
        for url in wrong:
            sbx = Sandbox.create(sandbox_url=url)
            try:
                sbx.run_code("1")
            except NotFoundException as e:
                outcomes.append(str(e))
            try:
                sbx.list_code_contexts()
            except NotFoundException as e:
                outcomes.append(str(e))
        return outcomes

    outcomes = await asyncio.to_thread(try_urls)
    assert len(outcomes) == 4 and all("wrong secret" in o for o in outcomes), outcomes

    # The secret goes with the sandbox: once it is removed, the URL answers 404.
    r = await jp_fetch(*API, first["id"], method="DELETE")
    assert r.code == 204
    e2b_env(first["e2b_url"])

    def removed() -> str:
        from e2b.exceptions import NotFoundException
        from e2b_code_interpreter import Sandbox

        with pytest.raises(NotFoundException) as info:
            Sandbox.create().run_code("1")
        return str(info.value)

    assert "no sandbox" in await asyncio.to_thread(removed)
