// The public records of the SDK: what handlers receive and what calls resolve with.

import type { TransportName, SkippedTransport } from './transport.js';

export type { TransportName, SkippedTransport };

/** Who published, joined or left. */
export interface ClientInfo {
  /** User id (from the connection token's `sub`). */
  user: string;
  /** Client (connection) id. */
  client: string;
  /** Connection info from the token, when the server has it. */
  connInfo?: unknown;
  /** Channel info from the subscription token, when the server has it. */
  chanInfo?: unknown;
}

/** One publication in a channel. */
export interface Publication {
  /** The channel. */
  channel: string;
  /** The payload: a JSON value (or, over WebTransport, bytes that are not JSON text). */
  data: unknown;
  /** Position in the channel's history stream (0 when the channel keeps no history). */
  offset: number;
  /** The publisher, for publications made by clients. */
  info?: ClientInfo;
  /** Tags set by the publisher. */
  tags?: Record<string, string>;
}

/** The connection's states. */
export type ConnectionState = 'disconnected' | 'connecting' | 'connected';

/** Emitted on every state change, and while connecting each time a transport is passed
 * over (with the reason). */
export interface StateEvent {
  /** The state entered (or still in). */
  state: ConnectionState;
  /** The transport in use (connected), being tried or just skipped (connecting). */
  transport: TransportName | null;
  /** A code: a disconnect code from the server, or 0. */
  code: number;
  /** Why, in words: "connected over WebSocket", "WebTransport skipped: …", "transport closed: …". */
  reason: string;
  /** Transports passed over during this connection attempt, each with its reason. */
  skipped: SkippedTransport[];
}

/** The `connected` event. */
export interface ConnectedEvent {
  /** The transport in use. */
  transport: TransportName;
  /** This connection's client id. */
  client: string;
  /** Transports passed over before this one, with the reasons. */
  skipped: SkippedTransport[];
  /** Whether publications of datagram channels arrive as datagrams on this connection. */
  datagrams: boolean;
}

/** The `disconnected` event. */
export interface DisconnectedEvent {
  /** The server's disconnect code (3500–3999, 4500–4999: terminal), or 0. */
  code: number;
  /** Why. */
  reason: string;
}

/** An error the SDK reports without throwing (a failed resubscribe, a server notice …). */
export interface ErrorEvent {
  /** What failed: `connect`, `subscribe`, `refresh`, `notice`, `transport`. */
  type: string;
  /** An error code (server codes, or the SDK's `ErrorCode`). */
  code: number;
  /** Message. */
  message: string;
  /** The channel, for subscription errors. */
  channel?: string;
}

/** A failed call: the server's error reply, or an SDK-side failure (timeout, disconnected). */
export class TidewireError extends Error {
  override name = 'TidewireError';

  constructor(
    /** The server's error code, or the SDK's `ErrorCode`. */
    readonly code: number,
    message: string,
    /** Retrying may succeed (server-marked temporary errors). */
    readonly temporary = false,
  ) {
    super(message);
  }
}

/** The `subscribed` event of a subscription. */
export interface SubscribedEvent {
  /** The channel. */
  channel: string;
  /** The subscription asked to recover missed publications (a resubscribe). */
  wasRecovering: boolean;
  /** Everything missed was delivered (false after a gap the history could not fill). */
  recovered: boolean;
  /** The channel keeps a history stream this subscription can recover from. */
  recoverable: boolean;
  /** Stream position after the subscribe. */
  offset: number;
  /** Stream epoch. */
  epoch: string;
  /** How publications arrive on this connection: `datagram` for datagram channels over
   * WebTransport, else `stream`. */
  delivery: 'stream' | 'datagram';
  /** The transport of the connection. */
  transport: TransportName;
}

/** The `unsubscribed` event of a subscription. */
export interface UnsubscribedEvent {
  /** The channel. */
  channel: string;
  /** Server unsubscribe code (2000 server unsubscribe …), or 0 for `unsubscribe()`. */
  code: number;
  /** Why. */
  reason: string;
}

/** History options. */
export interface HistoryOptions {
  /** How many publications (0: only the stream position; -1: as many as the server allows). */
  limit?: number;
  /** Publications after this position. */
  since?: { offset: number; epoch: string };
  /** Newest first. */
  reverse?: boolean;
}

/** A page of history. */
export interface HistoryResult {
  /** The publications, oldest first unless `reverse`. */
  publications: Publication[];
  /** The stream's current top offset. */
  offset: number;
  /** The stream's epoch. */
  epoch: string;
}

/** Who is in a channel. */
export interface PresenceResult {
  /** Client id → info. */
  clients: Record<string, ClientInfo>;
}

/** Presence counters. */
export interface PresenceStatsResult {
  /** Connections subscribed. */
  numClients: number;
  /** Distinct users among them. */
  numUsers: number;
}
