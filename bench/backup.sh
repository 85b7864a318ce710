#!/usr/bin/env bash
# Backup benchmark: StackVault against what a user would run by hand, same data, same machine, alternating runs.
# Not a test: prints a table of medians and the ratios StackVault / contender.
#
#   bash bench/backup.sh                 # 1.5 GiB volume, pgbench scale 20, 3 rounds
#   BENCH_GIB=0.5 BENCH_ROUNDS=5 bash bench/backup.sh
#   BENCH_AGE=1 bash bench/backup.sh     # also StackVault with age encryption (AGE_RECIPIENTS, a fresh key)
#   BENCH_TREE_FILES=100000              # size of the small-file tree (kind "tree"); 0 leaves it out
#   BENCH_PREFIX=svbench BENCH_DIR=/var/tmp/stackvault-bench   # names of its containers and volumes, its folder
#
# Contenders (volume, and tree: BENCH_TREE_FILES files of 1-8 KiB in 1,000-file folders): stackvault backup to a
# local dir, through its helper container (the default for a volume; the tar comes over the side channel, an
# abstract Unix socket); sv-attach, the same with STACKVAULT_HELPER_CHANNEL=attach (the helper's stdout through
# Docker's attach stream, as before issue #13's side channel); sv-api, the same with
# STACKVAULT_HELPER_IMAGE=none (Docker's archive API); the seed's way (stop, docker cp to a temp dir, start,
# tar | zstd -T0, zstd -t); the best shell pipeline (stop, docker cp C:/path - | zstd -T0 > out, start).
# The peak memory is that of the StackVault process (the helper container's own is not counted).
# Contenders (database): stackvault backup of a PostgreSQL service; docker exec pg_dumpall | zstd -T0.
# Figures: wall time, CPU time (user+sys of everything the contender ran, including docker cp, but not dockerd),
# peak RSS of the tool, extra disk used during the run (sampled, includes the output), the output's size, and
# downtime (stop -> running again).
# Needs the test bed (scripts/testbed/up.sh) and builds StackVault in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
GIB="${BENCH_GIB:-1.5}"
SCALE="${BENCH_PG_SCALE:-20}"
ROUNDS="${BENCH_ROUNDS:-3}"
WORK="${BENCH_DIR:-/var/tmp/stackvault-bench}"
BUSYBOX="${STACKVAULT_TEST_BUSYBOX_IMAGE:-stackvault-test/busybox:latest}"
POSTGRES="${STACKVAULT_TEST_POSTGRES_IMAGE:-stackvault-test/postgres:15}"
VOL_C="${BENCH_PREFIX:-svbench}-files"
TREE_C="${BENCH_PREFIX:-svbench}-tree"
PG_C="${BENCH_PREFIX:-svbench}-pg"
DATA_V="${BENCH_PREFIX:-svbench}-data"  # BENCH_PREFIX: names of the containers and volumes (default svbench)
TREE_FILES="${BENCH_TREE_FILES:-100000}"
export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"

say() { printf '==> %s\n' "$*" >&2; }
now() { date +%s.%N; }

say "building stackvault (release)"
swift build -c release --product stackvault >/dev/null
SV="$(swift build -c release --show-bin-path)/stackvault"

mkdir -p "$WORK"
out="$WORK/out"
results="$WORK/results.tsv"
: >"$results"

# ---------------------------------------------------------------------------------------------------- data
make_data() {
  local dir="$WORK/data-$GIB"
  if [ ! -f "$dir/.done" ]; then
    say "generating ${GIB} GiB of reproducible data in $dir"
    rm -rf "$dir"; mkdir -p "$dir/small" "$dir/large" "$dir/random"
    python3 - "$dir" "$GIB" <<'PY'
import os, random, sys
root, gib = sys.argv[1], float(sys.argv[2])
total = int(gib * (1 << 30))
rng = random.Random(20261127)
words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(5000)]
def text(n):
    out = bytearray()
    while len(out) < n:
        out += b" ".join(rng.choice(words) for _ in range(12)) + b"\n"
    return bytes(out[:n])
# 20%: many small files (1-32 KiB) in nested folders
small, i = 0, 0
while small < total * 0.20:
    n = rng.randint(1024, 32768)
    d = os.path.join(root, "small", f"d{i // 500:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:06d}.txt"), "wb") as f: f.write(text(n))
    small += n; i += 1
# 50%: large compressible files (64 MiB each)
large, j = 0, 0
chunk = text(1 << 20)
while large < total * 0.50:
    with open(os.path.join(root, "large", f"log{j:03d}.txt"), "wb") as f:
        for k in range(64):
            f.write(chunk[k * 997 % 4096:] + chunk[:k * 997 % 4096])
    large += 64 << 20; j += 1
# 30%: incompressible files (32 MiB each), from a seeded generator
rnd, k = 0, 0
while rnd < total * 0.30:
    with open(os.path.join(root, "random", f"r{k:03d}.bin"), "wb") as f:
        for _ in range(32): f.write(rng.randbytes(1 << 20))
    rnd += 32 << 20; k += 1
print(f"{i} small files, {j} large, {k} random")
PY
    touch "$dir/.done"
  fi
  docker rm -f "$VOL_C" >/dev/null 2>&1 || true
  docker volume rm -f "$DATA_V" >/dev/null 2>&1 || true
  docker run -d --init --name "$VOL_C" --label stackvault.test=true --label backup.enable=true \
    --label backup.volume-path.data=/data -v "$DATA_V":/data "$BUSYBOX" sleep 1000000 >/dev/null
  say "loading the data into the volume"
  tar -C "$dir" --exclude .done -cf - . | docker exec -i "$VOL_C" tar -xf - -C /data
  DATA_BYTES=$(du -sb --exclude .done "$dir/" | cut -f1)  # dir/: a symlinked data folder is followed
}

make_tree() {
  docker rm -f "$TREE_C" >/dev/null 2>&1 || true
  docker volume rm -f "$TREE_C" >/dev/null 2>&1 || true
  docker run -d --init --name "$TREE_C" --label stackvault.test=true --label backup.enable=true \
    --label backup.volume-path.data=/data -v "$TREE_C":/data "$BUSYBOX" sleep 1000000 >/dev/null
  say "writing $TREE_FILES small files into the tree volume"
  local mp; mp=$(docker volume inspect -f '{{.Mountpoint}}' "$TREE_C")
  python3 - "$mp" "$TREE_FILES" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(13)
for i in range(n):
    d = os.path.join(root, f"d{i // 1000:04d}")
    if i % 1000 == 0: os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:07d}"), "wb") as f: f.write(rng.randbytes(rng.randint(1024, 8192)))
PY
}

make_db() {
  docker rm -f "$PG_C" >/dev/null 2>&1 || true
  docker run -d --name "$PG_C" --label stackvault.test=true --label backup.enable=true \
    --label backup.database.pg_dumpall=true -e POSTGRES_PASSWORD=bench "$POSTGRES" >/dev/null
  for _ in $(seq 1 120); do
    docker exec -e PGPASSWORD=bench "$PG_C" psql -U postgres -tAc 'select 1' >/dev/null 2>&1 && break
    sleep 0.5
  done
  say "pgbench -i -s $SCALE"
  docker exec -e PGPASSWORD=bench "$PG_C" sh -c "PATH=\$PATH:/usr/lib/postgresql/15/bin; pgbench -q -i -s $SCALE -U postgres postgres" >/dev/null 2>&1
  DB_BYTES=$(docker exec -e PGPASSWORD=bench "$PG_C" psql -U postgres -tAc "select pg_database_size('postgres')")
}

# ---------------------------------------------------------------------------------------------------- measuring
# measure NAME KIND COMMAND...: runs COMMAND under /usr/bin/time, samples the disk use of $WORK meanwhile,
# and appends "name kind wall cpu maxrss_kib extra_disk_bytes downtime" to $results.
# The command may write a downtime (seconds) into $WORK/downtime.
measure() {
  local name=$1 kind=$2; shift 2
  rm -rf "$out"; mkdir -p "$out"; rm -f "$WORK/downtime" "$WORK/time.txt"
  sync
  local base; base=$(df -B1 --output=used "$WORK" | tail -1)
  local peak_file="$WORK/peak"; echo 0 >"$peak_file"
  ( while :; do u=$(df -B1 --output=used "$WORK" | tail -1); p=$(cat "$peak_file"); [ "$u" -gt "$p" ] && echo "$u" >"$peak_file"; sleep 0.1; done ) &
  local sampler=$!
  local t0; t0=$(now)
  /usr/bin/time -f "%U %S %M" -o "$WORK/time.txt" "$@"
  local t1; t1=$(now)
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
  local peak; peak=$(cat "$peak_file")
  read -r user sys rss <"$WORK/time.txt"
  local downtime="-"; [ -f "$WORK/downtime" ] && downtime=$(cat "$WORK/downtime")
  local extra=$(( peak > base ? peak - base : 0 ))
  local archive; archive=$(du -sb "$out" | cut -f1)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$kind" "$(awk "BEGIN{print $t1 - $t0}")" \
    "$(awk "BEGIN{print $user + $sys}")" "$rss" "$extra" "$downtime" "$archive" >>"$results"
}

# The contenders. Each leaves the container running.
sv_volume() {
  "$SV" backup --stack "$TARGET_C" --target "file://$out" 2>"$WORK/sv.log" >/dev/null
  grep -o 'downtime [0-9.]* s)' "$WORK/sv.log" | head -1 | grep -o '[0-9.]*' >"$WORK/downtime"
  if [ "${STACKVAULT_HELPER_CHANNEL:-auto}" = auto ] && grep -q 'not the side channel' "$WORK/sv.log"; then
    grep 'not the side channel' "$WORK/sv.log" | head -1 >&2  # measured the fallback, not the side channel
  fi
}
seed_volume() {
  local t0 t1; t0=$(now)
  docker stop -t 30 "$TARGET_C" >/dev/null
  docker cp "$TARGET_C:/data" "$out/copy"
  docker start "$TARGET_C" >/dev/null
  t1=$(now); awk "BEGIN{print $t1 - $t0}" >"$WORK/downtime"
  tar -C "$out/copy" -cf - . | zstd -q -T0 -o "$out/seed.tar.zst"
  zstd -q -t "$out/seed.tar.zst"
  rm -rf "$out/copy"
}
pipe_volume() {
  local t0 t1; t0=$(now)
  docker stop -t 30 "$TARGET_C" >/dev/null
  docker cp "$TARGET_C:/data" - | zstd -q -T0 -o "$out/pipe.tar.zst"
  docker start "$TARGET_C" >/dev/null
  t1=$(now); awk "BEGIN{print $t1 - $t0}" >"$WORK/downtime"
}
sv_db() { "$SV" backup --stack "$PG_C" --target "file://$out" >/dev/null 2>&1; }
sv_age_volume() { AGE_RECIPIENTS="$BENCH_AGE_RECIPIENT" sv_volume; }
sv_api_volume() { STACKVAULT_HELPER_IMAGE=none sv_volume; }
sv_attach_volume() { STACKVAULT_HELPER_CHANNEL=attach sv_volume; }
sv_age_db() { AGE_RECIPIENTS="$BENCH_AGE_RECIPIENT" sv_db; }
pipe_db() { docker exec -e PGPASSWORD=bench "$PG_C" pg_dumpall -U postgres | zstd -q -T0 -o "$out/db.sql.zst"; }
export -f sv_volume seed_volume pipe_volume sv_db pipe_db sv_age_volume sv_age_db sv_api_volume sv_attach_volume now
export SV VOL_C PG_C WORK out
if [ "${BENCH_AGE:-0}" = 1 ]; then
  rm -f "$WORK/age-key.txt"
  age-keygen -o "$WORK/age-key.txt" 2>/dev/null
  BENCH_AGE_RECIPIENT=$(age-keygen -y "$WORK/age-key.txt")
  export BENCH_AGE_RECIPIENT
fi

make_data
[ "$TREE_FILES" -gt 0 ] && make_tree
make_db
# A helper image still to be built is built now, not in the first measured run.
"$SV" plan >/dev/null 2>&1 || true
TARGET_C="$VOL_C" STACKVAULT_HELPER_IMAGE= "$SV" backup --stack "$VOL_C" --target "file://$WORK/warmup" >/dev/null 2>&1 || true
rm -rf "$WORK/warmup"
say "data: volume $(numfmt --to=iec "$DATA_BYTES"), database $(numfmt --to=iec "$DB_BYTES"); $ROUNDS rounds"
for round in $(seq 1 "$ROUNDS"); do
  say "round $round/$ROUNDS"
  export TARGET_C="$VOL_C"
  measure stackvault volume bash -c sv_volume
  measure sv-attach volume bash -c sv_attach_volume
  measure sv-api volume bash -c sv_api_volume
  measure seed volume bash -c seed_volume
  measure pipeline volume bash -c pipe_volume
  if [ "$TREE_FILES" -gt 0 ]; then
    export TARGET_C="$TREE_C"
    measure stackvault tree bash -c sv_volume
    measure sv-attach tree bash -c sv_attach_volume
    measure sv-api tree bash -c sv_api_volume
    measure pipeline tree bash -c pipe_volume
  fi
  measure stackvault database bash -c sv_db
  measure pipeline database bash -c pipe_db
  if [ "${BENCH_AGE:-0}" = 1 ]; then
    measure sv+age volume bash -c sv_age_volume
    measure sv+age database bash -c sv_age_db
  fi
done

python3 - "$results" "$DATA_BYTES" "$DB_BYTES" "$GIB" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
data = {}
for name, kind, wall, cpu, rss, disk, down, archive in rows:
    d = data.setdefault((kind, name), {"wall": [], "cpu": [], "rss": [], "disk": [], "down": [], "out": []})
    d["out"].append(int(archive) / (1 << 20))
    d["wall"].append(float(wall)); d["cpu"].append(float(cpu)); d["rss"].append(int(rss) / 1024)
    d["disk"].append(int(disk) / (1 << 20))
    if down != "-": d["down"].append(float(down))
med = lambda xs: statistics.median(xs) if xs else float("nan")
rounds = len({(r[0], r[1]) for r in rows}) and len(rows) // len({(r[0], r[1]) for r in rows})
print(f"\nvolume {int(sys.argv[2]) / (1 << 30):.2f} GiB (BENCH_GIB={sys.argv[4]}), database {int(sys.argv[3]) / (1 << 20):.0f} MiB; medians of {rounds} rounds\n")
print(f"{'kind':9} {'contender':11} {'wall s':>8} {'cpu s':>8} {'peak MiB':>9} {'disk MiB':>9} {'output MiB':>11} {'downtime s':>11}")
for (kind, name), d in data.items():
    print(f"{kind:9} {name:11} {med(d['wall']):8.2f} {med(d['cpu']):8.2f} {max(d['rss']):9.1f} {max(d['disk']):9.1f} {med(d['out']):11.1f} {med(d['down']):11.2f}")
print("\nratios StackVault / contender (wall, downtime):")
for kind in ("volume", "tree", "database"):
    sv = data.get((kind, "stackvault"))
    if sv is None: continue
    for (k, name), d in data.items():
        if k != kind or name in ("stackvault", "sv+age"): continue
        wall = med(sv["wall"]) / med(d["wall"])
        down = med(sv["down"]) / med(d["down"]) if d["down"] and sv["down"] else float("nan")
        print(f"  {kind:9} vs {name:9}: wall {wall:.2f}x" + ("" if down != down else f", downtime {down:.2f}x"))
    if (kind, "sv+age") in data:
        print(f"  {kind:9} age encryption: wall {med(data[(kind, 'sv+age')]['wall']) / med(sv['wall']):.2f}x of plain StackVault")
PY
docker rm -f "$VOL_C" "$TREE_C" "$PG_C" >/dev/null 2>&1 || true
docker volume rm -f "$DATA_V" "$TREE_C" >/dev/null 2>&1 || true
