// Shared helpers for the centrifuge-js / cent.js interop suites.
//
// The server under test is given by environment variables (see ../README.md):
//   TIDEWIRE_HTTP, TIDEWIRE_WS, TIDEWIRE_API_KEY, TIDEWIRE_HMAC_SECRET
// Nothing here talks to anything but those addresses.

import { createHmac, randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { Centrifuge } from 'centrifuge';
import { CentClient } from 'cent.js';

function requireEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run this suite through tests/interop.rs or set the TIDEWIRE_* variables (see tests/interop/README.md)`);
  }
  return value;
}

export const env = {
  http: requireEnv('TIDEWIRE_HTTP').replace(/\/+$/, ''),
  ws: requireEnv('TIDEWIRE_WS'),
  apiKey: requireEnv('TIDEWIRE_API_KEY'),
  secret: requireEnv('TIDEWIRE_HMAC_SECRET'),
};

/** Default time any single wait may take before the test fails. */
export const WAIT_MS = 3000;
/** Per-test timeout handed to node:test. */
export const TEST_TIMEOUT_MS = 15000;

/** A name nobody else uses in this server's lifetime (channels, users). */
export function uniq(prefix) {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

function b64url(input) {
  return Buffer.from(input).toString('base64url');
}

/** Mint an HS256 JWT. */
export function hs256(claims, secret = env.secret) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify(claims));
  const signature = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${signature}`;
}

/** A connection token for `user`, valid for an hour unless `exp` is given. */
export function connectionToken(user, { exp, secret } = {}) {
  const now = Math.floor(Date.now() / 1000);
  return hs256({ sub: user, exp: exp ?? now + 3600, iat: now }, secret);
}

const clients = new Set();

/**
 * A centrifuge-js client for the server under test. It is not connected yet.
 * Reconnect delays are short so reconnect paths finish within the test timeouts.
 */
export function newClient(options = {}) {
  const client = new Centrifuge(env.ws, {
    websocket: WebSocket,
    timeout: WAIT_MS,
    minReconnectDelay: 100,
    maxReconnectDelay: 1000,
    ...options,
  });
  // EventEmitter throws on an 'error' event without a listener; keep a no-op one.
  client.on('error', () => {});
  clients.add(client);
  return client;
}

/** Disconnect every client created by newClient (call from afterEach). */
export function closeAllClients() {
  for (const client of clients) {
    try {
      client.disconnect();
    } catch {
      // Nothing useful to do: the test already has its verdict.
    }
  }
  clients.clear();
}

/**
 * cent.js client for the server API (`url` is the `/api` prefix). cent.js sets no
 * timeout on its fetch calls, so every method call is wrapped in withTimeout.
 */
export function newApi(apiKey = env.apiKey, http = env.http) {
  const cent = new CentClient({ url: `${http.replace(/\/+$/, '')}/api`, apiKey });
  return new Proxy(cent, {
    get(target, prop) {
      const value = target[prop];
      if (typeof value !== 'function') return value;
      return (...args) => withTimeout(value.apply(target, args), `cent.js ${String(prop)}()`);
    },
  });
}

/** Open and close a bare WebSocket to TIDEWIRE_WS: is a server there at all? */
function preflight(timeoutMs = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(env.ws);
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no WebSocket handshake with ${env.ws} within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.on('open', () => {
      clearTimeout(timer);
      ws.terminate();
      resolve();
    });
    ws.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot reach ${env.ws}: ${e.message}`));
    });
  });
}

/**
 * Call at the top of every test file with node:test's hooks.
 * - before: fail the whole file at once when no server answers at TIDEWIRE_WS;
 * - afterEach: disconnect every client the test made;
 * - after: once the file's tests are done, a process still kept alive (a hung
 *   fetch, a socket the server never closed) is ended with a failure after a
 *   grace period instead of hanging `node --test`.
 */
export function setupFile({ before, after, afterEach }) {
  before(() => preflight());
  afterEach(closeAllClients);
  after(() => {
    closeAllClients();
    const timer = setTimeout(() => {
      console.error('interop watchdog: handles still open 5 s after the last test; failing this file');
      process.exit(1);
    }, 5000);
    timer.unref();
  });
}

/**
 * Resolve with the first `event` emitted by `emitter` whose context passes
 * `filter`; reject after `timeoutMs`. Start waiting BEFORE triggering the event.
 */
export function waitEvent(emitter, event, { filter = () => true, timeoutMs = WAIT_MS } = {}) {
  return new Promise((resolve, reject) => {
    const onEvent = (ctx) => {
      let ok;
      try {
        ok = filter(ctx);
      } catch (e) {
        cleanup();
        reject(e);
        return;
      }
      if (ok) {
        cleanup();
        resolve(ctx);
      }
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for '${event}'`));
    }, timeoutMs);
    function cleanup() {
      clearTimeout(timer);
      emitter.removeListener(event, onEvent);
    }
    emitter.on(event, onEvent);
  });
}

/**
 * Record events of the given names, in order, as {event, ctx}. `next(event, filter)`
 * resolves with the next recorded entry (already recorded or future) of that name.
 */
export function recordEvents(emitter, names) {
  const log = [];
  const waiters = [];
  let consumed = 0;
  for (const name of names) {
    emitter.on(name, (ctx) => {
      log.push({ event: name, ctx });
      for (const w of [...waiters]) w();
    });
  }
  return {
    log,
    /** Names of the recorded events, in order. */
    names: () => log.map((e) => e.event),
    /** Next entry named `event` after the last one returned by next(). */
    next(event, { filter = () => true, timeoutMs = WAIT_MS } = {}) {
      return new Promise((resolve, reject) => {
        const check = () => {
          for (let i = consumed; i < log.length; i++) {
            if (log[i].event === event && filter(log[i].ctx)) {
              consumed = i + 1;
              done();
              resolve(log[i].ctx);
              return true;
            }
          }
          return false;
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for '${event}'; recorded: ${JSON.stringify(log)}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          const i = waiters.indexOf(check);
          if (i >= 0) waiters.splice(i, 1);
        };
        if (!check()) waiters.push(check);
      });
    },
  };
}

/** Connect `client` and resolve with the 'connected' context. */
export async function connect(client, timeoutMs = WAIT_MS) {
  const connected = waitEvent(client, 'connected', { timeoutMs });
  client.connect();
  return connected;
}

/** Create a subscription, subscribe and wait until it is subscribed. */
export async function subscribe(client, channel, options = {}, timeoutMs = WAIT_MS) {
  const sub = client.newSubscription(channel, options);
  sub.on('error', () => {});
  const subscribed = waitEvent(sub, 'subscribed', { timeoutMs });
  sub.subscribe();
  await subscribed;
  return sub;
}

/** Reject with a clear message if `promise` does not settle within `timeoutMs`. */
export function withTimeout(promise, what, timeoutMs = WAIT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
