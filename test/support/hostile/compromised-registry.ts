/**
 * A compromised registry on loopback (issue 12, attack 8): on the operator's allow-list, with
 * credentials, and hostile. By repository:
 *   redirect/…  redirects to another loopback host, not on the allow-list, that records what
 *               it receives;
 *   realm/…     asks for a Bearer token from a realm on another port (also a recorder);
 *   noisy/…     answers 500 with ANSI escapes and 1 MiB of text;
 *   upload/…    opens blob uploads whose Location is on the recording host.
 * Everything else asks for Basic credentials, as a registry with htpasswd does. Plain
 * node:http: no registry program can be made to misbehave like this.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  url: string;
  authorization?: string;
}

/** A host that records every request it receives and answers it harmlessly. */
export interface Recorder {
  /** `ip:port`. */
  host: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

async function listen(server: Server, ip: string): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, ip, () => resolve());
  });
  return `${ip}:${(server.address() as AddressInfo).port}`;
}

const close = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

export async function startRecorder(ip: string): Promise<Recorder> {
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization });
    req.resume();
    // A token for a realm; for anything else an empty success.
    res.writeHead(req.url?.startsWith('/token') ? 200 : 201, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 'recorded-token' }));
  });
  const host = await listen(server, ip);
  return { host, requests, close: () => close(server) };
}

export interface CompromisedRegistry {
  /** `127.0.0.1:port`: what the registries file allows. */
  host: string;
  username: string;
  password: string;
  /** Another loopback host (127.0.0.2), not allowed: where redirects and upload Locations point. */
  elsewhere: Recorder;
  /** The token realm, on another port of 127.0.0.1. */
  realm: Recorder;
  close(): Promise<void>;
}

/** 1 MiB of text wrapped in terminal escapes: colours, a cursor move, a screen clear. */
export const NOISY_BODY = `\x1b[31m\x1b[2J\x1b[H${'the registry is on fire '.repeat(44_000)}\x1b]0;owned\x07\x1b[0m`;

function basicOk(req: IncomingMessage, username: string, password: string): boolean {
  return req.headers.authorization === `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

export async function startCompromisedRegistry(): Promise<CompromisedRegistry> {
  const username = 'baler';
  const password = 'registry-secret';
  const elsewhere = await startRecorder('127.0.0.2');
  const realm = await startRecorder('127.0.0.1');
  const server = createServer((req, res) => {
    req.resume();
    const url = req.url ?? '';
    if (url.startsWith('/v2/realm/')) {
      if (req.headers.authorization?.startsWith('Bearer ')) {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
        return;
      }
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${realm.host}/token",service="compromised",scope="repository:realm/app:pull"` }).end();
      return;
    }
    if (!basicOk(req, username, password)) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="compromised"' }).end();
      return;
    }
    if (url === '/v2/') {
      res.writeHead(200, { 'docker-distribution-api-version': 'registry/2.0' }).end('{}');
    } else if (url.startsWith('/v2/redirect/')) {
      res.writeHead(307, { location: `http://${elsewhere.host}${url}` }).end();
    } else if (url.startsWith('/v2/noisy/')) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(NOISY_BODY);
    } else if (url.startsWith('/v2/upload/') && req.method === 'POST' && url.includes('/blobs/uploads/')) {
      res.writeHead(202, { location: `http://${elsewhere.host}/upload-session`, 'docker-upload-uuid': 'session' }).end();
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'BLOB_UNKNOWN', message: 'unknown' }] }));
    }
  });
  const host = await listen(server, '127.0.0.1');
  return {
    host,
    username,
    password,
    elsewhere,
    realm,
    async close() {
      await Promise.all([close(server), elsewhere.close(), realm.close()]);
    },
  };
}
