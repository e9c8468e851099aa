#!/bin/sh
# The official redis image's entrypoint, as the stand-in needs it: options (or
# a config file) alone run redis-server with them, as the redis user, in /data.
# The official image is built with protected mode off (the container's
# network is its fence); Debian's binary has it on, which would refuse every
# client but loopback, so it is turned off here unless the command says.
set -eu
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "$1" = redis-server ]; then
  case " $* " in
    *" --protected-mode "*) ;;
    *) set -- "$@" --protected-mode no ;;
  esac
  if [ "$(id -u)" = 0 ]; then
    chown -R redis:redis /data
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
