import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { databases, json, startTestService, type TestService } from '../helpers/service';
import { until } from '../helpers/docker';
import { makeTar, readTarFiles } from '../helpers/tar';
import { rawExchange } from '../proxy/harness';

for (const db of databases()) {
  describe(`HTTP API on ${db}`, () => {
    let svc: TestService;
    let alice: { id: string; token: string };
    let bob: { id: string; token: string };

    before(async () => {
      svc = await startTestService({
        db,
        env: {
          CRAWLHUB_MAX_FILE_SIZE: '64k',
          CRAWLHUB_MAX_SPIDER_SIZE: '256k',
          CRAWLHUB_MAX_SPIDER_FILES: '50',
          CRAWLHUB_MAX_JSON_BODY: '4k',
        },
      });
      alice = await svc.newUser('alice');
      bob = await svc.newUser('bob');
    });
    after(() => svc.close());

    const newSpider = async (token: string, name: string) => {
      const res = await svc.api(token, 'POST', '/api/spiders', { name });
      assert.equal(res.status, 201, await res.clone().text());
      return json<{ id: string; name: string }>(res);
    };
    const expectError = async (res: Response, status: number, code?: string) => {
      const body = await json<{ error: { code: string; message: string } }>(res);
      assert.equal(res.status, status, JSON.stringify(body));
      assert.equal(typeof body.error.message, 'string');
      assert.ok(body.error.message.length > 0);
      if (code) assert.equal(body.error.code, code);
      return body.error;
    };
    /**
     * Holds a spider's lock and counts the turns at it that are asked for (the holder's is the first),
     * so that requests queue behind it in a known order; `release` lets them run.
     */
    const holdSpiderLock = (spiderId: string) => {
      const lock = svc.services.spiders.lock;
      const run = lock.run.bind(lock);
      let queued = 0;
      lock.run = (key, task) => {
        if (key === spiderId) queued++;
        return run(key, task);
      };
      let release!: () => void;
      const held = lock.run(spiderId, () => new Promise<void>((resolve) => (release = resolve)));
      return {
        queued: (n: number) => until(`${n} turns at the spider's lock`, () => queued === n),
        release: async () => {
          lock.run = run;
          release();
          await held;
        },
      };
    };

    describe('service endpoints', () => {
      it('GET /healthz answers without a token and names db, storage and docker', async () => {
        const res = await svc.api(null, 'GET', '/healthz');
        const body = await json(res);
        assert.equal(res.status, 200);
        assert.equal(body.db, 'ok');
        assert.equal(body.storage, 'ok');
        assert.equal(typeof body.docker.reachable, 'boolean');
        assert.equal(body.docker.version, undefined, 'no engine version for anyone who asks');
      });

      it('GET /metrics is Prometheus text with request counts, latencies and process metrics', async () => {
        await svc.api(alice.token, 'GET', '/api/me');
        const text = await (await svc.api(null, 'GET', '/metrics')).text();
        assert.match(text, /crawlhub_http_requests_total\{method="GET",route="\/api\/me",status="200"\} \d+/);
        assert.match(text, /crawlhub_http_request_duration_seconds_bucket/);
        assert.match(text, /process_cpu_user_seconds_total/);
      });

      it('GET /openapi.json describes every endpoint', async () => {
        const doc = await json(await svc.api(null, 'GET', '/openapi.json'));
        assert.equal(doc.openapi, '3.1.0');
        for (const p of [
          '/api/me',
          '/api/spiders',
          '/api/spiders/{id}',
          '/api/spiders/{id}/files',
          '/api/spiders/{id}/files/{path}',
          '/api/spiders/{id}/archive',
          '/healthz',
          '/metrics',
        ]) {
          assert.ok(doc.paths[p], `missing ${p}`);
        }
        assert.ok(doc.paths['/api/spiders'].post.requestBody);
      });

      it('an unknown path is a JSON 404', async () => {
        await expectError(await svc.api(alice.token, 'GET', '/api/nothing-here'), 404, 'not_found');
      });

      it('a method the path does not take is a JSON 405 with Allow; one the service does not know, a JSON 501', async () => {
        const res = await svc.api(alice.token, 'DELETE', '/api/me');
        assert.match(res.headers.get('allow') ?? '', /GET/);
        await expectError(res, 405, 'method_not_allowed');
        await expectError(await svc.api(alice.token, 'PROPFIND', '/api/me'), 501, 'not_implemented');
      });

      it('a WebSocket path asked without an upgrade answers 426 with Upgrade: websocket', async () => {
        for (const path of ['/api/events', '/api/sessions/00000000-0000-0000-0000-000000000000/terminal']) {
          const res = await svc.api(alice.token, 'GET', path);
          assert.equal(res.headers.get('upgrade'), 'websocket', path);
          await expectError(res, 426, 'upgrade_required');
        }
      });

      it('answers a request that offers another protocol (Upgrade: h2c) as a plain one', async () => {
        const port = Number(new URL(svc.url).port);
        const exchange = async (head: string, body = '') => {
          const text = await rawExchange(
            port,
            `${head}\r\nHost: x\r\nAuthorization: Bearer ${alice.token}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n` +
              `HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n${body ? `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n` : ''}\r\n${body}`,
          );
          const at = text.indexOf('\r\n\r\n');
          return { status: Number(text.slice(9, 12)), head: text.slice(0, at), body: JSON.parse(text.slice(at + 4)) };
        };
        const me = await exchange('GET /api/me HTTP/1.1');
        assert.equal(me.status, 200, me.head);
        assert.deepEqual(me.body, { id: alice.id, name: 'alice', isAdmin: false });
        assert.doesNotMatch(me.head, /^upgrade:/im);
        const missing = await exchange('GET /api/nothing-here HTTP/1.1');
        assert.equal(missing.status, 404);
        assert.equal(missing.body.error.code, 'not_found');
        // Node has stopped reading at the headers: a body would be lost, so the request is refused.
        const post = await exchange('POST /api/spiders HTTP/1.1', JSON.stringify({ name: 'h2c' }));
        assert.equal(post.status, 400);
        assert.equal(post.body.error.code, 'upgrade_with_body');
        const spiders = await json<{ name: string }[]>(await svc.api(alice.token, 'GET', '/api/spiders'));
        assert.ok(!spiders.some((sp) => sp.name === 'h2c'));
      });
    });

    describe('auth', () => {
      it('GET /api/me names the token owner', async () => {
        const me = await json(await svc.api(alice.token, 'GET', '/api/me'));
        assert.deepEqual(me, { id: alice.id, name: 'alice', isAdmin: false });
      });

      it('refuses no token, a malformed one, an unknown one and a revoked one with 401', async () => {
        await expectError(await svc.api(null, 'GET', '/api/me'), 401, 'unauthorized');
        await expectError(await svc.api('not-a-token', 'GET', '/api/spiders'), 401, 'unauthorized');
        await expectError(await svc.api(`chub_${'A'.repeat(43)}`, 'GET', '/api/spiders'), 401, 'unauthorized');
        await expectError(await svc.api(null, 'GET', '/api/spiders', undefined, { authorization: `Basic ${alice.token}` }), 401);
        const carol = await svc.newUser('carol');
        assert.equal((await svc.api(carol.token, 'GET', '/api/me')).status, 200);
        const em = svc.services.orm.em.fork();
        const [info] = await svc.services.users.listTokens(em, await svc.services.users.findUser(em, 'carol'));
        await svc.services.users.revokeToken(em, info.id);
        await expectError(await svc.api(carol.token, 'GET', '/api/me'), 401, 'unauthorized');
      });
    });

    describe('spiders', () => {
      it('creates, reads, renames and deletes a spider', async () => {
        const created = await newSpider(alice.token, 'books');
        const got = await json(await svc.api(alice.token, 'GET', `/api/spiders/${created.id}`));
        assert.equal(got.name, 'books');
        assert.equal(got.ownerId, alice.id);
        const patched = await json(
          await svc.api(alice.token, 'PATCH', `/api/spiders/${created.id}`, { name: 'books2', description: 'all the books' }),
        );
        assert.equal(patched.name, 'books2');
        assert.equal(patched.description, 'all the books');
        assert.equal((await svc.api(alice.token, 'DELETE', `/api/spiders/${created.id}`)).status, 204);
        await expectError(await svc.api(alice.token, 'GET', `/api/spiders/${created.id}`), 404, 'not_found');
        // A change that was waiting for the spider's lock behind the deletion lands nowhere: no row for a spider that is gone.
        const em = svc.services.orm.em.fork();
        const blob = await svc.services.blobs.put(created.id, Buffer.from('late'));
        await assert.rejects(
          svc.services.spiders.commitChanges(em, created.id, { put: new Map([['late.py', blob]]), delete: new Set() }),
          (e: { status?: number }) => e.status === 404,
        );
        const rows = await em.getConnection().execute('select count(*) as n from spider_files where spider_id = ?', [created.id]);
        assert.equal(Number((rows as { n: number | string }[])[0].n), 0);
      });

      it('a PUT or an import that waited behind the spider’s DELETE answers 404 and writes nothing, in storage or database', async () => {
        for (const writer of ['put', 'import'] as const) {
          const spider = await newSpider(alice.token, `raced-${writer}`);
          assert.equal((await svc.api(alice.token, 'PUT', `/api/spiders/${spider.id}/files/old.py`, 'old\n')).status, 200);
          // In a known order at the spider's lock: the DELETE, then the writer.
          const lock = holdSpiderLock(spider.id);
          try {
            const deleting = svc.api(alice.token, 'DELETE', `/api/spiders/${spider.id}`);
            await lock.queued(2);
            const writing =
              writer === 'put'
                ? svc.api(alice.token, 'PUT', `/api/spiders/${spider.id}/files/late.py`, 'late\n')
                : svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/archive`, await makeTar([{ name: 'late.py', data: 'late\n' }]), {
                    'content-type': 'application/x-tar',
                  });
            await lock.queued(3);
            await lock.release();
            assert.equal((await deleting).status, 204);
            await expectError(await writing, 404, 'not_found');
          } finally {
            await lock.release();
          }
          const em = svc.services.orm.em.fork();
          const rows = await em.getConnection().execute('select count(*) as n from spider_files where spider_id = ?', [spider.id]);
          assert.equal(Number((rows as { n: number | string }[])[0].n), 0, `${writer}: no file row for a spider that is gone`);
          assert.equal(fs.existsSync(path.join(svc.dataDir, 'files', 'spiders', spider.id)), false, `${writer}: nothing in storage`);
        }
      });

      it('refuses a duplicate name with 409 but lets another user use it', async () => {
        await newSpider(alice.token, 'quotes');
        await expectError(await svc.api(alice.token, 'POST', '/api/spiders', { name: 'quotes' }), 409, 'duplicate_name');
        await newSpider(bob.token, 'quotes');
        const other = await newSpider(alice.token, 'quotes-2');
        await expectError(await svc.api(alice.token, 'PATCH', `/api/spiders/${other.id}`, { name: 'quotes' }), 409, 'duplicate_name');
      });

      it('refuses bad bodies: bad names, unknown fields, bad JSON, wrong type, too large', async () => {
        await expectError(await svc.api(alice.token, 'POST', '/api/spiders', { name: '' }), 400);
        await expectError(await svc.api(alice.token, 'POST', '/api/spiders', { name: '../etc' }), 400, 'invalid_name');
        await expectError(await svc.api(alice.token, 'POST', '/api/spiders', { name: 'a\u0000b' }), 400, 'invalid_name');
        await expectError(await svc.api(alice.token, 'POST', '/api/spiders', { name: 'ok', owner: 'x' }), 400, 'invalid_request');
        // A NUL no database stores (PostgreSQL refuses it in text; it was a 500).
        await expectError(
          await svc.api(alice.token, 'POST', '/api/spiders', { name: 'nul', description: 'a\u0000b' }),
          400,
          'invalid_request',
        );
        // A body whose gzip is broken is the client's error, not the server's.
        await expectError(
          await svc.api(alice.token, 'POST', '/api/spiders', 'not gzip', {
            'content-type': 'application/json',
            'content-encoding': 'gzip',
          }),
          400,
          'invalid_request',
        );
        await expectError(await svc.api(alice.token, 'POST', '/api/spiders', {}), 400, 'invalid_request');
        await expectError(
          await svc.api(alice.token, 'POST', '/api/spiders', '{"name":', { 'content-type': 'application/json' }),
          400,
          'invalid_json',
        );
        await expectError(
          await svc.api(alice.token, 'POST', '/api/spiders', 'name=x', { 'content-type': 'application/x-www-form-urlencoded' }),
          415,
        );
        await expectError(
          await svc.api(alice.token, 'POST', '/api/spiders', { name: 'big', description: 'x'.repeat(8000) }),
          413,
          'too_large',
        );
        // A chunked body (no Content-Length) of another type is refused as such too.
        const chunked = await fetch(`${svc.url}/api/spiders`, {
          method: 'POST',
          headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'text/plain' },
          body: new ReadableStream({
            start(c) {
              c.enqueue(new TextEncoder().encode('name=x'));
              c.close();
            },
          }),
          duplex: 'half',
        } as RequestInit);
        await expectError(chunked, 415);
        await expectError(await svc.api(alice.token, 'PATCH', '/api/spiders/00000000-0000-0000-0000-000000000000', {}), 400);
      });

      it('a rename or delete that a delete overtook answers 404 instead of a success that changed nothing', async () => {
        const spiders = svc.services.spiders;
        const realGet = spiders.get.bind(spiders);
        // Between looking the spider up and changing it, another request deletes it.
        const overtaken = async (method: string, body?: unknown) => {
          const s = await newSpider(alice.token, `overtaken-${method.toLowerCase()}`);
          let pending = true;
          spiders.get = async (em, actor, id) => {
            const found = await realGet(em, actor, id);
            if (pending && id === s.id) {
              pending = false;
              assert.equal((await svc.api(alice.token, 'DELETE', `/api/spiders/${s.id}`)).status, 204);
            }
            return found;
          };
          try {
            return await svc.api(alice.token, method, `/api/spiders/${s.id}`, body);
          } finally {
            spiders.get = realGet;
          }
        };
        await expectError(await overtaken('PATCH', { description: 'lost' }), 404, 'not_found');
        await expectError(await overtaken('PATCH', { name: 'renamed-into-nothing' }), 404, 'not_found');
        await expectError(await overtaken('DELETE'), 404, 'not_found');
        const names = (await json<{ name: string }[]>(await svc.api(alice.token, 'GET', '/api/spiders'))).map((sp) => sp.name);
        assert.ok(!names.some((n) => n.startsWith('overtaken-') || n === 'renamed-into-nothing'), names.join());
        // Unchanged values on a spider that is there: 200, as before.
        const kept = await newSpider(alice.token, 'kept');
        const same = await svc.api(alice.token, 'PATCH', `/api/spiders/${kept.id}`, { name: 'kept', description: '' });
        assert.equal(same.status, 200);
        assert.equal((await json(same)).name, 'kept');
      });

      it('refuses a description with half a surrogate pair (stored, it would read back as U+FFFD)', async () => {
        const send = (description: string) =>
          svc.api(alice.token, 'POST', '/api/spiders', `{"name":"surrogates","description":"${description}"}`, {
            'content-type': 'application/json',
          });
        await expectError(await send('a\\ud800b'), 400, 'invalid_request');
        await expectError(await send('a\\udc00'), 400, 'invalid_request');
        const ok = await send('emoji \\ud83d\\ude00');
        assert.equal(ok.status, 201);
        const id = (await json(ok)).id;
        assert.equal((await json(await svc.api(alice.token, 'GET', `/api/spiders/${id}`))).description, 'emoji \u{1F600}');
      });

      it("keeps users out of each other's spiders; an admin sees all", async () => {
        const mine = await newSpider(alice.token, 'private');
        const bobs = await json<{ id: string }[]>(await svc.api(bob.token, 'GET', '/api/spiders'));
        assert.ok(!bobs.some((s) => s.id === mine.id));
        for (const [method, p, body] of [
          ['GET', `/api/spiders/${mine.id}`],
          ['PATCH', `/api/spiders/${mine.id}`, { description: 'pwned' }],
          ['DELETE', `/api/spiders/${mine.id}`],
          ['GET', `/api/spiders/${mine.id}/files`],
          ['PUT', `/api/spiders/${mine.id}/files/x.py`, 'print(1)'],
          ['GET', `/api/spiders/${mine.id}/archive`],
          ['POST', `/api/spiders/${mine.id}/archive`, Buffer.alloc(1024)],
        ] as const) {
          await expectError(await svc.api(bob.token, method, p, body), 404, 'not_found');
        }
        assert.equal((await json(await svc.api(alice.token, 'GET', `/api/spiders/${mine.id}`))).description, '');
        const all = await json<{ id: string }[]>(await svc.api(svc.adminToken, 'GET', '/api/spiders'));
        assert.ok(all.some((s) => s.id === mine.id));
        assert.equal((await svc.api(svc.adminToken, 'GET', `/api/spiders/${mine.id}`)).status, 200);
      });
    });

    describe('files', () => {
      let spider: { id: string };
      before(async () => {
        spider = await newSpider(alice.token, 'files');
      });
      const file = (p: string) => `/api/spiders/${spider.id}/files/${p}`;

      it('lists files and spiders in one order on every database: by code point, not by a collation', async () => {
        const own = await newSpider(alice.token, 'order');
        // A linguistic collation (en_US, ICU) sorts "a" before "B" and ignores "_" and "-" at first.
        const names = ['a.py', 'B.py', '_init.py', 'a-b.py', 'ab.py', 'Z/x.py', 'é.py', 'e.py', '\u{1F600}.py', '\uFF21.py'];
        for (const n of names)
          assert.equal(
            (await svc.api(alice.token, 'PUT', `/api/spiders/${own.id}/files/${encodeURIComponent(n).replace(/%2F/g, '/')}`, 'x')).status,
            200,
          );
        const listed = (await json<{ path: string }[]>(await svc.api(alice.token, 'GET', `/api/spiders/${own.id}/files`))).map(
          (f) => f.path,
        );
        const byCodePoint = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
        assert.deepEqual(listed, [...names].sort(byCodePoint));

        const carol = await svc.newUser(`carol-${db}`);
        for (const n of ['beta', 'Alpha', 'alpha', 'a-b', 'Beta', 'a b', '9x']) await newSpider(carol.token, n);
        const spiders = (await json<{ name: string }[]>(await svc.api(carol.token, 'GET', '/api/spiders'))).map((s) => s.name);
        assert.deepEqual(spiders, ['9x', 'Alpha', 'Beta', 'a b', 'a-b', 'alpha', 'beta']);
      });

      it('puts, lists, gets and deletes raw bytes', async () => {
        const body = Buffer.from('import scrapy\n\nclass Q(scrapy.Spider):\n    name = "q"\n');
        const put = await json(await svc.api(alice.token, 'PUT', file('spiders/q.py'), body));
        assert.equal(put.path, 'spiders/q.py');
        assert.equal(put.size, body.length);
        assert.match(put.sha256, /^[0-9a-f]{64}$/);
        const list = await json<{ path: string; size: number; sha256: string; updatedAt: string }[]>(
          await svc.api(alice.token, 'GET', `/api/spiders/${spider.id}/files`),
        );
        assert.deepEqual(
          list.map((f) => [f.path, f.size, f.sha256]),
          [['spiders/q.py', body.length, put.sha256]],
        );
        assert.ok(!Number.isNaN(Date.parse(list[0].updatedAt)));
        const got = await svc.api(alice.token, 'GET', file('spiders/q.py'));
        assert.equal(got.status, 200);
        assert.deepEqual(Buffer.from(await got.arrayBuffer()), body);
        const replaced = await json(await svc.api(alice.token, 'PUT', file('spiders/q.py'), 'v2'));
        assert.equal(replaced.size, 2);
        assert.equal(await (await svc.api(alice.token, 'GET', file('spiders/q.py'))).text(), 'v2');
        assert.equal((await svc.api(alice.token, 'DELETE', file('spiders/q.py'))).status, 204);
        await expectError(await svc.api(alice.token, 'GET', file('spiders/q.py')), 404, 'not_found');
        await expectError(await svc.api(alice.token, 'DELETE', file('spiders/q.py')), 404, 'not_found');
      });

      it('normalises harmless forms: "./a//b" is "a/b"', async () => {
        const put = await json(await svc.api(alice.token, 'PUT', file('./norm//x.txt'), 'n'));
        assert.equal(put.path, 'norm/x.txt');
        assert.equal(await (await svc.api(alice.token, 'GET', file('norm/x.txt'))).text(), 'n');
      });

      it('refuses paths that could escape or confuse: .., absolute, backslash, NUL, control, too long, too deep', async () => {
        const bad = [
          '..%2F..%2Fetc%2Fpasswd',
          'a/..%2F..%2Fb',
          '%2Fetc%2Fpasswd',
          'a%5Cb.py',
          'a%00b',
          'a%0Ab',
          'a%1Bb',
          'C%3A%5Cx',
          `${'d/'.repeat(40)}f`,
          'x'.repeat(300),
          `${'abcdefghij/'.repeat(100)}f`,
        ];
        for (const p of bad) {
          const res = await svc.api(alice.token, 'PUT', file(p), 'evil');
          await expectError(res, 400, 'invalid_path');
        }
        await expectError(await svc.api(alice.token, 'GET', file('..%2Fx')), 400, 'invalid_path');
        await expectError(await svc.api(alice.token, 'DELETE', file('%2Fx')), 400, 'invalid_path');
        await expectError(await svc.api(alice.token, 'PUT', file(''), 'no name'), 400, 'invalid_path');
        const list = await json<{ path: string }[]>(await svc.api(alice.token, 'GET', `/api/spiders/${spider.id}/files`));
        assert.ok(list.every((f) => !f.path.includes('evil') && !f.path.includes('..')));
      });

      it('refuses a file over the size limit with 413 and keeps the old content', async () => {
        await svc.api(alice.token, 'PUT', file('big.bin'), 'small');
        await expectError(await svc.api(alice.token, 'PUT', file('big.bin'), Buffer.alloc(65 * 1024)), 413, 'too_large');
        assert.equal(await (await svc.api(alice.token, 'GET', file('big.bin'))).text(), 'small');
      });

      it('refuses a file where a folder is, and a folder where a file is, and keeps no bytes of the refused ones', async () => {
        const s = await newSpider(alice.token, 'conflicts');
        const put = (p: string, body: string) => svc.api(alice.token, 'PUT', `/api/spiders/${s.id}/files/${p}`, body);
        await put('pkg/mod.py', 'x');
        await expectError(await put('pkg', 'y'), 409, 'path_conflict');
        await expectError(await put('pkg/mod.py/inner.py', 'z'), 409, 'path_conflict');
        const blobs = path.join(svc.dataDir, 'files', 'spiders', s.id, 'blobs');
        const stored = fs.readdirSync(blobs, { recursive: true, encoding: 'utf8' }).filter((n) => /[0-9a-f]{64}$/.test(n));
        assert.equal(stored.length, 1, 'only the accepted file is stored');
      });

      it('enforces the spider size and file count limits', async () => {
        const s = await newSpider(alice.token, 'limits');
        for (let i = 0; i < 4; i++)
          assert.equal((await svc.api(alice.token, 'PUT', `/api/spiders/${s.id}/files/f${i}`, Buffer.alloc(60 * 1024))).status, 200);
        await expectError(await svc.api(alice.token, 'PUT', `/api/spiders/${s.id}/files/f5`, Buffer.alloc(60 * 1024)), 413, 'too_large');
      });

      it('a file stored under a name the rules refuse today is listed, read, deleted or renamed away; no new file gets such a name', async () => {
        const s = await newSpider(alice.token, 'legacy');
        const url = (p: string) => `/api/spiders/${s.id}/files/${p.split('/').map(encodeURIComponent).join('/')}`;
        // Stored before the naming rules (text-direction characters, U+FFFD) were added: rows as they were written then.
        const legacy = { rlo: 'invoice\u202Efdp.py', zwsp: 'pkg/a\u200Bb.py', fffd: 'caf\uFFFD.txt' };
        const em = svc.services.orm.em.fork();
        const put = new Map<string, Awaited<ReturnType<typeof svc.services.blobs.put>>>();
        for (const [key, name] of Object.entries(legacy)) put.set(name, await svc.services.blobs.put(s.id, Buffer.from(`${key} body`)));
        // And a row no rule ever allowed: a lookup still never walks out of the spider for it.
        put.set('../escape.py', await svc.services.blobs.put(s.id, Buffer.from('escape')));
        await svc.services.spiders.commitChanges(em, s.id, { put, delete: new Set() });
        assert.equal((await svc.api(alice.token, 'PUT', url('clean.py'), 'clean')).status, 200);

        const listed = await json<{ path: string }[]>(await svc.api(alice.token, 'GET', `/api/spiders/${s.id}/files`));
        for (const name of Object.values(legacy))
          assert.ok(
            listed.some((f) => f.path === name),
            `${JSON.stringify(name)} is listed`,
          );
        for (const [key, name] of Object.entries(legacy)) {
          const res = await svc.api(alice.token, 'GET', url(name));
          assert.equal(res.status, 200, `${key}: ${await res.clone().text()}`);
          assert.equal(await res.text(), `${key} body`);
          // Another user still finds nothing, whatever the name.
          await expectError(await svc.api(bob.token, 'GET', url(name)), 404, 'not_found');
          await expectError(await svc.api(bob.token, 'DELETE', url(name)), 404, 'not_found');
          // Its content cannot be replaced under that name, nor a new file be given such a name.
          await expectError(await svc.api(alice.token, 'PUT', url(name), 'new'), 400, 'invalid_path');
          await expectError(await svc.api(alice.token, 'PUT', url(`new/${name}`), 'new'), 400, 'invalid_path');
        }
        // Names that only look alike, and that no file has, are still refused as such.
        await expectError(await svc.api(alice.token, 'GET', url('other\u202Etxt.py')), 400, 'invalid_path');
        await expectError(await svc.api(alice.token, 'DELETE', url('other\u202Etxt.py')), 400, 'invalid_path');
        for (const method of ['GET', 'DELETE'])
          await expectError(await svc.api(alice.token, method, `/api/spiders/${s.id}/files/..%2Fescape.py`), 400, 'invalid_path');

        // Renamed away: read, written under a good name, deleted.
        const bytes = Buffer.from(await (await svc.api(alice.token, 'GET', url(legacy.rlo))).arrayBuffer());
        assert.equal((await svc.api(alice.token, 'PUT', url('invoice.py'), bytes)).status, 200);
        assert.equal((await svc.api(alice.token, 'DELETE', url(legacy.rlo))).status, 204);
        assert.equal((await svc.api(alice.token, 'DELETE', url(legacy.zwsp))).status, 204);
        // Gone, the name is refused again rather than "not found".
        await expectError(await svc.api(alice.token, 'GET', url(legacy.rlo)), 400, 'invalid_path');
        const after = await json<{ path: string }[]>(await svc.api(alice.token, 'GET', `/api/spiders/${s.id}/files`));
        assert.deepEqual(after.map((f) => f.path).sort(), ['../escape.py', 'caf\uFFFD.txt', 'clean.py', 'invoice.py']);
        assert.equal(await (await svc.api(alice.token, 'GET', url('invoice.py'))).text(), 'rlo body');
      });

      it('a GET with the If-None-Match of the version the client has answers 304 without the bytes', async () => {
        const s = await newSpider(alice.token, 'revalidate');
        const url = `/api/spiders/${s.id}/files/big.json`;
        await svc.api(alice.token, 'PUT', url, 'x'.repeat(10_000));
        const etag = (await svc.api(alice.token, 'GET', url)).headers.get('etag')!;
        for (const given of [etag, `W/${etag}`, `"other", ${etag}`]) {
          const same = await svc.api(alice.token, 'GET', url, undefined, { 'if-none-match': given });
          assert.equal(same.status, 304, given);
          assert.equal(same.headers.get('etag'), etag);
          assert.equal((await same.arrayBuffer()).byteLength, 0);
        }
        const modified = (await svc.api(alice.token, 'GET', url)).headers.get('last-modified')!;
        assert.equal((await svc.api(alice.token, 'GET', url, undefined, { 'if-modified-since': modified })).status, 304);
        const before = new Date(Date.parse(modified) - 60_000).toUTCString();
        assert.equal((await svc.api(alice.token, 'GET', url, undefined, { 'if-modified-since': before })).status, 200);
        // If-None-Match decides when both are given.
        const both = await svc.api(alice.token, 'GET', url, undefined, { 'if-none-match': '"other"', 'if-modified-since': modified });
        assert.equal(both.status, 200);
        const changed = await svc.api(alice.token, 'GET', url, undefined, { 'if-none-match': '"other"' });
        assert.equal(changed.status, 200);
        assert.equal((await changed.arrayBuffer()).byteLength, 10_000);
        // Another user's file is a 404 whatever the ETag.
        await expectError(await svc.api(bob.token, 'GET', url, undefined, { 'if-none-match': etag }), 404);
      });

      it('If-Match and If-None-Match make a change conditional on the ETag a GET gives; a failed one is a 412 that changes nothing', async () => {
        const s = await newSpider(alice.token, 'conditional');
        const url = `/api/spiders/${s.id}/files/cond.py`;
        const created = await json<{ sha256: string }>(await svc.api(alice.token, 'PUT', url, 'v1', { 'if-none-match': '*' }));
        await expectError(await svc.api(alice.token, 'PUT', url, 'again', { 'if-none-match': '*' }), 412, 'precondition_failed');
        const etag = (await svc.api(alice.token, 'GET', url)).headers.get('etag')!;
        assert.equal(etag, `"${created.sha256}"`);
        // Two editors read v1, both write: the first wins, the second is told instead of overwriting it.
        const [first, second] = await Promise.all([
          svc.api(alice.token, 'PUT', url, 'from A', { 'if-match': etag }),
          svc.api(alice.token, 'PUT', url, 'from B', { 'if-match': etag }),
        ]);
        assert.deepEqual([first.status, second.status].sort(), [200, 412]);
        const winner = first.status === 200 ? 'from A' : 'from B';
        assert.equal(await (await svc.api(alice.token, 'GET', url)).text(), winner);
        await expectError(await svc.api(alice.token, 'PUT', url, 'stale', { 'if-match': `W/${etag}` }), 412, 'precondition_failed');
        await expectError(await svc.api(alice.token, 'DELETE', url, undefined, { 'if-match': etag }), 412, 'precondition_failed');
        await expectError(
          await svc.api(alice.token, 'PUT', `/api/spiders/${s.id}/files/missing.py`, 'x', { 'if-match': '*' }),
          412,
          'precondition_failed',
        );
        assert.equal(await (await svc.api(alice.token, 'GET', url)).text(), winner);
        const now = (await svc.api(alice.token, 'GET', url)).headers.get('etag')!;
        assert.equal((await svc.api(alice.token, 'PUT', url, 'v3', { 'if-match': `"nope", ${now}` })).status, 200);
        assert.equal((await svc.api(alice.token, 'DELETE', url, undefined, { 'if-match': '*' })).status, 204);
        const list = await json<{ path: string }[]>(await svc.api(alice.token, 'GET', `/api/spiders/${s.id}/files`));
        assert.deepEqual(list, []);
      });

      it('an encoded body cut short while its import waits for the spider’s lock is a 400, not an uncaught error', async () => {
        const s = await newSpider(alice.token, 'cut-while-waiting');
        const uncaught: unknown[] = [];
        const record = (err: unknown) => uncaught.push(err);
        process.on('uncaughtException', record);
        const lock = holdSpiderLock(s.id);
        try {
          const cut = gzipSync(await makeTar([{ name: 'x.py', data: 'x'.repeat(4096) }])).subarray(0, 30);
          const importing = svc.api(alice.token, 'POST', `/api/spiders/${s.id}/archive`, cut, { 'content-encoding': 'gzip' });
          await lock.queued(2);
          // The whole body has arrived and its decoding failed while no one reads it yet.
          await new Promise((r) => setTimeout(r, 300));
          await lock.release();
          await expectError(await importing, 400);
        } finally {
          await lock.release();
          process.off('uncaughtException', record);
        }
        assert.deepEqual(uncaught, [], 'a client’s broken body can bring the service down');
      });

      it('stores a body sent with a Content-Encoding as what it encodes; an unknown encoding is a 415 that keeps the file', async () => {
        const s = await newSpider(alice.token, 'encoded');
        const url = `/api/spiders/${s.id}/files/enc.py`;
        const text = 'print("hello")\n'.repeat(50);
        for (const [encoding, encode] of [
          ['gzip', gzipSync],
          ['deflate', deflateSync],
          ['br', brotliCompressSync],
        ] as const) {
          const put = await json(await svc.api(alice.token, 'PUT', url, encode(`${encoding} ${text}`), { 'content-encoding': encoding }));
          assert.equal(put.size, Buffer.byteLength(`${encoding} ${text}`), encoding);
          assert.equal(await (await svc.api(alice.token, 'GET', url)).text(), `${encoding} ${text}`);
        }
        await expectError(await svc.api(alice.token, 'PUT', url, 'zzz', { 'content-encoding': 'compress' }), 415, 'unsupported_media_type');
        await expectError(await svc.api(alice.token, 'PUT', url, 'not gzip', { 'content-encoding': 'gzip' }), 400);
        // The limit is on the file, not on its compressed form.
        await expectError(
          await svc.api(alice.token, 'PUT', url, gzipSync(Buffer.alloc(65 * 1024)), { 'content-encoding': 'gzip' }),
          413,
          'too_large',
        );
        assert.equal(await (await svc.api(alice.token, 'GET', url)).text(), `br ${text}`);
        const archive = await json(
          await svc.api(
            alice.token,
            'POST',
            `/api/spiders/${s.id}/archive`,
            gzipSync(await makeTar([{ name: 'from-tar.py', data: 'tar' }])),
            {
              'content-type': 'application/x-tar',
              'content-encoding': 'gzip',
            },
          ),
        );
        assert.deepEqual(archive, { files: 1, bytes: 3 });
        // A broken one is refused whole, with replace=1 too: the spider keeps its files.
        for (const body of ['not gzip at all', gzipSync(await makeTar([{ name: 'x.py', data: 'x' }])).subarray(0, 30)])
          await expectError(
            await svc.api(alice.token, 'POST', `/api/spiders/${s.id}/archive?replace=1`, body, { 'content-encoding': 'gzip' }),
            400,
          );
        await expectError(
          await svc.api(alice.token, 'POST', `/api/spiders/${s.id}/archive`, 'x', { 'content-encoding': 'compress' }),
          415,
          'unsupported_media_type',
        );
        const list = await json<{ path: string }[]>(await svc.api(alice.token, 'GET', `/api/spiders/${s.id}/files`));
        assert.deepEqual(list.map((f) => f.path).sort(), ['enc.py', 'from-tar.py']);
      });
    });

    describe('archives', () => {
      it('a read that a write overtakes gives the new version, whole; an export gives the spider as it was listed', async () => {
        const s = await newSpider(alice.token, 'overtaken');
        const url = (p: string) => `/api/spiders/${s.id}/files/${p}`;
        await svc.api(alice.token, 'PUT', url('a.py'), 'a1');
        await svc.api(alice.token, 'PUT', url('b.py'), 'b1');
        // Between listing a file and reading its bytes, a PUT replaces it and collects the old bytes.
        const blobs = svc.services.blobs;
        const realRead = blobs.read.bind(blobs);
        let overtake: string | null = 'a.py';
        blobs.read = async (ref) => {
          const path = overtake;
          overtake = null;
          if (path) assert.equal((await svc.api(alice.token, 'PUT', url(path), `${path} v2`)).status, 200);
          return realRead(ref);
        };
        try {
          const res = await svc.api(alice.token, 'GET', url('a.py'));
          assert.equal(res.status, 200);
          assert.equal(await res.text(), 'a.py v2');
          // An export is a snapshot: a.py changes and b.py goes while it runs, and it still holds both as listed.
          overtake = 'a.py';
          blobs.read = async (ref) => {
            if (overtake) {
              overtake = null;
              assert.equal((await svc.api(alice.token, 'PUT', url('a.py'), 'a.py v3')).status, 200);
              assert.equal((await svc.api(alice.token, 'DELETE', url('b.py'))).status, 204);
            }
            return realRead(ref);
          };
          const exported = await svc.api(alice.token, 'GET', `/api/spiders/${s.id}/archive`);
          assert.equal(exported.status, 200);
          const files = await readTarFiles(Buffer.from(await exported.arrayBuffer()));
          assert.deepEqual(Object.fromEntries([...files].map(([k, v]) => [k, v.toString()])), { 'a.py': 'a.py v2', 'b.py': 'b1' });
        } finally {
          blobs.read = realRead;
        }
        // …and what the changes left unused is collected once it ends.
        const stored = () =>
          fs
            .readdirSync(path.join(svc.dataDir, 'files', 'spiders', s.id, 'blobs'), { recursive: true, encoding: 'utf8' })
            .filter((n) => /[0-9a-f]{64}$/.test(n)).length;
        for (let i = 0; i < 100 && stored() !== 1; i++) await new Promise((r) => setTimeout(r, 20));
        assert.equal(stored(), 1, 'only a.py v3 is stored');
        assert.equal(await (await svc.api(alice.token, 'GET', url('a.py'))).text(), 'a.py v3');
      });

      it('an export cut off by its reader lets go of the files it held', async () => {
        const s = await newSpider(alice.token, 'cut-off');
        const url = (p: string) => `/api/spiders/${s.id}/files/${p}`;
        const names = Array.from({ length: 40 }, (_, i) => `f${i}.txt`);
        const put = async (v: string) => {
          for (const [i, name] of names.entries())
            assert.equal((await svc.api(alice.token, 'PUT', url(name), `${v} ${i} `.padEnd(5000, v))).status, 200);
        };
        await put('a');
        // The reader takes the first bytes, then is gone (a download cut, a copy into a container that failed).
        const out = await svc.services.spiders.exportArchive(svc.services.orm.em.fork(), s.id);
        await new Promise((resolve) => out.once('data', resolve));
        out.destroy();
        await new Promise((r) => setTimeout(r, 100));
        await put('b');
        const blobs = () =>
          fs
            .readdirSync(path.join(svc.dataDir, 'files', 'spiders', s.id, 'blobs'), { recursive: true, encoding: 'utf8' })
            .filter((n) => /[0-9a-f]{64}$/.test(n)).length;
        for (let i = 0; i < 100 && blobs() !== names.length; i++) await new Promise((r) => setTimeout(r, 20));
        assert.equal(blobs(), names.length, 'the versions the export held are collected');
      });

      it('imports a tar and a tar.gz, and exports what is stored', async () => {
        const s = await newSpider(alice.token, 'archive');
        const tarball = await makeTar([
          { name: 'scrapy.cfg', data: '[settings]\ndefault = q.settings\n' },
          { name: 'q/', type: 'directory' },
          { name: 'q/__init__.py', data: '' },
          { name: './q/settings.py', data: 'BOT_NAME = "q"\n' },
        ]);
        const res = await svc.api(alice.token, 'POST', `/api/spiders/${s.id}/archive`, tarball, { 'content-type': 'application/x-tar' });
        assert.deepEqual(await json(res), { files: 3, bytes: 47 });
        const gz = await makeTar([{ name: 'q/spiders/quotes.py', data: 'import scrapy\n' }], { gzip: true });
        assert.equal((await svc.api(alice.token, 'POST', `/api/spiders/${s.id}/archive`, gz)).status, 200);
        const exported = await svc.api(alice.token, 'GET', `/api/spiders/${s.id}/archive`);
        assert.equal(exported.headers.get('content-type'), 'application/x-tar');
        const files = await readTarFiles(Buffer.from(await exported.arrayBuffer()));
        assert.deepEqual([...files.keys()].sort(), ['q/__init__.py', 'q/settings.py', 'q/spiders/quotes.py', 'scrapy.cfg']);
        assert.equal(files.get('q/settings.py')!.toString(), 'BOT_NAME = "q"\n');
      });

      it('stores many small files as one pack, reads each back, and removes the pack when no file uses it', async () => {
        const s = await newSpider(alice.token, 'packed');
        const files = Array.from({ length: 20 }, (_, i) => ({ name: `pkg/mod${i}.py`, data: `# module ${i}\n${'x = 1\n'.repeat(i)}` }));
        assert.equal((await svc.api(alice.token, 'POST', `/api/spiders/${s.id}/archive`, await makeTar(files))).status, 200);
        const packDir = path.join(svc.dataDir, 'files', 'spiders', s.id, 'packs');
        assert.equal(fs.readdirSync(packDir).length, 1, 'twenty small files, one pack');
        for (const f of [files[0], files[13], files[19]]) {
          const res = await svc.api(alice.token, 'GET', `/api/spiders/${s.id}/files/${f.name}`);
          assert.equal(await res.text(), f.data);
        }
        const exported = await readTarFiles(
          Buffer.from(await (await svc.api(alice.token, 'GET', `/api/spiders/${s.id}/archive`)).arrayBuffer()),
        );
        for (const f of files) assert.equal(exported.get(f.name)?.toString(), f.data);
        // The same files again, reordered and renamed, plus one: what is stored already is not stored again.
        const again = [...files].reverse().map((f, i) => ({ name: i < 5 ? `moved/${f.name}` : f.name, data: f.data }));
        await svc.api(alice.token, 'POST', `/api/spiders/${s.id}/archive`, await makeTar([...again, { name: 'new.py', data: 'new\n' }]));
        assert.equal(fs.readdirSync(packDir).length, 1);
        assert.equal(
          fs.readdirSync(path.join(packDir, '..', 'blobs'), { recursive: true, encoding: 'utf8' }).filter((n) => /[0-9a-f]{64}$/.test(n))
            .length,
          1,
        );
        assert.equal(await (await svc.api(alice.token, 'GET', `/api/spiders/${s.id}/files/moved/pkg/mod19.py`)).text(), files[19].data);
        // One file changes: the pack still holds the other nineteen.
        await svc.api(alice.token, 'PUT', `/api/spiders/${s.id}/files/pkg/mod4.py`, 'changed\n');
        assert.equal(fs.readdirSync(packDir).length, 1);
        assert.equal(await (await svc.api(alice.token, 'GET', `/api/spiders/${s.id}/files/pkg/mod5.py`)).text(), files[5].data);
        await svc.api(alice.token, 'POST', `/api/spiders/${s.id}/archive?replace=1`, await makeTar([{ name: 'only.py', data: 'x' }]));
        assert.deepEqual(fs.readdirSync(packDir), [], 'no file uses the pack any more');
      });

      it('compacts a pack once less than half of it is in use, and stores nothing for a file written with the bytes it has', async () => {
        const s = await newSpider(alice.token, 'compacted');
        const body = (i: number, v = 'a') => `# ${v} ${i}\n`.padEnd(200, '#');
        const files = Array.from({ length: 20 }, (_, i) => ({ name: `pkg/m${i}.py`, data: body(i) }));
        // An empty file in the pack too (every Scrapy project has some): it starts where the next file, one that stays, does.
        const empty = { name: 'pkg/__init__.py', data: '' };
        const packed = [...files.slice(0, 15), empty, ...files.slice(15)];
        assert.equal((await svc.api(alice.token, 'POST', `/api/spiders/${s.id}/archive`, await makeTar(packed))).status, 200);
        const root = path.join(svc.dataDir, 'files', 'spiders', s.id);
        const objects = (kind: string) =>
          fs.existsSync(path.join(root, kind))
            ? fs
                .readdirSync(path.join(root, kind), { recursive: true, encoding: 'utf8' })
                .filter((n) => /[0-9a-f]{64}$/.test(n))
                .map((n) => path.join(root, kind, n))
            : [];
        const [first] = objects('packs');
        assert.equal(objects('packs').length, 1);
        // The same bytes again: nothing new is kept.
        assert.equal((await svc.api(alice.token, 'PUT', `/api/spiders/${s.id}/files/pkg/m3.py`, body(3))).status, 200);
        assert.deepEqual(objects('blobs'), [], 'no blob left behind for an unchanged file');
        // Eleven of the twenty change: the first pack is less than half in use, and goes.
        const changed = files.slice(0, 11).map((f, i) => ({ name: f.name, data: body(i, 'b') }));
        assert.equal((await svc.api(alice.token, 'POST', `/api/spiders/${s.id}/archive`, await makeTar(changed))).status, 200);
        assert.ok(!fs.existsSync(first), 'the mostly dead pack is gone');
        const onDisk = [...objects('packs'), ...objects('blobs')].reduce((n, f) => n + fs.statSync(f).size, 0);
        assert.equal(onDisk, 20 * 200, 'what is stored is what the files hold');
        const exported = await readTarFiles(
          Buffer.from(await (await svc.api(alice.token, 'GET', `/api/spiders/${s.id}/archive`)).arrayBuffer()),
        );
        for (let i = 0; i < 20; i++) assert.equal(exported.get(`pkg/m${i}.py`)?.toString(), body(i, i < 11 ? 'b' : 'a'));
        assert.equal(exported.get('pkg/__init__.py')?.toString(), '');
        assert.equal(await (await svc.api(alice.token, 'GET', `/api/spiders/${s.id}/files/pkg/m15.py`)).text(), body(15));
      });

      it('a path named twice in an archive is imported once, with its last content, and counted once', async () => {
        const s = await newSpider(alice.token, 'twice');
        const tarball = await makeTar([
          { name: 'd.py', data: 'first' },
          { name: 'e.py', data: 'e' },
          { name: './d.py', data: 'last' },
        ]);
        assert.deepEqual(await json(await svc.api(alice.token, 'POST', `/api/spiders/${s.id}/archive`, tarball)), { files: 2, bytes: 5 });
        assert.equal(await (await svc.api(alice.token, 'GET', `/api/spiders/${s.id}/files/d.py`)).text(), 'last');
      });

      it('?replace=1 makes the spider exactly the archive', async () => {
        const s = await newSpider(alice.token, 'replace');
        await svc.api(alice.token, 'PUT', `/api/spiders/${s.id}/files/old.py`, 'old');
        await svc.api(alice.token, 'POST', `/api/spiders/${s.id}/archive?replace=1`, await makeTar([{ name: 'new.py', data: 'new' }]));
        const list = await json<{ path: string }[]>(await svc.api(alice.token, 'GET', `/api/spiders/${s.id}/files`));
        assert.deepEqual(
          list.map((f) => f.path),
          ['new.py'],
        );
      });

      it('refuses the whole archive for one bad entry and stores nothing', async () => {
        const s = await newSpider(alice.token, 'all-or-nothing');
        await svc.api(alice.token, 'PUT', `/api/spiders/${s.id}/files/keep.py`, 'keep');
        const good = { name: 'good.py', data: 'ok' };
        const cases: [string, Buffer, number][] = [
          ['symlink', await makeTar([good, { name: 'link', type: 'symlink', linkname: '/etc/passwd' }]), 400],
          ['hardlink', await makeTar([good, { name: 'hard', type: 'link', linkname: 'good.py' }]), 400],
          ['device', await makeTar([good, { name: 'dev', type: 'character-device', devmajor: 1, devminor: 3 }]), 400],
          ['fifo', await makeTar([good, { name: 'fifo', type: 'fifo' }]), 400],
          ['dot-dot', await makeTar([good, { name: '../escape.py', data: 'x' }]), 400],
          ['absolute', await makeTar([good, { name: '/etc/cron.d/x', data: 'x' }]), 400],
          ['backslash', await makeTar([good, { name: 'a\\b.py', data: 'x' }]), 400],
          ['control', await makeTar([good, { name: 'a\u0007.py', data: 'x' }]), 400],
          ['too large', await makeTar([good, { name: 'big.bin', data: Buffer.alloc(70 * 1024) }]), 413],
          ['too many', await makeTar(Array.from({ length: 51 }, (_, i) => ({ name: `f${i}`, data: 'x' }))), 413],
          ['file and folder', await makeTar([good, { name: 'good.py/x', data: 'x' }]), 409],
          ['not a tar', Buffer.from('this is not a tar archive at all, just words. '.repeat(30)), 400],
          ['truncated', (await makeTar([{ name: 'big.py', data: Buffer.alloc(10_000, 97) }])).subarray(0, 3000), 400],
          ['empty', Buffer.alloc(0), 400],
          // Cut between two entries: the parser alone would take it as a whole, shorter archive.
          ['cut short', (await makeTar([good, { name: 'more.py', data: 'x' }])).subarray(0, 2048), 400],
        ];
        // With replace=1 too, where an archive taken for empty or short would delete the spider's other files.
        for (const query of ['', '?replace=1']) {
          for (const [label, body, status] of cases) {
            const res = await svc.api(alice.token, 'POST', `/api/spiders/${s.id}/archive${query}`, body);
            const err = await json(res);
            assert.equal(res.status, status, `${label}${query}: ${JSON.stringify(err)}`);
            assert.ok(err.error?.message, label);
          }
        }
        const list = await json<{ path: string }[]>(await svc.api(alice.token, 'GET', `/api/spiders/${s.id}/files`));
        assert.deepEqual(
          list.map((f) => f.path),
          ['keep.py'],
        );
      });

      it('refuses a huge pax header before reading it', async () => {
        const s = await newSpider(alice.token, 'pax');
        const res = await svc.api(
          alice.token,
          'POST',
          `/api/spiders/${s.id}/archive`,
          await makeTar([{ name: `${'a/'.repeat(20)}${'b'.repeat(200)}`, data: 'x', pax: { comment: 'c'.repeat(100_000) } }]),
        );
        assert.ok([400, 413].includes(res.status));
      });
    });

    describe('secrets', () => {
      it('never stores or logs a token in clear', async () => {
        await svc.api(alice.token, 'GET', '/api/me');
        await svc.api(`chub_${'B'.repeat(43)}`, 'GET', '/api/me');
        const logs = svc.logs();
        assert.ok(logs.length > 0);
        for (const token of [alice.token, bob.token, svc.adminToken, `chub_${'B'.repeat(43)}`]) {
          assert.ok(!logs.includes(token), 'a token appears in the logs');
          assert.ok(!logs.includes(token.slice(12)), 'the secret part of a token appears in the logs');
        }
        const conn = svc.services.orm.em.fork().getConnection();
        const rows: unknown[] = [];
        for (const table of ['users', 'api_tokens', 'spiders', 'spider_files', 'code_sessions']) {
          rows.push(...((await conn.execute(`select * from ${table}`)) as unknown[]));
        }
        const dump = JSON.stringify(rows);
        for (const token of [alice.token, bob.token, svc.adminToken]) {
          assert.ok(!dump.includes(token.slice(12)), 'a token is stored in clear');
        }
        assert.ok(dump.includes(alice.token.slice(0, 12)), 'the visible prefix is stored to identify the token');
      });
    });
  });
}
