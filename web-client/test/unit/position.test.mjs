// Recovery bookkeeping: what a subscription delivers from subscribe results and live
// publications, so that after a reconnect nothing is missed and nothing arrives twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamPosition } from '../../dist/position.js';

const pubs = (...offsets) => offsets.map((offset) => ({ offset, data: { n: offset } }));

test('a first subscribe starts at the stream top; live publications follow in order', () => {
  const p = new StreamPosition();
  assert.equal(p.recoverFrom(), null);
  assert.deepEqual(p.apply({ recoverable: true, epoch: 'e', offset: 10 }), []);
  assert.deepEqual(p.recoverFrom(), { offset: 10, epoch: 'e' });
  assert.equal(p.check(11), 'deliver');
  assert.equal(p.check(11), 'duplicate');
  assert.equal(p.check(10), 'duplicate');
  assert.equal(p.check(13), 'gap');
  assert.equal(p.check(12), 'deliver');
  assert.deepEqual(p.recoverFrom(), { offset: 12, epoch: 'e' });
});

test('recovery in the same epoch delivers only what is past the position', () => {
  const p = new StreamPosition();
  p.apply({ recoverable: true, epoch: 'e', offset: 3 });
  p.check(4);
  // Reconnect: the server returns 3..7 (one already seen), the top is 7.
  const out = p.apply({ recoverable: true, epoch: 'e', offset: 7, publications: pubs(4, 5, 6, 7), recovered: true, was_recovering: true });
  assert.deepEqual(out.map((x) => x.offset), [5, 6, 7]);
  // Live publications that overlapped with the recovery are duplicates now.
  assert.equal(p.check(7), 'duplicate');
  assert.equal(p.check(8), 'deliver');
});

test('a new epoch (stream lost) restarts at the top and delivers the result as it is', () => {
  const p = new StreamPosition();
  p.apply({ recoverable: true, epoch: 'old', offset: 50 });
  const out = p.apply({ recoverable: true, epoch: 'new', offset: 2, publications: pubs(1, 2), recovered: false, was_recovering: true });
  assert.deepEqual(out.map((x) => x.offset), [1, 2]);
  assert.deepEqual(p.recoverFrom(), { offset: 2, epoch: 'new' });
  assert.equal(p.check(3), 'deliver');
});

test('channels without history deliver everything and recover nothing', () => {
  const p = new StreamPosition();
  p.apply({ recoverable: false });
  assert.equal(p.check(0), 'deliver');
  assert.equal(p.check(undefined), 'deliver');
  assert.equal(p.recoverFrom(), null);
});

test('latest-value (datagram) channels drop stale values and accept jumps', () => {
  const p = new StreamPosition(true);
  p.apply({ recoverable: true, epoch: 'e', offset: 5 });
  assert.equal(p.recoverFrom(), null, 'datagram channels do not recover');
  assert.equal(p.check(9), 'deliver');
  assert.equal(p.check(7), 'stale');
  assert.equal(p.check(12), 'deliver');
  assert.equal(p.check(0), 'deliver', 'no offsets: every value is delivered');
});

test('a recovering result without `recovered` (JSON omits false) is a failed recovery', () => {
  const p = new StreamPosition();
  p.apply({ recoverable: true, epoch: 'e', offset: 3 });
  const out = p.apply({ recoverable: true, epoch: 'e', offset: 9, publications: pubs(1, 2), was_recovering: true });
  assert.deepEqual(out.map((x) => x.offset), [1, 2], 'delivered as they are');
  assert.deepEqual(p.recoverFrom(), { offset: 9, epoch: 'e' }, 'restarted at the top');
});
