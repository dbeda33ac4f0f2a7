import { Emitter } from './emitter.js';
import { Subscription, type SubscribeOptions } from './subscription.js';
import { type TransportName } from './transport.js';
import { type ConnectedEvent, type ConnectionState, type DisconnectedEvent, type ErrorEvent, type HistoryOptions, type HistoryResult, type PresenceResult, type PresenceStatsResult, type Publication, type StateEvent } from './types.js';
import { type CertHashOption } from './webtransport.js';
/** SDK version sent in `connect`. */
export declare const VERSION = "0.1.0";
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
/** Splits an endpoint into the transports' default URLs. */
export declare function transportUrls(endpoint: string, options?: TidewireOptions): Record<'webtransport' | 'websocket' | 'sse' | 'emulation' | 'certHash', string>;
/** A connection to a Tidewire server and its subscriptions. */
export declare class Tidewire extends Emitter<ClientEvents> {
    /** The connection state. */
    state: ConnectionState;
    /** The transport in use while connected. */
    transportName: TransportName | null;
    /** This connection's client id while connected. */
    clientId: string;
    private readonly opts;
    private readonly factories;
    private readonly order;
    private readonly backoff;
    private readonly subs;
    private readonly pending;
    private token;
    private transport;
    private connected;
    private nextId;
    private connectId;
    /** Bumped on every connect/disconnect: callbacks of older attempts see a mismatch and stop. */
    private generation;
    private lastTransport;
    private skipped;
    private queued;
    private outgoing;
    private flushScheduled;
    private pong;
    private pingTimeoutMs;
    private reconnectTimer;
    private connectTimer;
    private pingTimer;
    private refreshTimer;
    /** `endpoint` is the server's HTTP address, e.g. `http://127.0.0.1:8000` (a page served
     * by Tidewire can pass `location.origin`). */
    constructor(endpoint: string, options?: TidewireOptions);
    /** Connects (and reconnects after failures until `disconnect()` or a terminal code). */
    connect(): void;
    /** Disconnects for good (until `connect()` again). Subscriptions are kept and come back
     * on the next connect. */
    disconnect(): void;
    /** Subscribes to `channel`. The subscription follows the connection: it is made again
     * (recovering what was missed) after every reconnect, until `unsubscribe()`. */
    subscribe(channel: string, options?: SubscribeOptions): Subscription;
    /** The subscription of `channel`, if any. */
    getSubscription(channel: string): Subscription | undefined;
    /** Publishes `data` (a JSON value; bytes only over WebTransport) into `channel`. */
    publish(channel: string, data: unknown): Promise<void>;
    /** Sends `data` as one QUIC datagram into `channel` (a datagram channel this client is
     * subscribed to over WebTransport): fire-and-forget, may be lost. Returns false when it
     * could not be sent that way (another transport, too large, not subscribed). */
    sendDatagram(channel: string, data: unknown): boolean;
    /** Reads a channel's history. */
    history(channel: string, options?: HistoryOptions): Promise<HistoryResult>;
    /** Who is subscribed to a channel. */
    presence(channel: string): Promise<PresenceResult>;
    /** How many are subscribed to a channel. */
    presenceStats(channel: string): Promise<PresenceStatsResult>;
    private log;
    private setState;
    /** Transports in the order to try: the one that worked last first, then the rest in
     * the configured order. */
    private transportOrder;
    private attempt;
    private eventsFor;
    /** Schedules the next attempt after a backoff delay. */
    private retry;
    /** The connection is gone: reconnect unless the code says not to. */
    private lose;
    /** Stops for good. */
    private terminate;
    /** Forgets everything tied to the connection that just ended. */
    private dropConnection;
    private clearTimers;
    private handleMessage;
    private handleConnectReply;
    private handlePush;
    private armPingTimer;
    private scheduleRefresh;
    private sendSubscribe;
    /** Sends a command once connected (waiting up to the timeout for a connection). */
    private call;
    private request;
    /** Batches commands issued in the same task into one transport write. */
    private enqueue;
}
