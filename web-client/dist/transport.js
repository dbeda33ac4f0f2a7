// What a transport is to the client, and the fallback walk over the configured transports.
// A transport moves Centrifugo-shaped messages (protocol.ts) and knows nothing of
// subscriptions, recovery or reconnects; the client (client.ts) does.
/** Default order: native WebTransport (QUIC streams + datagrams), WebSocket, SSE with
 * `POST /emulation` for commands. */
export const DEFAULT_TRANSPORTS = ['webtransport', 'websocket', 'sse'];
/** Opens the first transport of `order` that works, in order. `onSkip` hears about each
 * one passed over (unavailable here, failed to open, or timed out) before the next is
 * tried. Resolves with the open transport, or null when none opened. `cancelled` stops
 * the walk (the client was disconnected meanwhile). */
export async function openFirst(order, factories, connect, events, openTimeoutMs, onSkip, cancelled) {
    const skipped = [];
    const skip = (transport, reason) => {
        const s = { transport, reason };
        skipped.push(s);
        onSkip(s);
    };
    for (const name of order) {
        if (cancelled())
            return null;
        const factory = factories[name];
        const why = factory.unavailable();
        if (why !== null) {
            skip(name, why);
            continue;
        }
        let transport;
        try {
            transport = factory.create();
        }
        catch (e) {
            skip(name, errorText(e));
            continue;
        }
        let timer;
        try {
            await Promise.race([
                transport.open(connect(), events(transport)),
                new Promise((_, reject) => {
                    timer = setTimeout(() => reject(new Error(`${label(name)} did not open within ${openTimeoutMs} ms`)), openTimeoutMs);
                }),
            ]);
        }
        catch (e) {
            transport.close();
            skip(name, errorText(e));
            continue;
        }
        finally {
            clearTimeout(timer);
        }
        if (cancelled()) {
            transport.close();
            return null;
        }
        return { transport, skipped };
    }
    return null;
}
/** A transport's name as people write it. */
export function label(name) {
    return name === 'webtransport' ? 'WebTransport' : name === 'websocket' ? 'WebSocket' : 'SSE';
}
/** The message of anything thrown. */
export function errorText(e) {
    if (e instanceof Error)
        return e.message || e.name;
    return String(e);
}
