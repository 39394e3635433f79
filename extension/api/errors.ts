import { ErrorBody } from './types';

/**
 * Every failure of a server call: `status` is the HTTP status (0 when no answer came), `code` the
 * server's machine-readable code or one of ours: `unreachable`, `cancelled`, `timeout`,
 * `bad_response`, `foreign_origin`, `redirected`.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  get cancelled(): boolean {
    return this.code === 'cancelled';
  }

  /** No answer from the server (down, DNS, TLS, timeout): the views show "cannot reach". */
  get unreachable(): boolean {
    return this.status === 0 && (this.code === 'unreachable' || this.code === 'timeout');
  }

  /** Reads `{"error":{"code","message"}}`; anything else becomes a message made from the status. */
  static async fromResponse(res: Response): Promise<ApiError> {
    const text = await res.text().catch(() => '');
    try {
      const body = ErrorBody.parse(JSON.parse(text));
      return new ApiError(res.status, body.error.code, body.error.message, body.error.details);
    } catch {
      return new ApiError(res.status, `http_${res.status}`, unexpectedAnswer(res, text));
    }
  }

  /** A thrown fetch failure (network, abort, timeout) as an ApiError. */
  static fromFetchFailure(err: unknown, url: URL, signal?: AbortSignal): ApiError {
    if (err instanceof ApiError) return err;
    const name = (err as { name?: string } | null)?.name;
    if (name === 'TimeoutError') return new ApiError(0, 'timeout', `${url.origin} did not answer in time.`);
    if (name === 'AbortError' || signal?.aborted) return new ApiError(0, 'cancelled', 'Cancelled.');
    const cause = (err as { cause?: { code?: string; message?: string } } | null)?.cause;
    const why = cause?.code ?? cause?.message ?? (err as Error | null)?.message ?? String(err);
    return new ApiError(0, 'unreachable', `Cannot reach ${url.origin} (${why}).`);
  }
}

/** The longest reason of a proxy's plain-text answer that is passed on. */
const MAX_REASON = 200;

/**
 * An error answer that is not the service's `{"error":…}`: a reverse proxy's or load balancer's
 * (an nginx 413 for a file above its body limit, a 502 while the service restarts, a 429 of a rate
 * limiter). Said by its status, with what to do; the answer's own text only when it is one short
 * line of plain text — never an HTML page's markup or another API's JSON.
 */
function unexpectedAnswer(res: Response, text: string): string {
  const status = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
  const seconds = Number(res.headers.get('retry-after'));
  const later = Number.isInteger(seconds) && seconds > 0 ? `in ${seconds} s` : 'in a moment';
  let message: string;
  if (res.status === 413) message = `The server, or a proxy in front of it, refused a request this large (${status}).`;
  else if (res.status === 429)
    message = `The server, or a proxy in front of it, is getting too many requests (${status}); try again ${later}.`;
  else if (res.status === 502 || res.status === 503 || res.status === 504)
    message = `The server is not answering right now (${status} from a proxy in front of it); try again ${later}.`;
  else if (res.status >= 500) message = `The server failed (${status}); try again ${later}.`;
  else if (res.status === 401 || res.status === 403) message = `The server, or a proxy in front of it, refused the request (${status}).`;
  else message = `The server answered ${status}, not a CrawlHub answer: is the server URL right?`;
  const type = res.headers.get('content-type') ?? '';
  const line = text.trim();
  const plain = /^text\/plain\b/i.test(type) && line !== '' && !line.includes('\n') && line.length <= MAX_REASON;
  return plain && !/^[<{[]/.test(line) ? `${message} It said: ${line.replace(/\.$/, '')}.` : message;
}

/** Why every call fails after the stored token was revoked (a 401): the words the user sees wherever that shows. */
export const TOKEN_REFUSED = 'the server no longer accepts the stored API token (it was revoked or has expired)';
/** The same for a place that shows only a message (a failed file save, a terminal). */
export const SIGN_IN_AGAIN = `Sign in to CrawlHub again: ${TOKEN_REFUSED}.`;

/** The server refused the stored token; `signed_out` (no token at all, a 401 of ours) is another matter. */
export function isTokenRefused(err: unknown): boolean {
  return err instanceof ApiError && err.status === 401 && err.code !== 'signed_out';
}

/** The message to show a person: the server's own words when there are any. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
