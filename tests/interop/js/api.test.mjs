// cent.js (the community HTTP API client) against Tidewire's server API.
// cent.js posts `${url}/${method}` with X-API-Key for methods, and the legacy
// newline-delimited `POST ${url}` format for pipeline().

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { CentException } from 'cent.js';
import {
  TEST_TIMEOUT_MS, connect, connectionToken, env, setupFile,
  newApi, newClient, recordEvents, subscribe, uniq, waitEvent, withTimeout,
} from './helpers.mjs';

setupFile({ before, after, afterEach });

async function subscribedClient(channels) {
  const user = uniq('u');
  const client = newClient({ token: connectionToken(user) });
  const connected = await connect(client);
  const subs = [];
  for (const channel of channels) {
    subs.push(await subscribe(client, channel));
  }
  return { client, subs, user, clientId: connected.client };
}

test('publish: result object, delivered to the subscriber', { timeout: TEST_TIMEOUT_MS }, async () => {
  const channel = uniq('api-pub');
  const { subs: [sub] } = await subscribedClient([channel]);
  const got = waitEvent(sub, 'publication');
  const result = await newApi().publish({ channel, data: { via: 'publish' } });
  assert.ok(result !== null && typeof result === 'object');
  assert.deepEqual((await got).data, { via: 'publish' });
});

test('publish to an unknown namespace: API error, cent.js throws CentException', { timeout: TEST_TIMEOUT_MS }, async () => {
  await assert.rejects(
    newApi().publish({ channel: `unknownns:${uniq('x')}`, data: {} }),
    (err) => err instanceof CentException,
  );
});

test('broadcast: one publication per channel, one response each', { timeout: TEST_TIMEOUT_MS }, async () => {
  const channels = [uniq('bc-a'), uniq('bc-b'), `chat:${uniq('bc-c')}`];
  const { subs } = await subscribedClient(channels);
  const got = subs.map((sub) => waitEvent(sub, 'publication'));
  const data = { via: 'broadcast', list: [1, 2] };
  const result = await newApi().broadcast({ channels, data });
  assert.ok(Array.isArray(result.responses), 'broadcast result has responses[]');
  assert.equal(result.responses.length, channels.length);
  for (const response of result.responses) {
    assert.equal(response.error, undefined, JSON.stringify(response));
  }
  const ctxs = await Promise.all(got);
  ctxs.forEach((ctx, i) => {
    assert.equal(ctx.channel, channels[i]);
    assert.deepEqual(ctx.data, data);
  });
});

test('getChannels: lists a channel with its subscriber count', { timeout: TEST_TIMEOUT_MS }, async () => {
  const channel = uniq('api-ch');
  const other = uniq('api-ch-other');
  await subscribedClient([channel]);
  await subscribedClient([channel, other]);
  const api = newApi();

  const all = await api.getChannels();
  assert.ok(all.channels && typeof all.channels === 'object', 'result has channels{}');
  assert.equal(all.channels[channel]?.num_clients, 2, JSON.stringify(all.channels[channel]));
  assert.equal(all.channels[other]?.num_clients, 1);

  const exact = await api.getChannels({ pattern: channel });
  assert.deepEqual(Object.keys(exact.channels), [channel]);
  assert.equal(exact.channels[channel].num_clients, 2);
});

test('getInfo: one node with counters that see our connection', { timeout: TEST_TIMEOUT_MS }, async () => {
  await subscribedClient([uniq('api-info')]);
  const info = await newApi().getInfo();
  assert.ok(Array.isArray(info.nodes) && info.nodes.length >= 1, JSON.stringify(info));
  const node = info.nodes[0];
  assert.equal(typeof node.uid, 'string');
  assert.ok(node.uid.length > 0);
  assert.equal(typeof node.name, 'string');
  assert.ok(node.num_clients >= 1, `num_clients: ${node.num_clients}`);
  assert.ok(node.num_users >= 1, `num_users: ${node.num_users}`);
  assert.ok(node.num_channels >= 1, `num_channels: ${node.num_channels}`);
});

test('pipeline (legacy POST /api, newline-delimited): results in command order', { timeout: TEST_TIMEOUT_MS }, async () => {
  const channelA = uniq('pipe-a');
  const channelB = uniq('pipe-b');
  const { client, subs: [subA, subB] } = await subscribedClient([channelA, channelB]);
  const events = recordEvents(subA, ['publication']);
  const gotB = waitEvent(subB, 'publication');

  const results = await newApi().pipeline([
    { method: 'publish', params: { channel: channelA, data: { step: 1 } } },
    { method: 'broadcast', params: { channels: [channelA, channelB], data: { step: 2 } } },
    { method: 'info', params: {} },
  ]);
  assert.ok(Array.isArray(results));
  assert.equal(results.length, 3, JSON.stringify(results));
  assert.ok(results[0] && typeof results[0] === 'object', 'publish result');
  assert.equal(results[1].responses.length, 2);
  assert.ok(Array.isArray(results[2].nodes));

  assert.deepEqual((await events.next('publication')).data, { step: 1 });
  assert.deepEqual((await events.next('publication')).data, { step: 2 });
  assert.deepEqual((await gotB).data, { step: 2 });
  assert.equal(client.state, 'connected');
});

test('wrong API key: 401, cent.js rejects, nothing is published', { timeout: TEST_TIMEOUT_MS }, async () => {
  const channel = uniq('api-401');
  const { subs: [sub] } = await subscribedClient([channel]);
  const events = recordEvents(sub, ['publication']);
  const bad = newApi('definitely-not-the-key');

  // Centrifugo answers 401 with an empty body: cent.js's res.json() throws a
  // SyntaxError (not a CentException) for methods, pipeline() wraps it in CentException.
  await assert.rejects(bad.publish({ channel, data: { leaked: 1 } }));
  await assert.rejects(bad.pipeline([{ method: 'publish', params: { channel, data: { leaked: 2 } } }]), CentException);

  const raw = await withTimeout(fetch(`${env.http}/api/publish`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-API-Key': 'definitely-not-the-key' },
    body: JSON.stringify({ channel, data: { leaked: 3 } }),
  }), 'raw fetch');
  assert.equal(raw.status, 401);
  await raw.arrayBuffer();

  // The first publication the subscriber sees is the one made with the right key.
  await newApi().publish({ channel, data: { marker: true } });
  const first = await events.next('publication');
  assert.deepEqual(first.data, { marker: true });
});
