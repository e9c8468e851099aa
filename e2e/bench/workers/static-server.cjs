// The baseline of the distribution scenario: the barest static file server
// Node can be, in its own process. argv: <file>. Prints "static ready <port>".
const fs = require('node:fs');
const http = require('node:http');
const file = process.argv[2];
const size = fs.statSync(file).size;
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
  fs.createReadStream(file).pipe(res);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`static ready ${server.address().port}\n`));
process.on('SIGTERM', () => process.exit(0));
