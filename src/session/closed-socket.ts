// What a session points at once it has ended. An ended session can stay reachable for a while: V8's
// young-generation GC kept ~250 ended sessions alive per scavenge until the next full GC (measured with
// --trace-gc-nvp under `npm run bench`), copying everything they referenced twice. So an ended session and
// its upstream client drop their sockets, buffers and queues, and point at this one destroyed socket instead;
// any late call on it is a no-op (writes fail quietly into the ignored 'error').
import net from 'node:net';

let closed: net.Socket | undefined;

export function closedSocket(): net.Socket {
  if (!closed) {
    closed = new net.Socket();
    closed.on('error', ignoreError);
    closed.destroy();
  }
  return closed;
}

/**
 * Retire a destroyed socket whose own listeners were already removed: drop any 'drain' waiter, ignore a
 * late error (a reset racing the close), and return the stand-in to keep instead of it.
 */
export function retire(sock: net.Socket): net.Socket {
  // Retiring twice (a late close) must not add listeners to the shared stand-in, once per session.
  if (sock === closed) return closed;
  sock.removeAllListeners('drain');
  sock.on('error', ignoreError);
  return closedSocket();
}

function ignoreError(): void {}
