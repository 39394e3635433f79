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

  it('every setting has a default that parses', () => {
    for (const [name, spec] of Object.entries(SETTINGS)) assert.doesNotThrow(() => spec.parse(spec.default, name), name);
  });
});
