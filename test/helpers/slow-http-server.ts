// A real server for the HAProxy tests: like the lab's rs-http-server (the
// answer names the server and the client address it saw) but it keeps
// connections alive as HAProxy expects, and /slow?ms=N answers only after N
// ms, so a request can be in flight across a reload.
// Run as: node slow-http-server.js NAME ADDRESS PORT
import * as http from 'node:http';

const [name = 'rs', address = '0.0.0.0', port = '80'] = process.argv.slice(2);

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  const delay = url.pathname === '/slow' ? Math.min(60_000, Number(url.searchParams.get('ms') ?? '1000')) : 0;
  const body = `${name} saw client ${req.socket.remoteAddress}\n`;
  setTimeout(() => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body), 'X-Real-Server': name });
    res.end(body);
  }, delay);
});
server.listen(Number(port), address, () => process.stdout.write(`${name} listening\n`));
process.on('SIGTERM', () => process.exit(0));
