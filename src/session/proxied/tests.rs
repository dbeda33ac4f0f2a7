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
