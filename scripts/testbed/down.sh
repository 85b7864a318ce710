#!/usr/bin/env bash
# Removes what integration tests left behind, but never images and never the daemon or S3 server:
#   - containers of Compose projects whose name starts with $STACKVAULT_TEST_PROJECT_PREFIX
#     (default "svtest"; tests and check-fixtures.sh name their projects svtest_*), with their
#     networks and volumes (named and anonymous);
#   - containers, volumes and networks labelled stackvault.test (any value), the label tests put on
#     what they create with `docker run` / the API.
# Works without the compose files (uses the compose labels), so it also cleans up after crashes.
# STACKVAULT_TEST_S3_CLEAN=1 additionally empties the test bucket.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"
prefix="${STACKVAULT_TEST_PROJECT_PREFIX:-svtest}"

docker info >/dev/null 2>&1 || { tb_log "docker daemon not running: nothing to clean"; exit 0; }

projects="$(docker ps -a --filter label=com.docker.compose.project --format '{{.Label "com.docker.compose.project"}}' \
  | grep -E "^${prefix}" | sort -u || true)"
containers=()
for p in $projects; do
  mapfile -t -O "${#containers[@]}" containers < <(docker ps -aq --filter "label=com.docker.compose.project=$p")
done
mapfile -t -O "${#containers[@]}" containers < <(docker ps -aq --filter label=stackvault.test)
if [ "${#containers[@]}" -gt 0 ]; then
  # -v also removes the containers' anonymous volumes.
  docker rm -f -v "${containers[@]}" >/dev/null
fi

# Volumes and networks of those projects (also of projects whose containers are already gone).
vol_projects="$(docker volume ls --filter label=com.docker.compose.project --format '{{.Label "com.docker.compose.project"}}' | grep -E "^${prefix}" | sort -u || true)"
net_projects="$(docker network ls --filter label=com.docker.compose.project --format '{{.Label "com.docker.compose.project"}}' | grep -E "^${prefix}" | sort -u || true)"
nvol=0 nnet=0
for p in $vol_projects; do
  for v in $(docker volume ls -q --filter "label=com.docker.compose.project=$p"); do docker volume rm -f "$v" >/dev/null && nvol=$((nvol + 1)); done
done
for v in $(docker volume ls -q --filter label=stackvault.test); do docker volume rm -f "$v" >/dev/null && nvol=$((nvol + 1)); done
for p in $net_projects; do
  for n in $(docker network ls -q --filter "label=com.docker.compose.project=$p"); do docker network rm "$n" >/dev/null && nnet=$((nnet + 1)); done
done
for n in $(docker network ls -q --filter label=stackvault.test); do docker network rm "$n" >/dev/null && nnet=$((nnet + 1)); done

if [ "${STACKVAULT_TEST_S3_CLEAN:-0}" = 1 ] && [ -d "$TESTBED_DIR/s3/$STACKVAULT_TEST_S3_BUCKET" ]; then
  find "$TESTBED_DIR/s3/$STACKVAULT_TEST_S3_BUCKET" -mindepth 1 -delete
  tb_log "emptied bucket $STACKVAULT_TEST_S3_BUCKET"
fi
tb_log "removed ${#containers[@]} containers, $nvol volumes, $nnet networks (projects: $(echo $projects $vol_projects $net_projects | tr ' ' '\n' | sort -u | tr '\n' ' '))"
