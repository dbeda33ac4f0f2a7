// Tidewire's browser SDK: `new Tidewire(endpoint, options)`, `subscribe`, `publish`,
// `history`, `presence`, `presenceStats`, connection state events. It connects over
// native WebTransport (QUIC: one stream per subscription, datagram channels), falling
// back to WebSocket, then to SSE with `POST /emulation`, and says why in the `state`
// event whenever it passes a transport over. Reconnects back off exponentially with
// jitter and recover missed publications by offset and epoch on every transport.
// No runtime dependencies; ESM.
export { Tidewire, VERSION, transportUrls } from './client.js';
export { Subscription, MAX_BUFFERED_PUBLICATIONS } from './subscription.js';
export { TidewireError } from './types.js';
export { DEFAULT_TRANSPORTS } from './transport.js';
export { ErrorCode } from './protocol.js';
export { backoffDelay } from './backoff.js';
