"""What a tool answers, as MCP content: an Execution's output as text and images, errors with their
traceback, and SandboxErrors as tool errors the agent can read."""

from __future__ import annotations

import json
import re
from typing import Any

from mcp_types import CallToolResult, ContentBlock, ImageContent, TextContent

from ..models import Execution, SandboxModel

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # the kernel colours tracebacks for a terminal
TEXT_CAP = 100_000  # characters of one text block an agent is given (its context is what it costs)
IMAGES = (("png", "image/png"), ("jpeg", "image/jpeg"))


def capped(text: str) -> str:
    if len(text) <= TEXT_CAP:
        return text
    return text[:TEXT_CAP] + f"\n[... {len(text) - TEXT_CAP} more characters cut]"


def text(value: str) -> TextContent:
    return TextContent(type="text", text=capped(value))


def answer(*blocks: ContentBlock, error: bool = False) -> CallToolResult:
    return CallToolResult(content=list(blocks), is_error=error)


def failure(message: str) -> CallToolResult:
    return answer(text(message), error=True)


def as_json(data: Any) -> CallToolResult:
    return answer(text(json.dumps(data, indent=1)))


def execution_content(execution: Execution) -> CallToolResult:
    """stdout, stderr, each result (text/plain, or its image), then the error and its traceback."""
    blocks: list[ContentBlock] = []
    if execution.logs.stdout:
        blocks.append(text("stdout:\n" + "".join(execution.logs.stdout)))
    if execution.logs.stderr:
        blocks.append(text("stderr:\n" + "".join(execution.logs.stderr)))
    for result in execution.results:
        images = [
            ImageContent(type="image", data=getattr(result, f), mime_type=m) for f, m in IMAGES if getattr(result, f)
        ]
        blocks.extend(images)
        if result.text is not None and not (images and result.text.startswith("<Figure")):
            blocks.append(text(result.text))
        elif not images and result.formats():
            blocks.append(text(f"(a result in {', '.join(result.formats())}; no text form)"))
    error = execution.error
    if error is not None:
        traceback = ANSI.sub("", error.traceback).strip()
        blocks.append(text(f"{error.name}: {error.value}" + (f"\n{traceback}" if traceback else "")))
    if not blocks:
        blocks.append(text("(no output)"))
    return answer(*blocks, error=error is not None)


def sandbox_summary(model: SandboxModel) -> dict[str, Any]:
    """What an agent needs of a sandbox (the full model is long)."""
    return {
        "id": model.id,
        "name": model.name,
        "status": model.status,
        "network": model.spec.network,
        "memory_bytes": model.spec.memory,
        "cpus": model.spec.cpus,
        "timeout_s": model.spec.timeout,
        "contexts": [c.id for c in model.contexts],
        "isolation": model.isolation,
    }
