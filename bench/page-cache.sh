#!/usr/bin/env bash
# Page cache left behind by backup, verify and restore of a ~1 GiB archive (issue #20), for two stackvault binaries
# (before: SV_BEFORE, e.g. main's; after: SV_AFTER, default this tree's release build), same data, same machine,
# alternating runs. Not a test: prints one line per run and a table of medians with the ratios after / before.
#
#   SV_BEFORE=/path/to/main/stackvault bash bench/page-cache.sh
#   BENCH_MIB=512 BENCH_ROUNDS=3 SV_BEFORE=... bash bench/page-cache.sh
#
# Each binary runs inside its own long-lived "sidecar" container of BENCH_IMAGE (default stackvault-test/stackvault:dev,
# whose entrypoint is /usr/local/bin/stackvault) with the binary bind-mounted over /usr/local/bin/stackvault, the
# Docker socket and a target directory mounted; commands run in it with `docker exec`, so the page cache they fault
# in is charged to that container, as it is to a real sidecar. Before each command the archive is evicted from the
# cache (`dd oflag=nocache count=0`), so every command starts cold (column cold: the share still cached then, which
# should be 0). After each command:
#   fincore   the share of the archive file still in the page cache (util-linux fincore),
#   cached    change of Cached in /proc/meminfo over the command (host-wide: other work on the machine adds noise),
#   dirty     Dirty in /proc/meminfo right after,
#   stats     `docker stats --no-stream` MEM USAGE of the sidecar (the docker CLI subtracts inactive file pages),
#   cgcache   change of the sidecar's memory cgroup `total_cache` (all page cache charged to it, active or not),
#   cgpeak    the highest `total_cache` during the command (sampled every 0.2 s) less the value before,
#   wall      wall time of the command (docker exec included).
# The data is one file of BENCH_MIB MiB (default 1024) of random bytes in a volume of a busybox container labelled
# for backup, so the archive is about as large. Every container and volume is named svcache-*-<random id> and
# removed at the end. Needs dockerd, the image, busybox (STACKVAULT_TEST_BUSYBOX_IMAGE) and util-linux.
set -euo pipefail
cd "$(dirname "$0")/.."
MIB="${BENCH_MIB:-1024}"
ROUNDS="${BENCH_ROUNDS:-2}"
IMAGE="${BENCH_IMAGE:-stackvault-test/stackvault:dev}"
BUSYBOX="${STACKVAULT_TEST_BUSYBOX_IMAGE:-stackvault-test/busybox:latest}"
SOCKET="${BENCH_DOCKER_SOCKET:-/var/run/docker.sock}"
export DOCKER_HOST="${DOCKER_HOST:-unix://$SOCKET}"
: "${SV_BEFORE:?set SV_BEFORE to the stackvault binary to compare with (e.g. a release build of main)}"
say() { printf '==> %s\n' "$*" >&2; }
now() { date +%s.%N; }
if [ -z "${SV_AFTER:-}" ]; then
  say "building stackvault (release)"
  swift build -c release --product stackvault >/dev/null
  SV_AFTER="$(swift build -c release --show-bin-path)/stackvault"
fi

id="$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
APP="svcache-app-$id"
VOL="svcache-vol-$id"
WORK="${BENCH_DIR:-/var/tmp}/svcache-bench-$id"
mkdir -p "$WORK/target" "$WORK/bin"
cp "$SV_BEFORE" "$WORK/bin/before"
cp "$SV_AFTER" "$WORK/bin/after"
cleanup() {
  docker rm -f "$APP" "svcache-sidecar-$id-before" "svcache-sidecar-$id-after" >/dev/null 2>&1 || true
  docker volume rm "$VOL" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

say "data: $MIB MiB of random bytes in volume $VOL, container $APP"
docker volume create --label stackvault.test=true "$VOL" >/dev/null
docker run --rm --label stackvault.test=true -v "$VOL:/data" "$BUSYBOX" \
  sh -c "head -c $((MIB << 20)) /dev/urandom > /data/random.bin"
docker run -d --init --name "$APP" --label stackvault.test=true --label backup.enable=true \
  --label backup.volume-path.data=/data -v "$VOL:/data" "$BUSYBOX" sleep 1d >/dev/null

for variant in before after; do
  docker run -d --name "svcache-sidecar-$id-$variant" --label stackvault.test=true \
    -v "$SOCKET:/var/run/docker.sock" -v "$WORK/target:/target" \
    -v "$WORK/bin/$variant:/usr/local/bin/stackvault:ro" \
    -e STACKVAULT_HELPER_IMAGE="$IMAGE" -e BACKUP_TARGET=file:///target -e LOG_LEVEL=warning \
    --entrypoint sleep "$IMAGE" 1d >/dev/null
  docker exec "svcache-sidecar-$id-$variant" stackvault --version >/dev/null
done

meminfo() { awk -v k="$1" '$1 == k ":" { printf "%.0f\n", $2 * 1024 }' /proc/meminfo; }
# The sidecar's memory cgroup (v1, read from the host; else from inside the container).
cgstat() {
  local id; id=$(docker inspect -f '{{.Id}}' "$1")
  if [ -r "/sys/fs/cgroup/memory/docker/$id/memory.stat" ]; then cat "/sys/fs/cgroup/memory/docker/$id/memory.stat"
  else docker exec "$1" cat /sys/fs/cgroup/memory/memory.stat; fi
}
cgcache() { cgstat "$1" | awk '$1 == "total_cache" { print $2 }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
evict() { [ -f "$1" ] && dd if=/dev/null of="$1" oflag=nocache conv=notrunc,fdatasync count=0 status=none || true; }
newest_archive() { find "$WORK/target" -name "backup-$APP-*.tar.zst" -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2-; }

: >"$WORK/runs"
printf '%-7s %-8s %5s %8s %8s %9s %9s %12s %9s %9s\n' binary command cold wall fincore "cached" dirty stats cgcache \
  cgpeak >&2
# measure VARIANT COMMAND ARCHIVE-OR-EMPTY stackvault-args...
measure() {
  local variant="$1" command="$2" archive="$3"; shift 3
  local sidecar="svcache-sidecar-$id-$variant"
  local cold=0
  if [ -n "$archive" ]; then
    evict "$archive"
    cold=$(fincore -b -n -o RES "$archive" | tr -d ' ')
    cold=$(awk -v r="$cold" -v s="$(stat -c %s "$archive")" 'BEGIN { printf "%.0f", (s > 0 ? 100 * r / s : 0) }')
  fi
  sync
  local cached0 cg0 start end
  cached0=$(meminfo Cached); cg0=$(cgcache "$sidecar")
  local statfile="/sys/fs/cgroup/memory/docker/$(docker inspect -f '{{.Id}}' "$sidecar")/memory.stat"
  ( peak=0; while [ -r "$statfile" ]; do
      c=$(awk '$1 == "total_cache" { print $2 }' "$statfile"); [ "$c" -gt "$peak" ] && peak=$c && echo "$peak" >"$WORK/peak"
      sleep 0.2; done ) &
  local sampler=$!
  echo "$cg0" >"$WORK/peak"
  start=$(now)
  docker exec "$sidecar" stackvault "$@" >"$WORK/last.log" 2>&1 || { cat "$WORK/last.log" >&2; exit 1; }
  end=$(now)
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
  local peak; peak=$(cat "$WORK/peak")
  [ -z "$archive" ] && archive="$(newest_archive)"
  local cached1 dirty cg1 stats res size
  cached1=$(meminfo Cached); dirty=$(meminfo Dirty); cg1=$(cgcache "$sidecar")
  stats=$(docker stats --no-stream --format '{{.MemUsage}}' "$sidecar" | cut -d/ -f1 | tr -d ' ')
  res=$(fincore -b -n -o RES "$archive" | tr -d ' '); size=$(stat -c %s "$archive")
  local wall pct
  wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
  pct=$(awk -v r="$res" -v s="$size" 'BEGIN { printf "%.0f", (s > 0 ? 100 * r / s : 0) }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$variant" "$command" "$wall" "$pct" "$(mib $((cached1 - cached0)))" \
    "$(mib "$dirty")" "$stats" "$(mib $((cg1 - cg0)))" "$(mib $((peak - cg0)))" >>"$WORK/runs"
  printf '%-7s %-8s %4s%% %7ss %7s%% %6sMiB %6sMiB %12s %6sMiB %6sMiB\n' "$variant" "$command" "$cold" "$wall" \
    "$pct" "$(mib $((cached1 - cached0)))" "$(mib "$dirty")" "$stats" "$(mib $((cg1 - cg0)))" \
    "$(mib $((peak - cg0)))" >&2
  LAST_ARCHIVE="$archive"
}

say "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(mib $(($(meminfo MemTotal)))) MiB RAM"
for round in $(seq 1 "$ROUNDS"); do
  order="before after"; [ $((round % 2)) -eq 0 ] && order="after before"
  for variant in $order; do
    say "round $round: $variant"
    measure "$variant" backup "" backup --stack "$APP"
    archive="$LAST_ARCHIVE"
    name="$(basename "$archive")"
    measure "$variant" verify "$archive" verify "$name"
    measure "$variant" restore "$archive" restore "$name" --yes
    rm -f "$archive"
  done
done

say "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "medians over $ROUNDS rounds, $MIB MiB of random data (archive about as large); after/before = ratio of walls"
python3 - "$WORK/runs" <<'PY'
import statistics, sys, re
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
def mib(s):
    m = re.match(r"([\d.]+)([KMG]i?B|B)", s)
    if not m: return float("nan")
    return float(m.group(1)) * {"B": 1 / 1048576, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024}.get(m.group(2), 1)
def med(variant, command, i, f=float):
    return statistics.median(f(r[i]) for r in rows if r[0] == variant and r[1] == command)
print(f"{'command':8} {'binary':7} {'wall s':>7} {'fincore %':>9} {'Cached Δ MiB':>12} {'Dirty MiB':>9} "
      f"{'docker stats MiB':>16} {'cgroup cache Δ MiB':>18} {'cgroup peak MiB':>15}")
for command in ("backup", "verify", "restore"):
    for variant in ("before", "after"):
        print(f"{command:8} {variant:7} {med(variant, command, 2):7.1f} {med(variant, command, 3):9.0f} "
              f"{med(variant, command, 4):12.0f} {med(variant, command, 5):9.0f} {med(variant, command, 6, mib):16.0f} "
              f"{med(variant, command, 7):18.0f} {med(variant, command, 8):15.0f}")
    ratio = med("after", command, 2) / med("before", command, 2)
    print(f"{command:8} {'after/before wall':>17} {ratio:.2f}")
PY
