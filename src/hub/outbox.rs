//! The per-connection outbound queue, bounded in bytes.
//!
//! Fan-out, replies and server-side control all enter a connection through its outbox;
//! the connection's writer drains everything pending in one go and writes it as one
//! frame. When the queued bytes would pass `client.queue_max_size` the connection is
//! marked slow: the queue is dropped (not flushed) and the writer closes with 3008, so a
//! stalled reader costs bounded memory and never slows the publisher.
//!
//! An idle outbox holds at most a few pointer-sized slots: a burst's allocation is
//! released when drained. A drain into an empty vector swaps the two, so under load the
//! queue and the writer's vectors trade the same few allocations back and forth.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::task::AtomicWaker;

use super::publication::SharedPublication;
use crate::protocol::{Disconnect, Push, Reply};

/// Queue slots (pointer-sized items) an outbox keeps allocated after a drain (as many as
/// the driver keeps, so the vectors they swap are not given back each time).
const KEEP_SLOTS: usize = 16;

/// Charge for a reply or push whose exact size is not known before encoding.
const SMALL_ITEM_COST: usize = 128;

/// Something for the connection: bytes to write, or a control event for its session.
#[derive(Debug)]
pub enum Outgoing {
    /// A publication in a subscribed channel.
    Publication(Arc<SharedPublication>),
    /// A reply to a command (boxed: replies are rare next to publications, and an
    /// outgoing item stays pointer-sized for the queues that hold many).
    Reply(Box<Reply>),
    /// A push other than a publication (boxed, as replies).
    Push(Box<Push>),
    /// A server ping (`{}` in JSON).
    Ping,
    /// An event for the session (server API subscribe/unsubscribe/disconnect …), boxed.
    Control(Box<super::Control>),
}

impl Outgoing {
    fn cost(&self) -> usize {
        match self {
            Self::Publication(p) => p.cost(),
            Self::Ping | Self::Control(_) => 2,
            Self::Reply(_) | Self::Push(_) => SMALL_ITEM_COST,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    items: Vec<Outgoing>,
    bytes: usize,
    closing: Option<Disconnect>,
}

/// What a drain found besides items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drained {
    /// Keep going.
    Open,
    /// Write what was drained, then close with this disconnect.
    Close(Disconnect),
}

/// What happened to a pushed item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued for the writer.
    Queued,
    /// Dropped: the connection is already closing.
    Closed,
    /// Dropped, and this push made the connection slow (it will close with 3008).
    Slow,
}

/// A connection's bounded outbound queue.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    /// Something was queued (or a close asked for) since the writer last looked.
    signalled: AtomicBool,
    /// The writer waiting for that: one waiter, the connection's driver (a waker slot,
    /// not a list of waiters: nothing to lock or unlink per wake-up).
    writer: AtomicWaker,
    max_bytes: usize,
}

impl Outbox {
    /// A new, empty outbox holding at most `max_bytes` of pending output.
    pub fn new(max_bytes: usize) -> Arc<Self> {
        Arc::new(Self { state: Mutex::new(State::default()), signalled: AtomicBool::new(false), writer: AtomicWaker::new(), max_bytes })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent (every
        // mutation is a single push/drain), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues an item (see [`Pushed`]).
    pub fn push(&self, item: Outgoing) -> Pushed {
        self.push_while(item, None)
    }

    /// Queues an item only while `live` holds, checked under the queue's lock: a
    /// subscription [`retire`](Self::retire)d before this call gets nothing more, so
    /// fan-out running late on another worker cannot deliver after an unsubscribe.
    /// A dropped item reports [`Pushed::Closed`].
    pub fn push_live(&self, item: Outgoing, live: &AtomicBool) -> Pushed {
        self.push_while(item, Some(live))
    }

    /// Clears `live` under the queue's lock: no [`push_live`](Self::push_live) with it
    /// queues anything once this returns.
    pub fn retire(&self, live: &AtomicBool) {
        let _st = self.lock();
        live.store(false, Ordering::Relaxed);
    }

    /// Queues several items in order under one lock (with one wake-up at most), while
    /// `live` holds: the fan-out of publications that queued up for one subscriber. Stops
    /// at the first item that is not queued and reports it.
    pub fn push_all_live(&self, items: impl IntoIterator<Item = Outgoing>, live: &AtomicBool) -> Pushed {
        let mut st = self.lock();
        let was_empty = st.items.is_empty();
        let mut pushed = Pushed::Queued;
        for item in items {
            pushed = self.queue(&mut st, item, Some(live));
            if pushed != Pushed::Queued {
                break;
            }
        }
        let wake = pushed == Pushed::Slow || (was_empty && !st.items.is_empty());
        drop(st);
        if wake {
            self.wake();
        }
        pushed
    }

    fn push_while(&self, item: Outgoing, live: Option<&AtomicBool>) -> Pushed {
        let mut st = self.lock();
        let was_empty = st.items.is_empty();
        let pushed = self.queue(&mut st, item, live);
        drop(st);
        if pushed == Pushed::Slow || (pushed == Pushed::Queued && was_empty) {
            self.wake();
        }
        pushed
    }

    /// One item into the locked queue; the caller wakes the writer.
    fn queue(&self, st: &mut State, item: Outgoing, live: Option<&AtomicBool>) -> Pushed {
        if st.closing.is_some() || live.is_some_and(|l| !l.load(Ordering::Relaxed)) {
            return Pushed::Closed;
        }
        let cost = item.cost();
        if st.bytes + cost > self.max_bytes && !matches!(item, Outgoing::Control(_)) {
            st.items = Vec::new();
            st.bytes = 0;
            st.closing = Some(Disconnect::SLOW);
            return Pushed::Slow;
        }
        st.bytes += cost;
        st.items.push(item);
        Pushed::Queued
    }

    /// Asks the writer to flush what is queued and close with `reason`. The first reason wins.
    pub fn close(&self, reason: Disconnect) {
        let mut st = self.lock();
        if st.closing.is_none() {
            st.closing = Some(reason);
        }
        drop(st);
        self.wake();
    }

    /// Whether the connection is closing (slow, disconnected or shutting down).
    pub fn is_closing(&self) -> bool {
        self.lock().closing.is_some()
    }

    /// Why the connection is closing, if it is.
    pub fn closing_reason(&self) -> Option<Disconnect> {
        self.lock().closing.clone()
    }

    /// Moves everything pending into `out` (in order) and reports whether to close.
    pub fn drain(&self, out: &mut Vec<Outgoing>) -> Drained {
        let mut st = self.lock();
        if out.is_empty() {
            // No copy: the queue's vector becomes `out`, and `out`'s empty one the queue.
            std::mem::swap(out, &mut st.items);
        } else {
            out.append(&mut st.items);
        }
        // A small queue keeps its allocation (the next push would make it again); a
        // burst's is given back.
        if st.items.capacity() > KEEP_SLOTS {
            st.items = Vec::new();
        }
        st.bytes = 0;
        let closing = st.closing.clone();
        drop(st);
        match closing {
            Some(d) => Drained::Close(d),
            None => Drained::Open,
        }
    }

    /// Gives back the queue's allocation if nothing is queued (the writer calls it now and
    /// then: under load the queue keeps a few slots, see `KEEP_SLOTS`).
    pub fn trim(&self) {
        let mut st = self.lock();
        if st.items.is_empty() {
            st.items = Vec::new();
        }
    }

    /// Bytes currently queued.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    fn wake(&self) {
        self.signalled.store(true, Ordering::Release);
        self.writer.wake();
    }

    /// Waits until something is queued or a close is requested (at once if that happened
    /// since the last wait). For the connection's one writer: a second waiter would take
    /// the first one's place.
    pub fn notified(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.signalled.swap(false, Ordering::AcqRel) {
                return std::task::Poll::Ready(());
            }
            self.writer.register(cx.waker());
            if self.signalled.swap(false, Ordering::AcqRel) {
                return std::task::Poll::Ready(());
            }
            std::task::Poll::Pending
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::protocol::Publication;

    fn publication(len: usize) -> Arc<SharedPublication> {
        SharedPublication::new(Arc::new(Publication {
            channel: "c".into(),
            data: Bytes::from(vec![b'1'; len]),
            ..Default::default()
        }))
    }

    #[test]
    fn drains_in_order() {
        let o = Outbox::new(10_000);
        assert_eq!(o.push(Outgoing::Ping), Pushed::Queued);
        assert_eq!(o.push(Outgoing::Publication(publication(10))), Pushed::Queued);
        let mut out = Vec::new();
        assert_eq!(o.drain(&mut out), Drained::Open);
        assert!(matches!(out[0], Outgoing::Ping));
        assert!(matches!(out[1], Outgoing::Publication(_)));
        assert_eq!(o.queued_bytes(), 0);
    }

    #[test]
    fn a_drain_into_pending_items_appends_behind_them() {
        let o = Outbox::new(10_000);
        let mut out = Vec::new();
        o.push(Outgoing::Publication(publication(1)));
        assert_eq!(o.drain(&mut out), Drained::Open);
        o.push(Outgoing::Ping);
        o.push(Outgoing::Publication(publication(2)));
        assert_eq!(o.drain(&mut out), Drained::Open);
        let kinds: Vec<_> = out
            .iter()
            .map(|i| match i {
                Outgoing::Publication(p) => p.publication.data.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(kinds, vec![1, 0, 2], "the second drain lands behind the first, in order");
        assert_eq!(o.queued_bytes(), 0);
    }

    #[test]
    fn trim_gives_back_an_empty_queue_s_slots_only() {
        let o = Outbox::new(10_000);
        let mut out = Vec::with_capacity(KEEP_SLOTS);
        o.push(Outgoing::Ping);
        assert_eq!(o.drain(&mut out), Drained::Open);
        assert!(o.lock().items.capacity() > 0, "a drain keeps small vectors circulating");
        o.trim();
        assert_eq!(o.lock().items.capacity(), 0, "trimmed when empty");
        o.push(Outgoing::Ping);
        o.trim();
        assert_eq!(o.lock().items.len(), 1, "a queued item stays");
    }

    #[tokio::test]
    async fn the_writer_is_woken_by_a_push_before_or_while_it_waits() {
        use std::time::Duration;
        let o = Outbox::new(10_000);
        o.push(Outgoing::Ping);
        tokio::time::timeout(Duration::from_secs(5), o.notified()).await.expect("a push before the wait counts");
        let again = tokio::time::timeout(Duration::from_millis(50), o.notified()).await;
        assert!(again.is_err(), "one push, one wake-up: taken by the first wait");
        let other = o.clone();
        let closer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            other.close(Disconnect::SHUTDOWN);
        });
        tokio::time::timeout(Duration::from_secs(5), o.notified()).await.expect("a close wakes the waiting writer");
        closer.await.expect("closer");
    }

    #[tokio::test]
    async fn several_items_go_in_in_order_wake_the_writer_and_keep_the_bound() {
        use std::time::Duration;
        let o = Outbox::new(1000);
        let live = AtomicBool::new(true);
        let items = (1..=3).map(|n| Outgoing::Publication(publication(n)));
        assert_eq!(o.push_all_live(items, &live), Pushed::Queued);
        tokio::time::timeout(Duration::from_secs(5), o.notified()).await.expect("woken");
        let again = tokio::time::timeout(Duration::from_millis(50), o.notified()).await;
        assert!(again.is_err(), "three items, one wake-up (as three pushes into an empty queue would)");
        let mut out = Vec::new();
        assert_eq!(o.drain(&mut out), Drained::Open);
        let sizes: Vec<_> = out.iter().map(|i| if let Outgoing::Publication(p) = i { p.publication.data.len() } else { 0 }).collect();
        assert_eq!(sizes, vec![1, 2, 3], "in order");

        o.retire(&live);
        assert_eq!(o.push_all_live([Outgoing::Ping], &live), Pushed::Closed, "a retired subscription gets nothing");
        let live = AtomicBool::new(true);
        let big = (0..3).map(|_| Outgoing::Publication(publication(400)));
        assert_eq!(o.push_all_live(big, &live), Pushed::Slow, "the bound holds inside a batch");
        assert_eq!(o.drain(&mut out), Drained::Close(Disconnect::SLOW));
    }

    #[test]
    fn overflow_marks_slow_and_drops_the_queue() {
        let o = Outbox::new(1000);
        let p = publication(400);
        assert_eq!(o.push(Outgoing::Publication(p.clone())), Pushed::Queued);
        assert_eq!(o.push(Outgoing::Publication(p.clone())), Pushed::Queued);
        assert_eq!(o.push(Outgoing::Publication(p.clone())), Pushed::Slow, "third one overflows");
        assert_eq!(o.push(Outgoing::Ping), Pushed::Closed, "closed after overflow");
        let mut out = Vec::new();
        assert_eq!(o.drain(&mut out), Drained::Close(Disconnect::SLOW));
        assert!(out.is_empty(), "a slow connection's queue is not flushed");
    }

    #[test]
    fn close_flushes_pending_and_first_reason_wins() {
        let o = Outbox::new(1000);
        assert_eq!(o.push(Outgoing::Ping), Pushed::Queued);
        o.close(Disconnect::SHUTDOWN);
        o.close(Disconnect::BAD_REQUEST);
        let mut out = Vec::new();
        assert_eq!(o.drain(&mut out), Drained::Close(Disconnect::SHUTDOWN));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn a_retired_subscription_gets_nothing_more() {
        let o = Outbox::new(1000);
        let live = AtomicBool::new(true);
        assert_eq!(o.push_live(Outgoing::Ping, &live), Pushed::Queued);
        o.retire(&live);
        assert_eq!(o.push_live(Outgoing::Ping, &live), Pushed::Closed);
        assert_eq!(o.push(Outgoing::Ping), Pushed::Queued, "the connection itself is still open");
        let mut out = Vec::new();
        assert_eq!(o.drain(&mut out), Drained::Open);
        assert_eq!(out.len(), 2);
    }
}
