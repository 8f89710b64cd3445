#!/usr/bin/env bash
# Make a Docker engine available on a Debian machine: install docker.io (and gVisor's
# runsc, debootstrap) when absent, register runsc as a runtime, start dockerd when it is
# not running, and wait until it answers. Idempotent; needs root for the install steps.
set -euo pipefail

log() { echo "[setup-docker] $*" >&2; }

if docker info >/dev/null 2>&1 && docker info 2>/dev/null | grep -q runsc; then
    log "Docker engine already running with the runsc runtime"
    exit 0
fi

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v runsc >/dev/null 2>&1 || need+=(runsc)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" iptables >/dev/null
fi

# gVisor needs --host-uds=all so the host can reach the kernel's ipc sockets.
mkdir -p /etc/docker
runsc_path=$(command -v runsc)
cat > /etc/docker/daemon.json <<JSON
{
  "runtimes": {
    "runsc": {"path": "$runsc_path", "runtimeArgs": ["--network=none", "--host-uds=all"]}
  }
}
JSON

if docker info >/dev/null 2>&1; then
    log "reloading dockerd to pick up the runsc runtime"
    kill -HUP "$(cat /var/run/docker.pid)"
else
    log "starting dockerd (log: /var/log/dockerd.log)"
    # Detached so it outlives this script; containerd is started by dockerd itself.
    nohup setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null &
fi

for _ in $(seq 1 60); do
    if docker info 2>/dev/null | grep -q runsc; then
        log "Docker engine ready: $(docker version --format '{{.Server.Version}}')"
        exit 0
    fi
    sleep 1
done
log "dockerd did not become ready; last log lines:"
tail -n 30 /var/log/dockerd.log >&2 || true
exit 1
