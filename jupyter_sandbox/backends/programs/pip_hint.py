"""Runs INSIDE the kernel of a sandbox without network, once at its start (IPKernelApp.exec_lines).

The backend also sets PIP_NO_INDEX=1 there, so pip never tries an index it cannot reach (it
fails at once instead of retrying for ~8 s). After a cell whose `!pip install` or `%pip install`
failed, this prints one line saying why and what to do. Both forms go through the shell's
``system``, which leaves the exit status in ``_exit_code``; the hook reads it after the cell
rather than wrapping ``system``, whose variable expansion ($x, {x}) reads its caller's frame.

Shipped as source text (package data) and run in the user's namespace: it must leave no name
behind, and use only IPython and the standard library.
"""


def _jupyter_sandbox_pip_hint():
    import re
    import sys

    shell = get_ipython()  # noqa: F821 (IPython's builtin in the kernel's namespace)
    # a shell or magic line that runs pip install: !pip install, %pip install, !python -m pip install
    pip_install = re.compile(r"^\s*[!%].*\bpip[\d.]*\s+(?:-\S+\s+)*install\b", re.M)
    hint = (
        "jupyter-sandbox: this sandbox has no network, so pip can install only local files (no index is "
        "reachable). Ask for a sandbox with network where the server allows it: %%sandbox --network, "
        'Sandbox(network=True), or "network": true in a sandboxed kernelspec.'
    )

    def before(info):
        if pip_install.search(info.raw_cell or ""):
            shell.user_ns.pop("_exit_code", None)  # a status from an earlier cell says nothing here

    def after(result):
        if pip_install.search(result.info.raw_cell or "") and shell.user_ns.get("_exit_code"):
            print(hint, file=sys.stderr, flush=True)

    shell.events.register("pre_run_cell", before)
    shell.events.register("post_run_cell", after)


_jupyter_sandbox_pip_hint()
del _jupyter_sandbox_pip_hint
