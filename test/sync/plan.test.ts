import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { planPath } from '../../service/sync/save';
import { ignoreMatcher, manifestCommand, parseManifest } from '../../service/sessions/workspace';

describe('three-way save plan', () => {
  const cases: [string, string | undefined, string | undefined, string | undefined, boolean, string][] = [
    ['untouched', 'A', 'A', 'A', false, 'none'],
    ['changed on the server only: kept', 'A', 'A', 'B', false, 'none'],
    ['modified in the workspace', 'A', 'B', 'A', false, 'modify'],
    ['added in the workspace', undefined, 'B', undefined, false, 'add'],
    ['deleted in the workspace', 'A', undefined, 'A', false, 'delete'],
    ['same change on both sides', 'A', 'B', 'B', false, 'none'],
    ['both changed: conflict', 'A', 'B', 'C', false, 'conflict'],
    ['both changed, overwrite', 'A', 'B', 'C', true, 'modify'],
    ['deleted on the server, modified here: conflict', 'A', 'B', undefined, false, 'conflict'],
    ['deleted on the server, modified here, overwrite: add', 'A', 'B', undefined, true, 'add'],
    ['modified on the server, deleted here: conflict', 'A', undefined, 'C', false, 'conflict'],
    ['added on both sides differently: conflict', undefined, 'B', 'C', false, 'conflict'],
  ];
  for (const [label, base, ws, stored, overwrite, action] of cases) {
    it(label, () => assert.equal(planPath(base, ws, stored, overwrite).action, action));
  }

  it('a conflict keeps the old base, so it is reported again next time', () => {
    assert.equal(planPath('A', 'B', 'C', false).newBase, 'A');
    assert.equal(planPath('A', 'B', 'A', false).newBase, 'B');
  });
});

describe('workspace listing', () => {
  it('ignores names and globs on every path segment', () => {
    const ignored = ignoreMatcher(['__pycache__', '.venv', 'node_modules', '.git', '*.pyc']);
    assert.ok(ignored('a/__pycache__/x.py'));
    assert.ok(ignored('.git/config'));
    assert.ok(ignored('pkg/mod.pyc'));
    assert.ok(!ignored('pkg/mod.py'));
    assert.ok(!ignored('gitignore/x'));
  });

  it('prunes ignored folders in the find command, passed as argv', () => {
    const cmd = manifestCommand('/workspace', ['__pycache__', '.git']);
    assert.deepEqual(cmd.slice(0, 13), [
      'find',
      '/workspace',
      '(',
      '!',
      '-path',
      '/workspace',
      '(',
      '-name',
      '__pycache__',
      '-o',
      '-name',
      '.git',
      ')',
    ]);
    assert.ok(cmd.includes('-prune'));
  });

  it('never prunes the workspace folder itself, whatever glob the ignore list holds (GNU find runs the command)', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-manifest-'));
    try {
      // Named like the real one, and with wildcard characters of its own (escaped for -path).
      const workspace = path.join(root, 'w[1]*', 'workspace');
      fs.mkdirSync(path.join(workspace, 'pkg', 'node_modules', 'x'), { recursive: true });
      fs.mkdirSync(path.join(workspace, 'work'), { recursive: true });
      fs.writeFileSync(path.join(workspace, 'pkg', 'a.py'), 'a');
      fs.writeFileSync(path.join(workspace, 'pkg', 'node_modules', 'x', 'i.js'), 'x');
      fs.writeFileSync(path.join(workspace, 'work', 'b.py'), 'b');
      const [cmd, ...args] = manifestCommand(workspace, ['node_modules', 'w*']);
      const out = execFileSync(cmd, args);
      assert.ok(out.includes(Buffer.from('\t\0')), 'the starting point is listed (an unreadable one is told apart)');
      assert.deepEqual(
        parseManifest(out, 100)
          .entries.map((e) => e.path)
          .sort(),
        ['pkg', 'pkg/a.py'],
        '"w*" prunes "work" but not the workspace it matches too; node_modules is pruned',
      );
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('parses find output strictly and reports bad names', () => {
    const out = Buffer.from(
      [
        'd\t0\t1.5\t1.5\t1\t',
        'f\t12\t1700000000.123456789\t1700000000.5\t42\tpkg/a b.py',
        'l\t11\t1\t1\t43\tlink',
        'f\t1\t1\t1\t44\tbad\u0001name',
        '',
      ].join('\0'),
    );
    const m = parseManifest(out, 10);
    assert.deepEqual(
      m.entries.map((e) => [e.path, e.type, e.size]),
      [
        ['pkg/a b.py', 'file', 12],
        ['link', 'symlink', 11],
      ],
    );
    assert.equal(m.entries[0].mtimeMs, 1700000000123);
    assert.equal(m.problems.length, 1);
    // Names whose bytes are not UTF-8, or not in NFC: the file would be read under another name.
    const odd = parseManifest(
      Buffer.concat([Buffer.from('f\t1\t1\t1\t45\tcaf'), Buffer.from([0xe9]), Buffer.from('.csv\0f\t1\t1\t1\t46\tcafe\u0301.csv\0')]),
      10,
    );
    assert.deepEqual(
      odd.problems.map((p) => p.reason.split(' (')[0]),
      ['the name is not valid UTF-8'],
    );
    assert.deepEqual(
      odd.entries.map((e) => [e.path, e.onDisk]),
      [['caf\u00e9.csv', 'cafe\u0301.csv']],
    );
    assert.throws(() => parseManifest(Buffer.from('f\tNaN\t1\t1\t1\tx\0'), 10), /malformed/);
    assert.throws(() => parseManifest(Buffer.from('garbage\0'), 10), /malformed/);
    assert.throws(() => parseManifest(Buffer.from('f\t1\t1\t1\t1\ta\0f\t1\t1\t1\t1\tb\0'), 1), /more than 1/);
  });

  it("parses what links lead to (find's %Y) strictly, for links only, and only when asked", () => {
    const out = Buffer.from(
      ['l\td', 'l\tf', 'l\tN', 'l\tL', 'l\t?', 'l\tp', 'f\tf', 'd\td']
        .map((yY, i) => `${yY[0]}\t1\t1\t1\t${i}\t${yY[2]}\tn${i}`)
        .join('\0'),
    );
    assert.deepEqual(
      parseManifest(out, 10, { targets: true }).entries.map((e) => [e.path, e.type, e.target]),
      [
        ['n0', 'symlink', 'directory'],
        ['n1', 'symlink', 'file'],
        ['n2', 'symlink', null],
        ['n3', 'symlink', null],
        ['n4', 'symlink', null],
        ['n5', 'symlink', 'other'],
        ['n6', 'file', undefined],
        ['n7', 'directory', undefined],
      ],
    );
    // A save's listing has no such field: the letter is no target there, and no link gets one.
    const save = parseManifest(Buffer.from('l\t1\t1\t1\t1\td\0'), 10);
    assert.deepEqual(
      save.entries.map((e) => [e.path, 'target' in e]),
      [['d', false]],
    );
    for (const bad of ['l\t1\t1\t1\t1\t\tx\0', 'l\t1\t1\t1\t1\tdd\tx\0', 'l\t1\t1\t1\t1\t1\tx\0', 'l\t1\t1\t1\t1\td\0'])
      assert.throws(() => parseManifest(Buffer.from(bad), 10, { targets: true }), /malformed/, JSON.stringify(bad));
  });
});
