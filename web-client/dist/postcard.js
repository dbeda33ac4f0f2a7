// The subset of postcard (the Rust serde format of Tidewire's native protocol) this SDK
// needs, laid out exactly as serde + postcard 1.x do:
// - unsigned integers (u16, u32, u64, usize) are LEB128 varints, at most 3/5/10 bytes;
// - i32 is a zigzag-encoded varint;
// - bool is one byte, 0 or 1 (anything else is an error);
// - strings and byte strings are a varint length, then the bytes (strings UTF-8);
// - Option is 0 (None) or 1 followed by the value;
// - a Vec or a map is a varint count, then the items; tuples and structs are their fields
//   in order with nothing between; an enum is its variant index as a varint, then the
//   variant's fields.
// Decoding never trusts a length: every read is checked against the bytes that are there,
// so a malformed message is a PostcardError, never a huge allocation or a hang.
/** A message could not be decoded. */
export class PostcardError extends Error {
    name = 'PostcardError';
}
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });
/** Growing buffer that encodes values in postcard layout. */
export class Writer {
    buf;
    len = 0;
    constructor(capacity = 64) {
        this.buf = new Uint8Array(capacity);
    }
    reserve(n) {
        if (this.len + n <= this.buf.length)
            return;
        let size = this.buf.length * 2;
        while (size < this.len + n)
            size *= 2;
        const grown = new Uint8Array(size);
        grown.set(this.buf.subarray(0, this.len));
        this.buf = grown;
    }
    /** One raw byte. */
    u8(b) {
        this.reserve(1);
        this.buf[this.len++] = b & 0xff;
        return this;
    }
    /** An unsigned varint (u16, u32, u64, usize): a non-negative safe integer. */
    varint(n) {
        if (!Number.isSafeInteger(n) || n < 0)
            throw new PostcardError(`not an unsigned integer: ${n}`);
        this.reserve(10);
        // Division instead of bit shifts: JavaScript shifts work on 32 bits, offsets need 53.
        while (n >= 0x80) {
            this.buf[this.len++] = (n % 0x80) | 0x80;
            n = Math.floor(n / 0x80);
        }
        this.buf[this.len++] = n;
        return this;
    }
    /** A signed 32-bit integer (zigzag varint). */
    i32(n) {
        if (!Number.isInteger(n) || n < -0x80000000 || n > 0x7fffffff)
            throw new PostcardError(`not an i32: ${n}`);
        return this.varint(n >= 0 ? n * 2 : -n * 2 - 1);
    }
    /** A bool: one byte. */
    bool(b) {
        return this.u8(b ? 1 : 0);
    }
    /** Bytes appended as they are (no length). */
    raw(b) {
        this.reserve(b.length);
        this.buf.set(b, this.len);
        this.len += b.length;
        return this;
    }
    /** A byte string: varint length, bytes. */
    bytes(b) {
        return this.varint(b.length).raw(b);
    }
    /** A string: varint length, UTF-8 bytes. */
    str(s) {
        return this.bytes(encoder.encode(s));
    }
    /** An Option: 0, or 1 and the value written by `write`. */
    option(value, write) {
        if (value === undefined || value === null)
            return this.u8(0);
        this.u8(1);
        write(this, value);
        return this;
    }
    /** A Vec: varint count, then each item written by `write`. */
    seq(items, write) {
        this.varint(items.length);
        for (const item of items)
            write(this, item);
        return this;
    }
    /** The bytes written so far (a copy). */
    finish() {
        return this.buf.slice(0, this.len);
    }
}
/** Reads postcard values from a byte array, checking every length against what is left. */
export class Reader {
    buf;
    pos;
    constructor(buf, offset = 0) {
        this.buf = buf;
        this.pos = offset;
    }
    /** Bytes not read yet. */
    get remaining() {
        return this.buf.length - this.pos;
    }
    /** Where the next read starts. */
    get offset() {
        return this.pos;
    }
    /** An unsigned varint of at most `maxBytes` bytes; must fit a safe integer. */
    varint(maxBytes = 10) {
        let value = 0;
        let scale = 1;
        for (let i = 0; i < maxBytes; i++) {
            if (this.pos >= this.buf.length)
                throw new PostcardError('truncated varint');
            const b = this.buf[this.pos++];
            value += (b & 0x7f) * scale;
            if ((b & 0x80) === 0) {
                if (!Number.isSafeInteger(value))
                    throw new PostcardError('integer beyond 2^53');
                return value;
            }
            scale *= 0x80;
        }
        throw new PostcardError('varint too long');
    }
    /** A u16. */
    u16() {
        const v = this.varint(3);
        if (v > 0xffff)
            throw new PostcardError('u16 out of range');
        return v;
    }
    /** A u32. */
    u32() {
        const v = this.varint(5);
        if (v > 0xffffffff)
            throw new PostcardError('u32 out of range');
        return v;
    }
    /** A u64 (as a number: offsets stay far below 2^53). */
    u64() {
        return this.varint(10);
    }
    /** An i32 (zigzag). */
    i32() {
        const z = this.u32();
        return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
    }
    /** A bool: 0 or 1. */
    bool() {
        if (this.pos >= this.buf.length)
            throw new PostcardError('truncated bool');
        const b = this.buf[this.pos++];
        if (b === 0)
            return false;
        if (b === 1)
            return true;
        throw new PostcardError(`invalid bool ${b}`);
    }
    /** `n` raw bytes (a view, not a copy). */
    raw(n) {
        if (n > this.remaining)
            throw new PostcardError('truncated bytes');
        const out = this.buf.subarray(this.pos, this.pos + n);
        this.pos += n;
        return out;
    }
    /** A byte string (a view). */
    bytes() {
        return this.raw(this.varint());
    }
    /** A UTF-8 string. */
    str() {
        try {
            return decoder.decode(this.bytes());
        }
        catch (e) {
            if (e instanceof PostcardError)
                throw e;
            throw new PostcardError('invalid UTF-8 in a string');
        }
    }
    /** An Option. */
    option(read) {
        if (this.pos >= this.buf.length)
            throw new PostcardError('truncated option');
        const tag = this.buf[this.pos++];
        if (tag === 0)
            return undefined;
        if (tag === 1)
            return read(this);
        throw new PostcardError(`invalid option tag ${tag}`);
    }
    /** A Vec. Every item takes at least one byte, which bounds the count. */
    seq(read) {
        const n = this.varint();
        if (n > this.remaining)
            throw new PostcardError('sequence longer than the message');
        const out = [];
        for (let i = 0; i < n; i++)
            out.push(read(this));
        return out;
    }
    /** The bytes not read yet (a view). */
    rest() {
        const out = this.buf.subarray(this.pos);
        this.pos = this.buf.length;
        return out;
    }
    /** Fails unless every byte was read (postcard messages have no trailing bytes). */
    end() {
        if (this.remaining !== 0)
            throw new PostcardError(`${this.remaining} trailing bytes`);
    }
}
/** A varint on its own (a frame length, a datagram's subscription id). */
export function encodeVarint(n) {
    return new Writer(10).varint(n).finish();
}
