import { createServer } from 'node:net';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago. The kernel picks it (port 0), we read it and
 * close the socket. Another process may grab it before the caller binds, so callers that start an
 * external program on it should retry with a fresh port when the bind fails (startPostfix does).
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error(`freePort: unexpected server address ${String(address)}`));
        return;
      }
      const { port } = address;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/** Several distinct free ports (distinct among themselves; see freePort for the race). */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const ports = new Set<number>();
  for (let attempt = 0; ports.size < count && attempt < count * 10; attempt++) {
    ports.add(await freePort(host));
  }
  if (ports.size < count) throw new Error(`freePorts: could not find ${count} distinct free ports`);
  return [...ports];
}

/**
 * A port on 127.0.0.1 where connections are refused, for "upstream unreachable" cases. A port from
 * freePort() does not do: the kernel hands a just-closed port out again to the next listen(0), and a fake
 * upstream started a moment later (in this file or a parallel one) answered there. Port 1 (tcpmux) is
 * privileged and outside the ephemeral range, so no test ever listens on it.
 */
export const REFUSED_PORT = 1;
