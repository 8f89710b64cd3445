"""``jupyter sandbox``: build the image, check the setup, list and prune sandboxes, run notebooks
and scripts in sandboxes.

    jupyter sandbox build-image [--base IMAGE] [--packages P ...] [--wheelhouse DIR] [--tag T] [--force]
    jupyter sandbox doctor [--backend kubernetes --namespace NS --kubeconfig FILE --runtime-class NAME]
    jupyter sandbox list [--json] [--url URL --token TOKEN]
    jupyter sandbox prune [--dry-run]
    jupyter sandbox run NOTEBOOK.ipynb [-o OUT] [--timeout S] [--image I] [--memory M]
    jupyter sandbox exec [--file F ...] [--dir D ...] FILE.py [ARGS...]
    jupyter sandbox keys [list | new [--name N] | revoke KEY_ID]
    jupyter sandbox volumes [list [--json] | create NAME [--size S] | remove NAME]
    jupyter sandbox e2b-env [--new-key]
    jupyter sandbox mcp [--url URL --token TOKEN]
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import re
import socket
import sys
from typing import TYPE_CHECKING, Any, TextIO

from jupyter_core.application import JupyterApp
from jupyter_core.paths import jupyter_config_path, jupyter_data_dir, jupyter_path
from tqdm import tqdm
from traitlets import Bool, Float, List, Unicode, default
from traitlets.config import Application

from . import __version__
from .backends import BACKENDS, DOCTORS, backend_doctor, make_backend, programs
from .backends.base import LABEL_PREFIX, labelled_id
from .backends.docker_images import DEBOOTSTRAP_BASE, DEFAULT_IMAGE, DEFAULT_PACKAGES, LANGUAGES_LABEL, PACKAGES_LABEL
from .backends.volume_images import volumes_problem
from .errors import SandboxError
from .host_files import gather_inputs
from .kernel import KERNEL_NAME, PROVISIONER_NAME
from .models import InputRequest, OutputMessage, parse_size

if TYPE_CHECKING:
    from nbformat import NotebookNode
# the sandbox service's config file (service/app.py: SandboxServiceApp.name)
SERVICE_CONFIG_FILE = "jupyter_sandbox_service_config"


class _Command(JupyterApp):
    """A subcommand: ``fail`` ends it with a message and a non-zero status."""

    version = __version__

    @default("log_level")
    def _quiet(self) -> int:
        return logging.WARNING  # the output is the command's own (and a script's): not the manager's chatter

    def fail(self, message: str, code: int = 1) -> None:
        print(message, file=sys.stderr)
        self.exit(code)

    def positional(self, usage: str, least: int = 1) -> list[str]:
        if len(self.extra_args) < least:
            self.fail(f"usage: jupyter sandbox {usage}", 2)
        return list(self.extra_args)


# -- build-image ------------------------------------------------------------------------------


class BuildImageApp(_Command):
    name = "jupyter-sandbox-build-image"
    description = """Build the sandbox image offline: a debootstrapped Debian base (or --base IMAGE), a
    wheelhouse downloaded on the host, and `docker build` with --no-index. Does nothing when the image
    already holds the same packages (unless --force). Environment: BASE_IMAGE, SANDBOX_IMAGE,
    JUPYTER_SANDBOX_BUILD_CACHE, FORCE=1."""

    base = Unicode(help="Base image; the default is made with debootstrap when missing.").tag(config=True)
    tag = Unicode(help="Name of the image to build.").tag(config=True)
    packages = List(Unicode(), help="Python packages to install in the image.").tag(config=True)
    wheelhouse = Unicode("", help="Folder of wheels to use and fill ('' = <cache>/wheels-cp<version>).").tag(
        config=True
    )
    cache = Unicode(help="Folder for the wheelhouse and the debootstrap root.").tag(config=True)
    force = Bool(help="Build even when the image is there with the same packages.").tag(config=True)

    aliases = {
        "base": "BuildImageApp.base",
        "tag": "BuildImageApp.tag",
        "packages": "BuildImageApp.packages",
        "wheelhouse": "BuildImageApp.wheelhouse",
        "cache": "BuildImageApp.cache",
    }
    flags = {"force": ({"BuildImageApp": {"force": True}}, "Build even when the image is up to date.")}

    @default("base")
    def _base(self) -> str:
        return os.environ.get("BASE_IMAGE") or DEBOOTSTRAP_BASE

    @default("tag")
    def _tag(self) -> str:
        return os.environ.get("SANDBOX_IMAGE") or DEFAULT_IMAGE

    @default("packages")
    def _packages(self) -> list[str]:
        return list(DEFAULT_PACKAGES)

    @default("cache")
    def _cache(self) -> str:
        return os.environ.get("JUPYTER_SANDBOX_BUILD_CACHE") or "/var/cache/jupyter-sandbox"

    @default("force")
    def _force(self) -> bool:
        return os.environ.get("FORCE") == "1"

    def start(self) -> None:
        from .backends.docker_images import BuildPlan, build_image

        packages = list(self.packages)
        if self.extra_args:
            # traitlets takes one value per --packages; the rest of `--packages a b c` comes here
            if "packages" not in self.config.get("BuildImageApp", {}):
                self.fail(f"[build-image] unexpected arguments: {' '.join(self.extra_args)}", 2)
            packages += self.extra_args
        plan = BuildPlan(
            tag=self.tag,
            base=self.base,
            packages=packages,
            cache=self.cache,
            wheelhouse=self.wheelhouse or None,
            force=self.force,
        )
        progress = BuildProgress(sys.stderr, steps=3)
        try:
            built = build_image(plan, progress.step, log=progress.log)
        except SandboxError as e:
            progress.close()
            self.fail(f"[build-image] {e.message}")
        if built:
            progress.done()
        progress.close()


class BuildProgress:
    """build-image's progress on ``stream``: a tqdm bar redrawn in place on a terminal; elsewhere
    (a CI log, a pipe) one line per step, since every redraw would add to one endless "line"."""

    def __init__(self, stream: TextIO, steps: int):
        self.stream = stream
        self.steps = steps
        self.shown_step = 0
        self.bar: tqdm | None = None
        if stream.isatty():
            self.bar = tqdm(
                total=steps, unit="step", file=stream, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}]"
            )

    def step(self, step: int, steps: int, what: str) -> None:
        """The build is at ``step`` of ``steps``, doing ``what`` (called for each line of it)."""
        if self.bar is not None:
            self.bar.n = step - 1
            self.bar.set_description_str(f"[{step}/{steps}] {what}", refresh=True)
        elif step != self.shown_step:
            self.shown_step = step
            print(f"[build-image] [{step}/{steps}] {what}", file=self.stream, flush=True)

    def log(self, line: str) -> None:
        if self.bar is not None:
            tqdm.write(f"[build-image] {line}", file=self.stream)
        else:
            print(f"[build-image] {line}", file=self.stream, flush=True)

    def done(self) -> None:
        if self.bar is not None:
            self.bar.n = self.steps
            self.bar.set_description_str("done", refresh=True)
        else:
            print("[build-image] done", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- doctor -----------------------------------------------------------------------------------


class DoctorApp(_Command):
    name = "jupyter-sandbox-doctor"
    description = "Check what jupyter-sandbox needs, and say what to fix for each thing missing."

    image = Unicode(help="The sandbox image to check (the server's default image).").tag(config=True)
    backend = Unicode(
        "docker",
        help="The engine to check: docker (with this server's extensions and kernelspec), or another "
        "backend's own checks (kubernetes: the cluster the sandbox service uses).",
    ).tag(config=True)
    # "" = as the sandbox service's config says (jupyter_sandbox_service_config.py), else the backend's default
    namespace = Unicode(help="kubernetes: the sandboxes' namespace.").tag(config=True)
    kubeconfig = Unicode(help="kubernetes: the kubeconfig file (default $KUBECONFIG, else ~/.kube/config).").tag(
        config=True
    )
    context = Unicode(help="kubernetes: the kubeconfig context (default its current one).").tag(config=True)
    runtime_class = Unicode(help="kubernetes: the RuntimeClass sandboxes run with (e.g. gvisor, kata).").tag(
        config=True
    )
    aliases = {
        "image": "DoctorApp.image",
        "backend": "DoctorApp.backend",
        "namespace": "DoctorApp.namespace",
        "kubeconfig": "DoctorApp.kubeconfig",
        "context": "DoctorApp.context",
        "runtime-class": "DoctorApp.runtime_class",
    }

    @default("image")
    def _image(self) -> str:
        return os.environ.get("SANDBOX_IMAGE") or DEFAULT_IMAGE

    def start(self) -> None:
        checks = self.checks()
        width = max(len(name) for name, *_ in checks)
        failed = 0
        for name, ok, detail, fix in checks:
            mark = {True: "ok  ", False: "FAIL", None: "note"}[ok]
            print(f"{mark}  {name:<{width}}  {detail}")
            if fix and ok is not True:
                print(f"      {'':<{width}}  fix: {fix}")
            failed += ok is False
        if failed:
            print(f"\n{failed} problem(s) found.")
            self.exit(1)
        print("\nEverything jupyter-sandbox needs is in place.")

    def checks(self) -> list[tuple[str, bool | None, str, str]]:
        """(what, ok: True / False / None for optional, detail, how to fix)."""
        engine_doctor = backend_doctor(self.backend)
        if engine_doctor is not None:
            # the engine is the sandbox service's: its config file says how it reaches it
            # (traitlets' loader by name and path: JupyterApp's own takes no file name)
            Application.load_config_file(self, SERVICE_CONFIG_FILE, path=jupyter_config_path())
            settings = {
                "namespace": self.namespace,
                "kubeconfig": self.kubeconfig,
                "context": self.context,
                "runtime_class": self.runtime_class,
                "config": self.config,
            }
            return engine_doctor(settings)
        if self.backend not in BACKENDS:
            self.fail(f"unknown backend {self.backend!r}: choose one of {', '.join(sorted({*BACKENDS, *DOCTORS}))}", 2)
        from .backends.docker_images import engine_facts

        # deferred, like the checks below that read jupyter_server's config
        from .server.service_proxy import SERVICE_URL_ENV

        service_url = os.environ.get(SERVICE_URL_ENV, "")
        if service_url:
            # Hub mode: the service alone holds the engine; nothing of it is this server's to check
            return [
                self._service(service_url),
                ("Docker engine", None, "not checked: in Hub mode only the sandbox service uses it", ""),
                self._server_extension(),
                self._labextension(),
                self._kernelspec(),
            ]
        out: list[tuple[str, bool | None, str, str]] = []
        facts = engine_facts([self.image])
        docker_url = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        if facts.reachable:
            out.append(("mode", True, f"own engine: docker at {docker_url}", ""))
        else:
            out.append(
                (
                    "mode",
                    None,
                    f"local backend (no Docker reachable: nothing answers at {docker_url})",
                    "the local backend runs code as you on this host, with no isolation: start the engine (below)",
                )
            )
        if not facts.reachable:
            out.append(
                (
                    "Docker engine",
                    False,
                    facts.problem,
                    facts.fix
                    or "start it (as root on Debian: bash scripts/setup-docker.sh, or `dockerd &`), or point DOCKER_HOST "
                    "at one. Without it the server runs the 'local' backend: resource limits only, no isolation",
                )
            )
            out.append(("runtimes", False, "not checked: needs the Docker engine", "reach the engine first"))
            out.append(("sandbox image", False, "not checked: needs the Docker engine", "reach the engine first"))
        else:
            out.append(("Docker engine", True, f"reachable (version {facts.version})", ""))
            out.append(
                (
                    "resource limits",
                    not facts.unenforced_limits,
                    facts.unenforced_limits or "the engine enforces memory, CPU and pids limits",
                    "rootless Docker: cgroup v2 with the cpu, memory and pids controllers delegated to the user "
                    "(https://docs.docker.com/engine/security/rootless/#limiting-resources); else run a root engine "
                    "behind the sandbox service (docs/jupyterhub.md)",
                )
            )
            out.append(
                (
                    "runtime runc",
                    "runc" in facts.runtimes,
                    ", ".join(facts.runtimes),
                    "the engine has no runc runtime: reinstall docker.io",
                )
            )
            out.append(
                (
                    "runtime runsc (gVisor)",
                    True if "runsc" in facts.runtimes else None,
                    "registered" if "runsc" in facts.runtimes else "not registered (optional: runtime='runsc')",
                    "apt-get install runsc, and register it in /etc/docker/daemon.json with runtimeArgs "
                    '["--network=none"] (scripts/setup-docker.sh does both)',
                )
            )
            volumes = volumes_problem()  # persistent volumes (issue 23): optional
            out.append(
                (
                    "persistent volumes",
                    True if volumes is None else None,
                    volumes or "available: a server run by this user can attach loop devices and make ext4",
                    "run the server as root, with /dev/loop-control, e2fsprogs and util-linux (docs/volumes.md)",
                )
            )
            labels = facts.images.get(self.image)
            if labels is None:
                out.append(("sandbox image", False, f"{self.image} is missing", "jupyter sandbox build-image"))
            else:
                packages = labels.get(PACKAGES_LABEL)
                missing = [p for p in DEFAULT_PACKAGES if p not in (packages or "").split()]
                if packages is None:
                    out.append(
                        (
                            "sandbox image",
                            None,
                            f"{self.image} is present, built without a package list "
                            f"(it may lack {', '.join(DEFAULT_PACKAGES[-1:])})",
                            "jupyter sandbox build-image",
                        )
                    )
                elif missing:
                    out.append(
                        (
                            "sandbox image",
                            None,
                            f"{self.image} lacks {', '.join(missing)}",
                            "jupyter sandbox build-image",
                        )
                    )
                else:
                    languages = labels.get(LANGUAGES_LABEL, "python")
                    out.append(("sandbox image", True, f"{self.image} ({packages}; languages: {languages})", ""))
        out.append(self._server_extension())
        out.append(self._labextension())
        out.append(self._kernelspec())
        return out

    @staticmethod
    def _service(url: str) -> tuple[str, bool, str, str]:
        """Hub mode's line: the service and whether it answers this server's token."""
        import httpx  # deferred: only Hub mode asks the network

        from .server.service_proxy import SERVICE_URL_ENV

        where = f"Hub service at {url} ({SERVICE_URL_ENV})"
        token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        fix = (
            "start the sandbox service (the Hub starts it from c.JupyterHub.services), and give this server's "
            "token its scope (c.Spawner.server_token_scopes)"
        )
        try:
            answer = httpx.get(
                url.rstrip("/") + "/sandbox/api/config", headers={"Authorization": f"token {token}"}, timeout=10
            )
        except httpx.HTTPError as e:
            return ("mode", False, f"{where}: not answering ({type(e).__name__}: {e})", fix)
        if answer.status_code != 200:
            return ("mode", False, f"{where}: answers {answer.status_code} {answer.text[:200]!r}", fix)
        config = answer.json()
        return ("mode", True, f"{where}: answers (backend {config.get('backend')}, {config.get('isolation')})", "")

    @staticmethod
    def _server_extension() -> tuple[str, bool, str, str]:
        from jupyter_server.extension.config import ExtensionConfigManager

        config = ExtensionConfigManager(read_config_path=jupyter_config_path())
        enabled = config.get_jpserver_extensions()  # type: ignore[no-untyped-call]  # jupyter_server leaves it unannotated
        ok = bool(enabled.get("jupyter_sandbox"))
        return (
            "server extension",
            ok,
            "enabled" if ok else "not enabled in any jupyter_server config",
            "jupyter server extension enable --sys-prefix jupyter_sandbox (pip install enables it)",
        )

    @staticmethod
    def _labextension() -> tuple[str, bool, str, str]:
        found = [
            d
            for d in jupyter_path("labextensions")
            if os.path.isfile(os.path.join(d, "jupyter-sandbox", "package.json"))
        ]
        return (
            "JupyterLab extension",
            bool(found),
            f"in {found[0]}" if found else "not installed",
            "pip install jupyter-sandbox (the wheel holds the built extension); in a checkout, "
            "pip install -e . builds it with npm",
        )

    @staticmethod
    def _kernelspec() -> tuple[str, bool, str, str]:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

        fix = (
            "pip install jupyter-sandbox installs share/jupyter/kernels/python3-sandboxed; or "
            "`jupyter kernelspec install --sys-prefix --name python3-sandboxed <jupyter_sandbox>/kernel/kernelspec`"
        )
        try:
            spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        except NoSuchKernel:
            return ("sandboxed kernelspec", False, f"no kernelspec {KERNEL_NAME!r}", fix)
        from jupyter_client.provisioning.factory import KernelProvisionerFactory

        name = spec.metadata.get("kernel_provisioner", {}).get("provisioner_name")
        if name != PROVISIONER_NAME or not KernelProvisionerFactory.instance().is_provisioner_available(spec):
            return ("sandboxed kernelspec", False, f"{KERNEL_NAME} does not use an installed {PROVISIONER_NAME}", fix)
        return ("sandboxed kernelspec", True, f"{spec.display_name!r} ({spec.resource_dir})", "")


# -- list and prune ---------------------------------------------------------------------------


class _Leftovers(_Command):
    """Containers of this user's servers on this host, and whether each server still lives."""

    state_dir = Unicode(help="The servers' state folder (c.SandboxApp.state_dir).").tag(config=True)

    @default("state_dir")
    def _state_dir(self) -> str:
        return os.path.join(jupyter_data_dir(), "jupyter_sandbox")

    def found(self) -> list[tuple[dict[str, str], str]]:
        """(labels, state) for each of this user's containers here; state is 'alive', 'gone' or
        'unknown' (a server whose slot is not in this state folder: never pruned)."""
        # deferred, heavy: the embedded manager's core/ (list and prune only)
        from .core.identity import list_slots
        from .embedded import embedded_server_pid

        backend = make_backend("docker")
        mine = {f"{LABEL_PREFIX}.uid": str(os.getuid()), f"{LABEL_PREFIX}.host": socket.gethostname()}
        try:
            containers = asyncio.run(backend.list_existing(mine))
        except SandboxError as e:
            self.fail(f"jupyter sandbox: {e.message}")
        slots = {slot.server_id: slot.alive for slot in list_slots(self.state_dir)}
        out = []
        for labels in containers:
            server = labels.get(f"{LABEL_PREFIX}.server", "")
            if server in slots:
                state = "alive" if slots[server] else "gone"
            elif (pid := embedded_server_pid(server)) is not None:  # a script's embedded manager
                state = "alive" if _pid_alive(pid) else "gone"
            else:
                state = "unknown"
            out.append((labels, state))
        return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PruneApp(_Leftovers):
    name = "jupyter-sandbox-prune"
    description = """Remove the sandboxes (and one-shot containers) left by this user's servers that are gone.
    A live server's are never touched, nor another user's or another host's, nor those of a server
    whose slot is not in this state folder."""

    dry_run = Bool(False, help="Only say what would be removed.").tag(config=True)
    aliases = {"state-dir": "PruneApp.state_dir"}
    flags = {"dry-run": ({"PruneApp": {"dry_run": True}}, "Only say what would be removed.")}

    def start(self) -> None:
        rows = self.found()
        gone = [labelled_id(labels) for labels, state in rows if state == "gone"]
        kept = len(rows) - len(gone)
        if not self.dry_run and gone:
            backend = make_backend("docker")

            async def remove_all() -> None:
                for leftover in gone:
                    if leftover:
                        await backend.remove(leftover)

            asyncio.run(remove_all())
        verb = "would remove" if self.dry_run else "removed"
        for leftover in gone:
            print(f"{verb} {leftover}")
        print(f"{verb} {len(gone)} leftover(s); kept {kept} of live or unknown servers")


# -- run and exec -----------------------------------------------------------------------------


class RunApp(_Command):
    name = "jupyter-sandbox-run"
    description = """Execute a notebook on the sandboxed kernel (in a fresh sandbox, removed afterwards) and
    write it with its outputs. Exits non-zero naming the first cell that failed."""

    output = Unicode("", help="Where to write the executed notebook ('' = over the input).").tag(config=True)
    timeout = Float(600.0, help="Seconds one cell may run.").tag(config=True)
    image = Unicode("", help="Image of the kernel's sandbox ('' = the default image).").tag(config=True)
    memory = Unicode("", help="Memory of the kernel's sandbox, e.g. 2G ('' = the default).").tag(config=True)
    backend = Unicode("auto", help="Sandbox backend: auto, docker or local.").tag(config=True)
    aliases = {
        "o": "RunApp.output",
        "output": "RunApp.output",
        "timeout": "RunApp.timeout",
        "image": "RunApp.image",
        "memory": "RunApp.memory",
        "backend": "RunApp.backend",
    }

    def start(self) -> None:
        (path, *rest) = self.positional("run NOTEBOOK.ipynb [-o OUT] [--timeout S] [--image I] [--memory M]")
        if rest:
            self.fail(f"run takes one notebook, not {len(rest) + 1}", 2)
        if not os.path.isfile(path):
            self.fail(f"no such notebook: {path}", 2)
        self.exit(asyncio.run(self.run(path)))

    async def run(self, path: str) -> int:
        import nbformat
        from jupyter_client.manager import AsyncKernelManager
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, DeadKernelError
        from traitlets.config import Config

        # deferred, heavy: the embedded manager brings core/ and the backends (run only)
        from .embedded import embedded_manager

        nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]  # nbformat leaves it unannotated
        out = self.output or path
        options: dict[str, Any] = {"default_image": self.image} if self.image else {}
        # this process's embedded manager: the provisioner, which nbclient's kernel manager makes,
        # gets the same one from the same factory
        embedded = embedded_manager(self.backend, log=self.log, **options)
        provisioner: dict[str, Any] = {"memory": self.memory} if self.memory else {}
        km = AsyncKernelManager(kernel_name=KERNEL_NAME, config=Config({"SandboxProvisioner": provisioner}))
        code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        bar = tqdm(total=len(code_cells), unit="cell", file=sys.stderr, desc=os.path.basename(path))
        current: dict[str, int | None] = {"index": None}

        def started(cell: NotebookNode, cell_index: int, **_: Any) -> None:
            current["index"] = cell_index

        def executed(cell: NotebookNode, cell_index: int, **_: Any) -> None:
            bar.update(1)

        client = NotebookClient(
            nb,
            km=km,
            timeout=self.timeout,
            kernel_name=KERNEL_NAME,
            resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}},
            on_cell_start=started,
            on_cell_executed=executed,
        )
        status, message = 0, ""
        try:
            await client.async_execute()
        except CellExecutionError as e:
            status = 1
            message = f"cell {_number(nb, current['index'])} failed: {e.ename}: {e.evalue}"
        except DeadKernelError:
            status = 1
            reason = getattr(km.provisioner, "exit_reason", None) or "the kernel died"
            message = f"cell {_number(nb, current['index'])} failed: {reason}"
        finally:
            bar.close()
            await embedded.shutdown()
        nbformat.write(nb, out)  # type: ignore[no-untyped-call]  # nbformat leaves it unannotated
        print(f"wrote {out}", file=sys.stderr)
        if message:
            print(message, file=sys.stderr)
        return status


def _number(nb: NotebookNode, index: int | None) -> str:
    """A cell as people count it (1-based), with the start of its source."""
    if index is None:
        return "?"
    first = (nb.cells[index].source.strip().splitlines() or [""])[0]
    return f"{index + 1} ({first[:40]!r})"


class ExecApp(_Command):
    name = "jupyter-sandbox-exec"
    description = """Run a Python file once in a throwaway sandbox, streaming its output; input() reads this
    terminal. Arguments after FILE.py go to the script (sys.argv). Exits with the script's status."""

    image = Unicode("", help="Image ('' = the default).").tag(config=True)
    memory = Unicode("", help="Memory, e.g. 1G ('' = the default).").tag(config=True)
    timeout = Float(0, help="Seconds the script may run (0 = the server's default).").tag(config=True)
    network = Bool(False, help="Give the sandbox network access.").tag(config=True)
    allow = List(
        Unicode(),
        help="A name the sandbox may reach through its egress proxy, e.g. pypi.org or *.pythonhosted.org "
        "(repeatable; implies network, filtered to these names).",
    ).tag(config=True)
    files = List(Unicode(), help="A file to send beside the script (repeatable; a symlink is refused).").tag(
        config=True
    )
    dirs = List(Unicode(), help="A folder to send beside the script (repeatable; symlinks in it are skipped).").tag(
        config=True
    )
    max_upload = Unicode("100M", help="Most bytes --file and --dir may send in all.").tag(config=True)
    aliases = {
        "image": "ExecApp.image",
        "memory": "ExecApp.memory",
        "timeout": "ExecApp.timeout",
        "file": "ExecApp.files",
        "dir": "ExecApp.dirs",
        "max-upload": "ExecApp.max_upload",
        "allow": "ExecApp.allow",
    }
    flags = {"network": ({"ExecApp": {"network": True}}, "Give the sandbox network access.")}

    def parse_command_line(self, argv: list[str] | None = None) -> None:
        # Our options come before FILE.py; everything after it is the script's, options included.
        argv = list(sys.argv[1:] if argv is None else argv)
        i = 0
        while i < len(argv) and argv[i].startswith("-"):
            takes_value = argv[i].lstrip("-") in self.aliases
            i += 2 if takes_value else 1
        super().parse_command_line(argv[:i])
        self.extra_args = argv[i:]

    def start(self) -> None:
        (path, *args) = self.positional("exec FILE.py [ARGS...]")
        if not os.path.isfile(path):
            self.fail(f"no such file: {path}", 2)
        from .client import Sandbox

        with open(path, "rb") as f:
            source = f.read()
        name = os.path.basename(path)
        try:
            inputs = gather_inputs(self.files, self.dirs, parse_size(self.max_upload, "max-upload"))
        except SandboxError as e:
            self.fail(f"jupyter sandbox exec: {e.message}", 2)
        if name in inputs.names:
            self.fail(f"jupyter sandbox exec: --file/--dir would put another {name} where the script goes", 2)
        for skipped in inputs.skipped:
            print(f"jupyter sandbox exec: not sent, a symlink (never followed): {skipped}", file=sys.stderr)
        # the script's exit status is the cell's value
        code = programs.source("run_script") + f"\n_jupyter_sandbox_run_script({name!r}, {[name, *args]!r})\n"
        spec: dict[str, Any] = {k: v for k, v in (("image", self.image), ("memory", self.memory)) if v}

        def out(message: OutputMessage) -> None:
            sys.stdout.write(message.line)
            sys.stdout.flush()

        def err(message: OutputMessage) -> None:
            sys.stderr.write(message.line)
            sys.stderr.flush()

        def ask(request: InputRequest) -> str:
            if request.password:
                return getpass.getpass(request.prompt)
            return input(request.prompt)

        try:
            network: bool | dict[str, list[str]] = {"allow": list(self.allow)} if self.allow else self.network
            with Sandbox(network=network, timeout=self.timeout or None, **spec) as sandbox:
                sandbox.files.write(name, source)
                for where, data in inputs.files:
                    sandbox.files.write(where, data)
                execution = sandbox.run_code(code, on_stdout=out, on_stderr=err, on_input=ask)
        except SandboxError as e:
            self.fail(f"jupyter sandbox exec: {e.message}")
        if execution.error:
            traceback = "\n".join(execution.error._render_traceback_())
            if not sys.stderr.isatty():  # the kernel colours it for a terminal
                traceback = re.sub(r"\x1b\[[0-9;]*m", "", traceback)
            print(traceback, file=sys.stderr)
            self.exit(1)
        self.exit(int(execution.text or 0))


# -- the command ------------------------------------------------------------------------------


class SandboxCommand(JupyterApp):
    name = "jupyter-sandbox"
    version = __version__
    description = "Build, check, list, prune, and run notebooks and scripts in jupyter-sandbox sandboxes."
    subcommands = {
        "build-image": (BuildImageApp, "Build the sandbox image offline, with a progress display."),
        "doctor": (
            DoctorApp,
            "Check Docker, runtimes, images, the extensions and the kernelspec (--backend kubernetes: the "
            "cluster's API, access, RuntimeClass); say what to fix.",
        ),
        "list": (
            "jupyter_sandbox.cli_list.ListApp",
            "List this user's sandboxes on this host: names, notebooks, memory, their server (--json).",
        ),
        "prune": (PruneApp, "Remove leftover sandboxes of this user's servers that are gone."),
        "run": (RunApp, "Execute a notebook on the sandboxed kernel; write its outputs."),
        "exec": (ExecApp, "Run a Python file in a throwaway sandbox, streaming its output."),
        "pause": ("jupyter_sandbox.cli_pause.PauseApp", "Pause a sandbox (no CPU or memory held until resumed)."),
        "resume": ("jupyter_sandbox.cli_pause.ResumeApp", "Resume a paused sandbox."),
        "snapshot": ("jupyter_sandbox.cli_pause.SnapshotApp", "Take, list or delete snapshots of sandboxes' files."),
        "fork": ("jupyter_sandbox.cli_pause.ForkApp", "A running copy of a sandbox (its spec and files)."),
        "keys": ("jupyter_sandbox.cli_e2b.KeysApp", "List, mint or revoke your API keys for E2B's SDKs."),
        "volumes": (
            "jupyter_sandbox.cli_volumes.VolumesApp",
            "List your persistent volumes with their usage (used / limit); create or remove one.",
        ),
        "e2b-env": (
            "jupyter_sandbox.cli_e2b.E2BEnvApp",
            'Print the exports that point E2B\'s SDKs at the server: eval "$(jupyter sandbox e2b-env)".',
        ),
        # imported when asked for; it says how to install the `mcp` extra when that is missing
        "mcp": (
            "jupyter_sandbox.mcp.stdio.MCPApp",
            "Serve the sandbox tools to AI agents over MCP on stdin/stdout (the `mcp` extra).",
        ),
        # imported when asked for: it needs jupyterhub (the `hub` extra)
        "serve": (
            "jupyter_sandbox.service.app.SandboxServiceApp",
            "Serve the sandbox API as a JupyterHub service (the one process that talks to the engine).",
        ),
    }

    def start(self) -> None:
        if self.subapp is None:
            print("jupyter sandbox: say what to do, one of: " + ", ".join(self.subcommands), file=sys.stderr)
            self.print_subcommands()
            self.exit(2)
        super().start()


main = launch_new_instance = SandboxCommand.launch_instance

if __name__ == "__main__":
    main()
