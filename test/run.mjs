#!/usr/bin/env node
// The whole suite, in the order a reader wants failures: style and types, the build, then the
// tests (unit, API on SQLite and — when TEST_POSTGRES_URL is set — PostgreSQL, real Docker,
// the browser IDE through the proxy, and the extension in a real VS Code workbench).
//   npm test                 everything
//   npm test -- <pattern>    only test files whose path contains <pattern> (after lint and build)
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const filter = process.argv.slice(2).filter((a) => !a.startsWith('-'));

function step(title, cmd, args, env = {}) {
  process.stdout.write(`\n== ${title}\n`);
  const res = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (res.status !== 0) {
    process.stdout.write(`\n${title} failed (exit ${res.status ?? res.signal}).\n`);
    process.exit(res.status || 1);
  }
}

function findTests(dir) {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return name === 'helpers' ? [] : findTests(full);
    return name.endsWith('.test.ts') ? [full] : [];
  });
}

step('lint (eslint, type-checked)', 'npx', ['eslint', '.']);
step('format (prettier)', 'npx', ['prettier', '--check', '.']);
step('types (tsc)', 'npx', ['tsc', '-p', 'tsconfig.json', '--noEmit']);
step('build and package the extension', 'npm', ['run', '--silent', 'package']);
step('container image (skipped when its recipe is unchanged)', 'bash', ['images/local/build.sh']);

// The tests use the image this checkout builds, by its own tag: crawlhub-code-server:latest may be
// a production image that build.sh leaves alone. A CRAWLHUB_IMAGE set by the caller wins.
function localImageTag() {
  const res = spawnSync('bash', ['images/local/build.sh', '--print-tag'], { cwd: root, encoding: 'utf8' });
  const tag = res.status === 0 ? res.stdout.trim() : '';
  if (!tag) {
    process.stdout.write(`\nimages/local/build.sh --print-tag failed (exit ${res.status ?? res.signal}): ${res.stderr}\n`);
    process.exit(1);
  }
  return tag;
}
const image = process.env.CRAWLHUB_IMAGE || localImageTag();

const files = findTests(path.join(root, 'test'))
  .filter((f) => filter.length === 0 || filter.some((p) => f.includes(p)))
  .sort();
step(
  `tests (${files.length} files)`,
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=1',
    // A test that waits on something that never comes fails instead of holding CI until its own limit.
    '--test-timeout=900000',
    '--test-reporter=spec',
    ...files,
  ],
  { CRAWLHUB_IMAGE: image },
);
