import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import {
  cookieFrom,
  eventually,
  FLOOD_FRAME_BYTES,
  FLOOD_FRAMES,
  FakeSessions,
  FakeTokens,
  openWs,
  rawExchange,
  receivedHeader,
  request,
  signIn,
  startEcho,
  startProxyServer,
  TOKEN,
  type Echo,
  type ProxyServer,
  type Received,
  within,
} from './harness';
import { scanRequest } from '../../service/proxy/headers';

const ALICE = 'a11ce000-0000-4000-8000-000000000001';
const BOB = 'b0b00000-0000-4000-8000-000000000002';
const S1 = '5e551011-0000-4000-8000-000000000001';
const S2 = '5e551022-0000-4000-8000-000000000002';
const S3 = '5e551033-0000-4000-8000-000000000003';

describe('proxy in path mode, against an echo server', () => {
  let echo: Echo;
  let p: ProxyServer;
  let sessions: FakeSessions;
  let clock = 1_700_000_000_000;
  let cookie: string;

  before(async () => {
    echo = await startEcho();
    sessions = new FakeSessions();
    p = await startProxyServer(sessions, { now: () => clock });
  });
  after(async () => {
    await p.close();
    await echo.close();
  });
  beforeEach(async () => {
    sessions.sessions.clear();
    sessions.add({ id: S1, userId: ALICE, status: 'ready', port: echo.port }, 'secret-one');
    sessions.add({ id: S2, userId: ALICE, status: 'ready', port: echo.port }, 'secret-two');
    cookie = await signIn(p, { id: S1, userId: ALICE });
  });

  const at = (path: string, id = S1) => `${p.url}/code-server/${id}${path}`;
  const echoed = async (path: string, headers: Record<string, string | string[]> = {}, id = S1): Promise<Received> => {
    const reply = await request(at(path, id), { headers: { cookie, ...headers } });
    assert.equal(reply.status, 200, reply.body);
    return JSON.parse(reply.body) as Received;
  };

  describe('opening a session', () => {
    it('gives a launch URL with the workspace folder and a one-time ticket', () => {
      const url = new URL(p.proxy.launchUrl({ id: S1, userId: ALICE, tokenId: TOKEN }));
      assert.equal(url.origin, p.url);
      assert.equal(url.pathname, `/code-server/${S1}/`);
      assert.equal(url.searchParams.get('folder'), '/workspace');
      assert.match(url.searchParams.get('ticket')!, /^[A-Za-z0-9_-]{32}$/);
    });

    it('trades the ticket for an HttpOnly, SameSite=Lax cookie scoped to the session, then redirects without the ticket', async () => {
      const reply = await request(p.proxy.launchUrl({ id: S1, userId: ALICE, tokenId: TOKEN }));
      assert.equal(reply.status, 302);
      assert.equal(reply.headers.location, `/code-server/${S1}/?folder=/workspace`);
      assert.equal(reply.headers['cache-control'], 'no-store');
      assert.equal(reply.headers['referrer-policy'], 'no-referrer');
      const set = cookieFrom(reply)!.header;
      assert.match(set, new RegExp(`; Path=/code-server/${S1}/;`));
      assert.match(set, /; HttpOnly/);
      assert.match(set, /; SameSite=Lax/);
      assert.doesNotMatch(set, /Secure/, 'the public URL is http');
      assert.match(set, /Max-Age=\d+/);
    });

    it('refuses a ticket used twice', async () => {
      const url = p.proxy.launchUrl({ id: S1, userId: ALICE, tokenId: TOKEN });
      assert.equal((await request(url)).status, 302);
      const again = await request(url);
      assert.equal(again.status, 403);
      assert.match(again.body, /expired/);
      assert.equal(cookieFrom(again), null);
    });

    it('refuses an expired ticket', async () => {
      const url = p.proxy.launchUrl({ id: S1, userId: ALICE, tokenId: TOKEN });
      clock += 61_000;
      const reply = await request(url);
      assert.equal(reply.status, 403);
      assert.equal(cookieFrom(reply), null);
    });

    it("one user minting launch tickets in a loop voids only their own oldest, never another user's", async () => {
      const alices = p.proxy.launchUrl({ id: S1, userId: ALICE, tokenId: TOKEN });
      const bobsFirst = p.proxy.launchUrl({ id: S3, userId: BOB, tokenId: TOKEN });
      for (let i = 0; i < 10_050; i++) p.proxy.launchUrl({ id: S3, userId: BOB, tokenId: TOKEN });
      assert.equal((await request(alices)).status, 302, "Alice's link still opens");
      assert.equal((await request(bobsFirst)).status, 403, 'Bob holds his newest tickets only');
    });

    it('refuses a ticket minted for another session', async () => {
      const url = p.proxy.launchUrl({ id: S2, userId: ALICE, tokenId: TOKEN }).replace(S2, S1);
      const reply = await request(url);
      assert.equal(reply.status, 403);
      assert.equal(cookieFrom(reply), null);
    });

    it('sends a reloaded launch URL on without its spent ticket when the cookie already admits the browser', async () => {
      const url = p.proxy.launchUrl({ id: S1, userId: ALICE, tokenId: TOKEN });
      await request(url);
      const reply = await request(url, { headers: { cookie } });
      assert.equal(reply.status, 302);
      assert.equal(reply.headers.location, `/code-server/${S1}/?folder=/workspace`);
      assert.equal(cookieFrom(reply), null);
    });

    it('redirects /code-server/<id> to /code-server/<id>/, query kept', async () => {
      const reply = await request(`${p.url}/code-server/${S1}?folder=/workspace`);
      assert.equal(reply.status, 302);
      assert.equal(reply.headers.location, `/code-server/${S1}/?folder=/workspace`);
    });

    it('never logs a ticket or a cookie', async () => {
      const url = p.proxy.launchUrl({ id: S1, userId: ALICE, tokenId: TOKEN });
      const ticket = new URL(url).searchParams.get('ticket')!;
      await request(url);
      await request(url);
      assert.equal((await request(at('/x?ticket=zzz'), { headers: { cookie } })).status, 302);
      assert.ok(!p.logs().includes(ticket));
      assert.ok(!p.logs().includes(cookie.split('=')[1]));
      assert.ok(!p.logs().includes('secret-one'));
    });
  });

  describe('forwarding', () => {
    it('strips the prefix, keeps the query and adds code-server’s cookie and the framing policy', async () => {
      const reply = await request(at('/static/app.js?v=1&folder=/workspace'), { headers: { cookie } });
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['content-security-policy'], "frame-ancestors 'none'");
      const got = JSON.parse(reply.body) as Received;
      assert.equal(got.url, '/static/app.js?v=1&folder=/workspace');
      assert.deepEqual(receivedHeader(got.rawHeaders, 'cookie'), ['code-server-session=secret-one']);
      assert.deepEqual(receivedHeader(got.rawHeaders, 'host'), [`127.0.0.1:${p.port}`]);
    });

    it('lets only the session’s own origin frame the documents the workbench loads into iframes', async () => {
      const framed = await request(at('/webview/pre/index.html'), { headers: { cookie, 'sec-fetch-dest': 'iframe' } });
      assert.equal(framed.headers['content-security-policy'], "frame-ancestors 'self'");
      const top = await request(at('/'), { headers: { cookie, 'sec-fetch-dest': 'document' } });
      assert.equal(top.headers['content-security-policy'], "frame-ancestors 'none'");
    });

    it('replaces forged X-Forwarded-* and Forwarded headers with its own', async () => {
      const got = await echoed('/', {
        'x-forwarded-for': '6.6.6.6',
        'X-Forwarded-Host': 'evil.example',
        'x-forwarded-proto': 'https',
        'x-forwarded-prefix': '/evil',
        forwarded: 'for=6.6.6.6;host=evil.example;proto=https',
        'x-real-ip': '6.6.6.6',
        'x-original-host': 'evil.example',
      });
      const h = (name: string) => receivedHeader(got.rawHeaders, name);
      assert.deepEqual(h('x-forwarded-for'), ['127.0.0.1']);
      assert.deepEqual(h('x-forwarded-proto'), ['http']);
      assert.deepEqual(h('x-forwarded-host'), [`127.0.0.1:${p.port}`]);
      assert.deepEqual(h('forwarded'), ['for=127.0.0.1;proto=http']);
      assert.deepEqual(h('x-forwarded-prefix'), []);
      assert.deepEqual(h('x-real-ip'), []);
      assert.deepEqual(h('x-original-host'), []);
      assert.ok(!JSON.stringify(got).includes('6.6.6.6'));
      assert.ok(!JSON.stringify(got).includes('evil.example'));
    });

    it('strips Authorization and the service’s own cookies, keeps the others, and replaces a forged code-server cookie', async () => {
      const got = await echoed('/', {
        authorization: 'Bearer chub_secret_token',
        'proxy-authorization': 'Basic eDp5',
        cookie: `theme=dark; ${cookie}; crawlhub_token=chub_x; code-server-session=forged; lang=en`,
      });
      assert.deepEqual(receivedHeader(got.rawHeaders, 'authorization'), []);
      assert.deepEqual(receivedHeader(got.rawHeaders, 'proxy-authorization'), []);
      assert.deepEqual(receivedHeader(got.rawHeaders, 'cookie'), ['theme=dark; lang=en; code-server-session=secret-one']);
    });

    it('drops hop-by-hop headers, including those the client names in Connection', async () => {
      const got = await echoed('/', { connection: 'keep-alive, x-secret-hop', 'x-secret-hop': '1', 'x-kept': '2', te: 'trailers' });
      assert.deepEqual(receivedHeader(got.rawHeaders, 'x-secret-hop'), []);
      assert.deepEqual(receivedHeader(got.rawHeaders, 'te'), []);
      assert.deepEqual(receivedHeader(got.rawHeaders, 'x-kept'), ['2']);
    });

    it('refuses a Connection header that names more than 32 headers, and drops the named ones up to that', async () => {
      const names = Array.from({ length: 33 }, (_, i) => `x-hop-${i}`);
      const got = await echoed('/', { connection: `keep-alive, ${names.slice(0, 32).join(', ')}`, 'x-hop-31': '1', 'x-kept': '2' });
      assert.deepEqual(receivedHeader(got.rawHeaders, 'x-hop-31'), []);
      assert.deepEqual(receivedHeader(got.rawHeaders, 'x-kept'), ['2']);
      const refused = await request(at('/'), { headers: { cookie, connection: `keep-alive, ${names.join(', ')}` } });
      assert.equal(refused.status, 400);
      assert.match(refused.body, /Bad request/);
    });

    it('streams request bodies both ways', async () => {
      const body = 'x'.repeat(3 * 1024 * 1024);
      const reply = await request(at('/upload'), { method: 'POST', headers: { cookie, 'content-type': 'text/plain' }, body });
      const got = JSON.parse(reply.body) as Received;
      assert.equal(got.method, 'POST');
      assert.equal(got.body?.length, body.length);
    });

    it('streams a chunked upload written in pieces, framed anew for the container', async () => {
      const pieces = ['first,', 'second,', 'third'];
      const reply = await new Promise<Received>((resolve, reject) => {
        const req = http.request(at('/upload'), { method: 'POST', agent: false, headers: { cookie, 'transfer-encoding': 'chunked' } });
        req.on('response', (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(JSON.parse(text) as Received));
        });
        req.on('error', reject);
        let i = 0;
        const next = () => {
          if (i === pieces.length) return req.end();
          req.write(pieces[i++]);
          setTimeout(next, 20);
        };
        next();
      });
      assert.equal(reply.body, pieces.join(''));
      assert.deepEqual(receivedHeader(reply.rawHeaders, 'transfer-encoding'), ['chunked']);
    });

    it('holds a large response back for a slow browser and delivers every byte', { timeout: 30_000 }, async () => {
      const body = await new Promise<Buffer>((resolve, reject) => {
        const req = http.get(at('/big'), { agent: false, headers: { cookie } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => {
            chunks.push(c);
            // Read in fits and starts, so that the proxy's writes back up.
            if (chunks.length % 16 === 0) {
              res.pause();
              setTimeout(() => res.resume(), 5);
            }
          });
          res.on('end', () => resolve(Buffer.concat(chunks)));
          res.on('error', reject);
        });
        req.on('error', reject);
      });
      assert.equal(body.length, 8 * 1024 * 1024);
      for (let i = 0; i < body.length; i += 4096) assert.equal(body.readUInt32BE(i), i);
    });

    it('passes only the final response after a 103 Early Hints', async () => {
      const interim: number[] = [];
      const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.get(at('/early-hints'), { agent: false, headers: { cookie } }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        });
        req.on('information', (info) => interim.push(info.statusCode));
        req.on('error', reject);
      });
      assert.deepEqual(interim, [], 'no interim answer reaches the browser');
      assert.equal(reply.status, 200);
      assert.equal(reply.body, 'final');
    });

    it('goes on serving after the container closes a kept-alive connection', async () => {
      for (let i = 0; i < 3; i++) {
        const reply = await request(at('/close-after'), { headers: { cookie } });
        assert.equal(reply.status, 200);
        assert.equal(reply.body, 'ok');
        await echoed(`/after-close-${i}`);
      }
    });

    it('answers HEAD without a body and handles Expect: 100-continue', async () => {
      const head = await request(at('/'), { method: 'HEAD', headers: { cookie } });
      assert.equal(head.status, 200);
      assert.equal(head.body, '');
      const reply = await new Promise<Received>((resolve, reject) => {
        const req = http.request(at('/upload'), {
          method: 'POST',
          agent: false,
          headers: { cookie, expect: '100-continue', 'content-length': '5' },
        });
        req.on('continue', () => req.end('hello'));
        req.on('response', (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(JSON.parse(text) as Received));
        });
        req.on('error', reject);
      });
      assert.equal(reply.body, 'hello');
      assert.deepEqual(receivedHeader(reply.rawHeaders, 'expect'), []);
    });

    it('passes on a 304 or 204 that names a Content-Length, and keeps serving', async () => {
      for (const [path, status] of [
        ['/not-modified', 304],
        ['/no-content', 204],
      ] as const) {
        const reply = await request(at(path), { headers: { cookie, 'if-none-match': '"v1"' } });
        assert.equal(reply.status, status, path);
        assert.equal(reply.headers.etag, '"v1"', path);
        assert.equal(reply.body, '', path);
      }
      await echoed('/still-serving');
    });

    it('keeps the container’s cookies and redirects inside the session’s prefix', async () => {
      const redirect = await request(at('/redirect'), { headers: { cookie } });
      assert.equal(redirect.status, 302);
      assert.equal(redirect.headers.location, `/code-server/${S1}/elsewhere?x=1`);
      const set = await request(at('/set-cookie'), { headers: { cookie } });
      // Nameless ones too: a browser would send `=crawlhub_ide_user=planted` back as `crawlhub_ide_user=planted`.
      assert.deepEqual(set.headers['set-cookie'], [`pref=dark; Path=/code-server/${S1}/; HttpOnly`]);
    });

    it("keeps a service worker inside the session and drops the container's headers that act on the whole origin", async () => {
      const prefix = `/code-server/${S1}`;
      for (const [given, confined] of [
        ['/', `${prefix}/`],
        ['/static/', `${prefix}/static/`],
        ['../../', `${prefix}/`],
        ['/../../..', `${prefix}/`],
        ['/%2e%2e/%2e%2e/', `${prefix}/`],
        ['https://evil.example/', `${prefix}/`],
        ['//evil.example/', `${prefix}/`],
      ]) {
        const reply = await request(at(`/origin-wide?swa=${encodeURIComponent(given).replace(/\./g, '%2E')}`), { headers: { cookie } });
        assert.equal(reply.status, 200);
        assert.equal(reply.headers['service-worker-allowed'], confined, given);
      }
      const reply = await request(at('/origin-wide'), { headers: { cookie } });
      for (const name of ['clear-site-data', 'nel', 'report-to', 'reporting-endpoints', 'alt-svc', 'strict-transport-security'])
        assert.equal(reply.headers[name], undefined, name);
      assert.equal(reply.headers['x-kept'], 'yes');
    });

    it('passes everything else to Koa', async () => {
      const before = p.passedOn.length;
      for (const path of ['/api/me', '/code-server', '/healthz', '/code-serverx/1/']) {
        const reply = await request(p.url + path, { headers: { cookie } });
        assert.equal(reply.body, 'koa', path);
      }
      assert.equal(p.passedOn.length, before + 4);
    });

    it('keeps upstream connections alive', async () => {
      const ports = new Set<number>();
      for (let i = 0; i < 5; i++) {
        const got = await echoed(`/n${i}`);
        assert.deepEqual(receivedHeader(got.rawHeaders, 'connection'), ['keep-alive']);
        ports.add(got.remotePort!);
      }
      assert.equal(ports.size, 1, 'five requests in a row share one upstream connection');
    });

    it('goes to the container’s network address when the session has one, not to its published port', async () => {
      const closed = http.createServer();
      await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
      const deadPort = (closed.address() as { port: number }).port;
      await new Promise<void>((r) => closed.close(() => r()));
      Object.assign(sessions.sessions.get(S1)!, { port: deadPort, direct: { host: '127.0.0.1', port: echo.port } });
      assert.equal((await echoed('/via-network')).url, '/via-network');
      const { ws } = await openWs(`ws://127.0.0.1:${p.port}/code-server/${S1}/`, { cookie, origin: p.url });
      const text = await new Promise<string>((resolve) => {
        ws.once('message', (d) => resolve((d as Buffer).toString()));
        ws.send('over the network address');
      });
      assert.equal(text, 'over the network address');
      ws.close();
    });
  });

  describe('refusals', () => {
    const refused = async (headers: Record<string, string>, status: number, path = '/') => {
      const reply = await request(at(path), { headers });
      assert.equal(reply.status, status, reply.body);
      assert.match(String(reply.headers['content-type']), /text\/html/);
      assert.equal(reply.headers['content-security-policy']?.includes("frame-ancestors 'none'"), true);
      return reply;
    };

    it('refuses a request without a cookie', async () => {
      const reply = await refused({}, 403);
      assert.match(reply.body, /Open this session from CrawlHub/);
    });

    it('refuses another user’s cookie for the session', async () => {
      const bobs = await signIn(p, { id: S1, userId: BOB });
      await refused({ cookie: bobs }, 403);
    });

    it("refuses another user's launch link in a browser bound to its user, and a browser's cookies of two users", async () => {
      // Bob sends Alice a launch link of his own session, to plant a page of his in her browser: in
      // path mode it would share her sessions' origin.
      sessions.add({ id: S3, userId: BOB, status: 'ready', port: echo.port }, 'secret-three');
      const alicesBrowser = cookie;
      const link = await request(p.proxy.launchUrl({ id: S3, userId: BOB, tokenId: TOKEN }), { headers: { cookie: alicesBrowser } });
      assert.equal(link.status, 403);
      assert.match(link.body, /private window/);
      assert.equal(cookieFrom(link), null, 'no cookie for his session');
      // In a fresh browser it opens, and binds that browser to Bob…
      const bobsBrowser = await signIn(p, { id: S3, userId: BOB });
      assert.equal((await request(at('/', S3), { headers: { cookie: bobsBrowser } })).status, 200);
      // …whose IDE cookie then admits nothing next to Alice's binding, nor Alice's next to his.
      const bobsIde = bobsBrowser.split('; ')[0];
      const alicesIde = alicesBrowser.split('; ')[0];
      const alicesBinding = alicesBrowser.split('; ')[1];
      const bobsBinding = bobsBrowser.split('; ')[1];
      assert.equal((await request(at('/', S3), { headers: { cookie: `${bobsIde}; ${alicesBinding}` } })).status, 403);
      assert.equal((await request(at('/'), { headers: { cookie: `${alicesIde}; ${bobsBinding}` } })).status, 403);
      // An IDE cookie without the browser's binding admits nothing either.
      assert.equal((await request(at('/'), { headers: { cookie: alicesIde } })).status, 403);
    });

    it('refuses a cookie for another session', async () => {
      const other = await signIn(p, { id: S2, userId: ALICE });
      await refused({ cookie: other }, 403);
      // …and the other session's own cookie still works there.
      assert.equal((await request(at('/', S2), { headers: { cookie: other } })).status, 200);
    });

    it('refuses a tampered cookie', async () => {
      const [name, value] = cookie.split('=');
      const [exp, token, user, mac] = value.split('.');
      assert.equal(token, TOKEN, 'the cookie names the token that asked for the launch');
      const flip = (s: string) => s.slice(0, -1) + (s.endsWith('A') ? 'B' : 'A');
      for (const forged of [
        `${exp}.${token}.${user}.${flip(mac)}`,
        `${exp}.${token}.${BOB}.${mac}`,
        `${exp}.${TOKEN.replace('1', '2')}.${user}.${mac}`,
        `${exp}..${user}.${mac}`,
        `${(parseInt(exp, 36) + 1e9).toString(36)}.${token}.${user}.${mac}`,
        `${exp}.${user}.${mac}`,
        `${exp}.${token}.${user}`,
        '',
        'garbage',
        `${exp}.${token}.${user}.${mac}.${mac}`,
      ]) {
        await refused({ cookie: `${name}=${forged}` }, 403);
      }
    });

    it('refuses an expired cookie', async () => {
      clock += 25 * 3_600_000;
      await refused({ cookie }, 403);
    });

    it('admits the real cookie next to a planted decoy of the same name', async () => {
      const reply = await request(at('/'), { headers: { cookie: `crawlhub_ide=decoy; ${cookie}` } });
      assert.equal(reply.status, 200);
    });

    it('checks at most four unknown values of one of its cookies by HMAC; a known good one is found among any number', async () => {
      const decoys = (n: number, name = 'crawlhub_ide') => Array.from({ length: n }, (_, i) => `${name}=${i}.a.b.c`).join('; ');
      // A fresh cookie behind three decoys is checked; behind four it is not reached.
      let n = 0;
      const fresh = async () => {
        // (Another token each time: the clock stands still here, and the same token would sign the same value.)
        const signedIn = await signIn(p, { id: S1, userId: ALICE, tokenId: `${TOKEN.slice(0, -2)}${String(++n).padStart(2, '0')}` });
        const [ide, binding] = signedIn.split('; ');
        return { ide, binding };
      };
      let c = await fresh();
      assert.equal((await request(at('/'), { headers: { cookie: `${decoys(3)}; ${c.ide}; ${c.binding}` } })).status, 200);
      c = await fresh();
      await refused({ cookie: `${decoys(4)}; ${c.ide}; ${c.binding}` }, 403);
      // Known good once it admitted a request: planted decoys, however many, do not lock its user out.
      assert.equal((await request(at('/'), { headers: { cookie: `${c.ide}; ${c.binding}` } })).status, 200);
      const crowd = `${decoys(1000)}; ${decoys(1000, 'crawlhub_ide_user')}`;
      assert.equal((await request(at('/'), { headers: { cookie: `${crowd}; ${c.ide}; ${c.binding}` } })).status, 200);
    });

    it('refuses a state-changing request from a foreign origin', async () => {
      const reply = await request(at('/upload'), { method: 'POST', headers: { cookie, origin: 'https://evil.example' }, body: 'x' });
      assert.equal(reply.status, 403);
      const own = await request(at('/upload'), { method: 'POST', headers: { cookie, origin: p.url }, body: 'x' });
      assert.equal(own.status, 200);
    });

    it('says a starting session is starting, with a page that reloads itself', async () => {
      sessions.sessions.get(S1)!.status = 'starting';
      const reply = await refused({ cookie }, 503);
      assert.match(reply.body, /http-equiv="refresh"/);
      assert.match(reply.body, /starting/);
      assert.equal(reply.headers['retry-after'], '2');
      sessions.sessions.get(S1)!.status = 'pending';
      await refused({ cookie }, 503);
    });

    it('answers 404 for a session that is gone', async () => {
      for (const status of ['stopped', 'failed'] as const) {
        sessions.sessions.get(S1)!.status = status;
        const reply = await refused({ cookie }, 404);
        assert.match(reply.body, /does not exist or has stopped/);
      }
      sessions.sessions.delete(S1);
      await refused({ cookie }, 404);
    });

    it('answers 502 when the container does not answer', async () => {
      const closed = http.createServer();
      await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
      const port = (closed.address() as { port: number }).port;
      await new Promise<void>((r) => closed.close(() => r()));
      sessions.sessions.get(S1)!.port = port;
      const reply = await refused({ cookie }, 502);
      assert.match(reply.body, /not answering/);
    });

    it('answers 502 to a container that answers something other than HTTP, and keeps serving', async () => {
      const answers = [
        'garbage\r\n\r\n',
        'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello',
        'HTTP/1.1 200 OK\r\nX-Bad: a\u0000b\r\nContent-Length: 2\r\n\r\nok',
        `HTTP/1.1 200 OK\r\nX-Huge: ${'h'.repeat(70_000)}\r\n\r\n`,
      ];
      for (const answer of answers) {
        const liar = net.createServer((socket) => {
          socket.on('error', () => undefined);
          socket.once('data', () => socket.end(answer));
        });
        await new Promise<void>((r) => liar.listen(0, '127.0.0.1', r));
        sessions.sessions.get(S1)!.port = (liar.address() as net.AddressInfo).port;
        try {
          const reply = await request(at('/'), { headers: { cookie } });
          assert.equal(reply.status, 502, `${JSON.stringify(answer.slice(0, 40))}: ${reply.status} ${reply.body.slice(0, 80)}`);
        } finally {
          await new Promise<void>((r) => liar.close(() => r()));
        }
      }
      sessions.sessions.get(S1)!.port = echo.port;
      await echoed('/still-serving');
    });

    it('refuses malformed URLs without falling over', async () => {
      const targets = [
        `/code-server/${S1}/%zz%`,
        `/code-server/${S1}/../../api/me`,
        `/code-server/${S1}/%2e%2E/%2e%2e/api/me`,
        `/code-server/${S1}/a/..`,
        `/code-server/${S1}/proxy/9000/a\\..\\..\\healthz`,
        `/code-server/${S1}/a%5c..%5c..%5chealthz`,
        `/code-server/${S1}/a%2f..%2fhealthz`,
        '/code-server/../api/me',
        '/code-server/%2e%2e/api/me',
        '/code-server//',
        `/code-server/${'x'.repeat(5000)}/`,
        `/code-server/${S1}/${'%'.repeat(3000)}`,
        `/code-server/${S1}/\u00ff`,
      ];
      for (const target of targets) {
        const text = await rawExchange(p.port, `GET ${target} HTTP/1.1\r\nHost: x\r\nCookie: ${cookie}\r\nConnection: close\r\n\r\n`);
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
        assert.ok(status >= 200 && status < 500, `${target.slice(0, 60)} → ${text.slice(0, 80)}`);
        if (target.includes('..') || target.includes('%2e')) assert.ok(status === 400 || status === 404, `${target} → ${status}`);
        if (target.includes('..')) assert.ok(!echo.urls.some((u) => u.includes('..')), `${target} reached the container`);
      }
      const absolute = await rawExchange(
        p.port,
        `GET http://evil.example/code-server/${S1}/ HTTP/1.1\r\nHost: evil.example\r\nCookie: ${cookie}\r\nConnection: close\r\n\r\n`,
      );
      assert.match(absolute, /^HTTP\/1\.1 400/);
      // A transfer coding besides chunked would reach the container unannounced (Node has taken the chunks apart).
      const coded = await rawExchange(
        p.port,
        `POST /code-server/${S1}/post HTTP/1.1\r\nHost: x\r\nCookie: ${cookie}\r\nOrigin: ${p.url}\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
      );
      assert.match(coded, /^HTTP\/1\.1 501/);
      assert.equal((await request(at('/'), { headers: { cookie } })).status, 200, 'still serving');
    });

    it('survives thousands of headers', async () => {
      let many = '';
      for (let i = 0; i < 3000; i++) many += `X-H${i}: ${i}\r\n`;
      const text = await rawExchange(
        p.port,
        `GET /code-server/${S1}/ HTTP/1.1\r\nHost: x\r\nCookie: ${cookie}\r\n${many}Connection: close\r\n\r\n`,
      );
      assert.match(text, /^HTTP\/1\.1 (200|431|400)/);
      let huge = '';
      for (let i = 0; i < 20000; i++) huge += `X-H${i}: ${i}\r\n`;
      const text2 = await rawExchange(p.port, `GET /code-server/${S1}/ HTTP/1.1\r\nHost: x\r\n${huge}\r\n`);
      assert.match(text2, /^HTTP\/1\.1 431|^$/);
      assert.equal((await request(at('/'), { headers: { cookie } })).status, 200, 'still serving');
    });
  });

  describe('streams that end early', () => {
    it('closes the container’s side when the browser disconnects mid-stream, and keeps serving', async () => {
      const before = echo.abandoned;
      await new Promise<void>((resolve, reject) => {
        const req = http.get(at('/stream'), { headers: { cookie }, agent: false }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
      });
      await eventually(() => echo.abandoned === before + 1);
      assert.equal((await request(at('/'), { headers: { cookie } })).status, 200);
    });

    it('cuts the browser’s response when the container vanishes mid-stream, and keeps serving', async () => {
      const outcome = await new Promise<string>((resolve) => {
        const req = http.get(at('/die'), { headers: { cookie }, agent: false }, (res) => {
          res.on('data', () => undefined);
          res.on('end', () => resolve('ended'));
          res.on('error', () => resolve('error'));
          res.on('aborted', () => resolve('aborted'));
        });
        req.on('error', () => resolve('error'));
      });
      assert.notEqual(outcome, 'ended');
      assert.equal((await request(at('/'), { headers: { cookie } })).status, 200);
    });
  });

  describe('activity', () => {
    it('touches the session at most once per 30 s, for requests and WebSocket traffic', async () => {
      clock += 60_000;
      sessions.touches.length = 0;
      for (let i = 0; i < 5; i++) await echoed('/');
      assert.deepEqual(sessions.touches, [S1]);
      clock += 31_000;
      const { ws } = await openWs(`ws://127.0.0.1:${p.port}/code-server/${S1}/`, { cookie, origin: p.url });
      assert.deepEqual(sessions.touches, [S1, S1]);
      clock += 31_000;
      await new Promise((resolve) => {
        ws.once('message', resolve);
        ws.send('typing');
      });
      assert.deepEqual(sessions.touches, [S1, S1, S1]);
      ws.close();
    });
  });

  describe('WebSockets', () => {
    const wsUrl = (path = '/') => `ws://127.0.0.1:${p.port}/code-server/${S1}${path}`;

    it('carries a WebSocket to the container with its own forwarding headers and cookie', async () => {
      const { ws, first } = await openWs(wsUrl('/?reconnectionToken=abc'), {
        cookie: `${cookie}; other=1`,
        origin: p.url,
        authorization: 'Bearer chub_x',
        'x-forwarded-for': '6.6.6.6',
      });
      assert.equal(first.url, '/?reconnectionToken=abc');
      const h = (name: string) => receivedHeader(first.rawHeaders, name);
      assert.deepEqual(h('cookie'), ['other=1; code-server-session=secret-one']);
      assert.deepEqual(h('authorization'), []);
      assert.deepEqual(h('x-forwarded-for'), ['127.0.0.1']);
      assert.deepEqual(h('origin'), [p.url]);
      const text = await new Promise<string>((resolve) => {
        ws.once('message', (d) => resolve((d as Buffer).toString()));
        ws.send('hello through the proxy');
      });
      assert.equal(text, 'hello through the proxy');
      const big = Buffer.alloc(2 * 1024 * 1024, 7);
      const back = await new Promise<Buffer>((resolve) => {
        ws.once('message', (d) => resolve(d as Buffer));
        ws.send(big);
      });
      assert.equal(back.length, big.length);
      ws.close();
    });

    it('refuses a foreign Origin, a missing Origin, no cookie and another session’s cookie', async () => {
      const other = await signIn(p, { id: S2, userId: ALICE });
      const cases: [Record<string, string>, number][] = [
        [{ cookie, origin: 'https://evil.example' }, 403],
        [{ cookie, origin: 'null' }, 403],
        [{ cookie }, 403],
        [{ origin: p.url }, 403],
        [{ cookie: other, origin: p.url }, 403],
      ];
      for (const [headers, status] of cases) {
        await assert.rejects(openWs(wsUrl(), headers), (err: any) => err.status === status);
      }
      sessions.sessions.get(S1)!.status = 'stopped';
      await assert.rejects(openWs(wsUrl(), { cookie, origin: p.url }), (err: any) => err.status === 404);
    });

    it("drops the container's headers that act on the service's host from its 101, as from any answer", async () => {
      const ws = new WebSocket(wsUrl('/ws-headers'), { headers: { cookie, origin: p.url }, handshakeTimeout: 10_000 });
      const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
        ws.once('upgrade', resolve);
        ws.once('error', reject);
      });
      ws.terminate();
      assert.equal(response.headers['strict-transport-security'], undefined);
      assert.equal(response.headers['alt-svc'], undefined);
      assert.equal(response.headers['clear-site-data'], undefined);
      assert.deepEqual(response.headers['set-cookie'], [`pref=dark; Path=/code-server/${S1}/`]);
      assert.equal(response.headers['x-kept'], 'yes');
      assert.equal(response.headers.upgrade, 'websocket');
    });

    it('relays the container’s refusal of an upgrade', async () => {
      await assert.rejects(openWs(wsUrl('/refuse'), { cookie, origin: p.url }), (err: any) => err.status === 403);
    });

    it('ends both sides when the browser drops the socket, and keeps serving', async () => {
      const { ws } = await openWs(wsUrl('/?dropped-by-browser'), { cookie, origin: p.url });
      // The browser vanishes without a close frame: the proxy has to end the container's side itself.
      ws.terminate();
      await eventually(() => echo.wsClosed.includes('/?dropped-by-browser'), 5000, 'the container’s side of the socket closing');
      assert.equal(echo.wsClosed.filter((u) => u === '/?dropped-by-browser').length, 1);
      const { ws: again } = await openWs(wsUrl(), { cookie, origin: p.url });
      again.close();
    });

    it('closes the browser’s socket when the container’s goes away, and keeps serving', async () => {
      const { ws } = await openWs(wsUrl('/ws-die'), { cookie, origin: p.url });
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      ws.send('bye');
      // The container died without a close frame, and the proxy passes that on: an abnormal closure (1006).
      assert.equal(await within(closed, 'the browser’s socket closing'), 1006);
      const { ws: again } = await openWs(wsUrl(), { cookie, origin: p.url });
      again.close();
    });

    it('holds a flood back at the container while the browser does not read, then delivers every frame and the close', async () => {
      const { ws } = await openWs(wsUrl('/ws-flood'), { cookie, origin: p.url });
      ws.pause();
      ws.send('flood');
      // With backpressure the proxy stops reading once the browser's side is full, and most of the
      // flood waits at the container; without it the proxy would have taken all 48 MiB by now.
      await new Promise((r) => setTimeout(r, 500));
      assert.ok(echo.floodBuffered > 16 * 1024 * 1024, `the container still holds ${echo.floodBuffered} bytes`);
      const frames: Buffer[] = [];
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      ws.on('message', (d) => frames.push(d as Buffer));
      ws.resume();
      assert.equal(await closed, 1000);
      assert.equal(frames.length, FLOOD_FRAMES);
      frames.forEach((f, i) => assert.ok(f.length === FLOOD_FRAME_BYTES && f[0] === i % 256 && f[f.length - 1] === i % 256));
    });

    it('lets go of a handshake the container never answers once the browser leaves', async () => {
      const browser = net.connect(p.port, '127.0.0.1');
      browser.on('error', () => undefined);
      browser.write(
        `GET /code-server/${S1}/ws-silent HTTP/1.1\r\nHost: x\r\nCookie: ${cookie}\r\nOrigin: ${p.url}\r\nConnection: Upgrade\r\n` +
          'Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
      await eventually(() => echo.urls.includes('/ws-silent'), 5000, 'the handshake reaching the container');
      // A tab closed mid-handshake: its connection ends (a FIN), and nothing is left holding either side.
      const closed = new Promise<void>((resolve) => browser.once('close', () => resolve()));
      browser.end();
      await eventually(() => echo.wsClosed.includes('/ws-silent'), 5000, 'the container’s side of the handshake closing');
      await within(closed, 'the browser’s side closing');
      const { ws } = await openWs(wsUrl(), { cookie, origin: p.url });
      ws.close();
    });

    it('refuses a non-WebSocket upgrade', async () => {
      const text = await rawExchange(
        p.port,
        `GET /code-server/${S1}/ HTTP/1.1\r\nHost: x\r\nCookie: ${cookie}\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n`,
      );
      assert.match(text, /^HTTP\/1\.1 400/);
    });
  });

  it('lets go of a WebSocket handshake whose browser left while its session was looked up', async () => {
    const slow = new FakeSessions();
    slow.add({ id: S1, userId: ALICE, status: 'ready', port: echo.port });
    const find = slow.find.bind(slow);
    let release: (() => void) | null = null;
    let holding = false;
    (slow as any).find = (id: string) => (holding ? new Promise((resolve) => (release = () => resolve(find(id)))) : find(id));
    const q = await startProxyServer(slow);
    try {
      const c = await signIn(q, { id: S1, userId: ALICE });
      holding = true;
      const browser = net.connect(q.port, '127.0.0.1');
      browser.on('error', () => undefined);
      const closed = new Promise<void>((resolve) => browser.once('close', () => resolve()));
      browser.write(
        `GET /code-server/${S1}/ws-silent HTTP/1.1\r\nHost: x\r\nCookie: ${c}\r\nOrigin: ${q.url}\r\nConnection: Upgrade\r\n` +
          'Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
      await eventually(() => release !== null, 5000, 'the session being looked up');
      browser.end();
      await new Promise((r) => setTimeout(r, 100));
      release!();
      await within(closed, 'the browser’s side closing');
      const reached = echo.urls.filter((u) => u === '/ws-silent').length;
      const closedThere = echo.wsClosed.filter((u) => u === '/ws-silent').length;
      assert.equal(closedThere, reached, 'a handshake left open at the container');
    } finally {
      await q.close();
    }
  });

  it('works with a sessions service whose find is asynchronous', async () => {
    const asyncSessions = new FakeSessions();
    asyncSessions.add({ id: S1, userId: ALICE, status: 'ready', port: echo.port }, 'async-secret');
    const find = asyncSessions.find.bind(asyncSessions);
    (asyncSessions as any).find = (id: string) => Promise.resolve(find(id));
    const q = await startProxyServer(asyncSessions);
    try {
      const c = await signIn(q, { id: S1, userId: ALICE });
      const reply = await request(`${q.url}/code-server/${S1}/`, { headers: { cookie: c } });
      assert.equal(reply.status, 200);
      assert.deepEqual(receivedHeader((JSON.parse(reply.body) as Received).rawHeaders, 'cookie'), ['code-server-session=async-secret']);
      const { ws } = await openWs(`ws://127.0.0.1:${q.port}/code-server/${S1}/`, { cookie: c, origin: q.url });
      ws.close();
    } finally {
      await q.close();
    }
  });
});

describe('the API token an IDE was opened with', () => {
  const T1 = '70ce0000-0000-4000-8000-0000000000a1';
  const T2 = '70ce0000-0000-4000-8000-0000000000a2';
  let echo: Echo;
  let sessions: FakeSessions;
  before(async () => {
    echo = await startEcho();
    sessions = new FakeSessions();
    sessions.add({ id: S1, userId: ALICE, status: 'ready', port: echo.port });
  });
  after(() => echo.close());

  it("refuses a revoked token's IDE and closes its WebSockets at the next check; another token's IDE goes on", async () => {
    const tokens = new FakeTokens();
    const p = await startProxyServer(sessions, { tokens, tokenRecheckMs: 200 });
    try {
      const page = `${p.url}/code-server/${S1}/`;
      const ws = `ws://127.0.0.1:${p.port}/code-server/${S1}/`;
      const laptop = await signIn(p, { id: S1, userId: ALICE, tokenId: T1 });
      const desktop = await signIn(p, { id: S1, userId: ALICE, tokenId: T2 });
      assert.equal((await request(page, { headers: { cookie: laptop } })).status, 200);
      // A page load's many requests ask about the token once, not per request.
      const asked = tokens.asked;
      for (let i = 0; i < 10; i++) assert.equal((await request(page, { headers: { cookie: laptop } })).status, 200);
      assert.ok(tokens.asked - asked <= 1, `asked ${tokens.asked - asked} times for 10 requests`);
      const { ws: laptopWs } = await openWs(ws, { cookie: laptop, origin: p.url });
      const { ws: desktopWs } = await openWs(ws, { cookie: desktop, origin: p.url });
      const closed = new Promise<void>((resolve) => laptopWs.once('close', () => resolve()));
      // A response that streams for as long as it is read (a download, a server's event stream) ends too.
      const streamEnded = new Promise<void>((resolve) => {
        const req = http.get(`${page}stream`, { headers: { cookie: laptop }, agent: false }, (res) => {
          assert.equal(res.statusCode, 200);
          res.resume();
          res.once('close', () => resolve());
        });
        req.once('error', () => resolve());
      });
      await new Promise((r) => setTimeout(r, 100));

      tokens.revoked.add(T1);
      await within(closed, "the revoked token's IDE WebSocket closing");
      // (the echo server streams for 10 s: an end well before that is the proxy's doing)
      await within(streamEnded, "the revoked token's HTTP stream ending", 3000);
      const refused = await request(page, { headers: { cookie: laptop } });
      assert.equal(refused.status, 403);
      assert.match(refused.body, /has been revoked/);
      await assert.rejects(openWs(ws, { cookie: laptop, origin: p.url }), (err: any) => err.status === 403);
      // The other token's IDE is untouched.
      assert.equal((await request(page, { headers: { cookie: desktop } })).status, 200);
      const echoed = await new Promise<string>((resolve) => {
        desktopWs.once('message', (d) => resolve((d as Buffer).toString()));
        desktopWs.send('still here');
      });
      assert.equal(echoed, 'still here');
      desktopWs.close();
      assert.match(p.logs(), /IDE connections closed: their API token was revoked/);
    } finally {
      await p.close();
    }
  });

  it("closes a session's WebSockets and streams at the next check once it has ended, even while its container lingers", async () => {
    const p = await startProxyServer(sessions, { tokenRecheckMs: 200 });
    sessions.add({ id: S2, userId: ALICE, status: 'ready', port: echo.port });
    try {
      const one = await signIn(p, { id: S1, userId: ALICE, tokenId: T1 });
      const two = await signIn(p, { id: S2, userId: ALICE, tokenId: T1 });
      const { ws: ended } = await openWs(`ws://127.0.0.1:${p.port}/code-server/${S1}/`, { cookie: one, origin: p.url });
      const { ws: other } = await openWs(`ws://127.0.0.1:${p.port}/code-server/${S2}/`, { cookie: two, origin: p.url });
      const closed = new Promise<void>((resolve) => ended.once('close', () => resolve()));
      const streamEnded = new Promise<void>((resolve) => {
        const req = http.get(`${p.url}/code-server/${S1}/stream`, { headers: { cookie: one }, agent: false }, (res) => {
          res.resume();
          res.once('close', () => resolve());
        });
        req.once('error', () => resolve());
      });
      await new Promise((r) => setTimeout(r, 100));

      // The session stops (or fails) while its container still answers: the echo server stays up.
      sessions.sessions.get(S1)!.status = 'stopped';
      await within(closed, "the ended session's WebSocket closing");
      await within(streamEnded, "the ended session's HTTP stream ending", 3000);
      // The same token's IDE of a session that goes on is untouched.
      const echoed = await new Promise<string>((resolve) => {
        other.once('message', (d) => resolve((d as Buffer).toString()));
        other.send('still here');
      });
      assert.equal(echoed, 'still here');
      other.close();
      assert.match(p.logs(), /IDE connections closed: their session has ended/);
    } finally {
      sessions.sessions.get(S1)!.status = 'ready';
      sessions.sessions.delete(S2);
      await p.close();
    }
  });

  it('keeps the last answer while the database is away, and answers 500 when there is none', async () => {
    let clock = 1_700_000_000_000;
    const tokens = new FakeTokens();
    const p = await startProxyServer(sessions, { tokens, now: () => clock });
    try {
      const page = `${p.url}/code-server/${S1}/`;
      const known = await signIn(p, { id: S1, userId: ALICE, tokenId: T1 });
      const unknown = await signIn(p, { id: S1, userId: ALICE, tokenId: T2 });
      assert.equal((await request(page, { headers: { cookie: known } })).status, 200);
      tokens.failing = true;
      clock += 60_000;
      assert.equal((await request(page, { headers: { cookie: known } })).status, 200, 'a token known to stand still admits');
      const none = await request(page, { headers: { cookie: unknown } });
      assert.equal(none.status, 500, 'a token never asked about cannot be vouched for');
      tokens.failing = false;
      assert.equal((await request(page, { headers: { cookie: unknown } })).status, 200);
    } finally {
      await p.close();
    }
  });
});

describe('cookie flags and trusted origins', () => {
  let echo: Echo;
  before(async () => {
    echo = await startEcho();
  });
  after(() => echo.close());

  it('marks the cookie Secure when the public URL is https, or when told to', async () => {
    for (const [publicUrl, secureCookies, secure] of [
      ['https://crawlhub.example.com', 'auto', true],
      ['https://crawlhub.example.com', 'false', false],
      [null, 'true', true],
      [null, 'auto', false],
    ] as const) {
      const sessions = new FakeSessions();
      sessions.add({ id: S1, userId: ALICE, status: 'ready', port: echo.port });
      const p = await startProxyServer(sessions, { secureCookies, ...(publicUrl ? { publicUrl } : {}) });
      try {
        const launch = new URL(p.proxy.launchUrl({ id: S1, userId: ALICE, tokenId: TOKEN }));
        const reply = await request(`${p.url}${launch.pathname}${launch.search}`);
        assert.equal(/; Secure/.test(cookieFrom(reply)!.header), secure, `${publicUrl} ${secureCookies}`);
      } finally {
        await p.close();
      }
    }
  });

  it('lets a configured trusted origin open WebSockets, showing code-server the session’s own origin', async () => {
    const sessions = new FakeSessions();
    sessions.add({ id: S1, userId: ALICE, status: 'ready', port: echo.port });
    const p = await startProxyServer(sessions, { trustedOrigins: ['https://ide.example.com'] });
    try {
      const cookie = await signIn(p, { id: S1, userId: ALICE });
      const { ws, first } = await openWs(`ws://127.0.0.1:${p.port}/code-server/${S1}/`, { cookie, origin: 'https://ide.example.com' });
      assert.deepEqual(receivedHeader(first.rawHeaders, 'origin'), [p.url]);
      ws.close();
      await assert.rejects(
        openWs(`ws://127.0.0.1:${p.port}/code-server/${S1}/`, { cookie, origin: 'https://other.example.com' }),
        (err: any) => err.status === 403,
      );
    } finally {
      await p.close();
    }
  });
});

describe('proxy in subdomain mode', () => {
  let echo: Echo;
  let p: ProxyServer;
  let sessions: FakeSessions;
  let host: string;
  let cookie: string;
  const sid = S1;

  before(async () => {
    echo = await startEcho();
    sessions = new FakeSessions();
    sessions.add({ id: sid, userId: ALICE, status: 'ready', port: echo.port }, 'sub-secret');
    p = await startProxyServer(sessions, { codeDomain: 'code.test' });
    host = `${sid}.code.test:${p.port}`;
  });
  after(async () => {
    await p.close();
    await echo.close();
  });

  it('launches at https-or-http://<id>.<code domain>[:port]/ and scopes the cookie to that host', async () => {
    const launch = new URL(p.proxy.launchUrl({ id: sid, userId: ALICE, tokenId: TOKEN }));
    assert.equal(launch.origin, `http://${host}`);
    assert.equal(launch.pathname, '/');
    const reply = await request(`${p.url}/${launch.search}`, { headers: { host } });
    assert.equal(reply.status, 302);
    assert.equal(reply.headers.location, '/?folder=/workspace');
    const set = cookieFrom(reply)!;
    assert.match(set.header, /; Path=\/;/);
    assert.doesNotMatch(set.header, /Domain/i);
    cookie = set.pair;
  });

  it('never turns a ticket URL into a redirect to another site', async () => {
    const launch = new URL(p.proxy.launchUrl({ id: sid, userId: ALICE, tokenId: TOKEN }));
    const reply = await request(`${p.url}/`, { headers: { host }, path: `//evil.example/${launch.search}` });
    assert.equal(reply.status, 302);
    assert.equal(reply.headers.location, '/evil.example/?folder=/workspace');
  });

  it('proxies the whole host, path untouched, with the session host forwarded', async () => {
    const reply = await request(`${p.url}/static/x.js?y=1`, { headers: { host, cookie } });
    assert.equal(reply.status, 200);
    const got = JSON.parse(reply.body) as Received;
    assert.equal(got.url, '/static/x.js?y=1');
    assert.deepEqual(receivedHeader(got.rawHeaders, 'x-forwarded-host'), [host]);
    assert.deepEqual(receivedHeader(got.rawHeaders, 'host'), [host]);
    assert.deepEqual(receivedHeader(got.rawHeaders, 'cookie'), ['code-server-session=sub-secret']);
    const redirect = await request(`${p.url}/redirect`, { headers: { host, cookie } });
    assert.equal(redirect.headers.location, '/elsewhere?x=1');
  });

  it('takes WebSockets only from the session’s own origin', async () => {
    const { ws } = await openWs(`ws://127.0.0.1:${p.port}/`, { host, cookie, origin: `http://${host}` });
    ws.close();
    for (const origin of [p.url, `http://${S2}.code.test:${p.port}`, 'http://code.test']) {
      await assert.rejects(openWs(`ws://127.0.0.1:${p.port}/`, { host, cookie, origin }), (err: any) => err.status === 403);
    }
  });

  it('refuses what another session’s page loads, fetches or frames with the user’s cookies, yet lets it open the IDE in a tab', async () => {
    const meta = (site: string, mode: string, dest: string) => ({ 'sec-fetch-site': site, 'sec-fetch-mode': mode, 'sec-fetch-dest': dest });
    const status = async (headers: Record<string, string>) =>
      (await request(`${p.url}/proxy/3000/delete-all`, { headers: { host, cookie, ...headers } })).status;
    // A page on a sibling session host (the same site): an image, a no-cors fetch, a CORS fetch, a frame.
    assert.equal(await status(meta('same-site', 'no-cors', 'image')), 403);
    assert.equal(await status(meta('same-site', 'no-cors', 'empty')), 403);
    assert.equal(await status({ ...meta('same-site', 'cors', 'empty'), origin: `http://${S2}.code.test:${p.port}` }), 403);
    assert.equal(await status(meta('cross-site', 'navigate', 'iframe')), 403);
    // Its own pages, a link followed in a tab, an address typed in, a browser without Fetch Metadata.
    assert.equal(await status(meta('same-origin', 'no-cors', 'image')), 200);
    assert.equal(await status(meta('same-site', 'navigate', 'document')), 200);
    assert.equal(await status(meta('none', 'navigate', 'document')), 200);
    assert.equal(await status({}), 200);
    // Nor may such a page trade a ticket in the background; the ticket stays good for its tab.
    const launch = new URL(p.proxy.launchUrl({ id: sid, userId: ALICE, tokenId: TOKEN }));
    const background = await request(`${p.url}/${launch.search}`, { headers: { host, ...meta('same-site', 'no-cors', 'image') } });
    assert.equal(background.status, 403);
    const tab = await request(`${p.url}/${launch.search}`, { headers: { host, ...meta('same-site', 'navigate', 'document') } });
    assert.equal(tab.status, 302);
  });

  it('leaves the service’s own host to Koa, path mode off, and answers 404 for other names under the code domain', async () => {
    assert.equal((await request(`${p.url}/code-server/${sid}/`, { headers: { cookie } })).body, 'koa');
    assert.equal((await request(`${p.url}/api/me`)).body, 'koa');
    assert.equal((await request(`${p.url}/`, { headers: { host: `not_a.session.code.test:${p.port}` } })).status, 404);
    assert.equal((await request(`${p.url}/`, { headers: { host: `${S2}.code.test:${p.port}`, cookie } })).status, 403);
  });
});

describe('scanning request headers', () => {
  it('drops what Connection names (a set: repeats count once), keeps Origin’s place, and gives up past 32 names', () => {
    const scan = scanRequest([
      'Host',
      'x',
      'Connection',
      'keep-alive, X-A, x-a, x-b',
      'X-A',
      '1',
      'Origin',
      'https://o.example',
      'x-b',
      '2',
      'X-Kept',
      '3',
    ]);
    assert.ok(scan);
    assert.deepEqual(scan.headers, ['Host', '', 'Origin', 'https://o.example', 'X-Kept', '3']);
    assert.equal(scan.headers[scan.originAt], 'https://o.example');
    const names = Array.from({ length: 33 }, (_, i) => `x-h${i}`);
    assert.ok(scanRequest(['Connection', names.slice(0, 32).join(',')]));
    assert.equal(scanRequest(['Connection', names.join(',')]), null);
    assert.equal(scanRequest(['Connection', names.slice(0, 20).join(','), 'Connection', names.slice(20).join(',')]), null);
    assert.ok(scanRequest(['Connection', Array<string>(20_000).fill('x-a').join(','), 'X-A', '1']), 'one name, however often');
  });
});
