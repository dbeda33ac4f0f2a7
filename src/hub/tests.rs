//! Fan-out, control routing and the engine subscription state machine against
//! in-memory outboxes, and [`EngineDouble`], the engine double other modules' tests use.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::broker::MemoryBroker;
use crate::protocol::codec::Codec;

/// The memory engine behind a remote engine's delays and failures: publishes,
/// subscribes and unsubscribes take their delay; the next `fail_subscribes` subscribes
/// fail. `events` records engine subscribes and unsubscribes as they start and finish.
pub(crate) struct EngineDouble {
    pub(crate) inner: Arc<MemoryBroker>,
    pub(crate) publish_delay: Duration,
    pub(crate) subscribe_delay: Duration,
    pub(crate) unsubscribe_delay: Duration,
    pub(crate) fail_subscribes: AtomicUsize,
    pub(crate) events: Mutex<Vec<String>>,
    /// Shared with other nodes' doubles: controls reach every node on it, as over Redis.
    pub(crate) bus: Option<Arc<Bus>>,
}

/// The nodes of a multi-node test: every handler a control goes to.
#[derive(Default)]
pub(crate) struct Bus(Mutex<Vec<Weak<dyn BrokerHandler>>>);

impl Default for EngineDouble {
    fn default() -> Self {
        Self {
            inner: MemoryBroker::new(),
            publish_delay: Duration::ZERO,
            subscribe_delay: Duration::ZERO,
            unsubscribe_delay: Duration::ZERO,
            fail_subscribes: AtomicUsize::new(0),
            events: Mutex::default(),
            bus: None,
        }
    }
}

impl EngineDouble {
    fn event(&self, e: String) {
        self.events.lock().expect("events").push(e);
    }

    pub(crate) fn events(&self) -> Vec<String> {
        self.events.lock().expect("events").clone()
    }
}

#[async_trait]
impl Broker for EngineDouble {
    fn name(&self) -> &'static str {
        "double"
    }
    fn set_handler(&self, handler: Weak<dyn BrokerHandler>) {
        if let Some(bus) = &self.bus {
            bus.0.lock().expect("bus").push(handler.clone());
        }
        self.inner.set_handler(handler);
    }
    async fn publish(&self, publication: Publication, opts: &PublishOptions) -> Result<PublishOutcome, BrokerError> {
        tokio::time::sleep(self.publish_delay).await;
        self.inner.publish(publication, opts).await
    }
    async fn publish_join_leave(&self, channel: &str, info: &ClientInfo, join: bool) -> Result<(), BrokerError> {
        self.inner.publish_join_leave(channel, info, join).await
    }
    async fn subscribe(&self, channel: &str) -> Result<(), BrokerError> {
        self.event(format!("subscribe {channel}"));
        tokio::time::sleep(self.subscribe_delay).await;
        let fail = self.fail_subscribes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok();
        self.event(format!("subscribed {channel}{}", if fail { " (failed)" } else { "" }));
        if fail {
            return Err(BrokerError("engine down".into()));
        }
        self.inner.subscribe(channel).await
    }
    async fn unsubscribe(&self, channel: &str) -> Result<(), BrokerError> {
        self.event(format!("unsubscribe {channel}"));
        tokio::time::sleep(self.unsubscribe_delay).await;
        self.inner.unsubscribe(channel).await
    }
    async fn history(&self, channel: &str, filter: &HistoryFilter, meta_ttl: Duration) -> Result<HistoryPage, HistoryError> {
        self.inner.history(channel, filter, meta_ttl).await
    }
    async fn remove_history(&self, channel: &str) -> Result<(), BrokerError> {
        self.inner.remove_history(channel).await
    }
    async fn add_presence(&self, channel: &str, info: &ClientInfo) -> Result<(), BrokerError> {
        self.event(format!("presence {channel}"));
        self.inner.add_presence(channel, info).await
    }
    async fn remove_presence(&self, channel: &str, client: &str) -> Result<(), BrokerError> {
        self.inner.remove_presence(channel, client).await
    }
    async fn presence(&self, channel: &str) -> Result<BTreeMap<String, ClientInfo>, BrokerError> {
        self.inner.presence(channel).await
    }
    async fn presence_stats(&self, channel: &str) -> Result<PresenceStats, BrokerError> {
        self.inner.presence_stats(channel).await
    }
    async fn control(&self, control: Control) -> Result<(), BrokerError> {
        let Some(bus) = &self.bus else { return self.inner.control(control).await };
        let nodes: Vec<_> = bus.0.lock().expect("bus").iter().filter_map(Weak::upgrade).collect();
        for node in nodes {
            node.handle_control(control.clone());
        }
        Ok(())
    }
    async fn health(&self) -> Result<(), BrokerError> {
        self.inner.health().await
    }
}

fn hub_on(engine: Arc<EngineDouble>) -> Hub {
    let config = Config::from_text("[channel.without_namespace]\nallow_subscribe_for_client = true")
        .expect("config")
        .config;
    Hub::new(Arc::new(config), engine, Arc::new(Metrics::default()))
}

/// A `then` for [`Hub::subscribe`] that records `name` among the engine's events.
fn note(engine: &Arc<EngineDouble>, name: &str) -> impl FnOnce() + use<> {
    let (engine, name) = (engine.clone(), name.to_owned());
    move || engine.event(name)
}

#[tokio::test]
async fn a_second_subscriber_waits_for_the_first_engine_subscription() {
    let engine = Arc::new(EngineDouble { subscribe_delay: Duration::from_millis(300), ..Default::default() });
    let hub = hub_on(engine.clone());
    let (a, b) = (hub.next_conn_id(), hub.next_conn_id());
    let first = tokio::spawn({
        let (hub, then) = (hub.clone(), note(&engine, "reply a"));
        async move { hub.subscribe("c", Subscriber::plain(a, Outbox::new(1 << 20)), then).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    hub.subscribe("c", Subscriber::plain(b, Outbox::new(1 << 20)), note(&engine, "reply b")).await.expect("second");
    first.await.expect("task").expect("first");
    assert_eq!(engine.events(), ["subscribe c", "subscribed c", "reply a", "reply b"], "one engine subscribe, then both");
    assert_eq!(hub.inner.registry.count("c"), 2);
}

#[tokio::test]
async fn a_failed_engine_subscription_adds_nobody_and_the_next_subscribe_retries() {
    let engine = Arc::new(EngineDouble { fail_subscribes: AtomicUsize::new(1), ..Default::default() });
    let hub = hub_on(engine.clone());
    let outbox = Outbox::new(1 << 20);
    let conn = hub.next_conn_id();
    let err = hub.subscribe("c", Subscriber::plain(conn, outbox.clone()), note(&engine, "reply")).await;
    assert!(matches!(err, Err(Error::Broker(_))), "{err:?}");
    assert_eq!(hub.inner.registry.count("c"), 0, "rolled back: nobody subscribed");
    assert_eq!(hub.inner.engine_subs.len(), 0);
    hub.publish(PublishRequest { channel: "c".into(), data: "1".into(), ..Default::default() }).await.expect("pub");
    let mut items = Vec::new();
    outbox.drain(&mut items);
    assert!(items.is_empty(), "nothing reaches a failed subscription: {items:?}");
    hub.subscribe("c", Subscriber::plain(conn, outbox.clone()), note(&engine, "reply")).await.expect("retry");
    assert_eq!(engine.events(), ["subscribe c", "subscribed c (failed)", "subscribe c", "subscribed c", "reply"]);
}

#[tokio::test]
async fn an_unsubscribe_cannot_overtake_the_subscribe_before_it() {
    let engine = Arc::new(EngineDouble { subscribe_delay: Duration::from_millis(300), ..Default::default() });
    let hub = hub_on(engine.clone());
    let conn = hub.next_conn_id();
    let subscribing = tokio::spawn({
        let (hub, then) = (hub.clone(), note(&engine, "reply"));
        async move { hub.subscribe("c", Subscriber::plain(conn, Outbox::new(1 << 20)), then).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    hub.unsubscribe("c", conn).await;
    subscribing.await.expect("task").expect("subscribe");
    assert_eq!(engine.events(), ["subscribe c", "subscribed c", "reply", "unsubscribe c"]);
    assert_eq!((hub.inner.registry.count("c"), hub.inner.engine_subs.len()), (0, 0), "nothing left behind");
}

#[tokio::test]
async fn a_gap_at_the_engine_tells_positioned_subscribers_to_recover() {
    let hub = hub();
    let (plain, positioned) = (Outbox::new(1 << 20), Outbox::new(1 << 20));
    hub.subscribe("c", Subscriber::plain(hub.next_conn_id(), plain.clone()), || ()).await.expect("plain");
    let state = StreamState::buffering(true);
    let sub = Subscriber::new(hub.next_conn_id(), positioned.clone(), false, Some(state.clone()));
    hub.subscribe("c", sub, || ()).await.expect("positioned");
    state.go_live("e", |_| 0);
    hub.inner.handle_gap("c");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    plain.drain(&mut a);
    positioned.drain(&mut b);
    assert!(a.is_empty(), "a plain subscription has no place to lose");
    assert!(matches!(&b[..], [Outgoing::Control(c)] if **c == Control::InsufficientState("c".into())), "{b:?}");
}

fn hub() -> Hub {
    let config = Config::from_text("[channel.without_namespace]\nallow_subscribe_for_client = true")
        .expect("config")
        .config;
    Hub::new(Arc::new(config), MemoryBroker::new(), Arc::new(Metrics::default()))
}

fn entry(hub: &Hub, user: &str, client: &str) -> ConnEntry {
    ConnEntry {
        conn: hub.next_conn_id(),
        client: client.into(),
        user: user.into(),
        session: uuid::Uuid::new_v4(),
        outbox: Outbox::new(1 << 20),
    }
}

#[test]
fn a_session_target_names_the_session_id_in_either_case() {
    let id = uuid::Uuid::new_v4();
    assert!(session_is(id, &id.to_string()));
    assert!(session_is(id, &id.to_string().to_uppercase()));
    assert!(!session_is(id, &uuid::Uuid::new_v4().to_string()));
    assert!(!session_is(id, &id.simple().to_string()), "the hyphenated form, as the connect reply gives it");
}

#[tokio::test]
async fn fan_out_shares_one_publication_and_one_encoding() {
    let hub = hub();
    let outboxes: Vec<_> = (0..3).map(|_| Outbox::new(1 << 20)).collect();
    for o in &outboxes {
        hub.subscribe("c", Subscriber::plain(hub.next_conn_id(), o.clone()), || ()).await.expect("sub");
    }
    hub.publish(PublishRequest { channel: "c".into(), data: "42".into(), ..Default::default() }).await.expect("pub");
    let mut shared = Vec::new();
    for o in &outboxes {
        let mut items = Vec::new();
        o.drain(&mut items);
        match items.pop() {
            Some(Outgoing::Publication(p)) => shared.push(p),
            other => panic!("expected a publication, got {other:?}"),
        }
    }
    assert!(Arc::ptr_eq(&shared[0], &shared[1]) && Arc::ptr_eq(&shared[1], &shared[2]), "one Arc for all");
    let a = shared[0].encoded(Codec::Json).as_ptr();
    assert_eq!(shared[2].encoded(Codec::Json).as_ptr(), a, "encoded once, bytes shared");
}

#[tokio::test]
async fn control_reaches_the_targeted_connections_only() {
    let hub = hub();
    let (a1, a2, b) = (entry(&hub, "a", "a1"), entry(&hub, "a", "a2"), entry(&hub, "b", "b1"));
    for e in [&a1, &a2, &b] {
        hub.register(e.clone()).expect("register");
    }
    let count = |o: &Outbox| {
        let mut v = Vec::new();
        o.drain(&mut v);
        v.len()
    };
    let target = Target { user: "a".into(), ..Default::default() };
    hub.control(Control::Unsubscribe(target.clone(), "x".into())).await.expect("control");
    assert_eq!((count(&a1.outbox), count(&a2.outbox), count(&b.outbox)), (1, 1, 0));
    let one = Target { user: "a".into(), client: "a2".into(), ..Default::default() };
    hub.control(Control::Unsubscribe(one, "x".into())).await.expect("control");
    assert_eq!((count(&a1.outbox), count(&a2.outbox)), (0, 1));
    let by_session = Target { user: "a".into(), session: a1.session.to_string(), ..Default::default() };
    hub.control(Control::Unsubscribe(by_session, "x".into())).await.expect("control");
    assert_eq!((count(&a1.outbox), count(&a2.outbox)), (1, 0), "a session id names one connection");
    hub.control(Control::Disconnect(target, vec!["a1".into()], Disconnect::FORCE_NO_RECONNECT)).await.expect("c");
    assert!(!a1.outbox.is_closing(), "whitelisted client is spared");
    assert_eq!(a2.outbox.closing_reason(), Some(Disconnect::FORCE_NO_RECONNECT));
    hub.unregister("a1");
    assert_eq!(hub.info().num_clients, 2);
}

#[tokio::test]
async fn nothing_published_after_a_disconnect_reaches_the_connection() {
    let hub = hub();
    let a = entry(&hub, "a", "a1");
    hub.register(a.clone()).expect("register");
    hub.subscribe("c", Subscriber::plain(a.conn, a.outbox.clone()), || ()).await.expect("sub");
    let publish = |n: &str| PublishRequest { channel: "c".into(), data: n.to_owned().into(), ..Default::default() };
    hub.publish(publish("1")).await.expect("pub");
    let target = Target { user: "a".into(), ..Default::default() };
    hub.control(Control::Disconnect(target, Vec::new(), Disconnect::FORCE_RECONNECT)).await.expect("control");
    // The API call has returned: what is published from here on is not for this client,
    // even though its writer has not woken up yet.
    hub.publish(publish("2")).await.expect("pub");
    let mut items = Vec::new();
    assert_eq!(a.outbox.drain(&mut items), Drained::Close(Disconnect::FORCE_RECONNECT));
    let data: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            Outgoing::Publication(p) => Some(p.publication.data.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(data, vec![bytes::Bytes::from("1")], "only what came before the disconnect");
}

#[test]
fn connection_limits_are_enforced() {
    let config = Config::from_text("[client]\nuser_connection_limit = 1").expect("config").config;
    let hub = Hub::new(Arc::new(config), MemoryBroker::new(), Arc::new(Metrics::default()));
    hub.register(entry(&hub, "u", "c1")).expect("first");
    assert_eq!(hub.register(entry(&hub, "u", "c2")).err(), Some(Error::LimitExceeded));
    hub.register(entry(&hub, "v", "c3")).expect("other user");
}

#[test]
fn glob_patterns() {
    assert!(glob_match("", "anything"));
    assert!(glob_match("chat:*", "chat:room"));
    assert!(!glob_match("chat:*", "news"));
    assert!(glob_match("a?c*", "abcdef"));
    assert!(!glob_match("a?c", "ac"));
}

/// Waits (bounded) for `f` to hold.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn nodes_announce_themselves_answer_surveys_and_take_each_others_controls() {
    let bus = Arc::new(Bus::default());
    let node = || hub_on(Arc::new(EngineDouble { bus: Some(bus.clone()), ..Default::default() }));
    let (a, b) = (node(), node());
    for (hub, channel) in [(&a, "x"), (&b, "x"), (&b, "y")] {
        hub.subscribe(channel, Subscriber::plain(hub.next_conn_id(), Outbox::new(1 << 20)), || ()).await.expect("sub");
    }
    assert_eq!(a.channels_everywhere("").await.expect("alone"), [("x".to_owned(), 1)], "no other node known yet");
    a.start();
    b.start();
    eventually("both nodes to know each other", || a.nodes().len() == 2 && b.nodes().len() == 2).await;
    assert_eq!(a.nodes()[0].uid, a.node_id(), "this node first");
    assert_eq!(a.nodes()[1].uid, b.node_id());
    let merged = a.channels_everywhere("").await.expect("survey");
    assert_eq!(merged, [("x".to_owned(), 2), ("y".to_owned(), 1)], "counts summed over the nodes");
    assert_eq!(b.channels_everywhere("y*").await.expect("survey"), [("y".to_owned(), 1)]);
    // An API action through node a reaches the user's connection on node b.
    let e = entry(&b, "u", "c1");
    b.register(e.clone()).expect("register");
    let target = Target { user: "u".into(), ..Default::default() };
    a.control(Control::Disconnect(target, Vec::new(), Disconnect::FORCE_NO_RECONNECT)).await.expect("control");
    assert_eq!(e.outbox.closing_reason(), Some(Disconnect::FORCE_NO_RECONNECT));
    b.announce_leaving().await;
    assert_eq!(a.nodes().len(), 1, "a node that says it leaves is forgotten at once");
}
