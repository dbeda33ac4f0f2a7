// Tidewire's native protocol (src/protocol/native.rs in the server), translated to and from
// the Centrifugo-shaped messages of protocol.ts:
// - control stream (the first bidirectional stream, opened by the client): frames of
//   `varint length ‖ postcard body`; client → server WireCommand, server → client
//   ServerFrame (replies, pushes, pings, notices, the disconnect);
// - one unidirectional stream per subscription, opened by the server: a StreamHeader
//   frame (subscription id, channel), then one WirePublication frame per publication;
// - datagrams: server → client `varint subscription id ‖ WirePublication`,
//   client → server `varint subscription id ‖ payload` (a fire-and-forget publish).
// The enum variant indexes below are the declaration order of the Rust enums; postcard is
// not self-describing, so they must match it exactly (test/fixtures/native.json, written
// by the Rust side, checks that they do).

import { PostcardError, Reader, Writer, encodeVarint } from './postcard.js';
import type {
  WireCommand, WireConnectResult, WireInfo, WirePublication, WireReply, WireSubscribeRequest, WireSubscribeResult,
} from './protocol.js';

/** Largest control or stream frame accepted from the server, in bytes: a bound on what
 * one connection may make the page buffer (publications are far smaller). */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;

/** Command ids at or above this are the server's (RESERVED_ID_BASE in native.rs). */
export const RESERVED_ID_BASE = 2 ** 31;

/** WireCommandBody variant indexes. */
const Cmd = {
  Connect: 0, Subscribe: 1, Unsubscribe: 2, Publish: 3, Presence: 4, PresenceStats: 5, History: 6,
  Ping: 7, Send: 8, Rpc: 9, Refresh: 10, SubRefresh: 11, Pong: 12,
} as const;

/** ServerFrame variant indexes. */
const Frame = { Reply: 0, Push: 1, Ping: 2, Notice: 3, Disconnect: 4 } as const;

/** WireReplyBody variant indexes. */
const Rep = {
  Error: 0, Connect: 1, Subscribe: 2, Unsubscribe: 3, Publish: 4, Presence: 5, PresenceStats: 6,
  History: 7, Ping: 8, Rpc: 9, Refresh: 10, SubRefresh: 11,
} as const;

/** WirePush variant indexes. */
const PushKind = { Join: 0, Leave: 1, Unsubscribe: 2, Subscribe: 3, Message: 4, Refresh: 5 } as const;

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** A payload as bytes: Uint8Array as is, anything else as its JSON text. */
export function payloadBytes(data: unknown): Uint8Array {
  if (data instanceof Uint8Array) return data;
  return utf8.encode(JSON.stringify(data === undefined ? null : data));
}

/** A payload from bytes: the JSON value when the bytes are JSON text, else the bytes. */
export function payloadValue(bytes: Uint8Array): unknown {
  if (bytes.length === 0) return null;
  try {
    return JSON.parse(utf8Decoder.decode(bytes));
  } catch {
    return bytes.slice();
  }
}

function writeSubscribe(w: Writer, s: WireSubscribeRequest): void {
  w.str(s.channel).str(s.token ?? '').bool(!!s.recover).str(s.epoch ?? '').varint(s.offset ?? 0)
    .option(s.data === undefined ? undefined : payloadBytes(s.data), (w, d) => w.bytes(d))
    .bool(!!s.positioned).bool(!!s.recoverable).bool(!!s.join_leave);
}

/** Encodes a command's postcard body (no length prefix). `{}` becomes a Pong with id 0. */
export function encodeCommand(cmd: WireCommand): Uint8Array {
  const id = cmd.id ?? 0;
  if (!Number.isInteger(id) || id < 0 || id >= RESERVED_ID_BASE) throw new PostcardError(`command id ${id} out of range`);
  const w = new Writer().varint(id);
  if (cmd.connect) {
    const c = cmd.connect;
    w.varint(Cmd.Connect).str(c.token ?? '')
      .option(c.data === undefined ? undefined : payloadBytes(c.data), (w, d) => w.bytes(d))
      .varint(0) // subs: server-side subscriptions to recover (none)
      .str(c.name ?? '').str(c.version ?? '')
      .varint(0); // headers
  } else if (cmd.subscribe) {
    writeSubscribe(w.varint(Cmd.Subscribe), cmd.subscribe);
  } else if (cmd.unsubscribe) {
    w.varint(Cmd.Unsubscribe).str(cmd.unsubscribe.channel);
  } else if (cmd.publish) {
    w.varint(Cmd.Publish).str(cmd.publish.channel).bytes(payloadBytes(cmd.publish.data));
  } else if (cmd.presence) {
    w.varint(Cmd.Presence).str(cmd.presence.channel);
  } else if (cmd.presence_stats) {
    w.varint(Cmd.PresenceStats).str(cmd.presence_stats.channel);
  } else if (cmd.history) {
    const h = cmd.history;
    w.varint(Cmd.History).str(h.channel).i32(h.limit ?? 0)
      .option(h.since, (w, s) => w.varint(s.offset).str(s.epoch))
      .bool(!!h.reverse);
  } else if (cmd.ping) {
    w.varint(Cmd.Ping);
  } else if (cmd.send) {
    w.varint(Cmd.Send).bytes(payloadBytes(cmd.send.data));
  } else if (cmd.refresh) {
    w.varint(Cmd.Refresh).str(cmd.refresh.token);
  } else {
    w.varint(Cmd.Pong);
  }
  return w.finish();
}

/** A frame: varint length, then the body. */
export function frame(body: Uint8Array): Uint8Array {
  const head = encodeVarint(body.length);
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

function readInfo(r: Reader): WireInfo {
  const info: WireInfo = { user: r.str(), client: r.str() };
  const conn = r.option((r) => r.bytes());
  const chan = r.option((r) => r.bytes());
  if (conn) info.conn_info = payloadValue(conn);
  if (chan) info.chan_info = payloadValue(chan);
  return info;
}

/** Reads a WirePublication. */
export function readPublication(r: Reader): WirePublication {
  const offset = r.u64();
  const data = payloadValue(r.bytes());
  const info = r.option(readInfo);
  const tags = r.seq((r) => [r.str(), r.str()] as const);
  const delta = r.bool();
  const p: WirePublication = { data, offset };
  if (info) p.info = info;
  if (tags.length) p.tags = Object.fromEntries(tags);
  if (delta) p.delta = true;
  return p;
}

function readSubscribeResult(r: Reader): WireSubscribeResult {
  const out: WireSubscribeResult = {};
  out.expires = r.bool();
  out.ttl = r.u32();
  out.recoverable = r.bool();
  out.epoch = r.str();
  out.publications = r.seq(readPublication);
  out.recovered = r.bool();
  out.offset = r.u64();
  out.positioned = r.bool();
  const data = r.option((r) => r.bytes());
  if (data) out.data = payloadValue(data);
  out.was_recovering = r.bool();
  return out;
}

function readServerSub(r: Reader): { channel: string; result: WireSubscribeResult } {
  const channel = r.str();
  const sub = r.u32();
  const result = readSubscribeResult(r);
  result.sub = sub;
  return { channel, result };
}

function readConnectResult(r: Reader): WireConnectResult {
  const out: WireConnectResult = { client: r.str(), version: r.str(), expires: r.bool(), ttl: r.u32() };
  const data = r.option((r) => r.bytes());
  if (data) out.data = payloadValue(data);
  const subs = r.seq(readServerSub);
  if (subs.length) out.subs = Object.fromEntries(subs.map((s) => [s.channel, s.result]));
  out.ping = r.u32();
  out.pong = r.bool();
  return out;
}

function readReply(r: Reader): WireReply {
  const id = r.u32();
  const kind = r.varint();
  switch (kind) {
    case Rep.Error: {
      const code = r.u32();
      const message = r.str();
      const temporary = r.bool();
      return { id, error: temporary ? { code, message, temporary } : { code, message } };
    }
    case Rep.Connect:
      return { id, connect: readConnectResult(r) };
    case Rep.Subscribe: {
      const sub = r.u32();
      const result = readSubscribeResult(r);
      result.sub = sub;
      return { id, subscribe: result };
    }
    case Rep.Unsubscribe:
      return { id, unsubscribe: {} };
    case Rep.Publish:
      return { id, publish: {} };
    case Rep.Presence: {
      const entries = r.seq((r) => [r.str(), readInfo(r)] as const);
      return { id, presence: { presence: Object.fromEntries(entries) } };
    }
    case Rep.PresenceStats:
      return { id, presence_stats: { num_clients: r.u32(), num_users: r.u32() } };
    case Rep.History: {
      const publications = r.seq(readPublication);
      return { id, history: { publications, epoch: r.str(), offset: r.u64() } };
    }
    case Rep.Ping:
      return { id, ping: {} };
    case Rep.Rpc: {
      const data = r.option((r) => r.bytes());
      return { id, rpc: data ? { data: payloadValue(data) } : {} };
    }
    case Rep.Refresh:
      return { id, refresh: { client: r.str(), version: r.str(), expires: r.bool(), ttl: r.u32() } };
    case Rep.SubRefresh:
      r.bool();
      r.u32();
      return { id };
    default:
      throw new PostcardError(`unknown reply kind ${kind}`);
  }
}

/** What a control-stream frame means. */
export type ControlFrame =
  | { kind: 'message'; message: WireReply }
  | { kind: 'notice'; code: number; message: string };

/** Decodes one ServerFrame body. Pings become `{}`, the disconnect a disconnect push. */
export function decodeServerFrame(body: Uint8Array): ControlFrame {
  const r = new Reader(body);
  const kind = r.varint();
  switch (kind) {
    case Frame.Reply:
      return { kind: 'message', message: readReply(r) };
    case Frame.Push: {
      const push = r.varint();
      switch (push) {
        case PushKind.Join:
          return { kind: 'message', message: { push: { channel: r.str(), join: { info: readInfo(r) } } } };
        case PushKind.Leave:
          return { kind: 'message', message: { push: { channel: r.str(), leave: { info: readInfo(r) } } } };
        case PushKind.Unsubscribe:
          return { kind: 'message', message: { push: { channel: r.str(), unsubscribe: { code: r.u32(), reason: r.str() } } } };
        case PushKind.Subscribe: {
          const s = readServerSub(r);
          return { kind: 'message', message: { push: { channel: s.channel, subscribe: s.result } } };
        }
        case PushKind.Message:
          return { kind: 'message', message: { push: { message: { data: payloadValue(r.bytes()) } } } };
        case PushKind.Refresh:
          return { kind: 'message', message: { push: { refresh: { expires: r.bool(), ttl: r.u32() } } } };
        default:
          throw new PostcardError(`unknown push kind ${push}`);
      }
    }
    case Frame.Ping:
      return { kind: 'message', message: {} };
    case Frame.Notice:
      return { kind: 'notice', code: r.u32(), message: r.str() };
    case Frame.Disconnect:
      return { kind: 'message', message: { push: { disconnect: { code: r.u16(), reason: r.str() } } } };
    default:
      throw new PostcardError(`unknown server frame ${kind}`);
  }
}

/** Decodes a subscription stream's first frame. */
export function decodeStreamHeader(body: Uint8Array): { sub: number; channel: string } {
  const r = new Reader(body);
  return { sub: r.u32(), channel: r.str() };
}

/** Decodes a publication frame body. */
export function decodePublication(body: Uint8Array): WirePublication {
  return readPublication(new Reader(body));
}

/** Splits a server datagram into its subscription id and publication. */
export function decodeDatagram(d: Uint8Array): { sub: number; pub: WirePublication } {
  const r = new Reader(d);
  const sub = r.u32();
  return { sub, pub: readPublication(r) };
}

/** A client datagram: varint subscription id, then the payload. */
export function encodeDatagram(sub: number, payload: Uint8Array): Uint8Array {
  return new Writer(payload.length + 5).varint(sub).raw(payload).finish();
}

/** Collects stream chunks and splits them into frames (varint length ‖ body). */
export class FrameBuffer {
  private buf = new Uint8Array(0);

  constructor(private readonly limit = MAX_FRAME_BYTES) {}

  /** Appends bytes read from the stream. */
  push(chunk: Uint8Array): void {
    if (this.buf.length === 0) {
      this.buf = chunk.slice();
      return;
    }
    const grown = new Uint8Array(this.buf.length + chunk.length);
    grown.set(this.buf);
    grown.set(chunk, this.buf.length);
    this.buf = grown;
  }

  /** The next whole frame's body, or null when more bytes are needed. Throws on a frame
   * over the limit (checked from its length prefix, before the body arrives). */
  next(): Uint8Array | null {
    const r = new Reader(this.buf);
    let len: number;
    try {
      len = r.varint(5);
    } catch (e) {
      if (this.buf.length < 5) return null; // the length prefix itself is incomplete
      throw e;
    }
    if (len > this.limit) throw new PostcardError(`frame of ${len} bytes is over the ${this.limit}-byte limit`);
    if (r.remaining < len) return null;
    const body = this.buf.slice(r.offset, r.offset + len);
    this.buf = this.buf.slice(r.offset + len);
    return body;
  }

  /** Bytes held that do not make a whole frame yet. */
  get buffered(): number {
    return this.buf.length;
  }
}
