#!/usr/bin/env bash
# Sparse files (issue #13): the backup of a volume holding a 4 GiB sparse file with 8 KiB of data (`truncate -s 4G`,
# as the issue tried) and a 1 TiB file that is one hole, through the helper container. Holes are neither read nor
# hashed nor compressed, so the downtime should be that of stopping, one helper and starting. Not a test: prints
# one line per run and the medians; with a second binary, alternating runs of both (before/after a change).
#
#   bash bench/sparse.sh NEW/stackvault [OLD/stackvault]
#   BENCH_ROUNDS=5 BENCH_SPARSE_TIB=0 bash bench/sparse.sh .build/release/stackvault
#
# Each binary must be named `stackvault` (else it cannot be its own helper image and copies go through Docker's
# archive API). BENCH_SPARSE_TIB=0 leaves the 1 TiB file out (an old binary expands holes: 1 TiB of zeros would
# take hours). Columns: binary, wall s, CPU s (user+sys of the stackvault process; the helper container's own is
# not counted), downtime s, archive bytes, restore wall s (through the helper), KiB on disk of the 4 GiB file after
# the restore. Needs the test bed's Docker.
set -euo pipefail
NEW=${1:?usage: sparse.sh NEW/stackvault [OLD/stackvault]}
OLD=${2:-}
ROUNDS="${BENCH_ROUNDS:-3}"
TIB="${BENCH_SPARSE_TIB:-1}"
BUSYBOX="${STACKVAULT_TEST_BUSYBOX_IMAGE:-stackvault-test/busybox:latest}"
C="svsparse-$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
WORK=$(mktemp -d /var/tmp/svsparse.XXXXXX)
trap 'docker rm -f "$C" >/dev/null 2>&1; docker volume rm -f "$C" >/dev/null 2>&1; rm -rf "$WORK"' EXIT

docker volume create --label stackvault.test=true "$C" >/dev/null
docker run -d --init --name "$C" --label stackvault.test=true --label backup.enable=true \
  --label backup.volume-path.data=/data -v "$C:/data" "$BUSYBOX" sleep 1000000 >/dev/null
data=$(docker volume inspect -f '{{.Mountpoint}}' "$C")
truncate -s 4G "$data/sparse"
head -c 8192 /dev/urandom | dd of="$data/sparse" bs=4096 seek=262144 conv=notrunc status=none
[ "$TIB" = 0 ] || truncate -s "${TIB}T" "$data/hole"
echo "data: $(du -k --apparent-size -s "$data" | cut -f1) KiB logical, $(du -k -s "$data" | cut -f1) KiB on disk" >&2

run() { # label binary
  local label=$1 bin=$2
  rm -rf "$WORK/out"; mkdir -p "$WORK/out"
  local t0 t1 t2; t0=$(date +%s.%N)
  /usr/bin/time -f "%U %S" -o "$WORK/time" "$bin" backup --stack "$C" --target "$WORK/out" >/dev/null 2>"$WORK/log"
  t1=$(date +%s.%N)
  local down; down=$(grep -o 'downtime [0-9.]* s' "$WORK/log" | head -1 | awk '{print $2}')
  local size; size=$(find "$WORK/out" -name '*.tar.zst' -printf '%s')
  "$bin" restore --latest --stack "$C" --yes --target "$WORK/out" >/dev/null 2>>"$WORK/log"
  t2=$(date +%s.%N)
  printf '%s\t%.2f\t%s\t%s\t%s\t%.2f\t%s\n' "$label" "$(awk "BEGIN{print $t1 - $t0}")" \
    "$(awk '{print $1 + $2}' "$WORK/time")" "${down:--}" "$size" "$(awk "BEGIN{print $t2 - $t1}")" \
    "$(du -k "$data/sparse" | cut -f1)" | tee -a "$WORK/results"
}
run warm-new "$NEW" >/dev/null  # imports each binary's helper image once
[ -z "$OLD" ] || run warm-old "$OLD" >/dev/null
: >"$WORK/results"
printf 'binary\twall s\tcpu s\tdown s\tarchive B\trestore s\tdu KiB\n'
for _ in $(seq 1 "$ROUNDS"); do
  run new "$NEW"
  [ -z "$OLD" ] || run old "$OLD"
done
echo "medians (wall s, cpu s, downtime s, archive bytes, restore s, du KiB):"
for label in new ${OLD:+old}; do
  printf '%s' "$label"
  for column in 2 3 4 5 6 7; do
    printf '\t%s' "$(awk -v l="$label" -v c="$column" '$1 == l {print $c}' "$WORK/results" | sort -n \
      | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')"
  done
  echo
done
