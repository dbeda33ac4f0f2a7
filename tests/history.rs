//! History streams, recovery, positioning and cache mode, end to end over WebSocket.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{TestServer, start};
use serde_json::{Value, json};

const HISTORY: &str = r#"
[[channel.namespaces]]
name = "hist"
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
allow_history_for_subscriber = true
history_size = 100
history_ttl = "300s"
allow_recovery = true
allow_positioning = true

[[channel.namespaces]]
name = "fr"
allow_subscribe_for_client = true
allow_history_for_client = true
history_size = 2000
history_ttl = "300s"
force_recovery = true

[[channel.namespaces]]
name = "cache"
allow_subscribe_for_client = true
history_size = 1
history_ttl = "300s"
force_recovery = true
force_recovery_mode = "cache"
auto_cache_recover = true

[[channel.namespaces]]
name = "cachesub"
allow_subscribe_for_client = true
history_size = 1
history_ttl = "300s"
force_recovery = true
force_recovery_mode = "cache"

[client]
recovery_max_publication_limit = 10
"#;

async fn server() -> TestServer {
    start(HISTORY).await
}

fn offsets(pubs: &Value) -> Vec<u64> {
    pubs.as_array().map(|a| a.iter().filter_map(|p| p["offset"].as_u64()).collect()).unwrap_or_default()
}

#[tokio::test]
async fn publish_returns_offset_and_epoch_and_history_reads_the_stream() {
    let srv = server().await;
    let mut epoch = String::new();
    for i in 1..=5u64 {
        let body = srv.publish("hist:a", json!({"i": i})).await;
        assert_eq!(body["result"]["offset"], i);
        let e = body["result"]["epoch"].as_str().expect("epoch").to_owned();
        assert!(epoch.is_empty() || epoch == e, "the epoch is stable");
        epoch = e;
    }
    let (_, h) = srv.api("history", json!({"channel": "hist:a", "limit": 3})).await;
    assert_eq!(offsets(&h["result"]["publications"]), vec![1, 2, 3]);
    assert_eq!(h["result"]["publications"][0]["data"], json!({"i": 1}));
    assert_eq!((h["result"]["offset"].as_u64(), h["result"]["epoch"].as_str()), (Some(5), Some(epoch.as_str())));
    let (_, h) = srv.api("history", json!({"channel": "hist:a", "limit": -1, "reverse": true})).await;
    assert_eq!(offsets(&h["result"]["publications"]), vec![5, 4, 3, 2, 1]);
    let (_, h) = srv.api("history", json!({"channel": "hist:a", "limit": 10, "since": {"offset": 3, "epoch": epoch}})).await;
    assert_eq!(offsets(&h["result"]["publications"]), vec![4, 5]);
    let (_, h) = srv.api("history", json!({"channel": "hist:a"})).await;
    assert_eq!(h["result"]["publications"], Value::Null, "no limit: position only");
    assert_eq!(h["result"]["offset"], 5);
    // Bad positions: 112.
    let (_, h) = srv.api("history", json!({"channel": "hist:a", "limit": 1, "since": {"offset": 1, "epoch": "nope"}})).await;
    assert_eq!(h["error"]["code"], 112);
    let (_, h) = srv.api("history", json!({"channel": "hist:a", "limit": 1, "since": {"offset": 99, "epoch": epoch}})).await;
    assert_eq!(h["error"]["code"], 112);
    let (_, h) = srv.api("history", json!({"channel": "hist:a", "limit": -7})).await;
    assert_eq!(h["error"]["code"], 107);
    let (_, h) = srv.api("history", json!({"channel": "news", "limit": 1})).await;
    assert_eq!(h["error"]["code"], 108, "no history on this channel");
    // history_remove empties the stream but keeps its position.
    assert_eq!(srv.api("history_remove", json!({"channel": "hist:a"})).await.1, json!({"result": {}}));
    let (_, h) = srv.api("history", json!({"channel": "hist:a", "limit": 10})).await;
    assert_eq!((h["result"]["publications"].clone(), h["result"]["offset"].as_u64()), (Value::Null, Some(5)));
    assert_eq!(srv.publish("hist:a", json!(6)).await["result"]["offset"], 6);
    srv.shutdown().await;
}

#[tokio::test]
async fn client_history_command_permissions_limits_and_errors() {
    let srv = server().await;
    for i in 0..20 {
        srv.publish("hist:b", json!(i)).await;
    }
    let (mut ws, _) = srv.client("u").await;
    // allow_history_for_subscriber: not subscribed yet → 103.
    ws.send(&json!({"id": 2, "history": {"channel": "hist:b", "limit": 5}})).await;
    assert_eq!(ws.reply(2).await["error"]["code"], 103);
    ws.send(&json!({"id": 3, "subscribe": {"channel": "hist:b", "positioned": true}})).await;
    let sub = ws.reply(3).await;
    let epoch = sub["subscribe"]["epoch"].as_str().expect("epoch").to_owned();
    ws.send(&json!({"id": 4, "history": {"channel": "hist:b", "limit": 5, "reverse": true}})).await;
    let r = ws.reply(4).await;
    assert_eq!(offsets(&r["history"]["publications"]), vec![20, 19, 18, 17, 16]);
    assert_eq!(r["history"]["offset"], 20);
    // A huge limit is capped (history_max_publication_limit 300 > 20 kept here: everything).
    ws.send(&json!({"id": 5, "history": {"channel": "hist:b", "limit": 2_000_000_000}})).await;
    assert_eq!(offsets(&ws.reply(5).await["history"]["publications"]).len(), 20);
    for (id, cmd, code) in [
        (6, json!({"channel": "hist:b", "limit": -2}), 107),
        (7, json!({"channel": "hist:b", "limit": 1, "since": {"offset": 500, "epoch": epoch}}), 112),
        (8, json!({"channel": "hist:b", "limit": 1, "since": {"offset": 1, "epoch": "other"}}), 112),
        (9, json!({"channel": "news", "limit": 1}), 108),
        (10, json!({"channel": "nope:x", "limit": 1}), 102),
    ] {
        ws.send(&json!({"id": id, "history": cmd})).await;
        assert_eq!(ws.reply(id).await["error"]["code"], code, "{cmd}");
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn subscribe_result_reports_the_stream_position() {
    let srv = server().await;
    srv.publish("hist:c", json!(1)).await;
    let (mut ws, _) = srv.client("u").await;
    ws.send(&json!({"id": 2, "subscribe": {"channel": "hist:c", "recoverable": true, "positioned": true}})).await;
    let r = ws.reply(2).await["subscribe"].clone();
    assert_eq!((r["recoverable"].as_bool(), r["positioned"].as_bool(), r["offset"].as_u64()), (Some(true), Some(true), Some(1)));
    assert!(r["epoch"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(r["was_recovering"], Value::Null);
    // Without asking (allow_*, not force_*): a plain subscription.
    ws.send(&json!({"id": 3, "subscribe": {"channel": "hist:d"}})).await;
    assert_eq!(ws.reply(3).await["subscribe"], json!({}));
    srv.shutdown().await;
}

#[tokio::test]
async fn resubscribe_with_recover_gets_exactly_what_was_missed() {
    let srv = server().await;
    let (mut ws, _) = srv.client("u").await;
    ws.send(&json!({"id": 2, "subscribe": {"channel": "hist:r", "recoverable": true}})).await;
    let r = ws.reply(2).await["subscribe"].clone();
    // Zero fields are omitted on the wire, as Centrifugo does: a fresh stream has no "offset".
    let (epoch, offset) = (r["epoch"].clone(), r["offset"].as_u64().unwrap_or(0));
    srv.publish("hist:r", json!("seen")).await;
    assert_eq!(ws.push("pub").await["pub"]["offset"], offset + 1);
    drop(ws);
    for i in 0..4 {
        srv.publish("hist:r", json!({"missed": i})).await;
    }
    let (mut ws, _) = srv.client("u").await;
    let recover = |id: u64, offset: u64, epoch: &Value| {
        json!({"id": id, "subscribe": {"channel": "hist:r", "recoverable": true, "recover": true, "offset": offset, "epoch": epoch}})
    };
    ws.send(&recover(2, offset + 1, &epoch)).await;
    let r = ws.reply(2).await["subscribe"].clone();
    assert_eq!((r["recovered"].as_bool(), r["was_recovering"].as_bool()), (Some(true), Some(true)));
    assert_eq!(offsets(&r["publications"]), vec![offset + 2, offset + 3, offset + 4, offset + 5]);
    assert_eq!(r["publications"][0]["data"], json!({"missed": 0}));
    assert_eq!(r["offset"], offset + 5);
    // Live publications continue after the reply.
    srv.publish("hist:r", json!("live")).await;
    assert_eq!(ws.push("pub").await["pub"]["offset"], offset + 6);
    // Nothing missed: recovered with no publications.
    ws.send(&json!({"id": 3, "unsubscribe": {"channel": "hist:r"}})).await;
    ws.reply(3).await;
    ws.send(&recover(4, offset + 6, &epoch)).await;
    let r = ws.reply(4).await["subscribe"].clone();
    assert_eq!((r["recovered"].as_bool(), r["publications"].clone()), (Some(true), Value::Null));
    srv.shutdown().await;
}

#[tokio::test]
async fn recovery_fails_honestly_on_wrong_epoch_or_too_many_missed() {
    let srv = server().await;
    let first = srv.publish("hist:f", json!(0)).await;
    let epoch = first["result"]["epoch"].clone();
    for i in 0..11 {
        srv.publish("hist:f", json!(i)).await;
    }
    let (mut ws, _) = srv.client("u").await;
    let recover = |id: u64, offset: u64, epoch: &Value, flag: u64| {
        json!({"id": id, "subscribe": {"channel": "hist:f", "recoverable": true, "recover": true, "offset": offset, "epoch": epoch, "flag": flag}})
    };
    // 11 missed > recovery_max_publication_limit (10).
    ws.send(&recover(2, 1, &epoch, 1)).await;
    let r = ws.reply(2).await["subscribe"].clone();
    assert_eq!((r["recovered"].clone(), r["was_recovering"].as_bool(), r["publications"].clone()), (Value::Null, Some(true), Value::Null));
    assert_eq!(r["offset"], 12);
    ws.send(&json!({"id": 3, "unsubscribe": {"channel": "hist:f"}})).await;
    ws.reply(3).await;
    // Wrong epoch.
    ws.send(&recover(4, 11, &json!("stale-epoch"), 1)).await;
    let r = ws.reply(4).await["subscribe"].clone();
    assert_eq!((r["recovered"].clone(), r["epoch"].clone()), (Value::Null, epoch.clone()));
    ws.send(&json!({"id": 5, "unsubscribe": {"channel": "hist:f"}})).await;
    ws.reply(5).await;
    // Flag bit 2: error 112 instead of recovered:false.
    ws.send(&recover(6, 11, &json!("stale-epoch"), 2)).await;
    assert_eq!(ws.reply(6).await["error"]["code"], 112);
    assert!(ws.subscribe(7, "hist:f").await["subscribe"].is_object(), "the failed subscribe left nothing behind");
    srv.shutdown().await;
}

#[tokio::test]
async fn cache_mode_gives_a_new_subscriber_the_latest_publication() {
    let srv = server().await;
    srv.publish("cache:price", json!({"v": 1})).await;
    srv.publish("cache:price", json!({"v": 2})).await;
    let (mut ws, _) = srv.client("u").await;
    let r = ws.subscribe(2, "cache:price").await["subscribe"].clone();
    assert_eq!(r["publications"].as_array().map(Vec::len), Some(1));
    assert_eq!(r["publications"][0]["data"], json!({"v": 2}));
    assert_eq!(r["offset"], 2);
    srv.publish("cache:price", json!({"v": 3})).await;
    assert_eq!(ws.push("pub").await["pub"]["data"], json!({"v": 3}));
    srv.shutdown().await;
}

#[tokio::test]
async fn an_empty_epoch_is_any_epoch_in_recovery_and_history() {
    let srv = server().await;
    for i in 1..=3 {
        srv.publish("hist:any", json!(i)).await;
    }
    let (mut ws, _) = srv.client("u").await;
    // centrifuge-python's get_state flow: recover from {offset, epoch: ""} with flag bit 2.
    let cmd = json!({"id": 2, "subscribe": {"channel": "hist:any", "recoverable": true, "recover": true, "offset": 1, "epoch": "", "flag": 3}});
    ws.send(&cmd).await;
    let r = ws.reply(2).await["subscribe"].clone();
    assert_eq!(r["recovered"], true, "{r}");
    assert_eq!(r["publications"].as_array().map(|p| p.iter().map(|p| p["offset"].clone()).collect::<Vec<_>>()), Some(vec![json!(2), json!(3)]));
    assert_eq!(r["offset"], 3);
    assert!(r["epoch"].as_str().is_some_and(|e| !e.is_empty()), "the stream's epoch");
    // The API's history with since and an empty epoch.
    let (_, h) = srv.api("history", json!({"channel": "hist:any", "limit": -1, "since": {"offset": 2, "epoch": ""}})).await;
    assert_eq!(h["result"]["publications"].as_array().map(Vec::len), Some(1), "{h}");
    srv.shutdown().await;
}

#[tokio::test]
async fn cache_mode_without_auto_recovery_answers_only_a_client_that_recovers() {
    let srv = server().await;
    srv.publish("cachesub:p", json!({"v": 1})).await;
    let p = srv.publish("cachesub:p", json!({"v": 2})).await;
    let (mut ws, _) = srv.client("u").await;
    let r = ws.subscribe(2, "cachesub:p").await["subscribe"].clone();
    assert_eq!((r["publications"].clone(), r["offset"].clone()), (Value::Null, json!(2)), "position only: {r}");
    ws.send(&json!({"id": 3, "unsubscribe": {"channel": "cachesub:p"}})).await;
    ws.reply(3).await;
    // A recovering client in another epoch still gets the latest value: recovered.
    ws.send(&json!({"id": 4, "subscribe": {"channel": "cachesub:p", "recover": true, "offset": 1, "epoch": "other"}})).await;
    let r = ws.reply(4).await["subscribe"].clone();
    assert_eq!(r["recovered"], true, "{r}");
    assert_eq!(r["publications"][0]["data"], json!({"v": 2}));
    ws.send(&json!({"id": 5, "unsubscribe": {"channel": "cachesub:p"}})).await;
    ws.reply(5).await;
    // One that has the latest already gets nothing more.
    let epoch = p["result"]["epoch"].clone();
    ws.send(&json!({"id": 6, "subscribe": {"channel": "cachesub:p", "recover": true, "offset": 2, "epoch": epoch}})).await;
    let r = ws.reply(6).await["subscribe"].clone();
    assert_eq!((r["recovered"].clone(), r["publications"].clone()), (json!(true), Value::Null), "{r}");
    srv.shutdown().await;
}

#[tokio::test]
async fn map_and_shared_poll_subscriptions_are_not_available() {
    let srv = server().await;
    let (mut ws, _) = srv.client("u").await;
    for (id, kind) in [(2, 1), (3, 2), (4, 3), (5, 4)] {
        ws.send(&json!({"id": id, "subscribe": {"channel": "hist:m", "type": kind}})).await;
        let e = ws.reply(id).await;
        assert_eq!((e["error"]["code"].clone(), e["error"]["message"].clone()), (json!(108), json!("not available")), "type {kind}");
    }
    assert!(ws.subscribe(6, "hist:m").await["subscribe"].is_object(), "a stream subscribe still works");
    srv.shutdown().await;
}

#[tokio::test]
async fn idempotency_tags_and_delta_on_publish() {
    let srv = server().await;
    let (mut ws, _) = srv.client("u").await;
    ws.subscribe(2, "hist:i").await;
    let body = json!({"channel": "hist:i", "data": {"x": 1}, "idempotency_key": "order-7", "tags": {"kind": "order"}, "delta": true});
    let (_, a) = srv.api("publish", body.clone()).await;
    let (_, b) = srv.api("publish", body).await;
    assert_eq!(a, b, "a repeat answers with the first result");
    let push = ws.push("pub").await;
    assert_eq!(push["pub"]["tags"], json!({"kind": "order"}));
    assert_eq!(push["pub"]["delta"], Value::Null, "full data, so not marked as a patch");
    srv.publish("hist:i", json!("next")).await;
    assert_eq!(ws.push("pub").await["pub"]["data"], "next", "the repeat was not delivered");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_publications_race_fifty_reconnecting_subscribers() {
    const TOTAL: u64 = 1000;
    const SUBSCRIBERS: u64 = 50;
    let srv = std::sync::Arc::new(start(&HISTORY.replace("recovery_max_publication_limit = 10", "recovery_max_publication_limit = 1000")).await);
    // Every subscriber is in before the first publication, so each must see 1..=TOTAL.
    let ready = std::sync::Arc::new(tokio::sync::Barrier::new(SUBSCRIBERS as usize + 1));
    let mut tasks = Vec::new();
    for i in 0..SUBSCRIBERS {
        let srv = srv.clone();
        let ready = ready.clone();
        tasks.push(tokio::spawn(async move {
            // First subscription establishes the position at 0 before publishing starts.
            let user = format!("racer-{i}");
            let (mut ws, _) = srv.client(&user).await;
            let r = ws.subscribe(2, "fr:race").await["subscribe"].clone();
            assert_eq!(r["offset"].as_u64().unwrap_or(0), 0);
            drop(ws);
            ready.wait().await;
            let mut seen = vec![];
            let epoch = r["epoch"].clone();
            let (mut ws, _) = srv.client(&user).await;
            ws.send(&json!({"id": 2, "subscribe": {"channel": "fr:race", "recover": true, "offset": 0, "epoch": epoch}})).await;
            let r = ws.reply(2).await["subscribe"].clone();
            assert_eq!(r["recovered"], true);
            seen.extend(offsets(&r["publications"]));
            drop(ws);
            let start = seen.last().copied().unwrap_or(0);
            let mut rest = churning_subscriber_from(&srv, user, TOTAL, i, start, epoch).await;
            seen.append(&mut rest);
            seen
        }));
    }
    ready.wait().await;
    let publisher = {
        let srv = srv.clone();
        tokio::spawn(async move {
            for n in 0..TOTAL / 10 {
                let commands: Vec<Value> =
                    (0..10).map(|j| json!({"publish": {"channel": "fr:race", "data": {"n": n * 10 + j}}})).collect();
                let (status, _) = srv.api("batch", json!({"commands": commands})).await;
                assert_eq!(status, 200);
            }
        })
    };
    tokio::time::timeout(Duration::from_secs(60), publisher).await.expect("publisher in time").expect("join");
    for (i, task) in tasks.into_iter().enumerate() {
        let seen = tokio::time::timeout(Duration::from_secs(60), task).await.expect("subscriber in time").expect("join");
        let expected: Vec<u64> = (1..=TOTAL).collect();
        let unique: BTreeSet<u64> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "subscriber {i} saw duplicates");
        assert_eq!(seen, expected, "subscriber {i}: full, gap-free, in order");
    }
    if let Ok(srv) = std::sync::Arc::try_unwrap(srv) {
        srv.shutdown().await;
    }
}

/// One subscriber that keeps dropping its connection and recovering from its last offset
/// while publications flow, until it has seen `total`. Returns the offsets it saw, in order.
async fn churning_subscriber_from(srv: &TestServer, user: String, total: u64, seed: u64, offset: u64, epoch: Value) -> Vec<u64> {
    let mut seen: Vec<u64> = Vec::new();
    let mut position = (offset, epoch);
    let mut round = seed + 1;
    while position.0 < total {
        let (mut ws, _) = srv.client(&user).await;
        let sub = json!({"channel": "fr:race", "recover": true, "offset": position.0, "epoch": position.1});
        ws.send(&json!({"id": 2, "subscribe": sub})).await;
        let r = ws.reply(2).await["subscribe"].clone();
        assert_eq!(r["recovered"], true, "{user}: recovery must succeed: {r}");
        seen.extend(offsets(&r["publications"]));
        round = round.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let reads = 1 + (round >> 33) % 40;
        let mut last = seen.last().copied().unwrap_or(position.0).max(position.0);
        for _ in 0..reads {
            if last >= total {
                break;
            }
            let push = ws.push("pub").await;
            last = push["pub"]["offset"].as_u64().expect("offset");
            seen.push(last);
        }
        position.0 = last;
    }
    seen
}

#[tokio::test]
async fn concurrent_publishes_during_recovering_subscribes_are_neither_lost_nor_duplicated() {
    let srv = std::sync::Arc::new(start(&HISTORY.replace("recovery_max_publication_limit = 10", "recovery_max_publication_limit = 1000")).await);
    let (mut ws, _) = srv.client("u").await;
    let r = ws.subscribe(2, "fr:hot").await["subscribe"].clone();
    let epoch = r["epoch"].clone();
    drop(ws);
    let publisher = {
        let srv = srv.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                srv.publish("fr:hot", json!(i)).await;
            }
        })
    };
    // Recover repeatedly from 0 while publishing goes on; each attempt must see a prefix
    // of the stream in the reply followed by the live rest, contiguously.
    for _ in 0..10 {
        let (mut ws, _) = srv.client("u").await;
        ws.send(&json!({"id": 2, "subscribe": {"channel": "fr:hot", "recover": true, "offset": 0, "epoch": epoch}})).await;
        let r = ws.reply(2).await["subscribe"].clone();
        assert_eq!(r["recovered"], true, "{r}");
        let mut seen = offsets(&r["publications"]);
        assert_eq!(seen, (1..=seen.len() as u64).collect::<Vec<_>>(), "recovered prefix");
        assert_eq!(r["offset"].as_u64().unwrap_or(0), seen.len() as u64);
        for _ in 0..5 {
            if seen.len() as u64 >= 200 {
                break;
            }
            seen.push(ws.push("pub").await["pub"]["offset"].as_u64().expect("offset"));
        }
        assert_eq!(seen, (1..=seen.len() as u64).collect::<Vec<_>>(), "live continues the recovered prefix");
    }
    publisher.await.expect("publisher");
}
