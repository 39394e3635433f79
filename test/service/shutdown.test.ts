import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { spawnService } from '../helpers/process';
import { json, startTestService } from '../helpers/service';

describe('stopping the service', () => {
  it('SIGTERM lets a request in flight finish (a slow upload is stored, not cut), then exits 0', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-stop-'));
    const service = await spawnService({ CRAWLHUB_DATA_DIR: dir, DATABASE_URL: '' }).catch((err: unknown) => {
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    });
    const { child, url, exited } = service;
    try {
      const token = fs.readFileSync(path.join(dir, 'admin.token'), 'utf8').trim();
      const auth = { authorization: `Bearer ${token}` };
      const spider = await json(
        await fetch(`${url}/api/spiders`, {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'slow' }),
        }),
      );

      // Half of the body, then SIGTERM, then the rest: the upload is answered, and the service then exits.
      // The connection is kept alive, as browsers and HTTP clients keep them.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const body = Buffer.alloc(256 * 1024, 'x');
      const put = (name: string, slow: boolean) =>
        new Promise<{ status: number; connection?: string }>((resolve, reject) => {
          const u = new URL(`${url}/api/spiders/${spider.id}/files/data/${name}`);
          const req = http.request(
            {
              host: u.hostname,
              port: u.port,
              path: u.pathname,
              method: 'PUT',
              agent,
              headers: { ...auth, 'content-type': 'application/octet-stream', 'content-length': body.length },
            },
            (res) => {
              res.resume();
              res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection }));
            },
          );
          req.on('error', reject);
          if (!slow) return req.end(body);
          req.write(body.subarray(0, body.length / 2));
          setTimeout(() => {
            child.kill('SIGTERM');
            setTimeout(() => req.end(body.subarray(body.length / 2)), 500);
          }, 300);
        });
      const first = await put('big.txt', true);
      assert.deepEqual(first, { status: 200, connection: 'close' }, service.output());
      // The next request is turned away whole (503, or no connection at all), never cut off in its body.
      const second = await put('next.txt', false).then(
        (r) => r.status,
        (err: NodeJS.ErrnoException) => err.code,
      );
      assert.ok(second === 503 || second === 'ECONNREFUSED', `the next request: ${second}`);
      agent.destroy();
      assert.equal(await exited, 0, service.output());

      // Started again on the same data: the file is there, whole.
      const again = await startTestService({ dataDir: dir, env: { DATABASE_URL: '' } });
      try {
        const file = await again.api(token, 'GET', `/api/spiders/${spider.id}/files/data/big.txt`);
        assert.equal(file.status, 200);
        assert.equal((await file.arrayBuffer()).byteLength, body.length);
      } finally {
        await again.close();
      }
    } finally {
      await service.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('SIGTERM during the start-up reconcile stops gracefully (exit 0), not by the signal', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-stop-'));
    // An engine that takes connections and never answers: the reconcile hangs on it until the Docker timeout.
    const sock = path.join(dir, 'docker.sock');
    const held: net.Socket[] = [];
    const engine = net.createServer((c) => held.push(c));
    await new Promise<void>((resolve) => engine.listen(sock, resolve));
    const cleanup = () => {
      for (const c of held) c.destroy();
      engine.close();
      fs.rmSync(dir, { recursive: true, force: true });
    };
    const service = await spawnService({
      CRAWLHUB_DATA_DIR: dir,
      DATABASE_URL: '',
      DOCKER_HOST: `unix://${sock}`,
      CRAWLHUB_DOCKER_TIMEOUT: '3s',
    }).catch((err: unknown) => {
      cleanup();
      throw err;
    });
    try {
      // Listening, and the reconcile's question is with the engine (which will not answer it for 3 s).
      for (let i = 0; held.length === 0; i++) {
        if (i >= 1500) throw new Error(`the start-up reconcile did not ask the engine within 30 s: ${service.output()}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      service.child.kill('SIGTERM');
      assert.deepEqual([await service.exited, service.child.signalCode], [0, null], service.output());
      assert.match(service.output(), /stopping: finishing requests and saves in flight/);
    } finally {
      await service.stop();
      cleanup();
    }
  });
});
