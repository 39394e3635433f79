// The proxy's fast lane (service/proxy/lane.ts): which requests it relays itself, and that every
// other request on the same connection still reaches Node's server whole.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { parseHead } from '../../service/proxy/lane';
import {
  eventually,
  FakeSessions,
  FakeTokens,
  openWs,
  receivedHeader,
  signIn,
  startEcho,
  startProxyServer,
  within,
  type Echo,
  type ProxyServer,
  type Received,
} from './harness';

const ALICE = 'a11ce000-0000-4000-8000-000000000001';
const S1 = '5e551011-0000-4000-8000-000000000001';
const T1 = '70ce0000-0000-4000-8000-0000000000a1';
/** The token the revocation test revokes (a revoked token stays known as such). */
const T2 = '70ce0000-0000-4000-8000-0000000000a2';

interface KeptReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** The client's local port: the same for every request on one kept-alive connection. */
  localPort: number;
}

/** A request on a kept-alive connection (a browser's way), through `agent`. */
function kept(
  agent: http.Agent,
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<KeptReply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent, method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode!,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
          localPort: req.socket!.localPort!,
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.end(opts.body);
  });
}

describe('the fast lane', () => {
  let echo: Echo;
  let p: ProxyServer;
  let sessions: FakeSessions;
  let tokens: FakeTokens;
  let cookie: string;
  let agent: http.Agent;

  before(async () => {
    echo = await startEcho();
    sessions = new FakeSessions();
    tokens = new FakeTokens();
    p = await startProxyServer(sessions, { tokens, tokenRecheckMs: 200 });
  });
  after(async () => {
    await p.close();
    await echo.close();
  });
  beforeEach(async () => {
    sessions.sessions.clear();
    sessions.add({ id: S1, userId: ALICE, status: 'ready', port: echo.port }, 'secret-one');
    cookie = await signIn(p, { id: S1, userId: ALICE, tokenId: T1 });
    agent?.destroy();
    agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  });

  const at = (path: string) => `${p.url}/code-server/${S1}${path}`;

  it('relays an admitted GET itself, with the same rewriting as through Node’s server', async () => {
    const before = p.nodeRequests.count;
    const reply = await kept(agent, at('/page?x=1'), {
      headers: { cookie, 'x-forwarded-for': '6.6.6.6', authorization: 'Bearer secret' },
    });
    assert.equal(reply.status, 200);
    assert.equal(p.nodeRequests.count, before, 'Node’s server did not parse it');
    assert.equal(reply.headers['content-security-policy'], "frame-ancestors 'none'");
    const got = JSON.parse(reply.body) as Received;
    assert.equal(got.url, '/page?x=1');
    assert.deepEqual(receivedHeader(got.rawHeaders, 'x-forwarded-for'), ['127.0.0.1']);
    assert.deepEqual(receivedHeader(got.rawHeaders, 'authorization'), []);
    assert.deepEqual(receivedHeader(got.rawHeaders, 'cookie'), ['code-server-session=secret-one']);
    assert.ok(sessions.touches.includes(S1), 'the request counted for the idle timer');
  });

  it('answers a HEAD without a body, and the connection goes on', async () => {
    const socket = net.connect(p.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    const text = () => Buffer.concat(chunks).toString('latin1');
    const req = (method: string, path: string) =>
      `${method} /code-server/${S1}${path} HTTP/1.1\r\nHost: 127.0.0.1:${p.port}\r\nCookie: ${cookie}\r\n\r\n`;
    try {
      socket.write(req('HEAD', '/h'));
      await eventually(() => text().endsWith('\r\n\r\n'), 5000, 'the HEAD answer');
      assert.match(text(), /^HTTP\/1\.1 200 OK\r\n/);
      const headLength = text().length;
      socket.write(req('GET', '/after-head'));
      await eventually(() => text().includes('"/after-head"'), 5000, 'the next answer on the same connection');
      assert.match(text().slice(headLength), /^HTTP\/1\.1 200 OK\r\n/, 'nothing came between the HEAD answer and the next');
    } finally {
      socket.destroy();
    }
  });

  it('hands a refused request to Node’s server, which answers it, and keeps serving that connection', async () => {
    const first = await kept(agent, at('/one'), { headers: { cookie } });
    const before = p.nodeRequests.count;
    const refused = await kept(agent, at('/no-cookie'));
    assert.equal(refused.status, 403);
    assert.match(refused.body, /Not signed in/);
    assert.equal(p.nodeRequests.count, before + 1);
    const again = await kept(agent, at('/two'), { headers: { cookie } });
    assert.equal(again.status, 200);
    assert.equal(new Set([first.localPort, refused.localPort, again.localPort]).size, 1, 'all on one connection');
  });

  it('hands a POST with a body, on a connection the lane served, to Node’s server whole', async () => {
    const first = await kept(agent, at('/before-post'), { headers: { cookie } });
    const body = 'x'.repeat(100_000);
    const posted = await kept(agent, at('/post'), {
      method: 'POST',
      headers: { cookie, origin: p.url, 'content-type': 'text/plain' },
      body,
    });
    assert.equal(posted.status, 200);
    assert.equal((JSON.parse(posted.body) as Received).body, body);
    assert.equal(posted.localPort, first.localPort);
  });

  it('hands the service’s own routes over from the first byte', async () => {
    const reply = await kept(agent, `${p.url}/api/whatever`);
    assert.equal(reply.body, 'koa');
    assert.ok(p.passedOn.includes('/api/whatever'));
  });

  it('hands a WebSocket upgrade on a served connection to Node’s server', async () => {
    // Two GETs in one write, then an upgrade in the next: the lane answers both, then lets go.
    const socket = net.connect(p.port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    const req = (path: string, extra = '') =>
      `GET /code-server/${S1}${path} HTTP/1.1\r\nHost: 127.0.0.1:${p.port}\r\nCookie: ${cookie}\r\n${extra}\r\n`;
    socket.write(req('/a') + req('/b'));
    const text = () => Buffer.concat(chunks).toString('latin1');
    await eventually(() => (text().match(/HTTP\/1\.1 200/g) ?? []).length === 2, 5000, 'both pipelined answers');
    assert.ok(text().indexOf('"/a"') < text().indexOf('"/b"'), 'in order');
    socket.write(
      req(
        '/ws',
        `Origin: ${p.url}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n`,
      ),
    );
    await eventually(() => /HTTP\/1\.1 101/.test(text()), 5000, 'the upgrade');
    socket.destroy();
  });

  it('passes bytes beyond ASCII in header values through unchanged, both ways', async () => {
    // UTF-8 in a header value (a file name, say) is bytes to HTTP: they must arrive as they left.
    let received = Buffer.alloc(0);
    const container = net.createServer((s) => {
      s.on('data', (d: Buffer) => {
        received = Buffer.concat([received, d]);
        if (received.includes('\r\n\r\n'))
          s.write(
            Buffer.concat([
              Buffer.from('HTTP/1.1 200 OK\r\nX-File: caf'),
              Buffer.from([0xc3, 0xa9]),
              Buffer.from('\r\nContent-Length: 2\r\n\r\nok'),
            ]),
          );
      });
    });
    await new Promise<void>((r) => container.listen(0, '127.0.0.1', r));
    sessions.add({ id: S1, userId: ALICE, status: 'ready', port: (container.address() as net.AddressInfo).port });
    const socket = net.connect(p.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    try {
      socket.write(
        Buffer.concat([
          Buffer.from(`GET /code-server/${S1}/f HTTP/1.1\r\nHost: 127.0.0.1:${p.port}\r\nCookie: ${cookie}\r\nX-Name: caf`),
          Buffer.from([0xc3, 0xa9]),
          Buffer.from('\r\n\r\n'),
        ]),
      );
      await eventually(() => Buffer.concat(chunks).toString('latin1').endsWith('ok'), 5000, 'the answer');
      assert.ok(received.includes(Buffer.concat([Buffer.from('X-Name: caf'), Buffer.from([0xc3, 0xa9]), Buffer.from('\r\n')])));
      assert.ok(
        Buffer.concat(chunks).includes(Buffer.concat([Buffer.from('X-File: caf'), Buffer.from([0xc3, 0xa9]), Buffer.from('\r\n')])),
      );
    } finally {
      socket.destroy();
      container.close();
    }
  });

  it('closes the connection after a request that asks for it', async () => {
    const socket = net.connect(p.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise<void>((r) => socket.once('close', () => r()));
    socket.write(`GET /code-server/${S1}/bye HTTP/1.1\r\nHost: 127.0.0.1:${p.port}\r\nCookie: ${cookie}\r\nConnection: close\r\n\r\n`);
    await within(ended, 'the connection closing');
    const text = Buffer.concat(chunks).toString('latin1');
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /\r\nConnection: close\r\n/i);
  });

  it('shares kept-alive container connections between browser connections', async () => {
    const other = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const a = JSON.parse((await kept(agent, at('/one'), { headers: { cookie } })).body) as Received;
      const b = JSON.parse((await kept(other, at('/two'), { headers: { cookie } })).body) as Received;
      assert.equal(a.remotePort, b.remotePort, 'the second browser connection reused the first one’s container connection');
    } finally {
      other.destroy();
    }
  });

  it("closes a revoked token's lane connection at the next check", async () => {
    const revokable = await signIn(p, { id: S1, userId: ALICE, tokenId: T2 });
    const reply = await kept(agent, at('/held'), { headers: { cookie: revokable } });
    assert.equal(reply.status, 200);
    const socket = [...(agent.freeSockets[Object.keys(agent.freeSockets)[0]] ?? [])][0];
    assert.ok(socket, 'the kept-alive connection');
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    tokens.revoked.add(T2);
    await within(closed, 'the revoked token’s connection closing', 3000);
  });

  it('is left for Node’s server when the proxy is built without it', async () => {
    const off = await startProxyServer(sessions, { fastLane: false });
    try {
      const c = await signIn(off, { id: S1, userId: ALICE });
      const before = off.nodeRequests.count;
      const a = new http.Agent({ keepAlive: true });
      const reply = await kept(a, `${off.url}/code-server/${S1}/off`, { headers: { cookie: c } });
      a.destroy();
      assert.equal(reply.status, 200);
      assert.equal(off.nodeRequests.count, before + 1);
    } finally {
      await off.close();
    }
  });

  it('ends its connections when the proxy closes', async () => {
    const mine = await startProxyServer(sessions);
    const c = await signIn(mine, { id: S1, userId: ALICE });
    const a = new http.Agent({ keepAlive: true, maxSockets: 1 });
    await kept(a, `${mine.url}/code-server/${S1}/x`, { headers: { cookie: c } });
    const socket = [...(a.freeSockets[Object.keys(a.freeSockets)[0]] ?? [])][0];
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    await mine.close();
    await within(closed, 'the lane connection closing');
    a.destroy();
  });

  it('WebSockets still go through (handed to Node’s server from the first byte)', async () => {
    const { ws } = await openWs(`${p.url.replace('http', 'ws')}/code-server/${S1}/ws`, { cookie, origin: p.url });
    ws.close();
  });
});

describe('the fast lane’s clock', () => {
  it('times a pipelined head from when it is read, not from the start of the long answer before it', async () => {
    let clock = 1_700_000_000_000;
    const sessions = new FakeSessions();
    let release: (() => void) | null = null;
    // The first answer takes "two minutes" (the test moves the clock), the second is at once.
    const container = net.createServer((s) => {
      let buf = '';
      s.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        for (let end = buf.indexOf('\r\n\r\n'); end !== -1; end = buf.indexOf('\r\n\r\n')) {
          const url = buf.slice(0, end).split(' ')[1];
          buf = buf.slice(end + 4);
          const answer = () => s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${url.length}\r\n\r\n${url}`);
          if (url === '/slow') release = answer;
          else answer();
        }
      });
    });
    await new Promise<void>((r) => container.listen(0, '127.0.0.1', r));
    sessions.add({ id: S1, userId: ALICE, status: 'ready', port: (container.address() as net.AddressInfo).port });
    const p = await startProxyServer(sessions, { now: () => clock });
    const socket = net.connect(p.port, '127.0.0.1');
    try {
      const cookie = await signIn(p, { id: S1, userId: ALICE });
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      const req = (path: string) => `GET /code-server/${S1}${path} HTTP/1.1\r\nHost: 127.0.0.1:${p.port}\r\nCookie: ${cookie}\r\n\r\n`;
      socket.write(req('/slow') + req('/next'));
      await eventually(() => release !== null, 5000, 'the slow request reaching the container');
      clock += 120_000;
      release!();
      await eventually(() => Buffer.concat(chunks).toString('latin1').includes('/next'), 5000, 'the pipelined answer');
    } finally {
      socket.destroy();
      await p.close();
      container.close();
    }
  });
});

describe('the fast lane’s counts', () => {
  it('counts an answer the container cut short once, as bad_gateway', async () => {
    const sessions = new FakeSessions();
    const container = net.createServer((s) => {
      s.once('data', () => {
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial');
        setTimeout(() => s.destroy(), 20);
      });
    });
    await new Promise<void>((r) => container.listen(0, '127.0.0.1', r));
    sessions.add({ id: S1, userId: ALICE, status: 'ready', port: (container.address() as net.AddressInfo).port });
    const p = await startProxyServer(sessions);
    const socket = net.connect(p.port, '127.0.0.1');
    try {
      const cookie = await signIn(p, { id: S1, userId: ALICE });
      socket.on('data', () => undefined);
      const closed = new Promise<void>((r) => socket.once('close', () => r()));
      socket.write(`GET /code-server/${S1}/cut HTTP/1.1\r\nHost: 127.0.0.1:${p.port}\r\nCookie: ${cookie}\r\n\r\n`);
      await within(closed, 'the browser’s connection closing');
      const counted = (await p.metrics.proxyRequests.get()).values.filter((v) => v.labels.kind === 'http' && v.value > 0);
      const by = Object.fromEntries(counted.map((v) => [String(v.labels.outcome), v.value]));
      assert.equal(by.bad_gateway, 1);
      assert.equal(by.client_closed, undefined, JSON.stringify(by));
    } finally {
      socket.destroy();
      await p.close();
      container.close();
    }
  });
});

describe('the fast lane’s request reader', () => {
  const head = (lines: string[]) => lines.join('\r\n');

  it('reads a plain GET and HEAD', () => {
    const r = parseHead(head(['GET /a?b=c HTTP/1.1', 'Host: x', 'Cookie: a=b', 'Connection: keep-alive']), '127.0.0.1');
    assert.ok(r);
    assert.equal(r.method, 'GET');
    assert.equal(r.url, '/a?b=c');
    assert.equal(r.host, 'x');
    assert.deepEqual(r.rawHeaders, ['Host', 'x', 'Cookie', 'a=b', 'Connection', 'keep-alive']);
    assert.ok(parseHead(head(['HEAD / HTTP/1.1', 'Host: x']), undefined));
  });

  it('leaves everything else to Node’s parser', () => {
    const refused = [
      ['POST / HTTP/1.1', 'Host: x'],
      ['GET / HTTP/1.0', 'Host: x'],
      ['GET http://x/ HTTP/1.1', 'Host: x'],
      ['GET /a b HTTP/1.1', 'Host: x'],
      ['GET / HTTP/1.1'],
      ['GET / HTTP/1.1', 'Host: x', 'Host: y'],
      ['GET / HTTP/1.1', 'Host: x', 'Content-Length: 0'],
      ['GET / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked'],
      ['GET / HTTP/1.1', 'Host: x', 'Upgrade: websocket'],
      ['GET / HTTP/1.1', 'Host: x', 'Expect: 100-continue'],
      ['GET / HTTP/1.1', 'Host: x', 'Connection: Upgrade'],
      ['GET / HTTP/1.1', 'Host: x', 'Bad Name: y'],
      ['GET / HTTP/1.1', 'Host: x', ' folded: y'],
      ['GET / HTTP/1.1', 'Host: x', 'A: b\nc'],
      ['GET / HTTP/1.1', 'Host: x', 'A: b\rc'],
      ['GET / HTTP/1.1', 'Host: x', 'A: b\x00c'],
      ['GET / HTTP/1.1', 'Host: x', 'NoColon'],
      ['GET / HTTP/1.1', 'Host: x', ...Array.from({ length: 120 }, (_, i) => `H${i}: v`)],
    ];
    for (const lines of refused) assert.equal(parseHead(head(lines), undefined), null, JSON.stringify(lines));
  });
});
