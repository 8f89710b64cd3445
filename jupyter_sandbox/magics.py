"""IPython magics: ``%%sandbox``, ``%remote_eval`` / ``%%remote_eval`` and ``%sandbox``.

``%load_ext jupyter_sandbox`` registers them. They always go through a jupyter-sandbox
server (the notebook's kernel never needs Docker): JUPYTER_SANDBOX_URL/TOKEN, the
JupyterHub environment, or the local Jupyter server that runs this notebook.
"""

from __future__ import annotations

import argparse
import ast
import atexit
import functools
import getpass
import os
import re
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TextIO, TypeVar, cast

from IPython.core.error import StdinNotImplementedError, UsageError
from IPython.core.magic import Magics, cell_magic, line_cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import publish_display_data
from traitlets import Bool, Float, Int, Unicode
from traitlets.config import Configurable

from .client import Connection, NoInput, OneShot, Sandbox, connect
from .errors import Conflict, InvalidInput, NotFound, SandboxError
from .host_files import copy_folder
from .magic_errors import RemoteError, SandboxMagicError
from .magic_options import (
    CellNumbers,
    differences,
    list_lines,
    mismatch_message,
    restart_spec,
    settings,
    status_lines,
)
from .magic_pull import PullRefused, pull_words
from .magic_variables import pull_variables, push_variables
from .models import Execution, InputRequest, OutputMessage, Result, parse_size

Method = TypeVar("Method", bound=Callable[..., Any])
Returned = TypeVar("Returned")
Params = ParamSpec("Params")


class MethodDecorator(Protocol):
    """A decorator that gives back the method it decorates (IPython's magic_arguments ones do)."""

    def __call__(self, method: Method, /) -> Method: ...


# IPython's decorators and helpers carry no annotations (8.x; 9.x types some as unions mypy cannot
# apply): typed here by what they do, casts that hold for either
magic_arguments_of = cast("Callable[..., MethodDecorator]", magic_arguments)
magic_argument = cast("Callable[..., MethodDecorator]", argument)
keep_variables_unexpanded = cast("MethodDecorator", no_var_expand)
line_magic_named = cast("Callable[[str], MethodDecorator]", line_magic)
cell_magic_named = cast("Callable[[str], MethodDecorator]", cell_magic)
line_and_cell_magic = cast("MethodDecorator", line_cell_magic)
parse_magic_arguments = cast("Callable[[Callable[..., Any], str], argparse.Namespace]", parse_argstring)
publish_bundle = cast("Callable[[dict[str, Any]], None]", publish_display_data)

SUBCOMMANDS = ("list", "status", "restart", "interrupt", "kill", "files", "push", "pull", "config")


def _with_restart_advice(reason: str, name: str) -> str:
    """A dead kernel's reason, with the magic that goes on instead of the API's advice."""
    reason = re.sub(
        r"\s*(\(restart the context or the sandbox\)|Restart the (context|sandbox) to continue\.)", "", reason
    )
    return f"{reason.rstrip('.')}. Run %sandbox restart {name} to go on (its variables and files are reset)."


class RemoteValue(str):
    """A remote ``repr`` that is not a Python literal: shown as-is, not quoted again."""

    def __repr__(self) -> str:
        return str(self)


def _usage(func: Any) -> str:
    """``func``: a method decorated by magic_arguments, which gave it ``.parser`` (an untyped attribute)."""
    parser: argparse.ArgumentParser = func.parser
    # MagicHelpFormatter writes reST ("::" and indentation); one plain line reads better.
    return "usage: " + " ".join(parser.format_usage().replace("::", " ").split())


def _parse(func: Callable[..., Any], line: str) -> argparse.Namespace:
    """magic_arguments parsing, with the usage line in the UsageError."""
    try:
        return parse_magic_arguments(func, line)
    except UsageError as e:
        raise UsageError(f"{_usage(func)}\n{e}") from None


def _env(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--env takes KEY=VALUE, not {pair!r}")
        env[key] = value
    return env


def _remove_at_exit(sandbox: Sandbox) -> None:
    try:
        sandbox.kill()
    except SandboxError:  # already gone, or the server went first: nothing left to do
        pass


def _kernel_id() -> str | None:
    """This notebook kernel's id (jupyter_server names the connection file after it)."""
    try:
        # deferred: only a kernel has a connection file (terminal IPython need not load ipykernel)
        from ipykernel.connect import get_connection_file

        stem = os.path.basename(get_connection_file())
    except Exception:  # not in a kernel (terminal IPython)
        return None
    return stem.removeprefix("kernel-").removesuffix(".json")


def _default_name() -> str:
    """One sandbox per notebook kernel by default. JupyterLab's *Run cell in sandbox* uses the
    same name (``notebook-`` and the kernel id's first 12 characters), so they share it, and a
    rename of the notebook keeps it."""
    return f"notebook-{(_kernel_id() or str(os.getpid()))[:12]}"


def _write(stream: TextIO) -> Callable[[OutputMessage], None]:
    def callback(message: OutputMessage) -> None:
        stream.write(message.line)
        stream.flush()  # now, not at the next flush interval: output is live

    return callback


def _ask(request: InputRequest) -> str:
    """An input() in the sandbox, asked of this notebook's own stdin: JupyterLab shows its input box."""
    try:
        if request.password:
            return getpass.getpass(request.prompt)
        return input(request.prompt)
    except StdinNotImplementedError:
        raise NoInput(
            "the code asked for input, but this notebook's kernel cannot ask anyone: its client does not "
            "accept input requests (e.g. nbclient without allow_stdin)"
        ) from None


def _publish(result: Result) -> None:
    if not result.is_main_result:  # the main result is the magic's return value: Out[n]
        publish_bundle(result.bundle())


@magics_class
class SandboxMagics(Magics, Configurable):
    """Run cells in sandboxes. Defaults are set with ``%config SandboxMagics.<name> = ...``."""

    server_url = Unicode("", help="Jupyter server running jupyter_sandbox ('' = find it).").tag(config=True)
    token = Unicode("", help="Token for server_url ('' = from the environment).").tag(config=True)
    default_sandbox = Unicode("", help="Sandbox for %%sandbox without NAME ('' = one per notebook kernel).").tag(
        config=True
    )
    default_image = Unicode("", help="Image for new sandboxes ('' = the server's default).").tag(config=True)
    default_memory = Unicode("", help="Memory for new sandboxes, e.g. 512M ('' = the server's default).").tag(
        config=True
    )
    default_cpus = Float(None, allow_none=True, help="CPUs for new sandboxes (None = the server's default).").tag(
        config=True
    )
    default_network = Bool(False, help="Whether new sandboxes get network access.").tag(config=True)
    default_timeout = Float(None, allow_none=True, help="Per-execution timeout in seconds (None = the server's).").tag(
        config=True
    )
    remove_default_on_exit = Bool(
        True, help="Remove this kernel's own default sandbox when the kernel shuts down (named ones stay)."
    ).tag(config=True)
    pull_trusted = Bool(False, help="Let %sandbox pull unpickle any object (runs code from the sandbox here).").tag(
        config=True
    )
    pull_max_size = Int(64 * 1024**2, help="Largest file %sandbox pull FILE copies, in bytes.").tag(config=True)

    @property
    def user_ns(self) -> dict[str, Any]:
        """The notebook's namespace (the magics only ever run in a shell)."""
        assert self.shell is not None
        namespace: dict[str, Any] = self.shell.user_ns
        return namespace

    @functools.cached_property
    def _sandboxes(self) -> dict[str, Sandbox]:
        """The sandboxes this kernel's magics used, by name."""
        return {}

    @functools.cached_property
    def _cell_numbers(self) -> CellNumbers:
        return CellNumbers()

    # -- plumbing ---------------------------------------------------------------------
    def _connection(self) -> Connection:
        try:
            return connect(self.server_url or None, self.token or None, in_process=False)
        except SandboxError as e:
            raise SandboxMagicError(f"jupyter-sandbox: {e}") from None

    def _call(self, func: Callable[Params, Returned], *args: Params.args, **kwargs: Params.kwargs) -> Returned:
        """Run a client call; server-side problems become one line, not a traceback."""
        try:
            return func(*args, **kwargs)
        except SandboxError as e:
            raise SandboxMagicError(f"jupyter-sandbox: {e}") from None

    def _sandbox(self, name: str | None, spec: dict[str, Any] | None = None) -> Sandbox:
        """The named sandbox: cached, else found on the server, else created (when ``spec`` given)."""
        name = name or self.default_sandbox or _default_name()
        if name in self._sandboxes:
            return self._sandboxes[name]
        connection = self._connection()
        try:
            sandbox = Sandbox.connect(name, _connection=connection)
        except NotFound:
            if spec is None:
                raise SandboxMagicError(f"jupyter-sandbox: no sandbox {name!r} (`%sandbox list` shows yours)") from None
            sandbox = self._call(self._create, name, spec, connection)
        except SandboxError as e:
            raise SandboxMagicError(f"jupyter-sandbox: {e}") from None
        self._sandboxes[name] = sandbox
        return sandbox

    def _create(self, name: str, spec: dict[str, Any], connection: Connection) -> Sandbox:
        own = name == _default_name() and not self.default_sandbox and self.remove_default_on_exit
        try:
            # The kernel's own sandbox is tied to it: the server removes it when the kernel shuts down.
            return Sandbox(name, keep=True, kernel_id=_kernel_id() if own else None, _connection=connection, **spec)
        except Conflict:  # made a moment ago by another client (JupyterLab's Run cell in sandbox)
            return Sandbox.connect(name, _connection=connection)
        except InvalidInput as e:
            if e.field != "kernel_id":
                raise
        # This kernel was not started by that server (nbclient, a console): the server cannot
        # see it shut down, so the kernel removes its sandbox itself when it exits.
        sandbox = Sandbox(name, keep=True, _connection=connection, **spec)
        atexit.register(_remove_at_exit, sandbox)
        return sandbox

    def _spec(self, args: argparse.Namespace | None = None) -> dict[str, Any]:
        """The spec for a new sandbox: the cell's options over the configured defaults."""
        given = vars(args) if args is not None else {}
        spec = {
            "image": given.get("image") or self.default_image or None,
            "memory": given.get("memory") or self.default_memory or None,
            "cpus": given["cpus"] if given.get("cpus") is not None else self.default_cpus,
            "network": given.get("network") or self.default_network,
            "env": _env(given.get("env")),
            "timeout": given["timeout"] if given.get("timeout") is not None else self.default_timeout,
        }
        return {k: v for k, v in spec.items() if v is not None}

    def _run(self, sandbox: Sandbox, code: str, *, stream: bool = True, **kwargs: Any) -> Execution:
        callbacks: dict[str, Any] = (
            dict(on_stdout=_write(sys.stdout), on_stderr=_write(sys.stderr), on_result=_publish, on_input=_ask)
            if stream
            else {}
        )
        return self._call(sandbox.run_code, code, **callbacks, **kwargs)

    # -- %%sandbox --------------------------------------------------------------------
    @magic_arguments_of("%sandbox")
    @magic_argument("name", nargs="?", help="Sandbox name (created on first use; default: one per notebook kernel).")
    @magic_argument("--image", help="Image for a new sandbox.")
    @magic_argument("--memory", help="Memory for a new sandbox, e.g. 512M.")
    @magic_argument("--cpus", type=float, help="CPUs for a new sandbox.")
    @magic_argument("--network", action="store_true", default=False, help="Give a new sandbox network access.")
    @magic_argument("--env", action="append", metavar="K=V", help="Environment variable (repeatable).")
    @magic_argument("--timeout", type=float, help="Execution timeout in seconds.")
    @magic_argument("--context", help="Context (kernel) id in the sandbox.")
    @magic_argument(
        "--language",
        help="Run the cell in that language's context (python, bash, js, ts, r: what the sandbox's image has).",
    )
    @magic_argument("--out", metavar="VAR", help="Store the Execution in this variable.")
    @magic_argument("--with-files", action="store_true", help="First copy the notebook's folder into the sandbox.")
    @keep_variables_unexpanded
    @cell_magic_named("sandbox")
    def sandbox_cell(self, line: str, cell: str) -> Result | None:
        """Run the cell in a sandbox: output streams live, results render inline, errors show the remote traceback."""
        args = _parse(self.sandbox_cell, line)
        spec = self._spec(args)
        name = args.name or self.default_sandbox or _default_name()
        kwargs = dict(context=args.context, language=args.language, envs=_env(args.env), timeout=spec.get("timeout"))
        sandbox = self._sandbox(name, spec)
        self._check_shape(sandbox, args, default=not args.name)
        if args.with_files:  # the kernel's working directory is its notebook's folder
            copied = self._call(copy_folder, sandbox, os.getcwd())
            for skipped in copied.skipped:
                print(f"jupyter-sandbox: not copied, a symlink (never followed): {skipped}", file=sys.stderr)
        try:
            execution = self._run(sandbox, cell, **kwargs)
        except SandboxMagicError:
            if name not in self._sandboxes or not self._gone(name):
                raise
            # Removed behind our back (UI, another kernel): make it again, once.
            sandbox = self._sandbox(name, spec)
            execution = self._run(sandbox, cell, **kwargs)
        local = self.shell.execution_count if self.shell is not None else 0  # this cell's [N]
        # each language's context is a kernel of its own, numbering its own cells
        kernel = args.context or (args.language if args.language not in (None, "python") else None)
        numbers = self._cell_numbers.note(sandbox.id, kernel, execution.execution_count, local)
        if args.out:
            self.user_ns[args.out] = execution
        if execution.error:
            if execution.error.name == "KernelDied":  # what to do next, said as a notebook does it
                execution.error.value = _with_restart_advice(execution.error.value, name)
            raise RemoteError.of(execution, numbers)
        return next((r for r in execution.results if r.is_main_result), None)

    def _check_shape(self, sandbox: Sandbox, args: argparse.Namespace, *, default: bool) -> None:
        """Options the cell gives that the (existing) sandbox lacks fail the cell, never silently."""
        given = {"image": args.image, "memory": args.memory, "cpus": args.cpus, "network": args.network or None}
        if all(v is None for v in given.values()):
            return  # nothing to compare: no request to the server
        model = self._call(lambda: sandbox.model)
        found = differences(given, model)
        if found:
            raise SandboxMagicError(f"jupyter-sandbox: {mismatch_message(sandbox.name, found, default=default)}")

    def _gone(self, name: str) -> bool:
        sandbox = self._sandboxes.pop(name)
        try:
            _ = sandbox.model  # asks the server
        except NotFound:
            return True
        except SandboxError:
            pass
        self._sandboxes[name] = sandbox
        return False

    # -- %remote_eval -----------------------------------------------------------------
    @magic_arguments_of()
    @magic_argument("--var", metavar="NAME", help="Store the value in this variable.")
    @magic_argument("--timeout", type=int, help="Timeout in seconds.")
    @magic_argument("code", nargs="*", help="Expression (line magic); the cell is the code in %%remote_eval.")
    @keep_variables_unexpanded
    @line_and_cell_magic
    def remote_eval(self, line: str, cell: str | None = None) -> Any:
        """Evaluate code once, statelessly, in a throwaway sandbox; returns the last expression's value."""
        if cell is None and line.strip() and not line.lstrip().startswith("--"):
            args, code = _parse(self.remote_eval, ""), line  # a bare expression: no option parsing
        else:
            args = _parse(self.remote_eval, line)
            code = cell if cell is not None else " ".join(args.code)
        if not code.strip():
            raise UsageError(f"{_usage(self.remote_eval)}\nnothing to evaluate")
        self._connection()
        client = self._call(OneShot, self.server_url or None, self.token or None)
        result = self._call(client.eval, code, timeout_seconds=args.timeout)
        if result.stdout:
            sys.stdout.write(result.stdout)
        if result.status != "completed" or result.exit_code not in (0, None):
            # The remote traceback is on stderr; show it as the error, not a local one.
            raise SandboxMagicError((result.stderr or result.error or f"remote execution {result.status}").rstrip())
        if result.stderr:
            sys.stderr.write(result.stderr)
        value = None
        if result.result is not None:
            try:
                value = ast.literal_eval(result.result)
            except (ValueError, SyntaxError):
                value = RemoteValue(result.result)
        if args.var:
            self.user_ns[args.var] = value
        return value

    # -- %sandbox ---------------------------------------------------------------------
    @magic_arguments_of("sandbox")
    @magic_argument("command", choices=SUBCOMMANDS, help="What to do.")
    @magic_argument(
        "args",
        nargs="*",
        help="[NAME] for status, restart, interrupt, kill; [NAME] [PATH] for files; [NAME] VAR... for push; "
        "[NAME] VAR... or FILE [DEST] for pull. Without NAME: the notebook's sandbox.",
    )
    @magic_argument("--name", help="The sandbox (default: the notebook's, as for %%sandbox).")
    @magic_argument("--force", action="store_true", default=False, help="pull FILE: overwrite DEST.")
    @magic_argument("--image", help="restart: recreate the sandbox with this image.")
    @magic_argument("--memory", help="restart: recreate the sandbox with this much memory, e.g. 2G.")
    @magic_argument("--cpus", type=float, help="restart: recreate the sandbox with these CPUs.")
    @magic_argument(
        "--network", action=argparse.BooleanOptionalAction, default=None, help="restart: recreate with(out) network."
    )
    @line_magic_named("sandbox")
    def sandbox_line(self, line: str) -> None:
        """%sandbox list | status [NAME] | restart [NAME] [--memory M --cpus C --image I --[no-]network]
        | interrupt [NAME] | kill [NAME] | files [NAME] [PATH] | push [NAME] VAR... | pull [NAME] VAR...
        | pull FILE [DEST] [--force] | config"""
        args = _parse(self.sandbox_line, line)
        command = args.command
        if command == "config":
            return self._show_config()
        if command == "list":
            return self._list()
        name, rest = self._target(command, args.args, args.name)
        if command in ("push", "pull") and not rest:
            what = "VAR [VAR ...]" if command == "push" else "VAR [VAR ...] or FILE [DEST]"
            raise UsageError(f"%sandbox {command} {what}: say what to {command}")
        reshaping = {"image": args.image, "memory": args.memory, "cpus": args.cpus, "network": args.network}
        if command != "restart" and any(v is not None for v in reshaping.values()):
            raise UsageError("--image, --memory, --cpus and --network go with %sandbox restart (or %%sandbox)")
        # Pushing to a sandbox that does not exist yet makes it (with the defaults).
        sandbox = self._sandbox(name, self._spec() if command == "push" else None)
        if command == "status":
            self._status(sandbox)
        elif command == "restart":
            self._restart(sandbox, {k: v for k, v in reshaping.items() if v is not None})
        elif command == "interrupt":
            self._call(sandbox.interrupt)
            print(f"interrupted {sandbox.name}")
        elif command == "kill":
            self._call(sandbox.kill)
            self._sandboxes.pop(sandbox.name, None)
            print(f"removed {sandbox.name}")
        elif command == "files":
            for entry in self._call(sandbox.files.list, rest[0] if rest else "."):
                kind = "/" if entry.type == "dir" else ""
                print(f"{entry.size:>10}  {entry.name}{kind}")
        elif command == "push":
            self._push(sandbox, rest)
        elif all(word.isidentifier() for word in rest):
            self._pull(sandbox, rest)
        else:
            self._pull_file(sandbox, rest, force=args.force)

    def _target(self, command: str, words: list[str], name: str | None) -> tuple[str | None, list[str]]:
        """Which sandbox a subcommand is about (None: the notebook's), and the words left.

        ``--name`` always says it. Otherwise a first word is the sandbox's name when it cannot be
        anything else: the only word of status/restart/interrupt/kill; for push, a word that is no
        variable of the notebook with variables after it; for files and pull, the name of an
        existing sandbox with more words after it (files: or alone)."""
        if command in ("status", "restart", "interrupt", "kill") and len(words) > (0 if name else 1):
            raise UsageError(f"%sandbox {command} [NAME]: one name at most, not {' '.join(words)}")
        if name or not words:
            return name, words
        first, rest = words[0], words[1:]
        if command in ("status", "restart", "interrupt", "kill"):
            return first, []
        if command == "push":
            return (first, rest) if rest and first not in self.user_ns else (None, words)
        if (rest or command == "files") and self._exists(first):
            return first, rest
        return None, words

    def _exists(self, name: str) -> bool:
        if name in self._sandboxes:
            return True
        try:
            self._sandbox(name)
        except SandboxMagicError:  # no such sandbox (or none reachable: the command says so next)
            return False
        return True

    def _status(self, sandbox: Sandbox) -> None:
        print("\n".join(status_lines(self._call(lambda: sandbox.model), self._call(sandbox.stats))))

    def _restart(self, sandbox: Sandbox, options: dict[str, Any]) -> None:
        """A restart keeps the container's settings; new options recreate the sandbox with them."""
        name = sandbox.name
        self._cell_numbers.forget(sandbox.id)
        if not options:
            self._call(sandbox.restart)
            print(f"restarted {name}: variables and files are reset")
            return
        if "memory" in options:  # a typo must not cost the sandbox: checked before it goes
            self._call(parse_size, options["memory"], "memory")
        old = restart_spec(self._call(lambda: sandbox.model), {})
        self._call(sandbox.kill)
        self._sandboxes.pop(name, None)
        try:
            recreated = self._sandbox(name, {**old, **options})
        except SandboxMagicError as refused:
            # The server refused the new settings (its limits): the sandbox comes back as it was.
            self._sandbox(name, old)
            raise SandboxMagicError(f"{refused}; {name} was made again with its old settings, empty") from None
        print(f"recreated {name} with {settings(self._call(lambda: recreated.model))}: variables and files are reset")

    def _pull_file(self, sandbox: Sandbox, words: list[str], *, force: bool) -> None:
        try:
            print(self._call(pull_words, sandbox, words, force=force, max_size=self.pull_max_size))
        except PullRefused as e:
            raise SandboxMagicError(f"jupyter-sandbox: {e}") from None

    def _push(self, sandbox: Sandbox, names: list[str]) -> None:
        run = functools.partial(self._run, sandbox, stream=False)
        push_variables(run, self.user_ns, names)
        print(f"pushed {', '.join(names)} to {sandbox.name}")

    def _pull(self, sandbox: Sandbox, names: list[str]) -> None:
        run = functools.partial(self._run, sandbox, stream=False)
        pull_variables(run, self.user_ns, names, trusted=self.pull_trusted)
        print(f"pulled {', '.join(names)} from {sandbox.name}")

    def _list(self) -> None:
        sandboxes = self._call(Sandbox.list, _connection=self._connection())
        print("\n".join(list_lines(sandboxes)) if sandboxes else "no sandboxes")

    def _show_config(self) -> None:
        for name in sorted(self.class_own_traits(config=True)):
            if name == "token":
                continue
            print(f"SandboxMagics.{name} = {getattr(self, name)!r}")
        print(f"default sandbox for this kernel: {self.default_sandbox or _default_name()}")
        try:
            print(f"server: {self._connection().description}")
        except SandboxMagicError as e:
            print(f"server: none ({e})")
