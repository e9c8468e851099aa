#!/bin/sh
# What can be checked of docker/ on a machine without a container registry
# (README "Running more than one node" says what this proves and what not).
# From the repository root:
#   sh docker/verify.sh            static checks: shell scripts, HAProxy config, both compose files
#   sh docker/verify.sh --build    also builds both images on the local base image
#                                  (docker/make-base-image.sh first) and starts the agent image
#   sh docker/verify.sh --up       the static checks, then the cluster for real: local base image
#                                  and stand-ins (made if missing), both Kapitan images built by
#                                  compose, `up` of compose.cluster.yml unchanged, an admin, a
#                                  project, the agent container online through HAProxy, a run,
#                                  one replica killed, the agent back through the other, a second
#                                  run; `down -v` at the end, whatever happened. Needs
#                                  `docker compose` (v2), Debian's mirror and the npm registry,
#                                  several minutes, and no kapitan-cluster stack on this engine.
#                                  Ports: KAPITAN_PORT (8080) and KAPITAN_HTTPS_PORT (8443).
set -eu
MODE="${1:-static}"
case "$MODE" in
  static | --build | --up) ;;
  *) echo "usage: sh docker/verify.sh [--build | --up]" >&2; exit 2 ;;
esac
TMP=$(mktemp -d /tmp/kapitan-docker-verify.XXXXXX)
CLUSTER=docker/compose.cluster.yml
STEP="static checks"
CHECKS=0
MADE_CERT=0
STACK=0

summary() {
  rc=$?
  trap - EXIT
  set +e
  if [ "$STACK" = 1 ]; then
    [ "$rc" = 0 ] || { echo "== logs of the failed run (last 40 lines a service)"; docker compose -f "$CLUSTER" --profile agent logs --no-color --tail 40; }
    echo "== docker compose down -v"
    docker compose -f "$CLUSTER" --profile agent down -v --remove-orphans --timeout 20
  fi
  [ "$MADE_CERT" = 0 ] || { rm -f docker/certs/kapitan.pem; rmdir docker/certs 2>/dev/null; }
  rm -rf "$TMP"
  if [ "$rc" = 0 ]; then echo "PASS: docker/ verified ($MODE, $CHECKS checks)"; else echo "FAIL: $STEP (after $CHECKS checks passed)" >&2; fi
  exit "$rc"
}
trap summary EXIT
trap 'exit 130' INT TERM
ok() {
  CHECKS=$((CHECKS + 1))
  echo "ok: $*"
}
step() {
  STEP=$*
  echo "== $*"
}

step "shellcheck of the shell scripts"
shellcheck docker/*.sh docker/standins/*.sh
ok "shellcheck"

step "haproxy -c of docker/haproxy.cfg (a throwaway self-signed certificate in place of the mounted one)"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -days 1 -subj /CN=localhost 2>/dev/null
cat "$TMP/cert.pem" "$TMP/key.pem" > "$TMP/kapitan.pem"
sed "s|/certs/kapitan.pem|$TMP/kapitan.pem|" docker/haproxy.cfg > "$TMP/haproxy.cfg"
# server-a and server-b resolve only on the compose network: those two warnings are expected here.
haproxy -c -f "$TMP/haproxy.cfg"
ok "haproxy.cfg"

step "compose files"
export JWT_SECRET=0123456789abcdef0123456789abcdef KAPITAN_SECRETS_KEY=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= MARIADB_PASSWORD=verify
for f in docker/compose.yml "$CLUSTER"; do
  if docker compose version >/dev/null 2>&1; then
    docker compose -f "$f" --profile agent config --quiet
  elif [ "$MODE" != --up ] && command -v docker-compose >/dev/null; then
    # docker-compose 1.x knows the Compose spec but not its top-level `name`: checked without that line.
    sed '/^name: /d' "$f" > "docker/.verify-$(basename "$f")"
    docker-compose -f "docker/.verify-$(basename "$f")" --profile agent config --quiet || { rm -f "docker/.verify-$(basename "$f")"; exit 1; }
    rm -f "docker/.verify-$(basename "$f")"
  else
    echo "no 'docker compose' (v2; --up needs it, the other modes take docker-compose 1.x too): compose files not checked" >&2
    exit 1
  fi
  ok "$f valid"
done

if [ "$MODE" = --build ]; then
  step "docker build of both images (classic builder: BuildKit would fetch its frontend from a registry)"
  DOCKER_BUILDKIT=0 docker build -q -f docker/Dockerfile -t kapitan-server:verify .
  DOCKER_BUILDKIT=0 docker build -q -f docker/Dockerfile.agent -t kapitan-agent:verify .
  step "the images run as their unprivileged user and start"
  docker run --rm --entrypoint id kapitan-agent:verify
  docker run --rm --entrypoint node kapitan-agent:verify /opt/kapitan-agent/kapitan-agent.cjs --version
  # Without a server URL the entrypoint refuses, naming the variable.
  if docker run --rm kapitan-agent:verify 2>"$TMP/agent.err"; then echo "the agent started without KAPITAN_SERVER_URL" >&2; exit 1; fi
  grep -q KAPITAN_SERVER_URL "$TMP/agent.err"
  docker run --rm --entrypoint id kapitan-server:verify
  ok "both images build and start"
fi
[ "$MODE" = --up ] || exit 0

# ---------------------------------------------------------------- --up
PORT="${KAPITAN_PORT:-8080}"
HTTPS_PORT="${KAPITAN_HTTPS_PORT:-8443}"
HTTP="http://127.0.0.1:$PORT"
HTTPS="https://127.0.0.1:$HTTPS_PORT"
export KAPITAN_PORT="$PORT" KAPITAN_HTTPS_PORT="$HTTPS_PORT" KAPITAN_PUBLIC_URL="http://localhost:$PORT"
JWT_SECRET=$(openssl rand -hex 32)
KAPITAN_SECRETS_KEY=$(openssl rand -base64 32)
MARIADB_PASSWORD=$(openssl rand -hex 16)
export JWT_SECRET KAPITAN_SECRETS_KEY MARIADB_PASSWORD

step "no kapitan-cluster stack on this engine (down -v at the end would delete its volumes)"
if [ -n "$(docker ps -aq --filter label=com.docker.compose.project=kapitan-cluster)" ] \
  || [ -n "$(docker volume ls -q --filter label=com.docker.compose.project=kapitan-cluster)" ]; then
  echo "a kapitan-cluster stack (containers or volumes) exists here: not touched; remove it first" >&2
  exit 1
fi
ok "no stack in the way"

step "images: the local base and the stand-ins (made when missing), both Kapitan images built by compose"
docker image inspect node:24-bookworm-slim >/dev/null 2>&1 || sh docker/make-base-image.sh
sh docker/make-standin-images.sh
# compose.cluster.yml's own build sections, one image at a time (each is an npm ci and a build);
# the classic builder (see make-base-image.sh).
DOCKER_BUILDKIT=0 docker compose -f "$CLUSTER" build server-a
DOCKER_BUILDKIT=0 docker compose -f "$CLUSTER" --profile agent build agent
for image in $(docker compose -f "$CLUSTER" --profile agent config --images | sort -u); do
  docker image inspect "$image" >/dev/null
done
ok "every image the cluster names is here: $(docker compose -f "$CLUSTER" --profile agent config --images | sort -u | tr '\n' ' ')"

step "a throwaway self-signed certificate for HAProxy (docker/certs/kapitan.pem, unless one is there)"
if [ -e docker/certs/kapitan.pem ]; then
  echo "docker/certs/kapitan.pem exists: used as it is"
  cp docker/certs/kapitan.pem "$TMP/served.pem"
else
  mkdir -p docker/certs
  MADE_CERT=1
  cp "$TMP/kapitan.pem" docker/certs/kapitan.pem
  cp "$TMP/cert.pem" "$TMP/served.pem"
fi

step "docker compose up of compose.cluster.yml, until every service with a health check is healthy"
STACK=1
docker compose -f "$CLUSTER" up -d --wait --wait-timeout 300
docker compose -f "$CLUSTER" ps
for service in mariadb redis server-a server-b; do
  health=$(docker inspect -f '{{.State.Health.Status}}' "$(docker compose -f "$CLUSTER" ps -q "$service")")
  [ "$health" = healthy ] || { echo "$service is $health" >&2; exit 1; }
  ok "$service healthy"
done
[ "$(docker inspect -f '{{.State.Status}}' "$(docker compose -f "$CLUSTER" ps -q haproxy)")" = running ]
ok "haproxy running"

# A JSON field of a file (a.b.0.c), or exit 1 when it is missing.
field() {
  node -e '
    const v = process.argv[2].split(".").reduce((o, k) => (o == null ? undefined : o[k]), JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")));
    if (v === undefined || v === null) process.exit(1);
    console.log(typeof v === "string" ? v : JSON.stringify(v));' "$1" "$2"
}
# call METHOD URL [JSON]: the body in $TMP/body, the status on stdout. Through the balancer only.
TOKEN=
call() {
  method=$1 url=$2 body=${3:-}
  set -- -sS -k --max-time 30 -o "$TMP/body" -w '%{http_code}' -X "$method" -H 'accept: application/json'
  [ -z "$TOKEN" ] || set -- "$@" -H "authorization: Bearer $TOKEN"
  [ -z "$body" ] || set -- "$@" -H 'content-type: application/json' --data "$body"
  curl "$@" "$url"
}
expect() {
  want=$1
  shift
  got=$(call "$@")
  [ "$got" = "$want" ] || { echo "$1 $2 → $got, expected $want: $(head -c 500 "$TMP/body")" >&2; exit 1; }
}
# wait_for SECONDS WHAT COMMAND...: the command until it succeeds, or fail once the deadline passes.
wait_for() {
  deadline=$(($(date +%s) + $1))
  what=$2
  shift 2
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "not within the deadline: $what" >&2; return 1; }
    sleep 1
  done
}
db() {
  docker compose -f "$CLUSTER" exec -T -e MYSQL_PWD="$MARIADB_PASSWORD" mariadb mariadb -ukapitan -N -B kapitan -e "$1"
}

step "GET /api/health/live through HAProxy, on :$PORT and on :$HTTPS_PORT (TLS), and on each replica"
for url in "$HTTP" "$HTTPS"; do
  for _ in 1 2 3 4; do expect 200 GET "$url/api/health/live"; done
  ok "$url/api/health/live 200 (4 times)"
done
served=$(openssl s_client -connect "127.0.0.1:$HTTPS_PORT" </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256)
[ "$served" = "$(openssl x509 -in "$TMP/served.pem" -noout -fingerprint -sha256)" ]
ok "HAProxy serves the mounted certificate on :$HTTPS_PORT"
for service in server-a server-b; do
  docker compose -f "$CLUSTER" exec -T "$service" node -e '
    (async () => {
      const live = await fetch("http://127.0.0.1:8080/api/health/live");
      const ready = await (await fetch("http://127.0.0.1:8080/api/health")).json();
      console.log(process.env.KAPITAN_NODE_ID, "live", live.status, "ready", JSON.stringify(ready));
      process.exit(live.status === 200 && ready.database === "up" && ready.databaseType === "mysql" ? 0 : 1);
    })().catch((e) => { console.error(e); process.exit(1); });'
  ok "$service: /api/health/live 200, /api/health database up (mysql)"
done

step "round robin: requests through HAProxy reach both replicas (request ids in each one's log)"
RUN_ID=$(openssl rand -hex 4)
for i in 1 2 3 4 5 6; do
  got=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -H "x-request-id: verify-rr-$RUN_ID-$i" "$HTTP/api/me")
  [ "$got" = 401 ] || { echo "GET /api/me without a token → $got" >&2; exit 1; }
done
served_by() { docker compose -f "$CLUSTER" logs --no-color "$1" | grep -c "verify-rr-$RUN_ID-" || true; }
all_six_logged() { [ $(($(served_by server-a) + $(served_by server-b))) -ge 6 ]; }
wait_for 20 "the six requests in the replicas' logs" all_six_logged
a=$(served_by server-a)
b=$(served_by server-b)
[ "$a" -ge 1 ] && [ "$b" -ge 1 ]
ok "6 requests: server-a logged $a, server-b logged $b"

step "the first admin, a project and an enrolment token (through HAProxy, TLS)"
expect 201 POST "$HTTPS/api/auth/signup" '{"email":"admin@example.com","password":"verify-'"$RUN_ID"'-password","name":"Admin"}'
[ "$(field "$TMP/body" user.isAdmin)" = true ]
TOKEN=$(field "$TMP/body" accessToken)
ok "signed up the first admin"
expect 201 POST "$HTTPS/api/projects" '{"name":"verify"}'
PROJECT=$(field "$TMP/body" id)
expect 201 POST "$HTTPS/api/projects/$PROJECT/enrolment-tokens" '{}'
ENROL_TOKEN=$(field "$TMP/body" token)
ok "project $PROJECT and an enrolment token"

step "the agent container (profile agent) enrols through HAProxy and comes online"
KAPITAN_AGENT_ENROL_TOKEN=$ENROL_TOKEN DOCKER_GID=$(stat -c %g /var/run/docker.sock) \
  docker compose -f "$CLUSTER" --profile agent up -d --no-build agent
machine_online() {
  [ "$(call GET "$HTTP/api/projects/$PROJECT/machines")" = 200 ] || return 1
  MACHINE=$(field "$TMP/body" 0.id) || return 1
  [ "$(field "$TMP/body" 0.status)" = online ]
}
wait_for 90 "the agent's machine online" machine_online
ok "machine $MACHINE online"
expect 200 GET "$HTTP/api/machines/$MACHINE/docker"
[ "$(field "$TMP/body" available)" = true ]
ok "its agent drives this host's Docker engine through the mounted socket (engine $(field "$TMP/body" engineVersion))"
HOLDER=$(db "SELECT nodeId FROM machines WHERE id = '$MACHINE'")
case "$HOLDER" in
  server-a) OTHER=server-b ;;
  server-b) OTHER=server-a ;;
  *) echo "the machine is held by '$HOLDER', not server-a or server-b" >&2; exit 1 ;;
esac
ok "its socket is on $HOLDER"

# run N: a script on the machine, until it has succeeded and its log says so.
run() {
  # $(hostname) and $(id -un) are the script's, run by the agent.
  # shellcheck disable=SC2016
  expect 201 POST "$HTTP/api/projects/$PROJECT/executions" \
    '{"script":"#!/bin/sh\necho \"verify run '"$1"' on $(hostname) as $(id -un)\"","targets":{"machineIds":["'"$MACHINE"'"]}}'
  execution=$(field "$TMP/body" executions.0.id)
  finished() {
    [ "$(call GET "$HTTP/api/executions/$execution")" = 200 ] || return 1
    case "$(field "$TMP/body" status)" in queued | dispatched | running) return 1 ;; esac
  }
  wait_for 60 "run $1 to finish" finished
  [ "$(field "$TMP/body" status)" = succeeded ] || { echo "run $1: $(cat "$TMP/body")" >&2; exit 1; }
  log=$(curl -sS --max-time 10 -H "authorization: Bearer $TOKEN" -H 'accept: text/plain' "$HTTP/api/executions/$execution/log")
  case "$log" in *"verify run $1 on "*) ;; *) echo "run $1's log: $log" >&2; exit 1 ;; esac
  ok "run $1 succeeded; its log: $log"
}
step "a run on the machine"
run 1

step "docker kill of $HOLDER (SIGKILL, no drain): the agent comes back online through $OTHER"
docker kill "$(docker compose -f "$CLUSTER" ps -q "$HOLDER")" >/dev/null
held_by_other() {
  [ "$(db "SELECT CONCAT(status, ' ', IFNULL(nodeId, '-')) FROM machines WHERE id = '$MACHINE'")" = "online $OTHER" ]
}
wait_for 90 "the machine online on $OTHER" held_by_other
machine_online
ok "machine $MACHINE online again, its socket on $OTHER"
for _ in 1 2 3 4; do expect 200 GET "$HTTP/api/health/live"; done
ok "/api/health/live 200 through HAProxy with $HOLDER gone (4 times)"
run 2
