// The proxy's memory of whether an IDE's API token still stands (pure logic: the database question is a function).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TokenLiveness } from '../../service/proxy/tokens';

test('a revoked token is refused for good, yet the memory of revoked tokens stays within its bound', async () => {
  const revoked = new Set<string>();
  let asked = 0;
  const ask = async (id: string) => {
    asked++;
    return !revoked.has(id);
  };
  const tokens = new TokenLiveness(ask, 30_000, () => 0, 8);
  // A user makes a token, opens an IDE with it and revokes it, over and over.
  for (let i = 0; i < 100; i++) {
    const id = `t${i}`;
    assert.equal(await tokens.state(id), true);
    revoked.add(id);
    assert.equal(await tokens.refresh(id), false);
  }
  assert.ok(tokens.size <= 8, `remembers ${tokens.size} tokens`);
  // A revoked token still remembered is refused without asking; a forgotten one is asked and refused.
  const before = asked;
  assert.equal(await tokens.state('t99'), false);
  assert.equal(asked, before);
  assert.equal(await tokens.state('t0'), false);
});
