// The public records of the SDK: what handlers receive and what calls resolve with.
/** A failed call: the server's error reply, or an SDK-side failure (timeout, disconnected). */
export class TidewireError extends Error {
    code;
    temporary;
    name = 'TidewireError';
    constructor(
    /** The server's error code, or the SDK's `ErrorCode`. */
    code, message, 
    /** Retrying may succeed (server-marked temporary errors). */
    temporary = false) {
        super(message);
        this.code = code;
        this.temporary = temporary;
    }
}
