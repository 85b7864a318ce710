#!/usr/bin/env bash
# THE one command that runs all of StackVault's tests (CI runs it via .ci/run), on a fresh Debian
# bookworm machine as root, non-interactively:
#   1. scripts/install-deps.sh (build + test bed packages; no-op when all are present)
#   2. scripts/testbed/up.sh (dockerd, test images, S3 server, .testbed/env) IN THE BACKGROUND while
#      3. swift build --build-tests runs (image builds are mostly download/unpack, the build is CPU;
#         set TESTBED_SERIAL=1 to run them one after the other)
#   4. scripts/testbed/down.sh (stale test containers), source .testbed/env, swift test: the unit tests, then
#      the integration tests, each in its own process (both run even if the first fails)
#   5. scripts/testbed/down.sh again unless STACKVAULT_TEST_KEEP=1
# Exits non-zero if any step fails.
# Knobs (environment):
#   SWIFT_BUILD_FLAGS  flags for both `swift build` and `swift test` (e.g. "-c release")
#   SWIFT_TEST_FLAGS   flags for `swift test` only; when set, one `swift test` run with them replaces the two
#                      (e.g. "--filter StackVaultIntegrationTests.Integration/BackupTests")
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
export CI="${CI:-true}" DEBIAN_FRONTEND=noninteractive
SWIFT_BUILD_FLAGS="${SWIFT_BUILD_FLAGS:-}"
SWIFT_TEST_FLAGS="${SWIFT_TEST_FLAGS:-}"   # placeholder: extra `swift test` flags (the lead sets these)
read -r -a build_flags <<<"$SWIFT_BUILD_FLAGS"
read -r -a test_flags <<<"$SWIFT_TEST_FLAGS"
. "$repo/scripts/testbed/lib.sh"   # TESTBED_DIR
say() { printf '\n==> %s\n' "$*" >&2; }
t0=$SECONDS

say "install-deps"
bash scripts/install-deps.sh

uplog="$TESTBED_DIR/up.log"
if [ "${TESTBED_SERIAL:-0}" = 1 ]; then
  say "test bed up"
  bash scripts/testbed/up.sh
else
  say "test bed up (background, log: $uplog)"
  bash scripts/testbed/up.sh >"$uplog" 2>&1 </dev/null &
  up_pid=$!
  trap 'kill "$up_pid" 2>/dev/null || true' EXIT
fi

say "swift build --build-tests ${SWIFT_BUILD_FLAGS}"
tb=$SECONDS
build_rc=0
swift build --build-tests "${build_flags[@]}" || build_rc=$?
say "swift build finished (rc $build_rc) in $((SECONDS - tb))s"

if [ "${TESTBED_SERIAL:-0}" != 1 ]; then
  up_rc=0
  wait "$up_pid" || up_rc=$?
  trap - EXIT
  cat "$uplog" >&2
  [ "$up_rc" = 0 ] || { say "FAILED: scripts/testbed/up.sh (rc $up_rc)"; exit 1; }
fi
[ "$build_rc" = 0 ] || { say "FAILED: swift build (rc $build_rc)"; exit 1; }

# shellcheck disable=SC1091
. "$TESTBED_DIR/env"
bash scripts/testbed/down.sh

# The unit tests run in a process of their own, before the integration tests: the integration tests block
# threads of Swift's cooperative pool (one per core) on docker/psql subprocesses, and on a 2-core machine that
# starved the unit tests that check a scheduler's or a lease renewal's timing (a run started 5.9 s late).
test_rc=0
if [ ${#test_flags[@]} -gt 0 ]; then
  say "swift test ${SWIFT_BUILD_FLAGS} ${SWIFT_TEST_FLAGS}"
  swift test "${build_flags[@]}" "${test_flags[@]}" || test_rc=$?
else
  for target in StackVaultUnitTests StackVaultIntegrationTests; do
    say "swift test ${SWIFT_BUILD_FLAGS} --filter $target"
    swift test "${build_flags[@]}" --filter "$target" || test_rc=$?
  done
fi

if [ "${STACKVAULT_TEST_KEEP:-0}" != 1 ]; then bash scripts/testbed/down.sh || true; fi
if [ "$test_rc" != 0 ]; then say "FAILED: swift test (rc $test_rc) after $((SECONDS - t0))s"; exit "$test_rc"; fi
say "all tests passed in $((SECONDS - t0))s"
