"""What the magics raise, shown by IPython as they should read: a one-line problem, or the remote
traceback of code that failed in the sandbox (never the magics' own frames)."""

from __future__ import annotations

from .magic_options import relabel_cells
from .models import Execution


class SandboxMagicError(Exception):
    """A problem worth one line (server unreachable, bad request): no local traceback."""

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


class RemoteError(Exception):
    """The code failed in the sandbox. IPython shows the *remote* traceback (ipyparallel's way).

    Raising it fails the cell, so "Run All" stops there as with a local error.
    """

    def __init__(self, execution: Execution, cell_numbers: dict[int, int] | None = None):
        assert execution.error is not None, "a RemoteError is made from a failed execution"
        self.execution = execution
        # the sandbox kernel's cell numbers -> the notebook's, for its "Cell In[N]" labels
        self.cell_numbers = cell_numbers or {}
        self.error = execution.error
        self.ename = execution.error.name
        self.evalue = execution.error.value
        super().__init__(f"{self.ename}: {self.evalue}")

    def _render_traceback_(self) -> list[str]:
        return relabel_cells(self.error._render_traceback_(), self.cell_numbers)

    @classmethod
    def of(cls, execution: Execution, cell_numbers: dict[int, int] | None = None) -> RemoteError:
        """An instance whose class is named like the remote exception, so the cell's error
        output says ``ZeroDivisionError`` rather than ``RemoteError``."""
        name = execution.error.name if execution.error else "RemoteError"
        kind: type[RemoteError] = type(name, (cls,), {"__module__": "sandbox"}) if name.isidentifier() else cls
        return kind(execution, cell_numbers)
