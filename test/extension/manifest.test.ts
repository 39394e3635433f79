import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Commands } from '../../extension/commands/ids';
import { ContextKeys } from '../../extension/core/contextKeys';
import { StatusBarItems } from '../../extension/statusBar/items';

const root = path.resolve(__dirname, '../..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const contributes = pkg.contributes;

const commandIds = Object.values(Commands) as string[];
const contributed = (contributes.commands as { command: string }[]).map((c) => c.command);
const allWhen = (): string[] => [
  ...Object.values(contributes.menus as Record<string, { when?: string }[]>).flatMap((items) => items.map((i) => i.when ?? '')),
  ...(contributes.viewsWelcome as { when?: string }[]).map((w) => w.when ?? ''),
];

describe('package.json contributions', () => {
  it('contributes exactly the commands of the typed list, each once', () => {
    assert.deepEqual([...contributed].sort(), [...commandIds].sort());
    assert.equal(new Set(contributed).size, contributed.length);
  });

  it('puts every command in the CrawlHub category with a title', () => {
    for (const c of contributes.commands) {
      assert.equal(c.category, 'CrawlHub', c.command);
      assert.ok(c.title, c.command);
    }
  });

  it('menus and welcome links name only known commands', () => {
    for (const items of Object.values(contributes.menus as Record<string, { command: string }[]>))
      for (const item of items) assert.ok(commandIds.includes(item.command), item.command);
    for (const w of contributes.viewsWelcome as { contents: string }[])
      for (const [, id] of w.contents.matchAll(/\(command:([\w.]+)\)/g)) assert.ok(commandIds.includes(id), id);
  });

  it('when clauses use only context keys from the typed table', () => {
    const known = new Set<string>(Object.values(ContextKeys));
    for (const when of allWhen())
      for (const [key] of when.matchAll(/crawlhub\.[a-zA-Z]+/g)) {
        if (key === 'crawlhub.spiders' || key === 'crawlhub.sessions') continue; // view ids
        assert.ok(known.has(key), `${key} in "${when}"`);
      }
  });

  it('item menus match the contextValues the trees set', () => {
    const contextValues = ['none', 'starting', 'ready', 'syncing', 'kept', 'failed'].flatMap((s) => [`spider:${s}`, `session:${s}`]);
    const menuFor = (value: string) =>
      (contributes.menus['view/item/context'] as { command: string; when: string }[])
        .filter((m) => {
          const re = /viewItem =~ \/(.+?)\//.exec(m.when);
          return re && new RegExp(re[1]).test(value);
        })
        .map((m) => m.command);
    assert.ok(menuFor('spider:none').includes(Commands.openInEditor));
    assert.ok(!menuFor('spider:none').includes(Commands.save));
    for (const c of [
      Commands.save,
      Commands.previewSave,
      Commands.closeSession,
      Commands.copyUrl,
      Commands.openInBrowser,
      Commands.openTerminal,
    ])
      assert.ok(menuFor('spider:ready').includes(c), c);
    assert.ok(menuFor('session:starting').includes(Commands.closeSession));
    assert.ok(!menuFor('session:starting').includes(Commands.save));
    // A kept session (stopped container, save pending) counts toward the limit: it can be saved and
    // closed (the server reads its archive) and opened again; nothing that needs it running.
    for (const v of ['spider:kept', 'session:kept']) {
      for (const c of [Commands.save, Commands.closeSession, Commands.openInEditor]) assert.ok(menuFor(v).includes(c), `${v} ${c}`);
      for (const c of [Commands.copyUrl, Commands.openTerminal, Commands.openPort, Commands.previewSave])
        assert.ok(!menuFor(v).includes(c), `${v} ${c}`);
    }
    for (const v of contextValues) assert.ok(menuFor(v).length > 0, v);
  });

  it('status-bar items run contributed commands', () => {
    for (const item of Object.values(StatusBarItems)) {
      assert.ok(contributed.includes(item.command), item.id);
      if ('commandWhenTokenRefused' in item) assert.ok(contributed.includes(item.commandWhenTokenRefused), item.id);
    }
  });

  it('declares the activity-bar container, both views and a welcome with Sign In', () => {
    assert.equal(contributes.viewsContainers.activitybar[0].id, 'crawlhub');
    assert.ok(fs.existsSync(path.join(root, contributes.viewsContainers.activitybar[0].icon)));
    assert.deepEqual(
      contributes.views.crawlhub.map((v: { id: string }) => v.id),
      ['crawlhub.spiders', 'crawlhub.sessions'],
    );
    const signedOut = contributes.viewsWelcome.find((w: { when: string }) => w.when === '!crawlhub.signedIn');
    assert.match(signedOut.contents, /\(command:crawlhub\.signIn\)/);
    assert.ok(fs.existsSync(path.join(root, pkg.icon)));
  });

  it('activates for crawlhub: files (views and commands activate implicitly)', () => {
    assert.deepEqual(pkg.activationEvents, ['onFileSystem:crawlhub']);
  });

  it('keeps no token in settings', () => {
    const props = Object.keys(contributes.configuration.properties);
    assert.deepEqual(props.sort(), ['crawlhub.countPendingChanges', 'crawlhub.heartbeatIntervalMinutes', 'crawlhub.serverUrl']);
    assert.ok(!props.some((p) => /token|secret|password/i.test(p)));
  });
});
