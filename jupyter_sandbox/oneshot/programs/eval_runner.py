"""``python eval_runner.py RESULT_PATH ENTRYPOINT ARGS...`` in a one-shot container (stdlib only).

Runs the entrypoint as ``__main__``, as ``python ENTRYPOINT ARGS...`` would. If its last
statement is an expression, writes the repr of its value (unless None, as a REPL would) to
RESULT_PATH. An error prints a normal traceback without this runner's frames, so the error
line points into the user's file.
"""

import ast
import os
import sys
import traceback
import types


def main():
    result_path = sys.argv[1]
    path = os.path.abspath(sys.argv[2])
    sys.argv = [path, *sys.argv[3:]]
    sys.path[0] = os.path.dirname(path)
    module = types.ModuleType("__main__")
    module.__file__ = path
    sys.modules["__main__"] = module
    try:
        with open(path, "rb") as f:
            tree = compile(f.read(), path, "exec", ast.PyCF_ONLY_AST)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, path, "exec"), module.__dict__)
        if last is not None:
            value = eval(compile(last, path, "eval"), module.__dict__)
            if value is not None:
                with open(result_path, "w", encoding="utf-8") as f:
                    f.write(repr(value))
    except SystemExit:
        raise
    except BaseException as e:
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        traceback.print_exception(type(e), e, tb)
        sys.exit(1)


if __name__ == "__main__":
    main()
