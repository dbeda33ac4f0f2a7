// The messages this SDK exchanges with Tidewire, shaped as Centrifugo's client protocol v2
// JSON (field names in snake_case, one field per command or result kind). The WebSocket and
// SSE transports put these objects on the wire as they are; the WebTransport transport
// translates them to and from Tidewire's native postcard messages (native.ts). Internal:
// the public API (types.ts) exposes camelCase records instead.
/** Whether a server message is a ping: no id, no push, no error, no result. */
export function isPing(reply) {
    for (const key in reply) {
        if (key !== 'id' || (reply.id ?? 0) !== 0)
            return false;
    }
    return true;
}
/** Whether a disconnect code lets the client reconnect (Centrifugo's ranges: 3500–3999
 * and 4500–4999 are terminal, everything else reconnects). */
export function reconnectAllowed(code) {
    return !((code >= 3500 && code < 4000) || (code >= 4500 && code < 5000));
}
/** Client error codes the SDK acts on (the server's protocol/codes.rs assigns them). */
export const ErrorCode = {
    /** The connection token expired: fetch a new one and reconnect. */
    TokenExpired: 109,
    /** A client timeout (SDK-side, never on the wire). */
    Timeout: 1,
    /** The client is disconnected and will not reconnect (SDK-side). */
    Disconnected: 2,
    /** The SDK was asked something it cannot do on this transport (SDK-side). */
    Unsupported: 3,
};
/** Unsubscribe codes at or above this mean "resubscribe" (Centrifugo's rule). */
export const RESUBSCRIBE_CODE_MIN = 2500;
