import { AppError } from './errors';

/** The conditional-request headers of a change to a resource (RFC 9110, section 13). */
export interface Preconditions {
  ifMatch?: string;
  ifNoneMatch?: string;
}

/** The entity tags of an If-Match or If-None-Match list, each with whether it is weak; `*` stands for any. */
function entityTags(header: string): '*' | { weak: boolean; tag: string }[] {
  if (header.trim() === '*') return '*';
  return [...header.matchAll(/(W\/)?"([^"]*)"/g)].map((m) => ({ weak: m[1] !== undefined, tag: m[2] }));
}

/**
 * Refuses a change with 412 `precondition_failed` unless the resource is as its If-Match and
 * If-None-Match headers require. `current` is its entity tag (without quotes) now, or null when it
 * does not exist. Call it where the change is decided (under the lock that serialises changes),
 * so that another change cannot slip in between the check and the write.
 */
export function checkPreconditions(conditions: Preconditions, current: string | null, what: string): void {
  const { ifMatch, ifNoneMatch } = conditions;
  if (ifMatch !== undefined) {
    const tags = entityTags(ifMatch);
    // A strong comparison: a weak tag never matches.
    const ok = current !== null && (tags === '*' || tags.some((t) => !t.weak && t.tag === current));
    if (!ok)
      throw new AppError(
        412,
        'precondition_failed',
        current === null
          ? `${what} does not exist (If-Match). Nothing was changed.`
          : `${what} has changed: its ETag is now "${current}" (If-Match). Nothing was changed.`,
      );
  }
  if (ifNoneMatch !== undefined) {
    const tags = entityTags(ifNoneMatch);
    const matches = current !== null && (tags === '*' || tags.some((t) => t.tag === current));
    if (matches)
      throw new AppError(
        412,
        'precondition_failed',
        tags === '*'
          ? `${what} exists already (If-None-Match: *). Nothing was changed.`
          : `${what} has the ETag "${current}" (If-None-Match). Nothing was changed.`,
      );
  }
}

/**
 * Whether a GET is answered 304 Not Modified: If-None-Match names the current entity tag (a weak
 * comparison), or, without it, If-Modified-Since is not before the last change (RFC 9110, 13.2.2).
 * The origin server's rule, not a cache's: the `Cache-Control: no-cache` that fetch() adds to every
 * conditional request does not turn it off (Koa's `ctx.fresh` is a cache's).
 */
export function notModified(
  headers: { ifNoneMatch?: string; ifModifiedSince?: string },
  current: { etag: string; modified: Date },
): boolean {
  if (headers.ifNoneMatch !== undefined) {
    const tags = entityTags(headers.ifNoneMatch);
    return tags === '*' || tags.some((t) => t.tag === current.etag);
  }
  if (headers.ifModifiedSince !== undefined) {
    const since = Date.parse(headers.ifModifiedSince);
    // HTTP dates have whole seconds.
    return Number.isFinite(since) && Math.floor(current.modified.getTime() / 1000) * 1000 <= since;
  }
  return false;
}
