// The messages this SDK exchanges with Tidewire, shaped as Centrifugo's client protocol v2
// JSON (field names in snake_case, one field per command or result kind). The WebSocket and
// SSE transports put these objects on the wire as they are; the WebTransport transport
// translates them to and from Tidewire's native postcard messages (native.ts). Internal:
// the public API (types.ts) exposes camelCase records instead.

/** Client info as the server sends it. */
export interface WireInfo {
  user?: string;
  client?: string;
  conn_info?: unknown;
  chan_info?: unknown;
}

/** A publication as the server sends it (its channel travels beside it). */
export interface WirePublication {
  data?: unknown;
  info?: WireInfo;
  offset?: number;
  tags?: Record<string, string>;
  delta?: boolean;
}

/** A subscribe result (also a server-side subscription in a connect result or push). */
export interface WireSubscribeResult {
  expires?: boolean;
  ttl?: number;
  recoverable?: boolean;
  epoch?: string;
  publications?: WirePublication[];
  recovered?: boolean;
  offset?: number;
  positioned?: boolean;
  data?: unknown;
  was_recovering?: boolean;
  /** Native mode only: the subscription id naming its stream and datagrams. */
  sub?: number;
}

/** A connect result. */
export interface WireConnectResult {
  client?: string;
  version?: string;
  expires?: boolean;
  ttl?: number;
  data?: unknown;
  subs?: Record<string, WireSubscribeResult>;
  ping?: number;
  pong?: boolean;
  /** Emulation transports: names this session in `POST /emulation`. */
  session?: string;
  /** Emulation transports: the node holding the session. */
  node?: string;
}

/** A push: a server event that answers no command. */
export interface WirePush {
  channel?: string;
  pub?: WirePublication;
  join?: { info?: WireInfo };
  leave?: { info?: WireInfo };
  unsubscribe?: { code?: number; reason?: string };
  subscribe?: WireSubscribeResult;
  message?: { data?: unknown };
  disconnect?: { code?: number; reason?: string };
  refresh?: { expires?: boolean; ttl?: number };
  connect?: WireConnectResult;
}

/** An error reply. */
export interface WireError {
  code: number;
  message: string;
  temporary?: boolean;
}

/** Anything the server sends: a reply (with `id`), a push, or `{}` (a ping). */
export interface WireReply {
  id?: number;
  error?: WireError;
  push?: WirePush;
  connect?: WireConnectResult;
  subscribe?: WireSubscribeResult;
  unsubscribe?: Record<string, never>;
  publish?: Record<string, never>;
  presence?: { presence?: Record<string, WireInfo> };
  presence_stats?: { num_clients?: number; num_users?: number };
  history?: { publications?: WirePublication[]; epoch?: string; offset?: number };
  refresh?: { client?: string; version?: string; expires?: boolean; ttl?: number };
  ping?: Record<string, never>;
  rpc?: { data?: unknown };
}

/** A subscribe request. */
export interface WireSubscribeRequest {
  channel: string;
  token?: string;
  recover?: boolean;
  epoch?: string;
  offset?: number;
  data?: unknown;
  positioned?: boolean;
  recoverable?: boolean;
  join_leave?: boolean;
}

/** A connect request. */
export interface WireConnectRequest {
  token?: string;
  data?: unknown;
  name?: string;
  version?: string;
}

/** A history request. */
export interface WireHistoryRequest {
  channel: string;
  limit?: number;
  since?: { offset: number; epoch: string };
  reverse?: boolean;
}

/** A command; an empty one (`{}`) is the answer to a ping. */
export interface WireCommand {
  id?: number;
  connect?: WireConnectRequest;
  subscribe?: WireSubscribeRequest;
  unsubscribe?: { channel: string };
  publish?: { channel: string; data: unknown };
  presence?: { channel: string };
  presence_stats?: { channel: string };
  history?: WireHistoryRequest;
  refresh?: { token: string };
  ping?: Record<string, never>;
  send?: { data: unknown };
}

/** Whether a server message is a ping: no id, no push, no error, no result. */
export function isPing(reply: WireReply): boolean {
  for (const key in reply) {
    if (key !== 'id' || (reply.id ?? 0) !== 0) return false;
  }
  return true;
}

/** Whether a disconnect code lets the client reconnect (Centrifugo's ranges: 3500–3999
 * and 4500–4999 are terminal, everything else reconnects). */
export function reconnectAllowed(code: number): boolean {
  return !((code >= 3500 && code < 4000) || (code >= 4500 && code < 5000));
}

/** Client error codes the SDK acts on (the server's protocol/codes.rs assigns them). */
export const ErrorCode = {
  /** The connection token expired: fetch a new one and reconnect. */
  TokenExpired: 109,
  /** A client timeout (SDK-side, never on the wire). */
  Timeout: 1,
  /** The client is disconnected and will not reconnect (SDK-side). */
  Disconnected: 2,
  /** The SDK was asked something it cannot do on this transport (SDK-side). */
  Unsupported: 3,
} as const;

/** Unsubscribe codes at or above this mean "resubscribe" (Centrifugo's rule). */
export const RESUBSCRIBE_CODE_MIN = 2500;
