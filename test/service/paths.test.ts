import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { existingPathForm, normalizePath, parentFolders, tryNormalizePath } from '../../service/spiders/paths';

describe('spider paths', () => {
  it('keeps the joiners some scripts write words with (ZWNJ, ZWJ)', () => {
    assert.deepEqual(tryNormalizePath('\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645.py'), {
      path: '\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645.py',
    });
    assert.deepEqual(tryNormalizePath('\u{1F468}\u200D\u{1F4BB}.md'), { path: '\u{1F468}\u200D\u{1F4BB}.md' });
  });

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
      // Characters that make a name look like another: a right-to-left override, marks, zero-width space, BOM.
      'invoice\u202Efdp.py',
      'a\u200Bb',
      'a\u200Fb',
      'a\u2066b',
      '\uFEFFa.py',
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

  it('finds a file stored before the naming rules by its name, but never past a structural rule', () => {
    // Naming rules added after files were stored: such a name still finds its file (to read, delete or rename it away).
    assert.equal(existingPathForm('invoice\u202Efdp.py'), 'invoice\u202Efdp.py');
    assert.equal(existingPathForm('./docs//caf\uFFFD.txt'), 'docs/caf\uFFFD.txt');
    assert.equal(existingPathForm('\uFEFFcafe\u0301.py'), '\uFEFFcaf\u00e9.py');
    // The rules every stored file has always passed.
    for (const bad of [
      '',
      '.',
      '../a\u202E',
      'a/../../b',
      '/etc/passwd',
      'a\\b',
      'C:x',
      'a\u0000b',
      'a\nb',
      `${'x/'.repeat(33)}y`,
      'x'.repeat(256),
    ])
      assert.equal(existingPathForm(bad), null, JSON.stringify(bad));
  });

  it('lists parent folders', () => {
    assert.deepEqual(parentFolders('a/b/c.py'), ['a', 'a/b']);
    assert.deepEqual(parentFolders('c.py'), []);
  });
});
