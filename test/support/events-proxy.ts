/**
 * An HTTP proxy in front of a real service that changes only `GET /v1/builds/{id}/events`:
 * `missing` answers it 404, as a baler from before the route did; `cutAfterLines: n` passes n
 * lines of each events response on and then drops the connection, as a flaky network or a
 * restarting proxy would; `cutAfterFinal` passes everything up to the build's final state and
 * drops the connection right after it (before the response's proper end). Everything else
 * passes through unchanged.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type EventsBehaviour = 'missing' | { cutAfterLines: number } | 'cutAfterFinal';

const FINAL_STATE = /"event":"state","data":\{"status":"(succeeded|failed|cancelled)"/;

export interface EventsProxy {
  url: string;
  /** The Last-Event-ID header of each events request (undefined: none). */
  eventRequests: Array<string | undefined>;
  close(): Promise<void>;
}

export async function startEventsProxy(target: string, behaviour: EventsBehaviour): Promise<EventsProxy> {
  const to = new URL(target);
  const proxy: EventsProxy = { url: '', eventRequests: [], close: async () => undefined };
  const forward = (req: IncomingMessage, res: ServerResponse, onAnswer: (answer: IncomingMessage) => void) => {
    const upstream = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      onAnswer(answer);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  };
  const server: Server = createServer((req, res) => {
    if (!/^\/v1\/builds\/[^/]+\/events(\?|$)/.test(req.url ?? '')) {
      forward(req, res, (answer) => answer.pipe(res));
      return;
    }
    const lastEventId = req.headers['last-event-id'];
    proxy.eventRequests.push(Array.isArray(lastEventId) ? lastEventId[0] : lastEventId);
    if (behaviour === 'missing') {
      res.writeHead(404, { 'content-type': 'application/problem+json' });
      res.end(JSON.stringify({ type: 'about:blank', title: 'Not Found', status: 404, detail: `Route GET:${req.url} not found` }));
      return;
    }
    if (behaviour === 'cutAfterFinal') {
      forward(req, res, (answer) => {
        let seen = '';
        answer.on('data', (chunk: Buffer) => {
          const from = seen.length;
          seen += chunk.toString('latin1');
          const match = FINAL_STATE.exec(seen);
          const lineEnd = match ? seen.indexOf('\n', match.index) : -1;
          if (lineEnd < 0) {
            res.write(chunk);
            return;
          }
          answer.destroy();
          res.write(chunk.subarray(0, lineEnd + 1 - from), () => res.destroy());
        });
        answer.on('end', () => res.end());
      });
      return;
    }
    forward(req, res, (answer) => {
      let left = behaviour.cutAfterLines;
      answer.on('data', (chunk: Buffer) => {
        let end = 0;
        while (left > 0 && end < chunk.length) {
          const newline = chunk.indexOf(10, end);
          if (newline < 0) {
            end = chunk.length;
            break;
          }
          end = newline + 1;
          left--;
        }
        if (left > 0) {
          res.write(chunk);
          return;
        }
        // The lines out first, then the connection dropped (no end of the chunked body).
        answer.destroy();
        res.write(chunk.subarray(0, end), () => res.destroy());
      });
      answer.on('end', () => res.end());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
}
