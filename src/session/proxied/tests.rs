//! Proxied session flows with injected time: a backend on 127.0.0.1 (axum) answers the
//! connect and refresh proxies; the session is stepped without sockets.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};

use super::super::*;
use crate::broker::MemoryBroker;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::protocol::{CommandBody, ConnectRequest, RpcRequest};

/// A fixed "now" (unix ms) so expiries are exact.
const T0: u64 = 1_800_000_000_000;
const T0_S: u64 = T0 / 1000;

const WS: TransportInfo = TransportInfo { name: "websocket", bidirectional: true, emulation: false };

/// A backend answering each path with what `answers` holds for it now (tests change it).
async fn backend(answers: Arc<Mutex<Value>>) -> String {
    let app = Router::new().route(
        "/{name}",
        post(move |axum::extract::Path(name): axum::extract::Path<String>| {
            let answers = answers.clone();
            async move {
                let v = answers.lock().expect("lock")[&name].clone();
                axum::Json(v)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn setup(url: &str) -> (Hub, Arc<Auth>) {
    let text = format!(
        "[client.proxy.connect]\nenabled = true\nendpoint = \"{url}/connect\"\n\
         [client.proxy.refresh]\nenabled = true\nendpoint = \"{url}/refresh\"\n\
         [rpc.without_namespace]\nproxy_enabled = true\n[rpc.proxy]\nendpoint = \"{url}/rpc\"\n\
         [channel.without_namespace]\nallow_subscribe_for_client = true"
    );
    let config = Config::from_text(&text).expect("config").config;
    let metrics = Arc::new(Metrics::default());
    let (proxies, _) = crate::proxy::Proxies::from_config(&config, metrics.clone()).expect("proxies");
    let auth = Auth::from_config(&config.client).expect("auth").with_proxies(proxies);
    (Hub::new(Arc::new(config), MemoryBroker::new(), metrics), auth)
}

fn connect() -> Command {
    Command { id: 1, body: CommandBody::Connect(ConnectRequest::default()) }
}

fn replies(outbox: &Outbox) -> Vec<Reply> {
    let mut out = Vec::new();
    let _ = outbox.drain(&mut out);
    out.into_iter()
        .filter_map(|o| match o {
            Outgoing::Reply(r) => Some(*r),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_refresh_proxy_renews_at_expire_at_and_ends_the_connection_when_told() {
    let answers = Arc::new(Mutex::new(json!({
        "connect": {"result": {"user": "42", "expire_at": T0_S + 60, "data": {"hi": 1}}},
        "refresh": {"result": {"expire_at": T0_S + 120}},
    })));
    let url = backend(answers.clone()).await;
    let (hub, auth) = setup(&url);
    let outbox = Outbox::new(1 << 20);
    let mut s = Session::new(hub, auth, outbox.clone(), WS, T0);
    s.handle(connect(), T0).await.expect("connect");
    let r = replies(&outbox);
    let ReplyBody::Connect(result) = &r[0].body else { panic!("{r:?}") };
    assert_eq!(s.user(), "42");
    assert_eq!(result.data.as_deref(), Some(&br#"{"hi":1}"#[..]));
    // The refresh proxy renews it: the client is told of no expiry to refresh itself.
    assert!(!result.expiry.expires);
    // Its turn comes at expire_at exactly (no grace: nobody else will refresh it).
    assert_eq!(s.next_deadline(), (T0_S + 60) * 1000);
    s.tick(T0 + 59_000).await.expect("not yet");
    s.tick(T0 + 60_000).await.expect("renewed");
    assert_eq!(s.next_deadline(), (T0_S + 120) * 1000);
    answers.lock().expect("lock")["refresh"] = json!({"result": {"expired": true}});
    assert_eq!(s.tick(T0 + 120_000).await, Err(Disconnect::EXPIRED));
}

#[tokio::test]
async fn a_refresh_the_backend_cannot_answer_gives_one_more_minute_and_a_disconnect_answer_closes() {
    let answers = Arc::new(Mutex::new(json!({
        "connect": {"result": {"user": "42", "expire_at": T0_S + 10}},
        "refresh": "not an answer",
    })));
    let url = backend(answers.clone()).await;
    let (hub, auth) = setup(&url);
    let outbox = Outbox::new(1 << 20);
    let mut s = Session::new(hub, auth, outbox, WS, T0);
    s.handle(connect(), T0).await.expect("connect");
    s.tick(T0 + 10_000).await.expect("kept");
    assert_eq!(s.next_deadline(), (T0_S + 70) * 1000);
    answers.lock().expect("lock")["refresh"] = json!({"disconnect": {"code": 4600, "reason": "bye"}});
    let d = s.tick(T0 + 70_000).await.expect_err("closed");
    assert_eq!((d.code, d.reason.as_ref()), (4600, "bye"));
}

#[tokio::test]
async fn connect_and_rpc_errors_are_the_backends() {
    let answers = Arc::new(Mutex::new(json!({
        "connect": {"error": {"code": 1001, "message": "banned"}},
        "rpc": {"error": {"code": 1003, "message": "rpc failed", "temporary": true}},
    })));
    let url = backend(answers.clone()).await;
    let (hub, auth) = setup(&url);
    let outbox = Outbox::new(1 << 20);
    let mut s = Session::new(hub.clone(), auth.clone(), outbox.clone(), WS, T0);
    s.handle(connect(), T0).await.expect("answered");
    let r = replies(&outbox);
    assert!(matches!(r[0].body, ReplyBody::Error(e) if e.code() == 1001 && e.message() == "banned"), "{r:?}");
    assert!(!s.is_connected());

    answers.lock().expect("lock")["connect"] = json!({"result": {"user": "7"}});
    let outbox = Outbox::new(1 << 20);
    let mut s = Session::new(hub, auth, outbox.clone(), WS, T0);
    s.handle(connect(), T0).await.expect("connect");
    let rpc = Command { id: 2, body: CommandBody::Rpc(RpcRequest { method: "m".into(), data: None }) };
    s.handle(rpc, T0).await.expect("rpc answered");
    let r = replies(&outbox);
    let e = match &r[1].body {
        ReplyBody::Error(e) => *e,
        other => panic!("{other:?}"),
    };
    assert_eq!((e.code(), e.message(), e.temporary()), (1003, "rpc failed", true));
}

fn setup_channels(url: &str) -> (Hub, Arc<Auth>) {
    let text = format!(
        "[[proxies]]\nname = \"sub\"\nendpoint = \"{url}/subscribe\"\n\
         [[proxies]]\nname = \"refresh\"\nendpoint = \"{url}/sub_refresh\"\n\
         [[proxies]]\nname = \"pub\"\nendpoint = \"{url}/publish\"\n\
         [[channel.namespaces]]\nname = \"room\"\nsubscribe_proxy_enabled = true\nsubscribe_proxy_name = \"sub\"\n\
         sub_refresh_proxy_enabled = true\nsub_refresh_proxy_name = \"refresh\"\n\
         publish_proxy_enabled = true\npublish_proxy_name = \"pub\"\n\
         [client]\nallow_anonymous_connect_without_token = true"
    );
    let config = Config::from_text(&text).expect("config").config;
    let metrics = Arc::new(Metrics::default());
    let (proxies, _) = crate::proxy::Proxies::from_config(&config, metrics.clone()).expect("proxies");
    let auth = Auth::from_config(&config.client).expect("auth").with_proxies(proxies);
    (Hub::new(Arc::new(config), MemoryBroker::new(), metrics), auth)
}

#[tokio::test]
async fn subscribe_and_sub_refresh_proxies_decide_the_subscription_and_its_life() {
    let answers = Arc::new(Mutex::new(json!({
        "subscribe": {"result": {"data": {"welcome": 1}, "info": {"role": "guest"}, "expire_at": T0_S + 30}},
        "sub_refresh": {"result": {"expire_at": T0_S + 90}},
        "publish": {"result": {"data": {"rewritten": true}, "skip_history": true}},
    })));
    let url = backend(answers.clone()).await;
    let (hub, auth) = setup_channels(&url);
    let outbox = Outbox::new(1 << 20);
    let mut s = Session::new(hub.clone(), auth, outbox.clone(), WS, T0);
    s.handle(connect(), T0).await.expect("anonymous connect");
    let sub = Command {
        id: 2,
        body: CommandBody::Subscribe(crate::protocol::SubscribeRequest { channel: "room:1".into(), ..Default::default() }),
    };
    s.handle(sub, T0).await.expect("subscribe");
    let r = replies(&outbox);
    let ReplyBody::Subscribe(result) = &r[1].body else { panic!("{r:?}") };
    assert_eq!(result.data.as_deref(), Some(&br#"{"welcome":1}"#[..]));
    // The sub_refresh proxy renews it: nothing for the client to refresh.
    assert!(!result.expiry.expires);
    assert_eq!(s.next_deadline(), (T0_S + 30) * 1000);

    // The publish proxy rewrites what subscribers get.
    let publish = Command {
        id: 3,
        body: CommandBody::Publish(crate::protocol::PublishRequest { channel: "room:1".into(), data: Some("{\"x\":1}".into()) }),
    };
    s.handle(publish, T0).await.expect("publish");
    let mut out = Vec::new();
    let _ = outbox.drain(&mut out);
    let delivered = out.iter().find_map(|o| match o {
        Outgoing::Publication(p) => Some(p.publication.data.clone()),
        _ => None,
    });
    assert_eq!(delivered.as_deref(), Some(&br#"{"rewritten":true}"#[..]));

    s.tick(T0 + 30_000).await.expect("renewed");
    assert_eq!(s.next_deadline(), (T0_S + 90) * 1000);
    answers.lock().expect("lock")["sub_refresh"] = json!({"result": {"expired": true}});
    s.tick(T0 + 90_000).await.expect("the connection stays");
    let mut out = Vec::new();
    let _ = outbox.drain(&mut out);
    assert!(
        out.iter().any(|o| matches!(o, Outgoing::Push(p) if matches!(&**p, Push::Unsubscribe { channel, reason: crate::protocol::UnsubscribeReason::Expired } if channel == "room:1"))),
        "{out:?}"
    );
    assert_eq!(s.channels().count(), 0);

    // Refused by the backend: its error, and no subscription.
    answers.lock().expect("lock")["subscribe"] = json!({"error": {"code": 103, "message": "permission denied"}});
    let again = Command {
        id: 4,
        body: CommandBody::Subscribe(crate::protocol::SubscribeRequest { channel: "room:2".into(), ..Default::default() }),
    };
    s.handle(again, T0 + 91_000).await.expect("answered");
    let r = replies(&outbox);
    assert!(matches!(r.last().map(|r| &r.body), Some(ReplyBody::Error(e)) if e.code() == 103), "{r:?}");
    assert_eq!(s.channels().count(), 0);
}
