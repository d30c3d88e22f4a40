// A tiny fault-injecting HTTP proxy for S3 tests: forwards to a real S3 API server, or
// answers SlowDown (503) / InternalError (500) / a dropped connection when told to.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault = 'slowdown' | 'internal' | 'reset';

export interface FaultProxy {
  endpoint: string;
  /** Requests seen so far, failed or forwarded. */
  readonly requests: number;
  /** Fails the next n requests with the given fault. */
  failNext(n: number, fault: Fault): void;
  /** Runs before each forwarded request, with the 1-based request count. */
  beforeForward(hook: (count: number) => Promise<void>): void;
  close(): Promise<void>;
}

export async function startFaultProxy(targetPort: number): Promise<FaultProxy> {
  let requests = 0;
  let failures = 0;
  let fault: Fault = 'slowdown';
  let hook: ((count: number) => Promise<void>) | undefined;

  const errorXml = (code: string, status: number): [number, string] => [
    status,
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>injected</Message></Error>`,
  ];

  const server = http.createServer((req, res) => {
    const count = ++requests;
    if (failures > 0) {
      failures--;
      if (fault === 'reset') {
        // Let some of the body arrive, then drop the connection mid-request.
        req.once('data', () => req.socket.destroy());
        req.once('end', () => req.socket.destroy());
        return;
      }
      const [status, body] = fault === 'slowdown' ? errorXml('SlowDown', 503) : errorXml('InternalError', 500);
      req.resume();
      req.once('end', () => res.writeHead(status, { 'content-type': 'application/xml' }).end(body));
      return;
    }
    void (async () => {
      await hook?.(count);
      const up = http.request({ host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      });
      // Upstream down: the client sees its connection drop, as it would with the real server gone.
      up.once('error', () => req.socket.destroy());
      req.pipe(up);
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get requests() {
      return requests;
    },
    failNext(n, f) {
      failures = n;
      fault = f;
    },
    beforeForward(h) {
      hook = h;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
