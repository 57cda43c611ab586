// UDP in the lab: `server NAME PORT` answers each datagram with its name;
// `client HOST PORT SOCKETS GAP_MS` sends from SOCKETS fixed source ports in
// turn, one JSON line per answer ({at, socket, rs}), until SIGTERM.
import * as dgram from 'node:dgram';

function server(name: string, port: number): void {
  const s = dgram.createSocket('udp4');
  s.on('message', (_msg, rinfo) => s.send(name, rinfo.port, rinfo.address));
  s.bind(port, '0.0.0.0', () => process.stdout.write(`${name}: udp ${port}\n`));
  process.on('SIGTERM', () => process.exit(0));
}

function client(host: string, port: number, count: number, gap: number): void {
  const sockets = Array.from({ length: count }, (_, i) => {
    const s = dgram.createSocket('udp4');
    s.on('message', (msg) => process.stdout.write(`${JSON.stringify({ at: Date.now(), socket: i, rs: msg.toString() })}\n`));
    s.bind();
    return s;
  });
  let n = 0;
  const timer = setInterval(() => {
    const s = sockets[n++ % count];
    s.send('ping', port, host);
  }, gap);
  process.on('SIGTERM', () => {
    clearInterval(timer);
    process.exit(0);
  });
}

const [mode, a, b, c, d] = process.argv.slice(2);
if (mode === 'server' && a && b) server(a, Number(b));
else if (mode === 'client' && a && b) client(a, Number(b), Number(c ?? 2), Number(d ?? 20));
else {
  process.stderr.write('usage: udp-echo server NAME PORT | client HOST PORT [SOCKETS] [GAP_MS]\n');
  process.exit(2);
}
