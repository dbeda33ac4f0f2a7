// The Tidewire client: one connection to the server over the best transport that works
// here (native WebTransport → WebSocket → SSE with /emulation), and the subscriptions on
// it. It owns the connection's state machine:
//
//   disconnected ──connect()──▶ connecting ──connect reply──▶ connected
//        ▲                        ▲    │ (each transport tried in turn; each one passed over
//        │ terminal code or       │    │  is reported with its reason)
//        │ disconnect()           │    ▼
//        └────────────────────────┴─ backoff ◀── transport closed / no ping / timeout
//
// On every connect it subscribes again, asking each recoverable subscription's channel for
// what it missed (offset + epoch); subscription.ts drops what was already delivered.
// Tokens: a static `token`, or `getToken()` called before connecting, when the server says
// the token expired (error 109, disconnect 3005) and before the connection's expiry
// (`refresh` command).

import { Backoff } from './backoff.js';
import { Emitter } from './emitter.js';
import { payloadBytes } from './native.js';
import {
  ErrorCode, isPing, reconnectAllowed, type WireCommand, type WireConnectResult, type WirePush, type WireReply,
} from './protocol.js';
import { sseFactory } from './sse.js';
import {
  Subscription, toClientInfo, toPublication, type SubscribeOptions,
} from './subscription.js';
import {
  DEFAULT_TRANSPORTS, errorText, label, openFirst, type SkippedTransport, type Transport, type TransportEvents,
  type TransportFactory, type TransportName,
} from './transport.js';
import {
  TidewireError, type ConnectedEvent, type ConnectionState, type DisconnectedEvent, type ErrorEvent,
  type HistoryOptions, type HistoryResult, type PresenceResult, type PresenceStatsResult, type Publication,
  type StateEvent,
} from './types.js';
import { webtransportFactory, type CertHashOption } from './webtransport.js';
import { websocketFactory } from './websocket.js';

/** SDK name sent in `connect`. */
const CLIENT_NAME = 'tidewire-js';
/** SDK version sent in `connect`. */
export const VERSION = '0.1.0';

/** Default first reconnect delay cap, ms. */
const DEFAULT_MIN_RECONNECT_DELAY_MS = 500;
/** Default largest reconnect delay, ms. */
const DEFAULT_MAX_RECONNECT_DELAY_MS = 20_000;
/** Default time a command (and the connect reply) may take, ms. */
const DEFAULT_TIMEOUT_MS = 10_000;
/** Default time one transport may take to open before the next is tried, ms. A blocked UDP
 * path makes WebTransport hang rather than fail, so this bounds the fallback's cost. */
const DEFAULT_OPEN_TIMEOUT_MS = 5_000;
/** Grace past the server's ping interval before the connection counts as dead, ms
 * (centrifuge-js uses the same 10 s). */
const MAX_SERVER_PING_DELAY_MS = 10_000;
/** Calls waiting for a connection; more are refused at once rather than piling up. */
const MAX_QUEUED_CALLS = 1000;
/** Refresh the connection token this long before it expires, ms. */
const REFRESH_MARGIN_MS = 5_000;
/** Retry a failed token refresh after this long, ms. */
const REFRESH_RETRY_MS = 5_000;

/** Options of `new Tidewire(endpoint, options)`. */
export interface TidewireOptions {
  /** A connection JWT. */
  token?: string;
  /** Returns a fresh connection JWT; called before connecting when there is no token,
   * when the server says it expired, and before the connection expires. */
  getToken?: () => Promise<string>;
  /** Transports to try, in order (default `['webtransport', 'websocket', 'sse']`). */
  transports?: TransportName[];
  /** Pin the server's development certificate for WebTransport: `'auto'` fetches it from
   * `GET /webtransport/cert-hash` (and pins nothing when that answers 404, as servers with
   * a CA-signed certificate do); or give its SHA-256 as 64 hex digits. */
  devCertHash?: CertHashOption;
  /** The UDP port of the server's QUIC endpoint (default: the endpoint's port). */
  quicPort?: number;
  /** Override a transport's URL (defaults derive from the endpoint). */
  webtransportUrl?: string;
  websocketUrl?: string;
  sseUrl?: string;
  emulationUrl?: string;
  /** Custom connect data. */
  data?: unknown;
  /** First reconnect delay cap in ms (default 500); doubles per failure, with jitter. */
  minReconnectDelay?: number;
  /** Largest reconnect delay in ms (default 20000). */
  maxReconnectDelay?: number;
  /** Command timeout in ms (default 10000). */
  timeout?: number;
  /** How long one transport may take to open before the next is tried, ms (default 5000). */
  openTimeout?: number;
  /** Log state changes and skipped transports to the console. */
  debug?: boolean;
  /** @internal Transport factories (tests). */
  factories?: Partial<Record<TransportName, TransportFactory>>;
  /** @internal Random numbers for the backoff jitter (tests). */
  random?: () => number;
}

/** Events of the client. */
export interface ClientEvents {
  /** Every state change, and each transport passed over while connecting (with the reason). */
  state: (event: StateEvent) => void;
  connecting: (event: StateEvent) => void;
  connected: (event: ConnectedEvent) => void;
  disconnected: (event: DisconnectedEvent) => void;
  /** Problems reported without throwing. */
  error: (event: ErrorEvent) => void;
  /** A publication of a channel this client has no subscription object for (server-side
   * subscriptions from the token's `channels` claim or the server API). */
  publication: (publication: Publication) => void;
  /** An asynchronous message from the server (no channel). */
  message: (data: unknown) => void;
}

interface Pending {
  resolve: (reply: WireReply) => void;
  reject: (error: TidewireError) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** Splits an endpoint into the transports' default URLs. */
export function transportUrls(endpoint: string, options: TidewireOptions = {}): Record<'webtransport' | 'websocket' | 'sse' | 'emulation' | 'certHash', string> {
  const base = new URL(endpoint);
  const http = `${base.protocol === 'https:' || base.protocol === 'wss:' ? 'https:' : 'http:'}//${base.host}`;
  const ws = `${base.protocol === 'https:' || base.protocol === 'wss:' ? 'wss:' : 'ws:'}//${base.host}`;
  const port = options.quicPort ?? (base.port ? Number(base.port) : base.protocol === 'https:' ? 443 : 80);
  return {
    webtransport: options.webtransportUrl ?? `https://${base.hostname.includes(':') && !base.hostname.startsWith('[') ? `[${base.hostname}]` : base.hostname}:${port}/connection/webtransport/native`,
    websocket: options.websocketUrl ?? `${ws}/connection/websocket`,
    sse: options.sseUrl ?? `${http}/connection/sse`,
    emulation: options.emulationUrl ?? `${http}/emulation`,
    certHash: `${http}/webtransport/cert-hash`,
  };
}

/** A connection to a Tidewire server and its subscriptions. */
export class Tidewire extends Emitter<ClientEvents> {
  /** The connection state. */
  state: ConnectionState = 'disconnected';
  /** The transport in use while connected. */
  transportName: TransportName | null = null;
  /** This connection's client id while connected. */
  clientId = '';

  private readonly opts: TidewireOptions;
  private readonly factories: Record<TransportName, TransportFactory>;
  private readonly order: TransportName[];
  private readonly backoff: Backoff;
  private readonly subs = new Map<string, Subscription>();
  private readonly pending = new Map<number, Pending>();
  private token: string;
  private transport: Transport | null = null;
  private connected = false;
  private nextId = 1;
  private connectId = 0;
  /** Bumped on every connect/disconnect: callbacks of older attempts see a mismatch and stop. */
  private generation = 0;
  private lastTransport: TransportName | null = null;
  private skipped: SkippedTransport[] = [];
  private queued: WireCommand[] = [];
  private outgoing: WireCommand[] = [];
  private flushScheduled = false;
  private pong = false;
  private pingTimeoutMs = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;

  /** `endpoint` is the server's HTTP address, e.g. `http://127.0.0.1:8000` (a page served
   * by Tidewire can pass `location.origin`). */
  constructor(endpoint: string, options: TidewireOptions = {}) {
    super();
    this.opts = options;
    this.token = options.token ?? '';
    const urls = transportUrls(endpoint, options);
    this.factories = {
      webtransport: options.factories?.webtransport ?? webtransportFactory(urls.webtransport, options.devCertHash, urls.certHash),
      websocket: options.factories?.websocket ?? websocketFactory(urls.websocket),
      sse: options.factories?.sse ?? sseFactory(urls.sse, urls.emulation),
    };
    const order = (options.transports ?? [...DEFAULT_TRANSPORTS]).filter((t) => DEFAULT_TRANSPORTS.includes(t));
    if (order.length === 0) throw new TypeError('options.transports names no known transport');
    this.order = [...new Set(order)];
    this.backoff = new Backoff({
      minDelay: options.minReconnectDelay ?? DEFAULT_MIN_RECONNECT_DELAY_MS,
      maxDelay: options.maxReconnectDelay ?? DEFAULT_MAX_RECONNECT_DELAY_MS,
      ...(options.random ? { random: options.random } : {}),
    });
  }

  // --- public API --------------------------------------------------------------------

  /** Connects (and reconnects after failures until `disconnect()` or a terminal code). */
  connect(): void {
    if (this.state !== 'disconnected') return;
    this.generation++;
    this.setState('connecting', null, 0, 'connect called');
    void this.attempt(this.generation);
  }

  /** Disconnects for good (until `connect()` again). Subscriptions are kept and come back
   * on the next connect. */
  disconnect(): void {
    if (this.state === 'disconnected') return;
    this.terminate(0, 'disconnect called');
  }

  /** Subscribes to `channel`. The subscription follows the connection: it is made again
   * (recovering what was missed) after every reconnect, until `unsubscribe()`. */
  subscribe(channel: string, options: SubscribeOptions = {}): Subscription {
    if (this.subs.has(channel)) throw new Error(`already subscribed to ${channel}`);
    const sub = new Subscription(this, channel, options);
    this.subs.set(channel, sub);
    if (this.connected) this.sendSubscribe(sub);
    return sub;
  }

  /** The subscription of `channel`, if any. */
  getSubscription(channel: string): Subscription | undefined {
    return this.subs.get(channel);
  }

  /** Publishes `data` (a JSON value; bytes only over WebTransport) into `channel`. */
  async publish(channel: string, data: unknown): Promise<void> {
    if (data instanceof Uint8Array && this.connected && this.transport && !this.transport.datagrams) {
      throw new TidewireError(ErrorCode.Unsupported, `binary data needs WebTransport; this connection uses ${this.transportName}`);
    }
    await this.call({ publish: { channel, data } });
  }

  /** Sends `data` as one QUIC datagram into `channel` (a datagram channel this client is
   * subscribed to over WebTransport): fire-and-forget, may be lost. Returns false when it
   * could not be sent that way (another transport, too large, not subscribed). */
  sendDatagram(channel: string, data: unknown): boolean {
    if (!this.connected || !this.transport) return false;
    return this.transport.sendDatagram(channel, payloadBytes(data));
  }

  /** Reads a channel's history. */
  async history(channel: string, options: HistoryOptions = {}): Promise<HistoryResult> {
    const req: NonNullable<WireCommand['history']> = { channel, limit: options.limit ?? 0 };
    if (options.since) req.since = options.since;
    if (options.reverse) req.reverse = true;
    const reply = await this.call({ history: req });
    const h = reply.history ?? {};
    return {
      publications: (h.publications ?? []).map((p) => toPublication(channel, p)),
      offset: h.offset ?? 0,
      epoch: h.epoch ?? '',
    };
  }

  /** Who is subscribed to a channel. */
  async presence(channel: string): Promise<PresenceResult> {
    const reply = await this.call({ presence: { channel } });
    const clients: PresenceResult['clients'] = {};
    for (const [id, info] of Object.entries(reply.presence?.presence ?? {})) clients[id] = toClientInfo(info);
    return { clients };
  }

  /** How many are subscribed to a channel. */
  async presenceStats(channel: string): Promise<PresenceStatsResult> {
    const reply = await this.call({ presence_stats: { channel } });
    return { numClients: reply.presence_stats?.num_clients ?? 0, numUsers: reply.presence_stats?.num_users ?? 0 };
  }

  // --- what subscriptions call (SubscriptionHost in subscription.ts) ----------------

  /** @internal */
  resubscribe(sub: Subscription, stillSubscribed: boolean): void {
    if (!this.connected || this.subs.get(sub.channel) !== sub) return;
    if (stillSubscribed) {
      this.call({ unsubscribe: { channel: sub.channel } }).catch(() => undefined);
    }
    this.sendSubscribe(sub);
  }

  /** @internal */
  remove(sub: Subscription): void {
    if (this.subs.get(sub.channel) !== sub) return;
    this.subs.delete(sub.channel);
    if (this.connected) {
      this.call({ unsubscribe: { channel: sub.channel } }).catch(() => undefined);
    }
  }

  // --- connecting ----------------------------------------------------------------------

  private log(message: string): void {
    if (this.opts.debug) console.log(`[tidewire] ${message}`);
  }

  private setState(state: ConnectionState, transport: TransportName | null, code: number, reason: string): void {
    const changed = this.state !== state;
    this.state = state;
    const event: StateEvent = { state, transport, code, reason, skipped: [...this.skipped] };
    this.log(`${state}${transport ? ` (${transport})` : ''}: ${reason}`);
    this.emit('state', event);
    if (changed && state === 'connecting') this.emit('connecting', event);
  }

  /** Transports in the order to try: the one that worked last first, then the rest in
   * the configured order. */
  private transportOrder(): TransportName[] {
    const last = this.lastTransport;
    if (!last || !this.order.includes(last)) return this.order;
    return [last, ...this.order.filter((t) => t !== last)];
  }

  private async attempt(generation: number): Promise<void> {
    if (generation !== this.generation) return;
    this.skipped = [];
    if (!this.token && this.opts.getToken) {
      try {
        this.token = await this.opts.getToken();
      } catch (e) {
        if (generation === this.generation) this.retry(0, `getToken failed: ${errorText(e)}`);
        return;
      }
      if (generation !== this.generation) return;
    }
    const opened = await openFirst(
      this.transportOrder(),
      this.factories,
      () => {
        this.connectId = this.nextId++;
        const connect: NonNullable<WireCommand['connect']> = { name: CLIENT_NAME, version: VERSION };
        if (this.token) connect.token = this.token;
        if (this.opts.data !== undefined) connect.data = this.opts.data;
        return { id: this.connectId, connect };
      },
      (t) => {
        this.transport = t;
        this.setState('connecting', t.name, 0, `trying ${label(t.name)}`);
        return this.eventsFor(t, generation);
      },
      this.opts.openTimeout ?? DEFAULT_OPEN_TIMEOUT_MS,
      (skip) => {
        this.skipped.push(skip);
        this.setState('connecting', skip.transport, 0, `${label(skip.transport)} skipped: ${skip.reason}`);
      },
      () => generation !== this.generation,
    );
    if (generation !== this.generation) return;
    if (!opened) {
      this.transport = null;
      const why = this.skipped.map((s) => `${label(s.transport)}: ${s.reason}`).join('; ');
      this.retry(0, `no transport could connect (${why})`);
      return;
    }
    this.transport = opened.transport;
    this.connectTimer = setTimeout(() => {
      if (generation === this.generation && !this.connected) this.lose(0, 'no connect reply in time');
    }, this.opts.timeout ?? DEFAULT_TIMEOUT_MS);
  }

  private eventsFor(t: Transport, generation: number): TransportEvents {
    const current = () => generation === this.generation && this.transport === t;
    return {
      message: (m) => {
        if (current()) this.handleMessage(m);
      },
      close: (code, reason) => {
        if (current()) this.lose(code, reason ? `transport closed: ${reason}` : 'transport closed');
      },
      notice: (code, message) => {
        if (current()) this.emit('error', { type: 'notice', code, message });
      },
    };
  }

  /** Schedules the next attempt after a backoff delay. */
  private retry(code: number, reason: string): void {
    this.clearTimers();
    const delay = this.backoff.next();
    this.setState('connecting', null, code, `${reason}; reconnecting in ${delay} ms`);
    const generation = this.generation;
    this.reconnectTimer = setTimeout(() => void this.attempt(generation), delay);
  }

  /** The connection is gone: reconnect unless the code says not to. */
  private lose(code: number, reason: string): void {
    const transport = this.transport;
    this.transport = null;
    transport?.close();
    this.dropConnection();
    if (!reconnectAllowed(code)) {
      this.terminate(code, reason);
      return;
    }
    if (code === 3005 && this.opts.getToken) this.token = ''; // connection expired: fetch a new token
    this.generation++;
    this.retry(code, reason);
  }

  /** Stops for good. */
  private terminate(code: number, reason: string): void {
    this.generation++;
    const transport = this.transport;
    this.transport = null;
    transport?.close();
    this.dropConnection();
    this.clearTimers();
    this.queued = [];
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new TidewireError(ErrorCode.Disconnected, `disconnected: ${reason}`));
    }
    this.setState('disconnected', null, code, reason);
    this.emit('disconnected', { code, reason });
  }

  /** Forgets everything tied to the connection that just ended. */
  private dropConnection(): void {
    const wasConnected = this.connected;
    this.connected = false;
    this.transportName = null;
    this.clientId = '';
    this.outgoing = [];
    this.clearTimers();
    // Calls already sent get no reply on a new connection; queued ones wait for it.
    for (const [id, p] of this.pending) {
      if (this.queued.some((c) => c.id === id)) continue;
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new TidewireError(ErrorCode.Disconnected, 'the connection closed before the reply'));
    }
    if (wasConnected) for (const sub of this.subs.values()) sub.lost();
  }

  private clearTimers(): void {
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.connectTimer);
    clearTimeout(this.pingTimer);
    clearTimeout(this.refreshTimer);
  }

  // --- messages ------------------------------------------------------------------------

  private handleMessage(m: WireReply): void {
    this.armPingTimer();
    if (isPing(m)) {
      if (this.connected && this.pong) this.transport?.send([{}]);
      return;
    }
    const id = m.id ?? 0;
    if (id !== 0) {
      if (id === this.connectId && !this.connected) {
        this.handleConnectReply(m);
        return;
      }
      const p = this.pending.get(id);
      if (p) {
        this.pending.delete(id);
        clearTimeout(p.timer);
        if (m.error) p.reject(new TidewireError(m.error.code, m.error.message, !!m.error.temporary));
        else p.resolve(m);
      }
      return;
    }
    if (m.push) this.handlePush(m.push);
  }

  private handleConnectReply(m: WireReply): void {
    clearTimeout(this.connectTimer);
    if (m.error || !m.connect) {
      const code = m.error?.code ?? 0;
      const message = m.error?.message ?? 'empty connect reply';
      const transport = this.transport;
      this.transport = null;
      transport?.close();
      this.emit('error', { type: 'connect', code, message });
      if (code === ErrorCode.TokenExpired && this.opts.getToken) {
        this.token = '';
        this.generation++;
        this.retry(code, 'token expired');
      } else if (m.error?.temporary) {
        this.generation++;
        this.retry(code, `connect failed: ${message}`);
      } else {
        this.terminate(code, `connect failed: ${message}`);
      }
      return;
    }
    const result: WireConnectResult = m.connect;
    const t = this.transport;
    if (!t) return;
    this.connected = true;
    this.transportName = t.name;
    this.lastTransport = t.name;
    this.clientId = result.client ?? '';
    this.pong = !!result.pong;
    this.pingTimeoutMs = result.ping ? result.ping * 1000 + MAX_SERVER_PING_DELAY_MS : 0;
    this.backoff.reset();
    this.armPingTimer();
    if (result.expires && result.ttl !== undefined) this.scheduleRefresh(result.ttl);
    const skipped = [...this.skipped];
    const extra = skipped.length ? ` (after skipping ${skipped.map((s) => label(s.transport)).join(', ')})` : '';
    this.setState('connected', t.name, 0, `connected over ${label(t.name)}${extra}`);
    this.emit('connected', { transport: t.name, client: this.clientId, skipped, datagrams: t.datagrams });
    if (!this.connected || this.transport !== t) return; // a handler disconnected
    for (const sub of this.subs.values()) this.sendSubscribe(sub);
    const queued = this.queued;
    this.queued = [];
    for (const c of queued) this.enqueue(c);
  }

  private handlePush(push: WirePush): void {
    const channel = push.channel ?? '';
    const sub = channel ? this.subs.get(channel) : undefined;
    if (push.disconnect) {
      this.lose(push.disconnect.code ?? 0, push.disconnect.reason || 'disconnected by the server');
    } else if (push.pub) {
      if (sub) sub.publication(push.pub);
      else if (channel) this.emit('publication', toPublication(channel, push.pub));
    } else if (push.join) {
      sub?.joined(push.join.info);
    } else if (push.leave) {
      sub?.left(push.leave.info);
    } else if (push.unsubscribe) {
      sub?.unsubscribedByServer(push.unsubscribe.code ?? 0, push.unsubscribe.reason ?? '');
    } else if (push.message) {
      this.emit('message', push.message.data);
    }
  }

  private armPingTimer(): void {
    clearTimeout(this.pingTimer);
    if (!this.connected || this.pingTimeoutMs <= 0) return;
    const generation = this.generation;
    this.pingTimer = setTimeout(() => {
      if (generation === this.generation) this.lose(0, 'no ping from the server');
    }, this.pingTimeoutMs);
  }

  private scheduleRefresh(ttlSeconds: number): void {
    clearTimeout(this.refreshTimer);
    const getToken = this.opts.getToken;
    if (!getToken) return;
    const ttl = ttlSeconds * 1000;
    const delay = ttl > 2 * REFRESH_MARGIN_MS ? ttl - REFRESH_MARGIN_MS : ttl / 2;
    const generation = this.generation;
    this.refreshTimer = setTimeout(async () => {
      try {
        const token = await getToken();
        if (generation !== this.generation) return;
        this.token = token;
        const reply = await this.call({ refresh: { token } });
        if (reply.refresh?.expires && reply.refresh.ttl !== undefined) this.scheduleRefresh(reply.refresh.ttl);
      } catch (e) {
        if (generation !== this.generation) return;
        this.emit('error', { type: 'refresh', code: e instanceof TidewireError ? e.code : 0, message: errorText(e) });
        this.refreshTimer = setTimeout(() => this.scheduleRefresh(0), REFRESH_RETRY_MS);
      }
    }, delay);
  }

  // --- commands ------------------------------------------------------------------------

  private sendSubscribe(sub: Subscription): void {
    const transport = this.transport;
    if (!transport) return;
    this.request({ subscribe: sub.request() }).then(
      (reply) => {
        if (this.subs.get(sub.channel) === sub && reply.subscribe) {
          sub.subscribed(reply.subscribe, transport.name, transport.datagrams);
        }
      },
      (e: TidewireError) => {
        if (this.subs.get(sub.channel) !== sub) return;
        if (e.code === ErrorCode.Disconnected) return; // resubscribed on the next connect
        if (e.code === ErrorCode.Timeout) {
          this.lose(0, `subscribe to ${sub.channel} timed out`);
          return;
        }
        sub.failed(e.code, e.message, e.temporary);
        if (e.temporary) {
          const generation = this.generation;
          setTimeout(() => {
            if (generation === this.generation) this.resubscribe(sub, false);
          }, this.backoff.next());
        }
      },
    );
  }

  /** Sends a command once connected (waiting up to the timeout for a connection). */
  private call(cmd: WireCommand): Promise<WireReply> {
    if (this.state === 'disconnected') {
      return Promise.reject(new TidewireError(ErrorCode.Disconnected, 'the client is disconnected (call connect() first)'));
    }
    if (!this.connected && this.queued.length >= MAX_QUEUED_CALLS) {
      return Promise.reject(new TidewireError(ErrorCode.Disconnected, 'too many calls waiting for a connection'));
    }
    return this.request(cmd);
  }

  private request(cmd: WireCommand): Promise<WireReply> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      cmd.id = id;
      const timeout = this.opts.timeout ?? DEFAULT_TIMEOUT_MS;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.queued = this.queued.filter((c) => c.id !== id);
        reject(new TidewireError(ErrorCode.Timeout, `no reply within ${timeout} ms`));
      }, timeout);
      this.pending.set(id, { resolve, reject, timer });
      if (this.connected) this.enqueue(cmd);
      else this.queued.push(cmd);
    });
  }

  /** Batches commands issued in the same task into one transport write. */
  private enqueue(cmd: WireCommand): void {
    this.outgoing.push(cmd);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      const batch = this.outgoing;
      this.outgoing = [];
      if (batch.length && this.connected) this.transport?.send(batch);
    });
  }
}
