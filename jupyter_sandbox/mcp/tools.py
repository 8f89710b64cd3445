"""The MCP server: its tools and resources, written once against ``SandboxAccess``.

``build_server(access_for)`` gets, for each request, the ``SandboxAccess`` of the user behind it
(``access_for(ctx)``): the authenticated user's on the HTTP route, the token's user over stdio.
Descriptions tell an agent what each tool is for and what it costs: an agent reads them to choose.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.types import CallToolResult, ImageContent, ToolAnnotations

from ..errors import Conflict, InvalidInput, NotFound, SandboxError
from ..models import ExecuteRequest, SandboxRequest
from .access import SandboxAccess
from .content import answer, as_json, execution_content, failure, sandbox_summary, text

log = logging.getLogger(__name__)
AccessFor = Callable[[Context], SandboxAccess]
Tool = TypeVar("Tool", bound=Callable[..., Awaitable[Any]])
DEFAULT_SANDBOX = "mcp"  # the sandbox a call without ``sandbox`` uses, made on first use
HEARTBEAT = 5.0  # seconds between progress notifications of a silent run
IMAGE_FILES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif"}

INSTRUCTIONS = f"""\
Run code, commands and files in sandboxes: hardened containers with a stateful Jupyter kernel each,
owned by the user who connected, never the user's own kernel or home directory. Variables persist
between run_code calls in one sandbox (and context). Calls that name no sandbox use the sandbox
named {DEFAULT_SANDBOX!r}, created on first use. Sandboxes have no network unless created with
network=true (when the server allows it). Sandbox files are also resources:
sandbox://{{sandbox}}/files/{{path}}."""

SANDBOX_ARG = f"Id or name of one of your sandboxes; omitted: the one named {DEFAULT_SANDBOX!r} (made on first use)."


def build_server(access_for: AccessFor) -> MCPServer:
    server = MCPServer(name="jupyter-sandbox", instructions=INSTRUCTIONS)

    async def sandbox_ref(access: SandboxAccess, sandbox: str | None) -> str:
        if sandbox:
            return sandbox
        try:
            return (await access.get(DEFAULT_SANDBOX)).id
        except NotFound:
            pass
        try:
            return (await access.create(SandboxRequest(name=DEFAULT_SANDBOX))).id
        except Conflict:  # a call beside this one made it meanwhile
            return (await access.get(DEFAULT_SANDBOX)).id

    @server.tool(
        annotations=ToolAnnotations(title="Create a sandbox", open_world_hint=False),
        description="Create a sandbox: a new container with a Python kernel. Costs a container start (a few "
        "seconds) and counts against your sandbox quota; kill it when done. network=true gives it network access "
        "(needed by install_packages; the server may refuse it). memory like '1G'. timeout: the default seconds "
        "a run may take in it. Returns its id and name.",
    )
    @says_why
    async def create_sandbox(
        ctx: Context,
        name: str | None = None,
        network: bool = False,
        memory: str | None = None,
        timeout: float | None = None,
    ) -> CallToolResult:
        request = SandboxRequest(name=name or None, network=network, memory=memory, timeout=timeout)
        return as_json(sandbox_summary(await access_for(ctx).create(request)))

    @server.tool(
        annotations=ToolAnnotations(title="List sandboxes", read_only_hint=True),
        description="List your sandboxes (id, name, status, network, limits, contexts). Cheap.",
    )
    @says_why
    async def list_sandboxes(ctx: Context) -> CallToolResult:
        return as_json([sandbox_summary(m) for m in await access_for(ctx).list()])

    @server.tool(
        annotations=ToolAnnotations(title="Kill a sandbox", destructive_hint=True),
        description="Remove a sandbox: its container, variables and files are gone for good. Frees its quota.",
    )
    @says_why
    async def kill_sandbox(ctx: Context, sandbox: str) -> CallToolResult:
        await access_for(ctx).remove(sandbox)
        return answer(text(f"sandbox {sandbox} removed"))

    @server.tool(
        annotations=ToolAnnotations(title="Run code", open_world_hint=False),
        description="Run code in a sandbox's stateful kernel (variables persist between calls) and return its "
        "stdout, stderr, results (plots as images) and any error with its traceback. language: 'python'. context: "
        "a context id from create_context (default: the sandbox's first). timeout: seconds before the run is "
        "interrupted (the kernel and its variables stay). Costs the sandbox's CPU time for the run; the first "
        "call without a sandbox also creates one. Sends progress notifications during long runs. " + SANDBOX_ARG,
    )
    @says_why
    async def run_code(
        ctx: Context,
        code: str,
        sandbox: str | None = None,
        language: str | None = None,
        context: str | None = None,
        timeout: float | None = None,
    ) -> CallToolResult:
        access = access_for(ctx)
        ref = await sandbox_ref(access, sandbox)
        request = ExecuteRequest(code=code, context_id=context, language=language, timeout=timeout)
        started = time.monotonic()

        async def progress(message: str) -> None:
            try:
                await ctx.report_progress(time.monotonic() - started, timeout, message)
            except Exception as e:  # a notification that cannot go out must not end the run; the answer says
                log.info("jupyter-sandbox: an MCP progress notification failed: %r", e)

        async def on_event(event: dict[str, Any]) -> None:
            if event.get("type") in ("stdout", "stderr"):
                await progress(f"{event['type']}: {str(event.get('text', '')).strip()[-200:]}")

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(HEARTBEAT)
                await progress(f"running for {time.monotonic() - started:.0f} s")

        beating = asyncio.ensure_future(heartbeat())
        try:
            execution = await access.execute(ref, request, on_event)
        finally:
            beating.cancel()
        return execution_content(execution)

    @server.tool(
        annotations=ToolAnnotations(title="Create a context"),
        description="Start another kernel (a context) in a sandbox, with its own variables; pass its id as run_code's "
        "context. Costs a kernel's memory in the sandbox. cwd: its working directory. " + SANDBOX_ARG,
    )
    @says_why
    async def create_context(
        ctx: Context, sandbox: str | None = None, language: str | None = None, cwd: str | None = None
    ) -> CallToolResult:
        access = access_for(ctx)
        model = await access.create_context(await sandbox_ref(access, sandbox), language, cwd)
        return as_json(model.to_dict())

    @server.tool(
        annotations=ToolAnnotations(title="Read a file", read_only_hint=True),
        description="Read a file of a sandbox (a path relative to its working directory /home/user, or absolute "
        "inside it). Text comes back as text, PNG/JPEG/GIF as an image, other binary files as base64. " + SANDBOX_ARG,
    )
    @says_why
    async def read_file(ctx: Context, path: str, sandbox: str | None = None) -> CallToolResult:
        access = access_for(ctx)
        data = await access.read_file(await sandbox_ref(access, sandbox), path)
        mime = IMAGE_FILES.get(path.rsplit(".", 1)[-1].lower())
        if mime:
            return answer(ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type=mime))
        try:
            return answer(text(data.decode()))
        except UnicodeDecodeError:
            return answer(text(f"binary file, {len(data)} bytes, base64:\n" + base64.b64encode(data).decode()))

    @server.tool(
        annotations=ToolAnnotations(title="Write a file", destructive_hint=True, idempotent_hint=True),
        description="Write a file in a sandbox (parent folders are made; an existing file is replaced). content is "
        "text, or base64 with is_base64=true for binary files. Counts against the sandbox's disk. " + SANDBOX_ARG,
    )
    @says_why
    async def write_file(
        ctx: Context, path: str, content: str, sandbox: str | None = None, is_base64: bool = False
    ) -> CallToolResult:
        access = access_for(ctx)
        try:
            data = base64.b64decode(content, validate=True) if is_base64 else content.encode()
        except ValueError:
            raise InvalidInput("content is not valid base64", field="content") from None
        await access.write_file(await sandbox_ref(access, sandbox), path, data)
        return answer(text(f"wrote {len(data)} bytes to {path}"))

    @server.tool(
        annotations=ToolAnnotations(title="List files", read_only_hint=True),
        description="List a folder of a sandbox (default: its working directory): names, types, sizes. Cheap. "
        + SANDBOX_ARG,
    )
    @says_why
    async def list_files(ctx: Context, path: str = ".", sandbox: str | None = None) -> CallToolResult:
        access = access_for(ctx)
        return as_json(await access.list_files(await sandbox_ref(access, sandbox), path))

    @server.tool(
        annotations=ToolAnnotations(title="Run a command", open_world_hint=False),
        description="Run a shell command (bash -l -c) in a sandbox and return its exit code, stdout and stderr. "
        "timeout: seconds before it is killed (default 60). Costs the sandbox's CPU time; no network unless the "
        "sandbox has it. " + SANDBOX_ARG,
    )
    @says_why
    async def run_command(
        ctx: Context, command: str, sandbox: str | None = None, cwd: str | None = None, timeout: float = 60
    ) -> CallToolResult:
        access = access_for(ctx)
        result = await access.run_command(await sandbox_ref(access, sandbox), command, cwd, timeout)
        blocks = [text(result.ending)]
        if result.stdout:
            blocks.append(text("stdout:\n" + result.stdout))
        if result.stderr:
            blocks.append(text("stderr:\n" + result.stderr))
        return answer(*blocks, error=result.failed)

    @server.tool(
        annotations=ToolAnnotations(title="Install packages", open_world_hint=True),
        description="pip install Python packages into a sandbox (for your user, importable at once by run_code). "
        "Needs a sandbox created with network=true: without network it fails at once, saying so. Costs a download "
        "and the sandbox's disk; may take minutes (timeout, default 300 s). " + SANDBOX_ARG,
    )
    @says_why
    async def install_packages(
        ctx: Context, packages: list[str], sandbox: str | None = None, timeout: float = 300
    ) -> CallToolResult:
        if not packages or any(not p.strip() or p.strip().startswith("-") for p in packages):
            raise InvalidInput("packages: one or more package names (no pip options)", field="packages")
        access = access_for(ctx)
        model = await access.get(await sandbox_ref(access, sandbox))
        if not model.spec.network:
            return failure(
                f"sandbox {model.name} ({model.id}) has no network, so pip cannot reach a package index. Create "
                "a sandbox with create_sandbox(network=true) if the server allows it, or write wheel files into "
                "this one with write_file and install them with run_command."
            )
        quoted = " ".join("'" + p.strip().replace("'", "'\\''") + "'" for p in packages)
        command = f"python -m pip install --user --quiet --disable-pip-version-check {quoted}"
        result = await access.run_command(model.id, command, None, timeout)
        if result.failed:
            return failure(f"pip install failed ({result.ending}):\n{result.stderr or result.stdout}")
        # the running kernel learns of the user site folder pip may just have made
        refresh = "import importlib, site; site.addsitedir(site.getusersitepackages()); importlib.invalidate_caches()"
        await access.execute(model.id, ExecuteRequest(code=refresh), lambda event: None)
        return answer(text(f"installed {', '.join(packages)}" + (f"\n{result.stdout}" if result.stdout else "")))

    @server.resource(
        "sandbox://{sandbox}/files/{+path}",
        name="sandbox-file",
        description="A file in one of your sandboxes (path relative to its working directory /home/user).",
    )
    async def sandbox_file(sandbox: str, path: str, ctx: Context) -> str | bytes:
        try:
            data = await access_for(ctx).read_file(sandbox, path)
        except NotFound as e:  # the SDK tells the client only the message of its own errors
            raise ResourceNotFoundError(e.message) from None
        except SandboxError as e:
            raise ResourceError(e.message) from None
        try:
            return data.decode()
        except UnicodeDecodeError:
            return data

    return server


def says_why(fn: Tool) -> Tool:
    """A SandboxError in ``fn`` reaches the agent with its message (the SDK hides the text of other
    exceptions: "Error executing tool")."""

    @functools.wraps(fn)
    async def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except SandboxError as e:
            raise ToolError(e.message) from None

    return cast("Tool", call)
