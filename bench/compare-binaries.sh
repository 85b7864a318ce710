#!/usr/bin/env bash
# Two stackvault binaries, one volume, alternating backups: for a change on the data path (such as the progress
# counters of issue #20), is the new binary any slower? Not a test: prints one line per run and the medians.
#
#   bash bench/compare-binaries.sh OLD/stackvault NEW/stackvault
#   BENCH_ROUNDS=5 BENCH_DATA=/var/tmp/stackvault-bench/data-1.5 bash bench/compare-binaries.sh A/stackvault B/stackvault
#
# Each binary must be named `stackvault` (else it cannot be its own helper image and copies go through Docker's
# archive API). Data: BENCH_DATA (default: bench/backup.sh's 1.5 GiB set, made by that script), loaded once into a
# volume of a container with a unique name, removed at the end. Columns: binary, wall s, CPU s (user+sys of the
# stackvault process; the helper container's own is not counted), downtime s. A third column set, `new-off`, is the
# new binary with PROGRESS_INTERVAL=0. Needs the test bed's Docker.
set -euo pipefail
OLD=${1:?usage: compare-binaries.sh OLD/stackvault NEW/stackvault}
NEW=${2:?usage: compare-binaries.sh OLD/stackvault NEW/stackvault}
ROUNDS="${BENCH_ROUNDS:-3}"
DATA="${BENCH_DATA:-/var/tmp/stackvault-bench/data-1.5}"
BUSYBOX="${STACKVAULT_TEST_BUSYBOX_IMAGE:-stackvault-test/busybox:latest}"
[ -d "$DATA" ] || { echo "no data in $DATA: run bash bench/backup.sh once, or set BENCH_DATA" >&2; exit 2; }
C="svcmp-$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
WORK=$(mktemp -d /var/tmp/svcmp.XXXXXX)
trap 'docker rm -f "$C" >/dev/null 2>&1; docker volume rm -f "$C" >/dev/null 2>&1; rm -rf "$WORK"' EXIT

docker run -d --init --name "$C" --label stackvault.test=true --label backup.enable=true \
  --label backup.volume-path.data=/data -v "$C:/data" "$BUSYBOX" sleep 1000000 >/dev/null
tar -C "$DATA" --exclude .done -cf - . | docker exec -i "$C" tar -xf - -C /data

run() { # label binary [VAR=value...]
  local label=$1 bin=$2; shift 2
  rm -rf "$WORK/out"; mkdir -p "$WORK/out"
  local t0 t1; t0=$(date +%s.%N)
  env "$@" /usr/bin/time -f "%U %S" -o "$WORK/time" "$bin" backup --stack "$C" --target "$WORK/out" \
    >/dev/null 2>"$WORK/log"
  t1=$(date +%s.%N)
  local down; down=$(grep -o 'downtime [0-9.]* s' "$WORK/log" | head -1 | awk '{print $2}')
  printf '%s\t%.2f\t%s\t%s\n' "$label" "$(awk "BEGIN{print $t1 - $t0}")" \
    "$(awk '{print $1 + $2}' "$WORK/time")" "${down:--}" | tee -a "$WORK/results"
}
run warm-old "$OLD" >/dev/null  # imports each binary's helper image once
run warm-new "$NEW" >/dev/null
: >"$WORK/results"
for _ in $(seq 1 "$ROUNDS"); do
  run old "$OLD"
  run new "$NEW"
  run new-off "$NEW" PROGRESS_INTERVAL=0
done
echo "medians (wall s, cpu s, downtime s):"
for label in old new new-off; do
  printf '%s' "$label"
  for column in 2 3 4; do
    printf '\t%s' "$(awk -v l="$label" -v c="$column" '$1 == l {print $c}' "$WORK/results" | sort -n \
      | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')"
  done
  echo
done
