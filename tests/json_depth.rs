//! JSON nesting depth is bounded where data enters: client publish (error 107, nobody
//! receives it) and the server API (HTTP 400 saying why, nothing published).

mod common;

use common::{API_KEY, start};
use serde_json::{Value, json};
use tidewire::protocol::json::MAX_JSON_DEPTH;

/// An array nested `n` levels deep, as JSON text.
fn nest(n: usize) -> String {
    format!("{}{}", "[".repeat(n), "]".repeat(n))
}

#[tokio::test]
async fn client_publish_over_the_depth_limit_gets_107_and_reaches_nobody() {
    let srv = start("").await;
    let (mut alice, _) = srv.client("alice").await;
    let (mut bob, _) = srv.client("bob").await;
    alice.subscribe(2, "chat:room").await;
    bob.subscribe(2, "chat:room").await;
    for (id, depth) in [(3, MAX_JSON_DEPTH + 1), (4, 32_000)] {
        let cmd = format!(r#"{{"id":{id},"publish":{{"channel":"chat:room","data":{}}}}}"#, nest(depth));
        alice.send_text(&cmd).await;
        let reply = alice.reply(id).await;
        assert_eq!(reply["error"]["code"], 107, "depth {depth}: {reply}");
    }
    // At the limit it passes, and it is the first publication bob sees.
    let at_limit = format!(r#"{{"id":5,"publish":{{"channel":"chat:room","data":{}}}}}"#, nest(MAX_JSON_DEPTH));
    alice.send_text(&at_limit).await;
    assert_eq!(alice.reply(5).await, json!({"id": 5, "publish": {}}));
    let push = bob.push("pub").await;
    let data: Value = serde_json::from_str(&nest(MAX_JSON_DEPTH)).expect("json");
    assert_eq!(push["pub"]["data"], data);
    srv.shutdown().await;
}

#[tokio::test]
async fn client_rpc_and_subscribe_data_over_the_limit_get_107() {
    let srv = start("").await;
    let (mut ws, _) = srv.client("alice").await;
    let deep = nest(MAX_JSON_DEPTH + 1);
    ws.send_text(&format!(r#"{{"id":2,"rpc":{{"method":"m","data":{deep}}}}}"#)).await;
    assert_eq!(ws.reply(2).await["error"]["code"], 107);
    ws.send_text(&format!(r#"{{"id":3,"subscribe":{{"channel":"news","data":{deep}}}}}"#)).await;
    assert_eq!(ws.reply(3).await["error"]["code"], 107);
    // Connect data too: the connect is answered 107 and goes no further.
    let mut other = srv.ws().await;
    let token = common::token("bob", 60);
    other.send_text(&format!(r#"{{"id":1,"connect":{{"token":"{token}","data":{deep}}}}}"#)).await;
    assert_eq!(other.reply(1).await["error"]["code"], 107);
    srv.shutdown().await;
}

/// POSTs a raw body; returns status and body text.
async fn post(srv: &common::TestServer, path: &str, body: String) -> (u16, String) {
    let r = srv.http.post(srv.url(path)).header("X-API-Key", API_KEY).body(body).send().await.expect("api request");
    (r.status().as_u16(), r.text().await.expect("body"))
}

#[tokio::test]
async fn api_refuses_data_over_the_depth_limit_with_400_and_publishes_nothing() {
    let srv = start("").await;
    let (mut ws, _) = srv.client("1").await;
    ws.subscribe(2, "news").await;
    let deep = nest(MAX_JSON_DEPTH + 1);
    let huge = nest(32_000);
    let bodies = [
        ("/api/publish", format!(r#"{{"channel":"news","data":{deep}}}"#)),
        ("/api/publish", format!(r#"{{"channel":"news","data":{huge}}}"#)),
        ("/api/broadcast", format!(r#"{{"channels":["news"],"data":{deep}}}"#)),
        ("/api/batch", format!(r#"{{"commands":[{{"publish":{{"channel":"news","data":1}}}},{{"publish":{{"channel":"news","data":{deep}}}}}]}}"#)),
        ("/api", format!("{}\n{{\"method\":\"publish\",\"params\":{{\"channel\":\"news\",\"data\":{deep}}}}}", json!({"method": "publish", "params": {"channel": "news", "data": 1}}))),
    ];
    for (path, body) in bodies {
        let (status, text) = post(&srv, path, body).await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(text, format!("JSON nested deeper than {MAX_JSON_DEPTH} levels"), "{path}");
    }
    // At the limit: published, and it is the first publication the subscriber sees (the
    // batch and legacy requests above were refused whole, their shallow commands too).
    let (status, _) = post(&srv, "/api/publish", format!(r#"{{"channel":"news","data":{}}}"#, nest(MAX_JSON_DEPTH))).await;
    assert_eq!(status, 200);
    let push = ws.push("pub").await;
    assert_eq!(push["pub"]["data"], serde_json::from_str::<Value>(&nest(MAX_JSON_DEPTH)).expect("json"));
    srv.shutdown().await;
}
