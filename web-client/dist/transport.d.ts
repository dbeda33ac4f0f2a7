import type { WireCommand, WireReply } from './protocol.js';
/** The transports this SDK speaks, in its default order of preference. */
export type TransportName = 'webtransport' | 'websocket' | 'sse';
/** Default order: native WebTransport (QUIC streams + datagrams), WebSocket, SSE with
 * `POST /emulation` for commands. */
export declare const DEFAULT_TRANSPORTS: readonly TransportName[];
/** What a transport reports to the client. */
export interface TransportEvents {
    /** A reply, a push, or `{}` (a ping). */
    message(message: WireReply): void;
    /** The transport closed after it had opened (not called after `close()`). */
    close(code: number, reason: string): void;
    /** A problem the server reports without closing (native mode's notices). */
    notice(code: number, message: string): void;
}
/** One connection over one transport. */
export interface Transport {
    /** Which transport this is. */
    readonly name: TransportName;
    /** Whether this connection can carry datagrams (native WebTransport). */
    readonly datagrams: boolean;
    /** Opens the connection and sends `connect` as its first message. Resolves once open;
     * rejects with an Error whose message says why the transport could not open. */
    open(connect: WireCommand, events: TransportEvents): Promise<void>;
    /** Sends commands in order (after the connect reply arrived). */
    send(commands: WireCommand[]): void;
    /** Sends a client datagram into `channel`'s subscription; false when not possible. */
    sendDatagram(channel: string, payload: Uint8Array): boolean;
    /** Closes the connection; no `close` event follows. */
    close(): void;
}
/** Makes transports of one kind. */
export interface TransportFactory {
    /** Which transport it makes. */
    readonly name: TransportName;
    /** Why this transport cannot be used here (e.g. the browser lacks it), or null. */
    unavailable(): string | null;
    /** A new, unopened connection. */
    create(): Transport;
}
/** A transport that was passed over, and why. */
export interface SkippedTransport {
    transport: TransportName;
    reason: string;
}
/** Opens the first transport of `order` that works, in order. `onSkip` hears about each
 * one passed over (unavailable here, failed to open, or timed out) before the next is
 * tried. Resolves with the open transport, or null when none opened. `cancelled` stops
 * the walk (the client was disconnected meanwhile). */
export declare function openFirst(order: readonly TransportName[], factories: Readonly<Record<TransportName, TransportFactory>>, connect: () => WireCommand, events: (transport: Transport) => TransportEvents, openTimeoutMs: number, onSkip: (skip: SkippedTransport) => void, cancelled: () => boolean): Promise<{
    transport: Transport;
    skipped: SkippedTransport[];
} | null>;
/** A transport's name as people write it. */
export declare function label(name: TransportName): string;
/** The message of anything thrown. */
export declare function errorText(e: unknown): string;
