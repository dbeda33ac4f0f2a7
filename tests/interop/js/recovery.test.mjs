// History streams, recovery, positioning, presence and join/leave with
// centrifuge-js and cent.js, in the `hist:` namespace of dev.toml (history_size
// 100, history_ttl 300s, allow_recovery, allow_positioning, presence, join_leave,
// history and presence for subscribers).

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS, connect, connectionToken, setupFile, newApi,
  newClient, recordEvents, subscribe, uniq, waitEvent,
} from './helpers.mjs';

setupFile({ before, after, afterEach });

/** Publish `datas` one after another through cent.js; the results, in order. */
async function publishAll(api, channel, datas) {
  const results = [];
  for (const data of datas) {
    results.push(await api.publish({ channel, data }));
  }
  return results;
}

/** Offsets and data of publication contexts (from events or history). */
function offsetsAndData(pubs) {
  return pubs.map((p) => ({ offset: p.offset, data: p.data }));
}

test('recovery: a reconnect after server disconnect 4001 recovers the publications made meanwhile, no gap, no duplicate', { timeout: TEST_TIMEOUT_MS }, async () => {
  const user = uniq('u');
  const channel = `hist:${uniq('rec')}`;
  // A reconnect delay of at least 800 ms: the publications below are made while
  // the client is certainly away.
  const client = newClient({ token: connectionToken(user), minReconnectDelay: 800, maxReconnectDelay: 1200 });
  const events = recordEvents(client, ['connecting', 'connected', 'disconnected']);
  const first = await connect(client);
  await events.next('connected');

  const sub = client.newSubscription(channel, { recoverable: true, positioned: true });
  sub.on('error', () => {});
  const subEvents = recordEvents(sub, ['subscribing', 'subscribed', 'unsubscribed', 'publication']);
  sub.subscribe();
  const initial = await subEvents.next('subscribed');
  assert.equal(initial.recoverable, true, JSON.stringify(initial));
  assert.equal(initial.positioned, true, JSON.stringify(initial));
  assert.equal(initial.wasRecovering, false);
  assert.equal(initial.recovered, false);
  assert.equal(initial.streamPosition?.offset, 0, 'a new stream starts at offset 0');
  const epoch = initial.streamPosition?.epoch;
  assert.ok(typeof epoch === 'string' && epoch.length > 0, `stream epoch in the subscribe result: ${JSON.stringify(initial)}`);

  const api = newApi();
  const all = Array.from({ length: 11 }, (_, i) => ({ seq: i + 1 }));
  const early = await publishAll(api, channel, all.slice(0, 3));
  assert.deepEqual(early.map((r) => r.offset), [1, 2, 3], JSON.stringify(early));
  for (const r of early) assert.equal(r.epoch, epoch, 'the stream the subscription was positioned in');
  for (let i = 0; i < 3; i++) {
    const pub = await subEvents.next('publication');
    assert.deepEqual({ offset: pub.offset, data: pub.data }, { offset: i + 1, data: all[i] });
  }

  assert.deepEqual(await api.disconnect({ user, disconnect: { code: 4001, reason: 'nudge' } }), {});
  // Publications while the client is away: they can only come back by recovery.
  const away = await publishAll(api, channel, all.slice(3, 8));
  assert.deepEqual(away.map((r) => r.offset), [4, 5, 6, 7, 8]);
  const connecting = await events.next('connecting');
  assert.deepEqual({ code: connecting.code, reason: connecting.reason }, { code: 4001, reason: 'nudge' });
  assert.equal(client.state, 'connecting', 'the away publications were made before the client was back');

  const second = await events.next('connected');
  assert.notEqual(second.client, first.client);
  await subEvents.next('subscribing');
  const resubscribed = await subEvents.next('subscribed');
  assert.equal(resubscribed.wasRecovering, true, JSON.stringify(resubscribed));
  assert.equal(resubscribed.recovered, true, JSON.stringify(resubscribed));
  assert.equal(resubscribed.hasRecoveredPublications, true, JSON.stringify(resubscribed));
  assert.equal(resubscribed.streamPosition?.epoch, epoch, 'same stream, same epoch');

  // Live again after the recovery.
  const live = await publishAll(api, channel, all.slice(8));
  assert.deepEqual(live.map((r) => r.offset), [9, 10, 11]);
  for (let i = 3; i < all.length; i++) {
    await subEvents.next('publication');
  }
  const received = subEvents.log.filter((e) => e.event === 'publication').map((e) => e.ctx);
  assert.deepEqual(offsetsAndData(received), all.map((data, i) => ({ offset: i + 1, data })),
    'the whole sequence, in order, each publication once');
  assert.ok(!events.names().includes('disconnected'));
  assert.ok(!subEvents.names().includes('unsubscribed'));
});

test('history: newest first with limit and reverse, oldest first, since a position, position only; client and subscription', { timeout: TEST_TIMEOUT_MS }, async () => {
  const channel = `hist:${uniq('history')}`;
  const user = uniq('u');
  const client = newClient({ token: connectionToken(user) });
  const connected = await connect(client);
  // allow_history_for_subscriber: history needs the subscription.
  const sub = await subscribe(client, channel);
  const all = Array.from({ length: 7 }, (_, i) => ({ n: i + 1, text: `message ${i + 1}` }));
  const results = await publishAll(newApi(), channel, all);
  const epoch = results[0].epoch;
  assert.ok(typeof epoch === 'string' && epoch.length > 0, JSON.stringify(results[0]));
  assert.deepEqual(results.map((r) => r.offset), [1, 2, 3, 4, 5, 6, 7]);
  const pubs = (offsets) => offsets.map((offset) => ({ offset, data: all[offset - 1] }));

  const newest = await sub.history({ limit: 5, reverse: true });
  assert.deepEqual(offsetsAndData(newest.publications), pubs([7, 6, 5, 4, 3]));
  assert.equal(newest.epoch, epoch);
  assert.equal(newest.offset, 7, 'the stream top');
  for (const p of newest.publications) {
    assert.equal(p.channel, channel);
    assert.equal(p.info, undefined, 'server API publications carry no ClientInfo');
  }

  const oldest = await client.history(channel, { limit: 3 });
  assert.deepEqual(offsetsAndData(oldest.publications), pubs([1, 2, 3]));
  assert.deepEqual({ epoch: oldest.epoch, offset: oldest.offset }, { epoch, offset: 7 });

  const since = await sub.history({ since: { offset: 4, epoch }, limit: 10 });
  assert.deepEqual(offsetsAndData(since.publications), pubs([5, 6, 7]));
  assert.deepEqual({ epoch: since.epoch, offset: since.offset }, { epoch, offset: 7 });

  const sinceLimited = await sub.history({ since: { offset: 2, epoch }, limit: 2 });
  assert.deepEqual(offsetsAndData(sinceLimited.publications), pubs([3, 4]));

  const atTop = await sub.history({ since: { offset: 7, epoch }, limit: 10 });
  assert.deepEqual(atTop.publications, []);
  assert.equal(atTop.offset, 7);

  const everything = await sub.history({ limit: -1 });
  assert.deepEqual(offsetsAndData(everything.publications), pubs([1, 2, 3, 4, 5, 6, 7]));

  // Without a limit: only the stream position (centrifuge-js sends no limit).
  const position = await sub.history({});
  assert.deepEqual(position, { publications: [], epoch, offset: 7 });

  await assert.rejects(sub.history({ since: { offset: 2, epoch: `${epoch}-not` }, limit: 10 }),
    (err) => err.code === 112 || assert.fail(`expected 112 unrecoverable position, got ${JSON.stringify(err)}`));

  // A client publication is stored with the publisher's ClientInfo.
  const echo = waitEvent(sub, 'publication');
  await sub.publish({ n: 8, from: 'client' });
  assert.equal((await echo).offset, 8);
  const latest = await sub.history({ limit: 1, reverse: true });
  assert.equal(latest.publications.length, 1);
  const [stored] = latest.publications;
  assert.deepEqual({ offset: stored.offset, data: stored.data }, { offset: 8, data: { n: 8, from: 'client' } });
  assert.deepEqual(stored.info, { client: connected.client, user }, JSON.stringify(stored));
  assert.equal(client.state, 'connected');
  assert.equal(sub.state, 'subscribed');
});

test('presence and presence stats list both clients; join and leave events with joinLeave', { timeout: TEST_TIMEOUT_MS }, async () => {
  const channel = `hist:${uniq('presence')}`;
  const userA = uniq('alice');
  const userB = uniq('bob');
  const a = newClient({ token: connectionToken(userA) });
  const b = newClient({ token: connectionToken(userB) });
  const [ca, cb] = await Promise.all([connect(a), connect(b)]);

  const subA = await subscribe(a, channel, { joinLeave: true });
  const aEvents = recordEvents(subA, ['join', 'leave', 'unsubscribed']);
  const joined = waitEvent(subA, 'join', { filter: (ctx) => ctx.info.client === cb.client });
  const subB = await subscribe(b, channel);
  const join = await joined;
  assert.equal(join.channel, channel);
  assert.deepEqual(join.info, { client: cb.client, user: userB });

  const presence = await subA.presence();
  assert.deepEqual(Object.keys(presence.clients).sort(), [ca.client, cb.client].sort(), JSON.stringify(presence));
  assert.equal(presence.clients[ca.client].user, userA);
  assert.equal(presence.clients[ca.client].client, ca.client);
  assert.equal(presence.clients[cb.client].user, userB);
  assert.equal(presence.clients[cb.client].client, cb.client);
  // The other subscriber sees the same through the client-level method.
  const presenceB = await b.presence(channel);
  assert.deepEqual(Object.keys(presenceB.clients).sort(), [ca.client, cb.client].sort());

  assert.deepEqual(await subA.presenceStats(), { numClients: 2, numUsers: 2 });
  assert.deepEqual(await subB.presenceStats(), { numClients: 2, numUsers: 2 });

  const left = waitEvent(subA, 'leave', { filter: (ctx) => ctx.info.client === cb.client });
  subB.unsubscribe();
  const leave = await left;
  assert.equal(leave.channel, channel);
  assert.deepEqual(leave.info, { client: cb.client, user: userB });

  const remaining = await subA.presence();
  assert.deepEqual(Object.keys(remaining.clients), [ca.client], JSON.stringify(remaining));
  assert.deepEqual(await subA.presenceStats(), { numClients: 1, numUsers: 1 });
  // B joined and left once each; A's subscription stayed up throughout.
  const ofB = (name) => aEvents.log.filter((e) => e.event === name && e.ctx.info.client === cb.client).length;
  assert.equal(ofB('join'), 1, 'one join of B');
  assert.equal(ofB('leave'), 1, 'one leave of B');
  assert.ok(!aEvents.names().includes('unsubscribed'));
});
