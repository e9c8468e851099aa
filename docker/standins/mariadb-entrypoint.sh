#!/bin/sh
# The official mariadb image's entrypoint, as far as docker/compose*.yml use
# it: options alone run mariadbd with them; on the first start (an empty
# /var/lib/mysql) it creates the system tables, the root password
# (MARIADB_ROOT_PASSWORD, or MARIADB_RANDOM_ROOT_PASSWORD=1: printed once),
# MARIADB_DATABASE, MARIADB_USER with MARIADB_PASSWORD and every right on
# that database, and the healthcheck user healthcheck.sh logs in as. Any
# other MARIADB_* setting is refused by name rather than silently ignored.
# Until all that is done the server listens on its socket only, so a TCP
# health check (healthcheck.sh --connect) fails, as with the official image.
set -eu
DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then set -- mariadbd "$@"; fi
case "$1" in
  mariadbd | mysqld) shift ;;
  *) exec "$@" ;;
esac

die() {
  echo "mariadb stand-in: $*" >&2
  exit 1
}
# A value inside '...' in SQL: backslashes and quotes escaped.
sql_string() { printf "'%s'" "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g")"; }
# A name inside `...` (the backticks are SQL's quotes, not the shell's).
# shellcheck disable=SC2016
sql_name() { printf '`%s`' "$(printf '%s' "$1" | sed -e 's/`/``/g')"; }
random_password() { tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32; }

initialise() {
  for name in $(env | sed -n 's/^\(MARIADB_[A-Za-z0-9_]*\)=.*/\1/p'); do
    case "$name" in
      MARIADB_DATABASE | MARIADB_USER | MARIADB_PASSWORD | MARIADB_ROOT_PASSWORD | MARIADB_RANDOM_ROOT_PASSWORD) ;;
      *) die "$name is not supported by this stand-in (only MARIADB_DATABASE, MARIADB_USER, MARIADB_PASSWORD, MARIADB_ROOT_PASSWORD, MARIADB_RANDOM_ROOT_PASSWORD)" ;;
    esac
  done
  if [ -n "${MARIADB_ROOT_PASSWORD:-}" ]; then
    [ -z "${MARIADB_RANDOM_ROOT_PASSWORD:-}" ] || die "set MARIADB_ROOT_PASSWORD or MARIADB_RANDOM_ROOT_PASSWORD, not both"
    root_password=$MARIADB_ROOT_PASSWORD
  elif [ -n "${MARIADB_RANDOM_ROOT_PASSWORD:-}" ]; then
    root_password=$(random_password)
  else
    die "the database is uninitialised: set MARIADB_ROOT_PASSWORD or MARIADB_RANDOM_ROOT_PASSWORD"
  fi
  if [ -n "${MARIADB_USER:-}" ]; then
    [ "$MARIADB_USER" != root ] || die "MARIADB_USER=root: root is created anyway; name another user"
    [ -n "${MARIADB_PASSWORD:-}" ] || die "MARIADB_USER is set without MARIADB_PASSWORD"
  elif [ -n "${MARIADB_PASSWORD:-}" ]; then
    die "MARIADB_PASSWORD is set without MARIADB_USER"
  fi

  mariadb-install-db --user=mysql --datadir="$DATADIR" --auth-root-authentication-method=normal \
    --skip-test-db "$@" >/dev/null
  mariadbd --user=mysql --datadir="$DATADIR" --skip-networking --socket="$SOCKET" "$@" &
  pid=$!
  tries=0
  until mariadb --no-defaults --protocol=socket --socket="$SOCKET" -uroot -e 'SELECT 1' >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || die "the server exited while being initialised"
    tries=$((tries + 1))
    [ "$tries" -le 600 ] || die "the server did not answer on its socket within 60 s"
    sleep 0.1
  done

  health_password=$(random_password)
  # printf, not echo: dash's echo would undo the backslashes sql_string doubled.
  {
    printf '%s\n' "SET @@SESSION.SQL_LOG_BIN=0;"
    # Only root@localhost, root@'%' and the users below: no anonymous user, no root by host name.
    printf '%s\n' "DROP USER IF EXISTS root@'127.0.0.1', root@'::1', ''@localhost;"
    printf '%s\n' "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@''', @@hostname, '''');"
    printf '%s\n' "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS ''''@''', @@hostname, '''');"
    printf '%s\n' "ALTER USER root@localhost IDENTIFIED BY $(sql_string "$root_password");"
    printf '%s\n' "CREATE USER root@'%' IDENTIFIED BY $(sql_string "$root_password");"
    printf '%s\n' "GRANT ALL ON *.* TO root@'%' WITH GRANT OPTION;"
    for host in localhost 127.0.0.1 ::1; do
      printf '%s\n' "CREATE USER healthcheck@'$host' IDENTIFIED BY '$health_password';"
    done
    if [ -n "${MARIADB_DATABASE:-}" ]; then
      printf '%s\n' "CREATE DATABASE IF NOT EXISTS $(sql_name "$MARIADB_DATABASE");"
    fi
    if [ -n "${MARIADB_USER:-}" ]; then
      printf '%s\n' "CREATE USER $(sql_string "$MARIADB_USER")@'%' IDENTIFIED BY $(sql_string "$MARIADB_PASSWORD");"
      if [ -n "${MARIADB_DATABASE:-}" ]; then
        printf '%s\n' "GRANT ALL ON $(sql_name "$MARIADB_DATABASE").* TO $(sql_string "$MARIADB_USER")@'%';"
      fi
    fi
  } | mariadb --no-defaults --protocol=socket --socket="$SOCKET" -uroot

  # What healthcheck.sh logs in with, as in the official image.
  umask 077
  printf '[mariadb-client]\nport=3306\nsocket=%s\nuser=healthcheck\npassword=%s\nprotocol=tcp\n' "$SOCKET" "$health_password" \
    >"$DATADIR/.my-healthcheck.cnf"
  chown mysql:mysql "$DATADIR/.my-healthcheck.cnf"
  umask 022
  [ -z "${MARIADB_RANDOM_ROOT_PASSWORD:-}" ] || echo "GENERATED ROOT PASSWORD: $root_password"

  kill -TERM "$pid"
  wait "$pid" || die "the temporary server did not stop cleanly"
  echo "mariadb stand-in: initialised ${MARIADB_DATABASE:+database $MARIADB_DATABASE}${MARIADB_USER:+, user $MARIADB_USER}"
}

mkdir -p /run/mysqld
chown mysql:mysql "$DATADIR" /run/mysqld
if [ ! -d "$DATADIR/mysql" ]; then initialise "$@"; fi
exec mariadbd --user=mysql --datadir="$DATADIR" "$@"
