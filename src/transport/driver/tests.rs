//! The driver against a recording transport and a real hub whose engine can be made slow:
//! what a waiting command must not stop, the order of replies, the bound on queued
//! commands, controls that hold later output, the coalescing window.

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc;

use super::*;
use crate::config::Config;
use crate::hub::tests::EngineDouble;
use crate::hub::{Hub, Target};
use crate::metrics::Metrics;
use crate::protocol::ClientInfo;
use crate::session::Auth;
use crate::transport::{Framing, encode_batch};

const SECRET: &str = "s";
const INFO: TransportInfo = TransportInfo { name: "websocket", bidirectional: true, emulation: false };

/// What the recording transport saw.
#[derive(Default)]
struct Record {
    /// Each write call: when, and the JSON messages it carried.
    writes: Vec<(Instant, Vec<String>)>,
    closed: Option<Option<Disconnect>>,
    /// Filler messages written (see the busy-outbox test).
    filler: usize,
}

struct Probe {
    rx: mpsc::Receiver<Inbound>,
    record: Arc<Mutex<Record>>,
    received: Arc<AtomicUsize>,
}

impl Transport for Probe {
    fn info(&self) -> TransportInfo {
        INFO
    }
    fn codec(&self) -> Codec {
        Codec::Json
    }
    async fn recv(&mut self) -> Inbound {
        let got = self.rx.recv().await.unwrap_or(Inbound::Gone);
        self.received.fetch_add(1, AtomicOrdering::SeqCst);
        got
    }
    async fn write(&mut self, items: &mut Vec<Outgoing>) -> Result<(), WriteError> {
        let mut messages = Vec::new();
        let mut next = 0;
        while next < items.len() {
            let mut out = Vec::new();
            encode_batch(items, &mut next, &mut out, Codec::Json, Framing::Joined, 1).map_err(WriteError::Close)?;
            messages.push(String::from_utf8(out).map_err(|_| WriteError::Io)?);
        }
        items.clear();
        let mut record = self.record.lock().expect("record");
        // The busy-outbox test's filler is counted, not kept (it would be millions).
        let before = messages.len();
        messages.retain(|m| !m.contains(r#""channel":"busy""#));
        record.filler += before - messages.len();
        record.writes.push((Instant::now(), messages));
        Ok(())
    }
    async fn close(&mut self, reason: Option<&Disconnect>) {
        self.record.lock().expect("record").closed = Some(reason.cloned());
    }
}

struct Conn {
    tx: mpsc::Sender<Inbound>,
    record: Arc<Mutex<Record>>,
    received: Arc<AtomicUsize>,
    outbox: Arc<Outbox>,
    task: tokio::task::JoinHandle<()>,
}

impl Conn {
    async fn send(&self, line: serde_json::Value) {
        self.tx.send(Inbound::Message(Bytes::from(line.to_string()))).await.expect("driver gone");
    }

    fn messages(&self) -> Vec<String> {
        self.record.lock().expect("record").writes.iter().flat_map(|(_, m)| m.clone()).collect()
    }

    /// Waits (bounded) until a written message satisfies `f`.
    async fn wait_for(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(m) = self.messages().into_iter().find(|m| f(m)) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} written; got {:?}, closed {:?}",
                self.messages(),
                self.record.lock().expect("record").closed
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A hub with `[client] ping` settings and `extra` channel config, on an engine whose
/// publishes take `publish_delay`.
fn hub_with(ping: &str, extra: &str, publish_delay: Duration) -> (Hub, Arc<Auth>) {
    hub_on(ping, extra, publish_delay, Duration::ZERO)
}

fn hub_on(ping: &str, extra: &str, publish_delay: Duration, unsubscribe_delay: Duration) -> (Hub, Arc<Auth>) {
    hub_over(ping, extra, Arc::new(EngineDouble { publish_delay, unsubscribe_delay, ..Default::default() }))
}

fn hub_over(ping: &str, extra: &str, engine: Arc<EngineDouble>) -> (Hub, Arc<Auth>) {
    let text = format!(
        "[client]\n{ping}\n[client.token]\nhmac_secret_key = \"{SECRET}\"\n\
         [channel.without_namespace]\nallow_subscribe_for_client = true\nallow_publish_for_client = true\n{extra}"
    );
    let config = Arc::new(Config::from_text(&text).expect("config").config);
    let auth = Auth::from_config(&config.client).expect("auth");
    (Hub::new(config, engine, Arc::new(Metrics::default())), auth)
}

fn hub(extra: &str, publish_delay: Duration) -> (Hub, Arc<Auth>) {
    hub_with("", extra, publish_delay)
}

async fn connect(hub: &Hub, auth: &Arc<Auth>, user: &str) -> Conn {
    let (tx, rx) = mpsc::channel(1024);
    let record = Arc::new(Mutex::new(Record::default()));
    let received = Arc::new(AtomicUsize::new(0));
    let outbox = Outbox::new(1 << 20);
    let session = Session::new(hub.clone(), auth.clone(), outbox.clone(), INFO, now_ms());
    let probe = Probe { rx, record: record.clone(), received: received.clone() };
    let task = tokio::spawn(run(probe, session, outbox.clone(), Vec::new()));
    let conn = Conn { tx, record, received, outbox, task };
    let token = crate::auth::jwt::mint_hs256(SECRET, &json!({"sub": user})).expect("mint");
    conn.send(json!({"id": 1, "connect": {"token": token}})).await;
    conn.wait_for("connect reply", |m| m.starts_with(r#"{"id":1,"connect""#)).await;
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_command_stops_neither_the_writer_nor_the_heartbeat() {
    let (hub, auth) = hub_with("ping_interval = \"1s\"\npong_timeout = \"500ms\"", "", Duration::from_millis(2_500));
    let conn = connect(&hub, &auth, "u").await;
    let sent = Instant::now();
    conn.send(json!({"id": 2, "publish": {"channel": "c", "data": {}}})).await;
    conn.send(json!({"id": 3, "ping": {}})).await;
    // Output queued while the publish waits is written at once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.outbox.push(Outgoing::Push(Box::new(crate::protocol::Push::Join { channel: "meanwhile".into(), info: ClientInfo::default() })));
    conn.wait_for("message push", |m| m.contains("meanwhile")).await;
    // Pings go out (the first within 1 s of connect) and a pong in time is taken: no 3012.
    // Answer every ping until the publish is answered.
    let mut ponged = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let messages = conn.messages();
        if let Some(r) = messages.iter().find(|m| m.starts_with(r#"{"id":2"#)) {
            break r.clone();
        }
        let pings = messages.iter().filter(|m| *m == "{}").count();
        while ponged < pings {
            conn.send(json!({})).await;
            ponged += 1;
        }
        assert!(Instant::now() < deadline, "no publish reply: {messages:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(ponged >= 1, "at least one ping went out while the publish waited");
    assert!(sent.elapsed() >= Duration::from_millis(2_400), "the publish waited on the engine");
    assert_eq!(reply, r#"{"id":2,"publish":{}}"#);
    let messages = conn.messages();
    let at = |prefix: &str| messages.iter().position(|m| m.starts_with(prefix)).expect(prefix);
    assert!(at("{}") < at(r#"{"id":2"#), "the ping was not held behind the publish: {messages:?}");
    assert!(at(r#"{"id":2"#) < at(r#"{"id":3"#), "commands are answered in order: {messages:?}");
    conn.wait_for("ping reply", |m| m.starts_with(r#"{"id":3"#)).await;
    assert_eq!(conn.record.lock().expect("record").closed, None, "still open");
    drop(conn.tx);
    conn.task.await.expect("driver");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_queue_up_to_the_bound_then_reading_pauses() {
    let (hub, auth) = hub("", Duration::from_millis(1_000));
    let conn = connect(&hub, &auth, "u").await;
    let before = conn.received.load(AtomicOrdering::SeqCst);
    conn.send(json!({"id": 2, "publish": {"channel": "c", "data": {}}})).await;
    let extra = MAX_QUEUED_COMMANDS + 20;
    for i in 0..extra {
        conn.send(json!({"id": 3 + i, "ping": {}})).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let taken = conn.received.load(AtomicOrdering::SeqCst) - before;
    assert!(taken <= MAX_QUEUED_COMMANDS + 1, "read {taken} messages while one command waited");
    // Once the publish is done, every queued command is answered, in order.
    let last = format!(r#"{{"id":{}"#, 2 + extra);
    conn.wait_for("last reply", |m| m.starts_with(&last)).await;
    let ids: Vec<u64> = conn
        .messages()
        .iter()
        .filter_map(|m| serde_json::from_str::<serde_json::Value>(m).ok()?.get("id")?.as_u64())
        .collect();
    assert_eq!(ids, (1..=(2 + extra) as u64).collect::<Vec<_>>());
    drop(conn.tx);
    conn.task.await.expect("driver");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_unsubscribe_is_not_overtaken_by_later_publications() {
    let (hub, auth) = hub("", Duration::ZERO);
    let conn = connect(&hub, &auth, "u").await;
    conn.send(json!({"id": 2, "subscribe": {"channel": "c"}})).await;
    conn.wait_for("subscribe reply", |m| m.starts_with(r#"{"id":2"#)).await;
    for round in 0..20 {
        let target = Target { user: "u".into(), ..Default::default() };
        hub.control(Control::Unsubscribe(target, "c".into())).await.expect("unsubscribe");
        let data = format!("{{\"after\":{round}}}");
        hub.publish(crate::hub::PublishRequest { channel: "c".into(), data: Bytes::from(data), ..Default::default() })
            .await
            .expect("publish");
        conn.wait_for("unsubscribe push", |m| m.contains(r#""unsubscribe""#) && !m.starts_with(r#"{"id""#)).await;
        let messages = conn.messages();
        assert!(!messages.iter().any(|m| m.contains("after")), "a publication after the unsubscribe got through: {messages:?}");
        // Subscribe again for the next round.
        conn.record.lock().expect("record").writes.clear();
        let id = 100 + round;
        conn.send(json!({"id": id, "subscribe": {"channel": "c"}})).await;
        conn.wait_for("subscribe reply", |m| m.starts_with(&format!(r#"{{"id":{id}"#))).await;
    }
    drop(conn.tx);
    conn.task.await.expect("driver");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coalescing_window_puts_a_burst_in_one_write() {
    let ns = "[[channel.namespaces]]\nname = \"batched\"\nallow_subscribe_for_client = true\n\
              batch_max_delay = \"200ms\"\n[[channel.namespaces]]\nname = \"sized\"\n\
              allow_subscribe_for_client = true\nbatch_max_delay = \"1s\"\nbatch_max_size = 3\n";
    let (hub, auth) = hub(ns, Duration::ZERO);
    let conn = connect(&hub, &auth, "u").await;
    for (id, ch) in [(2, "batched:a"), (3, "sized:a")] {
        conn.send(json!({"id": id, "subscribe": {"channel": ch}})).await;
        conn.wait_for("subscribe reply", |m| m.starts_with(&format!(r#"{{"id":{id}"#))).await;
    }
    let publish = |ch: &'static str, i: u32| {
        let hub = hub.clone();
        async move {
            let req = crate::hub::PublishRequest { channel: ch.into(), data: Bytes::from(i.to_string()), ..Default::default() };
            hub.publish(req).await.expect("publish");
        }
    };
    conn.record.lock().expect("record").writes.clear();
    let start = Instant::now();
    for i in 0..5 {
        publish("batched:a", i).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    conn.wait_for("last publication", |m| m.contains(r#""data":4"#)).await;
    {
        let record = conn.record.lock().expect("record");
        let pubs: Vec<_> = record.writes.iter().filter(|(_, m)| m.iter().any(|m| m.contains("batched:a"))).collect();
        assert_eq!(pubs.len(), 1, "one write for the burst: {:?}", record.writes);
        assert_eq!(pubs[0].1.len(), 5);
        assert!(pubs[0].0 - start >= Duration::from_millis(180), "held for the window");
    }
    // batch_max_size sends as soon as that many are held, long before the 1 s window.
    conn.record.lock().expect("record").writes.clear();
    let start = Instant::now();
    for i in 0..3 {
        publish("sized:a", i).await;
    }
    conn.wait_for("third publication", |m| m.contains("sized:a") && m.contains(r#""data":2"#)).await;
    assert!(start.elapsed() < Duration::from_millis(800), "flushed by size, not by the delay");
    drop(conn.tx);
    conn.task.await.expect("driver");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_message_closes_after_the_replies_before_it() {
    let (hub, auth) = hub("", Duration::ZERO);
    let mut conn = connect(&hub, &auth, "u").await;
    conn.tx.send(Inbound::Message(Bytes::from_static(b"{\"id\":2,\"ping\":{}}\n{nope"))).await.expect("send");
    tokio::time::timeout(Duration::from_secs(10), &mut conn.task).await.expect("closed in time").expect("driver");
    assert!(conn.messages().iter().any(|m| m.starts_with(r#"{"id":2"#)), "the good command was answered first");
    assert_eq!(conn.record.lock().expect("record").closed, Some(Some(Disconnect::BAD_REQUEST)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_outbox_starves_neither_pings_nor_commands() {
    let (hub, auth) = hub_with("ping_interval = \"1s\"\npong_timeout = \"900ms\"", "", Duration::ZERO);
    let conn = connect(&hub, &auth, "u").await;
    // Another thread keeps the outbox ready for 3 s, below its byte bound: on a loaded
    // machine the pusher can outrun the driver, and an overflow would close the
    // connection as slow (3008), which is not what this test is about.
    let outbox = conn.outbox.clone();
    let pusher = tokio::spawn(async move {
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            if outbox.queued_bytes() > 256 << 10 {
                tokio::task::yield_now().await;
                continue;
            }
            for _ in 0..64 {
                outbox.push(Outgoing::Push(Box::new(crate::protocol::Push::Join {
                    channel: "busy".into(),
                    info: ClientInfo::default(),
                })));
            }
            tokio::task::yield_now().await;
        }
    });
    let start = Instant::now();
    conn.send(json!({"id": 2, "ping": {}})).await;
    conn.wait_for("ping reply", |m| m.starts_with(r#"{"id":2"#)).await;
    assert!(start.elapsed() < Duration::from_millis(1_000), "a command is answered while the outbox is busy");
    // Every ping due while the outbox is busy goes out, and each pong is taken in time.
    let mut ponged = 0;
    while !pusher.is_finished() {
        let pings = conn.messages().iter().filter(|m| *m == "{}").count();
        while ponged < pings {
            conn.send(json!({})).await;
            ponged += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(ponged >= 2, "pings every second for 3 s, got {ponged}");
    pusher.await.expect("pusher");
    assert!(conn.record.lock().expect("record").filler > 1_000, "the outbox was busy");
    assert_eq!(conn.record.lock().expect("record").closed, None, "the pong was taken in time: no 3012");
    drop(conn.tx);
    conn.task.await.expect("driver");
}

/// A transport whose input is broken for good: every read says so at once.
struct Broken {
    record: Arc<Mutex<Record>>,
}

impl Transport for Broken {
    fn info(&self) -> TransportInfo {
        INFO
    }
    fn codec(&self) -> Codec {
        Codec::Json
    }
    async fn recv(&mut self) -> Inbound {
        Inbound::Close(Disconnect::BAD_REQUEST)
    }
    async fn write(&mut self, items: &mut Vec<Outgoing>) -> Result<(), WriteError> {
        items.clear();
        Ok(())
    }
    async fn close(&mut self, reason: Option<&Disconnect>) {
        self.record.lock().expect("record").closed = Some(reason.cloned());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transport_that_keeps_reporting_bad_input_is_closed_not_spun_on() {
    let (hub, auth) = hub("", Duration::ZERO);
    let record = Arc::new(Mutex::new(Record::default()));
    let outbox = Outbox::new(1 << 20);
    let session = Session::new(hub.clone(), auth.clone(), outbox.clone(), INFO, now_ms());
    let broken = Broken { record: record.clone() };
    tokio::time::timeout(Duration::from_secs(5), run(broken, session, outbox, Vec::new())).await.expect("closed in time");
    assert_eq!(record.lock().expect("record").closed, Some(Some(Disconnect::BAD_REQUEST)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_queued_while_a_control_is_applied_stays_under_the_outbox_bound() {
    // The API unsubscribe of "c" waits 1.5 s on the engine; meanwhile 1.5 MB is published
    // into "d", past the connection's 1 MiB outbox: it must close as slow (3008), not pile
    // the publications up in the driver while the control is held.
    let (hub, auth) = hub_on("", "", Duration::ZERO, Duration::from_millis(1_500));
    let conn = connect(&hub, &auth, "u").await;
    for (id, ch) in [(2, "c"), (3, "d")] {
        conn.send(json!({"id": id, "subscribe": {"channel": ch}})).await;
        conn.wait_for("subscribe reply", |m| m.starts_with(&format!(r#"{{"id":{id}"#))).await;
    }
    let target = Target { user: "u".into(), ..Default::default() };
    hub.control(Control::Unsubscribe(target, "c".into())).await.expect("unsubscribe");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // 150 publications of 10 KB: few enough that publishing them all takes far less than
    // the control's 1.5 s even on a loaded machine.
    let data = Bytes::from(format!("\"{}\"", "x".repeat(10_000)));
    for _ in 0..150 {
        let req = crate::hub::PublishRequest { channel: "d".into(), data: data.clone(), ..Default::default() };
        hub.publish(req).await.expect("publish");
    }
    let mut conn = conn;
    tokio::time::timeout(Duration::from_secs(10), &mut conn.task).await.expect("closed in time").expect("driver");
    assert_eq!(conn.record.lock().expect("record").closed, Some(Some(Disconnect::SLOW)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_engine_subscribe_is_answered_once_with_error_100() {
    // The engine takes 300 ms and then fails the first subscribe; meanwhile a second
    // connection subscribes to the same channel and waits for that engine subscription.
    let engine = Arc::new(EngineDouble {
        subscribe_delay: Duration::from_millis(300),
        fail_subscribes: AtomicUsize::new(1),
        ..Default::default()
    });
    let (hub, auth) = hub_over("", "", engine.clone());
    let (a, b) = (connect(&hub, &auth, "a").await, connect(&hub, &auth, "b").await);
    a.send(json!({"id": 2, "subscribe": {"channel": "c"}})).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    b.send(json!({"id": 2, "subscribe": {"channel": "c"}})).await;
    let failed = a.wait_for("error reply", |m| m.starts_with(r#"{"id":2"#)).await;
    assert!(failed.contains(r#""code":100"#), "{failed}");
    let ok = b.wait_for("subscribe reply", |m| m.starts_with(r#"{"id":2"#)).await;
    assert!(ok.contains(r#""subscribe""#), "the waiting subscribe retried the engine: {ok}");
    let publish = crate::hub::PublishRequest { channel: "c".into(), data: Bytes::from_static(b"1"), ..Default::default() };
    hub.publish(publish).await.expect("publish");
    b.wait_for("publication", |m| m.contains(r#""pub""#)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = a.messages();
    assert_eq!(seen.iter().filter(|m| m.starts_with(r#"{"id":2"#)).count(), 1, "answered once: {seen:?}");
    assert!(!seen.iter().any(|m| m.contains(r#""pub""#)), "no publication after the error: {seen:?}");
    assert_eq!(engine.events(), ["subscribe c", "subscribed c (failed)", "subscribe c", "subscribed c"]);
}
