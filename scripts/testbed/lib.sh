# shellcheck shell=bash
# Shared settings for the StackVault test bed scripts (sourced, not executed).
#
# Everything is overridable from the environment; defaults are test-only values.
#   TESTBED_DIR  state directory (logs, S3 data, env file); default <repo>/.testbed (git-ignored
#                by a .gitignore written into it)
#   STACKVAULT_TEST_S3_PORT / _ACCESS_KEY / _SECRET_KEY / _BUCKET / _REGION  the local S3 server
#   STACKVAULT_TEST_MOTO_PORT / _ENDPOINT  the second S3 server (moto)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TESTBED_DIR="${TESTBED_DIR:-$REPO_ROOT/.testbed}"
mkdir -p "$TESTBED_DIR"
[ -f "$TESTBED_DIR/.gitignore" ] || printf '*\n' >"$TESTBED_DIR/.gitignore"

# Image tags (override to test against other images, e.g. the official ones where a registry exists).
STACKVAULT_TEST_POSTGRES_IMAGE="${STACKVAULT_TEST_POSTGRES_IMAGE:-stackvault-test/postgres:15}"
STACKVAULT_TEST_MARIADB_IMAGE="${STACKVAULT_TEST_MARIADB_IMAGE:-stackvault-test/mariadb:10.11}"
STACKVAULT_TEST_BUSYBOX_IMAGE="${STACKVAULT_TEST_BUSYBOX_IMAGE:-stackvault-test/busybox:latest}"

# Local S3 server (rclone serve s3). Test-only credentials, never used anywhere real.
STACKVAULT_TEST_S3_PORT="${STACKVAULT_TEST_S3_PORT:-9000}"
STACKVAULT_TEST_S3_ENDPOINT="${STACKVAULT_TEST_S3_ENDPOINT:-http://127.0.0.1:$STACKVAULT_TEST_S3_PORT}"
STACKVAULT_TEST_S3_ACCESS_KEY="${STACKVAULT_TEST_S3_ACCESS_KEY:-stackvault-test-access}"
STACKVAULT_TEST_S3_SECRET_KEY="${STACKVAULT_TEST_S3_SECRET_KEY:-stackvault-test-secret-0123456789}"
STACKVAULT_TEST_S3_BUCKET="${STACKVAULT_TEST_S3_BUCKET:-stackvault-test}"
STACKVAULT_TEST_S3_REGION="${STACKVAULT_TEST_S3_REGION:-us-east-1}"

# Second S3 server: moto (moto_server, from scripts/install-deps.sh) on its own loopback port. It accepts any
# keys; the tests use it for what rclone lacks (Object Lock with default retention, checksum checks, STS).
STACKVAULT_TEST_MOTO_PORT="${STACKVAULT_TEST_MOTO_PORT:-9100}"
STACKVAULT_TEST_MOTO_ENDPOINT="${STACKVAULT_TEST_MOTO_ENDPOINT:-http://127.0.0.1:$STACKVAULT_TEST_MOTO_PORT}"

tb_log() { printf '[testbed %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
tb_die() { tb_log "ERROR: $*"; exit 1; }
