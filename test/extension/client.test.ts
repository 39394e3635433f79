import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CrawlHubClient, encodePath, parseServerUrl } from '../../extension/api/client';
import { ApiError } from '../../extension/api/errors';
import { sampleSave, sampleSession, scriptedServer, sendJson } from './helpers/server';

describe('parseServerUrl', () => {
  it('adds https:// when no scheme is given and drops a trailing slash, query and hash', () => {
    assert.equal(parseServerUrl('crawlhub.example.com/').href, 'https://crawlhub.example.com/');
    assert.equal(parseServerUrl(' http://127.0.0.1:8000/base/?x=1#y ').href, 'http://127.0.0.1:8000/base');
  });
  it('refuses other schemes and credentials in the URL', () => {
    assert.throws(() => parseServerUrl('ftp://host'), /https:\/\/ or http:\/\//);
    assert.throws(() => parseServerUrl('https://me:secret@host'), /token box/);
    assert.throws(() => parseServerUrl('http://'), /not a URL/);
  });
});

describe('encodePath', () => {
  it('encodes each segment and keeps the slashes', () => {
    assert.equal(encodePath('a b/c#d/ü.py'), 'a%20b/c%23d/%C3%BC.py');
  });
});

describe('CrawlHubClient', () => {
  let srv: Awaited<ReturnType<typeof scriptedServer>>;
  let other: Awaited<ReturnType<typeof scriptedServer>>;
  before(async () => {
    other = await scriptedServer((_req, res) => sendJson(res, 200, { id: 'x', name: 'evil', isAdmin: false }));
    srv = await scriptedServer((req, res) => {
      const u = new URL(req.url, 'http://x');
      if (req.headers.authorization === 'Bearer revoked')
        return sendJson(res, 401, { error: { code: 'unauthorized', message: 'A valid API token is required' } });
      if (u.pathname === '/api/me') return sendJson(res, 200, { id: 'u1', name: 'alice', isAdmin: false, extra: 1 });
      if (u.pathname === '/api/spiders')
        return sendJson(res, 200, [{ id: 'sp1', name: 'books', description: '', ownerId: 'u1', createdAt: 'x', updatedAt: 'y' }]);
      if (u.pathname === '/api/sessions/s1/sync') return sendJson(res, 200, sampleSave({ dry_run: u.searchParams.get('dry_run') === '1' }));
      if (u.pathname === '/api/spiders/sp1/code-session') return sendJson(res, 201, sampleSession());
      if (u.pathname === '/api/spiders/missing/code-session')
        return sendJson(res, 404, { error: { code: 'not_found', message: 'Spider was not found.' } });
      if (u.pathname.startsWith('/api/spiders/sp1/files/')) return res.end(Buffer.from('stored'));
      if (u.pathname === '/api/sessions/slow/fs/file') return setTimeout(() => res.writeHead(204).end(), 300);
      if (u.pathname === '/api/sessions/trickle/fs/file' || u.pathname === '/api/spiders/trickle/files/big.json') {
        // 15 chunks 40 ms apart: over twice the client's limit (250 ms) in all, never silent for long.
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.flushHeaders();
        const next = (i: number): void => {
          if (res.destroyed) return;
          if (i === 15) return void res.end();
          res.write(Buffer.alloc(1000, i));
          setTimeout(() => next(i + 1), 40);
        };
        return next(0);
      }
      if (u.pathname === '/api/sessions/stall/fs/file') {
        // Some bytes, then nothing more (the answer stays open until the client gives up).
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '10000' });
        return void res.write(Buffer.alloc(1000));
      }
      if (u.pathname === '/api/sessions/silent/fs/file') return; // never answers, not even headers
      if (u.pathname.endsWith('/fs/file') && req.method === 'PUT') return res.writeHead(204).end();
      if (u.pathname.endsWith('/fs/stat')) return sendJson(res, 200, { type: 'file', size: 3, mtime: 1000, ctime: 900 });
      if (u.pathname === '/api/redirect') {
        res.writeHead(302, { location: `${other.url}/api/me` });
        return res.end();
      }
      if (u.pathname === '/api/html') {
        res.writeHead(502, { 'content-type': 'text/html' });
        return res.end('<html>bad gateway</html>');
      }
      if (u.pathname === '/api/nginx-413') {
        res.writeHead(413, { 'content-type': 'text/html' });
        return res.end(
          '<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n',
        );
      }
      if (u.pathname === '/api/rate-limited') {
        res.writeHead(429, { 'content-type': 'text/plain', 'retry-after': '30' });
        return res.end('Rate limit exceeded.');
      }
      if (u.pathname === '/api/other-json') return sendJson(res, 500, { message: 'Internal Server Error', stack: 'Error: x\n    at y' });
      if (u.pathname === '/api/stall-json') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
        return void res.write('{"id":');
      }
      if (u.pathname === '/api/slow') return setTimeout(() => sendJson(res, 200, {}), 2000);
      if (u.pathname === '/api/sessions') return sendJson(res, 200, [{ session_id: 1 }]);
      if (u.pathname === '/api/sessions/s1/launch') return sendJson(res, 200, { url: 'http://x/code-server/s1/?ticket=t' });
      sendJson(res, 404, { error: { code: 'not_found', message: 'nope' } });
    });
  });
  after(async () => {
    await srv.close();
    await other.close();
  });

  const client = () => new CrawlHubClient({ serverUrl: srv.url, token: 'tok-123', timeoutMs: 5000 });

  it('sends the token as a Bearer header and parses the answer (unknown fields dropped)', async () => {
    const me = await client().me();
    assert.deepEqual(me, { id: 'u1', name: 'alice', isAdmin: false });
    assert.equal(srv.seen.at(-1)!.headers.authorization, 'Bearer tok-123');
  });

  it('refuses to attach the token to any other origin, WebSocket URLs included', () => {
    const c = client();
    assert.throws(
      () => c.authorize(`${other.url}/api/me`),
      (e: ApiError) => e.code === 'foreign_origin',
    );
    assert.throws(
      () => c.authorize('https://127.0.0.1/api/me'),
      (e: ApiError) => e.code === 'foreign_origin',
    );
    assert.deepEqual(c.authorize(c.socketUrl('/api/events')), { authorization: 'Bearer tok-123' });
    assert.equal(c.socketUrl('/api/events').protocol, 'ws:');
  });

  it('does not follow redirects, so the token never travels to where one points', async () => {
    const before = other.seen.length;
    await assert.rejects(
      () => (client() as any).json('GET', '/api/redirect', { safeParse: (v: unknown) => ({ success: true, data: v }) }),
      (e: ApiError) => e.code === 'redirected' && e.status === 302 && e.message.includes(other.url),
    );
    assert.equal(other.seen.length, before);
  });

  it('turns {"error":{code,message}} into an ApiError with the server message', async () => {
    await assert.rejects(
      () => client().openSession('missing'),
      (e: ApiError) => e instanceof ApiError && e.status === 404 && e.code === 'not_found' && e.message === 'Spider was not found.',
    );
  });

  it("says a proxy's error page by its status and what to do, never with its markup or another API's JSON", async () => {
    const get = (path: string) =>
      (client() as any).json('GET', path, { safeParse: () => ({ success: true }) }).then(
        () => assert.fail('no failure'),
        (e: ApiError) => e,
      ) as Promise<ApiError>;
    const gateway = await get('/api/html');
    assert.equal(gateway.status, 502);
    assert.equal(gateway.code, 'http_502');
    assert.equal(
      gateway.message,
      'The server is not answering right now (HTTP 502 Bad Gateway from a proxy in front of it); try again in a moment.',
    );
    const large = await get('/api/nginx-413');
    assert.equal(large.message, 'The server, or a proxy in front of it, refused a request this large (HTTP 413 Payload Too Large).');
    const limited = await get('/api/rate-limited');
    assert.equal(
      limited.message,
      'The server, or a proxy in front of it, is getting too many requests (HTTP 429 Too Many Requests); try again in 30 s. It said: Rate limit exceeded.',
    );
    const other = await get('/api/other-json');
    assert.equal(other.message, 'The server failed (HTTP 500 Internal Server Error); try again in a moment.');
    for (const e of [gateway, large, limited, other]) assert.doesNotMatch(e.message, /<|\{|stack/, e.message);
  });

  it('refuses an answer of the wrong shape', async () => {
    await assert.rejects(
      () => client().sessions(),
      (e: ApiError) => e.code === 'bad_response',
    );
  });

  it('sends flags as =1 and leaves false ones out', async () => {
    const plan = await client().sync('s1', { dryRun: true, overwrite: false });
    assert.equal(plan.dry_run, true);
    assert.match(srv.seen.at(-1)!.url, /\/sync\?dry_run=1$/);
    await client().openSession('sp1', { wait: true });
    assert.match(srv.seen.at(-1)!.url, /\/code-session\?wait=1$/);
    assert.equal(srv.seen.at(-1)!.method, 'POST');
  });

  it('asks for a launch URL, for a port of the session when one is given', async () => {
    assert.equal(await client().launch('s1'), 'http://x/code-server/s1/?ticket=t');
    assert.equal(srv.seen.at(-1)!.body.length, 0, 'no body without a port');
    await client().launch('s1', { port: 8000 });
    assert.equal(srv.seen.at(-1)!.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(srv.seen.at(-1)!.body.toString()), { port: 8000 });
  });

  it('writes raw bytes with create/overwrite and reads stored files by encoded path', async () => {
    await client().writeFile('s1', 'dir/a b.py', new TextEncoder().encode('x=1'), { create: true, overwrite: false });
    const put = srv.seen.at(-1)!;
    assert.equal(put.method, 'PUT');
    assert.equal(put.url, '/api/sessions/s1/fs/file?path=dir%2Fa+b.py&create=1');
    assert.equal(put.headers['content-type'], 'application/octet-stream');
    assert.equal(put.body.toString(), 'x=1');
    const bytes = await client().spiderFile('sp1', 'dir/a b.py');
    assert.equal(new TextDecoder().decode(bytes), 'stored');
    assert.equal(srv.seen.at(-1)!.url, '/api/spiders/sp1/files/dir/a%20b.py');
  });

  it("gives a file write time to send its bytes, beyond an ordinary call's limit", async () => {
    // The server answers a while after the whole body came (it writes the file into the container).
    const c = new CrawlHubClient({ serverUrl: srv.url, token: 't', timeoutMs: 100 });
    await c.writeFile('slow', 'data/big.json', new Uint8Array(2 * 1024 * 1024), { create: true, overwrite: true });
    assert.equal(srv.seen.at(-1)!.body.length, 2 * 1024 * 1024);
  });

  it('reads a big file for as long as its bytes keep coming, however long that takes in all', async () => {
    // Every chunk comes well within the limit; the whole body takes several limits.
    const c = new CrawlHubClient({ serverUrl: srv.url, token: 't', timeoutMs: 250 });
    const file = await c.readFile('trickle', 'data/big.json');
    assert.equal(file.byteLength, 15 * 1000);
    assert.deepEqual([file[0], file[14 * 1000]], [0, 14]);
    const stored = await c.spiderFile('trickle', 'big.json');
    assert.equal(stored.byteLength, 15 * 1000);
  });

  it('gives up on a read that stops sending mid-file, and says so', async () => {
    const c = new CrawlHubClient({ serverUrl: srv.url, token: 't', timeoutMs: 250 });
    await assert.rejects(
      () => c.readFile('stall', 'data/big.json'),
      (e: ApiError) =>
        e instanceof ApiError &&
        e.code === 'timeout' &&
        e.unreachable &&
        /stopped sending data\/big\.json: nothing arrived for 0\.25 s/.test(e.message),
    );
  });

  it('still wants the headers of a read within the limit', async () => {
    const c = new CrawlHubClient({ serverUrl: srv.url, token: 't', timeoutMs: 150 });
    await assert.rejects(
      () => c.readFile('silent', 'a.py'),
      (e: ApiError) => e.code === 'timeout' && /did not answer in time/.test(e.message),
    );
  });

  it('says "cancelled" when a read is cancelled mid-file, not that the server stalled', async () => {
    const c = new CrawlHubClient({ serverUrl: srv.url, token: 't', timeoutMs: 5000 });
    const controller = new AbortController();
    const reading = c.readFile('stall', 'a.py', { signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    await assert.rejects(reading, (e: ApiError) => e.cancelled);
  });

  it('says "cannot reach" when nothing answers', async () => {
    const dead = new CrawlHubClient({ serverUrl: 'http://127.0.0.1:9', token: 't', timeoutMs: 5000 });
    await assert.rejects(
      () => dead.me(),
      (e: ApiError) => e.unreachable && /Cannot reach http:\/\/127\.0\.0\.1:9/.test(e.message),
    );
  });

  it('can be cancelled, and then says so', async () => {
    const controller = new AbortController();
    const pending = (client() as any).json(
      'GET',
      '/api/slow',
      { safeParse: (v: unknown) => ({ success: true, data: v }) },
      { signal: controller.signal },
    );
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(pending, (e: ApiError) => e.cancelled);
  });

  it('times out ordinary calls', async () => {
    const c = new CrawlHubClient({ serverUrl: srv.url, token: 't', timeoutMs: 100 });
    await assert.rejects(
      () => (c as any).json('GET', '/api/slow', { safeParse: (v: unknown) => ({ success: true, data: v }) }),
      (e: ApiError) => e.code === 'timeout',
    );
  });

  it('says an ordinary answer that stalls half-way did not come in time, as an ApiError', async () => {
    const c = new CrawlHubClient({ serverUrl: srv.url, token: 't', timeoutMs: 150 });
    await assert.rejects(
      () => (c as any).json('GET', '/api/stall-json', { safeParse: (v: unknown) => ({ success: true, data: v }) }),
      (e: ApiError) => e instanceof ApiError && e.code === 'timeout' && /did not answer in time/.test(e.message),
    );
  });

  it('tells onUnauthorized of every call answered 401, and of no other failure', async () => {
    const seen: ApiError[] = [];
    const revoked = new CrawlHubClient({ serverUrl: srv.url, token: 'revoked', onUnauthorized: (e) => seen.push(e) });
    await assert.rejects(
      () => revoked.me(),
      (e: ApiError) => e.status === 401,
    );
    await assert.rejects(() => revoked.writeFile('s1', 'a.py', new Uint8Array([1]), { create: true, overwrite: true }));
    assert.deepEqual(
      seen.map((e) => [e.status, e.code]),
      [
        [401, 'unauthorized'],
        [401, 'unauthorized'],
      ],
    );
    const ok = new CrawlHubClient({ serverUrl: srv.url, token: 'tok-123', onUnauthorized: (e) => seen.push(e) });
    await assert.rejects(
      () => ok.openSession('missing'),
      (e: ApiError) => e.status === 404,
    );
    assert.equal(seen.length, 2, 'a 404 is no refused token');
  });

  it('keeps a base path of the server URL', () => {
    const c = new CrawlHubClient({ serverUrl: 'https://host.example/crawlhub/', token: 't' });
    assert.equal(c.url('/api/me').href, 'https://host.example/crawlhub/api/me');
    assert.equal(c.origin, 'https://host.example');
  });
});
