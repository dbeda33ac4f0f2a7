//! The recovery decision: what a subscribe reply says about the client's place in a
//! channel's stream, given the namespace options, what the client sent and what the
//! stream holds. Pure functions, no engine: `subscribe.rs` reads the stream, these decide.
//!
//! Centrifugo's table (centrifuge `subscribeCmd`, `isStreamRecovered`, `isCacheRecovered`),
//! row by row; every row is a unit test below. "recoverable" is `force_recovery`, or
//! `allow_recovery` with the client's `recoverable: true`; "positioned" is recoverable, or
//! `force_positioning`, or `allow_positioning` with the client's `positioned: true`; both
//! need history. "recovering" is recoverable and (`recover: true`, or `auto_cache_recover`
//! in cache mode). An empty epoch in the request means *any epoch*: it matches the stream's
//! (as in the API's `history` with `since`), so an SDK that loaded its state through
//! `getState`/`get_state` may recover from `{offset, epoch: ""}`.
//!
//! | # | options | request | stream | reply |
//! |---|---|---|---|---|
//! | 1 | not positioned | anything | – | no position; `was_recovering` = `recover` |
//! | 2 | positioned, not recoverable | anything | top T | `positioned`, offset/epoch of T, `recovered: false` |
//! | 3 | recoverable | `recover: false` | top T | `recoverable`, `positioned`, T, `recovered: false`, no publications |
//! | 4 | recoverable, stream mode | `recover`, offset O, epoch = T's or empty | O = T | `recovered: true`, no publications |
//! | 5 | recoverable, stream mode | `recover`, O, epoch = T's or empty | history holds O+1 … T, at most `recovery_max_publication_limit` | `recovered: true`, publications O+1 … T |
//! | 6 | recoverable, stream mode | `recover`, O, epoch = T's or empty | O+1 no longer in history, or more than the limit missed | `recovered: false`, no publications |
//! | 7 | recoverable, stream mode | `recover`, O > T | – | `recovered: false` |
//! | 8 | recoverable, stream mode | `recover`, another epoch | – | `recovered: false`, the stream's T |
//! | 9 | recoverable, cache mode | `recover`, O = T > 0 and T's epoch | latest L | `recovered: true`, no publications (the client has L) |
//! | 10 | recoverable, cache mode | `recover`, anything else (behind, 0, another or empty epoch) | latest L | `recovered: true`, publication L |
//! | 11 | recoverable, cache mode | `recover`, O = T > 0 and T's epoch | empty | `recovered: true` |
//! | 12 | recoverable, cache mode | `recover`, anything else | empty | `recovered: false` |
//! | 13 | recoverable, cache mode, `auto_cache_recover` | `recover: false` | | as rows 9–12 with O = 0 (a new subscriber gets L), `was_recovering: false` |
//! | 14 | recovering with `flag` bit 2 (`getState` SDKs) | | any row above with `recovered: false` | error 112 instead of the reply |
//!
//! The reply's offset is the stream top T (Centrifugo sends the request's offset on
//! success and lets the publications move the client to T; the SDKs end at T either way).

use crate::protocol::{Publication, StreamPosition};

/// `SubscribeRequest.flag` bit asking for error 112 instead of `recovered: false`.
pub(super) const FLAG_REJECT_UNRECOVERED: i64 = 2;

/// Whether the client's epoch names the stream at `top`: equal, or empty (any epoch).
pub(super) fn same_epoch(asked: &str, top: &StreamPosition) -> bool {
    asked.is_empty() || asked == top.epoch
}

/// Rows 4–8: whether publications read after `offset` (`missed`, oldest first, at most
/// `limit + 1` of them) bring a client at `offset`/`epoch` to the stream's `top`.
pub(super) fn stream_recovered(missed: &[std::sync::Arc<Publication>], top: &StreamPosition, offset: u64, epoch: &str, limit: usize) -> bool {
    if !same_epoch(epoch, top) || missed.len() > limit {
        return false;
    }
    match (missed.first(), missed.last()) {
        (Some(first), Some(last)) => offset.checked_add(1) == Some(first.offset) && last.offset == top.offset,
        _ => top.offset == offset,
    }
}

/// Rows 9–12: given the channel's latest publication, whether a cache-mode client at
/// `offset`/`epoch` is recovered, and whether the latest publication goes in the reply.
pub(super) fn cache_recovered(latest: Option<&Publication>, top: &StreamPosition, offset: u64, epoch: &str) -> (bool, bool) {
    let has_latest = offset > 0 && offset == top.offset && epoch == top.epoch;
    match latest {
        None => (has_latest, false),
        Some(l) => {
            let recovered = l.offset == top.offset;
            (recovered, recovered && !has_latest)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn top(offset: u64) -> StreamPosition {
        StreamPosition { offset, epoch: "e1".into() }
    }

    fn pubs(offsets: std::ops::RangeInclusive<u64>) -> Vec<Arc<Publication>> {
        offsets.map(|offset| Arc::new(Publication { offset, ..Default::default() })).collect()
    }

    #[test]
    fn row_4_client_at_the_top_is_recovered_with_nothing() {
        assert!(stream_recovered(&[], &top(5), 5, "e1", 300));
        assert!(stream_recovered(&[], &top(0), 0, "", 300), "a fresh stream, any epoch");
    }

    #[test]
    fn row_5_missed_publications_in_history_are_recovered() {
        assert!(stream_recovered(&pubs(3..=5), &top(5), 2, "e1", 300));
        assert!(stream_recovered(&pubs(1..=5), &top(5), 0, "", 300), "get_state position: offset 0, any epoch");
        assert!(stream_recovered(&pubs(1..=3), &top(3), 0, "", 3), "exactly the limit");
    }

    #[test]
    fn row_6_gone_from_history_or_over_the_limit_is_not() {
        assert!(!stream_recovered(&pubs(4..=5), &top(5), 2, "e1", 300), "3 expired");
        assert!(!stream_recovered(&pubs(1..=4), &top(4), 0, "", 3), "one more than the limit");
        assert!(!stream_recovered(&[], &top(5), 2, "e1", 300), "all expired");
        assert!(!stream_recovered(&pubs(3..=4), &top(5), 2, "e1", 300), "the read stopped short of the top");
    }

    #[test]
    fn row_7_an_offset_beyond_the_top_is_not() {
        assert!(!stream_recovered(&[], &top(5), 9, "e1", 300));
    }

    #[test]
    fn row_8_another_epoch_is_not() {
        assert!(!stream_recovered(&pubs(3..=5), &top(5), 2, "e0", 300));
        assert!(!stream_recovered(&[], &top(5), 5, "e0", 300));
    }

    #[test]
    fn rows_9_and_10_cache_mode_sends_the_latest_unless_the_client_has_it() {
        let latest = Publication { offset: 7, ..Default::default() };
        assert_eq!(cache_recovered(Some(&latest), &top(7), 7, "e1"), (true, false), "row 9");
        assert_eq!(cache_recovered(Some(&latest), &top(7), 3, "e1"), (true, true), "row 10: behind");
        assert_eq!(cache_recovered(Some(&latest), &top(7), 0, ""), (true, true), "row 10: new");
        assert_eq!(cache_recovered(Some(&latest), &top(7), 7, "e0"), (true, true), "row 10: another epoch");
        assert_eq!(cache_recovered(Some(&latest), &top(7), 7, ""), (true, true), "row 10: empty epoch is not 'has it'");
    }

    #[test]
    fn rows_11_and_12_an_empty_cache() {
        assert_eq!(cache_recovered(None, &top(7), 7, "e1"), (true, false), "row 11");
        assert_eq!(cache_recovered(None, &top(7), 3, "e1"), (false, false), "row 12");
        assert_eq!(cache_recovered(None, &top(0), 0, ""), (false, false), "row 12: nothing ever published");
    }

    #[test]
    fn an_empty_epoch_is_any_epoch() {
        assert!(same_epoch("", &top(1)));
        assert!(same_epoch("e1", &top(1)));
        assert!(!same_epoch("e2", &top(1)));
    }
}
