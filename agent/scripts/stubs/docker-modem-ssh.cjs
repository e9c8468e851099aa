// Replaces docker-modem's lib/ssh.js in the shipped agent. The real one
// loads ssh2 at require time; the agent reaches Docker over a unix socket
// or tcp only (containers/docker-target.ts refuses ssh://).
'use strict';
module.exports = function ssh() {
  throw new Error('ssh:// Docker hosts are not supported by the Kapitan agent');
};
