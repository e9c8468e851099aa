import type { EnrolmentToken } from '@kapitan/shared';
import { CLIENT_PATHS, type ScriptValues } from './install-scripts';

/** README.txt of a bundle: for the client's administrator, who may never have heard of Kapitan. */
export function bundleReadme(v: ScriptValues, token: EnrolmentToken): string {
  return `Kapitan agent ${v.version}
=====================

This folder installs the Kapitan agent, which connects this machine to
${v.serverUrl}
so that the people running that service can deploy to it and supervise it.
The agent only makes outgoing HTTPS connections to that address; it opens no port.

Install (as root, on Linux with systemd):

    sh install.sh

It creates the system user "kapitan", installs the agent in ${CLIENT_PATHS.optDir},
its configuration in ${CLIENT_PATHS.etcDir}, its state in ${CLIENT_PATHS.stateDir},
and starts the service kapitan-agent (systemctl status kapitan-agent;
journalctl -u kapitan-agent -f). Running it again upgrades in place.

What is here:

    kapitan-agent          the agent as one executable (Linux x86_64, no Node needed)
    kapitan-agent.cjs      the same agent as one file for Node >= 20 (other architectures)
    install.sh             installs or upgrades; uninstall.sh removes everything
    kapitan.json           the server's address, the keys it is trusted by, this bundle's version
    ca.pem                 the server's own certificate authority (if it is its own)
    enrolment-token        a one-time credential: it enrols up to ${token.maxUses ?? 'any number of'} machine(s)
                           until ${token.expiresAt ?? 'it is revoked'}; keep it private
    agent-policy.json      an example policy (everything allowed), installed as
                           ${CLIENT_PATHS.policy} only where none exists
    kapitan-agent.service  the systemd unit install.sh installs

What you control: ${CLIENT_PATHS.policy} says what the agent may do here
(scripts, deploys, Docker, or nothing at all with "readOnly": true). The
agent checks it before every action and reports it to the server; the server
cannot change it. The service runs as its own unprivileged user, with a
read-only view of the system except its state directory; it joins the docker
group only if a Docker engine is present (KAPITAN_DOCKER=no at install keeps
it out). Deploys outside ${CLIENT_PATHS.stateDir} need a drop-in naming the directories
(see the comment in kapitan-agent.service).

The agent trusts the server only if it presents a certificate whose key is
one of these (base64 SHA-256 of the SubjectPublicKeyInfo):

${v.pins.map((p) => `    ${p}`).join('\n') || '    (none: the server has a publicly trusted certificate)'}

Remove: sh uninstall.sh (then ask the operator to revoke the machine).
`;
}
