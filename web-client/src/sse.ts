// Server-Sent Events with Centrifugo's bidirectional emulation: the connect command travels
// in the URL (`GET /connection/sse?cf_connect=<JSON>`), every reply and push arrives as one
// `data: <json>` event, and later commands are POSTed to `/emulation` as
// `{"session","node","data":"<newline-joined JSON commands>"}` naming the session and node
// from the connect result. For networks that let neither UDP nor WebSocket through.

import type { WireCommand, WireReply } from './protocol.js';
import { errorText, type Transport, type TransportEvents, type TransportFactory } from './transport.js';

/** Commands queued while an emulation request is in flight; more is a client bug (the
 * client bounds its own queue far below this). */
const MAX_QUEUED_COMMANDS = 10_000;

/** Makes SSE connections: `sseUrl` (`http://host:port/connection/sse`) and `emulationUrl`
 * (`http://host:port/emulation`). */
export function sseFactory(sseUrl: string, emulationUrl: string): TransportFactory {
  return {
    name: 'sse',
    unavailable: () =>
      typeof globalThis.EventSource !== 'function'
        ? 'EventSource is not available in this browser'
        : typeof globalThis.fetch !== 'function'
          ? 'fetch is not available in this browser'
          : null,
    create: () => new SseTransport(sseUrl, emulationUrl),
  };
}

/** One SSE session. */
export class SseTransport implements Transport {
  readonly name = 'sse';
  readonly datagrams = false;
  private source: EventSource | null = null;
  private closed = false;
  private session = '';
  private node = '';
  private queue: WireCommand[] = [];
  private posting = false;
  private events: TransportEvents | null = null;

  constructor(private readonly sseUrl: string, private readonly emulationUrl: string) {}

  open(connect: WireCommand, events: TransportEvents): Promise<void> {
    this.events = events;
    return new Promise((resolve, reject) => {
      const url = `${this.sseUrl}${this.sseUrl.includes('?') ? '&' : '?'}cf_connect=${encodeURIComponent(JSON.stringify(connect))}`;
      let source: EventSource;
      try {
        source = new EventSource(url);
      } catch (e) {
        reject(new Error(`EventSource could not be created: ${errorText(e)}`));
        return;
      }
      this.source = source;
      let opened = false;
      source.onopen = () => {
        opened = true;
        resolve();
      };
      source.onerror = () => {
        // EventSource reconnects by itself; the client decides about reconnects instead.
        source.close();
        if (!opened) {
          reject(new Error(`SSE connection to ${this.sseUrl} failed`));
          return;
        }
        this.lost('SSE stream ended');
      };
      source.onmessage = (e: MessageEvent) => {
        if (this.closed || typeof e.data !== 'string') return;
        for (const line of e.data.split('\n')) {
          if (!line.trim()) continue;
          let message: WireReply;
          try {
            message = JSON.parse(line) as WireReply;
          } catch {
            this.lost('malformed JSON from the server');
            return;
          }
          if (message.connect && message.id === connect.id) {
            this.session = message.connect.session ?? '';
            this.node = message.connect.node ?? '';
            if (!this.session) {
              this.lost('the connect result names no session for /emulation');
              return;
            }
            this.pump();
          }
          events.message(message);
          if (this.closed) return;
        }
      };
    });
  }

  private lost(reason: string, code = 0): void {
    if (this.closed) return;
    this.close();
    this.events?.close(code, reason);
  }

  send(commands: WireCommand[]): void {
    if (this.closed || commands.length === 0) return;
    if (this.queue.length + commands.length > MAX_QUEUED_COMMANDS) {
      this.lost('too many commands waiting for /emulation');
      return;
    }
    this.queue.push(...commands);
    this.pump();
  }

  /** Posts what is queued, one request at a time so the server sees commands in order. */
  private pump(): void {
    if (this.posting || !this.session || this.queue.length === 0 || this.closed) return;
    const batch = this.queue.splice(0);
    this.posting = true;
    const body = JSON.stringify({
      session: this.session,
      node: this.node,
      data: batch.map((c) => JSON.stringify(c)).join('\n'),
    });
    fetch(this.emulationUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      .then(
        (resp) => {
          this.posting = false;
          if (!resp.ok) {
            this.lost(`POST ${this.emulationUrl} answered HTTP ${resp.status}`);
            return;
          }
          this.pump();
        },
        (e) => {
          this.posting = false;
          this.lost(`POST ${this.emulationUrl} failed: ${errorText(e)}`);
        },
      );
  }

  sendDatagram(): boolean {
    return false;
  }

  close(): void {
    this.closed = true;
    this.queue = [];
    const s = this.source;
    if (!s) return;
    s.onopen = s.onmessage = s.onerror = null;
    s.close();
  }
}
