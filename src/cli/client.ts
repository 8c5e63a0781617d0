/**
 * The CLI's HTTP client: base URL and bearer token, JSON requests, and RFC 9457 problems
 * turned into `ApiProblem` errors the commands print.
 */
import type { ProblemBody } from '../problem.ts';

export interface ClientConfig {
  url: string;
  token?: string;
}

/** A problem the server answered with (or one made from a non-problem error response). */
export class ApiProblem extends Error {
  readonly problem: ProblemBody;
  constructor(problem: ProblemBody) {
    super(problem.detail ?? problem.title);
    this.name = 'ApiProblem';
    this.problem = problem;
  }
}

export type RequestOptions = Omit<RequestInit, 'headers'> & { headers?: Record<string, string> };

export class BalerClient {
  readonly base: URL;
  private readonly token: string | undefined;

  constructor(config: ClientConfig) {
    this.base = new URL(config.url.endsWith('/') ? config.url : `${config.url}/`);
    this.token = config.token || undefined;
  }

  /** A request; a non-2xx answer (other than those in `accept`) throws its problem. */
  async request(path: string, opts: RequestOptions = {}, accept: number[] = []): Promise<Response> {
    const headers: Record<string, string> = { ...opts.headers };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const url = new URL(path.replace(/^\//, ''), this.base);
    let res: Response;
    try {
      res = await fetch(url, { ...opts, headers, ...(opts.body instanceof ReadableStream || isNodeStream(opts.body) ? { duplex: 'half' } : {}) } as RequestInit);
    } catch (err) {
      throw new Error(`cannot reach ${this.base.origin}: ${causeOf(err)}`, { cause: err });
    }
    if (!res.ok && !accept.includes(res.status)) throw await problemOf(res);
    return res;
  }

  async json<T>(path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.request(path, { ...opts, headers: { accept: 'application/json', ...opts.headers } });
    return (await res.json()) as T;
  }

  async postJson<T>(path: string, body: unknown, headers: Record<string, string> = {}): Promise<T> {
    return this.json<T>(path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
  }
}

/** The response's problem+json, or a problem made from its status and text. */
export async function problemOf(res: Response): Promise<ApiProblem> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as Partial<ProblemBody>;
    if (body && typeof body === 'object' && (body.title || body.detail)) {
      return new ApiProblem({ type: body.type ?? 'about:blank', title: body.title ?? res.statusText, status: body.status ?? res.status, ...body } as ProblemBody);
    }
  } catch {
    /* not JSON: use the text */
  }
  return new ApiProblem({ type: 'about:blank', title: res.statusText || 'Error', status: res.status, detail: text.trim() || `HTTP ${res.status}` });
}

function isNodeStream(body: unknown): boolean {
  return typeof body === 'object' && body !== null && typeof (body as { pipe?: unknown }).pipe === 'function';
}

function causeOf(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message;
}
