#!/usr/bin/env bash
# Brings the whole integration test bed up, idempotently (a rerun on a ready machine takes seconds):
#   1. scripts/install-deps.sh        (apt/pip only for what is missing)
#   2. scripts/testbed/start-docker.sh (dockerd in the background unless `docker info` works)
#   3. scripts/testbed/build-images.sh (postgres/mariadb/busybox test images, cached by tag+recipe), and
#      scripts/build-image.sh --base-only (the sidecar image's runtime base, cached likewise)
#   4. scripts/testbed/start-s3.sh     (rclone serve s3 on 127.0.0.1:9000 + self-check; moto on 127.0.0.1:9100)
# and writes $TESTBED_DIR/env (default .testbed/env, git-ignored) exporting what the tests read:
#   DOCKER_HOST, STACKVAULT_TEST_S3_{ENDPOINT,ACCESS_KEY,SECRET_KEY,BUCKET,REGION}, STACKVAULT_TEST_MOTO_ENDPOINT,
#   STACKVAULT_TEST_{POSTGRES,MARIADB,BUSYBOX}_IMAGE.
# Use:  scripts/testbed/up.sh && . .testbed/env
# Leaves dockerd and the S3 server running; scripts/testbed/down.sh removes test containers.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
t0=$SECONDS
export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"

bash "$REPO_ROOT/scripts/install-deps.sh"
bash "$REPO_ROOT/scripts/testbed/start-docker.sh"
bash "$REPO_ROOT/scripts/testbed/build-images.sh"
bash "$REPO_ROOT/scripts/build-image.sh" --base-only   # runtime base of the sidecar image (DaemonTests)
bash "$REPO_ROOT/scripts/testbed/start-s3.sh"

envfile="$TESTBED_DIR/env"
{
  echo "# Written by scripts/testbed/up.sh; source it before running the integration tests."
  for v in DOCKER_HOST STACKVAULT_TEST_S3_ENDPOINT STACKVAULT_TEST_S3_ACCESS_KEY STACKVAULT_TEST_S3_SECRET_KEY \
           STACKVAULT_TEST_S3_BUCKET STACKVAULT_TEST_S3_REGION STACKVAULT_TEST_MOTO_ENDPOINT \
           STACKVAULT_TEST_POSTGRES_IMAGE \
           STACKVAULT_TEST_MARIADB_IMAGE STACKVAULT_TEST_BUSYBOX_IMAGE; do
    printf 'export %s=%q\n' "$v" "${!v}"
  done
} >"$envfile.tmp"
mv "$envfile.tmp" "$envfile"
tb_log "test bed up in $((SECONDS - t0))s; env file: $envfile"
