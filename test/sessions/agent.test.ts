import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { Writable } from 'node:stream';
import { createLogger } from '../../service/logger';
import type { DockerRuntime } from '../../service/runtime/docker';
import { WorkspaceAgents } from '../../service/sessions/agent';

/** A stand-in engine whose one helper process answers each request line with `answer(line)`, in the chunks given. */
function engine(answer: (line: string) => Buffer[]) {
  const stdout = new PassThrough();
  const stdin = new PassThrough();
  stdin.on('data', (d: Buffer) => {
    for (const line of d.toString().split('\n').filter(Boolean)) for (const chunk of answer(line)) stdout.write(chunk);
  });
  const docker = { execStream: () => Promise.resolve({ stream: { stdin, stdout }, done: new Promise(() => undefined) }) };
  return docker as unknown as DockerRuntime;
}

const quiet = createLogger('error', new Writable({ write: (_c, _e, done) => done() }));
const ask = (agents: WorkspaceAgents, line: string, listing: boolean) =>
  agents.request('c0ffee', '1000:1000', [], line, { listing, maxOutput: 200 * 1024 * 1024, timeoutMs: 60_000 });

describe('the workspace agent reading untrusted output', () => {
  it('reads a listing whose records end each chunk in time linear in its size, and its end split across chunks', async () => {
    // 16 MiB of 4 KiB records, each chunk ending in the NUL that ends a record (what the container can arrange).
    const record = Buffer.concat([Buffer.alloc(4095, 0x61), Buffer.from([0])]);
    const records = 4096;
    const agents = new WorkspaceAgents(
      engine(() => [...Array.from({ length: records }, () => record), Buffer.from([0])]),
      quiet,
    );
    // Counted, not timed: joining the answer on every record would copy ~32 GiB here (seconds of the
    // service's one event loop); joined once, 16 MiB.
    const concat = Buffer.concat.bind(Buffer);
    let joins = 0;
    Buffer.concat = (list: readonly Uint8Array[], length?: number) => (joins++, concat(list, length));
    let out: Buffer;
    try {
      out = await ask(agents, 'L', true);
    } finally {
      Buffer.concat = concat;
    }
    assert.equal(out.length, records * record.length);
    assert.ok(joins <= 2, `the answer was joined ${joins} times`);
    agents.closeAll();

    // The two NULs that end a listing, in two chunks; an empty listing; a file's answer; one out of form.
    const split = new WorkspaceAgents(
      engine((line) =>
        line === 'L'
          ? [Buffer.from('a\0'), Buffer.from('\0')]
          : line === 'E'
            ? [Buffer.from('\0')]
            : line === 'F'
              ? [Buffer.from('aGVs'), Buffer.from('bG8=\0')]
              : [Buffer.from('x\0y\0')],
      ),
      quiet,
    );
    assert.equal((await ask(split, 'L', true)).toString(), 'a\0');
    assert.equal((await ask(split, 'E', true)).length, 0);
    assert.equal((await ask(split, 'F', false)).toString(), 'aGVsbG8=');
    await assert.rejects(ask(split, 'X', false), /out of form/);
    split.closeAll();
  });
});
