#!/usr/bin/env bash
# Benchmark (not a test): StackVault's S3 upload against `aws s3 cp`, same 1 GiB of random data, same local
# S3 server (rclone serve s3 from the test bed), and prints wall time, throughput, peak RSS and their ratios.
#
#   bench/s3-upload.sh                 # 1 GiB
#   BENCH_SIZE_MIB=256 bench/s3-upload.sh
#
# StackVault side: `stackvault backup` of a busybox container whose /data holds the random file, to
# s3://$STACKVAULT_TEST_S3_BUCKET/bench-.../ . That run also archives, compresses (zstd cannot shrink random
# data) and verifies before it uploads, so the upload phase is read from the S3 backend's log line
# ("uploaded NAME (N bytes) ... in T s ..., including C s for the server to confirm the size") and printed
# twice: until the server answered the last request (like for like with `aws s3 cp`, which returns without
# checking the object), and including the HEAD that confirms the size (which rclone answers only once it has
# assembled the multipart object). Peak RSS is that of the whole stackvault process (/usr/bin/time -v).
# Between measurements the script waits for the server to settle, so no run pays for the previous one.
#
# Knobs: BENCH_SIZE_MIB (1024), BENCH_RUNS (3; medians are printed), STACKVAULT_BIN (default: a release build,
# built if missing), ZSTD_LEVEL (1), S3_PART_SIZE, S3_UPLOAD_CONCURRENCY, S3_CONTENT_MD5 (passed through),
# BENCH_KEEP=1 keeps the uploaded objects.
# Needs: Docker with the test images (scripts/testbed/up.sh), aws CLI, /usr/bin/time.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
. "$repo/scripts/testbed/lib.sh"

size_mib="${BENCH_SIZE_MIB:-1024}"
bin="${STACKVAULT_BIN:-$repo/.build/release/stackvault}"
work="$TESTBED_DIR/bench-s3"
run_id="bench-$(date +%Y%m%d-%H%M%S)-$$"
container="svbench-s3-$$"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v aws >/dev/null || die "aws CLI not found (scripts/install-deps.sh)"
[ -x /usr/bin/time ] || die "/usr/bin/time not found (apt-get install time)"
docker info >/dev/null 2>&1 || die "no Docker engine (scripts/testbed/up.sh)"
docker image inspect "$STACKVAULT_TEST_BUSYBOX_IMAGE" >/dev/null 2>&1 \
  || die "image $STACKVAULT_TEST_BUSYBOX_IMAGE missing (scripts/testbed/build-images.sh)"
if [ ! -x "$bin" ]; then
  log "building a release stackvault ($bin)"
  (cd "$repo" && swift build -c release -j "$(nproc)" >&2)
fi
S3_SELFTEST=0 bash "$repo/scripts/testbed/start-s3.sh"

s3env=(AWS_ACCESS_KEY_ID="$STACKVAULT_TEST_S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$STACKVAULT_TEST_S3_SECRET_KEY"
       AWS_DEFAULT_REGION="$STACKVAULT_TEST_S3_REGION" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
       AWS_EC2_METADATA_DISABLED=true AWS_PAGER="")
s3aws() { env "${s3env[@]}" aws --endpoint-url "$STACKVAULT_TEST_S3_ENDPOINT" "$@"; }

# The payload: random bytes (incompressible, so the archive is as large as the data), cached between runs.
mkdir -p "$work/data" "$work/stage"
payload="$work/data/payload.bin"
if [ "$(stat -c %s "$payload" 2>/dev/null || echo 0)" != $((size_mib << 20)) ]; then
  log "writing $size_mib MiB of random data to $payload"
  head -c $((size_mib << 20)) /dev/urandom >"$payload"
fi

cleanup() {
  docker rm -f "$container" >/dev/null 2>&1 || true
  rm -rf "$work/stage"
  if [ "${BENCH_KEEP:-0}" != 1 ]; then
    s3aws s3 rm --only-show-errors --recursive "s3://$STACKVAULT_TEST_S3_BUCKET/$run_id/" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

# Field of GNU time -v output.
tv() { sed -n "s/^[[:space:]]*$1: //p" "$2" | head -n1; }
# "h:mm:ss" or "m:ss.ss" -> seconds.
secs() { awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f", s }' <<<"$1"; }
# Median of the numbers on stdin.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# Waits until the server answers HEAD for an object (rclone assembles multipart objects after it answers
# CompleteMultipartUpload), so one measurement does not pay for the previous one's server-side work.
settle() { for _ in $(seq 1 120); do s3aws s3api head-object --bucket "$STACKVAULT_TEST_S3_BUCKET" --key "$1" >/dev/null 2>&1 && return; sleep 0.5; done; }

docker rm -f "$container" >/dev/null 2>&1 || true
docker run -d --name "$container" --label backup.enable=true --label backup.volume-path.data=/data \
  -v "$work/data:/data:ro" "$STACKVAULT_TEST_BUSYBOX_IMAGE" sleep 1000000 >/dev/null

runs="${BENCH_RUNS:-3}"
: >"$work/results"
for run in $(seq 1 "$runs"); do
  # 1. aws s3 cp (multipart with its defaults: 8 MiB parts, 10 threads).
  sync; log "run $run/$runs: aws s3 cp of $size_mib MiB"
  env "${s3env[@]}" /usr/bin/time -v -o "$work/aws.time" \
    aws --endpoint-url "$STACKVAULT_TEST_S3_ENDPOINT" s3 cp --only-show-errors "$payload" \
    "s3://$STACKVAULT_TEST_S3_BUCKET/$run_id/aws/payload-$run.bin"
  aws_secs="$(secs "$(tv 'Elapsed (wall clock) time (h:mm:ss or m:ss)' "$work/aws.time")")"
  aws_cpu="$(awk '{ s += $1 } END { printf "%.2f", s }' <<<"$(tv 'User time (seconds)' "$work/aws.time")
$(tv 'System time (seconds)' "$work/aws.time")")"
  aws_rss="$(tv 'Maximum resident set size (kbytes)' "$work/aws.time")"
  settle "$run_id/aws/payload-$run.bin"

  # 2. stackvault backup of the container holding the same file.
  sync; log "run $run/$runs: stackvault backup of $size_mib MiB to s3://$STACKVAULT_TEST_S3_BUCKET/$run_id/stackvault"
  rm -rf "$work/stage"; mkdir -p "$work/stage"
  set +e
  env "${s3env[@]}" S3_ENDPOINT_URL="$STACKVAULT_TEST_S3_ENDPOINT" STACKVAULT_WORK_DIR="$work/stage" LOG_LEVEL=info \
    ZSTD_LEVEL="${ZSTD_LEVEL:-1}" \
    /usr/bin/time -v -o "$work/sv.time" "$bin" backup --stack "$container" \
    --target "s3://$STACKVAULT_TEST_S3_BUCKET/$run_id/stackvault" >"$work/sv.out" 2>"$work/sv.log"
  status=$?
  set -e
  [ "$status" = 0 ] || { tail -n 30 "$work/sv.log" "$work/sv.out" >&2; die "stackvault backup failed ($status)"; }
  sv_secs="$(secs "$(tv 'Elapsed (wall clock) time (h:mm:ss or m:ss)' "$work/sv.time")")"
  sv_rss="$(tv 'Maximum resident set size (kbytes)' "$work/sv.time")"
  # "S3: uploaded NAME (N bytes) to ... in T s (R MiB/s), including C s for the server to confirm the size"
  line="$(grep -E 'S3: uploaded .* bytes\) to .* in [0-9.]+ s \(' "$work/sv.log" | tail -n1)"
  [ -n "$line" ] || die "no upload summary in the stackvault log ($work/sv.log)"
  up_bytes="$(sed -E 's/.*S3: uploaded .* \(([0-9]+) bytes\) to .*/\1/' <<<"$line")"
  up_secs="$(sed -E 's/.* in ([0-9.]+) s \(.*/\1/' <<<"$line")"
  confirm_secs="$(sed -E 's/.*including ([0-9.]+) s for the server.*/\1/' <<<"$line")"
  echo "$aws_secs $aws_cpu $aws_rss $sv_secs $sv_rss $up_bytes $up_secs $confirm_secs" >>"$work/results"
  log "run $run/$runs: aws ${aws_secs}s; stackvault upload ${up_secs}s (${confirm_secs}s of it confirming), whole run ${sv_secs}s"
done

# Both tools' objects are there, with the expected sizes.
s3aws s3 ls --recursive "s3://$STACKVAULT_TEST_S3_BUCKET/$run_id/" >&2

col() { awk -v c="$1" '{ print $c }' "$work/results" | median; }
aws_s="$(col 1)"; aws_cpu="$(col 2)"; aws_rss="$(col 3)"; sv_s="$(col 4)"; sv_rss="$(col 5)"
up_bytes="$(col 6)"; up_s="$(col 7)"; confirm_s="$(col 8)"
awk -v mib="$size_mib" -v runs="$runs" -v up_mib="$(awk -v b="$up_bytes" 'BEGIN { printf "%.1f", b / 1048576 }')" \
    -v aws_s="$aws_s" -v aws_cpu="$aws_cpu" -v aws_rss="$aws_rss" -v sv_s="$sv_s" -v sv_rss="$sv_rss" \
    -v up_s="$up_s" -v confirm_s="$confirm_s" '
BEGIN {
  printf "\nS3 upload of %d MiB of random data to rclone serve s3 on this host, median of %d run(s)\n\n", mib, runs
  printf "%-52s %8s %9s %13s\n", "", "wall s", "MiB/s", "peak RSS MiB"
  printf "%-52s %8.2f %9.1f %13.1f\n", "aws s3 cp (returns before the server settles)", aws_s, mib / aws_s, aws_rss / 1024
  printf "%-52s %8.2f %9.1f %13s\n", "stackvault upload, until the server answered", up_s - confirm_s, up_mib / (up_s - confirm_s), "-"
  printf "%-52s %8.2f %9.1f %13s\n", "stackvault upload, size confirmed by HEAD", up_s, up_mib / up_s, "-"
  printf "%-52s %8.2f %9.1f %13.1f\n", "stackvault backup, whole run (archive+verify+upload)", sv_s, mib / sv_s, sv_rss / 1024
  printf "\naws s3 cp CPU time: %.2f s\n", aws_cpu
  printf "throughput ratio stackvault / aws s3 cp, like for like (until the server answered): %.2fx\n", (up_mib / (up_s - confirm_s)) / (mib / aws_s)
  printf "throughput ratio stackvault / aws s3 cp, stackvault including its HEAD confirmation: %.2fx\n", (up_mib / up_s) / (mib / aws_s)
  printf "peak RSS: stackvault %.1f MiB (target < 100 MiB), %.2fx that of aws s3 cp\n", sv_rss / 1024, sv_rss / aws_rss
}'
