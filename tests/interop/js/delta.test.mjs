// Delta compression with the real centrifuge-js (JSON and Protobuf builds): a
// subscription made with `delta: 'fossil'` decodes fossil patches itself; a plain
// subscription on the same channel gets full payloads. Both must see the same data, and
// the delta subscription's own statistics must show it received patches.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Centrifuge as CentrifugeProtobuf } from 'centrifuge/build/protobuf';
import {
  TEST_TIMEOUT_MS, WAIT_MS, connect, connectionToken, env, newClient, setupFile, subscribe, uniq, withTimeout,
} from './helpers.mjs';

setupFile({ before, after, afterEach });

const made = [];
afterEach(() => {
  for (const c of made.splice(0)) c.disconnect();
});

function pbClient(options = {}) {
  const client = new CentrifugeProtobuf(env.ws, { websocket: WebSocket, timeout: WAIT_MS, ...options });
  client.on('error', () => {});
  made.push(client);
  return client;
}

/** Similar documents: a couple of fields change, most of the payload stays. */
function doc(n) {
  return { match: 'home-away', minute: n, score: [Math.floor(n / 3), Math.floor(n / 4)], events: Array.from({ length: 20 }, (_, i) => `event ${i}: pass`) };
}

async function publish(channel, data) {
  const res = await withTimeout(fetch(`${env.http}/api/publish`, {
    method: 'POST',
    headers: { 'X-API-Key': env.apiKey, 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel, data, delta: true }),
  }), 'publish');
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.ok(body.result, JSON.stringify(body));
}

/** Collects the next `n` publications' data of `sub`. */
function collect(sub, n, decode = (d) => d) {
  return withTimeout(new Promise((resolve) => {
    const got = [];
    const on = (ctx) => {
      got.push(decode(ctx.data));
      if (got.length === n) {
        sub.removeListener('publication', on);
        resolve(got);
      }
    };
    sub.on('publication', on);
  }), `${n} publications`, WAIT_MS * 2);
}

const N = 8;

for (const codec of ['json', 'protobuf']) {
  test(`${codec}: a delta subscriber and a plain one receive the same payloads`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const channel = `delta:${uniq(codec)}`;
    const make = codec === 'json' ? (o) => newClient(o) : (o) => pbClient(o);
    const decode = codec === 'json' ? (d) => d : (d) => JSON.parse(new TextDecoder().decode(d));
    const a = make({ token: connectionToken(uniq('delta')) });
    const b = make({ token: connectionToken(uniq('plain')) });
    await connect(a);
    await connect(b);
    const withDelta = await subscribe(a, channel, { delta: 'fossil' });
    const plain = await subscribe(b, channel);
    const gotDelta = collect(withDelta, N, decode);
    const gotPlain = collect(plain, N, decode);
    for (let n = 1; n <= N; n++) await publish(channel, doc(n));
    const expected = Array.from({ length: N }, (_, i) => doc(i + 1));
    assert.deepEqual(await gotDelta, expected);
    assert.deepEqual(await gotPlain, expected);
    const stats = withDelta.deltaStats();
    assert.equal(stats.numPublications, N);
    assert.equal(stats.numFullPayloads, 1, 'only the first after subscribe goes in full');
    assert.equal(stats.numDeltaPayloads, N - 1, JSON.stringify(stats));
    assert.ok(stats.bytesReceived < stats.bytesDecoded / 2, `patches are small: ${JSON.stringify(stats)}`);
    assert.equal(plain.deltaStats().numDeltaPayloads, 0);
  });
}

test('json: a delta subscriber resubscribing with recovery keeps decoding', { timeout: TEST_TIMEOUT_MS }, async () => {
  const channel = `delta:${uniq('rec')}`;
  const a = newClient({ token: connectionToken(uniq('delta')) });
  await connect(a);
  const sub = await subscribe(a, channel, { delta: 'fossil', recoverable: true });
  let got = collect(sub, 3);
  for (let n = 1; n <= 3; n++) await publish(channel, doc(n));
  assert.deepEqual(await got, [doc(1), doc(2), doc(3)]);
  // Miss two while unsubscribed; the resubscribe recovers them (full), then patches go on.
  sub.unsubscribe();
  await publish(channel, doc(4));
  await publish(channel, doc(5));
  got = collect(sub, 4);
  sub.subscribe();
  await withTimeout(new Promise((r) => sub.once('subscribed', r)), 'resubscribed');
  await publish(channel, doc(6));
  await publish(channel, doc(7));
  assert.deepEqual(await got, [doc(4), doc(5), doc(6), doc(7)]);
  assert.ok(sub.deltaStats().numDeltaPayloads >= 3, JSON.stringify(sub.deltaStats()));
});
