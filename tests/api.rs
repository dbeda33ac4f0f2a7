//! The server HTTP API: request/response shapes, auth, legacy format, HTTP/2, health, metrics.

mod common;

use common::{API_KEY, start};
use serde_json::{Value, json};

#[tokio::test]
async fn publish_broadcast_channels_info_and_batch() {
    let srv = start("").await;
    let (mut ws, _) = srv.client("1").await;
    ws.subscribe(2, "a").await;
    ws.subscribe(3, "chat:b").await;
    assert_eq!(srv.api("publish", json!({"channel": "a", "data": {"n": 1}})).await, (200, json!({"result": {}})));
    assert_eq!(ws.push("pub").await["pub"]["data"], json!({"n": 1}));

    let (_, body) = srv.api("broadcast", json!({"channels": ["a", "chat:b", "nope:c"], "data": 2})).await;
    assert_eq!(
        body,
        json!({"result": {"responses": [
            {"result": {}}, {"result": {}}, {"error": {"code": 102, "message": "unknown channel"}}
        ]}})
    );
    let got: Vec<Value> = vec![ws.push("pub").await["channel"].clone(), ws.push("pub").await["channel"].clone()];
    assert_eq!(got, vec![json!("a"), json!("chat:b")]);

    let (_, body) = srv.api("channels", json!({"pattern": "chat:*"})).await;
    assert_eq!(body, json!({"result": {"channels": {"chat:b": {"num_clients": 1}}}}));
    let (_, body) = srv.api("info", json!({})).await;
    let node = &body["result"]["nodes"][0];
    assert_eq!((node["num_clients"].as_u64(), node["num_channels"].as_u64(), node["num_subs"].as_u64()), (Some(1), Some(2), Some(2)));

    let (status, body) = srv
        .api(
            "batch",
            json!({"commands": [
                {"publish": {"channel": "a", "data": 3}},
                {"publish": {"channel": ""}},
                {"info": {}},
                {"nosuch": {}}
            ]}),
        )
        .await;
    assert_eq!(status, 200);
    let replies = body["replies"].as_array().expect("replies, not wrapped in result");
    assert_eq!(replies[0], json!({"publish": {}}));
    assert_eq!(replies[1]["error"]["code"], 107);
    assert!(replies[2]["info"]["nodes"].is_array());
    assert_eq!(replies[3]["error"]["code"], 104);
    assert_eq!(ws.push("pub").await["pub"]["data"], 3);
    srv.shutdown().await;
}

#[tokio::test]
async fn method_errors_are_http_200_with_an_error_object() {
    let srv = start("").await;
    for (method, body, code) in [
        ("publish", json!({"channel": "nope:x", "data": 1}), 102),
        ("publish", json!({"channel": "a"}), 107),
        ("publish", json!({"channel": "", "data": 1}), 107),
        ("publish", json!({"channel": "a".repeat(256), "data": 1}), 107),
        ("subscribe", json!({"channel": "a"}), 107),
        ("disconnect", json!({"user": "u", "disconnect": {"code": 100, "reason": "x"}}), 107),
        ("history", json!({"channel": "a"}), 108),
        ("presence", json!({"channel": "a"}), 108),
        ("rpc", json!({"method": "x"}), 104),
    ] {
        let (status, got) = srv.api(method, body.clone()).await;
        assert_eq!((status, got["error"]["code"].as_u64()), (200, Some(code)), "{method} {body}");
    }
    // Transport error mode: a status code instead.
    let resp = srv
        .http
        .post(srv.url("/api/publish"))
        .header("X-API-Key", API_KEY)
        .header("X-Centrifugo-Error-Mode", "transport")
        .body(r#"{"channel":"nope:x","data":1}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(resp.json::<Value>().await.expect("json"), json!({"code": 102, "message": "unknown channel"}));
    srv.shutdown().await;
}

#[tokio::test]
async fn auth_unknown_methods_malformed_and_oversize_bodies() {
    let srv = start("").await;
    let post = |path: &str| srv.http.post(srv.url(path));
    // No key, wrong key: 401 with an empty body.
    let r = post("/api/publish").body("{}").send().await.expect("req");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.text().await.expect("body"), "");
    let r = post("/api/publish").header("X-API-Key", "wrong").body("{}").send().await.expect("req");
    assert_eq!(r.status().as_u16(), 401);
    // Authorization: apikey and ?api_key= work.
    let r = post("/api/info").header("Authorization", format!("apikey {API_KEY}")).body("{}").send().await.expect("req");
    assert_eq!(r.status().as_u16(), 200);
    let r = post(&format!("/api/info?api_key={API_KEY}")).body("{}").send().await.expect("req");
    assert_eq!(r.status().as_u16(), 200);
    // Unknown method: 404 before the key is checked.
    assert_eq!(post("/api/nosuch").body("{}").send().await.expect("req").status().as_u16(), 404);
    // GET is 405.
    let r = srv.http.get(srv.url("/api/publish")).send().await.expect("req");
    assert_eq!(r.status().as_u16(), 405);
    // Malformed JSON and wrong types: 400.
    for bad in ["{", "[1,2]", r#"{"channel": 5}"#, "\u{0}"] {
        let r = post("/api/publish").header("X-API-Key", API_KEY).body(bad).send().await.expect("req");
        assert_eq!(r.status().as_u16(), 400, "{bad:?}");
    }
    // A 10 MB body: 413, and the server keeps serving.
    let big = format!(r#"{{"channel":"a","data":"{}"}}"#, "x".repeat(10 * 1024 * 1024));
    let r = post("/api/publish").header("X-API-Key", API_KEY).body(big).send().await;
    match r {
        Ok(r) => assert_eq!(r.status().as_u16(), 413),
        // The server may close the connection while the client is still sending.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    assert_eq!(srv.api("info", json!({})).await.0, 200);
    srv.shutdown().await;
}

#[tokio::test]
async fn legacy_api_format_with_newline_delimited_commands() {
    let srv = start("").await;
    let (mut ws, _) = srv.client("1").await;
    ws.subscribe(2, "news").await;
    let body = [
        json!({"id": 1, "method": "publish", "params": {"channel": "news", "data": "x"}}),
        json!({"method": "PUBLISH", "params": {"channel": "nope:x", "data": "y"}}),
        json!({"id": 3, "method": 9, "params": {}}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let r = srv
        .http
        .post(srv.url("/api"))
        .header("Authorization", format!("apikey {API_KEY}"))
        .body(body)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.expect("body");
    assert!(!text.ends_with('\n'), "no trailing newline (cent.js pipeline splits on it)");
    let lines: Vec<Value> = text.split('\n').map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines[0], json!({"id": 1, "result": {}}));
    assert_eq!(lines[1], json!({"error": {"code": 102, "message": "unknown channel"}}));
    assert_eq!(lines[2]["id"], 3);
    assert!(lines[2]["result"]["nodes"].is_array(), "method 9 is info");
    assert_eq!(ws.push("pub").await["pub"]["data"], "x");
    let r = srv.http.post(srv.url("/api")).body("{}").send().await.expect("req");
    assert_eq!(r.status().as_u16(), 401);
    srv.shutdown().await;
}

#[tokio::test]
async fn api_over_http2_cleartext() {
    let srv = start("").await;
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().expect("client");
    let r = h2
        .post(srv.url("/api/info"))
        .header("X-API-Key", API_KEY)
        .body("{}")
        .send()
        .await
        .expect("h2c request");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.expect("json");
    assert!(v["result"]["nodes"].is_array());
    srv.shutdown().await;
}

#[tokio::test]
async fn health_and_metrics() {
    let srv = start("").await;
    let r = srv.http.get(srv.url("/health")).send().await.expect("req");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.expect("body"), "{}");
    let (mut ws, _) = srv.client("m").await;
    ws.subscribe(2, "news").await;
    srv.publish("news", json!(1)).await;
    ws.push("pub").await;
    let text = srv.http.get(srv.url("/metrics")).send().await.expect("req").text().await.expect("body");
    for needle in [
        "tidewire_transport_connections{transport=\"websocket\"} 1",
        "tidewire_client_commands_total{command=\"connect\"} 1",
        "tidewire_client_commands_total{command=\"subscribe\"} 1",
        "tidewire_api_calls_total{method=\"publish\"} 1",
        "tidewire_node_num_subscriptions 1",
        "tidewire_publications_total 1",
    ] {
        assert!(text.contains(needle), "metrics lack {needle:?}:\n{text}");
    }
    let sent = text
        .lines()
        .find(|l| l.starts_with("tidewire_transport_messages_sent_total{transport=\"websocket\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("messages sent");
    assert!(sent >= 3, "connect reply + subscribe reply + publication, got {sent}");
    srv.shutdown().await;
}
