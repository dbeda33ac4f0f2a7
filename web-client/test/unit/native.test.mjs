// The TypeScript native codec against byte vectors written by the Rust encoder
// (tests/web_client.rs writes and checks test/fixtures/native.json), plus framing edge cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  FrameBuffer, decodeDatagram, decodePublication, decodeServerFrame, decodeStreamHeader, encodeCommand, encodeDatagram,
  frame, payloadBytes, payloadValue,
} from '../../dist/native.js';
import { PostcardError } from '../../dist/postcard.js';

const fixtures = JSON.parse(fs.readFileSync(new URL('../fixtures/native.json', import.meta.url), 'utf8'));
const fromHex = (h) => Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));
const toHex = (a) => Buffer.from(a).toString('hex');
/** Fixtures spell non-JSON payloads as {"$bytes": "<hex>"}. */
const revive = (v) => {
  if (Array.isArray(v)) return v.map(revive);
  if (v && typeof v === 'object') {
    if (typeof v.$bytes === 'string') return fromHex(v.$bytes);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, revive(x)]));
  }
  return v;
};

test('the fixtures cover every kind of message', () => {
  const kinds = new Set(fixtures.map((f) => f.kind));
  assert.deepEqual([...kinds].sort(), ['command', 'datagram', 'publication', 'server_frame', 'stream_header']);
  assert.ok(fixtures.length >= 30);
});

for (const f of fixtures) {
  test(`${f.kind}: ${f.name}`, () => {
    const bytes = fromHex(f.hex);
    const expect = revive(f.expect);
    switch (f.kind) {
      case 'command':
        assert.equal(toHex(encodeCommand(expect)), f.hex);
        break;
      case 'server_frame':
        assert.deepEqual(decodeServerFrame(bytes), expect);
        break;
      case 'stream_header':
        assert.deepEqual(decodeStreamHeader(bytes), expect);
        break;
      case 'publication':
        assert.deepEqual(decodePublication(bytes), expect);
        break;
      case 'datagram':
        assert.deepEqual(decodeDatagram(bytes), expect);
        break;
      default:
        assert.fail(`unknown kind ${f.kind}`);
    }
  });
}

test('every truncation of a server frame is an error, never a wrong value', () => {
  const f = fixtures.find((x) => x.name === 'subscribe reply with recovered publications');
  const bytes = fromHex(f.hex);
  for (let n = 0; n < bytes.length; n++) {
    assert.throws(() => decodeServerFrame(bytes.subarray(0, n)), PostcardError, `prefix of ${n} bytes`);
  }
});

test('unknown variants and bad bools are errors', () => {
  assert.throws(() => decodeServerFrame(Uint8Array.of(9)), /unknown server frame/);
  assert.throws(() => decodeServerFrame(Uint8Array.of(0, 1, 99)), /unknown reply kind/);
  assert.throws(() => decodeServerFrame(Uint8Array.of(1, 42)), /unknown push kind/);
  // Reply(id 1, Error(103, "", temporary = 2)): 2 is not a bool.
  assert.throws(() => decodeServerFrame(Uint8Array.of(0, 1, 0, 103, 0, 2)), /invalid bool/);
});

test('a sequence count beyond the message is refused before allocating', () => {
  // Reply(id 1, Presence(count 2^32 - 1)).
  assert.throws(() => decodeServerFrame(Uint8Array.of(0, 1, 5, 0xff, 0xff, 0xff, 0xff, 0x0f)), /longer than the message/);
});

test('command ids outside 1..2^31 are refused', () => {
  assert.throws(() => encodeCommand({ id: 2 ** 31, ping: {} }), /out of range/);
  assert.throws(() => encodeCommand({ id: -1, ping: {} }), /out of range/);
});

test('frames split across chunks come out whole, in order', () => {
  const a = frame(Uint8Array.of(1, 2, 3));
  const b = frame(new Uint8Array(300).fill(7)); // two-byte length prefix
  const all = new Uint8Array([...a, ...b]);
  for (let cut = 0; cut <= all.length; cut++) {
    const fb = new FrameBuffer();
    fb.push(all.subarray(0, cut));
    const got = [];
    let x;
    while ((x = fb.next())) got.push(x);
    fb.push(all.subarray(cut));
    while ((x = fb.next())) got.push(x);
    assert.equal(got.length, 2, `cut at ${cut}`);
    assert.deepEqual([...got[0]], [1, 2, 3]);
    assert.equal(got[1].length, 300);
    assert.equal(fb.buffered, 0);
  }
});

test('a frame over the limit is refused from its length prefix alone', () => {
  const fb = new FrameBuffer(100);
  fb.push(Uint8Array.of(0xe8, 0x07)); // length 1000, no body yet
  assert.throws(() => fb.next(), /over the 100-byte limit/);
  const garbage = new FrameBuffer();
  garbage.push(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
  assert.throws(() => garbage.next(), /varint too long/);
});

test('payloads: JSON values as JSON text, bytes as they are', () => {
  assert.equal(new TextDecoder().decode(payloadBytes({ a: [1, 'x'] })), '{"a":[1,"x"]}');
  assert.deepEqual(payloadValue(new TextEncoder().encode('{"a":1}')), { a: 1 });
  assert.deepEqual(payloadValue(Uint8Array.of(1, 2)), Uint8Array.of(1, 2));
  assert.equal(payloadValue(new Uint8Array(0)), null);
  assert.deepEqual(payloadBytes(Uint8Array.of(9)), Uint8Array.of(9));
});

test('a client datagram is the varint subscription id and the payload', () => {
  assert.deepEqual([...encodeDatagram(300, Uint8Array.of(42))], [0xac, 0x02, 42]);
});
