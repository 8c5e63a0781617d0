/**
 * RFC 9457 problem details. Anything thrown as a Problem is a client-visible error with a
 * status; anything else reaching the HTTP layer is a bug and becomes a 500.
 */
export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  errors?: FieldError[];
}

/**
 * One offending field of a request (the `errors` extension member, RFC 9457 §3.2): `pointer`
 * is a JSON Pointer (RFC 6901) into the request body, `parameter` names a query parameter.
 */
export type FieldError = { pointer: string; message: string } | { parameter: string; message: string };

/** A JSON Pointer token for a member name (RFC 6901 §3: `~` and `/` escaped). */
export function pointerToken(name: string | number): string {
  return String(name).replace(/~/g, '~0').replace(/\//g, '~1');
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  409: 'Conflict',
  411: 'Length Required',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  507: 'Insufficient Storage',
  503: 'Service Unavailable',
};

export class Problem extends Error {
  readonly status: number;
  readonly type: string;
  readonly title: string;
  readonly detail: string;
  readonly errors?: ProblemBody['errors'];
  /** Response headers that go with it (e.g. `Retry-After`). */
  readonly headers?: Readonly<Record<string, string>>;

  constructor(status: number, detail: string, opts: { type?: string; title?: string; errors?: ProblemBody['errors']; cause?: unknown; headers?: Record<string, string> } = {}) {
    super(detail, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'Problem';
    this.status = status;
    this.detail = detail;
    this.title = opts.title ?? TITLES[status] ?? 'Error';
    this.type = opts.type ?? 'about:blank';
    if (opts.errors) this.errors = opts.errors;
    if (opts.headers) this.headers = opts.headers;
  }

  toJSON(instance?: string): ProblemBody {
    const body: ProblemBody = { type: this.type, title: this.title, status: this.status, detail: this.detail };
    if (instance) body.instance = instance;
    if (this.errors) body.errors = this.errors;
    return body;
  }
}

/** A problem about fields of the request: each `pointer: message` in `detail`, and in `errors`. */
export function fieldProblem(status: number, what: string, items: FieldError[], cause?: unknown): Problem {
  const detail = items.map((item) => `${'pointer' in item ? item.pointer || '(the whole body)' : `?${item.parameter}`}: ${item.message}`).join('; ');
  return new Problem(status, `${what}: ${detail}`, { errors: items, cause });
}
