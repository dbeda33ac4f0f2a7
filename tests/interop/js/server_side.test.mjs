// Server API actions on live centrifuge-js connections: server-side subscribe,
// unsubscribe and disconnect, driven through cent.js.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS, connect, connectionToken, setupFile, newApi,
  newClient, recordEvents, subscribe, uniq, waitEvent,
} from './helpers.mjs';

setupFile({ before, after, afterEach });

test('server subscribe: client gets a subscribed event, then publications; server unsubscribe stops them', { timeout: TEST_TIMEOUT_MS }, async () => {
  const user = uniq('u');
  const channel = uniq('server-sub');
  const other = uniq('server-sub-other');
  const client = newClient({ token: connectionToken(user) });
  const events = recordEvents(client, ['subscribed', 'unsubscribed', 'publication']);
  await connect(client);
  const api = newApi();

  assert.deepEqual(await api.subscribe({ user, channel }), {});
  const subscribed = await events.next('subscribed');
  assert.equal(subscribed.channel, channel);

  await api.publish({ channel, data: { n: 1 } });
  const pub = await events.next('publication');
  assert.equal(pub.channel, channel);
  assert.deepEqual(pub.data, { n: 1 });

  assert.deepEqual(await api.unsubscribe({ user, channel }), {});
  const unsubscribed = await events.next('unsubscribed');
  assert.equal(unsubscribed.channel, channel);
  // The server dropped the subscription itself (the SDK would also ignore stray
  // publications of a channel it was unsubscribed from).
  const channels = await api.getChannels({ pattern: channel });
  assert.equal(channels.channels?.[channel], undefined, JSON.stringify(channels));

  // Publish on the old channel, then on a new server-side channel: if the old
  // subscription were still alive its publication would arrive first.
  await api.publish({ channel, data: { n: 2, mustNotArrive: true } });
  await api.subscribe({ user, channel: other });
  await events.next('subscribed', { filter: (ctx) => ctx.channel === other });
  await api.publish({ channel: other, data: { n: 3 } });
  const next = await events.next('publication');
  assert.equal(next.channel, other, `no publication of ${channel} after unsubscribe`);
  assert.deepEqual(next.data, { n: 3 });
  assert.equal(client.state, 'connected');
});

test('server subscribe reaches every connection of the user, and only that user', { timeout: TEST_TIMEOUT_MS }, async () => {
  const user = uniq('u');
  const stranger = uniq('stranger');
  const channel = uniq('fanout');
  const c1 = newClient({ token: connectionToken(user) });
  const c2 = newClient({ token: connectionToken(user) });
  const c3 = newClient({ token: connectionToken(stranger) });
  const e1 = recordEvents(c1, ['subscribed', 'publication']);
  const e2 = recordEvents(c2, ['subscribed', 'publication']);
  const e3 = recordEvents(c3, ['subscribed', 'publication']);
  await Promise.all([connect(c1), connect(c2), connect(c3)]);
  const api = newApi();

  await api.subscribe({ user, channel });
  await e1.next('subscribed', { filter: (ctx) => ctx.channel === channel });
  await e2.next('subscribed', { filter: (ctx) => ctx.channel === channel });
  await api.publish({ channel, data: { hello: 'both' } });
  assert.deepEqual((await e1.next('publication')).data, { hello: 'both' });
  assert.deepEqual((await e2.next('publication')).data, { hello: 'both' });

  // The stranger was not subscribed: a marker channel subscribed afterwards is the
  // first thing it sees.
  const marker = uniq('marker');
  await api.subscribe({ user: stranger, channel: marker });
  const first = await e3.next('subscribed');
  assert.equal(first.channel, marker);
  assert.deepEqual(e3.names(), ['subscribed']);
});

test('server disconnect with terminal custom code 4501 "bye": client ends disconnected with that code', { timeout: TEST_TIMEOUT_MS }, async () => {
  const user = uniq('u');
  const client = newClient({ token: connectionToken(user) });
  const events = recordEvents(client, ['connecting', 'disconnected', 'connected']);
  await connect(client);
  const sub = await subscribe(client, uniq('will-be-cut'));

  assert.deepEqual(await newApi().disconnect({ user, disconnect: { code: 4501, reason: 'bye' } }), {});
  const ctx = await events.next('disconnected');
  assert.equal(ctx.code, 4501);
  assert.equal(ctx.reason, 'bye');
  assert.equal(client.state, 'disconnected');
  // Terminal: no reconnect attempt (a reconnect code would give 'connecting' instead).
  // The first 'connecting' is the one connect() itself emits (code 0).
  assert.deepEqual(events.names(), ['connecting', 'connected', 'disconnected']);
  assert.equal(events.log[0].ctx.code, 0);
  assert.equal(sub.state, 'subscribing', 'subscriptions wait for the next connect()');
});

test('server disconnect with reconnect code 4001: client reconnects by itself and resubscribes', { timeout: TEST_TIMEOUT_MS }, async () => {
  const user = uniq('u');
  const channel = uniq('resub');
  const client = newClient({ token: connectionToken(user) });
  const events = recordEvents(client, ['connecting', 'connected', 'disconnected']);
  const first = await connect(client);
  await events.next('connected');
  const sub = client.newSubscription(channel);
  const subEvents = recordEvents(sub, ['subscribing', 'subscribed']);
  sub.subscribe();
  await subEvents.next('subscribed');

  await newApi().disconnect({ user, disconnect: { code: 4001, reason: 'come back' } });
  const connecting = await events.next('connecting');
  assert.equal(connecting.code, 4001);
  assert.equal(connecting.reason, 'come back');
  const second = await events.next('connected');
  assert.notEqual(second.client, first.client, 'a new connection gets a new client id');
  await subEvents.next('subscribing');
  await subEvents.next('subscribed');

  const publication = waitEvent(sub, 'publication');
  await newApi().publish({ channel, data: { after: 'reconnect' } });
  assert.deepEqual((await publication).data, { after: 'reconnect' });
  assert.ok(!events.names().includes('disconnected'));
});
