#!/usr/bin/env bash
# Make a Docker engine available on a Debian machine: install docker.io (and gVisor's
# runsc, debootstrap) when absent, register runsc as a runtime, start dockerd when it is
# not running, and wait until it answers. Idempotent; needs root for the install steps.
set -euo pipefail

log() { echo "[setup-docker] $*" >&2; }

# The network of sandboxes that ask for network (jupyter-sandbox, host interface jsbx0; the
# backend makes the same one when missing): no traffic between its containers, none to this
# host's own services (INPUT), none to the cloud metadata address (DOCKER-USER). Idempotent.
fence_sandbox_network() {
    docker network inspect jupyter-sandbox >/dev/null 2>&1 || docker network create --driver bridge \
        -o com.docker.network.bridge.name=jsbx0 -o com.docker.network.bridge.enable_icc=false \
        --label org.jupyter-sandbox.managed=true jupyter-sandbox >/dev/null
    if [ "$(id -u)" != 0 ] || ! command -v iptables >/dev/null; then
        log "not root or no iptables: the jupyter-sandbox network is NOT fenced off from the host"
        return 0
    fi
    rule() { iptables -C "$@" 2>/dev/null || iptables -I "$@"; }
    rule INPUT -i jsbx+ -j DROP  # jsbx0, and each allow-listed sandbox's own network (jsbx<hash>)
    rule DOCKER-USER -i jsbx+ -d 169.254.0.0/16 -j DROP
    log "jupyter-sandbox network fenced: no host services, no 169.254.0.0/16"
}

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v runsc >/dev/null 2>&1 || need+=(runsc)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# gVisor as a runtime. --network=none: gVisor's own network stack cannot start on hosts whose
# containers share the root network namespace (this one); sandboxes under runsc get no network.
# experimental: `docker checkpoint`, which pause and resume use to keep a runsc sandbox's memory
# (runsc checkpoints itself; runc would need CRIU, which cannot dump on this kernel).
mkdir -p /etc/docker
runsc_path=$(command -v runsc)
wanted=$(cat <<JSON
{
  "experimental": true,
  "runtimes": {
    "runsc": {"path": "$runsc_path", "runtimeArgs": ["--network=none"]}
  }
}
JSON
)
changed=0
if [ "$(cat /etc/docker/daemon.json 2>/dev/null)" != "$wanted" ]; then
    printf '%s\n' "$wanted" > /etc/docker/daemon.json
    changed=1
fi

if docker info >/dev/null 2>&1; then
    if [ "$changed" = 1 ]; then
        if [ "$(docker info --format '{{.ExperimentalBuild}}' 2>/dev/null)" != true ]; then
            # experimental is read only at start: restart (this stops running containers; it
            # happens once, when the file first asks for experimental)
            log "restarting dockerd for experimental features (/etc/docker/daemon.json changed)"
            kill "$(cat /var/run/docker.pid)"
            for _ in $(seq 1 30); do [ -e /var/run/docker.pid ] || break; sleep 1; done
            nohup setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null &
        else
            log "reloading dockerd for its runtimes (/etc/docker/daemon.json changed)"
            kill -HUP "$(cat /var/run/docker.pid)"
        fi
        sleep 1
    else
        log "Docker engine already running with the runsc runtime"
    fi
else
    log "starting dockerd (log: /var/log/dockerd.log)"
    # Detached so it outlives this script; containerd is started by dockerd itself.
    nohup setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null &
fi

for _ in $(seq 1 60); do
    if docker info 2>/dev/null | grep runsc >/dev/null; then
        log "Docker engine ready: $(docker version --format '{{.Server.Version}}')"
        fence_sandbox_network
        exit 0
    fi
    sleep 1
done
log "dockerd did not become ready; last log lines:"
tail -n 30 /var/log/dockerd.log >&2 || true
exit 1
