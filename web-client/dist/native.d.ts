import { Reader } from './postcard.js';
import type { WireCommand, WirePublication, WireReply } from './protocol.js';
/** Largest control or stream frame accepted from the server, in bytes: a bound on what
 * one connection may make the page buffer (publications are far smaller). */
export declare const MAX_FRAME_BYTES: number;
/** Command ids at or above this are the server's (RESERVED_ID_BASE in native.rs). */
export declare const RESERVED_ID_BASE: number;
/** A payload as bytes: Uint8Array as is, anything else as its JSON text. */
export declare function payloadBytes(data: unknown): Uint8Array;
/** A payload from bytes: the JSON value when the bytes are JSON text, else the bytes. */
export declare function payloadValue(bytes: Uint8Array): unknown;
/** Encodes a command's postcard body (no length prefix). `{}` becomes a Pong with id 0. */
export declare function encodeCommand(cmd: WireCommand): Uint8Array;
/** A frame: varint length, then the body. */
export declare function frame(body: Uint8Array): Uint8Array;
/** Reads a WirePublication. */
export declare function readPublication(r: Reader): WirePublication;
/** What a control-stream frame means. */
export type ControlFrame = {
    kind: 'message';
    message: WireReply;
} | {
    kind: 'notice';
    code: number;
    message: string;
};
/** Decodes one ServerFrame body. Pings become `{}`, the disconnect a disconnect push. */
export declare function decodeServerFrame(body: Uint8Array): ControlFrame;
/** Decodes a subscription stream's first frame. */
export declare function decodeStreamHeader(body: Uint8Array): {
    sub: number;
    channel: string;
};
/** Decodes a publication frame body. */
export declare function decodePublication(body: Uint8Array): WirePublication;
/** Splits a server datagram into its subscription id and publication. */
export declare function decodeDatagram(d: Uint8Array): {
    sub: number;
    pub: WirePublication;
};
/** A client datagram: varint subscription id, then the payload. */
export declare function encodeDatagram(sub: number, payload: Uint8Array): Uint8Array;
/** Collects stream chunks and splits them into frames (varint length ‖ body). */
export declare class FrameBuffer {
    private readonly limit;
    private buf;
    constructor(limit?: number);
    /** Appends bytes read from the stream. */
    push(chunk: Uint8Array): void;
    /** The next whole frame's body, or null when more bytes are needed. Throws on a frame
     * over the limit (checked from its length prefix, before the body arrives). */
    next(): Uint8Array | null;
    /** Bytes held that do not make a whole frame yet. */
    get buffered(): number;
}
