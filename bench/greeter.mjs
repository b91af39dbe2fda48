// A minimal SMTP-ish server for the benchmarks: greets with 220, answers QUIT with 221 and closes, anything
// else with 250. Used as the "direct" TLS server in tls-handshakes.mjs (the cost of a TLS handshake plus a
// greeting, with no proxy) and as the idle upstream in idle-memory.mjs (smtp-sink caps its connections).
// usage: node bench/greeter.mjs PORT [CERT KEY]   (with CERT and KEY: implicit TLS)
import net from 'node:net';
import tls from 'node:tls';
import fs from 'node:fs';

const [port, certFile, keyFile] = process.argv.slice(2);
if (!port) {
  process.stderr.write('usage: node bench/greeter.mjs PORT [CERT KEY]\n');
  process.exit(2);
}

function serve(sock) {
  sock.setNoDelay(true);
  sock.on('error', () => sock.destroy());
  sock.write('220 greeter.bench.test ESMTP\r\n');
  let buf = '';
  sock.on('data', (d) => {
    buf += d.toString('latin1');
    // Bounded: commands are short; anything longer is not from our own clients.
    if (buf.length > 4096) {
      sock.destroy();
      return;
    }
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).trim().toUpperCase();
      buf = buf.slice(i + 1);
      if (line === 'QUIT') {
        sock.end('221 2.0.0 bye\r\n');
        return;
      }
      sock.write('250 2.0.0 ok\r\n');
    }
  });
}

const server =
  certFile && keyFile
    ? tls.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) }, serve)
    : net.createServer(serve);
// Handshake failures of a client that gave up are not interesting here.
server.on('tlsClientError', () => {});
server.listen({ host: '127.0.0.1', port: Number(port), backlog: 4096 });
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
