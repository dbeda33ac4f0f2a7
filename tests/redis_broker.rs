//! The Redis engine against real Redis processes (tests/common/redis.rs): the broker
//! alone (offsets and epochs, history reads, idempotency, presence expiry, control,
//! resubscribing after a Redis restart, sharding over 2 instances, a 3-master cluster,
//! TLS with the server's CA, a wrong CA and a client certificate, a primary found through
//! Sentinel).
//! Cross-node tests with real Tidewire servers are in tests/redis_nodes.rs.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::redis::{RedisCluster, RedisSentinel, RedisServer, TestCa, cli};
use tidewire::broker::RedisBroker;
use tidewire::config::{Dur, RedisEngine, RedisTls};
use tidewire::hub::{
    Broker, BrokerHandler, Control, HistoryError, HistoryFilter, HistoryOptions, PublishOptions, Target,
};
use tidewire::metrics::Metrics;
use tidewire::protocol::{ClientInfo, Publication, StreamPosition};

const WAIT: Duration = Duration::from_secs(5);
const META_TTL: Duration = Duration::from_secs(3600);

#[derive(Default)]
struct Recorder {
    publications: Mutex<Vec<Arc<Publication>>>,
    joins: Mutex<Vec<(String, String, bool)>>,
    controls: Mutex<Vec<Control>>,
    epochs: Mutex<Vec<String>>,
    gaps: Mutex<Vec<String>>,
}

impl BrokerHandler for Recorder {
    fn handle_publication(&self, publication: Arc<Publication>, epoch: &str) {
        self.publications.lock().unwrap().push(publication);
        self.epochs.lock().unwrap().push(epoch.to_owned());
    }
    fn handle_gap(&self, channel: &str) {
        self.gaps.lock().unwrap().push(channel.to_owned());
    }
    fn handle_join_leave(&self, channel: &str, info: &ClientInfo, join: bool) {
        self.joins.lock().unwrap().push((channel.to_string(), info.client.clone(), join));
    }
    fn handle_control(&self, control: Control) {
        self.controls.lock().unwrap().push(control);
    }
}

impl Recorder {
    fn offsets(&self, channel: &str) -> Vec<u64> {
        self.publications.lock().unwrap().iter().filter(|p| &*p.channel == channel).map(|p| p.offset).collect()
    }
    fn count(&self, channel: &str) -> usize {
        self.offsets(channel).len()
    }
}

/// Polls `f` until it holds, failing the test after `WAIT`.
async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn engine(addresses: Vec<String>) -> RedisEngine {
    RedisEngine {
        address: addresses,
        prefix: "test".into(),
        io_timeout: Dur(Duration::from_millis(500)),
        connect_timeout: Dur(Duration::from_millis(500)),
        ..RedisEngine::default()
    }
}

struct Node {
    broker: Arc<RedisBroker>,
    seen: Arc<Recorder>,
    metrics: Arc<Metrics>,
}

async fn node(cfg: &RedisEngine) -> Node {
    let metrics = Arc::new(Metrics::default());
    let (broker, readers) = RedisBroker::connect(cfg, metrics.clone()).await.expect("broker connects");
    for reader in readers {
        tokio::spawn(reader.run());
    }
    let seen = Arc::new(Recorder::default());
    let handler: Arc<dyn BrokerHandler> = seen.clone();
    broker.set_handler(Arc::downgrade(&handler));
    Node { broker, seen, metrics }
}

fn publication(channel: &str, n: u32) -> Publication {
    Publication { channel: channel.into(), data: Bytes::from(format!("{{\"n\":{n}}}")), ..Publication::default() }
}

fn history(size: usize) -> PublishOptions {
    PublishOptions {
        history: Some(HistoryOptions { size, ttl: Duration::from_secs(300), meta_ttl: META_TTL }),
        idempotency_key: None,
    }
}

fn info(user: &str, client: &str) -> ClientInfo {
    ClientInfo { user: user.into(), client: client.into(), conn_info: Some(Bytes::from_static(b"{\"a\":1}")), chan_info: None }
}

fn filter(since: Option<StreamPosition>, limit: usize, reverse: bool) -> HistoryFilter {
    HistoryFilter { since, limit, reverse }
}

fn data(p: &[Arc<Publication>]) -> Vec<u64> {
    p.iter().map(|p| p.offset).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_get_offsets_in_one_epoch_and_reach_subscribers_in_order() {
    let redis = RedisServer::start();
    let n = node(&engine(vec![redis.url()])).await;
    n.broker.subscribe("news").await.expect("subscribe");
    let mut epochs = Vec::new();
    for i in 1..=20u32 {
        let out = n.broker.publish(publication("news", i), &history(100)).await.expect("publish");
        let pos = out.position.expect("history gives a position");
        assert_eq!(pos.offset, u64::from(i));
        assert!(!out.duplicate);
        epochs.push(pos.epoch);
    }
    assert!(epochs.windows(2).all(|w| w[0] == w[1]), "one epoch: {epochs:?}");
    assert_eq!(epochs[0].len(), 8);
    until("20 deliveries", || n.seen.count("news") == 20).await;
    assert_eq!(n.seen.offsets("news"), (1..=20).collect::<Vec<_>>(), "delivered in offset order");
    assert!(n.seen.epochs.lock().unwrap().iter().all(|e| *e == epochs[0]), "delivered with the stream's epoch");
    let first = n.seen.publications.lock().unwrap()[0].clone();
    assert_eq!(first.data, Bytes::from_static(b"{\"n\":1}"));

    // Without history: delivered, offset 0, no position.
    let out = n.broker.publish(publication("news", 99), &PublishOptions::default()).await.expect("publish");
    assert_eq!(out.position, None);
    until("the plain publication", || n.seen.count("news") == 21).await;
    assert_eq!(n.seen.offsets("news")[20], 0);

    // Unsubscribed: nothing more arrives.
    n.broker.unsubscribe("news").await.expect("unsubscribe");
    n.broker.publish(publication("news", 100), &history(100)).await.expect("publish");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(n.seen.count("news"), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_reads_since_limit_reverse_and_check_the_epoch_as_memory_does() {
    let redis = RedisServer::start();
    let n = node(&engine(vec![redis.url()])).await;
    let b = &n.broker;
    // A reader before any publication gets a stable epoch at offset 0.
    let empty = b.history("h", &filter(None, 10, false), META_TTL).await.expect("history");
    assert_eq!((empty.position.offset, empty.publications.len()), (0, 0));
    let epoch = empty.position.epoch.clone();
    for i in 1..=5 {
        let out = b.publish(publication("h", i), &history(3)).await.expect("publish");
        assert_eq!(out.position.expect("position").epoch, epoch, "the reader's epoch is the stream's");
    }
    let read = |since: Option<u64>, limit: usize, reverse: bool| {
        let since = since.map(|offset| StreamPosition { offset, epoch: epoch.clone() });
        async move { b.history("h", &filter(since, limit, reverse), META_TTL).await }
    };
    let all = read(None, 10, false).await.expect("read");
    assert_eq!(data(&all.publications), vec![3, 4, 5], "trimmed to history_size");
    assert_eq!(all.position, StreamPosition { offset: 5, epoch: epoch.clone() });
    assert_eq!(data(&read(None, 2, false).await.expect("read").publications), vec![3, 4]);
    assert_eq!(data(&read(None, 10, true).await.expect("read").publications), vec![5, 4, 3]);
    assert_eq!(data(&read(None, 2, true).await.expect("read").publications), vec![5, 4]);
    assert_eq!(data(&read(Some(3), 10, false).await.expect("read").publications), vec![4, 5]);
    assert_eq!(data(&read(Some(5), 10, false).await.expect("read").publications), Vec::<u64>::new());
    assert_eq!(data(&read(Some(5), 10, true).await.expect("read").publications), vec![4, 3]);
    assert_eq!(data(&read(Some(1), 10, true).await.expect("read").publications), Vec::<u64>::new());
    let top_only = read(Some(2), 0, false).await.expect("read");
    assert_eq!((top_only.publications.len(), top_only.position.offset), (0, 5), "limit 0: position only");
    assert_eq!(read(Some(6), 10, false).await, Err(HistoryError::FutureOffset));
    let wrong = StreamPosition { offset: 1, epoch: "other".into() };
    assert_eq!(b.history("h", &filter(Some(wrong), 10, false), META_TTL).await, Err(HistoryError::EpochMismatch));

    // remove_history empties the stream but keeps its position.
    b.remove_history("h").await.expect("remove");
    let after = read(None, 10, false).await.expect("read");
    assert_eq!((after.publications.len(), after.position.clone()), (0, StreamPosition { offset: 5, epoch: epoch.clone() }));
    let next = b.publish(publication("h", 6), &history(3)).await.expect("publish").position.expect("position");
    assert_eq!(next, StreamPosition { offset: 6, epoch: epoch.clone() });
    assert_eq!(data(&read(Some(5), 10, false).await.expect("read").publications), vec![6]);

    // The stream's meta lost (as when Redis loses data): a new epoch, offsets from 1.
    cli(redis.port, &["del", "test.meta.{c.h}"]);
    let fresh = b.publish(publication("h", 7), &history(3)).await.expect("publish").position.expect("position");
    assert_eq!(fresh.offset, 1);
    assert_ne!(fresh.epoch, epoch);
    assert_eq!(read(Some(1), 10, false).await, Err(HistoryError::EpochMismatch));
    let page = b.history("h", &filter(None, 10, false), META_TTL).await.expect("read");
    assert_eq!(data(&page.publications), vec![1], "the old epoch's entries are gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_publishes_once_and_answers_the_first_position() {
    let redis = RedisServer::start();
    let n = node(&engine(vec![redis.url()])).await;
    n.broker.subscribe("idem").await.expect("subscribe");
    let opts = PublishOptions { idempotency_key: Some("order-17".into()), ..history(10) };
    let first = n.broker.publish(publication("idem", 1), &opts).await.expect("publish");
    let again = n.broker.publish(publication("idem", 2), &opts).await.expect("publish");
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.position, first.position);
    let other = PublishOptions { idempotency_key: Some("order-18".into()), ..history(10) };
    let third = n.broker.publish(publication("idem", 3), &other).await.expect("publish");
    assert_eq!(third.position.expect("position").offset, 2);
    until("two deliveries", || n.seen.count("idem") == 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(n.seen.offsets("idem"), vec![1, 2], "the duplicate was not delivered");
    let ttl: i64 = cli(redis.port, &["ttl", "test.idempotency.{c.idem}.order-17"]).parse().expect("ttl");
    assert!((290..=300).contains(&ttl), "5 minute window: {ttl}");
    // Without history a duplicate is still recognised.
    let plain = PublishOptions { idempotency_key: Some("k".into()), history: None };
    n.broker.publish(publication("idem", 4), &plain).await.expect("publish");
    assert!(n.broker.publish(publication("idem", 5), &plain).await.expect("publish").duplicate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_shared_counted_and_expires_when_not_refreshed() {
    let redis = RedisServer::start();
    let cfg = RedisEngine { presence_ttl: Dur(Duration::from_secs(1)), ..engine(vec![redis.url()]) };
    let a = node(&cfg).await;
    let b = node(&cfg).await;
    a.broker.add_presence("room", &info("alice", "c1")).await.expect("add");
    a.broker.add_presence("room", &info("alice", "c2")).await.expect("add");
    b.broker.add_presence("room", &info("bob", "c3")).await.expect("add");
    let seen = b.broker.presence("room").await.expect("presence");
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), vec!["c1", "c2", "c3"]);
    assert_eq!(seen["c1"], info("alice", "c1"));
    let stats = a.broker.presence_stats("room").await.expect("stats");
    assert_eq!((stats.num_clients, stats.num_users), (3, 2));
    b.broker.remove_presence("room", "c2").await.expect("remove");
    assert_eq!(a.broker.presence("room").await.expect("presence").len(), 2);
    // c1 is refreshed, c3's node "died": after the TTL only c1 is left.
    let deadline = Instant::now() + Duration::from_millis(1_600);
    while Instant::now() < deadline {
        a.broker.add_presence("room", &info("alice", "c1")).await.expect("refresh");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let left = b.broker.presence("room").await.expect("presence");
    assert_eq!(left.keys().cloned().collect::<Vec<_>>(), vec!["c1"], "c3 expired");
    assert_eq!(b.broker.presence_stats("room").await.expect("stats").num_users, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_leave_and_control_reach_every_node() {
    let redis = RedisServer::start();
    let cfg = engine(vec![redis.url()]);
    let a = node(&cfg).await;
    let b = node(&cfg).await;
    b.broker.subscribe("room").await.expect("subscribe");
    a.broker.publish_join_leave("room", &info("u", "c9"), true).await.expect("join");
    a.broker.publish_join_leave("room", &info("u", "c9"), false).await.expect("leave");
    until("join and leave on b", || b.seen.joins.lock().unwrap().len() == 2).await;
    assert_eq!(
        *b.seen.joins.lock().unwrap(),
        vec![("room".to_string(), "c9".to_string(), true), ("room".to_string(), "c9".to_string(), false)]
    );
    assert!(a.seen.joins.lock().unwrap().is_empty(), "a has no subscriber of room");
    let control = Control::Unsubscribe(Target { user: "u".into(), ..Target::default() }, "room".into());
    a.broker.control(control.clone()).await.expect("control");
    until("control on both nodes", || {
        a.seen.controls.lock().unwrap().len() == 1 && b.seen.controls.lock().unwrap().len() == 1
    })
    .await;
    assert_eq!(b.seen.controls.lock().unwrap()[0], control);
    a.broker.health().await.expect("healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_fails_calls_in_bounded_time_then_everything_is_resubscribed() {
    let mut redis = RedisServer::start();
    let n = node(&engine(vec![redis.url()])).await;
    n.broker.subscribe("live").await.expect("subscribe");
    n.broker.publish(publication("live", 1), &history(10)).await.expect("publish");
    until("the first delivery", || n.seen.count("live") == 1).await;

    redis.kill();
    let started = Instant::now();
    assert!(n.broker.health().await.is_err(), "health fails while Redis is down");
    let err = n.broker.publish(publication("live", 2), &history(10)).await.expect_err("publish fails");
    assert!(started.elapsed() < Duration::from_secs(2), "bounded by io_timeout: {:?} ({err})", started.elapsed());

    let restarted = tokio::task::spawn_blocking(move || {
        redis.restart();
        redis
    });
    let redis = restarted.await.expect("restart");
    let deadline = Instant::now() + Duration::from_secs(10);
    while n.broker.health().await.is_err() {
        assert!(Instant::now() < deadline, "health never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Resubscribing follows the reconnect: publish until a delivery arrives (bounded).
    let mut delivered = false;
    for i in 0..100u32 {
        if n.broker.publish(publication("live", 10 + i), &history(10)).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if n.seen.count("live") > 1 {
                delivered = true;
                break;
            }
        }
    }
    assert!(delivered, "no delivery after the restart: the channel was not resubscribed");
    assert!(
        n.seen.gaps.lock().unwrap().iter().any(|c| c == "live"),
        "the hub is told the channel may have lost publications while Redis was away"
    );
    // Redis lost everything: the stream starts again in a new epoch.
    let page = n.broker.history("live", &filter(None, 10, false), META_TTL).await.expect("history");
    assert!(page.position.offset >= 1);
    // The control channel was resubscribed too.
    n.broker.control(Control::InsufficientState("x".into())).await.expect("control");
    until("control after the restart", || !n.seen.controls.lock().unwrap().is_empty()).await;
    // The engine's metrics saw it all.
    let engine = &n.metrics.engine;
    assert!(engine.pubsub_reconnects.load(Ordering::Relaxed) >= 1, "a PUB/SUB reconnect was counted");
    let mut text = String::new();
    engine.render(&mut text);
    assert!(text.contains("tidewire_engine_command_errors_total{command=\"publish\"}"), "{text}");
    assert!(text.contains("tidewire_engine_command_duration_seconds_count{command=\"publish\"}"), "{text}");
    assert!(engine.messages_published.load(Ordering::Relaxed) >= 2);
    assert!(engine.messages_received.load(Ordering::Relaxed) >= 2);
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_sharded_over_two_redis_instances() {
    let r1 = RedisServer::start();
    let r2 = RedisServer::start();
    let cfg = engine(vec![r1.url(), r2.url()]);
    let a = node(&cfg).await;
    let b = node(&cfg).await;
    assert_eq!(a.broker.shard_count(), 2);
    let channels: Vec<String> = (0..20).map(|i| format!("shard:{i}")).collect();
    for ch in &channels {
        b.broker.subscribe(ch).await.expect("subscribe");
    }
    for ch in &channels {
        let pos = a.broker.publish(publication(ch, 1), &history(5)).await.expect("publish").position.expect("pos");
        assert_eq!(pos.offset, 1);
        a.broker.add_presence(ch, &info("u", "c")).await.expect("presence");
    }
    until("every channel delivered on b", || channels.iter().all(|c| b.seen.count(c) == 1)).await;
    let count = |port| cli(port, &["dbsize"]).parse::<u64>().expect("dbsize");
    let (n1, n2) = (count(r1.port), count(r2.port));
    assert!(n1 > 0 && n2 > 0, "both shards hold channels: {n1} / {n2}");
    assert_eq!(n1 + n2, 20 * 4, "stream, meta, presence hash and zset per channel");
    for ch in &channels {
        let page = b.broker.history(ch, &filter(None, 10, false), META_TTL).await.expect("history");
        assert_eq!(data(&page.publications), vec![1]);
        assert_eq!(b.broker.presence(ch).await.expect("presence").len(), 1);
    }
    a.broker.control(Control::InsufficientState("all".into())).await.expect("control");
    until("control on both", || b.seen.controls.lock().unwrap().len() == 1 && a.seen.controls.lock().unwrap().len() == 1).await;
    b.broker.health().await.expect("both shards answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_master_redis_cluster_serves_publish_history_presence_and_control() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::start).await.expect("cluster");
    let cfg = engine(vec![cluster.url()]);
    let a = node(&cfg).await;
    let b = node(&cfg).await;
    let channels: Vec<String> = (0..30).map(|i| format!("cl:{i}")).collect();
    for ch in &channels {
        b.broker.subscribe(ch).await.expect("subscribe");
    }
    for ch in &channels {
        for i in 1..=2 {
            let pos = a.broker.publish(publication(ch, i), &history(5)).await.expect("publish").position.expect("pos");
            assert_eq!(pos.offset, u64::from(i));
        }
        a.broker.add_presence(ch, &info("u", "c")).await.expect("presence");
    }
    until("every channel delivered on b", || channels.iter().all(|c| b.seen.offsets(c) == vec![1, 2])).await;
    let counts = cluster.key_counts();
    assert!(counts.iter().all(|n| *n > 0), "keys on every master: {counts:?}");
    for ch in &channels {
        let page = b.broker.history(ch, &filter(None, 10, true), META_TTL).await.expect("history");
        assert_eq!(data(&page.publications), vec![2, 1]);
        assert_eq!(b.broker.presence_stats(ch).await.expect("stats").num_clients, 1);
    }
    let opts = PublishOptions { idempotency_key: Some("x".into()), ..history(5) };
    a.broker.publish(publication("cl:0", 3), &opts).await.expect("publish");
    assert!(b.broker.publish(publication("cl:0", 4), &opts).await.expect("publish").duplicate);
    a.broker.control(Control::InsufficientState("all".into())).await.expect("control");
    until("control on both", || b.seen.controls.lock().unwrap().len() == 1 && a.seen.controls.lock().unwrap().len() == 1).await;
    a.broker.health().await.expect("healthy");
}

/// Subscribe, three publications with history, delivery in order, history and health:
/// what every way of reaching Redis must serve.
async fn serves_publish_history_and_subscribe(n: &Node, channel: &str) {
    n.broker.subscribe(channel).await.expect("subscribe");
    for i in 1..=3u32 {
        let pos = n.broker.publish(publication(channel, i), &history(10)).await.expect("publish").position;
        assert_eq!(pos.expect("history gives a position").offset, u64::from(i));
    }
    until("three deliveries", || n.seen.count(channel) == 3).await;
    assert_eq!(n.seen.offsets(channel), vec![1, 2, 3]);
    let page = n.broker.history(channel, &filter(None, 10, false), META_TTL).await.expect("history");
    assert_eq!(data(&page.publications), vec![1, 2, 3]);
    n.broker.control(Control::InsufficientState("x".into())).await.expect("control");
    until("the control message", || !n.seen.controls.lock().unwrap().is_empty()).await;
    n.broker.health().await.expect("healthy");
}

/// `engine.redis.tls` trusting `ca` (PEM text or a file path) only.
fn with_ca(ca: &str) -> RedisTls {
    RedisTls { server_ca_pem: ca.to_string(), ..RedisTls::default() }
}

/// The error of a connect that must fail, quickly.
async fn connect_error(cfg: &RedisEngine) -> String {
    let started = Instant::now();
    let err = match RedisBroker::connect(cfg, Arc::new(Metrics::default())).await {
        Ok(_) => panic!("connected to {:?} with {:?}", cfg.address, cfg.tls),
        Err(e) => e.to_string(),
    };
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "fails within connect_timeout: {took:?} ({err})");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_servers_ca_as_pem_text_or_file_serves_publish_history_and_subscribe() {
    let ca = TestCa::new("tidewire test CA");
    let redis = RedisServer::start_tls(&ca, false);
    assert!(redis.url().starts_with("rediss://127.0.0.1:"), "{}", redis.url());
    let text = RedisEngine { tls: with_ca(&ca.ca_pem), ..engine(vec![redis.url()]) };
    serves_publish_history_and_subscribe(&node(&text).await, "tls:text").await;
    let file = RedisEngine {
        tls: RedisTls { server_ca_pem: ca.ca_file.display().to_string(), ..RedisTls::default() },
        ..engine(vec![redis.url()])
    };
    serves_publish_history_and_subscribe(&node(&file).await, "tls:file").await;
    // tls.enabled with a plain redis:// URL turns TLS on as well.
    let enabled = RedisEngine {
        tls: RedisTls { enabled: true, server_ca_pem: ca.ca_pem.clone(), ..RedisTls::default() },
        ..engine(vec![format!("redis://127.0.0.1:{}", redis.port)])
    };
    serves_publish_history_and_subscribe(&node(&enabled).await, "tls:enabled").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_wrong_ca_or_without_tls_fails_at_connect_naming_the_address() {
    let ca = TestCa::new("tidewire test CA");
    let other = TestCa::new("some other CA");
    let redis = RedisServer::start_tls(&ca, false);
    let address = format!("127.0.0.1:{}", redis.port);
    let wrong = RedisEngine { tls: with_ca(&other.ca_pem), ..engine(vec![redis.url()]) };
    let err = connect_error(&wrong).await;
    assert!(err.contains(&address), "names the address: {err}");
    assert!(err.contains("InvalidCertificate") && err.contains("server_ca_pem"), "says what to check: {err}");
    // The system's roots do not know the test CA either.
    let err = connect_error(&engine(vec![redis.url()])).await;
    assert!(err.contains(&address), "names the address: {err}");
    // Plain TCP to a TLS port.
    let err = connect_error(&engine(vec![format!("redis://{address}")])).await;
    assert!(err.contains(&address), "names the address: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_connects_with_a_client_certificate_and_fails_without() {
    let ca = TestCa::new("tidewire test CA");
    let redis = RedisServer::start_tls(&ca, true);
    let address = format!("127.0.0.1:{}", redis.port);
    let with_cert = RedisEngine {
        tls: RedisTls {
            server_ca_pem: ca.ca_pem.clone(),
            cert_pem: ca.client_cert_pem.clone(),
            key_pem: ca.client_key_pem.clone(),
            ..RedisTls::default()
        },
        ..engine(vec![redis.url()])
    };
    with_cert.validate().expect("valid");
    serves_publish_history_and_subscribe(&node(&with_cert).await, "mtls:text").await;
    let from_files = RedisEngine {
        tls: RedisTls {
            server_ca_pem: ca.ca_file.display().to_string(),
            cert_pem: ca.client_cert_file.display().to_string(),
            key_pem: ca.client_key_file.display().to_string(),
            ..RedisTls::default()
        },
        ..engine(vec![redis.url()])
    };
    serves_publish_history_and_subscribe(&node(&from_files).await, "mtls:file").await;
    let without = RedisEngine { tls: with_ca(&ca.ca_pem), ..engine(vec![redis.url()]) };
    let err = connect_error(&without).await;
    assert!(err.contains(&address), "names the address: {err}");
    assert!(err.contains("engine.redis.tls.cert_pem"), "says a client certificate is wanted: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_finds_the_primary_which_serves_publish_history_and_subscribe() {
    let sentinel = tokio::task::spawn_blocking(|| RedisSentinel::start("mymaster")).await.expect("sentinel");
    let cfg = engine(vec![sentinel.url()]);
    let n = node(&cfg).await;
    serves_publish_history_and_subscribe(&n, "sentinel:a").await;
    // The keys are on the primary the Sentinel named.
    let keys: u64 = cli(sentinel.primary.port, &["dbsize"]).parse().expect("dbsize");
    assert!(keys > 0, "the primary holds the channel's keys");
    // The master's name may also come from engine.redis.sentinel_master_name.
    let named = RedisEngine {
        sentinel_master_name: "mymaster".into(),
        ..engine(vec![format!("redis+sentinel://127.0.0.1:{}", sentinel.port)])
    };
    serves_publish_history_and_subscribe(&node(&named).await, "sentinel:b").await;
    // A name the Sentinel does not know fails at connect, naming the Sentinel.
    let unknown = engine(vec![format!("redis+sentinel://127.0.0.1:{}?sentinel_master_name=nosuch", sentinel.port)]);
    let err = connect_error(&unknown).await;
    assert!(err.contains(&format!("127.0.0.1:{}", sentinel.port)), "names the sentinel: {err}");
}
