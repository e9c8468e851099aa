#!/bin/sh
# The official mariadb image's healthcheck.sh, for the two tests
# docker/compose*.yml ask for:
#   --connect              the server answers over TCP (any answer but "can't
#                          connect", an access refusal included, as upstream)
#   --innodb_initialized   InnoDB is up (the healthcheck user's query)
# Any other test is refused (exit 2) rather than passed unchecked.
set -eu
CNF=/var/lib/mysql/.my-healthcheck.cnf
[ "$#" -gt 0 ] || { echo "usage: healthcheck.sh --connect | --innodb_initialized ..." >&2; exit 2; }
for test in "$@"; do
  case "$test" in
    --connect)
      # With the healthcheck user's login once there is one: a refused login would be logged by the server at every check.
      if [ -r "$CNF" ]; then set -- --defaults-extra-file="$CNF"; else set -- --no-defaults -uhealthcheck; fi
      answer=$(mariadb "$@" --protocol=tcp -h 127.0.0.1 -P 3306 -e 'SELECT 1' 2>&1 </dev/null || true)
      case "$answer" in
        *"Can't connect"*) echo "healthcheck: $answer" >&2; exit 1 ;;
      esac
      ;;
    --innodb_initialized)
      [ -r "$CNF" ] || { echo "healthcheck: no $CNF yet (initialising)" >&2; exit 1; }
      ready=$(mariadb --defaults-extra-file="$CNF" -h 127.0.0.1 -N -B \
        -e "SELECT 1 FROM information_schema.ENGINES WHERE engine = 'innodb' AND support IN ('YES', 'DEFAULT', 'ENABLED')")
      [ "$ready" = 1 ] || { echo "healthcheck: InnoDB not initialised" >&2; exit 1; }
      ;;
    *)
      echo "healthcheck.sh (stand-in): $test is not supported" >&2
      exit 2
      ;;
  esac
done
