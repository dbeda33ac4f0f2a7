//! The memory engine's streams, idempotency and presence, with a stepped clock.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::*;
use crate::hub::HistoryOptions;

#[derive(Default)]
struct Recorder(Mutex<Vec<Arc<Publication>>>);

impl BrokerHandler for Recorder {
    fn handle_publication(&self, p: Arc<Publication>, _epoch: &str) {
        self.0.lock().expect("lock").push(p);
    }
    fn handle_join_leave(&self, _: &str, _: &ClientInfo, _: bool) {}
    fn handle_control(&self, _: Control) {}
    fn handle_gap(&self, _: &str) {}
}

struct Fixture {
    broker: Arc<MemoryBroker>,
    now: Arc<AtomicU64>,
    recorder: Arc<Recorder>,
}

fn fixture() -> Fixture {
    let now = Arc::new(AtomicU64::new(1_000));
    let clock_now = now.clone();
    let broker = MemoryBroker::with_clock(Arc::new(move || clock_now.load(Ordering::Relaxed)));
    let recorder = Arc::new(Recorder::default());
    let handler: Arc<dyn BrokerHandler> = recorder.clone();
    broker.set_handler(Arc::downgrade(&handler));
    Fixture { broker, now, recorder }
}

const HISTORY: HistoryOptions =
    HistoryOptions { size: 3, ttl: Duration::from_secs(10), meta_ttl: Duration::from_secs(100) };
const META: Duration = Duration::from_secs(100);

fn publication(channel: &str, data: &'static str) -> Publication {
    Publication { channel: channel.into(), data: Bytes::from_static(data.as_bytes()), ..Default::default() }
}

fn with_history() -> PublishOptions {
    PublishOptions { history: Some(HISTORY), idempotency_key: None }
}

async fn offsets(f: &Fixture, filter: HistoryFilter) -> Vec<u64> {
    f.broker.history("c", &filter, META).await.expect("history").publications.iter().map(|p| p.offset).collect()
}

#[tokio::test]
async fn offsets_grow_history_is_bounded_by_size_and_shares_the_delivered_arc() {
    let f = fixture();
    for i in 1..=5u64 {
        let out = f.broker.publish(publication("c", "1"), &with_history()).await.expect("publish");
        assert_eq!(out.position.as_ref().map(|p| p.offset), Some(i));
    }
    let page = f.broker.history("c", &HistoryFilter { limit: 100, ..Default::default() }, META).await.expect("h");
    assert_eq!(page.position.offset, 5);
    assert_eq!(page.publications.iter().map(|p| p.offset).collect::<Vec<_>>(), vec![3, 4, 5]);
    let delivered = f.recorder.0.lock().expect("lock");
    assert_eq!(delivered.iter().map(|p| p.offset).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    assert!(Arc::ptr_eq(&delivered[4], &page.publications[2]), "history keeps the delivered Arc, no copy");
}

#[tokio::test]
async fn history_filters_since_limit_reverse_and_position_errors() {
    let f = fixture();
    let opts = PublishOptions { history: Some(HistoryOptions { size: 100, ..HISTORY }), idempotency_key: None };
    for _ in 0..6 {
        f.broker.publish(publication("c", "1"), &opts).await.expect("publish");
    }
    let epoch = f.broker.history("c", &HistoryFilter::default(), META).await.expect("h").position.epoch;
    let since = |offset| Some(StreamPosition { offset, epoch: epoch.clone() });
    assert_eq!(offsets(&f, HistoryFilter { limit: 2, ..Default::default() }).await, vec![1, 2]);
    assert_eq!(offsets(&f, HistoryFilter { limit: 2, reverse: true, ..Default::default() }).await, vec![6, 5]);
    assert_eq!(offsets(&f, HistoryFilter { since: since(3), limit: 10, reverse: false }).await, vec![4, 5, 6]);
    assert_eq!(offsets(&f, HistoryFilter { since: since(3), limit: 10, reverse: true }).await, vec![2, 1]);
    assert_eq!(offsets(&f, HistoryFilter { since: since(6), limit: 10, reverse: false }).await, Vec::<u64>::new());
    assert!(offsets(&f, HistoryFilter { limit: 0, ..Default::default() }).await.is_empty());
    let wrong = HistoryFilter { since: Some(StreamPosition { offset: 1, epoch: "other".into() }), ..Default::default() };
    assert_eq!(f.broker.history("c", &wrong, META).await.err(), Some(HistoryError::EpochMismatch));
    let future = HistoryFilter { since: since(7), ..Default::default() };
    assert_eq!(f.broker.history("c", &future, META).await.err(), Some(HistoryError::FutureOffset));
}

#[tokio::test]
async fn ttl_expires_entries_and_meta_expiry_starts_a_new_epoch() {
    let f = fixture();
    f.broker.publish(publication("c", "1"), &with_history()).await.expect("publish");
    let first = f.broker.history("c", &HistoryFilter::default(), META).await.expect("h").position;
    f.now.fetch_add(11_000, Ordering::Relaxed);
    let page = f.broker.history("c", &HistoryFilter { limit: 10, ..Default::default() }, META).await.expect("h");
    assert!(page.publications.is_empty(), "entries past history_ttl are gone");
    assert_eq!(page.position, first, "the position survives until meta_ttl");
    f.now.fetch_add(101_000, Ordering::Relaxed);
    let out = f.broker.publish(publication("c", "2"), &with_history()).await.expect("publish");
    let pos = out.position.expect("position");
    assert_eq!(pos.offset, 1, "a lost stream starts again at 1");
    assert_ne!(pos.epoch, first.epoch, "… in a new epoch");
}

#[tokio::test]
async fn remove_history_keeps_the_position() {
    let f = fixture();
    f.broker.publish(publication("c", "1"), &with_history()).await.expect("publish");
    f.broker.publish(publication("c", "2"), &with_history()).await.expect("publish");
    f.broker.remove_history("c").await.expect("remove");
    let page = f.broker.history("c", &HistoryFilter { limit: 10, ..Default::default() }, META).await.expect("h");
    assert!(page.publications.is_empty());
    assert_eq!(page.position.offset, 2);
    let out = f.broker.publish(publication("c", "3"), &with_history()).await.expect("publish");
    assert_eq!(out.position.map(|p| p.offset), Some(3));
}

#[tokio::test]
async fn idempotency_key_suppresses_a_repeat_within_the_window() {
    let f = fixture();
    let opts = PublishOptions { history: Some(HISTORY), idempotency_key: Some("k1".into()) };
    let a = f.broker.publish(publication("c", "1"), &opts).await.expect("publish");
    let b = f.broker.publish(publication("c", "1"), &opts).await.expect("publish");
    assert!(!a.duplicate && b.duplicate);
    assert_eq!(a.position, b.position, "the repeat answers with the first result");
    assert_eq!(f.recorder.0.lock().expect("lock").len(), 1, "delivered once");
    f.now.fetch_add(IDEMPOTENCY_WINDOW.as_millis() as u64 + 1, Ordering::Relaxed);
    let c = f.broker.publish(publication("c", "1"), &opts).await.expect("publish");
    assert!(!c.duplicate, "after the window the key is forgotten");
}

#[tokio::test]
async fn idempotency_keys_are_bounded_per_channel() {
    let f = fixture();
    for i in 0..(MAX_IDEMPOTENCY_KEYS + 50) {
        let opts = PublishOptions { history: None, idempotency_key: Some(format!("k{i}")) };
        f.broker.publish(publication("c", "1"), &opts).await.expect("publish");
    }
    let shard = f.broker.shard("c");
    let state = shard.channels.get("c").expect("state");
    assert!(state.idempotency.len() <= MAX_IDEMPOTENCY_KEYS);
    assert_eq!(state.idempotency.len(), state.idempotency_order.len());
}

#[tokio::test]
async fn presence_entries_and_stats() {
    let f = fixture();
    let info = |user: &str, client: &str| ClientInfo { user: user.into(), client: client.into(), ..Default::default() };
    f.broker.add_presence("c", &info("u1", "a")).await.expect("add");
    f.broker.add_presence("c", &info("u1", "b")).await.expect("add");
    f.broker.add_presence("c", &info("u2", "c")).await.expect("add");
    assert_eq!(f.broker.presence_stats("c").await.expect("stats"), PresenceStats { num_clients: 3, num_users: 2 });
    f.broker.remove_presence("c", "a").await.expect("remove");
    let p = f.broker.presence("c").await.expect("presence");
    assert_eq!(p.keys().cloned().collect::<Vec<_>>(), vec!["b", "c"]);
    f.broker.remove_presence("c", "b").await.expect("remove");
    f.broker.remove_presence("c", "c").await.expect("remove");
    assert!(f.broker.shard("c").channels.is_empty(), "an empty channel leaves nothing behind");
}
