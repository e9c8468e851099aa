// Replaces dockerode's lib/session.js in the shipped agent. The real one
// loads gRPC and protobuf at require time (BuildKit sessions for
// buildImage with version "2") — megabytes of idle memory for something
// the agent never does.
'use strict';
module.exports = function withSession(_docker, _auth, handler) {
  handler(new Error('BuildKit sessions are not available in the Kapitan agent'), null, () => undefined);
};
