import type { WireCommand } from './protocol.js';
import { type Transport, type TransportEvents, type TransportFactory } from './transport.js';
/** How to trust the server's certificate: `'auto'` fetches the pin from `certHashUrl`;
 * a hex string (64 digits) is the SHA-256 to pin; undefined trusts the browser's CAs. */
export type CertHashOption = 'auto' | string | undefined;
/** Parses 64 hex digits into 32 bytes. */
export declare function hexToBytes(hex: string): Uint8Array;
/** Fetches the development certificate's hash from `url`; null when the server has no
 * development certificate (404: it uses a CA-signed one, which needs no pin). */
export declare function fetchCertHash(url: string): Promise<Uint8Array | null>;
/** Makes native WebTransport connections to `url`. */
export declare function webtransportFactory(url: string, certHash: CertHashOption, certHashUrl: string): TransportFactory;
/** One native-mode WebTransport session. */
export declare class NativeTransport implements Transport {
    private readonly url;
    private readonly certHash;
    private readonly certHashUrl;
    readonly name = "webtransport";
    readonly datagrams = true;
    private wt;
    private writer;
    private datagramWriter;
    private closed;
    /** The connect command went out: from here on a loss is reported as a close. */
    private opened;
    private events;
    /** Channels of subscribe commands waiting for their reply, by command id. */
    private readonly subscribing;
    private readonly channelOf;
    private readonly subOf;
    /** Bytes waiting for the control stream, written in order. */
    private writing;
    constructor(url: string, certHash: CertHashOption, certHashUrl: string);
    open(connect: WireCommand, events: TransportEvents): Promise<void>;
    private lost;
    private deliver;
    private bind;
    private readControl;
    private acceptStreams;
    private readSubscriptionStream;
    private readDatagrams;
    private write;
    send(commands: WireCommand[]): void;
    sendDatagram(channel: string, payload: Uint8Array): boolean;
    close(): void;
}
