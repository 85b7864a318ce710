#!/usr/bin/env bash
# Entrypoint of the test image stackvault-test/mariadb:10.11 (built by
# scripts/testbed/build-images.sh from Debian bookworm's mariadb-server). It follows the contract of
# the official `mariadb` image:
#   MARIADB_ROOT_PASSWORD | MYSQL_ROOT_PASSWORD (+ _FILE), MARIADB_ALLOW_EMPTY_ROOT_PASSWORD,
#   MARIADB_DATABASE | MYSQL_DATABASE, MARIADB_USER | MYSQL_USER, MARIADB_PASSWORD | MYSQL_PASSWORD
#   (+ _FILE), MARIADB_ROOT_HOST (default %), /docker-entrypoint-initdb.d/*.sql on first start.
#   The MARIADB_* name wins over MYSQL_*; a variable and its _FILE variant are exclusive.
# The datadir /var/lib/mysql is initialised only when empty (the image ships it empty). root gets
# a password with normal (password) authentication and NO unix_socket plugin, anonymous users are
# dropped, so `mariadb -uroot` without a password is refused.
# mariadbd is exec'ed as PID 1 (as user mysql via setpriv), so SIGTERM shuts it down cleanly.
set -Eeuo pipefail

# file_env VAR [DEFAULT]: VAR or VAR_FILE (not both).
file_env() {
  local var="$1" fileVar="${1}_FILE" def="${2:-}" val
  if [ -n "${!var:-}" ] && [ -n "${!fileVar:-}" ]; then
    echo >&2 "error: both $var and $fileVar are set (but are exclusive)"; exit 1
  fi
  val="$def"
  if [ -n "${!var:-}" ]; then val="${!var}"
  elif [ -n "${!fileVar:-}" ]; then val="$(<"${!fileVar}")"
  fi
  printf -v "$var" '%s' "$val"
}
# mariadb_env NAME: MARIADB_NAME(_FILE), falling back to MYSQL_NAME(_FILE); result in MARIADB_NAME.
mariadb_env() {
  local mv="MARIADB_$1" yv="MYSQL_$1"
  file_env "$mv"
  if [ -z "${!mv}" ]; then
    file_env "$yv"
    printf -v "$mv" '%s' "${!yv}"
  fi
}
# sql_escape: quote a string for use inside '...'.
sql_escape() { local s="${1//\\/\\\\}"; printf '%s' "${s//\'/\\\'}"; }

if [ "${1:0:1}" = '-' ]; then set -- mariadbd "$@"; fi
case "$1" in mariadbd|mysqld) ;; *) exec "$@" ;; esac

DATADIR=/var/lib/mysql

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$DATADIR" /run/mysqld
  chown mysql:mysql "$DATADIR" /run/mysqld
  export HOME=/var/lib/mysql
  exec setpriv --reuid=mysql --regid=mysql --init-groups -- "${BASH_SOURCE[0]}" "$@"
fi

if [ ! -d "$DATADIR/mysql" ]; then
  for n in ROOT_PASSWORD DATABASE USER PASSWORD; do mariadb_env "$n"; done
  MARIADB_ROOT_HOST="${MARIADB_ROOT_HOST:-${MYSQL_ROOT_HOST:-%}}"
  if [ -z "$MARIADB_ROOT_PASSWORD" ] && [ -z "${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-${MYSQL_ALLOW_EMPTY_PASSWORD:-}}" ]; then
    echo >&2 "error: database is uninitialized and no root password is set."
    echo >&2 "       Set MARIADB_ROOT_PASSWORD (or MYSQL_ROOT_PASSWORD, or a _FILE variant)."
    exit 1
  fi
  echo "entrypoint: initialising $DATADIR"
  mariadb-install-db --datadir="$DATADIR" --auth-root-authentication-method=normal \
    --skip-test-db --skip-name-resolve --skip-log-bin --default-time-zone=SYSTEM \
    --old-mode='UTF8_IS_UTF8MB3' --loose-innodb_buffer_pool_load_at_startup=0 \
    --loose-innodb_buffer_pool_dump_at_shutdown=0 >/dev/null

  rootpw="$(sql_escape "$MARIADB_ROOT_PASSWORD")"
  roothost="$(sql_escape "$MARIADB_ROOT_HOST")"
  # mariadbd --bootstrap reads one statement per line.
  {
    echo "FLUSH PRIVILEGES;"
    echo "DELETE FROM mysql.global_priv WHERE User='' OR (User='root' AND Host NOT IN ('localhost'));"
    echo "DELETE FROM mysql.proxies_priv WHERE User='' OR (User='root' AND Host NOT IN ('localhost'));"
    echo "FLUSH PRIVILEGES;"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('$rootpw');"
    if [ "$MARIADB_ROOT_HOST" != localhost ]; then
      echo "CREATE USER 'root'@'$roothost' IDENTIFIED BY '$rootpw';"
      echo "GRANT ALL ON *.* TO 'root'@'$roothost' WITH GRANT OPTION;"
    fi
    if [ -n "$MARIADB_DATABASE" ]; then
      echo "CREATE DATABASE IF NOT EXISTS \`${MARIADB_DATABASE//\`/\`\`}\`;"
    fi
    if [ -n "$MARIADB_USER" ]; then
      echo "CREATE USER '$(sql_escape "$MARIADB_USER")'@'%' IDENTIFIED BY '$(sql_escape "$MARIADB_PASSWORD")';"
      if [ -n "$MARIADB_DATABASE" ]; then
        echo "GRANT ALL ON \`${MARIADB_DATABASE//\`/\`\`}\`.* TO '$(sql_escape "$MARIADB_USER")'@'%';"
      fi
    fi
    for f in /docker-entrypoint-initdb.d/*.sql; do
      [ -e "$f" ] || continue
      [ -n "$MARIADB_DATABASE" ] && echo "USE \`${MARIADB_DATABASE//\`/\`\`}\`;"
      # Init scripts must also keep one statement per line.
      cat "$f"; echo
    done
    # (GRANT PROXY is refused in bootstrap mode, and any failing statement aborts the bootstrap.)
  } | mariadbd --bootstrap --datadir="$DATADIR" --skip-networking --skip-log-bin \
        --log-warnings=0 --loose-innodb_buffer_pool_dump_at_shutdown=0 \
    || { echo >&2 "error: mariadbd --bootstrap failed (a statement above was refused)"; exit 1; }
  echo "entrypoint: init done; starting server"
fi

exec "$@"
