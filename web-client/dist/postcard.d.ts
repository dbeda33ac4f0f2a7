/** A message could not be decoded. */
export declare class PostcardError extends Error {
    name: string;
}
/** Growing buffer that encodes values in postcard layout. */
export declare class Writer {
    private buf;
    private len;
    constructor(capacity?: number);
    private reserve;
    /** One raw byte. */
    u8(b: number): this;
    /** An unsigned varint (u16, u32, u64, usize): a non-negative safe integer. */
    varint(n: number): this;
    /** A signed 32-bit integer (zigzag varint). */
    i32(n: number): this;
    /** A bool: one byte. */
    bool(b: boolean): this;
    /** Bytes appended as they are (no length). */
    raw(b: Uint8Array): this;
    /** A byte string: varint length, bytes. */
    bytes(b: Uint8Array): this;
    /** A string: varint length, UTF-8 bytes. */
    str(s: string): this;
    /** An Option: 0, or 1 and the value written by `write`. */
    option<T>(value: T | undefined | null, write: (w: this, v: T) => void): this;
    /** A Vec: varint count, then each item written by `write`. */
    seq<T>(items: readonly T[], write: (w: this, v: T) => void): this;
    /** The bytes written so far (a copy). */
    finish(): Uint8Array;
}
/** Reads postcard values from a byte array, checking every length against what is left. */
export declare class Reader {
    private readonly buf;
    private pos;
    constructor(buf: Uint8Array, offset?: number);
    /** Bytes not read yet. */
    get remaining(): number;
    /** Where the next read starts. */
    get offset(): number;
    /** An unsigned varint of at most `maxBytes` bytes; must fit a safe integer. */
    varint(maxBytes?: number): number;
    /** A u16. */
    u16(): number;
    /** A u32. */
    u32(): number;
    /** A u64 (as a number: offsets stay far below 2^53). */
    u64(): number;
    /** An i32 (zigzag). */
    i32(): number;
    /** A bool: 0 or 1. */
    bool(): boolean;
    /** `n` raw bytes (a view, not a copy). */
    raw(n: number): Uint8Array;
    /** A byte string (a view). */
    bytes(): Uint8Array;
    /** A UTF-8 string. */
    str(): string;
    /** An Option. */
    option<T>(read: (r: this) => T): T | undefined;
    /** A Vec. Every item takes at least one byte, which bounds the count. */
    seq<T>(read: (r: this) => T): T[];
    /** The bytes not read yet (a view). */
    rest(): Uint8Array;
    /** Fails unless every byte was read (postcard messages have no trailing bytes). */
    end(): void;
}
/** A varint on its own (a frame length, a datagram's subscription id). */
export declare function encodeVarint(n: number): Uint8Array;
