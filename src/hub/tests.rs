//! Fan-out and control routing against in-memory outboxes.

use std::sync::Arc;

use super::*;
use crate::protocol::codec::Codec;
use crate::broker::MemoryBroker;

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
        session: format!("s-{client}"),
        outbox: Outbox::new(1 << 20),
    }
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
