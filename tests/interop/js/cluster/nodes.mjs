// Three Tidewire nodes on one Redis, driven by the real centrifuge-js and cent.js:
// recovery across nodes, server API actions through a node that does not hold the
// connection, `info` listing every node, and /emulation posted to another node.
//
// Run by tests/cluster.rs, which sets TIDEWIRE_NODES_HTTP (comma-separated base URLs
// of the three nodes) besides the TIDEWIRE_* variables helpers.mjs needs (node A's).
// Not named *.test.mjs: the single-node interop run must not pick it up.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Centrifuge } from 'centrifuge';
import { CentClient } from 'cent.js';
import {
  TEST_TIMEOUT_MS, WAIT_MS, connect, connectionToken, env, recordEvents, setupFile, subscribe, uniq, waitEvent,
  withTimeout,
} from '../helpers.mjs';

setupFile({ before, after, afterEach });

const nodes = (process.env.TIDEWIRE_NODES_HTTP ?? '').split(',').filter(Boolean);
if (nodes.length !== 3) {
  throw new Error('TIDEWIRE_NODES_HTTP must name three nodes: run this suite through tests/cluster.rs');
}
const [A, B, C] = nodes;
const wsOf = (http) => `${http.replace(/^http/, 'ws')}/connection/websocket`;

const made = [];
afterEach(() => {
  for (const c of made.splice(0)) c.disconnect();
});

/** A centrifuge-js WebSocket client of node `http`. */
function clientOf(http, options = {}) {
  const client = new Centrifuge(wsOf(http), {
    websocket: WebSocket,
    timeout: WAIT_MS,
    minReconnectDelay: 100,
    maxReconnectDelay: 1000,
    ...options,
  });
  client.on('error', () => {});
  made.push(client);
  return client;
}

/** cent.js for node `http`'s server API, every call bounded. */
function apiOf(http) {
  const cent = new CentClient({ url: `${http}/api`, apiKey: env.apiKey });
  return new Proxy(cent, {
    get(target, prop) {
      const value = target[prop];
      if (typeof value !== 'function') return value;
      return (...args) => withTimeout(value.apply(target, args), `cent.js ${String(prop)}() on ${http}`);
    },
  });
}

/** Polls `f` (async) until it returns a truthy value; that value. */
async function eventually(what, f, timeoutMs = 8000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('info through any node lists all three nodes', { timeout: TEST_TIMEOUT_MS }, async () => {
  for (const node of nodes) {
    const info = await eventually(`three nodes in ${node}'s info`, async () => {
      const r = await apiOf(node).getInfo();
      return r.nodes?.length === 3 ? r : null;
    });
    const names = new Set(info.nodes.map((n) => n.uid));
    assert.equal(names.size, 3, JSON.stringify(info));
  }
});

test('a subscriber on A gets what cent.js publishes through B; presence, join/leave and history span the nodes', { timeout: TEST_TIMEOUT_MS }, async () => {
  const channel = `hist:${uniq('span')}`;
  const [ua, uc] = [uniq('ua'), uniq('uc')];
  const onA = clientOf(A, { token: connectionToken(ua) });
  await connect(onA);
  const subA = onA.newSubscription(channel, { joinLeave: true });
  subA.on('error', () => {});
  const eventsA = recordEvents(subA, ['subscribed', 'publication', 'join', 'leave']);
  subA.subscribe();
  await eventsA.next('subscribed');

  // A client of C joins: A sees the join, and presence through B lists both.
  const onC = clientOf(C, { token: connectionToken(uc) });
  await connect(onC);
  const subC = await subscribe(onC, channel);
  const joined = await eventsA.next('join', { filter: (ctx) => ctx.info.user === uc });
  assert.equal(joined.channel, channel);
  const apiB = apiOf(B);
  const presence = await eventually('both clients in presence', async () => {
    const p = await apiB.getPresence({ channel });
    return Object.keys(p.presence ?? {}).length === 2 ? p : null;
  });
  assert.deepEqual(new Set(Object.values(presence.presence).map((i) => i.user)), new Set([ua, uc]));
  assert.deepEqual(await apiOf(A).getPresenceStats({ channel }), { num_clients: 2, num_users: 2 });

  // Published through B, received on A.
  const published = await apiB.publish({ channel, data: { via: 'B' } });
  const got = await eventsA.next('publication');
  assert.deepEqual([got.data, got.offset], [{ via: 'B' }, published.offset]);

  // History read through C.
  const history = await apiOf(C).getHistory({ channel, limit: 10 });
  assert.deepEqual(history.publications.map((p) => p.data), [{ via: 'B' }]);

  // C's client leaves: A sees the leave.
  subC.unsubscribe();
  const left = await eventsA.next('leave', { filter: (ctx) => ctx.info.user === uc });
  assert.equal(left.channel, channel);
});

test('recovery across nodes: subscribed on A, publications through B, back on C with since: exactly the missed ones', { timeout: TEST_TIMEOUT_MS }, async () => {
  const user = uniq('u');
  const channel = `hist:${uniq('x')}`;
  const onA = clientOf(A, { token: connectionToken(user) });
  await connect(onA);
  const subA = onA.newSubscription(channel, { recoverable: true, positioned: true });
  subA.on('error', () => {});
  const eventsA = recordEvents(subA, ['subscribed', 'publication']);
  subA.subscribe();
  const first = await eventsA.next('subscribed');
  const epoch = first.streamPosition.epoch;
  const apiB = apiOf(B);
  for (let i = 1; i <= 3; i++) await apiB.publish({ channel, data: { seq: i } });
  let last;
  for (let i = 1; i <= 3; i++) last = await eventsA.next('publication');
  assert.deepEqual({ offset: last.offset, data: last.data }, { offset: 3, data: { seq: 3 } });
  onA.disconnect();

  // While the client is away, B keeps publishing.
  const missed = [];
  for (let i = 4; i <= 8; i++) missed.push((await apiB.publish({ channel, data: { seq: i } })).offset);
  assert.deepEqual(missed, [4, 5, 6, 7, 8]);

  // It comes back on another node, from the position it had.
  const onC = clientOf(C, { token: connectionToken(user) });
  await connect(onC);
  const subC = onC.newSubscription(channel, { recoverable: true, positioned: true, since: { offset: 3, epoch } });
  subC.on('error', () => {});
  const eventsC = recordEvents(subC, ['subscribed', 'publication']);
  subC.subscribe();
  const back = await eventsC.next('subscribed');
  assert.equal(back.wasRecovering, true, JSON.stringify(back));
  assert.equal(back.recovered, true, JSON.stringify(back));
  const got = [];
  for (let i = 4; i <= 8; i++) got.push(await eventsC.next('publication'));
  assert.deepEqual(got.map((p) => [p.offset, p.data.seq]), [[4, 4], [5, 5], [6, 6], [7, 7], [8, 8]]);
  // And it follows live again, through A this time; nothing arrives twice.
  await apiOf(A).publish({ channel, data: { seq: 9 } });
  const live = await eventsC.next('publication');
  assert.deepEqual([live.offset, live.data.seq], [9, 9]);
  const offsets = eventsC.log.filter((e) => e.event === 'publication').map((e) => e.ctx.offset);
  assert.deepEqual(offsets, [4, 5, 6, 7, 8, 9], 'each once, in order');
});

test('server API subscribe, unsubscribe and disconnect through B reach a user connected to A', { timeout: TEST_TIMEOUT_MS }, async () => {
  const user = uniq('u');
  const channel = `chat:${uniq('srv')}`;
  const client = clientOf(A, { token: connectionToken(user), minReconnectDelay: 5000, maxReconnectDelay: 5000 });
  await connect(client);
  const apiB = apiOf(B);

  const subscribed = waitEvent(client, 'subscribed', { filter: (ctx) => ctx.channel === channel });
  await apiB.subscribe({ user, channel });
  await subscribed;
  const pub = waitEvent(client, 'publication', { filter: (ctx) => ctx.channel === channel });
  await apiOf(C).publish({ channel, data: { via: 'C' } });
  assert.deepEqual((await pub).data, { via: 'C' });

  const unsubscribed = waitEvent(client, 'unsubscribed', { filter: (ctx) => ctx.channel === channel });
  await apiB.unsubscribe({ user, channel });
  await unsubscribed;

  const disconnected = waitEvent(client, 'disconnected');
  await apiB.disconnect({ user, disconnect: { code: 4500, reason: 'bye from B' } });
  const d = await disconnected;
  assert.deepEqual([d.code, d.reason], [4500, 'bye from B']);
});

test('channels through any node merges every node\'s channels', { timeout: TEST_TIMEOUT_MS }, async () => {
  const channel = `chat:${uniq('merged')}`;
  const onA = clientOf(A, { token: connectionToken(uniq('u')) });
  const onB = clientOf(B, { token: connectionToken(uniq('u')) });
  await connect(onA);
  await connect(onB);
  await subscribe(onA, channel);
  await subscribe(onB, channel);
  const r = await eventually('the channel on both nodes', async () => {
    const answer = await apiOf(C).getChannels({ pattern: channel });
    return answer.channels?.[channel]?.num_clients === 2 ? answer : null;
  });
  assert.deepEqual(Object.keys(r.channels), [channel]);
});

test('HTTP-streaming on A with /emulation posted to B: commands reach the session on A', { timeout: TEST_TIMEOUT_MS }, async () => {
  const channel = `chat:${uniq('emu')}`;
  const client = new Centrifuge([{ transport: 'http_stream', endpoint: `${A}/connection/http_stream` }], {
    token: connectionToken(uniq('u')),
    emulationEndpoint: `${B}/emulation`,
    fetch: globalThis.fetch,
    readableStream: globalThis.ReadableStream,
    timeout: WAIT_MS,
  });
  client.on('error', () => {});
  made.push(client);
  const ctx = await connect(client);
  assert.equal(ctx.transport, 'http_stream');
  // The subscribe (and the publish) travel through B's /emulation to the session on A.
  const sub = await subscribe(client, channel);
  const own = waitEvent(sub, 'publication', { filter: (p) => p.data?.via === 'emulation' });
  await withTimeout(sub.publish({ via: 'emulation' }), 'publish through B');
  assert.equal((await own).info?.client, ctx.client);
});
