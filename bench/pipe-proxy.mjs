// The floor any Node proxy pays: accept, connect upstream, socket.pipe both ways, TCP_NODELAY on both
// sockets (without it a relayed dialogue of small writes waits on Nagle + delayed ACK). No parsing at all.
// usage: node bench/pipe-proxy.mjs LISTEN_PORT TARGET_PORT [TARGET_HOST]
import net from 'node:net';

const [listenPort, targetPort, targetHost = '127.0.0.1'] = process.argv.slice(2);
if (!listenPort || !targetPort) {
  process.stderr.write('usage: node bench/pipe-proxy.mjs LISTEN_PORT TARGET_PORT [TARGET_HOST]\n');
  process.exit(2);
}

const server = net.createServer({ noDelay: true }, (client) => {
  client.setNoDelay(true);
  const upstream = net.connect({ host: targetHost, port: Number(targetPort), noDelay: true });
  upstream.setNoDelay(true);
  client.pipe(upstream);
  upstream.pipe(client);
  const done = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', done);
  upstream.on('error', done);
  client.on('close', done);
  upstream.on('close', done);
});
server.listen({ host: '127.0.0.1', port: Number(listenPort), backlog: 4096 });
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
