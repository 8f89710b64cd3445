"""``c.DockerBackend.*``: the Docker backend's settings, in one place.

``DockerSettings`` holds the traits and nothing else; ``DockerBackend`` inherits it after its
Configurable base (as SandboxManager inherits SpecPolicy), so they are the backend's own:
configured, and listed in --help-all and generated configs, as ``c.DockerBackend.*``. The parts
of the backend (docker_containers.py, docker_egress.py, docker_pause.py, ...) read them there.
"""

from __future__ import annotations

from traitlets import Dict, Float, HasTraits, Int, List, Unicode

from .docker_containers import SANDBOX_BRIDGE, SANDBOX_NETWORK


class DockerSettings(HasTraits):
    """The engine, the users in a container, its sizes, its kernels' links, its network and egress
    proxies, and which runtimes are checkpointed on pause."""

    docker_url = Unicode("", help="Docker engine URL; empty uses DOCKER_HOST or the default socket.").tag(config=True)
    runtime = Unicode("runc", help="Default OCI runtime: 'runc', or 'runsc' for gVisor.").tag(config=True)
    user = Unicode(
        "1000:1000",
        help="uid:gid that kernels and file commands run as inside the container (never root) when "
        "sandbox_uid_base is 0.",
    ).tag(config=True)
    sandbox_uid_base = Int(
        2_000_000_000,
        help="First host uid of the range each sandbox takes its own pair of uids from (its kernels' and its "
        "launcher's, chosen by its id; gid = uid): no host account has one, so none can reach a sandbox's files "
        "through /proc/<pid>/root. On an engine without user-namespace remapping a container's uids are the "
        "host's. 0 = every sandbox uses `user` and `launcher_user`.",
    ).tag(config=True)
    sandbox_uid_count = Int(
        1 << 20, help="How many uid pairs that range holds (sandbox_uid_base up to sandbox_uid_base + 2 * count)."
    ).tag(config=True)
    launcher_user = Unicode(
        "1001:1001",
        help="uid:gid of the kernel launcher inside the container (never root, never the uid of `user`): code in "
        "the sandbox cannot signal, trace or write into a process of another uid. Needs no passwd entry.",
    ).tag(config=True)
    socket_root = Unicode(
        "",
        help="Where the server makes its private folder for the host side of kernel sockets (a new random "
        "name, mode 0700, each start). '' = the system's temp dir. Keep it short: a socket path has 107 bytes.",
    ).tag(config=True)
    container_log_size = Unicode(
        "1m", help="Most of a container's own output the engine keeps on the host (its json-file log)."
    ).tag(config=True)
    kernel_start_timeout = Float(60.0, help="Seconds for the launcher to start a kernel in a sandbox.").tag(config=True)
    relay_bytes_per_second = Int(
        4 << 20,
        help="Bytes per second the server reads from one kernel's link (bursts of 4 s allowed); beyond it the "
        "link is read later and the flood waits in its own sandbox, so one sandbox cannot starve the others.",
    ).tag(config=True)
    relay_messages_per_second = Int(
        500, help="Messages per second the server takes from one kernel's link (bursts of 4 s allowed)."
    ).tag(config=True)
    liveness_timeout = Float(
        6.0,
        help="Seconds of silence, pings unanswered, after which a kernel's stream is taken for dead (an engine "
        "may keep an exec stream open after its container died).",
    ).tag(config=True)
    tmp_size = Unicode(
        "128m", help="Size of the /tmp tmpfs in each container (held in memory, as the working directory)."
    ).tag(config=True)
    network_mode = Unicode(
        SANDBOX_NETWORK,
        help="Docker network for sandboxes that ask for network. The default one is made on "
        f"first use (a bridge, {SANDBOX_BRIDGE}, with no traffic between containers); scripts/setup-docker.sh "
        "also keeps it from the host's own services and the cloud metadata address (iptables).",
    ).tag(config=True)
    extra_labels = Dict(help="Labels added to every container.").tag(config=True)
    # -- the egress allow-list's proxies (docker_egress.py)
    egress_network = Unicode(
        SANDBOX_NETWORK, help="The network the egress proxies reach out through (the fenced jupyter-sandbox one)."
    ).tag(config=True)
    egress_subnets = Unicode(
        "10.213.0.0/16", help="Where each sandbox with an allow-list takes the /29 of its own internal network."
    ).tag(config=True)
    egress_test_hosts = Dict(
        Unicode(),
        help="Test only: names the egress proxies resolve without DNS, {'name' or 'name:port': 'ip' or 'ip:port'} "
        "(tests point allowed.test and denied.test at HTTP servers of their own).",
    ).tag(config=True)
    python = Unicode("python", help="Python command in the image that has ipykernel.").tag(config=True)
    engine_threads = Int(
        16, help="Threads for calls to the Docker engine (its own pool: a slow call never holds the event loop)."
    ).tag(config=True)
    stream_threads = Int(
        64,
        help="Threads for long engine streams (one-shot output, file transfers); beyond this many at once, "
        "new ones wait.",
    ).tag(config=True)
    engine_timeout = Float(60.0, help="Seconds before a call to the Docker engine is given up.").tag(config=True)
    runsc_min_pids = Int(
        256,
        help="Smallest pids limit for gVisor containers: its sentry's own threads count against the host "
        "cgroup, and below this the whole sandbox dies at kernel start.",
    ).tag(config=True)

    checkpoint_runtimes = List(
        Unicode(),
        ["runsc"],
        help="Runtimes whose containers are checkpointed when paused, so a resume keeps the kernels' variables "
        "(docker checkpoint; dockerd with experimental features). runc needs a CRIU that works on this host's "
        "kernel: add 'runc' only then. Others are paused by a stop, their working directory's files kept.",
    ).tag(config=True)
