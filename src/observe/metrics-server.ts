// The operator's HTTP endpoint on `metrics.listen`: /metrics (Prometheus text format), /healthz (the
// process answers) and /readyz (every listener is bound and accepting; 503 while draining). node:http only.
import http from 'node:http';
import type net from 'node:net';
import type { Registry } from 'prom-client';
import { listenOn } from '../listener/listen-on.js';

export interface Readiness {
  /** Undefined when ready; otherwise why not (shown in the 503 body). */
  notReady(): string | undefined;
}

export class MetricsServer {
  private readonly server: http.Server;

  constructor(
    private readonly registry: Registry,
    private readonly readiness: Readiness,
  ) {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    // A scrape is one short request; idle keep-alive sockets must not hold the drain open.
    this.server.keepAliveTimeout = 5_000;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    try {
      switch (path) {
        case '/metrics': {
          const body = await this.registry.metrics();
          res.writeHead(200, { 'content-type': this.registry.contentType }).end(req.method === 'HEAD' ? undefined : body);
          return;
        }
        case '/healthz':
          res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
          return;
        case '/readyz': {
          const why = this.readiness.notReady();
          res.writeHead(why ? 503 : 200, { 'content-type': 'text/plain' }).end(why ? `not ready: ${why}\n` : 'ready\n');
          return;
        }
        default:
          res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics, /healthz or /readyz\n');
      }
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  }

  listen(host: string, port: number): Promise<net.AddressInfo> {
    return listenOn(this.server, host, port);
  }

  address(): net.AddressInfo {
    return this.server.address() as net.AddressInfo;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
