// capture.keylog: TLS secrets of both legs (client<->mailshim and mailshim<->upstream) in the NSS key log
// format (SSLKEYLOGFILE), so Wireshark/tshark can decrypt a capture of the real traffic.
// SENSITIVE: anyone holding this file and a packet capture reads every password and message of those
// sessions. Off by default; the config loader warns at start when it is on; the file is created 0600.
//
// Node emits one `keylog` line (with its newline) per secret on each TLS socket we attach to. Lines go
// through a write stream; when the disk cannot keep up, lines are dropped rather than buffered without
// bound, since a session must never wait for its key log.
import fs from 'node:fs';
import type { Logger } from './log.js';

/** Bytes the stream may hold before new lines are dropped. */
const MAX_PENDING = 1024 * 1024;

export class KeyLog {
  dropped = 0;
  private readonly stream: fs.WriteStream;
  private failed = false;

  constructor(
    readonly file: string,
    private readonly log?: Logger,
  ) {
    this.stream = fs.createWriteStream(file, { flags: 'a', mode: 0o600 });
    this.stream.on('error', (err: NodeJS.ErrnoException) => {
      if (!this.failed) this.log?.error({ file, err: err.code ?? err.message }, 'capture.keylog: cannot write the key log; TLS secrets are not recorded');
      this.failed = true;
    });
  }

  /** Pass as a `keylog` listener: `socket.on('keylog', keylog.write)`. */
  readonly write = (line: Buffer): void => {
    if (this.failed || this.stream.writableLength > MAX_PENDING) {
      this.dropped++;
      return;
    }
    this.stream.write(line);
  };

  /** Attach to a TLS socket before its handshake runs. */
  attach(sock: { on(event: 'keylog', listener: (line: Buffer) => void): unknown }): void {
    sock.on('keylog', this.write);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.stream.end(() => resolve()));
  }
}
