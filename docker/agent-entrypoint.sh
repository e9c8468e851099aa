#!/bin/sh
# The agent image's entrypoint: enrol once (the credential is kept in the
# state volume), then run in the foreground. `exec` so that `docker stop`'s
# SIGTERM reaches the agent itself, which stops its runs cleanly.
set -eu
AGENT="/opt/kapitan-agent/kapitan-agent.cjs"
if ! node "$AGENT" status >/dev/null 2>&1; then
  : "${KAPITAN_SERVER_URL:?set KAPITAN_SERVER_URL (the balancer, e.g. https://kapitan.example.com:8443)}"
  : "${KAPITAN_AGENT_ENROL_TOKEN:?set KAPITAN_AGENT_ENROL_TOKEN (a project enrolment token; only the first start needs it)}"
  node "$AGENT" enrol --server "$KAPITAN_SERVER_URL"
fi
exec node "$AGENT" run
