// centrifuge-js (real SDK, JSON over WebSocket) against Tidewire: connect,
// subscribe, receive, client publish, permission errors.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS, connect, connectionToken, setupFile, newApi,
  newClient, subscribe, uniq, waitEvent, withTimeout,
} from './helpers.mjs';

setupFile({ before, after, afterEach });

// Every JSON type, nesting, non-ASCII text and an escaped newline: the server
// must pass `data` through as raw JSON.
const PAYLOAD = {
  text: 'héllo wörld ✓ — 你好',
  escaped: 'line1\nline2 "quoted" \\ back',
  int: 42,
  negative: -7,
  float: 1.5,
  yes: true,
  no: false,
  nothing: null,
  list: [1, 'two', null, { deep: [true] }],
  nested: { a: { b: { c: 'd' } } },
};

test('connects with an HS256 JWT: state connected, client id present', { timeout: TEST_TIMEOUT_MS }, async () => {
  const user = uniq('u');
  const client = newClient({ token: connectionToken(user) });
  const ctx = await connect(client);
  assert.equal(client.state, 'connected');
  assert.equal(typeof ctx.client, 'string');
  assert.ok(ctx.client.length > 0, 'connect result carries a client id');
  assert.equal(ctx.transport, 'websocket');
});

test('two connections of one user get different client ids', { timeout: TEST_TIMEOUT_MS }, async () => {
  const user = uniq('u');
  const a = await connect(newClient({ token: connectionToken(user) }));
  const b = await connect(newClient({ token: connectionToken(user) }));
  assert.notEqual(a.client, b.client);
});

test('subscription created before connect() (connect + subscribe in one frame) receives a cent.js publish', { timeout: TEST_TIMEOUT_MS }, async () => {
  const channel = uniq('news');
  const client = newClient({ token: connectionToken(uniq('u')) });
  const sub = client.newSubscription(channel);
  const subscribed = waitEvent(sub, 'subscribed');
  sub.subscribe();
  await connect(client);
  const subCtx = await subscribed;
  assert.equal(subCtx.channel, channel);
  assert.equal(sub.state, 'subscribed');

  const publication = waitEvent(sub, 'publication');
  const result = await newApi().publish({ channel, data: PAYLOAD });
  assert.equal(typeof result, 'object', 'publish returns a result object');
  const ctx = await publication;
  assert.equal(ctx.channel, channel);
  assert.deepEqual(ctx.data, PAYLOAD);
  assert.equal(ctx.info, undefined, 'a server API publication carries no publisher info');
});

test('subscription after connect receives publications in publish order', { timeout: TEST_TIMEOUT_MS }, async () => {
  const channel = uniq('ordered');
  const client = newClient({ token: connectionToken(uniq('u')) });
  await connect(client);
  const sub = await subscribe(client, channel);

  const got = [];
  const allThree = new Promise((resolve) => {
    sub.on('publication', (ctx) => {
      got.push(ctx.data);
      if (got.length === 3) resolve();
    });
  });
  const api = newApi();
  for (let i = 1; i <= 3; i++) {
    await api.publish({ channel, data: { seq: i } });
  }
  await withTimeout(allThree, 'three publications');
  assert.deepEqual(got, [{ seq: 1 }, { seq: 2 }, { seq: 3 }]);
});

test('client-side publish in chat: reaches the other subscriber with publisher info', { timeout: TEST_TIMEOUT_MS }, async () => {
  const channel = `chat:${uniq('room')}`;
  const userA = uniq('alice');
  const userB = uniq('bob');
  const a = newClient({ token: connectionToken(userA) });
  const b = newClient({ token: connectionToken(userB) });
  await connect(a);
  const bConnected = await connect(b);
  const subA = await subscribe(a, channel);
  // allow_publish_for_subscriber: the publisher must be subscribed too.
  const subB = await subscribe(b, channel);

  const atA = waitEvent(subA, 'publication');
  const atB = waitEvent(subB, 'publication');
  const data = { from: 'bob', text: 'hi alice', n: [1, 2, 3] };
  const reply = await withTimeout(subB.publish(data), 'subscription publish');
  assert.deepEqual(reply, {});

  const got = await atA;
  assert.equal(got.channel, channel);
  assert.deepEqual(got.data, data);
  assert.ok(got.info, 'a client publication carries the publisher ClientInfo');
  assert.equal(got.info.user, userB);
  assert.equal(got.info.client, bConnected.client);

  const echo = await atB;
  assert.deepEqual(echo.data, data, 'the publishing subscriber receives its own publication');
});

test('client publish on readonly: fails with 103 permission denied, connection stays up', { timeout: TEST_TIMEOUT_MS }, async () => {
  const channel = `readonly:${uniq('x')}`;
  const client = newClient({ token: connectionToken(uniq('u')) });
  await connect(client);
  // Subscribing is allowed in readonly, so the refusal is about publishing.
  const sub = await subscribe(client, channel);
  await assert.rejects(
    withTimeout(client.publish(channel, { nope: true }), 'publish reply'),
    (err) => {
      assert.equal(err.code, 103);
      assert.equal(typeof err.message, 'string');
      return true;
    },
  );
  await assert.rejects(withTimeout(sub.publish({ nope: 2 }), 'publish reply'), (err) => err.code === 103);
  assert.equal(client.state, 'connected');
  assert.equal(sub.state, 'subscribed');
});

test('subscribe on an unknown namespace fails with 102, connection stays up', { timeout: TEST_TIMEOUT_MS }, async () => {
  const channel = `unknownns:${uniq('x')}`;
  const client = newClient({ token: connectionToken(uniq('u')) });
  await connect(client);
  const sub = client.newSubscription(channel);
  const unsubscribed = waitEvent(sub, 'unsubscribed');
  sub.subscribe();
  const ctx = await unsubscribed;
  assert.equal(ctx.code, 102);
  assert.equal(ctx.channel, channel);
  assert.equal(sub.state, 'unsubscribed');
  assert.equal(client.state, 'connected');

  // The connection still works after the error reply.
  const ok = await subscribe(client, uniq('after-error'));
  assert.equal(ok.state, 'subscribed');
});
