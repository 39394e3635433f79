import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { SETTINGS } from '../../service/config';

const readme = fs.readFileSync(path.resolve(__dirname, '../../README.md'), 'utf8');

describe('README', () => {
  it('its configuration table lists every setting the service reads', () => {
    const rows = new Set([...readme.matchAll(/^\|\s*`([A-Z_]+)`\s*\|/gm)].map((m) => m[1]));
    for (const name of Object.keys(SETTINGS)) assert.ok(rows.has(name), `${name} is missing from the README's table`);
  });

  it('its quick start has exactly two commands, and .ci/run runs the second', () => {
    const quick = /## Quick start\s+```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    const commands = quick.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
    assert.equal(commands.length, 2, quick);
    const testCommand = commands[1].split('#')[0].trim();
    const ci = fs.readFileSync(path.resolve(__dirname, '../../.ci/run'), 'utf8');
    assert.ok(
      ci.split('\n').some((l) => l.trim() === testCommand),
      `.ci/run must run "${testCommand}"`,
    );
  });
});
