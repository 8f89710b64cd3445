"""Runs INSIDE a notebook's whole kernel in a sandbox (Python 3 (sandboxed)), once at its start
(IPKernelApp.exec_lines), followed by ``_jupyter_sandbox_in_place(get_ipython(), SETTINGS)``.

That kernel IS the notebook's sandbox, so ``%%sandbox`` runs its cell in place, as a plain cell
(an input transformer blanks the magic's line: same namespace, tracebacks, line numbers, display
and top-level await). ``--env`` applies to that cell and ``--timeout`` interrupts it as the
server's timeout does. Options asking for another sandbox (a name, image, memory, CPUs or network
other than this one's, a context, another language, ``--out``, ``--with-files``) are never dropped:
the cell does not run and says why and how to get one. ``%sandbox status`` says the sandbox's
settings and use; the other subcommands say where their work is done for such a notebook.

SETTINGS: the sandbox's ``id``, ``image``, ``memory`` and ``disk`` (bytes), ``cpus``, ``network``
(the backend's, at kernel start). Shipped as source text and run in the user's namespace: it
leaves no name behind, and uses only IPython and the standard library (Python 3.8+).
"""


def _jupyter_sandbox_in_place(shell, settings):
    import argparse
    import os
    import re
    import shlex
    import signal
    import sys
    import threading

    from IPython.core.error import UsageError

    elsewhere = (
        "A 'Python 3 (sandboxed)' notebook's kernel is this notebook's own sandbox, so %%sandbox cells run "
        "in it, in place."
    )
    another = (
        " For another sandbox, use %%sandbox from a notebook with a host kernel (e.g. Python 3): "
        "`%load_ext jupyter_sandbox`, then `%%sandbox NAME --memory 2G ...`."
    )
    units = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}

    def size(text):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*", str(text), re.I)
        return int(float(match.group(1)) * units[match.group(2).lower() or "b"]) if match else None

    def human(n):
        for unit, name in (("t", "TiB"), ("g", "GiB"), ("m", "MiB"), ("k", "KiB")):
            if n >= units[unit]:
                return f"{n / units[unit]:.2f}".rstrip("0").rstrip(".") + " " + name
        return f"{n} bytes"

    def image_ref(image):
        last = image.rsplit("/", 1)[-1]
        return image if ":" in last or "@" in last else image + ":latest"

    def described():
        has = []
        if settings.get("image"):
            has.append("image " + settings["image"])
        if settings.get("memory"):
            has.append(human(settings["memory"]) + " of memory")
        if settings.get("cpus") is not None:
            has.append("{:g} CPUs".format(settings["cpus"]))
        if settings.get("network") is not None:
            has.append("network " + ("on" if settings["network"] else "off"))
        return ", ".join(has) or "the settings of its kernelspec"

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise UsageError("%%sandbox: " + message)

    parser = Parser(prog="%%sandbox", add_help=False)
    parser.add_argument("name", nargs="?")
    for option in ("--image", "--memory", "--context", "--language", "--out"):
        parser.add_argument(option)
    for option in ("--cpus", "--timeout"):
        parser.add_argument(option, type=float)
    parser.add_argument("--network", action="store_true", default=None)
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--with-files", action="store_true")

    def refusals(args):
        """What in the options asks for something this sandbox is not: one phrase each."""
        found = []
        if args.name and args.name != settings.get("id"):
            found.append(f"the sandbox {args.name!r}")
        if args.image and image_ref(args.image) != image_ref(settings.get("image") or ""):
            found.append("--image {} (this one has {})".format(args.image, settings.get("image") or "another"))
        if args.memory and size(args.memory) != settings.get("memory"):
            has = human(settings["memory"]) if settings.get("memory") else "another"
            found.append(f"--memory {args.memory} (this one has {has})")
        if args.cpus is not None and args.cpus != settings.get("cpus"):
            found.append("--cpus {:g} (this one has {})".format(args.cpus, settings.get("cpus", "another")))
        if args.network and not settings.get("network"):
            found.append("--network (this one has none)")
        if args.context:
            found.append("--context (the cell runs in this notebook's kernel, not in one of the API's contexts)")
        if args.language and args.language.lower() not in ("python", "python3"):
            found.append(
                f"--language {args.language} (this kernel is Python's; %%bash and %%script run other programs)"
            )
        if args.out:
            found.append("--out (no remote Execution here: the cell's own variables are in this kernel)")
        if args.with_files:
            found.append(
                "--with-files (the notebook's files reach this sandbox when the kernelspec sets notebook_files, "
                "or through the Sandboxes panel's upload)"
            )
        return found

    def parse(line):
        try:
            args = parser.parse_args(shlex.split(line))
        except ValueError as e:  # unbalanced quotes
            raise UsageError("%%sandbox: " + str(e)) from None
        env = {}
        for pair in args.env:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise UsageError(f"--env takes KEY=VALUE, not {pair!r}")
            env[key] = value
        args.env = env
        if args.timeout is not None and args.timeout <= 0:
            raise UsageError("--timeout must be a positive number of seconds")
        return args

    def first_line(lines):
        """The options of a cell that starts with %%sandbox, else None."""
        if not lines:
            return None
        match = re.match(r"%%sandbox(?:\s(.*))?$", lines[0].rstrip("\n"))
        return None if match is None else (match.group(1) or "")

    def runs_in_place(line):
        try:
            return not refusals(parse(line))
        except UsageError:
            return False  # the magic itself says what is wrong

    def transform(lines):
        # a blank first line: the cell's own lines keep their numbers in tracebacks
        line = first_line(lines)
        if line is not None and runs_in_place(line):
            return ["\n", *lines[1:]]
        return lines

    running = {}  # the in-place cell's env to restore and its timer

    def before(info):
        lines = (info.raw_cell or "").lstrip("\n").splitlines(True)
        line = first_line(lines)
        if line is None or not runs_in_place(line):
            return
        args = parse(line)
        running["env"] = {k: os.environ.get(k) for k in args.env}
        os.environ.update(args.env)
        if args.timeout is not None:
            lock = threading.Lock()

            def interrupt():
                with lock:  # not once the cell is over: after() takes the lock first
                    if running.get("timer") is timer:
                        print(
                            f"jupyter-sandbox: the cell ran over --timeout {args.timeout:g} s and was interrupted",
                            file=sys.stderr,
                            flush=True,
                        )
                        os.kill(os.getpid(), signal.SIGINT)  # what the notebook's Interrupt does

            timer = threading.Timer(args.timeout, interrupt)
            timer.daemon = True
            running["timer"], running["lock"] = timer, lock
            timer.start()

    def after(result):
        timer, lock = running.pop("timer", None), running.pop("lock", None)
        if timer is not None:
            with lock:
                timer.cancel()
        for key, value in running.pop("env", {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def sandbox(line, cell=None):
        if cell is None:
            return status_or_refusal(line)
        found = refusals(parse(line))
        if found:
            raise UsageError(
                "nothing ran: this cell asks for "
                + "; ".join(found)
                + ". "
                + elsewhere
                + " It has "
                + described()
                + "."
                + another
            )
        # reached only when the transformer did not run (run_cell_magic called directly)
        return shell.run_cell(cell, store_history=False).result

    def status_or_refusal(line):
        words = line.split()
        if words[:1] == ["status"]:
            print("This notebook's kernel runs in its own sandbox {}: {}.".format(settings.get("id", ""), described()))
            used = memory_used()
            if used is not None and settings.get("memory"):
                limit = human(settings["memory"]) + " of memory plus " + human(settings.get("disk") or 0) + " of disk"
                print(f"  using {human(used)} of {limit}")
            return None
        where = {
            "restart": "Kernel > Restart Kernel restarts this sandbox's kernel (its variables go, its files stay)",
            "interrupt": "the notebook's Interrupt button (or Kernel > Interrupt) interrupts it",
            "kill": "Kernel > Shut Down Kernel removes this sandbox with its kernel",
            "files": "its files are this kernel's: os.listdir() and open() see them, %ls lists them",
            "push": "its variables are this kernel's own: nothing needs pushing",
            "pull": "a file reaches the workspace through the Sandboxes panel (right-click a file: "
            "'Copy into the Workspace'); its variables are this kernel's own",
        }.get(words[0] if words else "")
        text = f"%sandbox {line.strip()}: " if line.strip() else "%sandbox: "
        raise UsageError(
            text + elsewhere + (" Here " + where + "." if where else " `%sandbox status` says its settings.") + another
        )

    def memory_used():
        root = "/sys/fs/cgroup"
        try:
            if os.path.exists(os.path.join(root, "cgroup.controllers")):
                with open(os.path.join(root, "memory.current")) as f:
                    return int(f.read())
            with open(os.path.join(root, "memory", "memory.usage_in_bytes")) as f:
                return int(f.read())
        except (OSError, ValueError):
            return None

    shell.input_transformers_cleanup.append(transform)
    shell.events.register("pre_run_cell", before)
    shell.events.register("post_run_cell", after)
    shell.register_magic_function(sandbox, magic_kind="line_cell", magic_name="sandbox")
