import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normalizePath, parentFolders, tryNormalizePath } from '../../service/spiders/paths';

describe('spider paths', () => {
  it('normalises harmless forms', () => {
    assert.equal(normalizePath('a/b.py'), 'a/b.py');
    assert.equal(normalizePath('./a//b.py/'), 'a/b.py');
    assert.equal(normalizePath('cafe\u0301.py'), 'caf\u00e9.py');
    assert.equal(normalizePath('名前/スパイダー.py'), '名前/スパイダー.py');
    assert.equal(normalizePath('.hidden/.env'), '.hidden/.env');
    assert.equal(normalizePath('a..b/c...'), 'a..b/c...');
  });

  it('refuses escapes, absolutes, backslashes, NUL, controls and oversize paths', () => {
    for (const bad of [
      '',
      '.',
      './',
      '..',
      '../a',
      'a/../../b',
      'a/..',
      '/etc/passwd',
      'a\\b',
      'C:x',
      'a\u0000b',
      'a\nb',
      'a\u007fb',
      'a\u0085b',
      'a\u2028b',
      `${'x/'.repeat(33)}y`,
      'x'.repeat(256),
      `${'abcdefghi/'.repeat(103)}y`,
    ]) {
      assert.ok('problem' in tryNormalizePath(bad), JSON.stringify(bad));
      assert.throws(
        () => normalizePath(bad),
        (e: { status?: number; code?: string }) => e.status === 400 && e.code === 'invalid_path',
        JSON.stringify(bad),
      );
    }
  });

  it('lists parent folders', () => {
    assert.deepEqual(parentFolders('a/b/c.py'), ['a', 'a/b']);
    assert.deepEqual(parentFolders('c.py'), []);
  });
});
