#!/bin/sh
# What can be checked of docker/ on a machine without a container registry
# (README "Running more than one node" says what this proves and what not).
# From the repository root:
#   sh docker/verify.sh            static checks: entrypoint, HAProxy config, both compose files
#   sh docker/verify.sh --build    also builds both images on the local base image
#                                  (docker/make-base-image.sh first) and starts the agent image
set -eu
BUILD=0
[ "${1:-}" = "--build" ] && BUILD=1
TMP=$(mktemp -d /tmp/kapitan-docker-verify.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

echo "== shellcheck of the shell scripts"
shellcheck docker/agent-entrypoint.sh docker/make-base-image.sh docker/verify.sh

echo "== haproxy -c of docker/haproxy.cfg (a throwaway self-signed certificate in place of the mounted one)"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -days 1 -subj /CN=localhost 2>/dev/null
cat "$TMP/cert.pem" "$TMP/key.pem" > "$TMP/kapitan.pem"
sed "s|/certs/kapitan.pem|$TMP/kapitan.pem|" docker/haproxy.cfg > "$TMP/haproxy.cfg"
# server-a and server-b resolve only on the compose network: those two warnings are expected here.
haproxy -c -f "$TMP/haproxy.cfg"

echo "== compose files"
export JWT_SECRET=0123456789abcdef0123456789abcdef KAPITAN_SECRETS_KEY=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= MARIADB_PASSWORD=verify
for f in docker/compose.yml docker/compose.cluster.yml; do
  if docker compose version >/dev/null 2>&1; then
    docker compose -f "$f" --profile agent config --quiet
  elif command -v docker-compose >/dev/null; then
    # docker-compose 1.x knows the Compose spec but not its top-level `name`: checked without that line.
    sed '/^name: /d' "$f" > "docker/.verify-$(basename "$f")"
    docker-compose -f "docker/.verify-$(basename "$f")" --profile agent config --quiet || { rm -f "docker/.verify-$(basename "$f")"; exit 1; }
    rm -f "docker/.verify-$(basename "$f")"
  else
    echo "neither 'docker compose' nor docker-compose: compose files not checked" >&2
    exit 1
  fi
  echo "$f: valid"
done

[ "$BUILD" = 1 ] || exit 0
echo "== docker build of both images (classic builder: BuildKit would fetch its frontend from a registry)"
DOCKER_BUILDKIT=0 docker build -q -f docker/Dockerfile -t kapitan-server:verify .
DOCKER_BUILDKIT=0 docker build -q -f docker/Dockerfile.agent -t kapitan-agent:verify .
echo "== the images run as their unprivileged user and start"
docker run --rm --entrypoint id kapitan-agent:verify
docker run --rm --entrypoint node kapitan-agent:verify /opt/kapitan-agent/kapitan-agent.cjs --version
# Without a server URL the entrypoint refuses, naming the variable.
if docker run --rm kapitan-agent:verify 2>"$TMP/agent.err"; then echo "the agent started without KAPITAN_SERVER_URL" >&2; exit 1; fi
grep -q KAPITAN_SERVER_URL "$TMP/agent.err"
docker run --rm --entrypoint id kapitan-server:verify
echo "docker/: verified"
