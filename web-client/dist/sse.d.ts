import type { WireCommand } from './protocol.js';
import { type Transport, type TransportEvents, type TransportFactory } from './transport.js';
/** Makes SSE connections: `sseUrl` (`http://host:port/connection/sse`) and `emulationUrl`
 * (`http://host:port/emulation`). */
export declare function sseFactory(sseUrl: string, emulationUrl: string): TransportFactory;
/** One SSE session. */
export declare class SseTransport implements Transport {
    private readonly sseUrl;
    private readonly emulationUrl;
    readonly name = "sse";
    readonly datagrams = false;
    private source;
    private closed;
    private session;
    private node;
    private queue;
    private posting;
    private events;
    constructor(sseUrl: string, emulationUrl: string);
    open(connect: WireCommand, events: TransportEvents): Promise<void>;
    private lost;
    send(commands: WireCommand[]): void;
    /** Posts what is queued, one request at a time so the server sees commands in order. */
    private pump;
    sendDatagram(): boolean;
    close(): void;
}
