import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { json, startTestService, type TestService } from '../helpers/service';
import { containerName, docker, removeContainers, requireDocker } from '../helpers/docker';
import { rawExchange } from '../proxy/harness';

describe('the terminal WebSocket on the real engine', () => {
  let svc: TestService;
  let alice: { id: string; token: string };
  let sessionId: string;

  before(async () => {
    requireDocker();
    svc = await startTestService({ env: { CRAWLHUB_SWEEP_INTERVAL: '1h' } });
    alice = await svc.newUser('alice');
    const spider = await json(await svc.api(alice.token, 'POST', '/api/spiders', { name: 'terminal' }));
    const res = await svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`);
    const session = await json(res);
    assert.equal(session.status, 'ready', JSON.stringify(session));
    sessionId = session.session_id;
  });
  after(async () => {
    await svc?.close();
    if (svc) removeContainers(svc.config.instance);
  });

  it('starts no shell for a handshake that ws refuses, and closes with 1011 when the shell cannot start', async () => {
    const runtime = svc.services.docker;
    const execTty = runtime.execTty.bind(runtime);
    let started = 0;
    runtime.execTty = (...args) => {
      started++;
      return execTty(...args);
    };
    try {
      // No Sec-WebSocket-Key: ws answers 400 and never calls back.
      const reply = await rawExchange(
        Number(new URL(svc.url).port),
        `GET /api/sessions/${sessionId}/terminal HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.token}\r\n` +
          'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
      assert.match(reply, /^HTTP\/1\.1 400 /);
      assert.equal(started, 0, 'no shell was started');
      assert.doesNotMatch(docker('top', containerName(svc, sessionId), '-o', 'pid,args'), /bash -l/);

      runtime.execTty = () => Promise.reject(new Error('exec failed'));
      const ws = new WebSocket(`${svc.url.replace('http', 'ws')}/api/sessions/${sessionId}/terminal`, {
        headers: { authorization: `Bearer ${alice.token}` },
      });
      const [code, reason] = await new Promise<[number, string]>((r) =>
        ws.once('close', (c: number, why: Buffer) => r([c, why.toString()])),
      );
      assert.equal(code, 1011);
      assert.match(reason, /shell could not start/);
    } finally {
      runtime.execTty = execTty;
    }
  });
});
