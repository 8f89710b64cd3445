"""Runs INSIDE a restarted notebook kernel: the first cell run after it says why the last kernel died.

Shipped as source text by the kernel provisioner and followed by
``_jupyter_sandbox_death_notice(get_ipython(), text)``: a pre_run_cell hook prints ``text`` to
stderr once, then removes itself, so the notebook says why its variables are gone. Uses only the
shell it is given and the standard library (Python 3.8+).
"""


def _jupyter_sandbox_death_notice(shell, text):
    import sys

    def notice(*_info):
        print(text, file=sys.stderr)
        shell.events.unregister("pre_run_cell", notice)

    shell.events.register("pre_run_cell", notice)
