/**
 * Small HTTP servers on 127.0.0.1 that play a compromised registry and the hosts it would like
 * baler to talk to (a storage host, a token service, an upload host): each records every request
 * it gets (method, path, headers), so a test can say who was contacted with what.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';

export interface Recorded {
  method: string;
  path: string;
  authorization: string | undefined;
}

export interface HostileServer {
  /** `127.0.0.1:port`, as the allow-list and references name it. */
  host: string;
  origin: string;
  requests: Recorded[];
  close: () => Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export async function startServer(handler: Handler): Promise<HostileServer> {
  const requests: Recorded[] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization });
    Promise.resolve(handler(req, res)).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(599);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    host,
    origin: `http://${host}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Pass the request on to `origin` (a real registry) and its answer back, as a front or a storage host would. */
export async function proxy(req: IncomingMessage, res: ServerResponse, origin: string): Promise<void> {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (typeof value === 'string' && !['host', 'connection', 'authorization'].includes(name)) headers.set(name, value);
  }
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  const answer = await fetch(`${origin}${req.url}`, {
    method: req.method,
    headers,
    body: hasBody ? (Readable.toWeb(req) as unknown as ReadableStream) : undefined,
    redirect: 'manual',
    ...(hasBody ? { duplex: 'half' } : {}),
  } as RequestInit);
  const out: Record<string, string> = {};
  answer.headers.forEach((value, name) => {
    if (!['content-encoding', 'transfer-encoding', 'connection'].includes(name)) out[name] = value;
  });
  res.writeHead(answer.status, out);
  if (answer.body && req.method !== 'HEAD') for await (const chunk of answer.body as unknown as AsyncIterable<Uint8Array>) res.write(chunk);
  res.end();
}

/** Whether a request carries the Basic credentials `user:password`. */
export function hasBasic(req: IncomingMessage, user: string, password: string): boolean {
  return req.headers.authorization === `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}
