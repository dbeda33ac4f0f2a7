// centrifuge-js (real SDK) forced onto the HTTP fallbacks Tidewire serves for
// networks that block UDP and WebSocket: HTTP-streaming (fetch + ReadableStream)
// and SSE (EventSource from the `eventsource` package), both with commands sent
// to POST /emulation. Connect, subscribe, receive an API publication, publish.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Centrifuge } from 'centrifuge';
import { EventSource } from 'eventsource';
import {
  TEST_TIMEOUT_MS, WAIT_MS, connect, connectionToken, env, newApi, setupFile, subscribe, uniq, waitEvent,
  withTimeout,
} from './helpers.mjs';

setupFile({ before, after, afterEach });

const fallbackClients = [];
afterEach(() => {
  for (const c of fallbackClients.splice(0)) c.disconnect();
});

/** A centrifuge-js client that may only use `transport`. */
function fallbackClient(transport, user) {
  const client = new Centrifuge([{ transport, endpoint: `${env.http}/connection/${transport}` }], {
    token: connectionToken(user),
    emulationEndpoint: `${env.http}/emulation`,
    fetch: globalThis.fetch,
    readableStream: globalThis.ReadableStream,
    eventsource: EventSource,
    timeout: WAIT_MS,
    minReconnectDelay: 100,
    maxReconnectDelay: 1000,
  });
  client.on('error', () => {});
  fallbackClients.push(client);
  return client;
}

for (const transport of ['http_stream', 'sse']) {
  test(`${transport}: connects, subscribes, receives an API publication, publishes via emulation`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const channel = `chat:${uniq(transport)}`;
    const client = fallbackClient(transport, uniq('u'));
    const ctx = await connect(client);
    assert.equal(ctx.transport, transport);
    assert.equal(client.state, 'connected');

    // The subscribe command travels through POST /emulation.
    const sub = await subscribe(client, channel);
    const fromApi = waitEvent(sub, 'publication');
    await newApi().publish({ channel, data: { via: 'api', transport } });
    assert.deepEqual((await fromApi).data, { via: 'api', transport });

    // A client publish (also through /emulation) comes back on the stream.
    const own = waitEvent(sub, 'publication', { filter: (p) => p.data?.via === 'client' });
    await withTimeout(sub.publish({ via: 'client' }), `${transport} publish`);
    const p = await own;
    assert.equal(p.info?.client, ctx.client, 'publisher info names this client');
  });
}

test('http_stream: a server disconnect with a reconnect code is followed by a reconnect', { timeout: TEST_TIMEOUT_MS }, async () => {
  const user = uniq('u');
  const client = fallbackClient('http_stream', user);
  const first = await connect(client);
  const reconnected = waitEvent(client, 'connected', { filter: (c) => c.client !== first.client });
  const connecting = waitEvent(client, 'connecting');
  await newApi().disconnect({ user, disconnect: { code: 4002, reason: 'hop' } });
  const why = await connecting;
  assert.equal(why.code, 4002, 'the disconnect push carried the code');
  await reconnected;
});
