// centrifuge-js's Protobuf build (`centrifuge/build/protobuf`, the real SDK) against
// Tidewire over WebSocket (subprotocol centrifuge-protobuf) and HTTP-streaming (octet
// stream + Protobuf /emulation posts): connect, subscribe, publish, history, presence,
// join/leave, recovery, server-side subscriptions, token errors; a JSON and a Protobuf
// client on one channel; binary data published through the API.
//
// With Protobuf the SDK hands `data` over as bytes (Uint8Array) and publishes bytes.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Centrifuge as CentrifugeProtobuf } from 'centrifuge/build/protobuf';
import {
  TEST_TIMEOUT_MS, WAIT_MS, connect, connectionToken, env, hs256, newApi, newClient, recordEvents,
  setupFile, subscribe, uniq, waitEvent, withTimeout,
} from './helpers.mjs';

setupFile({ before, after, afterEach });

const made = [];
afterEach(() => {
  for (const c of made.splice(0)) c.disconnect();
});

/** A Protobuf centrifuge-js client on `transport` ('websocket' or 'http_stream'). */
function pbClient(transport, options = {}) {
  const endpoint = transport === 'websocket' ? env.ws : [{ transport, endpoint: `${env.http}/connection/${transport}` }];
  const client = new CentrifugeProtobuf(endpoint, {
    websocket: WebSocket,
    emulationEndpoint: `${env.http}/emulation`,
    fetch: globalThis.fetch,
    readableStream: globalThis.ReadableStream,
    timeout: WAIT_MS,
    minReconnectDelay: 100,
    maxReconnectDelay: 1000,
    ...options,
  });
  client.on('error', () => {});
  made.push(client);
  return client;
}

const text = (bytes) => new TextDecoder().decode(bytes);
const json = (bytes) => JSON.parse(text(bytes));
const bytes = (s) => new TextEncoder().encode(s);

for (const transport of ['websocket', 'http_stream']) {
  test(`${transport} protobuf: connect, subscribe, API and client publish, history, presence, join/leave`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const channel = `hist:${uniq('pb')}`;
    const alice = uniq('alice');
    const a = pbClient(transport, { token: connectionToken(alice) });
    const ctxA = await connect(a);
    assert.equal(ctxA.transport, transport);
    const subA = await subscribe(a, channel, { joinLeave: true });

    // A JSON publication through the API reaches the Protobuf client as its JSON text.
    const fromApi = waitEvent(subA, 'publication');
    const api = newApi();
    const published = await api.publish({ channel, data: { via: 'api', n: 1 } });
    const p1 = await fromApi;
    assert.ok(p1.data instanceof Uint8Array, 'Protobuf data arrives as bytes');
    assert.deepEqual(json(p1.data), { via: 'api', n: 1 });
    assert.equal(p1.offset, published.offset);

    // Binary published through the API (b64data) arrives as the same bytes.
    const raw = Uint8Array.from([0, 255, 10, 128, 7]);
    const fromB64 = waitEvent(subA, 'publication');
    await api.publish({ channel, b64data: Buffer.from(raw).toString('base64') });
    assert.deepEqual([...(await fromB64).data], [...raw]);

    // A second Protobuf client joins, publishes bytes; A sees the join, the publication
    // with publisher info, then the leave.
    const bob = uniq('bob');
    const b = pbClient(transport, { token: connectionToken(bob) });
    const ctxB = await connect(b);
    const joined = waitEvent(subA, 'join', { filter: (j) => j.info.client === ctxB.client });
    const subB = await subscribe(b, channel);
    const joinInfo = (await joined).info;
    assert.deepEqual({ client: joinInfo.client, user: joinInfo.user }, { client: ctxB.client, user: bob });
    const own = waitEvent(subA, 'publication', { filter: (p) => p.info?.client === ctxB.client });
    await withTimeout(subB.publish(Uint8Array.from([1, 2, 3])), 'protobuf publish');
    assert.deepEqual([...(await own).data], [1, 2, 3]);

    const history = await subA.history({ limit: 10 });
    assert.equal(history.publications.length, 3);
    assert.deepEqual(json(history.publications[0].data), { via: 'api', n: 1 });
    assert.deepEqual([...history.publications[1].data], [...raw]);
    assert.equal(history.offset, 3);
    assert.equal(history.epoch, published.epoch);

    const presence = await subA.presence();
    assert.deepEqual(Object.keys(presence.clients).sort(), [ctxA.client, ctxB.client].sort());
    assert.equal(presence.clients[ctxB.client].user, bob);
    assert.deepEqual(await subA.presenceStats(), { numClients: 2, numUsers: 2 });

    const left = waitEvent(subA, 'leave', { filter: (l) => l.info.client === ctxB.client });
    subB.unsubscribe();
    const leftInfo = (await left).info;
    assert.deepEqual({ client: leftInfo.client, user: leftInfo.user }, { client: ctxB.client, user: bob });
  });

  test(`${transport} protobuf: recovery after a 4001 disconnect brings back what was missed`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const user = uniq('u');
    const channel = `hist:${uniq('pbrec')}`;
    const client = pbClient(transport, { token: connectionToken(user), minReconnectDelay: 800, maxReconnectDelay: 1200 });
    const events = recordEvents(client, ['connecting', 'connected']);
    await connect(client);
    await events.next('connected');
    const sub = client.newSubscription(channel, { recoverable: true, positioned: true });
    sub.on('error', () => {});
    const subEvents = recordEvents(sub, ['subscribed', 'publication']);
    sub.subscribe();
    const initial = await subEvents.next('subscribed');
    assert.equal(initial.recoverable, true);
    const epoch = initial.streamPosition?.epoch;
    assert.ok(epoch, JSON.stringify(initial));

    const api = newApi();
    await api.publish({ channel, data: { seq: 1 } });
    await subEvents.next('publication');
    await api.disconnect({ user, disconnect: { code: 4001, reason: 'nudge' } });
    for (let seq = 2; seq <= 4; seq++) await api.publish({ channel, data: { seq } });
    const connecting = await events.next('connecting');
    assert.equal(connecting.code, 4001);
    await events.next('connected');
    const again = await subEvents.next('subscribed');
    assert.equal(again.wasRecovering, true);
    assert.equal(again.recovered, true, JSON.stringify(again));
    assert.equal(again.streamPosition?.epoch, epoch);
    for (let seq = 2; seq <= 4; seq++) {
      const p = await subEvents.next('publication');
      assert.deepEqual({ offset: p.offset, data: json(p.data) }, { offset: seq, data: { seq } });
    }
  });

  test(`${transport} protobuf: server-side subscribe and unsubscribe through the API`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const user = uniq('u');
    const channel = uniq('pbserver');
    const client = pbClient(transport, { token: connectionToken(user) });
    const events = recordEvents(client, ['subscribed', 'unsubscribed', 'publication']);
    await connect(client);
    const api = newApi();
    await api.subscribe({ user, channel });
    assert.equal((await events.next('subscribed')).channel, channel);
    await api.publish({ channel, data: { n: 1 } });
    const pub = await events.next('publication');
    assert.equal(pub.channel, channel);
    assert.deepEqual(json(pub.data), { n: 1 });
    await api.unsubscribe({ user, channel });
    assert.equal((await events.next('unsubscribed')).channel, channel);
  });

  test(`${transport} protobuf: a token in the channels claim subscribes server-side`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const user = uniq('u');
    const channel = uniq('pbclaim');
    const now = Math.floor(Date.now() / 1000);
    const client = pbClient(transport, { token: hs256({ sub: user, exp: now + 3600, channels: [channel] }) });
    const events = recordEvents(client, ['subscribed', 'publication']);
    await connect(client);
    assert.equal((await events.next('subscribed')).channel, channel);
    await newApi().publish({ channel, data: 'claim' });
    assert.equal(json((await events.next('publication')).data), 'claim');
  });

  test(`${transport} protobuf: an expired token is error 109 then "unauthorized"; a bad one 3500`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const expired = pbClient(transport, { token: connectionToken(uniq('u'), { exp: Math.floor(Date.now() / 1000) - 3600 }) });
    const events = recordEvents(expired, ['error', 'disconnected']);
    expired.connect();
    assert.equal((await events.next('error')).error.code, 109);
    const d = await events.next('disconnected');
    assert.deepEqual({ code: d.code, reason: d.reason }, { code: 1, reason: 'unauthorized' });

    const bad = pbClient(transport, { token: connectionToken(uniq('u'), { secret: 'not-the-server-secret' }) });
    const badEvents = recordEvents(bad, ['disconnected']);
    bad.connect();
    assert.equal((await badEvents.next('disconnected')).code, 3500);
  });
}

test('a JSON and a Protobuf client on one channel each get the publication in their codec', { timeout: TEST_TIMEOUT_MS }, async () => {
  const channel = `chat:${uniq('mixed')}`;
  const pb = pbClient('websocket', { token: connectionToken(uniq('pb')) });
  const js = newClient({ token: connectionToken(uniq('js')) });
  await connect(pb);
  await connect(js);
  const subPb = await subscribe(pb, channel);
  const subJs = await subscribe(js, channel);
  const payload = { text: 'héllo ✓', list: [1, null, { deep: true }] };
  const gotPb = waitEvent(subPb, 'publication');
  const gotJs = waitEvent(subJs, 'publication');
  await newApi().publish({ channel, data: payload });
  assert.deepEqual((await gotJs).data, payload);
  assert.deepEqual(json((await gotPb).data), payload);

  // The JSON client's publish reaches the Protobuf one as JSON text, and back.
  const fromJs = waitEvent(subPb, 'publication');
  await withTimeout(subJs.publish({ from: 'json' }), 'json publish');
  assert.deepEqual(json((await fromJs).data), { from: 'json' });
  const fromPb = waitEvent(subJs, 'publication', { filter: (p) => p.data?.from === 'protobuf' });
  await withTimeout(subPb.publish(bytes(JSON.stringify({ from: 'protobuf' }))), 'protobuf publish');
  assert.deepEqual((await fromPb).data, { from: 'protobuf' });

  // Bytes that are not JSON: the Protobuf client gets them, the JSON one is closed
  // with 3506 (terminal: it stays disconnected).
  const jsEvents = recordEvents(js, ['disconnected']);
  const binary = waitEvent(subPb, 'publication');
  await newApi().publish({ channel, b64data: Buffer.from([0xde, 0xad]).toString('base64') });
  assert.deepEqual([...(await binary).data], [0xde, 0xad]);
  const gone = await jsEvents.next('disconnected');
  assert.equal(gone.code, 3506, JSON.stringify(gone));
});
