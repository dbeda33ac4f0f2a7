//! Several real Tidewire servers (each on 127.0.0.1 port 0, as tests/common starts them)
//! sharing one Redis, two sharded Redis instances, or a 3-master Redis Cluster: what a
//! client on one node sees of publications, history, presence, join/leave and server API
//! actions made through another, and what happens while Redis is away.

mod common;

use std::time::{Duration, Instant};

use common::redis::{RedisCluster, RedisServer, cli};
use common::{Closed, TestServer, Ws, start, token};
use serde_json::{Value, json};

/// Namespaces of these tests: `room` keeps history and presence and pushes join/leave.
const ROOM: &str = r#"
[[channel.namespaces]]
name = "room"
allow_subscribe_for_client = true
allow_presence_for_subscriber = true
allow_history_for_subscriber = true
presence = true
join_leave = true
force_push_join_leave = true
history_size = 10
history_ttl = "300s"
"#;

async fn node(addresses: &[String]) -> TestServer {
    let list: Vec<String> = addresses.iter().map(|a| format!("{a:?}")).collect();
    let extra = format!(
        "{ROOM}\n[engine]\ntype = \"redis\"\n[engine.redis]\naddress = [{}]\nprefix = \"nodes\"\nio_timeout = \"500ms\"\nconnect_timeout = \"500ms\"\n",
        list.join(", ")
    );
    start(&extra).await
}

async fn client(srv: &TestServer, user: &str) -> (Ws, String) {
    let mut ws = srv.ws().await;
    ws.send(&json!({"id": 1, "connect": {"token": token(user, 3600)}})).await;
    let reply = ws.reply(1).await;
    let id = reply["connect"]["client"].as_str().unwrap_or_else(|| panic!("connect failed: {reply}")).to_string();
    (ws, id)
}

/// Subscribes a new client of `user` on `srv` to `channel`, and checks that by the time
/// the subscribe reply arrives Redis already counts `subscribers` node subscriptions of the
/// channel (over every instance in `ports`): the hub answers only once the engine
/// subscription exists, so a publication right after the reply cannot be missed.
async fn subscribed(srv: &TestServer, ports: &[u16], user: &str, channel: &str, subscribers: u64) -> (Ws, String) {
    let (mut ws, id) = client(srv, user).await;
    let reply = ws.subscribe(2, channel).await;
    assert!(reply["subscribe"].is_object(), "subscribe failed: {reply}");
    let name = format!("nodes.client.{channel}");
    let count: u64 = ports
        .iter()
        .map(|p| cli(*p, &["pubsub", "numsub", &name]).lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or(0))
        .sum();
    assert!(count >= subscribers, "{channel}: answered before Redis had {subscribers} subscription(s) (it has {count})");
    (ws, id)
}

/// A publication pushed to `ws` in `channel`: its data and offset.
async fn next_pub(ws: &mut Ws, channel: &str) -> (Value, u64) {
    let push = ws.push("pub").await;
    assert_eq!(push["channel"], channel, "{push}");
    (push["pub"]["data"].clone(), push["pub"]["offset"].as_u64().unwrap_or(0))
}

/// Polls an API method on `srv` until `pred` holds on its result (bounded).
async fn api_until(srv: &TestServer, method: &str, body: Value, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + common::WAIT;
    loop {
        let (_, answer) = srv.api(method, body.clone()).await;
        if pred(&answer["result"]) {
            return answer["result"].clone();
        }
        assert!(Instant::now() < deadline, "{method} never matched: {answer}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A subscriber on `a` receives what `b`'s API publishes, with the offset `b` answered.
async fn cross_node_delivery(a: &TestServer, b: &TestServer, ports: &[u16], channel: &str) {
    let (mut ws, _) = subscribed(a, ports, "alice", channel, 1).await;
    for i in 1..=3 {
        let answer = b.publish(channel, json!({"n": i})).await;
        let offset = answer["result"]["offset"].as_u64().expect("history gives an offset");
        let (data, pushed) = tokio::time::timeout(common::WAIT - Duration::from_millis(100), next_pub(&mut ws, channel))
            .await
            .unwrap_or_else(|_| panic!("{channel}: publication {i} (offset {offset}) never reached node A"));
        assert_eq!(data, json!({"n": i}));
        assert_eq!(pushed, offset, "the pushed offset is the one B answered");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_subscriber_on_node_a_receives_what_node_b_publishes() {
    let redis = RedisServer::start();
    let a = node(&[redis.url()]).await;
    let b = node(&[redis.url()]).await;
    let ports = [redis.port];
    cross_node_delivery(&a, &b, &ports, "room:1").await;
    // And the other way round, on a channel without history.
    let (mut ws, _) = subscribed(&b, &ports, "bob", "chat:x", 1).await;
    a.publish("chat:x", json!({"from": "a"})).await;
    let (data, offset) = next_pub(&mut ws, "chat:x").await;
    assert_eq!((data, offset), (json!({"from": "a"}), 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_presence_and_join_leave_are_shared_by_every_node() {
    let redis = RedisServer::start();
    let a = node(&[redis.url()]).await;
    let b = node(&[redis.url()]).await;
    let ports = [redis.port];
    let (mut alice, alice_id) = subscribed(&a, &ports, "alice", "room:2", 1).await;
    // Presence of a client on A, seen through B's API.
    let presence = api_until(&b, "presence", json!({"channel": "room:2"}), |r| r["presence"].get(&alice_id).is_some()).await;
    assert_eq!(presence["presence"][&alice_id]["user"], "alice");
    // A client joining on B: A's subscriber gets the join; presence counts both nodes.
    let (mut bob, bob_id) = subscribed(&b, &ports, "bob", "room:2", 2).await;
    // (Alice may first see her own join, as on the memory engine.)
    let mut join = alice.push("join").await;
    if join["join"]["info"]["client"] == alice_id.as_str() {
        join = alice.push("join").await;
    }
    assert_eq!(join["join"]["info"]["client"], bob_id.as_str());
    let stats = api_until(&a, "presence_stats", json!({"channel": "room:2"}), |r| r["num_clients"] == 2).await;
    assert_eq!(stats["num_users"], 2);
    // Published through A, read from B's history.
    for i in 1..=3 {
        a.publish("room:2", json!({"n": i})).await;
    }
    let (_, h) = b.api("history", json!({"channel": "room:2", "limit": 10})).await;
    let pubs = h["result"]["publications"].as_array().expect("publications").clone();
    assert_eq!(pubs.iter().map(|p| p["data"]["n"].clone()).collect::<Vec<_>>(), vec![json!(1), json!(2), json!(3)]);
    let epoch = h["result"]["epoch"].as_str().expect("epoch").to_string();
    let (_, ha) = a.api("history", json!({"channel": "room:2", "limit": 0})).await;
    assert_eq!(ha["result"]["epoch"], epoch.as_str(), "one epoch for every node");
    assert_eq!(ha["result"]["offset"], 3);
    // Bob leaves on B: Alice on A sees it.
    bob.send(&json!({"id": 3, "unsubscribe": {"channel": "room:2"}})).await;
    bob.reply(3).await;
    let leave = alice.push("leave").await;
    assert_eq!(leave["leave"]["info"]["client"], bob_id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_api_actions_through_one_node_reach_connections_on_another() {
    let redis = RedisServer::start();
    let a = node(&[redis.url()]).await;
    let b = node(&[redis.url()]).await;
    let (mut alice, _) = subscribed(&a, &[redis.port], "alice", "room:3", 1).await;
    let (status, answer) = b.api("unsubscribe", json!({"user": "alice", "channel": "room:3"})).await;
    assert_eq!((status, answer.get("error")), (200, None), "{answer}");
    let push = alice.push("unsubscribe").await;
    assert_eq!(push["channel"], "room:3");
    let (status, answer) =
        b.api("disconnect", json!({"user": "alice", "disconnect": {"code": 4001, "reason": "moved"}})).await;
    assert_eq!((status, answer.get("error")), (200, None), "{answer}");
    assert_eq!(alice.closed().await, Closed::Frame(4001, "moved".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_channels_sharded_over_two_redis_instances() {
    let r1 = RedisServer::start();
    let r2 = RedisServer::start();
    let addresses = [r1.url(), r2.url()];
    let ports = [r1.port, r2.port];
    let a = node(&addresses).await;
    let b = node(&addresses).await;
    // Enough channels that both shards hold some (checked by the broker test's count).
    for i in 0..6 {
        cross_node_delivery(&a, &b, &ports, &format!("room:s{i}")).await;
    }
    let (mut alice, _) = client(&a, "alice").await;
    b.api("disconnect", json!({"user": "alice"})).await;
    assert!(matches!(alice.closed().await, Closed::Frame(..)), "control crosses nodes on shard 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_a_redis_cluster_publish_subscribe_and_read_history() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::start).await.expect("cluster");
    let url = [cluster.url()];
    let ports: Vec<u16> = cluster.nodes.iter().map(|n| n.port).collect();
    let a = node(&url).await;
    let b = node(&url).await;
    let c = node(&url).await;
    for i in 0..4 {
        let channel = format!("room:c{i}");
        cross_node_delivery(&a, &b, &ports, &channel).await;
        let (_, h) = c.api("history", json!({"channel": channel, "limit": 10})).await;
        assert_eq!(h["result"]["publications"].as_array().map(Vec::len), Some(3), "{h}");
    }
    let (mut carol, carol_id) = subscribed(&c, &ports, "carol", "room:c9", 1).await;
    let presence = api_until(&a, "presence", json!({"channel": "room:c9"}), |r| r["presence"].get(&carol_id).is_some()).await;
    assert_eq!(presence["presence"][&carol_id]["user"], "carol");
    b.api("disconnect", json!({"user": "carol", "disconnect": {"code": 4002, "reason": "bye"}})).await;
    assert_eq!(carol.closed().await, Closed::Frame(4002, "bye".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_health_is_503_publish_fails_fast_and_clients_stay_connected() {
    let mut redis = RedisServer::start();
    let a = node(&[redis.url()]).await;
    let b = node(&[redis.url()]).await;
    let (mut alice, _) = subscribed(&a, &[redis.port], "alice", "room:4", 1).await;
    b.publish("room:4", json!({"n": 1})).await;
    next_pub(&mut alice, "room:4").await;

    redis.kill();
    let health = b.http.get(b.url("/health")).send().await.expect("health");
    assert_eq!(health.status().as_u16(), 503);
    let body = health.text().await.expect("body");
    assert!(body.contains("redis"), "names the engine: {body}");
    let started = Instant::now();
    let (status, answer) = b.api("publish", json!({"channel": "room:4", "data": {"n": 2}})).await;
    assert_eq!(status, 200);
    assert_eq!(answer["error"]["code"], 100, "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3), "bounded by io_timeout: {:?}", started.elapsed());

    let redis = tokio::task::spawn_blocking(move || {
        redis.restart();
        redis
    })
    .await
    .expect("restart");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = b.http.get(b.url("/health")).send().await.is_ok_and(|r| r.status().as_u16() == 200);
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "/health never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Alice stayed connected and her channel was subscribed again: a publication through
    // B reaches her (publish until one does: resubscribing follows the reconnect).
    let mut got = None;
    for i in 0..40 {
        b.publish("room:4", json!({"after": i})).await;
        if let Ok(push) = tokio::time::timeout(Duration::from_millis(250), alice.push("pub")).await {
            got = Some(push);
            break;
        }
    }
    let push = got.expect("a publication after the restart");
    assert!(push["pub"]["data"].get("after").is_some(), "{push}");
    drop(redis);
}
