//! Which local connections are subscribed to which channel.
//!
//! Sharded by channel hash so subscribes on different channels do not contend. A channel
//! exists while it has a local subscriber: the first subscriber creates it (and the hub
//! subscribes the broker), the last one removes it (and the hub unsubscribes the broker).
//! A small channel is fanned out by the publisher under the shard's read lock; a large
//! one is handed to the fan-out lanes (see [`super::fanout`]). Pushing never takes this
//! lock, so the lock order registry → lane → outbox has no cycle.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::fanout::{Job, LANED_FROM, Lanes};
use super::outbox::{Outbox, Outgoing};
use super::publication::SharedPublication;
use super::Control;
use crate::protocol::Disconnect;

/// Number of shards: a power of two comfortably above the core count, so that concurrent
/// subscribes rarely meet on one lock.
const SHARDS: usize = 64;

/// One local subscriber of a channel.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The connection's numeric id.
    pub conn: u64,
    /// Where its publications go.
    pub outbox: Arc<Outbox>,
    /// Whether it gets join and leave pushes.
    pub join_leave: bool,
    /// Stream tracking for positioned and recovering subscriptions (None: plain).
    pub stream: Option<Arc<StreamState>>,
    /// Cleared (under the outbox's lock) when the subscription is removed, so that a
    /// fan-out job still holding it delivers nothing more.
    live: Arc<AtomicBool>,
}

impl Subscriber {
    /// A subscriber of connection `conn`.
    pub fn new(conn: u64, outbox: Arc<Outbox>, join_leave: bool, stream: Option<Arc<StreamState>>) -> Self {
        Self { conn, outbox, join_leave, stream, live: Arc::new(AtomicBool::new(true)) }
    }

    /// A plain subscriber: publications go straight to its outbox.
    pub fn plain(conn: u64, outbox: Arc<Outbox>) -> Self {
        Self::new(conn, outbox, false, None)
    }

    /// Queues `item` unless the subscription was removed.
    pub fn push(&self, item: Outgoing) {
        let _ = self.outbox.push_live(item, &self.live);
    }

    /// Fan-out for this subscriber: straight to its outbox, or through its stream check.
    pub(super) fn deliver(&self, p: &Arc<SharedPublication>, buffer_limit: usize) {
        match &self.stream {
            None => self.push(Outgoing::Publication(p.clone())),
            Some(state) => state.deliver(p, self, buffer_limit),
        }
    }

    /// Fan-out of several publications of one channel, in order: a plain subscriber's
    /// outbox takes them under one lock (and wakes its writer once).
    pub(super) fn deliver_all(&self, ps: &[Arc<SharedPublication>], buffer_limit: usize) {
        match (&self.stream, ps) {
            (_, [p]) => self.deliver(p, buffer_limit),
            (None, _) => {
                let _ = self.outbox.push_all_live(ps.iter().map(|p| Outgoing::Publication(p.clone())), &self.live);
            }
            (Some(state), _) => {
                for p in ps {
                    state.deliver(p, self, buffer_limit);
                }
            }
        }
    }

    fn retire(&self) {
        self.outbox.retire(&self.live);
    }
}

#[derive(Debug, Default)]
struct StreamInner {
    /// Offset of the last publication delivered (0 = none yet).
    last_offset: u64,
    /// The stream epoch `last_offset` belongs to (empty: not known yet; the first
    /// publication's is taken).
    epoch: Box<str>,
    /// While the subscribe is recovering: publications held back, and their cost.
    buffer: Option<(Vec<Arc<SharedPublication>>, usize)>,
    /// Delta subscriptions: the last publication this subscriber received is the one at
    /// `last_offset` of `epoch`, delivered live, so the next one may come as a patch
    /// against it. False after subscribe and recovery (what the reply carried is not a
    /// base: the first live publication goes in full) and after anything out of the stream.
    in_sync: bool,
}

/// A positioned subscription's place in the channel's stream.
///
/// It starts out buffering: publications that arrive while the session reads history are
/// held here. [`StreamState::go_live`] hands them to the session, which merges them with
/// history (dropping offsets already covered) and queues its reply; from then on each
/// publication must carry the next offset, or the subscriber is told it lost its place.
/// Both steps happen under this state's lock, so nothing is lost or duplicated between them.
///
/// A subscription that is not positioned uses the buffering only (connect-time
/// subscriptions wait for the connect reply this way) and is never checked for gaps.
#[derive(Debug, Default)]
pub struct StreamState {
    inner: Mutex<StreamInner>,
    positioned: bool,
    /// Delta compression negotiated (positioned subscriptions only): publications go in
    /// the delta subscribers' forms, as patches while the subscriber is in sync.
    delta: bool,
}

impl StreamState {
    /// A new state that buffers until [`StreamState::go_live`].
    pub fn buffering(positioned: bool) -> Arc<Self> {
        Self::buffering_with_delta(positioned, false)
    }

    /// [`StreamState::buffering`] for a subscription that negotiated delta compression
    /// (`delta`, which needs `positioned`: a patch is only sent against the publication
    /// just before it in the stream, which positioning tells apart).
    pub fn buffering_with_delta(positioned: bool, delta: bool) -> Arc<Self> {
        let inner = StreamInner { buffer: Some((Vec::new(), 0)), ..Default::default() };
        Arc::new(Self { inner: Mutex::new(inner), positioned, delta: delta && positioned })
    }

    /// Whether delta compression was negotiated.
    pub fn delta(&self) -> bool {
        self.delta
    }

    /// Whether offsets are checked for gaps.
    pub fn positioned(&self) -> bool {
        self.positioned
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StreamInner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fan-out for this subscriber: buffer, deliver in order, or report a gap.
    fn deliver(&self, p: &Arc<SharedPublication>, sub: &Subscriber, buffer_limit: usize) {
        let mut st = self.lock();
        if let Some((buffer, cost)) = &mut st.buffer {
            *cost += p.cost();
            buffer.push(p.clone());
            if *cost > buffer_limit {
                // A recovery that cannot keep up is a slow client like any other.
                sub.outbox.close(Disconnect::SLOW);
            }
            return;
        }
        let offset = p.publication.offset;
        if offset == 0 || !self.positioned {
            // Outside the stream: never a patch, and no base for the next one.
            st.in_sync = false;
            let item = if self.delta { p.for_delta(false).clone() } else { p.clone() };
            sub.push(Outgoing::Publication(item));
            return;
        }
        if st.epoch.is_empty() {
            st.epoch = p.epoch.clone();
        }
        let same_stream = *st.epoch == *p.epoch;
        if same_stream && offset <= st.last_offset {
            return; // already delivered (in the recovery reply)
        }
        let expected = st.last_offset + 1;
        st.last_offset = offset;
        if same_stream && offset == expected {
            let item = if self.delta {
                // In sync: this subscriber got `expected - 1` live, which is the base
                // fan-out gave the publication (the channel's previous one).
                let in_sync = std::mem::replace(&mut st.in_sync, true);
                p.for_delta(in_sync).clone()
            } else {
                p.clone()
            };
            sub.push(Outgoing::Publication(item));
        } else {
            st.in_sync = false;
            st.epoch = p.epoch.clone();
            // A gap (lost publications) or a new epoch: the client must recover.
            let channel = p.publication.channel.to_string();
            sub.push(Outgoing::Control(Box::new(Control::InsufficientState(channel))));
        }
    }

    /// Ends buffering: `f` gets the held-back publications and queues the subscribe
    /// reply (and whatever must follow it); it returns the offset the client is now at in
    /// the stream of `epoch` (empty: whichever comes first).
    pub fn go_live(&self, epoch: &str, f: impl FnOnce(Vec<Arc<SharedPublication>>) -> u64) {
        let mut st = self.lock();
        let buffered = st.buffer.take().map(|(b, _)| b).unwrap_or_default();
        st.last_offset = f(buffered);
        st.epoch = epoch.into();
        st.in_sync = false;
    }
}

/// A channel's local subscribers.
#[derive(Debug)]
enum Members {
    /// Few: the publisher delivers to them itself.
    Inline(Vec<Subscriber>),
    /// Many: split by connection over the fan-out lanes, one share per lane. A share is
    /// shared with the jobs in flight and copied when it changes while one holds it.
    /// A channel stays laned until it is gone, so no later publication (inline) can
    /// overtake an earlier one still queued on a lane.
    Laned(Box<[Arc<Vec<Subscriber>>]>),
}

impl Members {
    fn len(&self) -> usize {
        match self {
            Self::Inline(subs) => subs.len(),
            Self::Laned(shares) => shares.iter().map(|s| s.len()).sum(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Subscriber> {
        let (inline, laned) = match self {
            Self::Inline(subs) => (subs.as_slice(), &[][..]),
            Self::Laned(shares) => (&[][..], &shares[..]),
        };
        inline.iter().chain(laned.iter().flat_map(|s| s.iter()))
    }

    /// The list `conn` belongs in.
    fn list_mut(&mut self, conn: u64, lanes: &Lanes) -> &mut Vec<Subscriber> {
        match self {
            Self::Inline(subs) => subs,
            Self::Laned(shares) => Arc::make_mut(&mut shares[lanes.of(conn)]),
        }
    }

    /// Moves a channel that grew past [`LANED_FROM`] onto the lanes.
    fn lane_if_large(&mut self, lanes: &Lanes) {
        let Self::Inline(subs) = self else { return };
        if subs.len() <= LANED_FROM {
            return;
        }
        let mut shares: Vec<Vec<Subscriber>> = (0..lanes.len()).map(|_| Vec::new()).collect();
        for sub in subs.drain(..) {
            shares[lanes.of(sub.conn)].push(sub);
        }
        *self = Self::Laned(shares.into_iter().map(Arc::new).collect());
    }
}

/// The channel's latest publication in its stream, as fan-out last saw it: the base of
/// the next publication's patch. One per channel (nothing per subscriber), kept while the
/// channel has local subscribers.
#[derive(Debug, Default)]
struct Latest {
    offset: u64,
    epoch: Box<str>,
    data: bytes::Bytes,
}

/// A channel with local subscribers.
#[derive(Debug)]
struct Channel {
    members: Members,
    /// Written by fan-out under the shard's read lock; a channel's publications fan out
    /// one at a time, in the broker's order, so this lock is not contended.
    latest: Mutex<Latest>,
}

impl Channel {
    fn new(sub: Subscriber) -> Self {
        Self { members: Members::Inline(vec![sub]), latest: Mutex::default() }
    }

    /// Gives a delta-eligible publication its base when the previous publication of
    /// its stream was the last one seen here, and remembers this one.
    fn chain(&self, p: &SharedPublication) {
        let offset = p.publication.offset;
        if offset == 0 {
            return; // not in the stream (no history, or skip_history)
        }
        let mut latest = self.latest.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let same_stream = *latest.epoch == *p.epoch;
        if p.publication.delta_eligible && same_stream && latest.offset.checked_add(1) == Some(offset) {
            p.set_base(latest.data.clone());
        }
        latest.offset = offset;
        latest.data = p.publication.data.clone();
        if !same_stream {
            latest.epoch = p.epoch.clone();
        }
    }
}

type Shard = HashMap<Arc<str>, Channel>;

/// The channel → subscribers map.
#[derive(Debug)]
pub struct Registry {
    shards: Box<[RwLock<Shard>]>,
    hasher: RandomState,
    lanes: Lanes,
}

impl Default for Registry {
    fn default() -> Self {
        Self::with_lanes(Lanes::default())
    }
}

impl Registry {
    /// A registry whose large channels fan out over `lanes`.
    pub fn with_lanes(lanes: Lanes) -> Self {
        Self { shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(), hasher: RandomState::new(), lanes }
    }

    fn shard(&self, channel: &str) -> &RwLock<Shard> {
        let i = (self.hasher.hash_one(channel) as usize) % SHARDS;
        &self.shards[i]
    }

    fn read(lock: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
        // Mutations are single insert/remove calls; a poisoned lock holds a consistent map.
        lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(lock: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
        lock.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a subscriber and runs `then` before releasing the channel's lock, so nothing
    /// fanned out to the channel can overtake what `then` queues. Returns true when it is
    /// the channel's first subscriber.
    pub fn add(&self, channel: &str, sub: Subscriber, then: impl FnOnce()) -> bool {
        let mut shard = Self::write(self.shard(channel));
        let first = match shard.get_mut(channel).map(|c| &mut c.members) {
            Some(members) => {
                let list = members.list_mut(sub.conn, &self.lanes);
                if !list.iter().any(|s| s.conn == sub.conn) {
                    list.push(sub);
                }
                members.lane_if_large(&self.lanes);
                false
            }
            None => {
                shard.insert(Arc::from(channel), Channel::new(sub));
                true
            }
        };
        then();
        first
    }

    /// Removes a subscriber; returns true when the channel has no subscriber left. Once
    /// this returns, no publication reaches the removed subscription.
    pub fn remove(&self, channel: &str, conn: u64) -> bool {
        let mut shard = Self::write(self.shard(channel));
        let Some(members) = shard.get_mut(channel).map(|c| &mut c.members) else { return false };
        let list = members.list_mut(conn, &self.lanes);
        let Some(pos) = list.iter().position(|s| s.conn == conn) else { return false };
        list.swap_remove(pos).retire();
        if members.len() == 0 {
            shard.remove(channel);
            true
        } else {
            false
        }
    }

    /// Delivers a publication to every local subscriber of its channel: one pointer into
    /// each outbox (or each positioned subscription's stream check), here or, for a large
    /// channel, on the fan-out lanes. Returns how many subscribers it is for.
    pub fn fan_out(&self, p: &Arc<SharedPublication>, buffer_limit: usize) -> usize {
        let channel = &*p.publication.channel;
        let shard = Self::read(self.shard(channel));
        let Some(entry) = shard.get(channel) else { return 0 };
        entry.chain(p);
        let members = &entry.members;
        match members {
            Members::Inline(subs) => subs.iter().for_each(|sub| sub.deliver(p, buffer_limit)),
            Members::Laned(shares) => {
                for (lane, share) in shares.iter().enumerate().filter(|(_, s)| !s.is_empty()) {
                    let job = Job { publication: p.clone(), subscribers: share.clone(), buffer_limit };
                    self.lanes.submit(lane, job);
                }
            }
        }
        members.len()
    }

    /// Calls `f` for every local subscriber of `channel` under the shard's read lock;
    /// returns how many there were.
    pub fn for_each(&self, channel: &str, f: impl FnMut(&Subscriber)) -> usize {
        let shard = Self::read(self.shard(channel));
        let Some(members) = shard.get(channel).map(|c| &c.members) else { return 0 };
        members.iter().for_each(f);
        members.len()
    }

    /// Number of local subscribers of `channel`.
    pub fn count(&self, channel: &str) -> usize {
        Self::read(self.shard(channel)).get(channel).map_or(0, |c| c.members.len())
    }

    /// Every channel with its number of local subscribers.
    pub fn channels(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.extend(Self::read(shard).iter().map(|(ch, c)| (ch.to_string(), c.members.len())));
        }
        out
    }

    /// (channels, subscriptions) totals.
    pub fn totals(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(c, s), shard| {
            let shard = Self::read(shard);
            (c + shard.len(), s + shard.values().map(|ch| ch.members.len()).sum::<usize>())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::publication::Form;

    #[test]
    fn first_and_last_subscriber_are_reported() {
        let r = Registry::default();
        let sub = |conn| Subscriber::plain(conn, Outbox::new(100));
        assert!(r.add("a", sub(1), || ()));
        assert!(!r.add("a", sub(2), || ()));
        assert!(!r.add("a", sub(2), || ()), "re-adding is idempotent");
        assert_eq!(r.count("a"), 2);
        assert!(!r.remove("a", 1));
        assert!(!r.remove("a", 99), "unknown subscriber");
        assert!(r.remove("a", 2));
        assert_eq!(r.totals(), (0, 0));
        assert!(r.channels().is_empty());
    }

    fn shared(offset: u64) -> Arc<SharedPublication> {
        in_epoch(offset, "e1")
    }

    fn in_epoch(offset: u64, epoch: &str) -> Arc<SharedPublication> {
        let p = crate::protocol::Publication { channel: "c".into(), offset, ..Default::default() };
        SharedPublication::in_stream(Arc::new(p), epoch, super::super::Coalesce::default())
    }

    fn offsets(items: &[Outgoing]) -> Vec<u64> {
        items
            .iter()
            .map(|i| match i {
                Outgoing::Publication(p) => p.publication.offset,
                Outgoing::Control(c) if matches!(**c, Control::InsufficientState(_)) => u64::MAX,
                _ => 0,
            })
            .collect()
    }

    #[test]
    fn buffering_then_live_with_gap_detection() {
        let r = Registry::default();
        let outbox = Outbox::new(1 << 20);
        let state = StreamState::buffering(true);
        r.add("c", Subscriber::new(1, outbox.clone(), false, Some(state.clone())), || ());
        r.fan_out(&shared(5), 1 << 20);
        r.fan_out(&shared(6), 1 << 20);
        let mut items = Vec::new();
        outbox.drain(&mut items);
        assert!(items.is_empty(), "held back while recovering");
        // The session's history read covered up to 5: it keeps only 6 from the buffer.
        state.go_live("e1", |buffered| {
            assert_eq!(buffered.iter().map(|p| p.publication.offset).collect::<Vec<_>>(), vec![5, 6]);
            6
        });
        r.fan_out(&shared(7), 1 << 20);
        r.fan_out(&shared(9), 1 << 20);
        outbox.drain(&mut items);
        assert_eq!(offsets(&items), vec![7, u64::MAX], "8 is missing: the subscriber is told");
    }

    #[test]
    fn a_late_offset_is_dropped_and_a_new_epoch_is_a_gap() {
        let r = Registry::default();
        let outbox = Outbox::new(1 << 20);
        let state = StreamState::buffering(true);
        r.add("c", Subscriber::new(1, outbox.clone(), false, Some(state.clone())), || ());
        // The recovery reply covered up to 4 of epoch e1.
        state.go_live("e1", |_| 4);
        // A fan-out job that was queued before the history read runs late: 3 and 4 are
        // already with the client, 5 follows.
        for offset in [3, 4, 5] {
            r.fan_out(&shared(offset), 1 << 20);
        }
        let mut items = Vec::new();
        outbox.drain(&mut items);
        assert_eq!(offsets(&items), vec![5], "late offsets dropped, the next delivered");
        // The stream was lost and restarted: offset 6 of another epoch is not 'the next'.
        r.fan_out(&in_epoch(6, "e2"), 1 << 20);
        r.fan_out(&in_epoch(7, "e2"), 1 << 20);
        items.clear();
        outbox.drain(&mut items);
        assert_eq!(offsets(&items), vec![u64::MAX, 7], "told once, then follows the new stream");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_channel_fans_out_on_the_lanes_in_order_and_stops_at_removal() {
        let r = Arc::new(Registry::with_lanes(Lanes::new(2)));
        let n = (LANED_FROM * 2) as u64;
        let outboxes: Vec<_> = (0..n).map(|_| Outbox::new(1 << 30)).collect();
        for (conn, o) in outboxes.iter().enumerate() {
            r.add("c", Subscriber::plain(conn as u64, o.clone()), || ());
        }
        let total = 200u64;
        let publisher = {
            let r = r.clone();
            tokio::task::spawn_blocking(move || {
                for offset in 1..=total {
                    assert_eq!(r.fan_out(&shared(offset), 1 << 30), n as usize);
                    if offset == total / 2 {
                        // Removed halfway (publications up to here may still be queued on
                        // its lane) and added again as a new subscription.
                        r.remove("c", 0);
                        r.add("c", Subscriber::plain(0, outboxes[0].clone()), || ());
                    }
                }
                outboxes
            })
        };
        let outboxes = publisher.await.expect("publisher");
        let mut got: Vec<Vec<u64>> = vec![Vec::new(); n as usize];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let mut items = Vec::new();
            for (g, o) in got.iter_mut().zip(&outboxes) {
                items.clear();
                o.drain(&mut items);
                g.extend(offsets(&items));
            }
            if got.iter().skip(1).all(|g| g.len() as u64 == total) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "lanes did not finish");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let all: Vec<u64> = (1..=total).collect();
        assert!(got.iter().skip(1).all(|g| *g == all), "every subscriber: each offset once, in order");
        // The re-added subscription: a prefix of the first half (what its lane had run
        // before the removal), then exactly the second half — nothing twice.
        let g = &got[0];
        let second = g.iter().position(|&o| o > total / 2).expect("second half");
        assert!(g[..second].iter().copied().eq(1..=second as u64), "a prefix before the removal: {g:?}");
        assert_eq!(g[second..], all[(total / 2) as usize..], "then only what came after re-adding");
    }

    fn eligible(offset: u64, data: &str, delta_eligible: bool) -> Arc<SharedPublication> {
        let p = crate::protocol::Publication {
            channel: "c".into(),
            offset,
            data: bytes::Bytes::copy_from_slice(data.as_bytes()),
            delta_eligible,
            ..Default::default()
        };
        SharedPublication::in_stream(Arc::new(p), "e1", super::super::Coalesce::default())
    }

    /// Long, similar payloads: a patch of the next against the previous is far smaller.
    fn doc(n: u64) -> String {
        format!(r#"{{"score":{n},"players":["{}"],"note":"{}"}}"#, "alice,bob,carol,dave".repeat(4), "x".repeat(200))
    }

    /// What each delivered publication was: (offset, is it a patch).
    fn forms(outbox: &Outbox) -> Vec<(u64, bool)> {
        let mut items = Vec::new();
        outbox.drain(&mut items);
        items
            .iter()
            .map(|i| match i {
                Outgoing::Publication(p) => (p.publication.offset, p.is_patch()),
                Outgoing::Control(_) => (u64::MAX, false),
                _ => (0, false),
            })
            .collect()
    }

    fn live_delta_subscriber(r: &Registry, conn: u64, at: u64) -> Arc<Outbox> {
        let outbox = Outbox::new(1 << 20);
        let state = StreamState::buffering_with_delta(true, true);
        r.add("c", Subscriber::new(conn, outbox.clone(), false, Some(state.clone())), || ());
        state.go_live("e1", |_| at);
        outbox
    }

    #[test]
    fn a_delta_subscriber_gets_patches_only_when_in_sync() {
        let r = Registry::default();
        let delta = live_delta_subscriber(&r, 1, 0);
        let plain = Outbox::new(1 << 20);
        r.add("c", Subscriber::new(2, plain.clone(), false, Some(StreamState::buffering(true))), || ());
        // (the plain positioned subscriber goes live at 0 too)
        let mut it = Vec::new();
        plain.drain(&mut it);
        for n in 1..=3 {
            r.fan_out(&eligible(n, &doc(n), true), 1 << 20);
        }
        assert_eq!(forms(&delta), vec![(1, false), (2, true), (3, true)], "the first after subscribe goes in full");
        // Not delta-eligible: full, and the subscriber stays in sync for the next one.
        r.fan_out(&eligible(4, &doc(4), false), 1 << 20);
        r.fan_out(&eligible(5, &doc(5), true), 1 << 20);
        assert_eq!(forms(&delta), vec![(4, false), (5, true)]);
        // Outside the stream (offset 0, e.g. skip_history): full, and no base for the next.
        r.fan_out(&eligible(0, &doc(0), true), 1 << 20);
        r.fan_out(&eligible(6, &doc(6), true), 1 << 20);
        assert_eq!(forms(&delta), vec![(0, false), (6, false)]);
        // A gap: the subscriber is told, and what follows is never a patch against data
        // it does not have.
        r.fan_out(&eligible(8, &doc(8), true), 1 << 20);
        r.fan_out(&eligible(9, &doc(9), true), 1 << 20);
        assert_eq!(forms(&delta), vec![(u64::MAX, false), (9, false)]);
        assert!(forms(&plain).iter().all(|(_, patch)| !patch), "a subscriber without delta never gets a patch");
    }

    #[test]
    fn a_patch_rebuilds_the_payload_and_is_made_once_per_publication() {
        let r = Registry::default();
        let a = live_delta_subscriber(&r, 1, 0);
        r.fan_out(&eligible(1, &doc(1), true), 1 << 20);
        forms(&a);
        // A second delta subscriber joins late: out of sync, it gets 2 in full.
        let b = live_delta_subscriber(&r, 2, 1);
        let p2 = eligible(2, &doc(2), true);
        r.fan_out(&p2, 1 << 20);
        let p3 = eligible(3, &doc(3), true);
        r.fan_out(&p3, 1 << 20);
        let take = |o: &Outbox| {
            let mut items = Vec::new();
            o.drain(&mut items);
            items.into_iter().map(|i| match i {
                Outgoing::Publication(p) => p,
                _ => panic!("a publication"),
            }).collect::<Vec<_>>()
        };
        let (got_a, got_b) = (take(&a), take(&b));
        assert!(got_a[0].is_patch() && !got_b[0].is_patch(), "a in sync, b just subscribed");
        assert!(got_a[1].is_patch() && got_b[1].is_patch(), "both in sync now");
        assert!(Arc::ptr_eq(&got_a[1], &got_b[1]), "one patch form per publication, shared");
        assert!(Arc::ptr_eq(&got_b[0], p2.for_delta(false)), "one full form per publication, shared");
        let codec = crate::protocol::codec::Codec::Protobuf;
        assert_eq!(got_a[1].framed(codec).frame().as_ptr(), got_b[1].framed(codec).frame().as_ptr(), "encoded once");
        // The patch is a fossil delta from 2 to 3, much smaller than 3.
        let patch = p3.for_delta(true);
        let bytes = patch.encoded(codec);
        assert!(bytes.len() < doc(3).len() / 2, "{} bytes for a {}-byte payload", bytes.len(), doc(3).len());
        let Form::DeltaPatch(wire) = &patch.form else { panic!("a patch") };
        assert!(wire.delta && !p3.publication.delta);
        assert_eq!(crate::protocol::fossil::apply(doc(2).as_bytes(), &wire.data).expect("applies"), doc(3).as_bytes());
    }

    #[test]
    fn an_overflowing_recovery_buffer_makes_the_connection_slow() {
        let r = Registry::default();
        let outbox = Outbox::new(1 << 20);
        r.add("c", Subscriber::new(1, outbox.clone(), false, Some(StreamState::buffering(true))), || ());
        for i in 1..=10 {
            r.fan_out(&shared(i), 100);
        }
        assert_eq!(outbox.closing_reason(), Some(Disconnect::SLOW));
    }
}
