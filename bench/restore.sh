#!/usr/bin/env bash
# Restore benchmark: what the guarded database restore (issue #15: set aside, replay, drop what was set aside)
# costs next to a bare replay of the same dump, on a ~300 MB database. Not a test: prints a table.
#
#   bash bench/restore.sh                         # pgbench scale 20 (~300 MB) and a ~300 MB MariaDB table
#   BENCH_PG_SCALE=5 BENCH_MARIA_ROWS=250000 bash bench/restore.sh
#   STACKVAULT_BIN=.build/debug/stackvault bash bench/restore.sh   # skip the release build
#   BENCH_BASELINE_BIN=/path/to/older/stackvault bash bench/restore.sh  # also an unguarded StackVault (drop, replay)
#
# For each engine: `stackvault restore` of a fresh backup into the same container (the database is there, so it
# is set aside and dropped at the end), against the bare replay a user would run by hand into an emptied server
# (psql -f / mariadb < dump; no safety), and optionally an older StackVault that dropped first. Figures: wall
# time, and for the data directory and /tmp inside the container their size before and the peak over it during the
# run (sampled every second with du): the extra disk a restore needs (PostgreSQL's data directory includes pg_wal).
# Needs the test bed (scripts/testbed/up.sh). Containers are named svbench-restore-* and removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE="${BENCH_PG_SCALE:-20}"
MARIA_ROWS="${BENCH_MARIA_ROWS:-1000000}"
WORK="${BENCH_DIR:-/var/tmp/stackvault-bench-restore}"
POSTGRES="${STACKVAULT_TEST_POSTGRES_IMAGE:-stackvault-test/postgres:15}"
MARIADB="${STACKVAULT_TEST_MARIADB_IMAGE:-stackvault-test/mariadb:10.11}"
PG_C=svbench-restore-pg
MA_C=svbench-restore-maria
export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"

say() { printf '==> %s\n' "$*" >&2; }
now() { date +%s.%N; }
if [ -n "${STACKVAULT_BIN:-}" ]; then SV="$STACKVAULT_BIN"; else
  say "building stackvault (release)"; swift build -c release --product stackvault >/dev/null
  SV="$(swift build -c release --show-bin-path)/stackvault"
fi
rm -rf "$WORK"; mkdir -p "$WORK"
cleanup() { docker rm -f "$PG_C" "$MA_C" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

# bytes CONTAINER DIR: du of DIR, then of /tmp, inside CONTAINER.
bytes() { docker exec "$1" sh -c "du -sb '$2' /tmp 2>/dev/null | awk '{ printf \"%s \", \$1 } END { print \"\" }'"; }
# measure NAME CONTAINER DIR COMMAND...: runs COMMAND, samples disk meanwhile, appends a row.
measure() {
  local name="$1" c="$2" dir="$3"; shift 3
  local before start end
  before=$(bytes "$c" "$dir")
  ( while :; do bytes "$c" "$dir"; sleep 1; done ) >"$WORK/samples" 2>/dev/null &
  local sampler=$!
  start=$(now); "$@"; end=$(now)
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
  echo "$before" >>"$WORK/samples"
  set -- $before
  local data_before=$1 tmp_before=$2
  local data_peak tmp_peak
  data_peak=$(awk 'NF == 2 { print $1 }' "$WORK/samples" | sort -n | tail -1)
  tmp_peak=$(awk 'NF == 2 { print $2 }' "$WORK/samples" | sort -n | tail -1)
  printf '%-40s %7.1f s %9.0f MiB %9.0f MiB %9.0f MiB\n' "$name" "$(echo "$end - $start" | bc)" \
    "$(echo "$data_before / 1048576" | bc)" "$(echo "($data_peak - $data_before) / 1048576" | bc)" \
    "$(echo "($tmp_peak - $tmp_before) / 1048576" | bc)" >>"$WORK/table"
}

say "PostgreSQL: pgbench -i -s $SCALE"
docker rm -f "$PG_C" >/dev/null 2>&1 || true
docker run -d --name "$PG_C" --label stackvault.test=true --label backup.enable=true \
  --label backup.database.pg_dumpall=true -e POSTGRES_PASSWORD=bench "$POSTGRES" >/dev/null
until docker exec -e PGPASSWORD=bench "$PG_C" psql -U postgres -tAc 'select 1' >/dev/null 2>&1; do sleep 1; done
docker exec -e PGPASSWORD=bench "$PG_C" sh -c "PATH=\$PATH:/usr/lib/postgresql/15/bin; pgbench -q -i -s $SCALE -U postgres postgres" >/dev/null 2>&1
"$SV" backup --stack "$PG_C" --target "file://$WORK/out" >/dev/null 2>&1
docker exec -e PGPASSWORD=bench "$PG_C" sh -c 'pg_dumpall -U postgres > /tmp/bare.sql'
PGDATA_DIR=/var/lib/postgresql/data
measure "pg: stackvault restore (guarded)" "$PG_C" "$PGDATA_DIR" \
  sh -c "'$SV' restore --latest --stack '$PG_C' --target 'file://$WORK/out' --yes >/dev/null 2>&1"
bare_pg() {
  docker exec -e PGPASSWORD=bench "$PG_C" sh -c 'psql -X -q -U postgres -d template1 -c "DROP DATABASE postgres WITH (FORCE)" \
    -c "CREATE DATABASE postgres" && sed "/^CREATE ROLE postgres;/d" /tmp/bare.sql | psql -X -q -U postgres -d postgres >/dev/null 2>&1'
}
measure "pg: bare drop + psql replay" "$PG_C" "$PGDATA_DIR" bare_pg
if [ -n "${BENCH_BASELINE_BIN:-}" ]; then
  measure "pg: older stackvault (drop, replay)" "$PG_C" "$PGDATA_DIR" \
    sh -c "'$BENCH_BASELINE_BIN' restore --latest --stack '$PG_C' --target 'file://$WORK/out' --yes >/dev/null 2>&1"
fi

say "MariaDB: $MARIA_ROWS rows of ~300 bytes"
docker rm -f "$MA_C" >/dev/null 2>&1 || true
docker run -d --name "$MA_C" --label stackvault.test=true --label backup.enable=true \
  --label backup.database.mariadb-dump=true -e MARIADB_ROOT_PASSWORD=bench "$MARIADB" >/dev/null
until docker exec -e MYSQL_PWD=bench "$MA_C" mariadb -uroot -e 'select 1' >/dev/null 2>&1; do sleep 1; done
docker exec -e MYSQL_PWD=bench "$MA_C" mariadb -uroot -e "CREATE DATABASE bench; USE bench; CREATE TABLE bench.t (id INT PRIMARY KEY,
  pad CHAR(255), n BIGINT) ENGINE=InnoDB; INSERT INTO bench.t SELECT seq, MD5(seq), seq * 7 FROM seq_1_to_$MARIA_ROWS"
"$SV" backup --stack "$MA_C" --target "file://$WORK/out" >/dev/null 2>&1
docker exec -e MYSQL_PWD=bench "$MA_C" sh -c 'mariadb-dump -uroot --all-databases --single-transaction > /tmp/bare.sql'
measure "mariadb: stackvault restore (guarded)" "$MA_C" /var/lib/mysql \
  sh -c "'$SV' restore --latest --stack '$MA_C' --target 'file://$WORK/out' --yes >/dev/null 2>&1"
bare_maria() {
  docker exec -e MYSQL_PWD=bench "$MA_C" sh -c 'mariadb -uroot -e "DROP DATABASE bench" && mariadb -uroot < /tmp/bare.sql'
}
measure "mariadb: bare drop + replay" "$MA_C" /var/lib/mysql bare_maria
if [ -n "${BENCH_BASELINE_BIN:-}" ]; then
  measure "mariadb: older stackvault (drop, replay)" "$MA_C" /var/lib/mysql \
    sh -c "'$BENCH_BASELINE_BIN' restore --latest --stack '$MA_C' --target 'file://$WORK/out' --yes >/dev/null 2>&1"
fi

printf '%-40s %9s %13s %13s %13s\n' run wall "data before" "data extra" "/tmp extra"
cat "$WORK/table"
