/**
 * A baler as it was before `GET /v1/builds/{id}/events`: an HTTP proxy to a real service that
 * answers that route 404 (as the old server did) and passes everything else through, so tests
 * can check that clients fall back to polling.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface NoEventsProxy {
  url: string;
  /** Requests for /events seen so far. */
  eventRequests: number;
  close(): Promise<void>;
}

export async function startNoEventsProxy(target: string): Promise<NoEventsProxy> {
  const to = new URL(target);
  const proxy: NoEventsProxy = { url: '', eventRequests: 0, close: async () => undefined };
  const server: Server = createServer((req, res) => {
    if (/^\/v1\/builds\/[^/]+\/events(\?|$)/.test(req.url ?? '')) {
      proxy.eventRequests++;
      res.writeHead(404, { 'content-type': 'application/problem+json' });
      res.end(JSON.stringify({ type: 'about:blank', title: 'Not Found', status: 404, detail: `Route GET:${req.url} not found` }));
      return;
    }
    const upstream = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return proxy;
}
