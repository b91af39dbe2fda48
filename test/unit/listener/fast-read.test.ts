// The onread path for plain client connections (src/listener/fast-read.ts), over real loopback sockets:
// the re-wrapped socket must behave as the stream one did for everything the session relies on.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isFastRead, readFastOnAccept, setReadSink } from '../../../src/listener/fast-read.js';

const servers: net.Server[] = [];
const sockets: net.Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((srv) => new Promise((r) => srv.close(r))));
});

/** A fast-read server; resolves with the socket it accepted (`adopted`) and the client side. */
async function pair(): Promise<{ server: net.Server; adopted: net.Socket; client: net.Socket }> {
  let onAdopted!: (s: net.Socket) => void;
  const adoptedP = new Promise<net.Socket>((r) => (onAdopted = r));
  const server = net.createServer({ noDelay: true }, (sock) => {
    sockets.push(sock);
    onAdopted(sock);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  expect(readFastOnAccept(server)).toBe(true);
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  sockets.push(client);
  await new Promise((r) => client.once('connect', r));
  return { server, adopted: await adoptedP, client };
}

const until = async (cond: () => boolean, ms = 2000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('fast-read client sockets', () => {
  it('are used on this Node (a Node without them would silently lose the saving), with TCP_NODELAY kept', async () => {
    const { adopted } = await pair();
    expect(isFastRead(adopted)).toBe(true);
    // The server's noDelay option is applied to the socket as Node's own onconnection would.
    const internals = Object.getOwnPropertySymbols(adopted).find((k) => k.description === 'kSetNoDelay');
    expect(internals && (adopted as unknown as Record<symbol, unknown>)[internals]).toBe(true);
  });

  it('leave a server with maxConnections to Node, which drops connections past it', async () => {
    const server = net.createServer((sock) => sockets.push(sock));
    servers.push(server);
    server.maxConnections = 1;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    readFastOnAccept(server);
    let drops = 0;
    server.on('drop', () => drops++);
    const port = (server.address() as net.AddressInfo).port;
    for (let i = 0; i < 2; i++) {
      const c = net.connect(port, '127.0.0.1');
      c.on('error', () => {});
      sockets.push(c);
      await new Promise((r) => c.once('connect', r));
    }
    await until(() => drops === 1);
    expect(sockets.filter(isFastRead)).toHaveLength(0);
  });

  it('deliver bytes sent before the sink was set, in order, then the rest; each chunk stays intact', async () => {
    const { adopted, client } = await pair();
    client.write('EHLO early\r\n');
    await new Promise((r) => setTimeout(r, 50)); // read while nobody listens yet
    const got: Buffer[] = [];
    setReadSink(adopted, (c) => got.push(c));
    await until(() => Buffer.concat(got).length === 12);
    client.write('MAIL FROM:<a@b>\r\n');
    await until(() => Buffer.concat(got).length === 12 + 17);
    // The first chunk was kept across a later read into the shared buffer: it must not have changed.
    expect(got[0].toString('latin1')).toBe('EHLO early\r\n');
    expect(Buffer.concat(got).toString('latin1')).toBe('EHLO early\r\nMAIL FROM:<a@b>\r\n');
  });

  it('stop reading while paused and go on after resume (backpressure)', async () => {
    const { adopted, client } = await pair();
    let n = 0;
    setReadSink(adopted, (c) => (n += c.length));
    adopted.pause();
    expect(adopted.isPaused()).toBe(true);
    client.write(Buffer.alloc(1000, 0x61));
    await new Promise((r) => setTimeout(r, 100));
    expect(n).toBe(0);
    adopted.resume();
    await until(() => n === 1000);
  });

  it('write back, time out when idle, and close like the stream socket, settling the server count', async () => {
    const { server, adopted, client } = await pair();
    setReadSink(adopted, () => {});
    const replies: Buffer[] = [];
    client.on('data', (c: Buffer) => replies.push(c));
    adopted.write('220 ready\r\n', 'latin1');
    await until(() => Buffer.concat(replies).toString() === '220 ready\r\n');
    let timedOut = false;
    adopted.setTimeout(50, () => (timedOut = true));
    await until(() => timedOut);
    const closed = new Promise((r) => adopted.once('close', r));
    client.end();
    await closed;
    const count = await new Promise<number>((r, j) => server.getConnections((err, c) => (err ? j(err) : r(c))));
    expect(count).toBe(0);
  });

  it('drop bytes once given up (null sink), as a stream with its data listener removed does', async () => {
    const { adopted, client } = await pair();
    const got: Buffer[] = [];
    setReadSink(adopted, (c) => got.push(c));
    client.write('one\r\n');
    await until(() => got.length === 1);
    setReadSink(adopted, null);
    client.write('two\r\n');
    await new Promise((r) => setTimeout(r, 100));
    setReadSink(adopted, (c) => got.push(c));
    expect(Buffer.concat(got).toString()).toBe('one\r\n');
  });

  it('leave sockets of other servers to the stream path', () => {
    const s = new net.Socket();
    expect(setReadSink(s, () => {})).toBe(false);
    expect(isFastRead(s)).toBe(false);
  });
});
