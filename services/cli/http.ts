// The HTTP side of a Skiff process: Prometheus /metrics, /healthz (the process is up),
// /readyz (it serves traffic), and read-only JSON views used by the `skiff` CLI.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { collectDefaultMetrics, register } from 'prom-client';

export interface HttpOptions {
  port: number;
  host?: string;
  log: Logger;
  ready: () => boolean;
  /** Extra JSON routes, e.g. '/v1/partitions'. */
  routes?: Record<string, () => unknown>;
}

let defaultsCollected = false;

export async function startHttp(o: HttpOptions): Promise<{ port: number; close: () => Promise<void> }> {
  if (!defaultsCollected) {
    collectDefaultMetrics({ prefix: 'skiff_' });
    defaultsCollected = true;
  }
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const send = (code: number, body: string, type = 'text/plain') => {
      res.writeHead(code, { 'content-type': type });
      res.end(body);
    };
    if (url === '/healthz') return send(200, 'ok\n');
    if (url === '/readyz') return o.ready() ? send(200, 'ready\n') : send(503, 'not ready\n');
    if (url === '/metrics') {
      register.metrics().then(
        (text) => send(200, text, register.contentType),
        (err) => {
          o.log.error({ err }, 'metrics failed');
          send(500, 'metrics failed\n');
        },
      );
      return;
    }
    const route = o.routes?.[url];
    if (route) return send(200, JSON.stringify(route(), null, 2) + '\n', 'application/json');
    send(404, 'not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host ?? '0.0.0.0', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  o.log.info({ port }, 'http endpoint listening');
  return { port, close: () => new Promise((r) => server.close(() => r())) };
}
