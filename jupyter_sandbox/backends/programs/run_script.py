"""Runs INSIDE a sandbox's kernel for ``jupyter sandbox exec FILE.py ARGS...``.

Shipped as source text and followed by ``_jupyter_sandbox_run_script(name, argv)`` as the cell's
last line: the script runs as ``__main__`` with ``sys.argv = argv``, and the cell's value is its
exit status (``sys.exit``'s message, if any, goes to stderr, as Python prints it). An exception's
traceback starts at the script's own frames, as ``python FILE.py`` shows it: this wrapper and
runpy are no news to the user (IPython prints what ``_render_traceback_`` gives, when there is one).
Runs in the user's namespace; stdlib only (Python 3.8+).
"""


def _jupyter_sandbox_run_script(name, argv):
    import runpy
    import sys
    import traceback

    sys.argv = list(argv)
    try:
        runpy.run_path(name, run_name="__main__")
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return int(e.code or 0)  # sys.exit(True) is status 1
        print(e.code, file=sys.stderr)
        return 1
    except BaseException as e:
        frames = e.__traceback__
        while frames is not None and frames.tb_frame.f_code.co_filename != name:
            frames = frames.tb_next
        # (a SyntaxError never reached the script: where the file is wrong is all there is to show)
        if frames is not None or isinstance(e, SyntaxError):
            lines = "".join(traceback.format_exception(type(e), e, frames)).rstrip("\n").split("\n")
            try:
                e._render_traceback_ = lambda: lines
            except AttributeError:  # an exception type without a __dict__: its traceback stays whole
                pass
        raise
    return 0
