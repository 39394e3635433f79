// How the spawner decides between a container's network address and its published port, with
// the engine replaced by a stand-in that reports loopback addresses of servers this test runs.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../../service/config';
import { createLogger } from '../../service/logger';
import type { DockerRuntime } from '../../service/runtime/docker';
import type { ServiceSecret } from '../../service/secret';
import { Spawner } from '../../service/sessions/spawner';

const servers: http.Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

/** A stand-in code-server answering /healthz with `status`; counts the requests it gets. */
async function healthz(status: number, at: { host: string; port: number }): Promise<{ port: number; hits: () => number }> {
  let hits = 0;
  const server = http.createServer((_req, res) => {
    hits++;
    res.writeHead(status).end();
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(at.port, at.host, resolve));
  servers.push(server);
  return { port: (server.address() as AddressInfo).port, hits: () => hits };
}

/** A container address: a loopback address of its own with code-server's port 8080 free on it. */
async function containerAddress(status: number): Promise<{ host: string; hits: () => number }> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const host = `127.0.${1 + Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}`;
    try {
      return { host, ...(await healthz(status, { host, port: 8080 })) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
  throw new Error('port 8080 is taken on every loopback address tried (something listens on 0.0.0.0:8080)');
}

function spawnerFor(container: { address: string; hostPort: number | null }) {
  const config = loadConfig({});
  const lines: string[] = [];
  const logger = createLogger('info', new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(chunk.toString()), done()) }));
  const engine = {
    inspect: async () => ({ addresses: { [config.CRAWLHUB_NETWORK]: container.address }, hostPort: container.hostPort }),
  } as unknown as DockerRuntime;
  const spawner = new Spawner(engine, config, {} as ServiceSecret, logger);
  return { spawner, warnings: () => lines.filter((l) => l.includes('through their published ports')).length };
}

describe("a container's network address for the browser IDE proxy", () => {
  it('is used when code-server answers there', async () => {
    const good = await containerAddress(200);
    const { spawner, warnings } = spawnerFor({ address: good.host, hostPort: null });
    assert.deepEqual(await spawner.networkAddress('c1'), { host: good.host, port: 8080 });
    assert.equal(warnings(), 0);
  });

  it('is given up for every session, said once, when it fails while the published port answers', async () => {
    const unreachable = await containerAddress(503);
    const published = await healthz(200, { host: '127.0.0.1', port: 0 });
    const { spawner, warnings } = spawnerFor({ address: unreachable.host, hostPort: published.port });
    assert.equal(await spawner.networkAddress('c1'), null);
    assert.equal(await spawner.networkAddress('c2'), null);
    assert.equal(unreachable.hits(), 1, 'not probed again');
    assert.equal(published.hits(), 1);
    assert.equal(warnings(), 1);
  });

  it('is given up for that container alone when its published port fails too (the container is what failed)', async () => {
    const broken = await containerAddress(503);
    const published = await healthz(503, { host: '127.0.0.1', port: 0 });
    const container = { address: broken.host, hostPort: published.port as number | null };
    const { spawner, warnings } = spawnerFor(container);
    assert.equal(await spawner.networkAddress('broken'), null);
    const good = await containerAddress(200);
    container.address = good.host;
    assert.deepEqual(await spawner.networkAddress('next'), { host: good.host, port: 8080 });
    assert.equal(warnings(), 0);
  });
});
