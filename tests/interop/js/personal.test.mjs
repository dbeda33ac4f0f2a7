// Server-side subscriptions with join/leave through centrifuge-js: a token `channels`
// claim (the client's own join arrives after its connect reply, so the SDK emits it),
// and the personal channel of client.subscribe_to_user_personal_channel on the second
// server tests/interop.rs starts (TIDEWIRE_PERSONAL_WS): `personal:#<user>`, one
// connection per user.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Centrifuge } from 'centrifuge';
import {
  TEST_TIMEOUT_MS, WAIT_MS, connect, hs256, setupFile, newApi, newClient, recordEvents, uniq,
} from './helpers.mjs';

setupFile({ before, after, afterEach });

function tokenWithChannels(user, channels) {
  const now = Math.floor(Date.now() / 1000);
  return hs256({ sub: user, exp: now + 3600, iat: now, channels });
}

test('token channels: subscribed, then the own join (after the connect reply), others join and leave', { timeout: TEST_TIMEOUT_MS }, async () => {
  const channel = `personal:${uniq('room')}`;
  const [alice, bob] = [uniq('alice'), uniq('bob')];
  const a = newClient({ token: tokenWithChannels(alice, [channel]) });
  const events = recordEvents(a, ['subscribed', 'join', 'leave', 'publication']);
  await connect(a);
  assert.equal((await events.next('subscribed')).channel, channel);
  const own = await events.next('join');
  assert.equal(own.channel, channel);
  assert.equal(own.info.user, alice, 'the SDK knew the channel when its own join came');

  const b = newClient({ token: tokenWithChannels(bob, [channel]) });
  await connect(b);
  const joined = await events.next('join');
  assert.equal(joined.info.user, bob);
  await newApi().publish({ channel, data: { hi: 1 } });
  assert.deepEqual((await events.next('publication')).data, { hi: 1 });
  b.disconnect();
  const left = await events.next('leave');
  assert.equal(left.info.user, bob);
});

function personalClient(user) {
  const ws = process.env.TIDEWIRE_PERSONAL_WS;
  assert.ok(ws, 'TIDEWIRE_PERSONAL_WS is set by tests/interop.rs');
  const now = Math.floor(Date.now() / 1000);
  const client = new Centrifuge(ws, {
    websocket: WebSocket, timeout: WAIT_MS, minReconnectDelay: 100, maxReconnectDelay: 1000,
    token: hs256({ sub: user, exp: now + 3600, iat: now }),
  });
  client.on('error', () => {});
  return client;
}

test('personal channel: every connection is subscribed to personal:#<user>; a second one closes the first (3504)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const user = uniq('u');
  const channel = `personal:#${user}`;
  const first = personalClient(user);
  const events = recordEvents(first, ['subscribed', 'join', 'publication', 'disconnected']);
  try {
    await connect(first);
    assert.equal((await events.next('subscribed')).channel, channel);
    assert.equal((await events.next('join')).info.user, user, 'own join after the connect reply');
    const api = newApi(undefined, process.env.TIDEWIRE_PERSONAL_HTTP);
    await api.publish({ channel, data: { note: 'for you' } });
    const pub = await events.next('publication');
    assert.equal(pub.channel, channel);
    assert.deepEqual(pub.data, { note: 'for you' });

    const second = personalClient(user);
    const secondEvents = recordEvents(second, ['subscribed', 'disconnected']);
    try {
      await connect(second);
      assert.equal((await secondEvents.next('subscribed')).channel, channel);
      const gone = await events.next('disconnected');
      assert.equal(gone.code, 3504, JSON.stringify(gone));
      assert.equal(first.state, 'disconnected', 'terminal: no reconnect');
      assert.equal(second.state, 'connected');
    } finally {
      second.disconnect();
    }
  } finally {
    first.disconnect();
  }
});
