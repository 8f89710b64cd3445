"""PID 1 of a Kubernetes sandbox pod: waits, and reaps the orphans its execs leave.

A pod has no init of its own (Docker's ``--init`` has none there either): a kernel whose launcher
ended is re-parented to PID 1, which must collect it when it exits, or zombies fill the pid table.
Standard library only; shipped as source text (``python -I -c``).
"""

import os
import signal


def reap(*_):
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


signal.signal(signal.SIGCHLD, reap)
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
while True:
    signal.pause()
