// The demo page served by a running Tidewire (started by tests/web_client.rs in demo mode),
// in headless Debian Chromium through playwright-core — never a downloaded browser. Each
// transport is forced in turn by page init scripts: WebTransport; WebTransport made
// unavailable → WebSocket; WebSocket blocked too → SSE. On each: history on entry, API
// publications appear, the page's own messages, presence, the live chart, and a forced
// disconnect followed by reconnect and recovery with nothing missed or doubled, a second
// visitor joining and leaving (muted lines in the chat, in order with the messages), and the
// chart's axes read back from its SVG (titles with units, tick values, each line drawn on
// its labelled scale). Every
// console message and page error is printed (QUIC failures reach JS only as "Opening
// handshake failed"); a screenshot per transport goes to $TIDEWIRE_OUTPUT.
//
// Environment: TIDEWIRE_HTTP (the server's http://host:port), TIDEWIRE_API_KEY,
// TIDEWIRE_OUTPUT (a directory for screenshots).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run through tests/web_client.rs)`);
  return v;
};
const HTTP = env('TIDEWIRE_HTTP');
const API_KEY = env('TIDEWIRE_API_KEY');
const OUTPUT = env('TIDEWIRE_OUTPUT');
/** Longest wait for anything the page should show. */
const WAIT_MS = 15_000;
const CHAT = 'chat:lobby';

/** Init scripts that make transports unavailable, as a browser or network might. */
const NO_WEBTRANSPORT = () => {
  delete globalThis.WebTransport;
  if (typeof globalThis.WebTransport === 'function') globalThis.WebTransport = undefined;
};
const NO_WEBSOCKET = () => {
  // A proxy that refuses WebSocket: the constructor fails the way a blocked socket does.
  globalThis.WebSocket = function BlockedWebSocket() {
    throw new DOMException('WebSocket blocked by the test', 'SecurityError');
  };
};

let context;
let userDataDir;

before(async () => {
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidewire-demo-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await context?.close();
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
});

async function api(method, params) {
  const resp = await fetch(`${HTTP}/api/${method}`, {
    method: 'POST',
    headers: { 'X-API-Key': API_KEY, 'content-type': 'application/json' },
    body: JSON.stringify(params),
  });
  assert.equal(resp.status, 200, method);
  const body = await resp.json();
  assert.ok(!body.error, `${method}: ${JSON.stringify(body)}`);
  return body;
}

/** Opens the demo page as `user` with `scripts` run before the page's own. */
async function openDemo(user, scripts = []) {
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => console.log(`[${user} console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => {
    errors.push(String(e));
    console.log(`[${user} pageerror] ${e}`);
  });
  for (const s of scripts) await page.addInitScript(s);
  await page.goto(`${HTTP}/?user=${encodeURIComponent(user)}&debug`);
  return { page, errors };
}

const demo = (page) => page.evaluate(() => {
  const d = window.tidewireDemo;
  return {
    states: d.states.map((s) => ({ state: s.state, transport: s.transport, reason: s.reason })),
    subscribed: d.subscribed,
    lines: d.lines,
    presence: d.presence,
    samples: d.samples,
    sampleVia: d.sampleVia,
    transport: document.body.dataset.transport ?? null,
  };
});

/** The live chart as the SVG shows it: axis titles, ticks (value, label, position) and
 * the first and last point of each line, with the sample the page drew last. */
const readChart = (page) => page.evaluate(() => {
  const num = (el, a) => Number(el.getAttribute(a));
  const ticks = (sel, pos) => [...document.querySelectorAll(`${sel} .tick`)].map((t) => {
    const text = t.querySelector('text');
    return { value: Number(t.dataset.value), label: text.textContent, pos: num(text, pos) };
  });
  const points = (sel) => {
    const d = document.querySelector(sel).getAttribute('d');
    const pts = [...d.matchAll(/[ML](-?[\d.]+) (-?[\d.]+)/g)].map((m) => ({ x: Number(m[1]), y: Number(m[2]) }));
    return { first: pts[0], last: pts.at(-1), count: pts.length };
  };
  const base = document.querySelector('#chart .x-axis .baseline');
  return {
    titles: [...document.querySelectorAll('#chart .axis-title')].map((t) => t.textContent),
    msgsTitle: document.querySelector('#chart .y-axis.msgs .axis-title').textContent,
    connsTitle: document.querySelector('#chart .y-axis.conns .axis-title').textContent,
    xTitle: document.querySelector('#chart .x-axis .axis-title').textContent,
    msgsTicks: ticks('#chart .y-axis.msgs', 'y'),
    connsTicks: ticks('#chart .y-axis.conns', 'y'),
    xTicks: ticks('#chart .x-axis', 'x'),
    plot: { left: num(base, 'x1'), right: num(base, 'x2') },
    msgs: points('#chart .line.msgs'),
    conns: points('#chart .line.conns'),
    last: window.tidewireDemo.lastSample,
  };
});

/** The value a y position stands for on an axis, from its first and last tick. */
function valueAt(ticks, y) {
  const a = ticks[0];
  const b = ticks.at(-1);
  return a.value + ((y - a.pos) * (b.value - a.value)) / (b.pos - a.pos);
}

function assertYAxis(ticks, name) {
  assert.ok(ticks.length >= 3, `${name}: at least 3 ticks: ${JSON.stringify(ticks)}`);
  assert.equal(ticks[0].value, 0, `${name} starts at 0`);
  for (const [i, t] of ticks.entries()) {
    assert.ok(Number.isFinite(t.value) && t.label !== '', `${name} tick ${i} has a value and a label`);
    const shown = t.label.endsWith('k') ? Number(t.label.slice(0, -1)) * 1000 : Number(t.label);
    assert.ok(Math.abs(shown - t.value) <= t.value * 0.01, `${name} tick label ${t.label} says its value ${t.value}`);
    if (i > 0) {
      assert.ok(t.value > ticks[i - 1].value, `${name} ticks ascend: ${JSON.stringify(ticks)}`);
      assert.ok(t.pos < ticks[i - 1].pos, `${name}: larger values higher up: ${JSON.stringify(ticks)}`);
    }
  }
  const steps = ticks.slice(1).map((t, i) => t.value - ticks[i].value);
  assert.ok(steps.every((s) => Math.abs(s - steps[0]) < 1e-9), `${name}: evenly spaced values ${JSON.stringify(ticks)}`);
}

/** The chart has labelled axes with units and tick values, and each line is drawn on the
 * scale its axis shows: its newest point reads back as the newest sample. */
async function checkChart(page) {
  // Two x ticks ("now" and 5 s ago) need 5 s of samples.
  await waitFor(page, () => document.querySelectorAll('#chart .x-axis .tick').length >= 2);
  const c = await readChart(page);
  assert.match(c.msgsTitle, /messages.*\/s/, `the left axis is messages per second: ${JSON.stringify(c.titles)}`);
  assert.match(c.connsTitle, /connections/, `the right axis is connections: ${JSON.stringify(c.titles)}`);
  assert.match(c.xTitle, /seconds ago/, `the x axis is time in seconds ago: ${JSON.stringify(c.titles)}`);
  assertYAxis(c.msgsTicks, 'messages/s axis');
  assertYAxis(c.connsTicks, 'connections axis');
  // Both scales share the gridlines: tick i of one sits where tick i of the other does.
  assert.deepEqual(c.msgsTicks.map((t) => t.pos), c.connsTicks.map((t) => t.pos), 'the two scales share gridlines');

  assert.deepEqual(c.xTicks[0], { ...c.xTicks[0], value: 0, label: 'now' }, JSON.stringify(c.xTicks));
  for (const [i, t] of c.xTicks.entries()) {
    assert.equal(t.value, 5 * i, `x ticks every 5 s: ${JSON.stringify(c.xTicks)}`);
    if (i > 0) {
      assert.equal(t.label, String(t.value));
      assert.ok(t.pos < c.xTicks[i - 1].pos, 'older is further left');
    }
  }
  // Grows from the left: the line starts at the left edge, its head is "now".
  for (const [name, line] of [['msgs', c.msgs], ['conns', c.conns]]) {
    assert.ok(line.count >= 2, `${name} line has points`);
    assert.ok(Math.abs(line.first.x - c.plot.left) < 0.2, `${name} line starts at the left edge: ${JSON.stringify(line)} ${JSON.stringify(c.plot)}`);
    assert.ok(Math.abs(line.last.x - c.xTicks[0].pos) < 0.2, `${name} line ends at "now"`);
    assert.ok(line.last.x <= c.plot.right + 0.2, `${name} line stays inside the plot`);
  }
  const msgsTop = c.msgsTicks.at(-1).value;
  const connsTop = c.connsTicks.at(-1).value;
  assert.ok(c.last.msgs_per_sec <= msgsTop && c.last.connections <= connsTop, `the scales hold the newest sample ${JSON.stringify(c.last)}`);
  assert.ok(Math.abs(valueAt(c.msgsTicks, c.msgs.last.y) - c.last.msgs_per_sec) <= msgsTop * 0.01,
    `the messages/s line's newest point reads ${valueAt(c.msgsTicks, c.msgs.last.y)} on its axis, the sample says ${c.last.msgs_per_sec}`);
  assert.ok(Math.abs(valueAt(c.connsTicks, c.conns.last.y) - c.last.connections) <= connsTop * 0.01,
    `the connections line's newest point reads ${valueAt(c.connsTicks, c.conns.last.y)} on its axis, the sample says ${c.last.connections}`);
  assert.ok(c.last.connections >= 1, 'this page is connected');
}

/** A second visitor joins and leaves: the page shows both in the chat, muted, in order with
 * a message published while they were there; the visitor's page sees `user` online. */
async function joinAndLeave(page, user, transport) {
  const visitor = `bob-${transport}`;
  const inChat = ([sel, text]) => [...document.querySelectorAll(sel)].some((li) => li.textContent.includes(text));
  const { page: bob } = await openDemo(visitor);
  await waitFor(page, (v) => window.tidewireDemo.presence.includes(v), visitor);
  await waitFor(bob, (u) => window.tidewireDemo.presence.includes(u), user);
  await waitFor(page, inChat, ['#messages li.event.join', `${visitor} joined`]);
  const during = `while ${visitor} is here`;
  await api('publish', { channel: CHAT, data: { text: during } });
  await waitFor(page, (t) => window.tidewireDemo.lines.some((l) => l.text === t), during);
  await bob.close();
  await waitFor(page, (v) => !window.tidewireDemo.presence.includes(v), visitor);
  await waitFor(page, inChat, ['#messages li.event.leave', `${visitor} left`]);

  const d = await demo(page);
  const joined = d.lines.findIndex((l) => l.kind === 'join' && l.user === visitor);
  const left = d.lines.findIndex((l) => l.kind === 'leave' && l.user === visitor);
  const msg = d.lines.findIndex((l) => l.text === during);
  assert.ok(joined >= 0 && joined < msg && msg < left, `join, message, leave in that order: ${JSON.stringify(d.lines.slice(-6))}`);
  assert.equal(d.lines.filter((l) => l.kind !== 'message' && l.user === visitor).length, 2, 'one join and one leave');
  assert.ok(!d.lines.some((l) => l.kind !== 'message' && l.user === user), 'the page does not announce itself (nor its reconnect)');
  const muted = await page.$$eval('#messages li.event', (els) => els.map((li) => getComputedStyle(li).fontStyle));
  assert.ok(muted.every((f) => f === 'italic'), 'join/leave lines are styled apart from messages');
}

async function waitFor(page, fn, arg) {
  await page.waitForFunction(fn, arg, { timeout: WAIT_MS });
}

/** Everything the page must do over `transport`, with `scripts` forcing it there. */
async function exercise(transport, scripts, expectSkipped) {
  const user = `alice-${transport}`;
  // Published before the page opens: the page must show it from history.
  await api('publish', { channel: CHAT, data: { text: `before ${user} came` } });
  const { page, errors } = await openDemo(user, scripts);

  await waitFor(page, () => document.body.dataset.state === 'connected');
  let d = await demo(page);
  assert.equal(d.transport, transport, `connected over ${transport}: ${JSON.stringify(d.states)}`);
  for (const re of expectSkipped) {
    assert.ok(d.states.some((s) => re.test(s.reason)), `a state event names ${re}: ${JSON.stringify(d.states, null, 1)}`);
  }
  const banner = await page.textContent('#status-text');
  assert.match(banner, new RegExp(`Connected over ${transport === 'webtransport' ? 'WebTransport' : transport === 'websocket' ? 'WebSocket' : 'SSE'}`));

  // History on entry, presence including ourselves, the live chart moving.
  await waitFor(page, (u) => window.tidewireDemo.lines.some((l) => l.text === `before ${u} came`), user);
  await waitFor(page, (u) => window.tidewireDemo.presence.includes(u), user);
  await waitFor(page, () => window.tidewireDemo.samples >= 3);
  d = await demo(page);
  assert.equal(d.sampleVia, transport === 'webtransport' ? 'datagram' : 'stream', 'live chart delivery');

  // A publication through the server API appears on the page.
  await api('publish', { channel: CHAT, data: { text: `hello over ${transport}` } });
  await waitFor(page, (t) => [...document.querySelectorAll('#messages li')].some((li) => li.textContent.includes(`hello over ${t}`)), transport);

  // The page's own message goes out over the same connection and comes back.
  await page.fill('#text', `typed over ${transport}`);
  await page.click('#send button');
  await waitFor(page, (t) => window.tidewireDemo.lines.some((l) => l.mine && l.text === `typed over ${t}`), transport);

  // Forced disconnect (reconnect allowed), messages published while the page is away, then
  // reconnect with recovery: each missed message exactly once, nothing duplicated.
  const subscribedBefore = d.subscribed.length;
  await api('disconnect', { user, disconnect: { code: 4000, reason: 'forced by the test' } });
  const missed = [1, 2, 3].map((i) => `missed over ${transport} #${i}`);
  for (const text of missed) await api('publish', { channel: CHAT, data: { text } });
  await waitFor(page, (n) => window.tidewireDemo.subscribed.length > n && document.body.dataset.state === 'connected', subscribedBefore);
  await waitFor(page, (m) => m.every((t) => window.tidewireDemo.lines.some((l) => l.text === t)), missed);
  d = await demo(page);
  assert.ok(d.states.some((s) => s.state === 'connecting' && /forced by the test/.test(s.reason)),
    `the state event after the drop names the server's reason: ${JSON.stringify(d.states.slice(-6))}`);
  const resub = d.subscribed.filter((s) => s.channel === CHAT).at(-1);
  assert.equal(resub.wasRecovering, true, JSON.stringify(resub));
  assert.equal(resub.recovered, true, JSON.stringify(resub));
  assert.equal(resub.transport, transport, 'reconnected over the same transport');
  for (const text of missed) {
    assert.equal(d.lines.filter((l) => l.text === text).length, 1, `${text} shown exactly once`);
  }
  const offsets = d.lines.map((l) => l.offset).filter((o) => o > 0);
  assert.equal(new Set(offsets).size, offsets.length, 'no offset shown twice');
  assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b), 'messages in stream order');
  const idx = missed.map((t) => d.lines.findIndex((l) => l.text === t));
  assert.deepEqual(idx, [...idx].sort((a, b) => a - b), 'missed messages in the order they were published');

  // Still live after the recovery.
  await api('publish', { channel: CHAT, data: { text: `after the drop over ${transport}` } });
  await waitFor(page, (t) => window.tidewireDemo.lines.some((l) => l.text === `after the drop over ${t}`), transport);

  // The live chart resumes after the reconnect (datagram channels are not recovered: the
  // next value simply arrives).
  const samplesAfter = (await demo(page)).samples;
  await waitFor(page, (n) => window.tidewireDemo.samples >= n + 5, samplesAfter);

  await checkChart(page);
  await joinAndLeave(page, user, transport);

  await page.screenshot({ path: path.join(OUTPUT, `demo-${transport}.png`), fullPage: true });
  assert.deepEqual(errors, [], 'no page errors');
  return page;
}

test('the page is the demo, with the SDK served beside it', async () => {
  const html = await (await fetch(`${HTTP}/`)).text();
  assert.match(html, /Tidewire live demo/);
  const sdk = await fetch(`${HTTP}/tidewire.js`);
  assert.equal(sdk.status, 200);
  assert.match(sdk.headers.get('content-type'), /javascript/);
});

test('over WebTransport: streams, a datagram chart, join and leave', async () => {
  const page = await exercise('webtransport', [], []);
  await page.close();
});

test('WebTransport unavailable: WebSocket, and the state event says why', async () => {
  const page = await exercise('websocket', [NO_WEBTRANSPORT], [/^WebTransport skipped: WebTransport is not available in this browser/]);
  await page.close();
});

test('WebSocket blocked too: SSE with /emulation, and the state events say why', async () => {
  const page = await exercise('sse', [NO_WEBTRANSPORT, NO_WEBSOCKET], [
    /^WebTransport skipped: WebTransport is not available in this browser/,
    /^WebSocket skipped: WebSocket could not be created: WebSocket blocked by the test/,
  ]);
  await page.close();
});
