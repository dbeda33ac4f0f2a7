// postcard primitives: varints up to 2^53, zigzag, strings, options, sequences, and
// malformed input as errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PostcardError, Reader, Writer, encodeVarint } from '../../dist/postcard.js';

test('varints are LEB128, as postcard writes them', () => {
  const cases = [[0, [0]], [127, [0x7f]], [128, [0x80, 1]], [300, [0xac, 2]], [2 ** 32 - 1, [0xff, 0xff, 0xff, 0xff, 0x0f]]];
  for (const [n, bytes] of cases) {
    assert.deepEqual([...encodeVarint(n)], bytes, `encode ${n}`);
    assert.equal(new Reader(Uint8Array.from(bytes)).varint(), n, `decode ${n}`);
  }
  for (const n of [2 ** 40, 2 ** 53 - 1, 123456789012345]) {
    assert.equal(new Reader(new Writer().varint(n).finish()).u64(), n);
  }
  assert.throws(() => new Writer().varint(-1), PostcardError);
  assert.throws(() => new Writer().varint(2 ** 53), PostcardError);
  assert.throws(() => new Writer().varint(1.5), PostcardError);
});

test('u32 and u16 are range-checked', () => {
  assert.throws(() => new Reader(new Writer().varint(2 ** 32).finish()).u32(), PostcardError);
  assert.throws(() => new Reader(new Writer().varint(70000).finish()).u16(), PostcardError);
  assert.throws(() => new Reader(Uint8Array.of(0x80, 0x80)).varint(), /truncated/);
  assert.throws(() => new Reader(new Uint8Array(11).fill(0xff)).u64(), /too long/);
  // 2^53 and beyond cannot be represented exactly.
  assert.throws(() => new Reader(Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10)).u64(), /2\^53/);
});

test('i32 is zigzag', () => {
  for (const [n, z] of [[0, 0], [-1, 1], [1, 2], [-2, 3], [50, 100], [-2147483648, 4294967295], [2147483647, 4294967294]]) {
    const bytes = new Writer().i32(n).finish();
    assert.equal(new Reader(bytes).varint(), z, `zigzag ${n}`);
    assert.equal(new Reader(bytes).i32(), n);
  }
  assert.throws(() => new Writer().i32(2 ** 31), PostcardError);
});

test('strings, bytes, options, sequences round-trip', () => {
  const w = new Writer(1)
    .str('héllo ✓')
    .bytes(Uint8Array.of(1, 2, 3))
    .option(undefined, (w, v) => w.str(v))
    .option('x', (w, v) => w.str(v))
    .seq(['a', 'bb'], (w, v) => w.str(v))
    .bool(true);
  const r = new Reader(w.finish());
  assert.equal(r.str(), 'héllo ✓');
  assert.deepEqual([...r.bytes()], [1, 2, 3]);
  assert.equal(r.option((r) => r.str()), undefined);
  assert.equal(r.option((r) => r.str()), 'x');
  assert.deepEqual(r.seq((r) => r.str()), ['a', 'bb']);
  assert.equal(r.bool(), true);
  r.end();
});

test('malformed input is a PostcardError', () => {
  assert.throws(() => new Reader(Uint8Array.of(5, 1, 2)).str(), /truncated/);
  assert.throws(() => new Reader(Uint8Array.of(2, 0xc3, 0x28)).str(), /UTF-8/);
  assert.throws(() => new Reader(Uint8Array.of(2)).option((r) => r.u8), /option tag/);
  assert.throws(() => new Reader(Uint8Array.of(3)).bool(), /bool/);
  assert.throws(() => new Reader(Uint8Array.of(1, 2)).end(), /trailing/);
});
