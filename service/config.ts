import path from 'node:path';
import { z } from 'zod';

/** A configuration value that cannot be used: names the variable and what is allowed. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** The largest size: bytes past 2^53 - 1 are no longer exact numbers. */
export const MAX_SIZE_BYTES = Number.MAX_SAFE_INTEGER;
/** The longest duration: Node runs a timer of more than 2^31 - 1 ms after 1 ms instead. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** The least memory a session container is given: code-server with one browser window open needs about that. */
export const MIN_SESSION_MEMORY = 256 * 1024 * 1024;
/** The least process (and thread) limit a session container is given: code-server with one window runs ~50. */
export const MIN_SESSION_PIDS = 64;

/** "500m", "25MiB", "1g" or a plain number of bytes; undefined past MAX_SIZE_BYTES. */
export function parseSize(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = match ? SIZE_UNITS[match[2].toLowerCase()] : undefined;
  if (!match || unit === undefined) return undefined;
  const n = Math.floor(Number(match[1]) * unit);
  return n <= MAX_SIZE_BYTES ? n : undefined;
}

/** "30s", "5m", "4h", "250ms"; a plain number is milliseconds; undefined past MAX_DURATION_MS. */
export function parseDuration(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(text);
  if (!match) return undefined;
  const n = Math.floor(Number(match[1]) * DURATION_UNITS[(match[2] ?? 'ms').toLowerCase()]);
  return n <= MAX_DURATION_MS ? n : undefined;
}

/**
 * A database URL or storage spec as it may be printed (a log line, a configuration error): the
 * credentials before an `@` and every query value (`?password=`, a storage key) become ***.
 */
export function redactCredentials(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:)?(\/\/)?.*@/i, '$1$2***@').replace(/([?&][^=&#]*=)[^&#]*/g, '$1***');
}

/** The parts of a setting's value that must never be printed: a URL's user and password, every query value. */
function secretsOf(value: string): string[] {
  const found: string[] = [];
  const userinfo = /^(?:[a-z][a-z0-9+.-]*:)?(?:\/\/)?(.*)@/i.exec(value)?.[1];
  // The password (or a lone token before the @); a user name alone is no secret, and hiding it would
  // hide every word that contains it ("crawlhub_migrations").
  if (userinfo) found.push(userinfo, userinfo.slice(userinfo.indexOf(':') + 1));
  const q = value.indexOf('?');
  if (q !== -1) for (const [, v] of new URLSearchParams(value.slice(q + 1))) found.push(v);
  const decoded = found.map((v) => {
    try {
      return decodeURIComponent(v);
    } catch {
      return v;
    }
  });
  // Longest first, so that a password is not left half shown by one of its parts.
  return [...new Set([...found, ...decoded])].filter((v) => v.length >= 3).sort((a, b) => b.length - a.length);
}

/**
 * Runs a start-up step that a setting decides — opening the database, the storage, the data dir —
 * so that what it throws is a ConfigError naming that setting: one line, the value shown with its
 * credentials replaced, and nothing of them in the reason either.
 */
export async function fromSetting<T>(variable: string, value: string, what: string, task: () => T | Promise<T>): Promise<T> {
  try {
    return await task();
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    let reason = err instanceof Error ? err.message : String(err);
    for (const secret of secretsOf(value)) reason = reason.split(secret).join('***');
    reason = reason.replace(/\s*\n\s*/g, ' ').trim();
    throw new ConfigError(variable, `cannot ${what} ${JSON.stringify(redactCredentials(value))}: ${reason}`);
  }
}

interface Setting<T> {
  default: string;
  help: string;
  parse(text: string, variable: string): T;
}

function setting<T>(
  defaultValue: string,
  help: string,
  parse: (text: string) => T | undefined,
  shown: (text: string) => string = (t) => t,
): Setting<T> {
  return {
    default: defaultValue,
    help,
    parse(text, variable) {
      const value = parse(text);
      if (value === undefined) throw new ConfigError(variable, `got ${JSON.stringify(shown(text))}; expected ${help}`);
      return value;
    },
  };
}

const str = (d: string, help: string) => setting(d, help, (t) => t);
const int = (d: string, min: number, max: number) =>
  setting(d, `a whole number from ${min} to ${max}`, (t) => {
    const n = /^\s*\d+\s*$/.test(t) ? Number(t) : NaN;
    return Number.isInteger(n) && n >= min && n <= max ? n : undefined;
  });
const size = (d: string, min = 1, why = '') =>
  setting(d, `a size such as 500m, 25MiB or a number of bytes (at least ${min}, at most ${MAX_SIZE_BYTES} bytes${why})`, (t) => {
    const n = parseSize(t);
    return n !== undefined && n >= min ? n : undefined;
  });
const duration = (d: string, min = 1) =>
  setting(d, `a duration such as 250ms, 30s, 5m or 4h (at least ${min} ms, at most ${MAX_DURATION_MS} ms: about 596h)`, (t) => {
    const n = parseDuration(t);
    return n !== undefined && n >= min ? n : undefined;
  });
const bool = (d: string) =>
  setting(d, 'true or false', (t) => (/^(1|true|yes|on)$/i.test(t) ? true : /^(0|false|no|off)$/i.test(t) ? false : undefined));
const list = (d: string, help: string) =>
  setting(d, help, (t) =>
    t
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );

const hostName = z.string().regex(/^[A-Za-z0-9.:[\]-]+$/);
/**
 * An http(s) origin in its normal form (the host lower-cased, a default port dropped). Only an
 * origin: the service serves from the root of its host, so a path, query, fragment or credentials
 * (which the browser's Origin header never carries) is refused.
 */
const origin = (t: string) => {
  try {
    const url = new URL(t);
    return /^https?:$/.test(url.protocol) && url.href === `${url.origin}/` ? url.origin : undefined;
  } catch {
    return undefined;
  }
};

/** The URL a browser on this machine reaches a service listening on host:port at (a wildcard address is no destination). */
export function localUrl(host: string, port: number): string {
  const shown = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${shown.includes(':') ? `[${shown}]` : shown}:${port}`;
}

/**
 * Every setting the service reads, with its default and what it accepts. The README's
 * configuration table is this list; `crawlhub config` prints it.
 */
export const SETTINGS = {
  CRAWLHUB_HOST: setting('127.0.0.1', 'a host name or IP address to listen on', (t) => (hostName.safeParse(t).success ? t : undefined)),
  CRAWLHUB_PORT: int('8000', 0, 65535),
  CRAWLHUB_PUBLIC_URL: setting(
    '',
    'the URL users reach the service at, such as https://crawlhub.example.com (default: http://HOST:PORT)',
    (t) => (t === '' ? '' : origin(t)),
  ),
  CRAWLHUB_DATA_DIR: str('./data', 'a directory'),
  DATABASE_URL: setting(
    '',
    'sqlite:<file>, or postgres://user:pass@host:port/db (default: sqlite in the data dir)',
    (t) => (t === '' || /^sqlite:.+/.test(t) || /^postgres(ql)?:\/\/.+/.test(t) ? t : undefined),
    redactCredentials,
  ),
  CRAWLHUB_STORAGE: setting(
    'fs',
    'an OpenDAL scheme with options as a query, such as fs or fs?root=/srv/crawlhub or s3?bucket=b&region=r',
    (t) => (/^[a-z0-9_-]+(\?.*)?$/.test(t) ? t : undefined),
    redactCredentials,
  ),
  CRAWLHUB_LOG_LEVEL: setting('info', 'one of fatal, error, warn, info, debug, trace, silent', (t) =>
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(t) ? t : undefined,
  ),
  CRAWLHUB_MAX_FILE_SIZE: size('25m'),
  CRAWLHUB_MAX_SPIDER_SIZE: size('500m'),
  CRAWLHUB_MAX_SPIDER_FILES: int('10000', 1, 1_000_000),
  CRAWLHUB_MAX_JSON_BODY: size('1m', 1024),
  CRAWLHUB_IMAGE: str('crawlhub-code-server:latest', 'a Docker image reference'),
  CRAWLHUB_INSTANCE: setting('', 'a name for this service instance, letters, digits, - and _ (default: derived from the data dir)', (t) =>
    t === '' || /^[A-Za-z0-9_-]{1,40}$/.test(t) ? t : undefined,
  ),
  CRAWLHUB_DOCKER_TIMEOUT: duration('60s', 100),
  CRAWLHUB_NETWORK: setting('crawlhub-sessions', 'a Docker network name', (t) =>
    /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(t) ? t : undefined,
  ),
  CRAWLHUB_SESSION_CPUS: setting('1', 'a decimal number of CPUs (more than 0, at most 64) such as 1 or 0.5', (t) => {
    // Decimal only: Number() would also take 0x10 or 1e1.
    const n = /^\s*(\d+(\.\d+)?|\.\d+)\s*$/.test(t) ? Number(t) : NaN;
    return n > 0 && n <= 64 ? n : undefined;
  }),
  // The least a session works with: code-server with one browser window open measured ~240 MiB and
  // ~50 processes and threads (idle, before any window: ~85 MiB and 22); below that it never starts.
  CRAWLHUB_SESSION_MEMORY: size('1g', MIN_SESSION_MEMORY, '; 256m: code-server with one browser window needs about that'),
  CRAWLHUB_SESSION_PIDS: int('1024', MIN_SESSION_PIDS, 100_000),
  CRAWLHUB_MAX_USER_SESSIONS: int('10', 1, 10_000),
  CRAWLHUB_WORKSPACE_SIZE: size('500m', 0),
  CRAWLHUB_PORT_RANGE: setting('10000-10100', 'two port numbers such as 10000-10100', (t) => {
    const m = /^(\d+)-(\d+)$/.exec(t.trim());
    if (!m) return undefined;
    const [lo, hi] = [Number(m[1]), Number(m[2])];
    return lo >= 1024 && hi <= 65535 && lo <= hi ? { first: lo, last: hi } : undefined;
  }),
  CRAWLHUB_START_TIMEOUT: duration('30s', 100),
  CRAWLHUB_IDLE_TIMEOUT: duration('30m', 100),
  CRAWLHUB_MAX_SESSION_AGE: duration('4h', 100),
  CRAWLHUB_SWEEP_INTERVAL: duration('5m', 50),
  CRAWLHUB_STOP_WARNING: duration('10m', 0),
  CRAWLHUB_RECONNECT_GRACE: duration('2m', 1000),
  CRAWLHUB_SYNC_IGNORE: list(
    '__pycache__,.venv,venv,node_modules,.git',
    'a comma-separated list of names or globs (matched against each path segment)',
  ),
  CRAWLHUB_SYNC_TIMEOUT: duration('120s', 100),
  CRAWLHUB_CODE_DOMAIN: setting('', 'a domain such as code.example.com whose subdomains serve sessions', (t) =>
    t === '' || /^(?=.{1,200}$)([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]*[a-z0-9])?(:\d+)?$/.test(t) ? t : undefined,
  ),
  CRAWLHUB_TRUSTED_ORIGINS: setting('', 'a comma-separated list of origins such as https://ide.example.com', (t) => {
    const items = t
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map(origin);
    return items.every((o) => o !== undefined) ? items : undefined;
  }),
  CRAWLHUB_PROXY_UPSTREAM: setting('auto', 'auto or port', (t) => (['auto', 'port'].includes(t) ? t : undefined)),
  CRAWLHUB_SECURE_COOKIES: setting('auto', 'auto, true or false', (t) => (['auto', 'true', 'false'].includes(t) ? t : undefined)),
  CRAWLHUB_METRICS_PUBLIC: bool('true'),
} satisfies Record<string, Setting<unknown>>;

type Settings = typeof SETTINGS;
type Raw = { [K in keyof Settings]: ReturnType<Settings[K]['parse']> };

export interface Config extends Raw {
  dataDir: string;
  databaseUrl: string;
  publicUrl: string;
  instance: string;
}

/** Reads every setting from the environment; the first bad one throws a ConfigError. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Raw> = {}): Config {
  const raw = {} as Record<string, unknown>;
  for (const [name, spec] of Object.entries(SETTINGS) as [keyof Settings, Setting<unknown>][]) {
    const value = env[name];
    raw[name] = name in overrides ? overrides[name] : spec.parse(value === undefined || value === '' ? spec.default : value, name);
  }
  const cfg = raw as Raw;
  const dataDir = path.resolve(cfg.CRAWLHUB_DATA_DIR);
  const spiderSize = cfg.CRAWLHUB_MAX_SPIDER_SIZE;
  if (cfg.CRAWLHUB_MAX_FILE_SIZE > spiderSize) {
    throw new ConfigError('CRAWLHUB_MAX_FILE_SIZE', `must not exceed CRAWLHUB_MAX_SPIDER_SIZE (${spiderSize} bytes)`);
  }
  if (cfg.CRAWLHUB_WORKSPACE_SIZE > 0 && cfg.CRAWLHUB_WORKSPACE_SIZE < spiderSize) {
    // Every session's copy of a spider as large as allowed would fail for want of room.
    throw new ConfigError(
      'CRAWLHUB_WORKSPACE_SIZE',
      `must be at least CRAWLHUB_MAX_SPIDER_SIZE (${spiderSize} bytes): a spider that large is copied into its session's /workspace (0: no limit)`,
    );
  }
  const publicUrl = cfg.CRAWLHUB_PUBLIC_URL || localUrl(cfg.CRAWLHUB_HOST, cfg.CRAWLHUB_PORT);
  if (cfg.CRAWLHUB_CODE_DOMAIN) {
    // A request's Host under the code domain goes to the session it names: the service's own host
    // there would send every API request and launch URL to a "session" instead.
    const codeHost = cfg.CRAWLHUB_CODE_DOMAIN.replace(/:\d+$/, '');
    const serviceHost = new URL(publicUrl).hostname;
    if (serviceHost.endsWith(`.${codeHost}`)) {
      throw new ConfigError(
        'CRAWLHUB_CODE_DOMAIN',
        `the service's own host ${serviceHost} (${cfg.CRAWLHUB_PUBLIC_URL ? 'CRAWLHUB_PUBLIC_URL' : 'CRAWLHUB_HOST'}) is under ${codeHost}, whose subdomains are sessions: pick a domain it is not under (code.example.com for crawlhub.example.com)`,
      );
    }
  }
  return {
    ...cfg,
    dataDir,
    databaseUrl: cfg.DATABASE_URL || `sqlite:${path.join(dataDir, 'crawlhub.db')}`,
    publicUrl,
    instance: cfg.CRAWLHUB_INSTANCE || defaultInstance(dataDir),
  };
}

function defaultInstance(dataDir: string): string {
  // Stable across restarts of the same deployment, distinct for two data dirs on one host.
  let h = 0;
  for (const c of dataDir) h = (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0;
  return `chub-${h.toString(36)}`;
}
