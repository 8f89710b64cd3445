"""Runs INSIDE the kernel of a sandbox without network, once at its start (IPKernelApp.exec_lines).

After a cell that failed on a refused connection, an unreachable network or a failed name lookup
(ConnectionRefusedError, OSError ENETUNREACH/EHOSTUNREACH, socket.gaierror, and what wraps them:
urllib's URLError, requests' ConnectionError, urllib3's errors), the traceback ends with one line
saying that the sandbox has no network and how to get one, as pip_hint.py does for pip.
The cause is looked for along the error's chain (__cause__, __context__, URLError.reason, the
arguments), so wrappers need no import here.

Shipped as source text (package data) and run in the user's namespace: it must leave no name
behind, and use only IPython and the standard library.
"""


def _jupyter_sandbox_network_hint():
    import errno
    import socket

    shell = get_ipython()  # noqa: F821 (IPython's builtin in the kernel's namespace)
    hint = (
        "jupyter-sandbox: this sandbox has no network, so connections and name lookups fail. Ask for a "
        "sandbox with network where the server allows it: %%sandbox --network, Sandbox(network=True), "
        'or "network": true in a sandboxed kernelspec.'
    )
    unreachable = {errno.ENETUNREACH, errno.EHOSTUNREACH}

    def offline(error, seen):
        if error is None or id(error) in seen or len(seen) > 20:
            return False
        seen.add(id(error))
        if isinstance(error, (ConnectionRefusedError, socket.gaierror)):
            return True
        if isinstance(error, OSError) and error.errno in unreachable:
            return True
        linked = [error.__cause__, error.__context__, getattr(error, "reason", None)]
        linked += [a for a in getattr(error, "args", ()) if isinstance(a, BaseException)]
        return any(isinstance(e, BaseException) and offline(e, seen) for e in linked)

    def with_hint(shell, etype, value, tb, tb_offset=None):
        # the traceback as IPython makes it, the hint as its last line: in the error itself, so
        # %%sandbox (which shows the remote error) and a notebook's kernel both show it under it
        stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
        if offline(value, set()):
            stb = [*stb, hint]
        shell._showtraceback(etype, value, stb)
        return stb

    # every error it looks for is an OSError (URLError, requests' ConnectionError included)
    shell.set_custom_exc((OSError,), with_hint)


_jupyter_sandbox_network_hint()
del _jupyter_sandbox_network_hint
