// The WebSocket and SSE transports against fake browser objects (WebSocket, EventSource,
// fetch): wire formats (newline-joined JSON; cf_connect in the URL; the /emulation body),
// open failures as reasons, closes as events.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocketTransport, websocketFactory } from '../../dist/websocket.js';
import { SseTransport, sseFactory } from '../../dist/sse.js';
import { webtransportFactory, hexToBytes, fetchCertHash } from '../../dist/webtransport.js';

const saved = { WebSocket: globalThis.WebSocket, EventSource: globalThis.EventSource, fetch: globalThis.fetch };
afterEach(() => Object.assign(globalThis, saved));

const tick = () => new Promise((r) => setTimeout(r, 0));

function recorder() {
  const log = { messages: [], closes: [], notices: [] };
  return {
    log,
    events: {
      message: (m) => log.messages.push(m),
      close: (code, reason) => log.closes.push({ code, reason }),
      notice: (code, message) => log.notices.push({ code, message }),
    },
  };
}

class FakeWebSocket {
  static last = null;
  constructor(url) {
    this.url = url;
    this.sent = [];
    FakeWebSocket.last = this;
  }
  send(text) { this.sent.push(text); }
  close() { this.closedByClient = true; }
}

test('WebSocket: connect first, newline-joined batches both ways, close code and reason', async () => {
  globalThis.WebSocket = FakeWebSocket;
  const t = new WebSocketTransport('ws://h/connection/websocket');
  const { log, events } = recorder();
  const opened = t.open({ id: 1, connect: { token: 't' } }, events);
  const ws = FakeWebSocket.last;
  assert.equal(ws.url, 'ws://h/connection/websocket');
  ws.onopen();
  await opened;
  assert.deepEqual(ws.sent, ['{"id":1,"connect":{"token":"t"}}']);
  t.send([{ id: 2, subscribe: { channel: 'a' } }, {}]);
  assert.equal(ws.sent[1], '{"id":2,"subscribe":{"channel":"a"}}\n{}');
  ws.onmessage({ data: '{"id":1,"connect":{"client":"c"}}\n{"push":{"channel":"a","pub":{"data":1}}}\n{}' });
  assert.deepEqual(log.messages, [{ id: 1, connect: { client: 'c' } }, { push: { channel: 'a', pub: { data: 1 } } }, {}]);
  ws.onclose({ code: 3001, reason: 'shutdown' });
  assert.deepEqual(log.closes, [{ code: 3001, reason: 'shutdown' }]);
});

test('WebSocket: a constructor that throws, or a socket that fails before opening, is a reason', async () => {
  globalThis.WebSocket = function Blocked() { throw new Error('blocked by policy'); };
  assert.equal(websocketFactory('ws://h/x').unavailable(), null);
  await assert.rejects(new WebSocketTransport('ws://h/x').open({ id: 1, connect: {} }, recorder().events),
    /WebSocket could not be created: blocked by policy/);
  globalThis.WebSocket = FakeWebSocket;
  const p = new WebSocketTransport('ws://h/x').open({ id: 1, connect: {} }, recorder().events);
  FakeWebSocket.last.onerror();
  await assert.rejects(p, /WebSocket connection to ws:\/\/h\/x failed/);
  delete globalThis.WebSocket;
  assert.match(websocketFactory('ws://h/x').unavailable(), /not available/);
});

test('WebSocket: malformed JSON from the server closes the transport with a reason', async () => {
  globalThis.WebSocket = FakeWebSocket;
  const t = new WebSocketTransport('ws://h/x');
  const { log, events } = recorder();
  const p = t.open({ id: 1, connect: {} }, events);
  FakeWebSocket.last.onopen();
  await p;
  FakeWebSocket.last.onmessage({ data: '{"id":1,' });
  assert.deepEqual(log.closes, [{ code: 0, reason: 'malformed JSON from the server' }]);
  assert.ok(FakeWebSocket.last.closedByClient);
});

class FakeEventSource {
  static last = null;
  constructor(url) {
    this.url = url;
    FakeEventSource.last = this;
  }
  close() { this.closed = true; }
}

test('SSE: cf_connect in the URL, then commands POSTed to /emulation with session and node, in order', async () => {
  globalThis.EventSource = FakeEventSource;
  const posts = [];
  let release;
  globalThis.fetch = (url, init) => {
    posts.push({ url, init });
    return new Promise((r) => { release = () => r({ ok: true, status: 204 }); });
  };
  const t = new SseTransport('http://h/connection/sse', 'http://h/emulation');
  const { log, events } = recorder();
  const connect = { id: 1, connect: { token: 't', name: 'n' } };
  const p = t.open(connect, events);
  const es = FakeEventSource.last;
  assert.equal(es.url, `http://h/connection/sse?cf_connect=${encodeURIComponent(JSON.stringify(connect))}`);
  es.onopen();
  await p;
  t.send([{ id: 2, subscribe: { channel: 'a' } }]); // before the connect reply: held
  assert.equal(posts.length, 0);
  es.onmessage({ data: '{"id":1,"connect":{"client":"c","session":"s1","node":"n1"}}' });
  assert.equal(log.messages.length, 1);
  assert.equal(posts.length, 1);
  assert.equal(posts[0].url, 'http://h/emulation');
  assert.equal(posts[0].init.method, 'POST');
  assert.deepEqual(JSON.parse(posts[0].init.body), { session: 's1', node: 'n1', data: '{"id":2,"subscribe":{"channel":"a"}}' });
  // While a POST is in flight, later commands wait and go together in the next one.
  t.send([{ id: 3, publish: { channel: 'a', data: { x: 1 } } }]);
  t.send([{}]);
  assert.equal(posts.length, 1);
  release();
  await tick();
  assert.equal(posts.length, 2);
  assert.equal(JSON.parse(posts[1].init.body).data, '{"id":3,"publish":{"channel":"a","data":{"x":1}}}\n{}');
  release();
  await tick();
  // A disconnect push arrives like any message (the client closes the transport on it); a
  // stream that just ends is reported once as a close.
  es.onmessage({ data: '{"push":{"disconnect":{"code":3001,"reason":"shutdown"}}}' });
  assert.deepEqual(log.messages.at(-1), { push: { disconnect: { code: 3001, reason: 'shutdown' } } });
  es.onerror();
  assert.deepEqual(log.closes, [{ code: 0, reason: 'SSE stream ended' }]);
  assert.ok(es.closed, 'the EventSource does not reconnect by itself');
});

test('SSE: a failed open is a reason; a failed /emulation POST closes the transport', async () => {
  globalThis.EventSource = FakeEventSource;
  const p = new SseTransport('http://h/connection/sse', 'http://h/emulation').open({ id: 1, connect: {} }, recorder().events);
  FakeEventSource.last.onerror();
  await assert.rejects(p, /SSE connection to http:\/\/h\/connection\/sse failed/);

  globalThis.fetch = async () => ({ ok: false, status: 404 });
  const t = new SseTransport('http://h/connection/sse', 'http://h/emulation');
  const { log, events } = recorder();
  const q = t.open({ id: 1, connect: {} }, events);
  FakeEventSource.last.onopen();
  await q;
  FakeEventSource.last.onmessage({ data: '{"id":1,"connect":{"session":"s","node":"n"}}' });
  t.send([{ id: 2, presence: { channel: 'a' } }]);
  await tick();
  await tick();
  assert.deepEqual(log.closes, [{ code: 0, reason: 'POST http://h/emulation answered HTTP 404' }]);
  delete globalThis.EventSource;
  assert.match(sseFactory('a', 'b').unavailable(), /EventSource is not available/);
});

test('WebTransport: unavailable without the browser API; certificate hashes are 64 hex digits', () => {
  const saved = globalThis.WebTransport;
  delete globalThis.WebTransport;
  assert.match(webtransportFactory('https://h:1/x', 'auto', 'http://h/c').unavailable(), /WebTransport is not available/);
  globalThis.WebTransport = saved;
  const bytes = hexToBytes('AB'.repeat(32));
  assert.equal(bytes.length, 32);
  assert.equal(bytes[0], 0xab);
  assert.throws(() => hexToBytes('abc'), /64 hex digits/);
});

test("devCertHash 'auto': the served hash, nothing to pin on 404, a reason otherwise", async () => {
  const hash = 'cd'.repeat(32);
  globalThis.fetch = async (url) => ({ ok: true, status: 200, json: async () => ({ algorithm: 'sha-256', hash }), url });
  assert.deepEqual([...(await fetchCertHash('http://h/webtransport/cert-hash'))], [...hexToBytes(hash)]);
  globalThis.fetch = async () => ({ ok: false, status: 404 });
  assert.equal(await fetchCertHash('http://h/webtransport/cert-hash'), null);
  globalThis.fetch = async () => ({ ok: false, status: 500 });
  await assert.rejects(fetchCertHash('http://h/c'), /answered HTTP 500/);
  globalThis.fetch = async () => { throw new TypeError('Failed to fetch'); };
  await assert.rejects(fetchCertHash('http://h/c'), /cannot fetch the development certificate hash from http:\/\/h\/c: Failed to fetch/);
});
