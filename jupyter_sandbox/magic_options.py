"""What the magics do with options that shape a sandbox (image, memory, CPUs, network).

A sandbox's container cannot change those once it runs, so ``%%sandbox`` on an existing sandbox
never drops them silently: options that differ fail the cell with a message saying how to get a
sandbox with them. ``%sandbox restart --memory 2G`` recreates the sandbox with new ones.
The per-execution options (``--timeout``, ``--env``) apply to every run and need no check.
What ``%sandbox list``, ``status`` and ``restart`` print of those settings is made here too.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from .errors import InvalidInput
from .models import SandboxModel, format_size, human_size, limit_text, parse_size

# the options fixed when a sandbox is made, in the order messages name them
SHAPING = ("image", "memory", "cpus", "network")


def _image_ref(image: str) -> str:
    """``python`` and ``python:latest`` are one image: compared with the tag Docker would add."""
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last or "@" in last else f"{image}:latest"


def _shown(option: str, value: Any) -> str:
    if option == "memory":
        return format_size(value)
    if option == "cpus":
        return f"{value:g} CPUs"
    if option == "network":
        return "network on" if value else "no network"
    return str(value)


def _as_flag(option: str, value: Any) -> str:
    if option == "network":
        return "--network" if value else "--no-network"
    return f"--{option} {shlex.quote(str(value))}"


def differences(given: dict[str, Any], model: SandboxModel) -> dict[str, tuple[Any, Any]]:
    """The shaping options in ``given`` (as the cell wrote them) that the sandbox does not have:
    option -> (what it has, what was asked)."""
    found: dict[str, tuple[Any, Any]] = {}
    spec = model.spec
    if given.get("image") and spec.image and _image_ref(given["image"]) != _image_ref(spec.image):
        found["image"] = (spec.image, given["image"])
    if given.get("memory"):
        try:
            asked = parse_size(given["memory"], "memory")
        except InvalidInput:  # the server's create would say the same: leave it to the restart
            asked = None
        if asked != spec.memory:
            found["memory"] = (spec.memory, given["memory"])
    if given.get("cpus") is not None and float(given["cpus"]) != spec.cpus:
        found["cpus"] = (spec.cpus, given["cpus"])
    if given.get("network") is not None and bool(given["network"]) != spec.network:
        found["network"] = (spec.network, given["network"])
    return found


def mismatch_message(name: str, found: dict[str, tuple[Any, Any]], *, default: bool) -> str:
    """Why the cell did not run, and the two ways to get a sandbox with the options asked."""
    has = ", ".join(_shown(o, found[o][0]) for o in SHAPING if o in found)
    flags = " ".join(_as_flag(o, found[o][1]) for o in SHAPING if o in found)
    target = "" if default else f" {name}"
    return (
        f"the sandbox {name!r} exists with {has}: {', '.join(f'--{o}' for o in SHAPING if o in found)} "
        f"only shape a new sandbox, and nothing ran. Either `%sandbox restart{target} {flags}` recreates it "
        f"with them (its files and variables are lost), or `%%sandbox NEW-NAME {flags}` makes another one."
    )


def restart_spec(model: SandboxModel, options: dict[str, Any]) -> dict[str, Any]:
    """The spec of a sandbox recreated by ``%sandbox restart`` with new options: the old one's, with
    those options over it."""
    spec = model.spec
    recreated: dict[str, Any] = {
        "image": spec.image,
        "memory": spec.memory,
        "cpus": spec.cpus,
        "network": spec.network,
        "env": dict(spec.env) or None,
        "timeout": spec.timeout,
    }
    recreated.update({k: v for k, v in options.items() if v is not None})
    return {k: v for k, v in recreated.items() if v is not None}


# IPython writes a cell's frame as "Cell In[5], line 2", colours between the words
_CELL_LABEL = re.compile(r"(Cell(?:\x1b\[[0-9;]*m)*\s+(?:\x1b\[[0-9;]*m)*In\[)(\d+)(\])")


def relabel_cells(lines: list[str], numbers: dict[int, int]) -> list[str]:
    """The traceback with the sandbox kernel's cell numbers replaced by the notebook's own, for the
    cells whose numbers are known (the ones the magics ran); any other label is left as it is."""

    def label(match: re.Match[str]) -> str:
        remote = int(match.group(2))
        return f"{match.group(1)}{numbers.get(remote, remote)}{match.group(3)}"

    return [_CELL_LABEL.sub(label, line) for line in lines]


def settings(model: SandboxModel) -> str:
    """A sandbox's shaping settings in one phrase, as ``%sandbox status`` and ``restart`` say them."""
    spec = model.spec
    return (
        f"image {spec.image}, {format_size(spec.memory)} memory, {spec.cpus:g} CPUs, "
        f"network {'on' if spec.network else 'off'}"
    )


def list_lines(models: list[SandboxModel]) -> list[str]:
    """What ``%sandbox list`` prints: a table of the sandboxes, a row each."""
    rows = [f"{'NAME':<24} {'ID':<18} {'STATUS':<10} {'BACKEND':<8} {'MEMORY':>7} {'CPUS':>5}"]
    for m in models:
        rows.append(
            f"{m.name:<24} {m.id:<18} {m.status:<10} {m.backend:<8} {format_size(m.spec.memory):>7} {m.spec.cpus:>5g}"
        )
    return rows


def status_lines(model: SandboxModel, stats: dict[str, Any]) -> list[str]:
    """What ``%sandbox status`` prints: the sandbox's settings, then what it uses now."""
    return [
        f"{model.name} ({model.id}): {model.status} on {model.backend}; {settings(model)}; "
        f"{len(model.contexts)} context(s)",
        f"  using {stats.get('cpu_percent', 0):.1f}% CPU, {human_size(stats.get('memory_used') or 0)} of "
        f"{limit_text(model.spec.memory, model.spec.disk)}, {stats.get('pids')} processes",
    ]


class CellNumbers:
    """For each (sandbox id, context) ``%%sandbox`` ran in: its kernel's cell numbers -> the notebook's."""

    def __init__(self) -> None:
        self._by_kernel: dict[tuple[str, str | None], dict[int, int]] = {}

    def note(self, sandbox_id: str, context: str | None, remote: int | None, local: int) -> dict[int, int]:
        """Note that the sandbox's cell ``remote`` was the notebook's ``local``; the numbers known."""
        numbers = self._by_kernel.setdefault((sandbox_id, context), {})
        if remote is not None:
            # A sandbox kernel numbers upwards: numbers not below this one are from before it restarted.
            for stale in [n for n in numbers if n >= remote]:
                del numbers[stale]
            numbers[remote] = local
        return numbers

    def forget(self, sandbox_id: str) -> None:
        """The sandbox's kernels start again (it was restarted or recreated)."""
        for key in [key for key in self._by_kernel if key[0] == sandbox_id]:
            del self._by_kernel[key]
