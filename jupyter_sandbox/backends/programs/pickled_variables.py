"""Notebook variables moved in and out of a sandbox's kernel as base64 pickles (``%sandbox push``
and ``%sandbox pull``).

Executed as code in the sandbox's kernel, followed by the magic's own lines:
``x = _jsbx_unpickle("...")`` for each pushed variable, or ``_jsbx_print_pickled(x)`` for each
pulled one (its base64 line on stdout), then ``del _jsbx_unpickle, _jsbx_print_pickled``: the
user's namespace gains only the variables. The imports are inside the functions for the same
reason (top-level names here would join the user's variables).
"""


def _jsbx_unpickle(data):
    import base64
    import pickle

    return pickle.loads(base64.b64decode(data))


def _jsbx_print_pickled(value):
    import base64
    import pickle

    print(base64.b64encode(pickle.dumps(value)).decode())
