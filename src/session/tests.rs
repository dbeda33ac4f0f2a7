//! Session flows driven without sockets: commands in, outbox contents out, time stepped.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::broker::MemoryBroker;
use crate::config::Config;
use crate::hub::Drained;
use crate::metrics::Metrics;
use crate::protocol::{CommandBody, ConnectRequest, SubscribeRequest, UnsubscribeReason};

const SECRET: &str = "s";
/// A fixed "now" (unix ms) so expiries are exact.
const T0: u64 = 1_800_000_000_000;

fn setup(extra: &str) -> (Hub, Arc<Auth>) {
    let text = format!(
        "[client.token]\nhmac_secret_key = \"{SECRET}\"\n[channel.without_namespace]\nallow_subscribe_for_client = true\n{extra}"
    );
    let config = Config::from_text(&text).expect("config").config;
    let auth = Auth::from_config(&config.client).expect("auth");
    (Hub::new(Arc::new(config), MemoryBroker::new(), Arc::new(Metrics::default())), auth)
}

const WS: TransportInfo = TransportInfo { name: "websocket", bidirectional: true, emulation: false };

fn session(hub: &Hub, auth: &Arc<Auth>) -> (Session, Arc<Outbox>) {
    let outbox = Outbox::new(1 << 20);
    (Session::new(hub.clone(), auth.clone(), outbox.clone(), WS, T0), outbox)
}

#[allow(clippy::needless_pass_by_value)]
fn token(claims: serde_json::Value) -> String {
    #[allow(clippy::needless_pass_by_value)]
    let claims = &claims;
    crate::auth::jwt::mint_hs256(SECRET, claims).expect("mint")
}

fn connect_cmd(claims: serde_json::Value) -> Command {
    Command { id: 1, body: CommandBody::Connect(ConnectRequest { token: token(claims), ..Default::default() }) }
}

fn drain(outbox: &Outbox) -> (Vec<Outgoing>, Drained) {
    let mut out = Vec::new();
    let status = outbox.drain(&mut out);
    (out, status)
}

#[tokio::test]
async fn subscribe_reply_precedes_publications() {
    let (hub, auth) = setup("");
    let (mut s, outbox) = session(&hub, &auth);
    s.handle(connect_cmd(json!({"sub": "1"})), T0).await.expect("connect");
    let sub = Command { id: 2, body: CommandBody::Subscribe(SubscribeRequest { channel: "c".into(), ..Default::default() }) };
    s.handle(sub, T0).await.expect("subscribe");
    hub.publish(crate::hub::PublishRequest { channel: "c".into(), data: "1".into(), ..Default::default() })
        .await
        .expect("publish");
    let (items, status) = drain(&outbox);
    assert_eq!(status, Drained::Open);
    assert!(matches!(&items[0], Outgoing::Reply(r) if r.id == 1));
    assert!(matches!(&items[1], Outgoing::Reply(r) if r.id == 2));
    assert!(matches!(&items[2], Outgoing::Publication(_)));
    assert_eq!(items.len(), 3);
    s.close().await;
    assert_eq!(hub.info().num_channels, 0, "closing releases the subscription");
    assert_eq!(hub.info().num_clients, 0);
}

#[tokio::test]
async fn stale_connection_times_out_at_its_deadline() {
    let (hub, auth) = setup("");
    let (mut s, _) = session(&hub, &auth);
    assert_eq!(s.next_deadline(), T0 + 10_000);
    assert_eq!(s.tick(T0 + 9_999).await, Ok(()));
    assert_eq!(s.tick(T0 + 10_000).await, Err(Disconnect::STALE));
}

#[tokio::test]
async fn the_heartbeat_follows_the_config_and_the_transport() {
    let (hub, auth) = setup("[client]\nping_interval = \"10s\"\npong_timeout = \"4s\"");
    let (s, _) = session(&hub, &auth);
    let mut h = s.heartbeat();
    h.start(T0);
    let first = h.next_deadline();
    assert!((T0 + 5_000..=T0 + 10_000).contains(&first), "ping_interval is the heartbeat's");
    h.tick(first);
    assert_eq!(h.next_deadline(), first + 4_000, "pong_timeout is the heartbeat's");
}

#[tokio::test]
async fn connection_expires_after_the_grace_period() {
    let (hub, auth) = setup("");
    let (mut s, outbox) = session(&hub, &auth);
    let exp = T0 / 1000 + 60;
    s.handle(connect_cmd(json!({"sub": "1", "exp": exp})), T0).await.expect("connect");
    let (items, _) = drain(&outbox);
    let Outgoing::Reply(reply) = &items[0] else { panic!("connect reply") };
    let ReplyBody::Connect(result) = &reply.body else { panic!("connect reply") };
    assert_eq!((result.expiry.expires, result.expiry.ttl), (true, 60));
    assert_eq!(s.tick(exp * 1000 + 24_000).await, Ok(()), "within expired_close_delay");
    assert_eq!(s.tick(exp * 1000 + 25_000).await, Err(Disconnect::EXPIRED));
}

#[tokio::test]
async fn expired_subscription_token_unsubscribes_with_2501() {
    let (hub, auth) = setup("");
    let (mut s, outbox) = session(&hub, &auth);
    s.handle(connect_cmd(json!({"sub": "1"})), T0).await.expect("connect");
    let exp = T0 / 1000 + 30;
    let sub_token = token(json!({"sub": "1", "channel": "$p", "exp": exp}));
    let cmd = Command {
        id: 2,
        body: CommandBody::Subscribe(SubscribeRequest { channel: "$p".into(), token: sub_token, ..Default::default() }),
    };
    s.handle(cmd, T0).await.expect("subscribe");
    drain(&outbox);
    assert_eq!(s.next_deadline(), (exp + 25) * 1000);
    s.tick((exp + 25) * 1000).await.expect("tick");
    let (items, _) = drain(&outbox);
    assert!(matches!(
        items.as_slice(),
        [Outgoing::Push(p)] if matches!(**p, Push::Unsubscribe { reason: UnsubscribeReason::Expired, .. })
    ));
    assert_eq!(s.channels().count(), 0);
    assert_eq!(hub.info().num_subs, 0);
}

#[tokio::test]
async fn failed_connect_ignores_commands_then_closes() {
    let (hub, auth) = setup("");
    let (mut s, outbox) = session(&hub, &auth);
    s.handle(connect_cmd(json!({"sub": "1", "exp": T0 / 1000 - 1})), T0).await.expect("answered with 109");
    let (items, _) = drain(&outbox);
    assert!(matches!(&items[0], Outgoing::Reply(r) if matches!(r.body, ReplyBody::Error(ClientError::TokenExpired))));
    let sub = Command { id: 2, body: CommandBody::Subscribe(SubscribeRequest { channel: "c".into(), ..Default::default() }) };
    assert_eq!(s.handle(sub, T0).await, Ok(()));
    assert!(drain(&outbox).0.is_empty());
    assert_eq!(s.tick(T0 + FAILED_CLOSE_DELAY_MS).await, Err(Disconnect::BAD_REQUEST));
}

#[tokio::test]
async fn insufficient_state_unsubscribes_client_side_and_disconnects_server_side() {
    let (hub, auth) = setup("");
    let (mut s, outbox) = session(&hub, &auth);
    s.handle(connect_cmd(json!({"sub": "1", "channels": ["srv"]})), T0).await.expect("connect");
    let sub = Command { id: 2, body: CommandBody::Subscribe(SubscribeRequest { channel: "c".into(), ..Default::default() }) };
    s.handle(sub, T0).await.expect("subscribe");
    drain(&outbox);
    s.handle_control(Control::InsufficientState("c".into()), T0).await.expect("client-side: unsubscribed");
    let (items, _) = drain(&outbox);
    assert!(matches!(
        items.as_slice(),
        [Outgoing::Push(p)] if matches!(**p, Push::Unsubscribe { reason: UnsubscribeReason::InsufficientState, .. })
    ));
    assert_eq!(s.channels().collect::<Vec<_>>(), vec!["srv"]);
    assert_eq!(
        s.handle_control(Control::InsufficientState("srv".into()), T0).await,
        Err(Disconnect::INSUFFICIENT_STATE)
    );
}

fn subscribe_cmd(id: u32, channel: &str, token: String) -> Command {
    Command { id, body: CommandBody::Subscribe(SubscribeRequest { channel: channel.into(), token, ..Default::default() }) }
}

fn sub_refresh_cmd(id: u32, channel: &str, token: String) -> Command {
    Command {
        id,
        body: CommandBody::SubRefresh(crate::protocol::SubRefreshRequest { channel: channel.into(), token }),
    }
}

fn refresh_cmd(id: u32, token: String) -> Command {
    Command { id, body: CommandBody::Refresh(crate::protocol::RefreshRequest { token }) }
}

/// The error code of the reply with `id` among the queued items.
fn error_of(items: &[Outgoing], id: u32) -> Option<ClientError> {
    items.iter().find_map(|o| match o {
        Outgoing::Reply(r) => match &**r {
            Reply { id: rid, body: ReplyBody::Error(e) } if *rid == id => Some(*e),
            _ => None,
        },
        _ => None,
    })
}

#[tokio::test]
async fn connect_token_not_valid_yet_is_answered_109() {
    let (hub, auth) = setup("");
    let (mut s, outbox) = session(&hub, &auth);
    let nbf = T0 / 1000 + 60;
    s.handle(connect_cmd(json!({"sub": "1", "nbf": nbf})), T0).await.expect("answered, not closed");
    let (items, _) = drain(&outbox);
    assert_eq!(error_of(&items, 1), Some(ClientError::TokenExpired));
    assert!(!s.is_connected());
}

#[tokio::test]
async fn refresh_token_not_valid_yet_closes_with_3005() {
    let (hub, auth) = setup("");
    let (mut s, _) = session(&hub, &auth);
    s.handle(connect_cmd(json!({"sub": "1", "exp": T0 / 1000 + 60})), T0).await.expect("connect");
    let later = token(json!({"sub": "1", "exp": T0 / 1000 + 600, "nbf": T0 / 1000 + 60}));
    assert_eq!(s.handle(refresh_cmd(2, later), T0).await, Err(Disconnect::EXPIRED));
}

#[tokio::test]
async fn subscription_tokens_not_valid_yet_are_answered_109() {
    let (hub, auth) = setup("");
    let (mut s, outbox) = session(&hub, &auth);
    s.handle(connect_cmd(json!({"sub": "1"})), T0).await.expect("connect");
    let nbf = T0 / 1000 + 60;
    let later = token(json!({"sub": "1", "channel": "$p", "nbf": nbf}));
    s.handle(subscribe_cmd(2, "$p", later.clone()), T0).await.expect("subscribe answered");
    let (items, _) = drain(&outbox);
    assert_eq!(error_of(&items, 2), Some(ClientError::TokenExpired));
    assert_eq!(s.channels().count(), 0, "not subscribed");
    // Subscribed with a valid token, a sub_refresh whose token is not valid yet is 109 too
    // and leaves the subscription's expiry as it was.
    let exp = T0 / 1000 + 30;
    s.handle(subscribe_cmd(3, "$p", token(json!({"sub": "1", "channel": "$p", "exp": exp}))), T0).await.expect("sub");
    s.handle(sub_refresh_cmd(4, "$p", later), T0).await.expect("sub_refresh answered");
    let (items, _) = drain(&outbox);
    assert_eq!(error_of(&items, 4), Some(ClientError::TokenExpired));
    assert_eq!(s.subs.get("$p").expect("subscribed").expire_at, Some(exp));
}

/// The connection or subscription ttl a reply reports.
fn ttl_of(item: &Outgoing) -> Option<u32> {
    let Outgoing::Reply(reply) = item else { return None };
    match &reply.body {
        ReplyBody::Connect(r) => Some(r.expiry.ttl),
        ReplyBody::Refresh(r) => Some(r.expiry.ttl),
        ReplyBody::Subscribe(r) => Some(r.expiry.ttl),
        ReplyBody::SubRefresh(e) => Some(e.ttl),
        _ => None,
    }
}

const YEAR: u32 = MAX_EXPIRY_AHEAD_SECS as u32;

#[tokio::test]
async fn huge_connection_expiry_is_clamped_to_a_year_not_wrapped() {
    for claims in [json!({"sub": "1", "exp": u64::MAX}), json!({"sub": "1", "expire_at": u64::MAX - 3})] {
        let (hub, auth) = setup("");
        let (mut s, outbox) = session(&hub, &auth);
        s.handle(connect_cmd(claims.clone()), T0).await.expect("connect");
        let (items, _) = drain(&outbox);
        assert_eq!(ttl_of(&items[0]), Some(YEAR), "{claims}");
        assert_eq!(s.tick(T0 + 1_000).await, Ok(()), "not closed at once: {claims}");
        let year_ms = MAX_EXPIRY_AHEAD_SECS * 1000;
        assert_eq!(s.next_deadline(), T0 + year_ms + 25_000, "expires a year (plus grace) on");
        assert_eq!(s.tick(T0 + year_ms + 25_000).await, Err(Disconnect::EXPIRED));
    }
}

#[tokio::test]
async fn huge_refresh_expiry_is_clamped_to_a_year() {
    let (hub, auth) = setup("");
    let (mut s, outbox) = session(&hub, &auth);
    s.handle(connect_cmd(json!({"sub": "1", "exp": T0 / 1000 + 60})), T0).await.expect("connect");
    drain(&outbox);
    s.handle(refresh_cmd(2, token(json!({"sub": "1", "exp": u64::MAX}))), T0).await.expect("refresh");
    let (items, _) = drain(&outbox);
    assert_eq!(ttl_of(&items[0]), Some(YEAR));
    assert_eq!(s.tick(T0 + 120_000).await, Ok(()), "the refreshed connection outlives the old exp");
    // The server API's refresh goes through the same clamp.
    s.handle_control(
        Control::Refresh {
            target: crate::hub::Target { user: "1".into(), client: String::new(), session: String::new() },
            expired: false,
            expire_at: Some(u64::MAX),
            info: None,
        },
        T0,
    )
    .await
    .expect("api refresh");
    assert_eq!(s.tick(T0 + 120_000).await, Ok(()));
    assert_eq!(s.expire_at, Some(T0 / 1000 + MAX_EXPIRY_AHEAD_SECS));
}

#[tokio::test]
async fn huge_subscription_expiry_is_clamped_to_a_year() {
    let (hub, auth) = setup("");
    let (mut s, outbox) = session(&hub, &auth);
    s.handle(connect_cmd(json!({"sub": "1"})), T0).await.expect("connect");
    let sub_token = token(json!({"sub": "1", "channel": "$p", "exp": u64::MAX}));
    s.handle(subscribe_cmd(2, "$p", sub_token), T0).await.expect("subscribe");
    let refreshed = token(json!({"sub": "1", "channel": "$p", "expire_at": u64::MAX - 1}));
    s.handle(sub_refresh_cmd(3, "$p", refreshed), T0).await.expect("sub_refresh");
    let (items, _) = drain(&outbox);
    let ttls: Vec<_> = items.iter().filter_map(ttl_of).collect();
    assert_eq!(ttls, vec![0, YEAR, YEAR], "connect (no expiry), subscribe, sub_refresh");
    s.tick(T0 + 1_000).await.expect("tick");
    assert!(drain(&outbox).0.is_empty(), "no unsubscribe 2501 at once");
    assert_eq!(s.channels().collect::<Vec<_>>(), vec!["$p"]);
    assert_eq!(s.next_deadline(), (T0 / 1000 + MAX_EXPIRY_AHEAD_SECS + 25) * 1000);
}

#[tokio::test]
async fn recover_from_an_offset_beyond_the_stream_is_not_recovered() {
    let (hub, auth) = setup("[[channel.namespaces]]\nname = \"hist\"\nallow_subscribe_for_client = true\nhistory_size = 10\nhistory_ttl = \"60s\"\nforce_recovery = true");
    let (mut s, outbox) = session(&hub, &auth);
    s.handle(connect_cmd(json!({"sub": "1"})), T0).await.expect("connect");
    hub.publish(crate::hub::PublishRequest { channel: "hist:x".into(), data: "1".into(), ..Default::default() })
        .await
        .expect("publish");
    let req = SubscribeRequest { channel: "hist:x".into(), recover: true, offset: u64::MAX, ..Default::default() };
    s.handle(Command { id: 2, body: CommandBody::Subscribe(req) }, T0).await.expect("subscribe");
    let (items, _) = drain(&outbox);
    assert!(matches!(&items[1], Outgoing::Reply(reply) if matches!(&**reply, Reply { id: 2, body: ReplyBody::Subscribe(r) } if !r.recovered)));
}

#[tokio::test]
async fn subscription_token_for_another_channel_user_or_client_closes_with_3500() {
    let others = [
        json!({"sub": "1", "channel": "$other"}),
        json!({"sub": "2", "channel": "$p"}),
        json!({"sub": "1", "channel": "$p", "client": "someone-else"}),
    ];
    for claims in others {
        let (hub, auth) = setup("");
        let (mut s, outbox) = session(&hub, &auth);
        s.handle(connect_cmd(json!({"sub": "1"})), T0).await.expect("connect");
        drain(&outbox);
        let got = s.handle(subscribe_cmd(2, "$p", token(claims.clone())), T0).await;
        assert_eq!(got, Err(Disconnect::INVALID_TOKEN), "{claims}");
        assert!(drain(&outbox).0.is_empty(), "no reply before the close: {claims}");
        assert_eq!(hub.info().num_subs, 0);
    }
}

#[tokio::test]
async fn subscription_token_bad_signature_is_103_and_expired_is_109() {
    let (hub, auth) = setup("");
    let (mut s, outbox) = session(&hub, &auth);
    s.handle(connect_cmd(json!({"sub": "1"})), T0).await.expect("connect");
    let c = s.client_id().to_owned();
    let forged = crate::auth::jwt::mint_hs256("not-the-secret", &json!({"sub": "1", "channel": "$p"})).expect("mint");
    s.handle(subscribe_cmd(2, "$p", forged), T0).await.expect("answered");
    let expired = token(json!({"sub": "1", "channel": "$p", "exp": T0 / 1000 - 1}));
    s.handle(subscribe_cmd(3, "$p", expired), T0).await.expect("answered");
    // Bound to this very client: accepted.
    s.handle(subscribe_cmd(4, "$p", token(json!({"sub": "1", "channel": "$p", "client": c}))), T0).await.expect("ok");
    let (items, _) = drain(&outbox);
    assert_eq!(error_of(&items, 2), Some(ClientError::PermissionDenied));
    assert_eq!(error_of(&items, 3), Some(ClientError::TokenExpired));
    assert!(items.iter().any(|o| matches!(o, Outgoing::Reply(r) if matches!(**r, Reply { id: 4, body: ReplyBody::Subscribe(_) }))));
}

#[tokio::test]
async fn sub_refresh_with_a_foreign_or_forged_token_closes_with_3500() {
    let forged = crate::auth::jwt::mint_hs256("not-the-secret", &json!({"sub": "1", "channel": "$p"})).expect("mint");
    let bad = [
        token(json!({"sub": "1", "channel": "$other"})),
        token(json!({"sub": "2", "channel": "$p"})),
        token(json!({"sub": "1", "channel": "$p", "client": "someone-else"})),
        forged,
    ];
    for t in bad {
        let (hub, auth) = setup("");
        let (mut s, _) = session(&hub, &auth);
        s.handle(connect_cmd(json!({"sub": "1"})), T0).await.expect("connect");
        s.handle(subscribe_cmd(2, "$p", token(json!({"sub": "1", "channel": "$p"}))), T0).await.expect("sub");
        assert_eq!(s.handle(sub_refresh_cmd(3, "$p", t), T0).await, Err(Disconnect::INVALID_TOKEN));
    }
}

#[tokio::test]
async fn presence_entries_are_refreshed_every_presence_update_interval() {
    let text = format!(
        "[client]\npresence_update_interval = \"10s\"\n[client.token]\nhmac_secret_key = \"{SECRET}\"\n\
         [channel.without_namespace]\nallow_subscribe_for_client = true\npresence = true"
    );
    let config = Config::from_text(&text).expect("config").config;
    let auth = Auth::from_config(&config.client).expect("auth");
    let engine = Arc::new(crate::hub::tests::EngineDouble::default());
    let hub = Hub::new(Arc::new(config), engine.clone(), Arc::new(Metrics::default()));
    let (mut s, _outbox) = session(&hub, &auth);
    s.handle(connect_cmd(json!({"sub": "1"})), T0).await.expect("connect");
    let sub = Command { id: 2, body: CommandBody::Subscribe(SubscribeRequest { channel: "c".into(), ..Default::default() }) };
    s.handle(sub, T0).await.expect("subscribe");
    let presence = |e: &Arc<crate::hub::tests::EngineDouble>| e.events().iter().filter(|e| *e == "presence c").count();
    assert_eq!(presence(&engine), 1, "added on subscribe");
    // The first timer run schedules the refresh; it is due one interval later.
    let due = s.next_deadline();
    s.tick(due).await.expect("tick");
    assert_eq!(presence(&engine), 1);
    assert_eq!(s.next_deadline(), due + 10_000, "next refresh one interval later");
    s.tick(due + 10_000).await.expect("tick");
    assert_eq!(presence(&engine), 2, "refreshed");
    s.tick(due + 20_000).await.expect("tick");
    assert_eq!(presence(&engine), 3, "and again");
}

#[tokio::test]
async fn own_join_on_a_token_channel_follows_the_connect_reply() {
    let (hub, auth) = setup("[[channel.namespaces]]\nname = \"jl\"\njoin_leave = true\nforce_push_join_leave = true\npresence = true");
    let (mut s, outbox) = session(&hub, &auth);
    s.handle(connect_cmd(json!({"sub": "42", "channels": ["jl:room"]})), T0).await.expect("connect");
    let (items, _) = drain(&outbox);
    assert!(matches!(&items[0], Outgoing::Reply(r) if r.id == 1), "the connect reply first: {items:?}");
    assert!(
        matches!(&items[1], Outgoing::Push(p) if matches!(&**p, Push::Join { channel, info } if channel == "jl:room" && info.user == "42")),
        "then the client's own join: {items:?}"
    );
    assert_eq!(items.len(), 2);
}

const PERSONAL: &str = "[client.subscribe_to_user_personal_channel]\nenabled = true\npersonal_channel_namespace = \"personal\"\nsingle_connection = true\n[[channel.namespaces]]\nname = \"personal\"\npresence = true";

#[tokio::test]
async fn personal_channel_subscribes_every_user_and_keeps_a_single_connection() {
    let (hub, auth) = setup(PERSONAL);
    let (mut first, first_out) = session(&hub, &auth);
    first.handle(connect_cmd(json!({"sub": "42"})), T0).await.expect("connect");
    let (items, _) = drain(&first_out);
    let Outgoing::Reply(reply) = &items[0] else { panic!("a connect reply: {items:?}") };
    let ReplyBody::Connect(result) = &reply.body else { panic!("connect result") };
    assert_eq!(result.subs.keys().collect::<Vec<_>>(), vec!["personal:#42"]);
    assert_eq!(first.channels().collect::<Vec<_>>(), vec!["personal:#42"]);
    assert!(!first_out.is_closing());
    // An anonymous connection gets none.
    let (mut anon, _) = session(&hub, &auth);
    anon.handle(connect_cmd(json!({"sub": ""})), T0).await.expect("connect");
    assert_eq!(anon.channels().count(), 0);
    // The user's second connection closes the first with 3504, and stays.
    let (mut second, second_out) = session(&hub, &auth);
    second.handle(connect_cmd(json!({"sub": "42"})), T0).await.expect("connect");
    assert_eq!(first_out.closing_reason(), Some(Disconnect::CONNECTION_LIMIT));
    assert!(!second_out.is_closing(), "the new one is spared");
}

const DELTA: &str = "[[channel.namespaces]]\nname = \"dd\"\nallow_subscribe_for_client = true\nhistory_size = 10\nhistory_ttl = \"60s\"\nforce_positioning = true\nallowed_delta_types = [\"fossil\"]\n[[channel.namespaces]]\nname = \"np\"\nallow_subscribe_for_client = true\nallowed_delta_types = [\"fossil\"]";

/// The reply to subscribe command `id` asking for delta type `delta`: its delta flag, or its error.
async fn subscribe_with_delta(s: &mut Session, outbox: &Outbox, id: u32, channel: &str, delta: &str) -> Result<bool, ClientError> {
    let req = SubscribeRequest { channel: channel.into(), delta: delta.into(), ..Default::default() };
    s.handle(Command { id, body: CommandBody::Subscribe(req) }, T0).await.expect("subscribe");
    let (items, _) = drain(outbox);
    items
        .iter()
        .find_map(|o| match o {
            Outgoing::Reply(r) if r.id == id => Some(match &r.body {
                ReplyBody::Subscribe(res) => Ok(res.delta),
                ReplyBody::Error(e) => Err(*e),
                other => panic!("{other:?}"),
            }),
            _ => None,
        })
        .expect("a reply")
}

#[tokio::test]
async fn delta_is_negotiated_where_the_namespace_allows_it_on_positioned_subscriptions() {
    let (hub, auth) = setup(DELTA);
    let (mut s, outbox) = session(&hub, &auth);
    s.handle(connect_cmd(json!({"sub": "1"})), T0).await.expect("connect");
    drain(&outbox);
    assert_eq!(subscribe_with_delta(&mut s, &outbox, 2, "dd:a", "fossil").await, Ok(true));
    assert_eq!(subscribe_with_delta(&mut s, &outbox, 3, "dd:b", "").await, Ok(false), "not asked");
    assert_eq!(subscribe_with_delta(&mut s, &outbox, 4, "dd:c", "xdelta").await, Err(ClientError::BadRequest), "no such type");
    assert_eq!(subscribe_with_delta(&mut s, &outbox, 5, "c", "fossil").await, Err(ClientError::BadRequest), "not allowed here");
    assert_eq!(subscribe_with_delta(&mut s, &outbox, 6, "np:a", "fossil").await, Ok(false), "allowed, but not positioned");
}

#[tokio::test]
async fn a_delta_subscriber_gets_the_first_publication_in_full_then_patches() {
    let (hub, auth) = setup(DELTA);
    let (mut s, outbox) = session(&hub, &auth);
    s.handle(connect_cmd(json!({"sub": "1"})), T0).await.expect("connect");
    drain(&outbox);
    assert_eq!(subscribe_with_delta(&mut s, &outbox, 2, "dd:a", "fossil").await, Ok(true));
    let body = |n: u32| format!(r#"{{"n":{n},"text":"{}"}}"#, "lorem ipsum ".repeat(20));
    for n in 1..=3 {
        let req = crate::hub::PublishRequest { channel: "dd:a".into(), data: body(n).into(), delta: true, ..Default::default() };
        hub.publish(req).await.expect("publish");
    }
    let (items, _) = drain(&outbox);
    let patches: Vec<bool> = items
        .iter()
        .map(|o| match o {
            Outgoing::Publication(p) => p.is_patch(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(patches, [false, true, true]);
    // History keeps full publications.
    let page = hub.history("dd:a", &crate::hub::HistoryFilter { limit: 10, ..Default::default() }).await.expect("history");
    assert_eq!(page.publications.len(), 3);
    assert!(page.publications.iter().all(|p| !p.delta && p.data == body(p.offset as u32)));
}
