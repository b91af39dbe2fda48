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

/**
 * The options of every socket mailshim builds itself (accepted clients here, plain upstreams in dial.ts).
 * Node's Socket constructor copies its options (`{ ...options }`) and then sets allowHalfOpen, emitClose,
 * autoDestroy and decodeStrings on the copy; adding a property to such a copy gives it a map of its own
 * every time, so the twenty-odd option reads of Socket, Duplex and the stream states missed V8's inline
 * caches on every socket (2-3% of the CPU of a one-message session in `perf`). With those four already
 * present, set to what Socket sets them to, the copy keeps one map and the reads hit. `noDelay` only marks
 * the socket: Node applies it to an outgoing socket as it connects; an accepted one gets it from the
 * caller, as Node's own onconnection does.
 */
export function socketOptions(handle: unknown, noDelay: boolean, onread: net.OnReadOpts): net.SocketConstructorOpts {
  return { handle, allowHalfOpen: false, readable: true, writable: true, noDelay, onread, emitClose: false, autoDestroy: true, decodeStrings: false } as net.SocketConstructorOpts;
}

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

const CLIENT_ONREAD: net.OnReadOpts = { buffer: READ_BUFFER, callback: onRead };

type Handle = { useUserBuffer?: unknown; setNoDelay?: (on: boolean) => void };
type OnConnection = (this: unknown, err: number, handle: Handle | undefined) => void;
type ServerInternals = net.Server & {
  _handle?: { onconnection?: OnConnection } | null;
  _connections: number;
  noDelay?: boolean;
  allowHalfOpen?: boolean;
};

/**
 * Make the listening `server` create its sockets read through `onread`. Node offers `onread` only to
 * sockets built from a handle, and a server builds its own; so the server handle's `onconnection` is
 * replaced by one doing what Node's does (count the connection, TCP_NODELAY when the server asks for it,
 * emit 'connection'), building the socket with `onread` (one socket per connection, not a stream socket
 * and then a second one). Call it once `server` listens. Returns false, changing nothing, when this Node
 * does not expose what it takes; its sockets then stay on the stream path (setReadSink returns false).
 */
export function readFastOnAccept(server: net.Server): boolean {
  const srv = server as ServerInternals;
  const h = srv._handle;
  const nodes = h?.onconnection;
  if (!h || typeof nodes !== 'function' || typeof srv._connections !== 'number') return false;
  h.onconnection = function onconnection(this: unknown, err: number, handle: Handle | undefined): void {
    // Errors, maxConnections, half-open servers and handles without user buffers stay Node's.
    if (err || !handle || srv.maxConnections || srv.allowHalfOpen || typeof handle.useUserBuffer !== 'function') {
      nodes.call(this, err, handle);
      return;
    }
    const noDelay = srv.noDelay === true && typeof handle.setNoDelay === 'function';
    const sock = new net.Socket(socketOptions(handle, noDelay, CLIENT_ONREAD));
    if (noDelay) handle.setNoDelay!(true);
    reads.set(sock, { sink: undefined, early: [] });
    // What Node's onconnection does, so that closing settles the count (Socket._destroy decrements it).
    srv._connections++;
    const owned = sock as net.Socket & { server: net.Server; _server: net.Server };
    owned.server = server;
    owned._server = server;
    server.emit('connection', sock);
  };
  return true;
}

/** Whether `sock` was created by a server set up with readFastOnAccept. */
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
