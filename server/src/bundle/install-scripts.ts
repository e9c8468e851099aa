/**
 * The shell scripts and unit a client installs the agent with. One body of
 * install steps serves both ways in: the bundle's install.sh (files beside
 * it) and the one-line install the server serves (files written from the
 * script itself, the agent downloaded and checked against a SHA-256 written
 * in the script). Both are POSIX sh, checked with shellcheck in the tests.
 *
 * Everything interpolated into a script passes `shellQuote` or is
 * validated to a character set that needs none (pins, hex digests, URLs
 * parsed by URL), so no value from the database or the environment can
 * become shell syntax.
 */

/** Where the agent lives on a client machine (prefixed by KAPITAN_INSTALL_ROOT in test mode). */
export const CLIENT_PATHS = {
  optDir: '/opt/kapitan-agent',
  etcDir: '/etc/kapitan',
  stateDir: '/var/lib/kapitan-agent',
  unit: '/etc/systemd/system/kapitan-agent.service',
  policy: '/etc/kapitan/agent-policy.json',
} as const;

export interface ScriptValues {
  serverUrl: string;
  version: string;
  pins: string[];
}

/** Single-quoted for sh: safe for any string without a NUL. */
export function shellQuote(value: string): string {
  if (value.includes('\0')) throw new Error('a shell value cannot hold NUL');
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A here-document whose delimiter the content cannot end early. */
function heredoc(file: string, content: string): string {
  let tag = 'KAPITAN_EOF';
  while (content.split('\n').includes(tag)) tag += '_';
  return `cat > ${file} <<'${tag}'\n${content.endsWith('\n') ? content : `${content}\n`}${tag}`;
}

/** The systemd unit: its own user, restarted on failure except when the server revoked the machine (exit 3). */
export function systemdUnit(v: ScriptValues): string {
  return `[Unit]
Description=Kapitan agent (${v.serverUrl})
Documentation=${v.serverUrl}/
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=kapitan
Group=kapitan
ExecStart=${CLIENT_PATHS.optDir}/kapitan-agent run --state-dir ${CLIENT_PATHS.stateDir}
Environment=KAPITAN_AGENT_STATE_DIR=${CLIENT_PATHS.stateDir}
Environment=KAPITAN_AGENT_POLICY_FILE=${CLIENT_PATHS.policy}
Restart=on-failure
RestartSec=5
# Exit 3: the server revoked this machine; exit 5: the client policy file is
# unsafe or invalid. Restarting cannot help either; the owner must act.
RestartPreventExitStatus=3 5
ExecReload=/bin/kill -HUP $MAINPID
StateDirectory=kapitan-agent
StateDirectoryMode=0700
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryMax=512M
TasksMax=1024
# Deploy directories outside the state directory need a drop-in:
#   /etc/systemd/system/kapitan-agent.service.d/deploy.conf
#   [Service]
#   ReadWritePaths=/opt/app

[Install]
WantedBy=multi-user.target
`;
}

/** The example client policy: everything enabled (see docs: the client narrows it). */
export function examplePolicy(): string {
  return `${JSON.stringify({ scripts: { enabled: true }, deploys: { enabled: true }, docker: { enabled: true }, readOnly: false }, null, 2)}\n`;
}

const HEADER = (v: ScriptValues, what: string) => `#!/bin/sh
# ${what}
# Kapitan agent ${v.version} for ${v.serverUrl}
#
# Run as root. Installs the agent in ${CLIENT_PATHS.optDir}, its configuration in
# ${CLIENT_PATHS.etcDir}, its state in ${CLIENT_PATHS.stateDir}, and the systemd service
# kapitan-agent running as the system user "kapitan". Run again to upgrade in place:
# the enrolment and an existing ${CLIENT_PATHS.policy} are kept.
#
# Test mode: KAPITAN_INSTALL_ROOT=/some/dir lays the same files under that
# directory, as any user, and creates no user and touches no systemd.
# KAPITAN_AGENT_FORM=exe|cjs chooses the agent form (default: the standalone
# executable on Linux x86_64, else the .cjs on Node >= 20).
# KAPITAN_DOCKER=no keeps the agent out of the docker group.
set -eu
`;

/** Shell values both scripts start with. */
function values(v: ScriptValues): string {
  return `KAPITAN_SERVER=${shellQuote(v.serverUrl)}
KAPITAN_VERSION=${shellQuote(v.version)}
KAPITAN_PINS=${shellQuote(v.pins.join('\n'))}
`;
}

/** Paths and helpers common to install and uninstall. */
const COMMON = `root="\${KAPITAN_INSTALL_ROOT:-}"
root="\${root%/}"
say() { printf 'kapitan: %s\\n' "$*" >&2; }
die() { say "$*"; exit 1; }
if [ -n "$root" ]; then
  test_mode=1
  say "test mode: files under $root; no user, no systemd"
else
  test_mode=0
  [ "$(id -u)" = 0 ] || die "run as root (or set KAPITAN_INSTALL_ROOT=/some/dir for a test install)"
fi
opt_dir="$root${CLIENT_PATHS.optDir}"
etc_dir="$root${CLIENT_PATHS.etcDir}"
state_dir="$root${CLIENT_PATHS.stateDir}"
unit_file="$root${CLIENT_PATHS.unit}"
dropin_dir="$unit_file.d"
`;

/**
 * The install steps, as a function of \`$src\`: a directory holding the agent
 * (kapitan-agent and/or kapitan-agent.cjs), enrolment-token, kapitan.json,
 * kapitan-agent.service, agent-policy.json and (if any) ca.pem.
 */
const INSTALL_BODY = `
bin="$opt_dir/kapitan-agent"

node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null)" || return 1
  [ "$major" -ge 20 ] 2>/dev/null
}

choose_form() {
  form="\${KAPITAN_AGENT_FORM:-}"
  if [ -z "$form" ]; then
    if [ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ]; then
      form=exe
    elif node_ok; then
      form=cjs
    else
      die "no agent for this machine: the standalone agent is for Linux x86_64, and the .cjs needs Node >= 20"
    fi
  fi
  case "$form" in
    exe) ;;
    cjs) node_ok || die "KAPITAN_AGENT_FORM=cjs needs Node >= 20 on the PATH" ;;
    *) die "KAPITAN_AGENT_FORM must be exe or cjs, not $form" ;;
  esac
}

# Copy aside, then rename: a running agent keeps its old file until restarted.
put() {
  cp "$1" "$2.new"
  chmod "$3" "$2.new"
  mv -f "$2.new" "$2"
}

install_agent() {
  mkdir -p "$opt_dir" "$etc_dir" "$state_dir" "$(dirname "$unit_file")"
  chmod 0755 "$opt_dir" "$etc_dir"
  chmod 0700 "$state_dir"
  if [ "$form" = exe ]; then
    [ -f "$src/kapitan-agent" ] || die "$src/kapitan-agent is missing"
    put "$src/kapitan-agent" "$bin" 0755
    rm -f "$opt_dir/kapitan-agent.cjs"
  else
    [ -f "$src/kapitan-agent.cjs" ] || die "$src/kapitan-agent.cjs is missing"
    put "$src/kapitan-agent.cjs" "$opt_dir/kapitan-agent.cjs" 0644
    node_bin="$(command -v node)"
    printf '#!/bin/sh\\nexec %s %s "$@"\\n' "'$node_bin'" "'$opt_dir/kapitan-agent.cjs'" > "$bin.new"
    chmod 0755 "$bin.new"
    mv -f "$bin.new" "$bin"
  fi
  put "$src/kapitan.json" "$etc_dir/kapitan.json" 0644
  if [ -f "$src/ca.pem" ]; then
    put "$src/ca.pem" "$etc_dir/ca.pem" 0644
  fi
  # The client's policy is theirs: installed once, never overwritten.
  if [ ! -e "$etc_dir/agent-policy.json" ]; then
    put "$src/agent-policy.json" "$etc_dir/agent-policy.json" 0644
  fi
  put "$src/kapitan-agent.service" "$unit_file" 0644
  if docker_allowed; then
    mkdir -p "$dropin_dir"
    printf '[Service]\\nSupplementaryGroups=docker\\n' > "$dropin_dir/docker.conf.new"
    chmod 0644 "$dropin_dir/docker.conf.new"
    mv -f "$dropin_dir/docker.conf.new" "$dropin_dir/docker.conf"
  else
    rm -f "$dropin_dir/docker.conf"
    rmdir "$dropin_dir" 2>/dev/null || true
  fi
}

# Docker access is root access: the agent joins the docker group only where
# an engine is there to supervise, and the client can refuse it.
docker_allowed() {
  [ "\${KAPITAN_DOCKER:-yes}" != no ] || return 1
  [ -S /var/run/docker.sock ] || return 1
  [ "$test_mode" = 1 ] || getent group docker >/dev/null 2>&1
}

create_user() {
  [ "$test_mode" = 0 ] || return 0
  id kapitan >/dev/null 2>&1 && return 0
  if command -v useradd >/dev/null 2>&1; then
    useradd --system --home-dir "${CLIENT_PATHS.stateDir}" --no-create-home --shell /usr/sbin/nologin kapitan
  elif command -v adduser >/dev/null 2>&1; then
    adduser -S -D -H -h "${CLIENT_PATHS.stateDir}" -s /sbin/nologin kapitan
  else
    die "cannot create the user kapitan: no useradd or adduser"
  fi
}

enrol() {
  if "$bin" status --state-dir "$state_dir" >/dev/null 2>&1 </dev/null; then
    say "already enrolled ($state_dir): upgrading in place"
    return 0
  fi
  [ -s "$src/enrolment-token" ] || die "$src/enrolment-token is missing"
  token="$(cat "$src/enrolment-token")"
  set -- enrol --force --server "$KAPITAN_SERVER" --state-dir "$state_dir"
  # The agent keeps the pins and the CA in its state and checks them at every connection, this one first.
  while IFS= read -r pin; do
    if [ -n "$pin" ]; then set -- "$@" --pin "$pin"; fi
  done <<KAPITAN_PINS_EOF
$KAPITAN_PINS
KAPITAN_PINS_EOF
  if [ -f "$etc_dir/ca.pem" ]; then set -- "$@" --ca-file "$etc_dir/ca.pem"; fi
  # The token goes in the environment, not the command line every user can read.
  KAPITAN_AGENT_ENROL_TOKEN="$token" "$bin" "$@" </dev/null
}

start_service() {
  if [ "$test_mode" = 1 ]; then
    say "test mode: not starting; run: $bin run --state-dir $state_dir"
    return 0
  fi
  chown -R kapitan:kapitan "$state_dir"
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable kapitan-agent.service
    systemctl restart kapitan-agent.service
    say "kapitan-agent.service started; follow it with: journalctl -u kapitan-agent -f"
  else
    say "no systemd here: start the agent yourself as user kapitan: $bin run --state-dir $state_dir"
  fi
}

install_main() {
  choose_form
  create_user
  install_agent
  enrol
  start_service
  say "installed kapitan-agent $KAPITAN_VERSION ($form) for $KAPITAN_SERVER"
}
`;

/** install.sh in a bundle: the files beside it. */
export function bundleInstallScript(v: ScriptValues): string {
  return `${HEADER(v, 'install.sh: installs (or upgrades) the Kapitan agent from this bundle.')}
${values(v)}${COMMON}src="$(cd "$(dirname "$0")" && pwd)"
${INSTALL_BODY}
install_main
`;
}

export interface OneLineValues extends ScriptValues {
  token: string;
  caPem: string | null;
  unit: string;
  policy: string;
  config: string;
  /** Where the script downloads each form from, and the SHA-256 it must have. */
  downloads: Record<'exe' | 'cjs', { url: string; sha256: string }>;
}

/**
 * The one-line install (`curl … | sh`): the script writes the bundle's
 * files itself, downloads the agent over the instance's TLS and checks its
 * SHA-256, then runs the install steps. All in one function called on the
 * last line, so a download cut short runs nothing.
 */
export function oneLineInstallScript(v: OneLineValues): string {
  for (const d of Object.values(v.downloads)) {
    if (!/^[0-9a-f]{64}$/.test(d.sha256)) throw new Error('a download SHA-256 must be 64 hex digits');
  }
  return `${HEADER(v, 'The one-line install of the Kapitan agent: single use, it expires.')}
main() {
${values(v)}${COMMON}
command -v curl >/dev/null 2>&1 || die "curl is needed"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum is needed"
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
umask 077
printf '%s\\n' ${shellQuote(v.token)} > "$src/enrolment-token"
umask 022
${heredoc('"$src/kapitan.json"', v.config)}
${heredoc('"$src/kapitan-agent.service"', v.unit)}
${heredoc('"$src/agent-policy.json"', v.policy)}
${v.caPem ? heredoc('"$src/ca.pem"', v.caPem) : ''}
${INSTALL_BODY}
choose_form
if [ "$form" = exe ]; then
  url=${shellQuote(v.downloads.exe.url)}; sum=${shellQuote(v.downloads.exe.sha256)}; file="$src/kapitan-agent"
else
  url=${shellQuote(v.downloads.cjs.url)}; sum=${shellQuote(v.downloads.cjs.sha256)}; file="$src/kapitan-agent.cjs"
fi
say "downloading the agent ($form)"
if [ -f "$src/ca.pem" ]; then
  curl -fsS --proto '=https' --cacert "$src/ca.pem" -o "$file" "$url" </dev/null
else
  curl -fsS -o "$file" "$url" </dev/null
fi
printf '%s  %s\\n' "$sum" "$file" | sha256sum -c - >/dev/null || die "the downloaded agent does not have the SHA-256 this script expects; nothing installed"
install_main
}
main "$@"
`;
}

/** uninstall.sh: removes what install.sh laid down, the enrolment (state) included. */
export function uninstallScript(v: ScriptValues): string {
  return `#!/bin/sh
# uninstall.sh: removes the Kapitan agent, its configuration, state and service.
# Revoke the machine in the dashboard too: its credential is gone from here,
# but the server does not know that. KAPITAN_INSTALL_ROOT as for install.sh.
# Kapitan agent ${v.version} for ${v.serverUrl}
set -eu
${COMMON}
if [ "$test_mode" = 0 ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now kapitan-agent.service 2>/dev/null || true
fi
rm -f "$unit_file" "$dropin_dir/docker.conf"
rmdir "$dropin_dir" 2>/dev/null || true
if [ "$test_mode" = 0 ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
rm -rf "$opt_dir" "$state_dir"
rm -f "$etc_dir/kapitan.json" "$etc_dir/ca.pem" "$etc_dir/agent-policy.json"
rmdir "$etc_dir" 2>/dev/null || true
if [ "$test_mode" = 0 ] && id kapitan >/dev/null 2>&1; then
  if command -v userdel >/dev/null 2>&1; then userdel kapitan || true; else deluser kapitan || true; fi
fi
say "kapitan-agent removed"
`;
}
