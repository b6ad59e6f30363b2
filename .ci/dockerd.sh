#!/usr/bin/env bash
# Private Docker engine for the tests: .ci/dockerd.sh start|stop STATE_DIR
#
# Everything (data, exec state, pidfile, socket, log) lives under STATE_DIR so
# it never touches a system dockerd and can be thrown away afterwards. There is
# no bridge network on these machines (--bridge=none, no iptables): containers
# must run with --network=none. Keep STATE_DIR short (e.g. mktemp -d under
# /tmp): a unix socket path is limited to 107 bytes.
set -euo pipefail

usage() { echo "usage: $0 start|stop STATE_DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
state=$(realpath -m "$2")
sock="$state/docker.sock"
pidfile="$state/dockerd.pid"
log="$state/dockerd.log"

# Start dockerd with the given storage driver and wait (30 s at most) until it
# answers. Returns non-zero if it died or never answered.
try_start() {
  local driver=$1
  : >"$log"
  dockerd --storage-driver="$driver" --iptables=false --ip-masq=false --bridge=none \
    --data-root="$state/data" --exec-root="$state/exec" --pidfile="$pidfile" \
    -H "unix://$sock" >>"$log" 2>&1 </dev/null &
  local pid=$!
  for _ in $(seq 300); do
    if docker -H "unix://$sock" info >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1   # died: e.g. overlay2 unsupported here
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return 1
}

stop() {
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    local pid
    pid=$(cat "$pidfile")
    kill "$pid"
    # dockerd stops its containers (up to 15 s each by default) before it exits.
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { echo "dockerd $pid still up after 60 s: SIGKILL" >&2; kill -9 "$pid" || true; }
  fi
  rm -f "$pidfile"
  # Mounts left behind (overlay layers, netns/shm under exec) would make the
  # state dir impossible to delete: detach them, deepest first.
  local m
  { findmnt -rn -o TARGET | grep -E "^$state/(exec|data)(/|$)" || true; } | sort -r | while read -r m; do
    umount -R "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "could not unmount $m" >&2
  done
}

case $cmd in
  start)
    command -v dockerd >/dev/null || { echo "dockerd not installed (apt-get install docker.io)" >&2; exit 1; }
    mkdir -p "$state"
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "dockerd already running (pid $(cat "$pidfile"))" >&2
    elif ! try_start "${DOCKERD_STORAGE_DRIVER:-overlay2}"; then
      # overlay2 cannot sit on some filesystems (overlayfs, some tmpfs):
      # vfs always works, only slower (2-3 s a container instead of 0.3-0.5 s).
      echo "storage driver ${DOCKERD_STORAGE_DRIVER:-overlay2} failed; log:" >&2; cat "$log" >&2
      stop
      echo "retrying with the vfs storage driver" >&2
      if ! try_start vfs; then
        echo "dockerd did not answer within 30 s; log:" >&2; cat "$log" >&2
        stop; exit 1
      fi
    fi
    echo "DOCKER_HOST=unix://$sock"
    ;;
  stop) stop ;;
  *) usage ;;
esac
