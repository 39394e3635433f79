import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { explorerNames, frameShowing, openFileInExplorer, openWorkbench, runCommand, typeAndSave, type Workbench } from '../helpers/ide';
import { copyProject, dockerAvailable, SCRAPY_PROJECT, startCodeServer, type CodeServerContainer } from './code-server';
import { FakeSessions, openWs, request, signIn, startProxyServer, TOKEN, type ProxyServer } from './harness';

const USER = 'a11ce000-0000-4000-8000-000000000001';

// code-server's own requests that fail without the proxy being at fault: vsda is Microsoft's
// closed-source signing module, which open-source builds do not ship.
const EXPECTED_HTTP_ERRORS = /\/vsda\//;

/** The file's text once it contains `text` (a save lands a moment after the tab looks clean); at most 15 s. */
async function fileContaining(container: CodeServerContainer, file: string, text: string): Promise<string> {
  let last = '';
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    last = container.exec(`cat '${file}'`);
    if (last.includes(text)) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`${file} never contained ${JSON.stringify(text)}; it has:\n${last}`);
}

/** A WebSocket URL as the workbench opens it for its remote connection. */
const remoteSocket = (base: string) => `${base}?reconnectionToken=${randomUUID()}&reconnection=false&skipWebSocketFrames=false`;

describe('proxy to a real code-server container', () => {
  let container: CodeServerContainer;
  let sessions: FakeSessions;
  let p: ProxyServer;
  const sid = randomUUID();

  before(async () => {
    const missing = dockerAvailable();
    if (missing) throw new Error(`These tests ${missing}.`);
    container = await startCodeServer();
    copyProject(container, SCRAPY_PROJECT);
    sessions = new FakeSessions();
    sessions.add({ id: sid, userId: USER, status: 'ready', port: container.port }, container.secret);
    p = await startProxyServer(sessions, { trustedOrigins: ['https://ide.example.com'] });
  });
  after(async () => {
    await p?.close();
    container?.remove();
  });

  it('is signed in to code-server by the proxy: the workbench page, not its login', async () => {
    const direct = await request(`http://127.0.0.1:${container.port}/?folder=/workspace`);
    assert.equal(direct.status, 302, 'without the proxy code-server asks for its password');
    assert.match(String(direct.headers.location), /login/);

    const cookie = await signIn(p, { id: sid, userId: USER });
    const reply = await request(`${p.url}/code-server/${sid}/?folder=/workspace`, { headers: { cookie } });
    assert.equal(reply.status, 200);
    assert.match(reply.body, /vscode-workbench-web-configuration/);
    assert.ok(String(reply.headers['content-security-policy']).includes("frame-ancestors 'none'"));
    // Relative asset URLs resolve under the prefix.
    const manifest = await request(`${p.url}/code-server/${sid}/manifest.json`, { headers: { cookie } });
    assert.equal(manifest.status, 200);
    assert.equal(JSON.parse(manifest.body).name, 'code-server');
  });

  it('opens code-server’s WebSocket from the service’s origin or a trusted one, and refuses others', async () => {
    const cookie = await signIn(p, { id: sid, userId: USER });
    const base = `ws://127.0.0.1:${p.port}/code-server/${sid}/`;
    for (const origin of [p.url, 'https://ide.example.com']) {
      await new Promise<void>((resolve, reject) => {
        const ws = new WebSocket(remoteSocket(base), { headers: { cookie, origin } });
        ws.once('open', () => {
          ws.terminate();
          resolve();
        });
        ws.once('unexpected-response', (_req, res) => reject(new Error(`${origin}: ${res.statusCode}`)));
        ws.once('error', reject);
      });
    }
    await assert.rejects(openWs(remoteSocket(base), { cookie, origin: 'https://evil.example' }), (err: any) => err.status === 403);
    await assert.rejects(openWs(remoteSocket(base), { origin: p.url }), (err: any) => err.status === 403);
  });

  describe('in headless Chromium', () => {
    let wb: Workbench | undefined;
    after(async () => {
      await wb?.close();
    });

    it('opens the launch URL, shows the project, and saves an edit into the container', async () => {
      wb = await openWorkbench(p.proxy.launchUrl({ id: sid, userId: USER, tokenId: TOKEN }));
      assert.equal(new URL(wb.page.url()).searchParams.get('ticket'), null, 'the ticket is gone from the address bar');
      const names = await explorerNames(wb.page);
      assert.ok(names.includes('quotes') && names.includes('scrapy.cfg'), names.join(', '));
      await wb.screenshot('proxy-workbench');

      await openFileInExplorer(wb.page, 'quotes/spiders/quotes.py');
      await wb.screenshot('proxy-file-open');
      const marker = `# edited in the browser through the proxy ${Date.now()}`;
      await typeAndSave(wb.page, marker);
      await wb.screenshot('proxy-file-saved');

      const onDisk = await fileContaining(container, '/workspace/quotes/spiders/quotes.py', marker);
      assert.ok(onDisk.startsWith(SCRAPY_PROJECT['quotes/spiders/quotes.py'].trimEnd()));

      // A webview (the Markdown preview) is an iframe inside an iframe, served from the session's
      // prefix with its own service worker: the frame policy and the cookie path must allow it.
      await openFileInExplorer(wb.page, 'README.md');
      await runCommand(wb.page, 'Markdown: Open Preview');
      const previewFrame = await frameShowing(wb.page, 'Collects quotes from');
      assert.match(previewFrame, new RegExp(`^${p.url}/code-server/${sid}/.*/webview/`));
      await wb.screenshot('proxy-webview');

      const framing = wb.errors.filter((e) => /frame-ancestors|Refused to frame|Content Security Policy/i.test(e));
      assert.deepEqual(framing, [], 'the workbench’s own iframes are allowed');
      assert.deepEqual(
        wb.httpErrors.filter((e) => !EXPECTED_HTTP_ERRORS.test(e)),
        [],
      );
      assert.ok(sessions.touches.includes(sid), 'browser activity touched the session');
    });
  });
});

describe('proxy to a real code-server container, one subdomain per session', () => {
  let container: CodeServerContainer;
  let p: ProxyServer;
  let wb: Workbench | undefined;
  const sid = randomUUID();

  before(async () => {
    const missing = dockerAvailable();
    if (missing) throw new Error(`These tests ${missing}.`);
    container = await startCodeServer();
    copyProject(container, SCRAPY_PROJECT);
    const sessions = new FakeSessions();
    sessions.add({ id: sid, userId: USER, status: 'ready', port: container.port }, container.secret);
    // Chromium resolves every *.localhost name to the loopback address.
    p = await startProxyServer(sessions, { codeDomain: 'code.localhost' });
  });
  after(async () => {
    await wb?.close();
    await p?.close();
    container?.remove();
  });

  it('serves the workbench at http://<session>.code.localhost:<port>/ with its WebSockets', async () => {
    const url = p.proxy.launchUrl({ id: sid, userId: USER, tokenId: TOKEN });
    assert.equal(new URL(url).host, `${sid}.code.localhost:${p.port}`);
    wb = await openWorkbench(url);
    assert.equal(new URL(wb.page.url()).origin, `http://${sid}.code.localhost:${p.port}`);
    const names = await explorerNames(wb.page);
    assert.ok(names.includes('scrapy.cfg'), names.join(', '));
    await openFileInExplorer(wb.page, 'scrapy.cfg');
    const marker = `# edited on the session's own origin ${Date.now()}`;
    await typeAndSave(wb.page, marker);
    await wb.screenshot('proxy-subdomain-saved');
    await fileContaining(container, '/workspace/scrapy.cfg', marker);
  });
});
