// Client connections of listeners that never hand a socket to TLS and never read a PROXY header are read
// through Node's `onread` (one shared buffer) instead of the stream path. Per read, the stream path in
// Node 20 allocates a 64 KB buffer, a zero-filled copy of the bytes read, an ArrayBuffer, a Buffer and a
// nextTick (about 550 bytes of heap and two mallocs); this path copies the bytes read into a slice of
// Node's buffer pool and nothing else. Measured in bench/README.md ("Client reads").
import net from 'node:net';

/**
 * What every socket read through `onread` reads into: these client connections and plain-TCP upstream
 * connections (UpstreamClient.open) alike. Reads are handled one at a time on the event loop and each
 * callback copies what it keeps before returning, so one buffer serves them all.
 */
export const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** Where a fast-read socket's bytes go. The chunk is the receiver's to keep. */
export type ReadSink = (chunk: Buffer) => void;

interface FastRead {
  /** undefined: nobody took the socket yet (bytes are held); null: given up (bytes are dropped). */
  sink: ReadSink | null | undefined;
  early: Buffer[];
}

const reads = new WeakMap<net.Socket, FastRead>();

/** Node's `onread` callback, called with the socket as `this`. */
function onRead(this: net.Socket, n: number, buf: Uint8Array): boolean {
  const f = reads.get(this);
  if (!f || f.sink === null) return true;
  // READ_BUFFER is overwritten by the next read on any socket, so the receiver gets a copy (below 4 KB a
  // slice of Node's buffer pool, not an allocation of its own). A partial line kept by the session keeps
  // its 8 KB pool block alive: at most 8 KB per connection, bounded by limits.maxConnections.
  const chunk = Buffer.allocUnsafe(n);
  chunk.set(buf.subarray(0, n));
  if (f.sink) f.sink(chunk);
  else f.early.push(chunk);
  return true;
}

/**
 * The accepted connection `sock`, re-wrapped in a socket read through `onread`. Node offers `onread` only
 * to sockets it creates from a handle, and a server creates its sockets itself, so the handle is moved
 * over: `sock` is destroyed without it (which settles the server's connection count and touches nothing
 * else). Call it in the tick the connection was accepted, before anything read from it. Returns `sock`
 * unchanged when this Node does not expose what it takes.
 */
export function adoptForFastRead(sock: net.Socket): net.Socket {
  const raw = sock as unknown as { _handle?: { useUserBuffer?: unknown } | null };
  const handle = raw._handle;
  if (!handle || typeof handle.useUserBuffer !== 'function' || sock.destroyed) return sock;
  raw._handle = null;
  const fast = new net.Socket({
    handle,
    readable: true,
    writable: true,
    onread: { buffer: READ_BUFFER, callback: onRead },
  } as net.SocketConstructorOpts);
  reads.set(fast, { sink: undefined, early: [] });
  sock.destroy();
  return fast;
}

/** Whether `sock` came from adoptForFastRead. */
export function isFastRead(sock: net.Socket): boolean {
  return reads.has(sock);
}

/**
 * Route a fast-read socket's bytes to `sink` (null: drop them from now on, as a stream with its 'data'
 * listener removed would). Returns false, doing nothing, for a socket read as a stream.
 */
export function setReadSink(sock: net.Socket, sink: ReadSink | null): boolean {
  const f = reads.get(sock);
  if (!f) return false;
  f.sink = sink;
  if (sink && f.early.length > 0) {
    const early = f.early;
    f.early = [];
    for (const c of early) sink(c);
  }
  return true;
}
