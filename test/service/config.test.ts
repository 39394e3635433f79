import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, parseDuration, parseSize, redactCredentials, SETTINGS } from '../../service/config';

describe('configuration', () => {
  it('has embedded defaults: SQLite and storage under ./data, 127.0.0.1:8000', () => {
    const c = loadConfig({});
    assert.equal(c.CRAWLHUB_HOST, '127.0.0.1');
    assert.equal(c.CRAWLHUB_PORT, 8000);
    assert.match(c.databaseUrl, /^sqlite:.*\/data\/crawlhub\.db$/);
    assert.equal(c.CRAWLHUB_STORAGE, 'fs');
    assert.equal(c.publicUrl, 'http://127.0.0.1:8000');
    assert.equal(c.CRAWLHUB_IDLE_TIMEOUT, 30 * 60_000);
    assert.equal(c.CRAWLHUB_MAX_SESSION_AGE, 4 * 3_600_000);
    assert.equal(c.CRAWLHUB_SWEEP_INTERVAL, 5 * 60_000);
    assert.equal(c.CRAWLHUB_START_TIMEOUT, 30_000);
    assert.deepEqual(c.CRAWLHUB_PORT_RANGE, { first: 10000, last: 10100 });
    assert.equal(c.CRAWLHUB_WORKSPACE_SIZE, 500 * 1024 * 1024);
    assert.equal(c.CRAWLHUB_SESSION_MEMORY, 1024 ** 3);
    assert.equal(c.CRAWLHUB_SESSION_CPUS, 1);
    assert.deepEqual(c.CRAWLHUB_SYNC_IGNORE, ['__pycache__', '.venv', 'venv', 'node_modules', '.git']);
  });

  it('reads postgres from DATABASE_URL', () => {
    assert.equal(loadConfig({ DATABASE_URL: 'postgres://u:p@db:5432/x' }).databaseUrl, 'postgres://u:p@db:5432/x');
  });

  it('names the variable and what is allowed for a bad value', () => {
    const cases: [string, string][] = [
      ['CRAWLHUB_PORT', 'eighty'],
      ['CRAWLHUB_PORT', '70000'],
      ['CRAWLHUB_MAX_FILE_SIZE', 'lots'],
      ['CRAWLHUB_IDLE_TIMEOUT', '30 minutes'],
      ['DATABASE_URL', 'mysql://x'],
      ['CRAWLHUB_PORT_RANGE', '100-50'],
      ['CRAWLHUB_LOG_LEVEL', 'loud'],
      ['CRAWLHUB_PUBLIC_URL', 'ftp://x'],
      ['CRAWLHUB_TRUSTED_ORIGINS', 'https://ok.example, not a url'],
    ];
    for (const [name, value] of cases) {
      assert.throws(
        () => loadConfig({ [name]: value }),
        (err: unknown) =>
          err instanceof ConfigError &&
          err.variable === name &&
          err.message.startsWith(`${name}: got "${value}"`) &&
          err.message.includes('expected'),
        name,
      );
    }
    assert.throws(
      () => loadConfig({ CRAWLHUB_MAX_FILE_SIZE: '1g', CRAWLHUB_MAX_SPIDER_SIZE: '1m' }),
      /CRAWLHUB_MAX_FILE_SIZE: must not exceed/,
    );
    // A spider as large as allowed has to fit into its session's /workspace (0: no limit at all).
    assert.throws(
      () => loadConfig({ CRAWLHUB_WORKSPACE_SIZE: '100m', CRAWLHUB_MAX_SPIDER_SIZE: '200m' }),
      /CRAWLHUB_WORKSPACE_SIZE: must be at least CRAWLHUB_MAX_SPIDER_SIZE \(209715200 bytes\)/,
    );
    assert.equal(loadConfig({ CRAWLHUB_WORKSPACE_SIZE: '0', CRAWLHUB_MAX_SPIDER_SIZE: '200m' }).CRAWLHUB_WORKSPACE_SIZE, 0);
    assert.equal(loadConfig({ CRAWLHUB_WORKSPACE_SIZE: '200m', CRAWLHUB_MAX_SPIDER_SIZE: '200m' }).CRAWLHUB_WORKSPACE_SIZE, 200 * 2 ** 20);
  });

  it('never repeats a password or a storage key when it refuses a database URL or storage spec', () => {
    const cases: [string, string, string][] = [
      ['DATABASE_URL', 'mysql://root:hunter2@db:3306/x', 'mysql://***@db:3306/x'],
      ['DATABASE_URL', 'Postgres://crawl:p@ss/w0rd@db/x', 'Postgres://***@db/x'],
      ['DATABASE_URL', 'postgres:/db/x?user=crawl&password=hunter2', 'postgres:/db/x?user=***&password=***'],
      ['CRAWLHUB_STORAGE', 'S3?bucket=b&secret_access_key=hunter2', 'S3?bucket=***&secret_access_key=***'],
      ['CRAWLHUB_STORAGE', 'azblob://acct:hunter2@host?account_key=hunter2', 'azblob://***@host?account_key=***'],
    ];
    for (const [name, value, shown] of cases) {
      assert.throws(
        () => loadConfig({ [name]: value }),
        (err: unknown) =>
          err instanceof ConfigError && err.message.startsWith(`${name}: got "${shown}"; expected`) && !/hunter2|w0rd/.test(err.message),
        value,
      );
    }
    assert.equal(redactCredentials('postgres://u:p@db:5432/x'), 'postgres://***@db:5432/x', 'as the service logs its database');
    assert.equal(redactCredentials('sqlite:/srv/data/crawlhub.db'), 'sqlite:/srv/data/crawlhub.db');
  });

  it('parses sizes and durations', () => {
    assert.equal(parseSize('500m'), 500 * 1024 * 1024);
    assert.equal(parseSize('25MiB'), 25 * 1024 * 1024);
    assert.equal(parseSize('1024'), 1024);
    assert.equal(parseSize('1.5k'), 1536);
    assert.equal(parseSize('-1'), undefined);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('4h'), 4 * 3_600_000);
    assert.equal(parseDuration('90'), 90);
    assert.equal(parseDuration('1d'), undefined);
  });

  it('refuses a duration a timer cannot hold and a size past 2^53 bytes, naming the maximum', () => {
    // Node clamps a timer over 2^31-1 ms to 1 ms: 600h of Docker timeout would time every call out at once.
    /** Each value is refused with one line that names its variable and the maximum. */
    const refusedPast = (maximum: string, cases: [string, string][]) => {
      for (const [name, value] of cases)
        assert.throws(
          () => loadConfig({ [name]: value }),
          (err: unknown) =>
            err instanceof ConfigError &&
            err.variable === name &&
            err.message.startsWith(`${name}: got "${value}"; expected`) &&
            err.message.includes(maximum) &&
            !err.message.includes('\n'),
          `${name}=${value}`,
        );
    };
    refusedPast('at most 2147483647 ms', [
      ['CRAWLHUB_DOCKER_TIMEOUT', '600h'],
      ['CRAWLHUB_SWEEP_INTERVAL', '720h'],
      ['CRAWLHUB_IDLE_TIMEOUT', '2147483648'],
      ['CRAWLHUB_MAX_SESSION_AGE', '597h'],
      ['CRAWLHUB_STOP_WARNING', '99999999999999999999h'],
    ]);
    assert.equal(loadConfig({ CRAWLHUB_MAX_SESSION_AGE: '596h' }).CRAWLHUB_MAX_SESSION_AGE, 596 * 3_600_000);
    assert.equal(loadConfig({ CRAWLHUB_DOCKER_TIMEOUT: '2147483647' }).CRAWLHUB_DOCKER_TIMEOUT, 2_147_483_647);
    assert.equal(parseDuration('597h'), undefined);
    refusedPast('at most 9007199254740991 bytes', [
      ['CRAWLHUB_MAX_SPIDER_SIZE', '99999999999999999999g'],
      ['CRAWLHUB_WORKSPACE_SIZE', '8388608g'],
      ['CRAWLHUB_SESSION_MEMORY', '9007199254740992'],
    ]);
    assert.equal(loadConfig({ CRAWLHUB_WORKSPACE_SIZE: '8388607g' }).CRAWLHUB_WORKSPACE_SIZE, 8_388_607 * 1024 ** 3);
    assert.equal(parseSize('8388608g'), undefined);
  });

  it('takes any spelling of an http(s) origin for the public URL and trusted origins, and keeps its normal form', () => {
    const publicUrl = (value: string) => loadConfig({ CRAWLHUB_PUBLIC_URL: value });
    assert.equal(publicUrl('https://crawlhub.example.com:443').publicUrl, 'https://crawlhub.example.com');
    assert.equal(publicUrl('https://CrawlHub.Example.com').publicUrl, 'https://crawlhub.example.com');
    assert.equal(publicUrl('HTTP://crawlhub.example.com:80/').publicUrl, 'http://crawlhub.example.com');
    assert.equal(publicUrl('https://crawlhub.example.com:8443/').CRAWLHUB_PUBLIC_URL, 'https://crawlhub.example.com:8443');
    assert.deepEqual(
      loadConfig({ CRAWLHUB_TRUSTED_ORIGINS: 'https://IDE.example.com:443, http://b.example:80/ ,http://[::1]:9000' })
        .CRAWLHUB_TRUSTED_ORIGINS,
      ['https://ide.example.com', 'http://b.example', 'http://[::1]:9000'],
    );
    // Still only an origin: the service serves from the root, so a path, query, fragment or credentials is refused.
    for (const value of [
      'https://crawlhub.example.com/app',
      'https://crawlhub.example.com/?a=1',
      'https://crawlhub.example.com/#x',
      'https://u:p@crawlhub.example.com',
      'ws://crawlhub.example.com',
      'https://',
    ]) {
      for (const name of ['CRAWLHUB_PUBLIC_URL', 'CRAWLHUB_TRUSTED_ORIGINS']) {
        assert.throws(
          () => loadConfig({ [name]: value }),
          (err: unknown) => err instanceof ConfigError && err.variable === name,
          `${name}=${value}`,
        );
      }
    }
  });

  it('derives a public URL a browser can reach from a wildcard listen address', () => {
    assert.equal(loadConfig({ CRAWLHUB_HOST: '0.0.0.0' }).publicUrl, 'http://127.0.0.1:8000');
    assert.equal(loadConfig({ CRAWLHUB_HOST: '::' }).publicUrl, 'http://[::1]:8000');
    assert.equal(loadConfig({ CRAWLHUB_HOST: '::1', CRAWLHUB_PORT: '9000' }).publicUrl, 'http://[::1]:9000');
    assert.equal(loadConfig({ CRAWLHUB_HOST: 'crawlhub.local' }).publicUrl, 'http://crawlhub.local:8000');
  });

  it('takes the CPUs per session as a decimal number only', () => {
    assert.equal(loadConfig({ CRAWLHUB_SESSION_CPUS: '0.5' }).CRAWLHUB_SESSION_CPUS, 0.5);
    assert.equal(loadConfig({ CRAWLHUB_SESSION_CPUS: '2' }).CRAWLHUB_SESSION_CPUS, 2);
    assert.equal(loadConfig({ CRAWLHUB_SESSION_CPUS: ' 1.25 ' }).CRAWLHUB_SESSION_CPUS, 1.25);
    for (const value of ['0x10', '1e1', '0b1', 'Infinity', '0', '65', '-1', '1,5']) {
      assert.throws(
        () => loadConfig({ CRAWLHUB_SESSION_CPUS: value }),
        (err: unknown) => err instanceof ConfigError && err.message.startsWith(`CRAWLHUB_SESSION_CPUS: got "${value}"; expected`),
        value,
      );
    }
  });

  it('refuses session limits code-server cannot start or load a window under, naming the variable', () => {
    // Measured with the session image: at 64m or a pid limit of 16 code-server never answers
    // /healthz; one browser window took ~240 MiB and ~50 processes and threads.
    for (const [name, value] of [
      ['CRAWLHUB_SESSION_MEMORY', '64m'],
      ['CRAWLHUB_SESSION_MEMORY', '255m'],
      ['CRAWLHUB_SESSION_PIDS', '16'],
      ['CRAWLHUB_SESSION_PIDS', '63'],
    ]) {
      assert.throws(
        () => loadConfig({ [name]: value }),
        (err: unknown) =>
          err instanceof ConfigError && err.variable === name && err.message.startsWith(`${name}: got "${value}"; expected`),
        `${name}=${value}`,
      );
    }
    assert.match(
      (() => {
        try {
          loadConfig({ CRAWLHUB_SESSION_MEMORY: '64m' });
        } catch (err) {
          return (err as Error).message;
        }
        return '';
      })(),
      /256m/,
      'the message says what is enough',
    );
    const least = loadConfig({ CRAWLHUB_SESSION_MEMORY: '256m', CRAWLHUB_SESSION_PIDS: '64' });
    assert.equal(least.CRAWLHUB_SESSION_MEMORY, 256 * 1024 * 1024);
    assert.equal(least.CRAWLHUB_SESSION_PIDS, 64);
  });

  it("refuses a code domain that has the service's own host under it", () => {
    // Every request whose Host is under the code domain goes to a session: the API would be unreachable.
    for (const env of [
      { CRAWLHUB_PUBLIC_URL: 'https://hub.code.example.com', CRAWLHUB_CODE_DOMAIN: 'code.example.com' },
      { CRAWLHUB_PUBLIC_URL: 'https://hub.code.example.com:8443', CRAWLHUB_CODE_DOMAIN: 'code.example.com:443' },
      { CRAWLHUB_HOST: 'crawlhub.localhost', CRAWLHUB_CODE_DOMAIN: 'localhost' },
    ]) {
      assert.throws(
        () => loadConfig(env),
        (err: unknown) =>
          err instanceof ConfigError &&
          err.variable === 'CRAWLHUB_CODE_DOMAIN' &&
          /own host .* is under/.test(err.message) &&
          !err.message.includes('\n'),
        JSON.stringify(env),
      );
    }
    // Beside the service's host, or the service's host itself: sessions are its subdomains, the service is not one.
    for (const [publicUrl, domain] of [
      ['https://crawlhub.example.com', 'code.example.com'],
      ['https://code.example.com', 'code.example.com'],
      ['https://hubcode.example.com', 'code.example.com'],
      ['', 'code.localhost'],
    ]) {
      assert.equal(loadConfig({ CRAWLHUB_PUBLIC_URL: publicUrl, CRAWLHUB_CODE_DOMAIN: domain }).CRAWLHUB_CODE_DOMAIN, domain);
    }
  });

  it('every setting has a default that parses', () => {
    for (const [name, spec] of Object.entries(SETTINGS)) assert.doesNotThrow(() => spec.parse(spec.default, name), name);
  });
});
