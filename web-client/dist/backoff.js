// Reconnect delays: exponential growth with jitter, so that many clients dropped by the
// same server restart do not all come back in the same instant.
/** The delay before retry number `attempt` (0-based): the cap doubles per attempt from
 * `minDelay` up to `maxDelay`, and the delay is drawn uniformly from the upper half of the
 * cap ("equal jitter": always some wait, never in lockstep). */
export function backoffDelay(attempt, opts) {
    const random = opts.random ?? Math.random;
    // 2^30 already dwarfs any sane maxDelay; the bound keeps the power finite.
    const cap = Math.min(opts.maxDelay, opts.minDelay * 2 ** Math.min(Math.max(attempt, 0), 30));
    return Math.floor(cap / 2 + random() * (cap / 2));
}
/** Counts consecutive failures and hands out their delays. */
export class Backoff {
    opts;
    attempt = 0;
    constructor(opts) {
        this.opts = opts;
    }
    /** The delay before the next retry; counts it. */
    next() {
        return backoffDelay(this.attempt++, this.opts);
    }
    /** Retries since the last success. */
    get attempts() {
        return this.attempt;
    }
    /** A success: the next failure starts from `minDelay` again. */
    reset() {
        this.attempt = 0;
    }
}
