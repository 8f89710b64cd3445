"""Programs that run inside a sandbox, kept as modules so they are linted and tested.

They are stdlib-only (Python 3.8+: the image's interpreter, not the server's) and reach a sandbox
as source text: a command line (``python -I -c``), a kernel's ``exec_lines``, or code a kernel
executes. ``source(name)`` is that text.
"""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def source(name: str) -> str:
    """The text of ``programs/{name}.py``, as shipped into a sandbox."""
    return resources.files(__package__).joinpath(f"{name}.py").read_text(encoding="utf-8")
