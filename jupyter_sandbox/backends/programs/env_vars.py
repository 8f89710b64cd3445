"""Runs INSIDE a sandbox's kernel, around one execution that was given environment variables.

The manager runs this module's source followed by one call line, silently, before and after
the execution: before, ``_jsbx_env = _jsbx_swap_env({...})`` sets the variables and keeps what
they replaced; after, ``_jsbx_swap_env(_jsbx_env)`` puts that back (a swap is its own undo).
Run in the user's namespace: its names start with ``_jsbx_`` and the call lines delete them
when done (between the two runs only ``_jsbx_env`` is left). Standard library only.
"""


def _jsbx_swap_env(values):
    """Put ``values`` into os.environ (None: unset the variable); return what they replaced, in
    the same form."""
    import os  # inside: the user's namespace gets no name from this program

    replaced = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return replaced
