"""Runs INSIDE a sandbox's kernel for ``jupyter sandbox exec FILE.py ARGS...``.

Shipped as source text and followed by ``_jupyter_sandbox_run_script(name, argv)`` as the cell's
last line: the script runs as ``__main__`` with ``sys.argv = argv``, and the cell's value is its
exit status (``sys.exit``'s message, if any, goes to stderr, as Python prints it). Runs in the
user's namespace; stdlib only (Python 3.8+).
"""


def _jupyter_sandbox_run_script(name, argv):
    import runpy
    import sys

    sys.argv = list(argv)
    try:
        runpy.run_path(name, run_name="__main__")
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return int(e.code or 0)  # sys.exit(True) is status 1
        print(e.code, file=sys.stderr)
        return 1
    return 0
