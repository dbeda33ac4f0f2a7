//! Token edge cases over a real WebSocket: `nbf` in the future, expiries near 2^64, and
//! subscription tokens issued for another channel, user or client.

mod common;

use common::{Closed, now_secs, start, token_with};
use serde_json::json;

#[tokio::test]
async fn connect_with_nbf_ahead_gets_109() {
    let srv = start("").await;
    let mut ws = srv.ws().await;
    let t = token_with(&json!({"sub": "1", "nbf": now_secs() + 600}));
    ws.send(&json!({"id": 1, "connect": {"token": t}})).await;
    assert_eq!(ws.reply(1).await["error"]["code"], 109);
    srv.shutdown().await;
}

#[tokio::test]
async fn connect_with_exp_near_2_pow_64_stays_open_with_a_year_ttl() {
    let srv = start("").await;
    let mut ws = srv.ws().await;
    ws.send(&json!({"id": 1, "connect": {"token": token_with(&json!({"sub": "1", "exp": u64::MAX}))}})).await;
    let reply = ws.reply(1).await;
    assert_eq!(reply["connect"]["ttl"], 365 * 24 * 3600, "{reply}");
    // Still open: a command is answered rather than the socket closed with 3005.
    ws.send(&json!({"id": 2, "ping": {}})).await;
    assert_eq!(ws.reply(2).await, json!({"id": 2, "ping": {}}));
    srv.shutdown().await;
}

#[tokio::test]
async fn subscription_token_for_another_user_closes_with_3500() {
    let srv = start("").await;
    let (mut ws, _) = srv.client("alice").await;
    let t = token_with(&json!({"sub": "bob", "channel": "$secret"}));
    ws.send(&json!({"id": 2, "subscribe": {"channel": "$secret", "token": t}})).await;
    assert_eq!(ws.closed().await, Closed::Frame(3500, "invalid token".into()));
    srv.shutdown().await;
}
