// The real centrifuge-js against Tidewire whose proxies point at the Django app in
// django_backend.py. Run by tests/proxy.rs (`node --test tests/proxy/django_proxy.mjs`)
// with TIDEWIRE_WS, TIDEWIRE_HTTP, TIDEWIRE_API_KEY, DJANGO_URL and TIDEWIRE_WS_DEAD (a
// second server whose connect proxy points at a closed port).
//
// The SDK and ws come from tests/interop/js/node_modules (scripts/test.sh installs them).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../interop/js/package.json', import.meta.url));
const { Centrifuge } = require('centrifuge');
const WebSocket = require('ws');

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run through tests/proxy.rs`);
  return v;
}
const WS = env('TIDEWIRE_WS');
const HTTP = env('TIDEWIRE_HTTP');
const API_KEY = env('TIDEWIRE_API_KEY');
const DJANGO = env('DJANGO_URL');
const WS_DEAD = env('TIDEWIRE_WS_DEAD');
const WAIT_MS = 4000;

/** Logs in to Django; its session cookie (`sessionid=…`). */
async function login(user) {
  const res = await fetch(`${DJANGO}/login?user=${encodeURIComponent(user)}`);
  assert.equal(res.status, 200);
  const cookie = res.headers.getSetCookie().find((c) => c.startsWith('sessionid='));
  assert.ok(cookie, 'Django set its session cookie');
  return cookie.split(';')[0];
}

/** A ws WebSocket sending these headers on the upgrade, as a browser sends its cookie. */
function socketWith(headers) {
  return class extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, { headers });
    }
  };
}

const clients = [];
function client(url, { cookie, realHeaders = {}, ...opts } = {}) {
  const headers = { ...realHeaders };
  if (cookie) headers.Cookie = cookie;
  const c = new Centrifuge(url, {
    websocket: socketWith(headers),
    minReconnectDelay: 100,
    maxReconnectDelay: 300,
    timeout: 5000,
    ...opts,
  });
  clients.push(c);
  return c;
}

function once(emitter, event, pred = () => true) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${event} within ${WAIT_MS} ms`)), WAIT_MS);
    const f = (ctx) => {
      if (!pred(ctx)) return;
      clearTimeout(t);
      emitter.removeListener(event, f);
      resolve(ctx);
    };
    emitter.on(event, f);
  });
}

async function apiPublish(channel, data) {
  const res = await fetch(`${HTTP}/api/publish`, {
    method: 'POST',
    headers: { 'X-API-Key': API_KEY, 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel, data }),
  });
  assert.equal(res.status, 200);
}

test.afterEach(() => {
  while (clients.length) clients.pop().disconnect();
});

test('connects with the Django session cookie and no token; connect data and info come from Django', async () => {
  const cookie = await login('alice');
  const c = client(WS, { cookie });
  const connected = once(c, 'connected');
  c.connect();
  const ctx = await connected;
  assert.deepEqual(ctx.data, { hello: 'alice', transport: 'websocket', protocol: 'json' });
  const who = await c.rpc('whoami', {});
  assert.equal(who.data.user, 'alice');
  // include_connection_meta: the connect result's meta travels with later proxy requests.
  assert.deepEqual(who.data.meta, { tenant: 't1' });
});

test('subscribes where Django allows, is refused (103) where it does not', async () => {
  const c = client(WS, { cookie: await login('bob') });
  c.connect();
  await c.ready(WAIT_MS);
  const ok = c.newSubscription('public:news');
  const subscribed = once(ok, 'subscribed');
  ok.subscribe();
  assert.deepEqual((await subscribed).data, { welcome: 'public:news' });

  const no = c.newSubscription('secret:plans');
  const refused = once(no, 'unsubscribed');
  no.subscribe();
  const u = await refused;
  assert.equal(u.code, 103);
});

test('publishes through the publish proxy: Django rewrites the data; its error reaches the SDK', async () => {
  const c = client(WS, { cookie: await login('carol') });
  c.connect();
  const sub = c.newSubscription('public:chat');
  const pub = once(sub, 'publication');
  sub.subscribe();
  await sub.ready(WAIT_MS);
  await sub.publish({ text: 'hello' });
  const p = await pub;
  assert.deepEqual(p.data, { text: 'HELLO', by: 'carol' });
  assert.equal(p.info.user, 'carol');
  await assert.rejects(sub.publish({ text: 'forbidden' }), (e) => e.code === 1002 && e.message === 'not allowed to say that');
});

test('RPC: Django answers; its error and disconnect reach the SDK with their codes', async () => {
  const c = client(WS, { cookie: await login('dave') });
  c.connect();
  await c.ready(WAIT_MS);
  await assert.rejects(c.rpc('fail', {}), (e) => e.code === 1003 && e.message === 'rpc failed');
  const gone = once(c, 'disconnected');
  c.rpc('kick', {}).catch(() => {});
  const d = await gone;
  assert.equal(d.code, 4502);
  assert.equal(d.reason, 'kicked by rpc');
});

test('connect refused by Django: error 1001 and disconnect 4501 reach the SDK as sent', async () => {
  const banned = client(WS, { cookie: await login('banned') });
  const b = once(banned, 'disconnected');
  banned.connect();
  const bd = await b;
  assert.equal(bd.code, 1001);
  assert.equal(bd.reason, 'banned');

  const kicked = client(WS, { cookie: await login('kicked') });
  const k = once(kicked, 'disconnected');
  kicked.connect();
  assert.equal((await k).code, 4501);

  // No cookie at all: Django's own 101.
  const anon = client(WS, {});
  const a = once(anon, 'disconnected');
  anon.connect();
  assert.equal((await a).code, 101);
});

test('disconnected when the refresh proxy says so: expired (3005) and disconnect (4503)', async () => {
  const short = client(WS, { cookie: await login('shortlived') });
  short.connect();
  await short.ready(WAIT_MS);
  const c = await once(short, 'connecting', (ctx) => ctx.code === 3005);
  assert.equal(c.reason, 'connection expired');

  const ended = client(WS, { cookie: await login('ended') });
  ended.connect();
  await ended.ready(WAIT_MS);
  const d = await once(ended, 'disconnected');
  assert.equal(d.code, 4503);
  assert.equal(d.reason, 'session ended');
});

test('a backend slower than the timeout: error 100 while publications and pings keep flowing', async () => {
  // maxServerPingDelay: the SDK reconnects if a server ping is 600 ms late (pings every
  // 1 s), so pings held up by the 2.5 s call would show as a reconnect.
  const c = client(WS, { cookie: await login('erin'), maxServerPingDelay: 600 });
  c.connect();
  await c.ready(WAIT_MS);
  // From here on, any reconnect (a late ping, 3008, 3012) is trouble.
  const trouble = [];
  c.on('connecting', (ctx) => trouble.push(`connecting ${ctx.code} ${ctx.reason}`));
  c.on('disconnected', (ctx) => trouble.push(`disconnected ${ctx.code} ${ctx.reason}`));
  const sub = c.newSubscription('public:ticker');
  const got = [];
  sub.on('publication', (ctx) => got.push({ n: ctx.data.n, at: Date.now() }));
  sub.subscribe();
  await sub.ready(WAIT_MS);

  const started = Date.now();
  const slow = c.rpc('slow', {}).then(
    () => assert.fail('the slow call must fail'),
    (e) => ({ code: e.code, at: Date.now() }),
  );
  for (let n = 0; n < 5; n++) {
    await apiPublish('public:ticker', { n });
    await new Promise((r) => setTimeout(r, 300));
  }
  const failed = await slow;
  assert.equal(failed.code, 100);
  assert.ok(failed.at - started >= 2000, 'the call waited for the proxy timeout');
  assert.deepEqual(got.map((g) => g.n), [0, 1, 2, 3, 4]);
  assert.ok(got.every((g) => g.at < failed.at), 'publications arrived while the call waited');
  // Past the 2.5 s timeout plus two more ping intervals: still connected, no 3008/3012.
  await new Promise((r) => setTimeout(r, 2200));
  assert.deepEqual([...trouble], []);
  assert.equal(c.state, 'connected');
  const who = await c.rpc('whoami', {});
  assert.equal(who.data.user, 'erin');
});

test('header allowlist: listed headers (real and emulated) reach Django, others never do', async () => {
  const c = client(WS, {
    cookie: await login('frank'),
    realHeaders: { 'X-Not-Listed': 'real' },
    headers: { 'X-Tenant': 'acme', 'X-Secret': 'emulated' },
  });
  c.connect();
  await c.ready(WAIT_MS);
  const who = await c.rpc('whoami', {});
  assert.equal(who.data.tenant, 'acme');
  const res = await fetch(`${DJANGO}/seen`);
  const seen = (await res.json()).seen;
  assert.ok(seen.length > 0);
  for (const s of seen) {
    assert.ok(!s.headers.includes('x-not-listed'), `${s.view} got x-not-listed`);
    assert.ok(!s.headers.includes('x-secret'), `${s.view} got x-secret`);
  }
  assert.ok(seen.some((s) => s.view === 'rpc' && s.headers.includes('x-tenant') && s.headers.includes('cookie')));
});

test('a backend that is down: connect fails with error 100, and the SDK keeps retrying', async () => {
  const c = client(WS_DEAD, { cookie: 'sessionid=whatever' });
  const err = once(c, 'error', (ctx) => ctx.type === 'connect');
  c.connect();
  const e = await err;
  assert.equal(e.error.code, 100);
  assert.equal(c.state, 'connecting');
});

test('a subscribe proxy that is down: error 100, the connection stays', async () => {
  const c = client(WS, { cookie: await login('gina') });
  c.connect();
  await c.ready(WAIT_MS);
  const sub = c.newSubscription('down:x');
  const e = once(sub, 'error');
  sub.subscribe();
  assert.equal((await e).error.code, 100);
  assert.equal(c.state, 'connected');
});
