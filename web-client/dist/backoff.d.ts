/** Backoff settings. */
export interface BackoffOptions {
    /** Delay cap of the first retry, in ms. */
    minDelay: number;
    /** Largest delay, in ms. */
    maxDelay: number;
    /** Uniform random numbers in [0, 1) (injectable for tests). */
    random?: () => number;
}
/** The delay before retry number `attempt` (0-based): the cap doubles per attempt from
 * `minDelay` up to `maxDelay`, and the delay is drawn uniformly from the upper half of the
 * cap ("equal jitter": always some wait, never in lockstep). */
export declare function backoffDelay(attempt: number, opts: BackoffOptions): number;
/** Counts consecutive failures and hands out their delays. */
export declare class Backoff {
    private readonly opts;
    private attempt;
    constructor(opts: BackoffOptions);
    /** The delay before the next retry; counts it. */
    next(): number;
    /** Retries since the last success. */
    get attempts(): number;
    /** A success: the next failure starts from `minDelay` again. */
    reset(): void;
}
