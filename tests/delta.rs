//! Delta compression on the wire, checked by a raw WebSocket client that does what an SDK
//! does: it subscribes with `delta: "fossil"`, reads `data` as a JSON string, and applies
//! each patch (`delta: true`) to the previous payload with Tidewire's own fossil decoder.

mod common;

use serde_json::{Value, json};
use tidewire::protocol::fossil;

const DELTA: &str = r#"
[[channel.namespaces]]
name = "delta"
allow_subscribe_for_client = true
history_size = 20
history_ttl = "300s"
force_positioning = true
allow_recovery = true
allowed_delta_types = ["fossil"]
[[channel.namespaces]]
name = "deltapub"
allow_subscribe_for_client = true
history_size = 20
history_ttl = "300s"
force_positioning = true
allowed_delta_types = ["fossil"]
delta_publish = true
"#;

/// A sequence of similar documents: one field changes, the rest is shared.
fn doc(n: u64) -> Value {
    json!({"match": "home-away", "minute": n, "score": [n / 3, n / 4], "events": (0..20).map(|i| format!("event {i}: pass")).collect::<Vec<_>>()})
}

async fn publish(srv: &common::TestServer, channel: &str, data: &Value, delta: bool) {
    let (status, body) = srv.api("publish", json!({"channel": channel, "data": data, "delta": delta})).await;
    assert_eq!(status, 200, "{body}");
}

/// Reads `n` publication pushes; returns (data as the client rebuilds it, was it a patch).
async fn rebuild(ws: &mut common::Ws, n: usize) -> Vec<(Value, bool)> {
    let mut prev: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for _ in 0..n {
        let push = ws.push("pub").await;
        let p = &push["pub"];
        let data = p["data"].as_str().unwrap_or_else(|| panic!("a delta subscription's data is a JSON string: {p}"));
        let patch = p["delta"] == json!(true);
        let full = if patch { fossil::apply(&prev, data.as_bytes()).expect("the patch applies") } else { data.as_bytes().to_vec() };
        out.push((serde_json::from_slice(&full).expect("rebuilt payload is JSON"), patch));
        prev = full;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_subscriber_rebuilds_every_payload_from_patches() {
    let srv = common::start(DELTA).await;
    let (mut delta, _) = srv.client("d").await;
    delta.send(&json!({"id": 2, "subscribe": {"channel": "delta:m", "delta": "fossil"}})).await;
    let reply = delta.reply(2).await;
    assert_eq!(reply["subscribe"]["delta"], json!(true), "{reply}");
    let (mut plain, _) = srv.client("p").await;
    let reply = plain.subscribe(2, "delta:m").await;
    assert_eq!(reply["subscribe"].get("delta"), None, "not asked, not negotiated: {reply}");

    for n in 1..=5 {
        publish(&srv, "delta:m", &doc(n), true).await;
    }
    let got = rebuild(&mut delta, 5).await;
    assert_eq!(got.iter().map(|(_, patch)| *patch).collect::<Vec<_>>(), [false, true, true, true, true]);
    for (n, (data, _)) in (1..=5).zip(&got) {
        assert_eq!(*data, doc(n));
        let push = plain.push("pub").await;
        assert_eq!(push["pub"]["data"], doc(n), "the plain subscriber gets the raw JSON payload");
        assert_eq!(push["pub"].get("delta"), None);
    }
    // Not delta-eligible: full for everyone; the next eligible one is a patch again.
    publish(&srv, "delta:m", &doc(6), false).await;
    publish(&srv, "delta:m", &doc(7), true).await;
    let got = rebuild(&mut delta, 2).await;
    assert_eq!(got, vec![(doc(6), false), (doc(7), true)]);

    // History returns full publications, to every client.
    let (_, history) = srv.api("history", json!({"channel": "delta:m", "limit": 10})).await;
    let pubs = history["result"]["publications"].as_array().expect("publications");
    assert_eq!(pubs.len(), 7);
    assert!(pubs.iter().all(|p| p.get("delta").is_none() && p["data"].is_object()), "{history}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_and_delta_publish_and_refusals() {
    let srv = common::start(DELTA).await;
    for n in 1..=3 {
        publish(&srv, "delta:r", &doc(n), true).await;
    }
    let (mut ws, _) = srv.client("r").await;
    // Recovering from offset 1: the reply's publications are full payloads, as strings.
    let reply = {
        ws.send(&json!({"id": 2, "subscribe": {"channel": "delta:r", "delta": "fossil", "recoverable": true, "recover": true, "offset": 1, "epoch": ""}})).await;
        ws.reply(2).await
    };
    let result = &reply["subscribe"];
    assert_eq!((result["delta"].clone(), result["recovered"].clone()), (json!(true), json!(true)), "{reply}");
    let recovered: Vec<Value> = result["publications"]
        .as_array()
        .expect("recovered")
        .iter()
        .map(|p| {
            assert_eq!(p.get("delta"), None, "recovered publications are never patches");
            serde_json::from_str(p["data"].as_str().expect("a string")).expect("JSON text")
        })
        .collect();
    assert_eq!(recovered, vec![doc(2), doc(3)]);
    // The first live publication after recovery goes in full, then patches.
    publish(&srv, "delta:r", &doc(4), true).await;
    publish(&srv, "delta:r", &doc(5), true).await;
    assert_eq!(rebuild(&mut ws, 2).await, vec![(doc(4), false), (doc(5), true)]);

    // delta_publish: every publication is eligible without the API's flag.
    ws.send(&json!({"id": 3, "subscribe": {"channel": "deltapub:x", "delta": "fossil"}})).await;
    assert_eq!(ws.reply(3).await["subscribe"]["delta"], json!(true));
    for n in 1..=3 {
        publish(&srv, "deltapub:x", &doc(n), false).await;
    }
    let got = rebuild(&mut ws, 3).await;
    assert_eq!(got, vec![(doc(1), false), (doc(2), true), (doc(3), true)]);

    // A namespace without allowed_delta_types, or an unknown type: 107.
    ws.send(&json!({"id": 4, "subscribe": {"channel": "chat:x", "delta": "fossil"}})).await;
    assert_eq!(ws.reply(4).await["error"]["code"], json!(107));
    ws.send(&json!({"id": 5, "subscribe": {"channel": "delta:y", "delta": "xdelta"}})).await;
    assert_eq!(ws.reply(5).await["error"]["code"], json!(107));
    srv.shutdown().await;
}
