#!/usr/bin/env bash
# Makes sure a Docker daemon answers on /var/run/docker.sock.
#
# If `docker info` already works, does nothing. Otherwise starts Debian's dockerd (package
# docker.io, installed by scripts/install-deps.sh) in the background with setsid, logging to
# $TESTBED_DIR/dockerd.log, and polls `docker info` for up to DOCKER_START_TIMEOUT (60) seconds.
# Fails with the log tail if it never answers. Must run as root (CI does).
# The docker client on PATH may be newer than the daemon (e.g. 28.x vs 20.10); API version
# negotiation handles that, and the final check below proves it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"
timeout_s="${DOCKER_START_TIMEOUT:-60}"
log="$TESTBED_DIR/dockerd.log"

if docker info >/dev/null 2>&1; then
  tb_log "docker daemon already running"
else
  command -v dockerd >/dev/null || tb_die "dockerd not found; run scripts/install-deps.sh"
  [ "$(id -u)" = 0 ] || tb_die "starting dockerd needs root"
  # A daemon that is still shutting down (it does not answer, its process lives): wait for it to go, up to 30 s.
  for _ in $(seq 1 60); do
    [ -f /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null || break
    sleep 0.5
  done
  # A stale pid file from a killed daemon makes dockerd refuse to start.
  if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid
  fi
  tb_log "starting dockerd (log: $log)"
  setsid dockerd >"$log" 2>&1 </dev/null &
  echo $! >"$TESTBED_DIR/dockerd.pid"
  start=$SECONDS
  until docker info >/dev/null 2>&1; do
    if ! kill -0 "$(cat "$TESTBED_DIR/dockerd.pid")" 2>/dev/null; then
      tb_log "dockerd exited; log tail:"; tail -n 40 "$log" >&2; exit 1
    fi
    if [ $((SECONDS - start)) -ge "$timeout_s" ]; then
      tb_log "dockerd did not answer within ${timeout_s}s; log tail:"; tail -n 40 "$log" >&2; exit 1
    fi
    sleep 0.5
  done
  tb_log "dockerd ready after $((SECONDS - start))s"
fi

client="$(docker version --format '{{.Client.Version}} (API {{.Client.APIVersion}})')"
server="$(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')" \
  || tb_die "docker client cannot talk to the daemon"
tb_log "docker client $client, server $server, storage driver $(docker info --format '{{.Driver}}')"
