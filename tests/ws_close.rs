//! WebSocket closes that must reach the client (issue 9, item 5): an oversized message
//! gets 1009 every time (the server lingers instead of resetting the socket with the
//! client's bytes unread).

mod common;

use common::{Closed, WAIT};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

/// A message far over `websocket.message_size_limit` (64 KiB by default): 10 MB.
const HUGE: usize = 10 * 1024 * 1024;

#[tokio::test]
async fn an_oversized_message_gets_1009_every_time() {
    let srv = common::start("").await;
    let text = "x".repeat(HUGE);
    for round in 0..10 {
        let mut ws = srv.ws().await;
        // The server may stop reading (and answer) before the client has written it all.
        let _ = tokio::time::timeout(WAIT, ws.stream.send(Message::Text(text.clone().into()))).await;
        match ws.closed().await {
            Closed::Frame(code, _) => assert_eq!(code, 1009, "round {round}"),
            Closed::NoFrame => panic!("round {round}: connection dropped without the 1009 close frame"),
        }
    }
    srv.shutdown().await;
}
