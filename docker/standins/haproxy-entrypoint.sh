#!/bin/sh
# The official haproxy image's entrypoint, as the stand-in needs it: options
# alone run haproxy with them; haproxy runs in master-worker mode (-W) in the
# foreground (-db), so `docker stop`'s SIGUSR1 reaches it and it finishes
# its connections.
set -eu
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then set -- haproxy "$@"; fi
if [ "$1" = haproxy ]; then
  shift
  set -- haproxy -W -db "$@"
fi
exec "$@"
