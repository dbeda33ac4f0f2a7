// Connection token failures as centrifuge-js reports them.
//   expired token  -> connect error 109 ("token expired"), surfaced as an 'error'
//                     event {type: 'connect', error: {code: 109}}; without getToken
//                     the SDK then stops: 'disconnected' {code: 1, reason: 'unauthorized'}.
//   bad signature  -> the server closes the WebSocket with 3500 "invalid token";
//                     terminal, so 'disconnected' {code: 3500}.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS, connectionToken, setupFile, newClient,
  recordEvents, uniq,
} from './helpers.mjs';

setupFile({ before, after, afterEach });

const HOUR_AGO = () => Math.floor(Date.now() / 1000) - 3600;

test('expired token: error event with code 109, then disconnected "unauthorized" (no getToken)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const client = newClient({ token: connectionToken(uniq('u'), { exp: HOUR_AGO() }) });
  const events = recordEvents(client, ['error', 'connecting', 'connected', 'disconnected']);
  client.connect();

  const err = await events.next('error');
  assert.equal(err.type, 'connect');
  assert.equal(err.error.code, 109);
  const disconnected = await events.next('disconnected');
  assert.equal(disconnected.code, 1);
  assert.equal(disconnected.reason, 'unauthorized');
  assert.equal(client.state, 'disconnected');
  assert.ok(!events.names().includes('connected'), `never connected: ${events.names()}`);
});

test('expired token with getToken: the SDK fetches a fresh token after 109 and connects', { timeout: TEST_TIMEOUT_MS }, async () => {
  const user = uniq('u');
  let calls = 0;
  const client = newClient({
    token: connectionToken(user, { exp: HOUR_AGO() }),
    getToken: async () => {
      calls += 1;
      return connectionToken(user);
    },
  });
  const events = recordEvents(client, ['error', 'connected', 'disconnected']);
  client.connect();

  const err = await events.next('error');
  assert.equal(err.error.code, 109);
  const connected = await events.next('connected');
  assert.ok(connected.client);
  assert.equal(calls, 1);
  assert.equal(client.state, 'connected');
});

test('token signed with the wrong secret: disconnected with 3500, no reconnect', { timeout: TEST_TIMEOUT_MS }, async () => {
  const client = newClient({ token: connectionToken(uniq('u'), { secret: 'not-the-server-secret' }) });
  const events = recordEvents(client, ['connecting', 'connected', 'disconnected']);
  client.connect();

  const ctx = await events.next('disconnected');
  assert.equal(ctx.code, 3500);
  assert.equal(ctx.reason, 'invalid token');
  assert.equal(client.state, 'disconnected');
  assert.deepEqual(events.names(), ['connecting', 'disconnected']);
});

test('garbage token: disconnected with 3500', { timeout: TEST_TIMEOUT_MS }, async () => {
  const client = newClient({ token: 'not-a-jwt' });
  const events = recordEvents(client, ['connected', 'disconnected']);
  client.connect();
  const ctx = await events.next('disconnected');
  assert.equal(ctx.code, 3500);
  assert.deepEqual(events.names(), ['disconnected']);
});
