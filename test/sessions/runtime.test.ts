import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger } from '../../service/logger';
import { DockerRuntime } from '../../service/runtime/docker';

/** A runtime whose engine is `engine` (the parts of dockerode a test gives), with a 50 ms time limit. */
function runtimeWith(engine: object): DockerRuntime {
  const runtime = new DockerRuntime(createLogger('silent'), 50);
  (runtime as unknown as { docker: object }).docker = engine;
  return runtime;
}

const after = <T>(ms: number, value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), ms));
const settled = () => new Promise((resolve) => setTimeout(resolve, 200));

describe('the Docker runtime, when the engine answers after the time limit', () => {
  it('closes an archive stream that arrives after its read was given up on', async () => {
    const late = new PassThrough();
    const runtime = runtimeWith({ getContainer: () => ({ getArchive: () => after(120, late) }) });
    await assert.rejects(runtime.getArchive('c', '/workspace'), { code: 'docker_timeout', status: 504 });
    await settled();
    assert.equal(late.destroyed, true, 'nobody reads it: it would hold the engine connection open');
  });

  it('closes an event stream that arrives after its subscription was given up on', async () => {
    const late = new PassThrough();
    const runtime = runtimeWith({ getEvents: () => after(120, late) });
    await assert.rejects(runtime.events({ app: 'crawlhub' }), { code: 'docker_timeout' });
    await settled();
    assert.equal(late.destroyed, true);
  });

  it('stops reading the source of an upload the engine does not take in time', async () => {
    const source = Readable.from(['a tar'], { objectMode: false });
    const runtime = runtimeWith({ getContainer: () => ({ putArchive: () => new Promise(() => undefined) }) });
    await assert.rejects(runtime.putArchive('c', '/workspace', source), { code: 'docker_timeout' });
    assert.equal(source.destroyed, true, 'an export behind it holds its files until it ends');
  });

  it('hands back an answer in time untouched', async () => {
    const stream = new PassThrough();
    const runtime = runtimeWith({ getContainer: () => ({ getArchive: () => after(5, stream) }) });
    assert.equal(await runtime.getArchive('c', '/workspace'), stream);
    await settled();
    assert.equal(stream.destroyed, false);
  });
});
