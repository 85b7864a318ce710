#!/usr/bin/env bash
# Entrypoint of the test image stackvault-test/postgres:15 (built by scripts/testbed/build-images.sh
# from Debian bookworm's postgresql-15). It follows the contract of the official `postgres` image:
#   POSTGRES_USER (default postgres), POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (required unless
#   POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_DB (default $POSTGRES_USER), PGDATA
#   (default /var/lib/postgresql/data), POSTGRES_INITDB_ARGS, /docker-entrypoint-initdb.d/*.sql,
#   *.sql.gz and *.sh on first start.
# Unlike the official image (which trusts the local socket), the cluster is initialised with
#   initdb --auth-local=scram-sha-256 --auth-host=scram-sha-256
# so a password is required on the unix socket too; a backup that forgot the credentials fails.
# The server listens on /var/run/postgresql and 0.0.0.0:5432 and is exec'ed as PID 1 (as user
# postgres via setpriv, which execs without forking, unlike runuser/su which keep a PAM parent),
# so SIGTERM (smart) / SIGINT (fast, the image's STOPSIGNAL) shut it down cleanly.
set -Eeuo pipefail

# file_env VAR [DEFAULT]: VAR or VAR_FILE (not both), like the official images.
file_env() {
  local var="$1" fileVar="${1}_FILE" def="${2:-}" val
  if [ -n "${!var:-}" ] && [ -n "${!fileVar:-}" ]; then
    echo >&2 "error: both $var and $fileVar are set (but are exclusive)"; exit 1
  fi
  val="$def"
  if [ -n "${!var:-}" ]; then val="${!var}"
  elif [ -n "${!fileVar:-}" ]; then val="$(<"${!fileVar}")"
  fi
  export "$var"="$val"
  unset "$fileVar"
}

if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"

if [ "$1" != 'postgres' ]; then exec "$@"; fi

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"; chmod 3777 /var/run/postgresql
  # Re-exec this script as postgres without an extra parent process.
  export HOME=/var/lib/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups -- "${BASH_SOURCE[0]}" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER postgres
  file_env POSTGRES_DB "$POSTGRES_USER"
  file_env POSTGRES_INITDB_ARGS
  auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
  if [ -z "$POSTGRES_PASSWORD" ] && [ "$auth" != trust ]; then
    echo >&2 "error: database is uninitialized and superuser password is not specified."
    echo >&2 "       Set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (or POSTGRES_HOST_AUTH_METHOD=trust)."
    exit 1
  fi
  echo "entrypoint: initialising $PGDATA (user $POSTGRES_USER, db $POSTGRES_DB)"
  pwargs=() pwfile=""
  if [ -n "$POSTGRES_PASSWORD" ]; then
    pwfile="$(umask 077; mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    pwargs=(--pwfile="$pwfile")
  fi
  # shellcheck disable=SC2086
  initdb --username="$POSTGRES_USER" "${pwargs[@]}" --encoding=UTF8 --locale=C.UTF-8 \
         --auth-local="$auth" --auth-host="$auth" $POSTGRES_INITDB_ARGS >/dev/null
  [ -z "$pwfile" ] || rm -f "$pwfile"
  {
    echo
    echo "host all all all $auth"
  } >>"$PGDATA/pg_hba.conf"
  {
    echo "listen_addresses = '*'"
    echo "unix_socket_directories = '/var/run/postgresql'"
  } >>"$PGDATA/postgresql.conf"

  # Temporary server for POSTGRES_DB and the init scripts: no TCP, and its socket in a private
  # directory, so nothing outside sees a "ready" server before the real one runs (pg_isready on
  # /var/run/postgresql is a reliable readiness check, unlike with the official image).
  initsock="$(mktemp -d)"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories='$initsock'" -w start >/dev/null
  export PGHOST="$initsock" PGPASSWORD="$POSTGRES_PASSWORD"
  psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --no-password)
  if [ "$POSTGRES_DB" != postgres ]; then
    "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" -q <<<'CREATE DATABASE :"db";'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    [ -e "$f" ] || continue
    # shellcheck disable=SC1090
    case "$f" in
      *.sh)     echo "entrypoint: running $f"; . "$f" ;;
      *.sql)    echo "entrypoint: running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -q -f "$f" ;;
      *.sql.gz) echo "entrypoint: running $f"; gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" -q ;;
      *)        echo "entrypoint: ignoring $f" ;;
    esac
  done
  unset PGHOST PGPASSWORD
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  rmdir "$initsock" 2>/dev/null || true
  echo "entrypoint: init done; starting server"
fi

exec "$@"
