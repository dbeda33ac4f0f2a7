import type { WirePublication, WireSubscribeResult } from './protocol.js';
/** What to do with an arriving publication. */
export type Verdict = 'deliver' | 'duplicate' | 'gap' | 'stale';
/** A subscription's place in its channel's stream. */
export declare class StreamPosition {
    private readonly latestValue;
    /** The stream's epoch ('' until known). */
    epoch: string;
    /** Offset of the last publication delivered (or the stream top at subscribe). */
    offset: number;
    /** Whether offset and epoch are known (the channel is recoverable). */
    known: boolean;
    constructor(latestValue?: boolean);
    /** Where to recover from after a reconnect, or null when there is nothing to recover. */
    recoverFrom(): {
        offset: number;
        epoch: string;
    } | null;
    /** Applies a subscribe result and returns the publications it carries that are to be
     * delivered, in order. A successful recovery in the same epoch delivers only what is
     * past the position; a first subscribe or a lost stream (new epoch, `recovered:
     * false`) delivers the result as it is and restarts at the stream top. */
    apply(result: WireSubscribeResult): WirePublication[];
    /** Decides about one live publication and, when it is delivered, advances the position. */
    check(offset: number | undefined): Verdict;
}
