#!/bin/sh
# Stand-ins for the three images docker/compose*.yml take from a registry
# (mariadb:10.11, redis:7-alpine, haproxy:2.6), for a machine that reaches
# Debian's package mirror but no container registry: Debian bookworm's own
# mariadb-server, redis-server and haproxy on the local base image
# (docker/make-base-image.sh), with small entrypoints doing what the compose
# files use of the official images (docker/standins/). They are tagged with
# the official names so the compose files run unchanged. They are NOT the
# official images and are not for production: on a machine with a registry
# the compose files pull the real ones.
# A tag that already exists and is not one of these stand-ins (an official
# image pulled earlier) is left alone.
# From the repository root, after docker/make-base-image.sh:
#   sh docker/make-standin-images.sh
set -eu
BASE="${KAPITAN_STANDIN_BASE:-node:24-bookworm-slim}"
docker image inspect "$BASE" >/dev/null 2>&1 || { echo "no $BASE image: run sh docker/make-base-image.sh first" >&2; exit 1; }

standin() {
  tag=$1
  file=$2
  if docker image inspect "$tag" >/dev/null 2>&1 \
    && [ "$(docker image inspect -f '{{index .Config.Labels "org.kapitan.standin"}}' "$tag")" != 1 ]; then
    echo "$tag exists and is not a stand-in: kept"
    return 0
  fi
  # The classic builder: BuildKit would fetch its Dockerfile frontend from a registry.
  DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=$BASE" -f "docker/standins/$file" -t "$tag" docker/standins >/dev/null
  echo "built $tag (stand-in: $(docker image inspect -f '{{index .Config.Labels "org.kapitan.standin.for"}}' "$tag"))"
}

standin mariadb:10.11 Dockerfile.mariadb
standin redis:7-alpine Dockerfile.redis
standin haproxy:2.6 Dockerfile.haproxy
