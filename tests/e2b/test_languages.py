"""Kernels of other languages than Python, through the real, unmodified ``e2b_code_interpreter``
SDK (no E2B_DEBUG): bash, JavaScript and TypeScript (Deno's kernel) and R (IRkernel), as the
default image builds them in (`jupyter sandbox build-image`). For each: code runs, a result,
an error, env vars per execution, the working directory; the default contexts E2B lists; a 400
for a language the sandbox has no kernel for (also on the local backend, which runs Python only).

Run with JUPYTER_SANDBOX_TEST_IMAGE naming an image built with the languages.
"""

from __future__ import annotations

import pytest
from e2b.exceptions import SandboxException
from e2b_code_interpreter import Sandbox

from jupyter_sandbox.errors import InvalidInput

from conftest import make_manager
from servers import JupyterServer

pytestmark = pytest.mark.usefixtures("docker_ready")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with JupyterServer(tmp_path_factory.mktemp("e2b-languages")) as server:
        yield server


@pytest.fixture(scope="module")
def sbx(server):
    r = server.api("POST", "keys", json={"name": "languages tests"})
    assert r.status_code == 201, r.text
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("E2B_DEBUG", raising=False)
        mp.setenv("E2B_API_URL", server.url + "sandbox/e2b/api")
        mp.setenv("E2B_SANDBOX_URL", server.url + "sandbox/e2b/plane")
        mp.setenv("E2B_API_KEY", r.json()["key"])
        sandbox = Sandbox.create(timeout=900, envs={"SANDBOX_WIDE": "everywhere"})
        try:
            yield sandbox
        finally:
            sandbox.kill()


# language -> (code printing hello, an expression and its text, failing code and its error name,
# code showing env var FOO (or "unset"), code showing the working directory)
LANGUAGES = {
    "bash": ("echo hello", None, "exit_with_no_such_command_xyz", None, "echo ${FOO:-unset}", "pwd"),
    "js": (
        "console.log('hello')",
        ("await Promise.resolve(6 * 7)", "42"),
        "throw new TypeError('bad value')",
        "TypeError",
        "console.log(process.env.FOO ?? 'unset')",
        "console.log(process.cwd())",
    ),
    "ts": (
        "const greeting: string = 'hello'; console.log(greeting)",
        ("const n: number = 6; n * 7", "42"),
        "throw new RangeError('bad value')",
        "RangeError",
        "console.log(Deno.env.get('FOO') ?? 'unset')",
        "console.log(Deno.cwd())",
    ),
    "r": (
        'cat("hello\\n")',
        ("6 * 7", "[1] 42"),
        'stop("bad value")',
        None,
        'cat(Sys.getenv("FOO", "unset"), "\\n", sep = "")',
        'cat(getwd(), "\\n", sep = "")',
    ),
}


def stdout(execution) -> str:
    return "".join(execution.logs.stdout)


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_language_runs_code_with_results_errors_env_vars_and_cwd(sbx, language):
    hello, expression, failing, error_name, show_foo, show_cwd = LANGUAGES[language]
    first = sbx.run_code(hello, language=language)
    assert first.error is None, first.error
    assert stdout(first) == "hello\n"
    if expression:
        code, text = expression
        result = sbx.run_code(code, language=language)
        assert result.error is None, result.error
        # (IRkernel shows a value as display data, E2B's R results too: not the main result)
        assert [r.text for r in result.results] == [text]
    error = sbx.run_code(failing, language=language)
    assert error.error is not None
    if error_name:
        assert error.error.name == error_name
    # state stays in the language's default context
    assert sbx.run_code(hello, language=language).execution_count > first.execution_count
    # env vars for one execution, then gone; the sandbox's own stay
    assert stdout(sbx.run_code(show_foo, language=language, envs={"FOO": "it's set"})).strip() == "it's set"
    assert stdout(sbx.run_code(show_foo, language=language)).strip() == "unset"
    wide = show_foo.replace("FOO", "SANDBOX_WIDE")
    assert stdout(sbx.run_code(wide, language=language)).strip() == "everywhere"
    assert stdout(sbx.run_code(show_cwd, language=language)).strip() == "/home/user"
    # a context of its own, in another directory
    sbx.files.make_dir(f"/home/user/in-{language}")
    context = sbx.create_code_context(language=language, cwd=f"/home/user/in-{language}")
    assert context.language == {"js": "javascript", "ts": "typescript"}.get(language, language)
    in_context = sbx.run_code(show_cwd, context=context)
    assert stdout(in_context).strip() == f"/home/user/in-{language}", in_context
    assert context.id in [c.id for c in sbx.list_code_contexts()]
    sbx.remove_code_context(context.id)  # (a sandbox has at most 8 contexts, default ones included)


def test_the_default_javascript_context_is_listed_before_it_runs_and_used_by_language(server, sbx):
    listed = {c.language: c for c in sbx.list_code_contexts()}
    assert {"python", "javascript"} <= set(listed)
    sbx.run_code("globalThis.marker = 7", language="javascript")
    # the listed id is the context `language=` used
    assert sbx.run_code("marker", context=listed["javascript"]).text == "7"
    assert sbx.run_code("marker * 2", language="js").text == "14"


def test_a_language_the_image_lacks_is_a_400_naming_the_ones_it_has(sbx):
    with pytest.raises(SandboxException, match="400 Bad Request") as caught:
        sbx.run_code("1", language="cobol")
    assert "'cobol' is not available in this sandbox" in str(caught.value)
    for name in ("bash", "javascript", "python", "r", "typescript"):
        assert name in str(caught.value)
    with pytest.raises(SandboxException, match="not available"):
        sbx.create_code_context(language="cobol")


async def test_the_local_backend_answers_400_for_languages_it_lacks():
    manager = make_manager("local", default_memory="256M", default_disk="256M")
    try:
        sandbox = await manager.create("lou")
        with pytest.raises(InvalidInput, match=r"'javascript' is not available in this sandbox \(it has python\)"):
            await manager.execute("lou", sandbox.id, "1", language="javascript")
        with pytest.raises(InvalidInput, match="'r' is not available"):
            await manager.create_context("lou", sandbox.id, language="r")
        assert [c.language for c in await manager.list_contexts("lou", sandbox.id)] == ["python"]
        assert (await manager.execute("lou", sandbox.id, "40 + 2", language="python3")).text == "42"
    finally:
        await manager.shutdown()


def test_network_without_public_traffic_is_taken_and_other_network_options_are_400(server):
    """Sandboxes here have no public URL: ``allow_public_traffic=False`` says what is true already;
    a network rule the server cannot honour is refused with its name."""
    with pytest.MonkeyPatch.context() as mp:
        r = server.api("POST", "keys", json={"name": "network test"})
        mp.delenv("E2B_DEBUG", raising=False)
        mp.setenv("E2B_API_URL", server.url + "sandbox/e2b/api")
        mp.setenv("E2B_SANDBOX_URL", server.url + "sandbox/e2b/plane")
        mp.setenv("E2B_API_KEY", r.json()["key"])
        closed = Sandbox.create(secure=True, network={"allow_public_traffic": False}, timeout=120)
        try:
            assert closed.traffic_access_token
            assert closed.run_code("x = 1; x").text == "1"
        finally:
            closed.kill()
        refused = (
            ({"allow_public_traffic": True}, "400: network other than allow_public_traffic=False"),
            # the allow-list takes names (issue 23): an address is refused, named
            ({"allow_out": ["8.8.8.8"]}, "400: network: 8.8.8.8 is an address"),
            ({"allow_out": ["pypi.org"], "deny_out": ["10.0.0.0/8"]}, "400: network: 10.0.0.0/8 is an address"),
        )
        for network, message in refused:
            with pytest.raises(SandboxException, match=message):
                Sandbox.create(network=network, timeout=60)
