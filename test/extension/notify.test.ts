import { stubs } from './helpers/windowStubs';
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { CrawlHubClient } from '../../extension/api/client';
import { ApiError } from '../../extension/api/errors';
import { silentLog } from '../../extension/core/log';
import { Notifier } from '../../extension/core/notify';
import { SignInPrompt } from '../../extension/core/signInPrompt';
import { SaveController } from '../../extension/save/saveController';
import { SaveTracker } from '../../extension/save/tracker';
import { scriptedServer, sendJson } from './helpers/server';

const output = { ...silentLog, show() {} } as any;
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('error notifications', () => {
  beforeEach(() => stubs.reset());

  it("offer the Sessions view for the server's session_limit: kept sessions count too, and are closed there", async () => {
    stubs.answers = ['Show Sessions'];
    const limit = new ApiError(
      429,
      'session_limit',
      'You have 2 code sessions open or kept (at most 2 are allowed): close one, then open this one.',
    );
    assert.equal(await new Notifier(output).error('Opening books', limit), undefined);
    assert.deepEqual(stubs.shown[0].items, ['Show Sessions', 'Show Output']);
    assert.deepEqual(stubs.commands, [['crawlhub.sessions.focus']]);
  });

  it('leave other errors as they were', async () => {
    await new Notifier(output).error('Opening books', new ApiError(503, 'no_engine', 'Docker is down.'), 'Try Again');
    assert.deepEqual(stubs.shown[0], {
      kind: 'error',
      message: 'CrawlHub: Opening books failed: Docker is down.',
      items: ['Try Again', 'Show Output'],
    });
  });
});

describe('a revoked token', () => {
  let server: Awaited<ReturnType<typeof scriptedServer>>;
  let prompt: SignInPrompt;
  let client: CrawlHubClient;

  before(async () => {
    // Every call answered as the service answers a revoked token.
    server = await scriptedServer((_req, res) =>
      sendJson(res, 401, { error: { code: 'unauthorized', message: 'The API token is unknown or was revoked.' } }),
    );
  });
  after(() => server.close());
  beforeEach(() => {
    stubs.reset();
    prompt?.dispose();
    prompt = new SignInPrompt(silentLog, () => server.url, 30);
    // As the extension wires it: any 401 of the stored token's client reaches the prompt.
    client = new CrawlHubClient({ serverUrl: server.url, token: 't', onUnauthorized: () => prompt.refused() });
  });

  /** What VS Code asks of the files of an open session, all refused. */
  const backgroundCalls = () =>
    Promise.all(
      [client.stat('s1', 'a.py'), client.readFile('s1', 'b.py'), client.sessions(), client.me()].map((p) => p.catch(() => undefined)),
    );

  it('is told once, with Sign In Again, however many calls it fails; again only after a new sign-in', async () => {
    await backgroundCalls();
    await backgroundCalls();
    await tick(60);
    await backgroundCalls();
    await tick(60);
    assert.equal(stubs.shown.length, 1, JSON.stringify(stubs.shown));
    assert.equal(stubs.shown[0].kind, 'warning');
    assert.match(stubs.shown[0].message, /^CrawlHub: http:\/\/127\.0\.0\.1:\d+ no longer accepts the stored API token/);
    assert.deepEqual(stubs.shown[0].items, ['Sign In Again']);

    prompt.reset(); // signed in again (and that token was revoked too)
    stubs.answers = ['Sign In Again'];
    await backgroundCalls();
    await tick(60);
    assert.equal(stubs.shown.length, 2);
    assert.deepEqual(stubs.commands, [['crawlhub.signIn']]);
  });

  function saveController() {
    return new SaveController(async () => client, { upsertSession() {} } as any, new SaveTracker(), new Notifier(output, prompt), output, {
      writesSettled: async () => {},
    });
  }
  const books = { session_id: 's1', spider_id: 'sp1', spider_name: 'books' };

  it('met by Save to Server is said by its error, with Sign In Again, and not a second time', async () => {
    stubs.answers = ['Sign In Again'];
    assert.equal(await saveController().save(books), undefined);
    await backgroundCalls(); // the explorer meets it too
    await tick(60);
    assert.equal(stubs.shown.length, 1, JSON.stringify(stubs.shown));
    assert.deepEqual(stubs.shown[0], {
      kind: 'error',
      message:
        'CrawlHub: Saving books failed: the server no longer accepts the stored API token (it was revoked or has expired). Sign in again.',
      items: ['Sign In Again', 'Show Output'],
    });
    assert.deepEqual(
      stubs.commands.filter((c) => c[0] !== 'setContext'),
      [['crawlhub.signIn']],
    );
  });

  it('once told, stays quiet for background calls, but a command the user runs still says that it failed', async () => {
    await backgroundCalls();
    await tick(60);
    assert.equal(await saveController().save(books), undefined);
    await backgroundCalls();
    await tick(60);
    assert.deepEqual(
      stubs.shown.map((x) => [x.kind, x.items]),
      [
        ['warning', ['Sign In Again']],
        ['error', ['Sign In Again', 'Show Output']],
      ],
    );
  });
});
