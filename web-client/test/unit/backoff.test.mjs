// Reconnect delays grow exponentially up to the cap, always with jitter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, backoffDelay } from '../../dist/backoff.js';

test('the cap doubles per attempt up to maxDelay; the delay is in its upper half', () => {
  const opts = { minDelay: 500, maxDelay: 20000 };
  const caps = [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000];
  caps.forEach((cap, attempt) => {
    assert.equal(backoffDelay(attempt, { ...opts, random: () => 0 }), cap / 2, `low end of attempt ${attempt}`);
    assert.equal(backoffDelay(attempt, { ...opts, random: () => 0.999999 }), cap - 1, `high end of attempt ${attempt}`);
  });
  assert.equal(backoffDelay(10_000, { ...opts, random: () => 0.5 }), 15000, 'huge attempt counts stay finite');
});

test('jitter spreads clients out', () => {
  const seen = new Set();
  for (let i = 0; i < 50; i++) seen.add(backoffDelay(3, { minDelay: 500, maxDelay: 20000 }));
  assert.ok(seen.size > 10, `${seen.size} distinct delays`);
  for (const d of seen) assert.ok(d >= 2000 && d < 4000, `${d} within [2000, 4000)`);
});

test('Backoff counts failures and resets on success', () => {
  const b = new Backoff({ minDelay: 100, maxDelay: 1000, random: () => 0 });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [50, 100, 200, 400, 500]);
  assert.equal(b.attempts, 5);
  b.reset();
  assert.equal(b.next(), 50);
});
