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
import { ErrorCode, isPing, reconnectAllowed, } from './protocol.js';
import { sseFactory } from './sse.js';
import { Subscription, toClientInfo, toPublication, } from './subscription.js';
import { DEFAULT_TRANSPORTS, errorText, label, openFirst, } from './transport.js';
import { TidewireError, } from './types.js';
import { webtransportFactory } from './webtransport.js';
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
/** Splits an endpoint into the transports' default URLs. */
export function transportUrls(endpoint, options = {}) {
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
export class Tidewire extends Emitter {
    /** The connection state. */
    state = 'disconnected';
    /** The transport in use while connected. */
    transportName = null;
    /** This connection's client id while connected. */
    clientId = '';
    opts;
    factories;
    order;
    backoff;
    subs = new Map();
    pending = new Map();
    token;
    transport = null;
    connected = false;
    nextId = 1;
    connectId = 0;
    /** Bumped on every connect/disconnect: callbacks of older attempts see a mismatch and stop. */
    generation = 0;
    lastTransport = null;
    skipped = [];
    queued = [];
    outgoing = [];
    flushScheduled = false;
    pong = false;
    pingTimeoutMs = 0;
    reconnectTimer;
    connectTimer;
    pingTimer;
    refreshTimer;
    /** `endpoint` is the server's HTTP address, e.g. `http://127.0.0.1:8000` (a page served
     * by Tidewire can pass `location.origin`). */
    constructor(endpoint, options = {}) {
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
        if (order.length === 0)
            throw new TypeError('options.transports names no known transport');
        this.order = [...new Set(order)];
        this.backoff = new Backoff({
            minDelay: options.minReconnectDelay ?? DEFAULT_MIN_RECONNECT_DELAY_MS,
            maxDelay: options.maxReconnectDelay ?? DEFAULT_MAX_RECONNECT_DELAY_MS,
            ...(options.random ? { random: options.random } : {}),
        });
    }
    // --- public API --------------------------------------------------------------------
    /** Connects (and reconnects after failures until `disconnect()` or a terminal code). */
    connect() {
        if (this.state !== 'disconnected')
            return;
        this.generation++;
        this.setState('connecting', null, 0, 'connect called');
        void this.attempt(this.generation);
    }
    /** Disconnects for good (until `connect()` again). Subscriptions are kept and come back
     * on the next connect. */
    disconnect() {
        if (this.state === 'disconnected')
            return;
        this.terminate(0, 'disconnect called');
    }
    /** Subscribes to `channel`. The subscription follows the connection: it is made again
     * (recovering what was missed) after every reconnect, until `unsubscribe()`. */
    subscribe(channel, options = {}) {
        if (this.subs.has(channel))
            throw new Error(`already subscribed to ${channel}`);
        const sub = new Subscription(this, channel, options);
        this.subs.set(channel, sub);
        if (this.connected)
            this.sendSubscribe(sub);
        return sub;
    }
    /** The subscription of `channel`, if any. */
    getSubscription(channel) {
        return this.subs.get(channel);
    }
    /** Publishes `data` (a JSON value; bytes only over WebTransport) into `channel`. */
    async publish(channel, data) {
        if (data instanceof Uint8Array && this.connected && this.transport && !this.transport.datagrams) {
            throw new TidewireError(ErrorCode.Unsupported, `binary data needs WebTransport; this connection uses ${this.transportName}`);
        }
        await this.call({ publish: { channel, data } });
    }
    /** Sends `data` as one QUIC datagram into `channel` (a datagram channel this client is
     * subscribed to over WebTransport): fire-and-forget, may be lost. Returns false when it
     * could not be sent that way (another transport, too large, not subscribed). */
    sendDatagram(channel, data) {
        if (!this.connected || !this.transport)
            return false;
        return this.transport.sendDatagram(channel, payloadBytes(data));
    }
    /** Reads a channel's history. */
    async history(channel, options = {}) {
        const req = { channel, limit: options.limit ?? 0 };
        if (options.since)
            req.since = options.since;
        if (options.reverse)
            req.reverse = true;
        const reply = await this.call({ history: req });
        const h = reply.history ?? {};
        return {
            publications: (h.publications ?? []).map((p) => toPublication(channel, p)),
            offset: h.offset ?? 0,
            epoch: h.epoch ?? '',
        };
    }
    /** Who is subscribed to a channel. */
    async presence(channel) {
        const reply = await this.call({ presence: { channel } });
        const clients = {};
        for (const [id, info] of Object.entries(reply.presence?.presence ?? {}))
            clients[id] = toClientInfo(info);
        return { clients };
    }
    /** How many are subscribed to a channel. */
    async presenceStats(channel) {
        const reply = await this.call({ presence_stats: { channel } });
        return { numClients: reply.presence_stats?.num_clients ?? 0, numUsers: reply.presence_stats?.num_users ?? 0 };
    }
    // --- what subscriptions call (SubscriptionHost in subscription.ts) ----------------
    /** @internal */
    resubscribe(sub, stillSubscribed) {
        if (!this.connected || this.subs.get(sub.channel) !== sub)
            return;
        if (stillSubscribed) {
            this.call({ unsubscribe: { channel: sub.channel } }).catch(() => undefined);
        }
        this.sendSubscribe(sub);
    }
    /** @internal */
    remove(sub) {
        if (this.subs.get(sub.channel) !== sub)
            return;
        this.subs.delete(sub.channel);
        if (this.connected) {
            this.call({ unsubscribe: { channel: sub.channel } }).catch(() => undefined);
        }
    }
    // --- connecting ----------------------------------------------------------------------
    log(message) {
        if (this.opts.debug)
            console.log(`[tidewire] ${message}`);
    }
    setState(state, transport, code, reason) {
        const changed = this.state !== state;
        this.state = state;
        const event = { state, transport, code, reason, skipped: [...this.skipped] };
        this.log(`${state}${transport ? ` (${transport})` : ''}: ${reason}`);
        this.emit('state', event);
        if (changed && state === 'connecting')
            this.emit('connecting', event);
    }
    /** Transports in the order to try: the one that worked last first, then the rest in
     * the configured order. */
    transportOrder() {
        const last = this.lastTransport;
        if (!last || !this.order.includes(last))
            return this.order;
        return [last, ...this.order.filter((t) => t !== last)];
    }
    async attempt(generation) {
        if (generation !== this.generation)
            return;
        this.skipped = [];
        if (!this.token && this.opts.getToken) {
            try {
                this.token = await this.opts.getToken();
            }
            catch (e) {
                if (generation === this.generation)
                    this.retry(0, `getToken failed: ${errorText(e)}`);
                return;
            }
            if (generation !== this.generation)
                return;
        }
        const opened = await openFirst(this.transportOrder(), this.factories, () => {
            this.connectId = this.nextId++;
            const connect = { name: CLIENT_NAME, version: VERSION };
            if (this.token)
                connect.token = this.token;
            if (this.opts.data !== undefined)
                connect.data = this.opts.data;
            return { id: this.connectId, connect };
        }, (t) => {
            this.transport = t;
            this.setState('connecting', t.name, 0, `trying ${label(t.name)}`);
            return this.eventsFor(t, generation);
        }, this.opts.openTimeout ?? DEFAULT_OPEN_TIMEOUT_MS, (skip) => {
            this.skipped.push(skip);
            this.setState('connecting', skip.transport, 0, `${label(skip.transport)} skipped: ${skip.reason}`);
        }, () => generation !== this.generation);
        if (generation !== this.generation)
            return;
        if (!opened) {
            this.transport = null;
            const why = this.skipped.map((s) => `${label(s.transport)}: ${s.reason}`).join('; ');
            this.retry(0, `no transport could connect (${why})`);
            return;
        }
        this.transport = opened.transport;
        this.connectTimer = setTimeout(() => {
            if (generation === this.generation && !this.connected)
                this.lose(0, 'no connect reply in time');
        }, this.opts.timeout ?? DEFAULT_TIMEOUT_MS);
    }
    eventsFor(t, generation) {
        const current = () => generation === this.generation && this.transport === t;
        return {
            message: (m) => {
                if (current())
                    this.handleMessage(m);
            },
            close: (code, reason) => {
                if (current())
                    this.lose(code, reason ? `transport closed: ${reason}` : 'transport closed');
            },
            notice: (code, message) => {
                if (current())
                    this.emit('error', { type: 'notice', code, message });
            },
        };
    }
    /** Schedules the next attempt after a backoff delay. */
    retry(code, reason) {
        this.clearTimers();
        const delay = this.backoff.next();
        this.setState('connecting', null, code, `${reason}; reconnecting in ${delay} ms`);
        const generation = this.generation;
        this.reconnectTimer = setTimeout(() => void this.attempt(generation), delay);
    }
    /** The connection is gone: reconnect unless the code says not to. */
    lose(code, reason) {
        const transport = this.transport;
        this.transport = null;
        transport?.close();
        this.dropConnection();
        if (!reconnectAllowed(code)) {
            this.terminate(code, reason);
            return;
        }
        if (code === 3005 && this.opts.getToken)
            this.token = ''; // connection expired: fetch a new token
        this.generation++;
        this.retry(code, reason);
    }
    /** Stops for good. */
    terminate(code, reason) {
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
    dropConnection() {
        const wasConnected = this.connected;
        this.connected = false;
        this.transportName = null;
        this.clientId = '';
        this.outgoing = [];
        this.clearTimers();
        // Calls already sent get no reply on a new connection; queued ones wait for it.
        for (const [id, p] of this.pending) {
            if (this.queued.some((c) => c.id === id))
                continue;
            this.pending.delete(id);
            clearTimeout(p.timer);
            p.reject(new TidewireError(ErrorCode.Disconnected, 'the connection closed before the reply'));
        }
        if (wasConnected)
            for (const sub of this.subs.values())
                sub.lost();
    }
    clearTimers() {
        clearTimeout(this.reconnectTimer);
        clearTimeout(this.connectTimer);
        clearTimeout(this.pingTimer);
        clearTimeout(this.refreshTimer);
    }
    // --- messages ------------------------------------------------------------------------
    handleMessage(m) {
        this.armPingTimer();
        if (isPing(m)) {
            if (this.connected && this.pong)
                this.transport?.send([{}]);
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
                if (m.error)
                    p.reject(new TidewireError(m.error.code, m.error.message, !!m.error.temporary));
                else
                    p.resolve(m);
            }
            return;
        }
        if (m.push)
            this.handlePush(m.push);
    }
    handleConnectReply(m) {
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
            }
            else if (m.error?.temporary) {
                this.generation++;
                this.retry(code, `connect failed: ${message}`);
            }
            else {
                this.terminate(code, `connect failed: ${message}`);
            }
            return;
        }
        const result = m.connect;
        const t = this.transport;
        if (!t)
            return;
        this.connected = true;
        this.transportName = t.name;
        this.lastTransport = t.name;
        this.clientId = result.client ?? '';
        this.pong = !!result.pong;
        this.pingTimeoutMs = result.ping ? result.ping * 1000 + MAX_SERVER_PING_DELAY_MS : 0;
        this.backoff.reset();
        this.armPingTimer();
        if (result.expires && result.ttl !== undefined)
            this.scheduleRefresh(result.ttl);
        const skipped = [...this.skipped];
        const extra = skipped.length ? ` (after skipping ${skipped.map((s) => label(s.transport)).join(', ')})` : '';
        this.setState('connected', t.name, 0, `connected over ${label(t.name)}${extra}`);
        this.emit('connected', { transport: t.name, client: this.clientId, skipped, datagrams: t.datagrams });
        if (!this.connected || this.transport !== t)
            return; // a handler disconnected
        for (const sub of this.subs.values())
            this.sendSubscribe(sub);
        const queued = this.queued;
        this.queued = [];
        for (const c of queued)
            this.enqueue(c);
    }
    handlePush(push) {
        const channel = push.channel ?? '';
        const sub = channel ? this.subs.get(channel) : undefined;
        if (push.disconnect) {
            this.lose(push.disconnect.code ?? 0, push.disconnect.reason || 'disconnected by the server');
        }
        else if (push.pub) {
            if (sub)
                sub.publication(push.pub);
            else if (channel)
                this.emit('publication', toPublication(channel, push.pub));
        }
        else if (push.join) {
            sub?.joined(push.join.info);
        }
        else if (push.leave) {
            sub?.left(push.leave.info);
        }
        else if (push.unsubscribe) {
            sub?.unsubscribedByServer(push.unsubscribe.code ?? 0, push.unsubscribe.reason ?? '');
        }
        else if (push.message) {
            this.emit('message', push.message.data);
        }
    }
    armPingTimer() {
        clearTimeout(this.pingTimer);
        if (!this.connected || this.pingTimeoutMs <= 0)
            return;
        const generation = this.generation;
        this.pingTimer = setTimeout(() => {
            if (generation === this.generation)
                this.lose(0, 'no ping from the server');
        }, this.pingTimeoutMs);
    }
    scheduleRefresh(ttlSeconds) {
        clearTimeout(this.refreshTimer);
        const getToken = this.opts.getToken;
        if (!getToken)
            return;
        const ttl = ttlSeconds * 1000;
        const delay = ttl > 2 * REFRESH_MARGIN_MS ? ttl - REFRESH_MARGIN_MS : ttl / 2;
        const generation = this.generation;
        this.refreshTimer = setTimeout(async () => {
            try {
                const token = await getToken();
                if (generation !== this.generation)
                    return;
                this.token = token;
                const reply = await this.call({ refresh: { token } });
                if (reply.refresh?.expires && reply.refresh.ttl !== undefined)
                    this.scheduleRefresh(reply.refresh.ttl);
            }
            catch (e) {
                if (generation !== this.generation)
                    return;
                this.emit('error', { type: 'refresh', code: e instanceof TidewireError ? e.code : 0, message: errorText(e) });
                this.refreshTimer = setTimeout(() => this.scheduleRefresh(0), REFRESH_RETRY_MS);
            }
        }, delay);
    }
    // --- commands ------------------------------------------------------------------------
    sendSubscribe(sub) {
        const transport = this.transport;
        if (!transport)
            return;
        this.request({ subscribe: sub.request() }).then((reply) => {
            if (this.subs.get(sub.channel) === sub && reply.subscribe) {
                sub.subscribed(reply.subscribe, transport.name, transport.datagrams);
            }
        }, (e) => {
            if (this.subs.get(sub.channel) !== sub)
                return;
            if (e.code === ErrorCode.Disconnected)
                return; // resubscribed on the next connect
            if (e.code === ErrorCode.Timeout) {
                this.lose(0, `subscribe to ${sub.channel} timed out`);
                return;
            }
            sub.failed(e.code, e.message, e.temporary);
            if (e.temporary) {
                const generation = this.generation;
                setTimeout(() => {
                    if (generation === this.generation)
                        this.resubscribe(sub, false);
                }, this.backoff.next());
            }
        });
    }
    /** Sends a command once connected (waiting up to the timeout for a connection). */
    call(cmd) {
        if (this.state === 'disconnected') {
            return Promise.reject(new TidewireError(ErrorCode.Disconnected, 'the client is disconnected (call connect() first)'));
        }
        if (!this.connected && this.queued.length >= MAX_QUEUED_CALLS) {
            return Promise.reject(new TidewireError(ErrorCode.Disconnected, 'too many calls waiting for a connection'));
        }
        return this.request(cmd);
    }
    request(cmd) {
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
            if (this.connected)
                this.enqueue(cmd);
            else
                this.queued.push(cmd);
        });
    }
    /** Batches commands issued in the same task into one transport write. */
    enqueue(cmd) {
        this.outgoing.push(cmd);
        if (this.flushScheduled)
            return;
        this.flushScheduled = true;
        queueMicrotask(() => {
            this.flushScheduled = false;
            const batch = this.outgoing;
            this.outgoing = [];
            if (batch.length && this.connected)
                this.transport?.send(batch);
        });
    }
}
