// Tidewire's native multiplexed mode over WebTransport (`/connection/webtransport/native`):
// a postcard control stream for commands, replies and pushes; one server-opened stream
// per subscription for its publications, so a busy channel never delays another; and
// datagram channels, whose latest values arrive as QUIC datagrams. See native.ts.
//
// Development servers use a self-signed certificate that browsers accept only when the
// page pins its SHA-256 (`serverCertificateHashes`): with `devCertHash: 'auto'` it is
// fetched from the server's `GET /webtransport/cert-hash` before each connection (a 404
// there means a CA-signed certificate: no pin).

import {
  FrameBuffer, decodeDatagram, decodePublication, decodeServerFrame, decodeStreamHeader, encodeCommand, encodeDatagram,
  frame,
} from './native.js';
import type { WireCommand, WireReply } from './protocol.js';
import { errorText, type Transport, type TransportEvents, type TransportFactory } from './transport.js';

/** How to trust the server's certificate: `'auto'` fetches the pin from `certHashUrl`;
 * a hex string (64 digits) is the SHA-256 to pin; undefined trusts the browser's CAs. */
export type CertHashOption = 'auto' | string | undefined;

/** Parses 64 hex digits into 32 bytes. */
export function hexToBytes(hex: string): Uint8Array {
  const clean = hex.trim().toLowerCase().replace(/:/g, '');
  if (!/^[0-9a-f]{64}$/.test(clean)) throw new Error('a certificate hash is 64 hex digits (SHA-256)');
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Fetches the development certificate's hash from `url`; null when the server has no
 * development certificate (404: it uses a CA-signed one, which needs no pin). */
export async function fetchCertHash(url: string): Promise<Uint8Array | null> {
  let resp: Response;
  try {
    resp = await fetch(url, { cache: 'no-store' });
  } catch (e) {
    throw new Error(`cannot fetch the development certificate hash from ${url}: ${errorText(e)}`);
  }
  if (resp.status === 404) return null;
  if (!resp.ok) throw new Error(`${url} answered HTTP ${resp.status}`);
  const body = (await resp.json()) as { algorithm?: string; hash?: string };
  if (body.algorithm !== 'sha-256' || typeof body.hash !== 'string') throw new Error(`${url} sent no sha-256 hash`);
  return hexToBytes(body.hash);
}

/** Makes native WebTransport connections to `url`. */
export function webtransportFactory(url: string, certHash: CertHashOption, certHashUrl: string): TransportFactory {
  return {
    name: 'webtransport',
    unavailable: () =>
      typeof globalThis.WebTransport === 'function'
        ? null
        : 'WebTransport is not available in this browser (it needs a secure context: https, or http://localhost / 127.0.0.1)',
    create: () => new NativeTransport(url, certHash, certHashUrl),
  };
}

/** Reads a stream's frames one by one. */
class FrameReader {
  private readonly frames: FrameBuffer;

  constructor(private readonly reader: ReadableStreamDefaultReader<Uint8Array>, limit?: number) {
    this.frames = new FrameBuffer(limit);
  }

  /** The next frame's body, or null at the end of the stream. */
  async next(): Promise<Uint8Array | null> {
    for (;;) {
      const body = this.frames.next();
      if (body) return body;
      const { value, done } = await this.reader.read();
      if (done) return null;
      this.frames.push(value);
    }
  }
}

/** One native-mode WebTransport session. */
export class NativeTransport implements Transport {
  readonly name = 'webtransport';
  readonly datagrams = true;
  private wt: WebTransport | null = null;
  private writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  private datagramWriter: WritableStreamDefaultWriter<Uint8Array> | null = null;
  private closed = false;
  /** The connect command went out: from here on a loss is reported as a close. */
  private opened = false;
  private events: TransportEvents | null = null;
  /** Channels of subscribe commands waiting for their reply, by command id. */
  private readonly subscribing = new Map<number, string>();
  private readonly channelOf = new Map<number, string>();
  private readonly subOf = new Map<string, number>();
  /** Bytes waiting for the control stream, written in order. */
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly url: string,
    private readonly certHash: CertHashOption,
    private readonly certHashUrl: string,
  ) {}

  async open(connect: WireCommand, events: TransportEvents): Promise<void> {
    this.events = events;
    const options: WebTransportOptions = {};
    if (this.certHash === 'auto') {
      const hash = await fetchCertHash(this.certHashUrl);
      if (hash) options.serverCertificateHashes = [{ algorithm: 'sha-256', value: hash as BufferSource }];
    } else if (this.certHash) {
      options.serverCertificateHashes = [{ algorithm: 'sha-256', value: hexToBytes(this.certHash) as BufferSource }];
    }
    if (this.closed) throw new Error('closed');
    let wt: WebTransport;
    try {
      wt = new WebTransport(this.url, options);
    } catch (e) {
      throw new Error(`WebTransport could not be created: ${errorText(e)}`);
    }
    this.wt = wt;
    wt.closed.then(
      (info) => this.lost(info.closeCode ?? 0, info.reason || 'WebTransport session closed'),
      (e) => this.lost(0, `WebTransport session failed: ${errorText(e)}`),
    );
    try {
      await wt.ready;
    } catch (e) {
      throw new Error(`WebTransport handshake with ${this.url} failed: ${errorText(e)} (the browser console has the QUIC reason)`);
    }
    const bidi = await wt.createBidirectionalStream();
    this.writer = bidi.writable.getWriter();
    try {
      this.datagramWriter = wt.datagrams.writable.getWriter();
    } catch {
      this.datagramWriter = null;
    }
    this.write([connect]);
    this.opened = true;
    void this.readControl(new FrameReader(bidi.readable.getReader()));
    void this.acceptStreams(wt.incomingUnidirectionalStreams.getReader());
    void this.readDatagrams(wt.datagrams.readable.getReader());
  }

  private lost(code: number, reason: string): void {
    if (this.closed) return;
    this.close();
    // Before it opened, a failure is what open() rejects with.
    if (this.opened) this.events?.close(code, reason);
  }

  private deliver(message: WireReply): void {
    if (this.closed || !this.events) return;
    const id = message.id ?? 0;
    if (id !== 0 && this.subscribing.has(id)) {
      const channel = this.subscribing.get(id) as string;
      this.subscribing.delete(id);
      const sub = message.subscribe?.sub;
      if (sub !== undefined) this.bind(sub, channel);
    }
    if (message.connect?.subs) {
      for (const [channel, result] of Object.entries(message.connect.subs)) {
        if (result.sub !== undefined) this.bind(result.sub, channel);
      }
    }
    if (message.push?.subscribe?.sub !== undefined && message.push.channel) {
      this.bind(message.push.subscribe.sub, message.push.channel);
    }
    this.events.message(message);
  }

  private bind(sub: number, channel: string): void {
    this.channelOf.set(sub, channel);
    this.subOf.set(channel, sub);
  }

  private async readControl(control: FrameReader): Promise<void> {
    try {
      for (;;) {
        const body = await control.next();
        if (body === null) {
          this.lost(0, 'the server ended the control stream');
          return;
        }
        const f = decodeServerFrame(body);
        if (f.kind === 'notice') this.events?.notice(f.code, f.message);
        else this.deliver(f.message);
        if (this.closed) return;
      }
    } catch (e) {
      this.lost(0, `control stream: ${errorText(e)}`);
    }
  }

  private async acceptStreams(streams: ReadableStreamDefaultReader<ReadableStream<Uint8Array>>): Promise<void> {
    try {
      for (;;) {
        const { value, done } = await streams.read();
        if (done || this.closed) return;
        void this.readSubscriptionStream(new FrameReader(value.getReader()));
      }
    } catch {
      // The session is gone; `closed` reports why.
    }
  }

  private async readSubscriptionStream(stream: FrameReader): Promise<void> {
    try {
      const head = await stream.next();
      if (head === null) return;
      const { sub, channel } = decodeStreamHeader(head);
      this.bind(sub, channel);
      for (;;) {
        const body = await stream.next();
        if (body === null || this.closed) return;
        this.deliver({ push: { channel, pub: decodePublication(body) } });
      }
    } catch (e) {
      if (!this.closed) this.lost(0, `subscription stream: ${errorText(e)}`);
    }
  }

  private async readDatagrams(datagrams: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    try {
      for (;;) {
        const { value, done } = await datagrams.read();
        if (done || this.closed) return;
        let decoded;
        try {
          decoded = decodeDatagram(value);
        } catch {
          continue; // a damaged datagram is as good as a lost one
        }
        const channel = this.channelOf.get(decoded.sub);
        if (channel !== undefined) this.deliver({ push: { channel, pub: decoded.pub } });
      }
    } catch {
      // The session is gone; `closed` reports why.
    }
  }

  private write(commands: WireCommand[]): void {
    const writer = this.writer;
    if (!writer) return;
    for (const c of commands) {
      if (c.subscribe && c.id) this.subscribing.set(c.id, c.subscribe.channel);
      if (c.unsubscribe) {
        const sub = this.subOf.get(c.unsubscribe.channel);
        this.subOf.delete(c.unsubscribe.channel);
        if (sub !== undefined) this.channelOf.delete(sub);
      }
    }
    const parts = commands.map((c) => frame(encodeCommand(c)));
    const total = parts.reduce((n, p) => n + p.length, 0);
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.length;
    }
    this.writing = this.writing
      .then(() => writer.write(bytes))
      .catch((e) => this.lost(0, `control stream write failed: ${errorText(e)}`));
  }

  send(commands: WireCommand[]): void {
    if (this.closed || commands.length === 0) return;
    this.write(commands);
  }

  sendDatagram(channel: string, payload: Uint8Array): boolean {
    const sub = this.subOf.get(channel);
    const writer = this.datagramWriter;
    if (this.closed || sub === undefined || !writer) return false;
    const d = encodeDatagram(sub, payload);
    const max = this.wt?.datagrams.maxDatagramSize;
    if (typeof max === 'number' && d.length > max) return false;
    writer.write(d).catch(() => undefined);
    return true;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.wt?.close({ closeCode: 0, reason: 'client closed' });
    } catch {
      // Not open yet or already closed.
    }
  }
}
