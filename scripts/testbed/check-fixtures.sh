#!/usr/bin/env bash
# Self-test of the Compose fixtures in IntegrationTests/Fixtures against the test images: brings
# each fixture up as project svtest_check_<name>, waits until its databases are ready (printing how
# long that took after `up -d` returned), checks by hand what the integration tests rely on, and
# tears it down again (`down -v`). Needs the test bed (scripts/testbed/up.sh). Not part of
# scripts/test.sh; run it after changing an image or a fixture:  scripts/testbed/check-fixtures.sh [name...]
# Checks:
#   (a) psql without a password is refused; with PGPASSWORD it works
#   (b) pg_dumpall via `docker exec C sh -c '...'` with the password from the container's own env
#       (POSTGRES_PASSWORD or the POSTGRES_PASSWORD_FILE file), never via `docker exec -e`
#   (c) mariadb-dump the same way with MYSQL_PWD (password kept out of the process arguments)
#   (d) `mariadb -uroot` without a password is refused
#   wrong-password.yml: (b) and (c) must FAIL with an authentication error.
# COMPOSE overrides the compose command (default docker-compose, v1.29 on Debian).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
fixtures="$REPO_ROOT/IntegrationTests/Fixtures"
export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"
export STACKVAULT_TEST_POSTGRES_IMAGE STACKVAULT_TEST_MARIADB_IMAGE STACKVAULT_TEST_BUSYBOX_IMAGE
read -r -a compose_cmd <<<"${COMPOSE:-docker-compose}"

# The commands a backup runs inside the database containers (see the report in the PR).
PG_DUMP='PGPASSWORD="${POSTGRES_PASSWORD:-$(cat "$POSTGRES_PASSWORD_FILE" 2>/dev/null)}" exec pg_dumpall -U "${POSTGRES_USER:-postgres}"'
MARIADB_DUMP='MYSQL_PWD="${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-$(cat "${MARIADB_ROOT_PASSWORD_FILE:-${MYSQL_ROOT_PASSWORD_FILE:-/dev/null}}")}}" exec mariadb-dump -uroot --all-databases --single-transaction --routines --events --triggers'

proj=""
compose() { "${compose_cmd[@]}" -p "$proj" -f "$fixtures/$file" "$@"; }
teardown() { [ -z "$proj" ] || compose down -v --remove-orphans >/dev/null 2>&1 || true; }
trap teardown EXIT
fail() { tb_log "FAIL [$file]: $*"; exit 1; }
ok() { tb_log "ok   [$file]: $*"; }
cid() {
  local id; id="$(docker ps -aq --filter "label=com.docker.compose.project=$proj" --filter "label=com.docker.compose.service=$1")"
  [ -n "$id" ] || fail "no container for service $1"; echo "$id"
}
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# wait_until CONTAINER WHAT CMD...: polls CMD (run with docker exec) for up to 90 s.
wait_until() {
  local c="$1" what="$2"; shift 2
  local t0="$EPOCHREALTIME"
  until docker exec "$c" "$@" >/dev/null 2>&1; do
    [ "$(docker inspect -f '{{.State.Running}}' "$c")" = true ] || { docker logs --tail 30 "$c" >&2; fail "$what: container exited"; }
    awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { exit !(b - a > 90) }' && { docker logs --tail 30 "$c" >&2; fail "$what: not ready after 90 s"; }
    sleep 0.2
  done
}
# Ready checks. pg_isready needs no password; the image's init server uses a private socket, so
# "ready" on /var/run/postgresql means the final server. `mariadb-admin ping` exits 0 even when
# access is denied (server alive), so it works without (or with a wrong) password too.
wait_pg()      { wait_until "$1" "postgres $1" pg_isready -q -h /var/run/postgresql; }
wait_mariadb() { wait_until "$1" "mariadb $1" mariadb-admin ping --silent; }

up() {  # up FILE NAME: docker-compose up -d, prints the time it took
  file="$1"; proj="svtest_check_$2"
  teardown
  local t0="$EPOCHREALTIME"
  compose up -d >/dev/null 2>"$TESTBED_DIR/compose-$2.log" || { cat "$TESTBED_DIR/compose-$2.log" >&2; fail "up -d failed"; }
  T_UP="$EPOCHREALTIME"
  ok "up -d took $(since "$t0") s"
}
down() { local t0="$EPOCHREALTIME"; compose down -v --remove-orphans >/dev/null 2>&1; ok "down -v took $(since "$t0") s"; proj=""; }

check_pg_auth() {  # (a)
  local c="$1" user="$2" db="$3" pw="$4"
  if docker exec "$c" psql -w -U "$user" -d "$db" -tAc 'select 1' >/dev/null 2>&1; then fail "(a) psql without password was accepted"; fi
  [ "$(docker exec -e PGPASSWORD="$pw" "$c" psql -w -U "$user" -d "$db" -tAc 'select count(*) from stackvault_seed')" = 3 ] \
    || fail "(a) psql with PGPASSWORD failed"
  ok "(a) psql -U $user $db: refused without password, works with PGPASSWORD"
}
check_pg_dump() {  # (b)
  local c="$1" out; out="$(docker exec "$c" sh -c "$PG_DUMP")" || fail "(b) pg_dumpall failed"
  grep -q 'gamma ünïcode' <<<"$out" || fail "(b) dump lacks the seed data"
  ok "(b) pg_dumpall via sh -c with the container's own env: $(wc -c <<<"$out") bytes, seed data present"
}
check_mariadb() {  # (c) and (d)
  local c="$1" out
  out="$(docker exec "$c" sh -c "$MARIADB_DUMP")" || fail "(c) mariadb-dump failed"
  grep -q 'gamma ünïcode' <<<"$out" || fail "(c) dump lacks the seed data"
  ok "(c) mariadb-dump with MYSQL_PWD: $(wc -c <<<"$out") bytes, seed data present"
  if docker exec "$c" mariadb -uroot -e 'select 1' >/dev/null 2>&1; then fail "(d) mariadb -uroot without password accepted"; fi
  if docker exec "$c" mariadb -uroot -h127.0.0.1 -e 'select 1' >/dev/null 2>&1; then fail "(d) mariadb -uroot over TCP without password accepted"; fi
  ok "(d) mariadb -uroot without password refused (socket and TCP)"
}

fixture_full_stack() {
  up full-stack.yml full
  local db mdb files web
  db="$(cid db)"; mdb="$(cid mariadb)"; files="$(cid files)"; web="$(cid web)"
  wait_pg "$db"; ok "postgres ready $(since "$T_UP") s after up -d"
  wait_mariadb "$mdb"; ok "mariadb ready $(since "$T_UP") s after up -d"
  check_pg_auth "$db" app appdb app-secret-pw
  check_pg_dump "$db"
  docker exec -e MYSQL_PWD=shopper-secret-pw "$mdb" mariadb -ushopper shop -e 'select count(*) from stackvault_seed' >/dev/null \
    || fail "shopper cannot read shop"
  check_mariadb "$mdb"
  docker exec "$files" sh -c 'echo hello >/data/hello.txt && mkdir -p /config/sub && echo x >/config/sub/app.conf' \
    || fail "cannot write to the files volumes"
  [ "$(docker inspect -f '{{len .Config.Labels}}' "$web")" -gt 0 ] && \
    docker inspect -f '{{range $k, $v := .Config.Labels}}{{$k}}{{"\n"}}{{end}}' "$web" | grep -q '^backup\.' && fail "web has backup labels"
  ok "files volumes writable; web carries no backup.* label"
  down
}

fixture_mixed() {
  up mixed.yml mixed
  local db; db="$(cid db)"
  wait_pg "$db"; ok "postgres ready $(since "$T_UP") s after up -d"
  check_pg_dump "$db"
  docker inspect -f '{{range .Mounts}}{{.Name}}={{.Destination}}{{"\n"}}{{end}}' "$db" | grep -q "^${proj}_pgdata=/var/lib/postgresql/data$" \
    || fail "pgdata volume not mounted at /var/lib/postgresql/data"
  ok "named volume ${proj}_pgdata at /var/lib/postgresql/data"
  down
}

fixture_bad_label() {
  up bad-label.yml badlabel
  local c; c="$(cid files)"
  docker inspect -f '{{index .Config.Labels "backup.volume-path.bad name!"}}|{{index .Config.Labels "backup.volume-path.data"}}|{{index .Config.Labels "backup.volume-path.up"}}|{{index .Config.Labels "backup.frobnicate"}}' "$c" \
    | grep -qx '/data|relative/path|/data/../etc|yes' || fail "labels did not arrive verbatim"
  ok "all four bad/unknown labels arrive verbatim on the container"
  down
}

fixture_nothing() {
  up nothing.yml nothing
  local n; n="$(docker ps -q --filter "label=com.docker.compose.project=$proj" | wc -l)"
  [ "$n" = 3 ] || fail "expected 3 running containers, got $n"
  ok "3 containers running, none enabled for backup"
  down
}

fixture_pg_file_secret() {
  up pg-file-secret.yml pgfile
  local db; db="$(cid db)"
  wait_pg "$db"; ok "postgres ready $(since "$T_UP") s after up -d"
  docker exec "$db" sh -c '[ -z "${POSTGRES_PASSWORD:-}" ] && [ -r "$POSTGRES_PASSWORD_FILE" ]' || fail "env not as intended"
  check_pg_auth "$db" app appdb "$(tr -d '\n' <"$fixtures/secrets/pg_password.txt")"
  check_pg_dump "$db"
  down
}

fixture_wrong_password() {
  up wrong-password.yml wrongpw
  local db mdb out
  db="$(cid db)"; mdb="$(cid mariadb)"
  wait_pg "$db"; ok "postgres ready $(since "$T_UP") s after up -d"
  wait_mariadb "$mdb"; ok "mariadb ready $(since "$T_UP") s after up -d"
  if out="$(docker exec "$db" sh -c "$PG_DUMP" 2>&1)"; then fail "pg_dumpall with the stale password succeeded"; fi
  grep -q 'password authentication failed' <<<"$out" || fail "pg_dumpall failed differently: $out"
  docker exec -e PGPASSWORD=rotated-pg-pw "$db" pg_dumpall -w -U app >/dev/null || fail "rotated password does not work"
  ok "pg_dumpall with env password fails: ${out##*: }"
  if out="$(docker exec "$mdb" sh -c "$MARIADB_DUMP" 2>&1)"; then fail "mariadb-dump with the stale password succeeded"; fi
  grep -q 'Access denied' <<<"$out" || fail "mariadb-dump failed differently: $out"
  docker exec -e MYSQL_PWD=rotated-root-pw "$mdb" mariadb -uroot -e 'select 1' >/dev/null || fail "rotated password does not work"
  ok "mariadb-dump with env password fails: $out"
  down
}

all=(full_stack mixed bad_label nothing pg_file_secret wrong_password)
[ "$#" -gt 0 ] && all=("${@//-/_}")
t_all="$EPOCHREALTIME"
for f in "${all[@]}"; do "fixture_$f"; done
tb_log "all fixture checks passed in $(since "$t_all") s"
