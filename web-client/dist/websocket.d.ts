import type { WireCommand } from './protocol.js';
import { type Transport, type TransportEvents, type TransportFactory } from './transport.js';
/** Makes WebSocket connections to `url` (`ws://host:port/connection/websocket`). */
export declare function websocketFactory(url: string): TransportFactory;
/** One WebSocket connection. */
export declare class WebSocketTransport implements Transport {
    private readonly url;
    readonly name = "websocket";
    readonly datagrams = false;
    private ws;
    private closed;
    constructor(url: string);
    open(connect: WireCommand, events: TransportEvents): Promise<void>;
    private fail;
    send(commands: WireCommand[]): void;
    sendDatagram(): boolean;
    close(): void;
}
