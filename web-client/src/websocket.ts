// Centrifugo JSON over WebSocket (`/connection/websocket`): each frame carries one or more
// messages joined by newlines, in both directions. Disconnects arrive as the close frame's
// code and reason.

import type { WireCommand, WireReply } from './protocol.js';
import { errorText, type Transport, type TransportEvents, type TransportFactory } from './transport.js';

/** Makes WebSocket connections to `url` (`ws://host:port/connection/websocket`). */
export function websocketFactory(url: string): TransportFactory {
  return {
    name: 'websocket',
    unavailable: () => (typeof globalThis.WebSocket === 'function' ? null : 'WebSocket is not available in this browser'),
    create: () => new WebSocketTransport(url),
  };
}

/** One WebSocket connection. */
export class WebSocketTransport implements Transport {
  readonly name = 'websocket';
  readonly datagrams = false;
  private ws: WebSocket | null = null;
  private closed = false;

  constructor(private readonly url: string) {}

  open(connect: WireCommand, events: TransportEvents): Promise<void> {
    return new Promise((resolve, reject) => {
      let ws: WebSocket;
      try {
        ws = new WebSocket(this.url);
      } catch (e) {
        reject(new Error(`WebSocket could not be created: ${errorText(e)}`));
        return;
      }
      this.ws = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        ws.send(JSON.stringify(connect));
        resolve();
      };
      ws.onerror = () => {
        if (!opened) reject(new Error(`WebSocket connection to ${this.url} failed`));
      };
      ws.onclose = (e) => {
        if (!opened) {
          reject(new Error(`WebSocket closed before opening (code ${e.code})`));
          return;
        }
        if (this.closed) return;
        this.closed = true;
        events.close(e.code, e.reason);
      };
      ws.onmessage = (e) => {
        if (this.closed) return;
        if (typeof e.data !== 'string') {
          this.fail(events, 'binary frame on a JSON connection');
          return;
        }
        for (const line of e.data.split('\n')) {
          if (!line.trim()) continue;
          let message: WireReply;
          try {
            message = JSON.parse(line) as WireReply;
          } catch {
            this.fail(events, 'malformed JSON from the server');
            return;
          }
          events.message(message);
          if (this.closed) return;
        }
      };
    });
  }

  private fail(events: TransportEvents, reason: string): void {
    this.close();
    events.close(0, reason);
  }

  send(commands: WireCommand[]): void {
    if (this.closed || !this.ws || commands.length === 0) return;
    this.ws.send(commands.map((c) => JSON.stringify(c)).join('\n'));
  }

  sendDatagram(): boolean {
    return false;
  }

  close(): void {
    this.closed = true;
    const ws = this.ws;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    try {
      ws.close();
    } catch {
      // A socket that never opened may refuse; it is dropped either way.
    }
  }
}
