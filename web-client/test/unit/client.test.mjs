// The client's behaviour against a scripted server (fakes.mjs): transport fallback with
// reasons, reconnect with backoff, recovery by offset/epoch without loss or duplicates,
// token refresh, pings, terminal codes, queued calls.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tidewire, TidewireError } from '../../dist/tidewire.js';
import { FakeServer, factories, until } from './fakes.mjs';

const ENDPOINT = 'http://127.0.0.1:8000';

function client(server, behaviours = {}, options = {}) {
  const c = new Tidewire(ENDPOINT, {
    token: 'tok',
    factories: factories(server, behaviours),
    minReconnectDelay: 4,
    maxReconnectDelay: 20,
    openTimeout: 50,
    ...options,
  });
  const states = [];
  c.on('state', (e) => states.push(e));
  return { c, states };
}

test('transport URLs derive from the endpoint', async () => {
  const { transportUrls } = await import('../../dist/client.js');
  assert.deepEqual(transportUrls('http://127.0.0.1:8000'), {
    webtransport: 'https://127.0.0.1:8000/connection/webtransport/native',
    websocket: 'ws://127.0.0.1:8000/connection/websocket',
    sse: 'http://127.0.0.1:8000/connection/sse',
    emulation: 'http://127.0.0.1:8000/emulation',
    certHash: 'http://127.0.0.1:8000/webtransport/cert-hash',
  });
  const s = transportUrls('https://rt.example.com', { quicPort: 4433 });
  assert.equal(s.webtransport, 'https://rt.example.com:4433/connection/webtransport/native');
  assert.equal(s.websocket, 'wss://rt.example.com/connection/websocket');
  assert.equal(transportUrls('http://[::1]:8000').webtransport, 'https://[::1]:8000/connection/webtransport/native');
});

test('falls back WebTransport → WebSocket → SSE and names each reason in the state events', async () => {
  const server = new FakeServer();
  const { c, states } = client(server, {
    webtransport: { unavailable: 'WebTransport is not available in this browser' },
    websocket: { fail: 'WebSocket connection to ws://x failed' },
  });
  const connected = new Promise((r) => c.on('connected', r));
  c.connect();
  const ev = await connected;
  assert.equal(ev.transport, 'sse');
  assert.equal(c.transportName, 'sse');
  assert.deepEqual(ev.skipped, [
    { transport: 'webtransport', reason: 'WebTransport is not available in this browser' },
    { transport: 'websocket', reason: 'WebSocket connection to ws://x failed' },
  ]);
  const reasons = states.map((s) => s.reason);
  assert.ok(reasons.includes('WebTransport skipped: WebTransport is not available in this browser'), reasons.join('\n'));
  assert.ok(reasons.includes('WebSocket skipped: WebSocket connection to ws://x failed'), reasons.join('\n'));
  const last = states.at(-1);
  assert.equal(last.state, 'connected');
  assert.equal(last.transport, 'sse');
  assert.match(last.reason, /connected over SSE \(after skipping WebTransport, WebSocket\)/);
  c.disconnect();
});

test('a transport that hangs while opening is skipped after openTimeout', async () => {
  const server = new FakeServer();
  const { c, states } = client(server, { webtransport: { hang: true } });
  const connected = new Promise((r) => c.on('connected', r));
  c.connect();
  assert.equal((await connected).transport, 'websocket');
  assert.ok(states.some((s) => /WebTransport skipped: WebTransport did not open within 50 ms/.test(s.reason)));
  c.disconnect();
});

test('when every transport fails it keeps retrying with backoff, then connects', async () => {
  const server = new FakeServer();
  const behaviours = { webtransport: { fail: 'no udp' }, websocket: { fail: 'blocked' }, sse: { fail: 'down' } };
  const { c, states } = client(server, behaviours);
  c.connect();
  await until(() => states.filter((s) => /no transport could connect/.test(s.reason)).length >= 2, 2000, 'two failed rounds');
  assert.match(states.find((s) => /no transport could connect/.test(s.reason)).reason,
    /WebTransport: no udp; WebSocket: blocked; SSE: down\); reconnecting in \d+ ms/);
  delete behaviours.websocket.fail;
  await until(() => c.state === 'connected', 2000, 'connected');
  assert.equal(c.transportName, 'websocket');
  c.disconnect();
  assert.equal(c.state, 'disconnected');
});

test('after a drop it reconnects and recovers: nothing missed, nothing twice', async () => {
  const server = new FakeServer();
  server.publish('chat:a', 'old'); // offset 1, before we subscribe
  const { c } = client(server, { webtransport: { unavailable: 'none here' } });
  const got = [];
  const subscribed = [];
  c.subscribe('chat:a', { onPublication: (p) => got.push(p.offset), onSubscribed: (e) => subscribed.push(e) });
  c.connect();
  await until(() => subscribed.length === 1, 2000, 'subscribed');
  assert.deepEqual(subscribed[0], {
    channel: 'chat:a', wasRecovering: false, recovered: true, recoverable: true, offset: 1, epoch: 'e1',
    delivery: 'stream', transport: 'websocket',
  });
  server.publish('chat:a', 'a'); // 2
  server.publish('chat:a', 'b'); // 3
  await until(() => got.length === 2, 2000, 'live publications');
  server.current.drop(3001, 'shutdown');
  // Published while the client is away: only recovery can deliver them.
  server.publish('chat:a', 'c', false); // 4
  server.publish('chat:a', 'd', false); // 5
  await until(() => subscribed.length === 2, 2000, 'resubscribed');
  const resub = server.commands.filter((x) => x.cmd.subscribe).at(-1).cmd.subscribe;
  assert.deepEqual(resub, { channel: 'chat:a', recoverable: true, recover: true, offset: 3, epoch: 'e1' });
  assert.equal(subscribed[1].wasRecovering, true);
  assert.equal(subscribed[1].recovered, true);
  server.publish('chat:a', 'e'); // 6, live
  await until(() => got.length === 5, 2000, 'recovered and live publications');
  assert.deepEqual(got, [2, 3, 4, 5, 6]);
  assert.equal(c.state, 'connected');
  c.disconnect();
});

test('a jump in offsets resubscribes to fill the gap', async () => {
  const server = new FakeServer();
  const { c } = client(server, { webtransport: { unavailable: 'x' } });
  const got = [];
  c.subscribe('chat:g', { onPublication: (p) => got.push(p.offset) });
  c.connect();
  await until(() => server.current?.subscribed.has('chat:g'), 2000, 'subscribed');
  server.publish('chat:g', 1); // 1 delivered
  server.publish('chat:g', 2, false); // 2 lost on the way
  server.publish('chat:g', 3); // 3 arrives: a gap
  await until(() => got.length === 3, 2000, 'gap filled');
  assert.deepEqual(got, [1, 2, 3]);
  const cmds = server.commands.map((x) => Object.keys(x.cmd).find((k) => k !== 'id'));
  assert.deepEqual(cmds.slice(-2), ['unsubscribe', 'subscribe']);
  c.disconnect();
});

test('a terminal disconnect code stops reconnecting', async () => {
  const server = new FakeServer();
  const { c } = client(server);
  const disconnected = new Promise((r) => c.on('disconnected', r));
  c.connect();
  await until(() => c.state === 'connected');
  server.current.push({ push: { disconnect: { code: 3503, reason: 'force disconnect' } } });
  assert.deepEqual(await disconnected, { code: 3503, reason: 'force disconnect' });
  const before = server.transports.length;
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(server.transports.length, before, 'no new connection');
  assert.equal(c.state, 'disconnected');
});

test('an expired token is replaced through getToken', async () => {
  const server = new FakeServer();
  server.connectError = { code: 109, message: 'token expired' };
  let n = 0;
  const { c } = client(server, {}, { token: undefined, getToken: async () => `token-${++n}` });
  c.connect();
  await until(() => c.state === 'connected', 2000, 'connected');
  assert.deepEqual(server.tokens, ['token-1', 'token-2']);
  c.disconnect();
});

test('the connection token is refreshed before it expires', async () => {
  const server = new FakeServer();
  server.connectExtra = { expires: true, ttl: 0.02 };
  let n = 0;
  const { c } = client(server, {}, { token: undefined, getToken: async () => `token-${++n}` });
  c.connect();
  await until(() => server.commands.some((x) => x.cmd.refresh), 2000, 'a refresh command');
  assert.deepEqual(server.commands.find((x) => x.cmd.refresh).cmd.refresh, { token: 'token-2' });
  c.disconnect();
});

test('pings are answered with pongs when the server asks for them', async () => {
  const server = new FakeServer();
  const { c } = client(server);
  c.connect();
  await until(() => c.state === 'connected');
  const t = server.current;
  t.push({});
  await until(() => t.sentBatches.some((b) => b.length === 1 && Object.keys(b[0]).length === 0), 2000, 'a pong');
  c.disconnect();
});

test('calls made while connecting are sent once connected; calls resolve with results', async () => {
  const server = new FakeServer();
  const { c } = client(server, { webtransport: { hang: true } });
  c.connect();
  const published = c.publish('chat:q', { text: 'early' });
  await published;
  assert.equal(server.stream('chat:q').top, 1);
  const h = await c.history('chat:q', { limit: 10 });
  assert.deepEqual(h.publications.map((p) => p.data), [{ text: 'early' }]);
  assert.equal(h.epoch, 'e1');
  assert.deepEqual(await c.presence('chat:q'), { clients: { c1: { user: 'u1', client: 'c1' } } });
  assert.deepEqual(await c.presenceStats('chat:q'), { numClients: 1, numUsers: 1 });
  c.disconnect();
  await assert.rejects(c.publish('chat:q', 1), (e) => e instanceof TidewireError && /disconnected/.test(e.message));
});

test('binary payloads need WebTransport', async () => {
  const server = new FakeServer();
  const { c } = client(server, { webtransport: { unavailable: 'x' } });
  c.connect();
  await until(() => c.state === 'connected');
  await assert.rejects(c.publish('chat:b', Uint8Array.of(1)), /binary data needs WebTransport/);
  c.disconnect();
});

test('datagram subscriptions ask for no recovery and report their delivery', async () => {
  const server = new FakeServer();
  const { c } = client(server);
  let ev;
  c.subscribe('live:x', { delivery: 'datagram', onSubscribed: (e) => (ev = e) });
  c.connect();
  await until(() => ev, 2000, 'subscribed');
  assert.equal(ev.delivery, 'datagram');
  assert.equal(ev.transport, 'webtransport');
  assert.deepEqual(server.commands.find((x) => x.cmd.subscribe).cmd.subscribe, { channel: 'live:x' });
  assert.equal(c.sendDatagram('live:x', { v: 1 }), true);
  c.disconnect();
});

test('subscribing twice to a channel is an error; unsubscribe ends the subscription', async () => {
  const server = new FakeServer();
  const { c } = client(server);
  const sub = c.subscribe('chat:u');
  assert.throws(() => c.subscribe('chat:u'), /already subscribed/);
  c.connect();
  await until(() => sub.state === 'subscribed');
  const ended = new Promise((r) => sub.on('unsubscribed', r));
  sub.unsubscribe();
  assert.deepEqual(await ended, { channel: 'chat:u', code: 0, reason: 'unsubscribe called' });
  assert.equal(c.getSubscription('chat:u'), undefined);
  c.disconnect();
});

test('a lost stream (new epoch) is reported as not recovered, and the position restarts', async () => {
  const server = new FakeServer();
  const { c } = client(server, { webtransport: { unavailable: 'x' } });
  const subscribed = [];
  const got = [];
  c.subscribe('chat:e', { onSubscribed: (e) => subscribed.push(e), onPublication: (p) => got.push(p.offset) });
  c.connect();
  await until(() => subscribed.length === 1);
  server.publish('chat:e', 'a'); // 1
  await until(() => got.length === 1);
  server.current.drop(0, 'gone');
  server.streams.set('chat:e', Object.assign(server.stream('chat:x'), { epoch: 'e2' })); // history lost
  await until(() => subscribed.length === 2, 2000, 'resubscribed');
  assert.equal(subscribed[1].wasRecovering, true);
  assert.equal(subscribed[1].recovered, false);
  assert.equal(subscribed[1].epoch, 'e2');
  server.publish('chat:e', 'b'); // offset 1 of the new epoch
  await until(() => got.length === 2, 2000, 'live in the new epoch');
  assert.deepEqual(got, [1, 1]);
  c.disconnect();
});
