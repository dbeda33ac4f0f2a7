// Recovery bookkeeping for one subscription: where in the channel's history stream the
// client is (offset + epoch), and what to do with each publication that arrives.
//
// Publications of a channel with history carry increasing offsets (1, 2, 3 …) within an
// epoch. After a reconnect the client resubscribes with `recover`, its offset and epoch;
// the server returns what was missed, and live publications may overlap with it (native
// mode delivers them on a separate stream, so they can even arrive before the subscribe
// reply). Offsets make that safe: anything at or below the position is a duplicate and
// dropped; the next offset is delivered; a jump means publications were lost on the way
// (the client then resubscribes to recover them).
// Datagram channels are latest-value: older offsets are stale and dropped, jumps are fine.
/** A subscription's place in its channel's stream. */
export class StreamPosition {
    latestValue;
    /** The stream's epoch ('' until known). */
    epoch = '';
    /** Offset of the last publication delivered (or the stream top at subscribe). */
    offset = 0;
    /** Whether offset and epoch are known (the channel is recoverable). */
    known = false;
    constructor(latestValue = false) {
        this.latestValue = latestValue;
    }
    /** Where to recover from after a reconnect, or null when there is nothing to recover. */
    recoverFrom() {
        return this.known && !this.latestValue ? { offset: this.offset, epoch: this.epoch } : null;
    }
    /** Applies a subscribe result and returns the publications it carries that are to be
     * delivered, in order. A successful recovery in the same epoch delivers only what is
     * past the position; a first subscribe or a lost stream (new epoch, `recovered:
     * false`) delivers the result as it is and restarts at the stream top. */
    apply(result) {
        const pubs = result.publications ?? [];
        if (this.latestValue || !result.recoverable) {
            this.known = false;
            this.offset = 0;
            return pubs;
        }
        const epoch = result.epoch ?? '';
        // JSON leaves false fields out: no `recovered` means the recovery failed.
        const continuing = this.known && !!result.was_recovering && !!result.recovered && epoch === this.epoch;
        let out = pubs;
        if (continuing) {
            out = [];
            for (const p of pubs) {
                const offset = p.offset ?? 0;
                if (offset > this.offset) {
                    out.push(p);
                    this.offset = offset;
                }
            }
        }
        else {
            this.offset = 0;
        }
        this.epoch = epoch;
        this.offset = Math.max(this.offset, result.offset ?? 0);
        this.known = true;
        return out;
    }
    /** Decides about one live publication and, when it is delivered, advances the position. */
    check(offset) {
        if (!offset)
            return 'deliver'; // no history: nothing to order by
        if (this.latestValue) {
            if (offset <= this.offset)
                return 'stale';
            this.offset = offset;
            return 'deliver';
        }
        if (!this.known)
            return 'deliver';
        if (offset <= this.offset)
            return 'duplicate';
        if (offset > this.offset + 1)
            return 'gap';
        this.offset = offset;
        return 'deliver';
    }
}
