// One centrifuge-js subscriber on each of three nodes, positioned and recoverable on
// TIDEWIRE_CHANNEL, while tests/cluster.rs publishes and kills and restarts Redis.
//
// Protocol on stdio (driven by tests/cluster.rs):
//   prints `ready` once every subscriber is subscribed;
//   reads `done N` once publications 1..N were all accepted;
//   then waits (bounded) until every subscriber has seen offsets 1..N and prints one
//   JSON line {"offsets": [[…], …], "subscribed": [[{wasRecovering, recovered}…], …]}.
// Exits non-zero if anything goes wrong or takes too long; never runs unbounded.

import readline from 'node:readline';
import WebSocket from 'ws';
import { Centrifuge } from 'centrifuge';
import { connectionToken } from '../helpers.mjs';

const nodes = (process.env.TIDEWIRE_NODES_HTTP ?? '').split(',').filter(Boolean);
const channel = process.env.TIDEWIRE_CHANNEL;
if (nodes.length !== 3 || !channel) {
  console.error('TIDEWIRE_NODES_HTTP (three nodes) and TIDEWIRE_CHANNEL must be set: run through tests/cluster.rs');
  process.exit(2);
}

const watchdog = setTimeout(() => {
  console.error('redis_restart.mjs: gave up after 90 s');
  process.exit(1);
}, 90_000);

const subscribers = nodes.map((http, i) => {
  const client = new Centrifuge(`${http.replace(/^http/, 'ws')}/connection/websocket`, {
    websocket: WebSocket,
    token: connectionToken(`restart-${i}`),
    timeout: 3000,
    minReconnectDelay: 100,
    maxReconnectDelay: 1000,
  });
  client.on('error', () => {});
  const sub = client.newSubscription(channel, { recoverable: true, positioned: true });
  const state = { client, sub, offsets: [], subscribed: [] };
  sub.on('error', () => {});
  sub.on('subscribed', (ctx) => state.subscribed.push({ wasRecovering: ctx.wasRecovering, recovered: ctx.recovered }));
  sub.on('publication', (ctx) => state.offsets.push(ctx.offset));
  client.connect();
  sub.subscribe();
  return state;
});

async function until(f, what, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!f()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

try {
  await until(() => subscribers.every((s) => s.subscribed.length > 0), 'every subscriber to subscribe', 10_000);
  console.log('ready');
  const lines = readline.createInterface({ input: process.stdin });
  let total = null;
  for await (const line of lines) {
    const m = /^done (\d+)$/.exec(line.trim());
    if (m) {
      total = Number(m[1]);
      break;
    }
  }
  if (total === null) throw new Error('stdin closed before `done N`');
  const complete = (s) => new Set(s.offsets).size >= total;
  await until(() => subscribers.every(complete), `offsets 1..${total} at every subscriber`, 30_000);
  // A moment more, so that a late duplicate would be seen.
  await new Promise((r) => setTimeout(r, 300));
  console.log(JSON.stringify({ offsets: subscribers.map((s) => s.offsets), subscribed: subscribers.map((s) => s.subscribed) }));
  for (const s of subscribers) s.client.disconnect();
  clearTimeout(watchdog);
  process.exit(0);
} catch (e) {
  console.error(`redis_restart.mjs: ${e.message}; offsets so far: ${JSON.stringify(subscribers.map((s) => s.offsets))}`);
  process.exit(1);
}
