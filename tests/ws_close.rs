//! WebSocket closes that must reach the client (issue 9, item 5): an oversized message
//! gets 1009 every time (the server lingers instead of resetting the socket with the
//! client's bytes unread), and frames that break RFC 6455 get 1002 instead of a silent drop.

mod common;

use std::time::Duration;

use common::{Closed, WAIT};
use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// A message far over `websocket.message_size_limit` (64 KiB by default): 10 MB.
const HUGE: usize = 10 * 1024 * 1024;

#[tokio::test]
async fn an_oversized_message_gets_1009_every_time() {
    let srv = common::start("").await;
    let text = "x".repeat(HUGE);
    for round in 0..10 {
        let mut ws = srv.ws().await;
        // The server stops reading the message after its header and answers at once, while
        // the client is still writing. A browser fails the connection (1006, and
        // centrifuge-js reconnects) when that write is reset, so the write must succeed:
        // the server has to keep reading, not reset the socket.
        let sent = tokio::time::timeout(WAIT, ws.stream.send(Message::Text(text.clone().into()))).await;
        assert!(matches!(sent, Ok(Ok(()))), "round {round}: writing the message failed: {sent:?}");
        match ws.closed().await {
            Closed::Frame(code, _) => assert_eq!(code, 1009, "round {round}"),
            Closed::NoFrame => panic!("round {round}: connection dropped without the 1009 close frame"),
        }
    }
    srv.shutdown().await;
}

/// Opens a WebSocket by hand on a raw socket (so the test can write any bytes).
async fn raw_ws(srv: &common::TestServer) -> TcpStream {
    let mut s = TcpStream::connect(srv.addr).await.expect("connect");
    let req = format!(
        "GET /connection/websocket HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        srv.addr
    );
    s.write_all(req.as_bytes()).await.expect("handshake write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let b = tokio::time::timeout(WAIT, s.read_u8()).await.expect("handshake in time").expect("handshake read");
        head.push(b);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    s
}

/// The close code of the first frame the server sends, or None when the connection ends
/// without a close frame.
async fn first_close_code(s: &mut TcpStream) -> Option<u16> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        if buf.len() >= 2 {
            let len = usize::from(buf[1] & 0x7f);
            assert!(len < 126 && buf[1] & 0x80 == 0, "server frames are short and unmasked: {buf:?}");
            if buf.len() >= 2 + len {
                assert_eq!(buf[0], 0x88, "first frame is a final close frame: {buf:?}");
                assert!(len >= 2, "the close frame carries a code");
                return Some(u16::from_be_bytes([buf[2], buf[3]]));
            }
        }
        match tokio::time::timeout(WAIT, s.read(&mut chunk)).await.expect("close in time") {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A masked client frame: `first` byte (FIN, RSV, opcode), then the payload masked.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut f = vec![first];
    match payload.len() {
        n @ 0..=125 => f.push(0x80 | n as u8),
        n => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

#[tokio::test]
async fn protocol_violations_get_1002() {
    let srv = common::start("").await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unmasked client frame", vec![0x81, 0x02, b'h', b'i']),
        ("RSV1 set", masked(0xC1, b"{}")),
        ("RSV3 set", masked(0x91, b"{}")),
        ("unknown data opcode", masked(0x83, b"")),
        ("unknown control opcode", masked(0x8B, b"")),
        ("126-byte ping", masked(0x89, &[0u8; 126])),
        ("fragmented ping", masked(0x09, b"")),
        ("continuation without a start", masked(0x80, b"x")),
    ];
    for (name, bytes) in cases {
        let mut s = raw_ws(&srv).await;
        s.write_all(&bytes).await.expect("write");
        assert_eq!(first_close_code(&mut s).await, Some(1002), "{name}");
        // After the close frame the server closes the connection.
        let mut rest = [0u8; 64];
        let end = tokio::time::timeout(WAIT + Duration::from_secs(2), s.read(&mut rest)).await;
        assert!(matches!(end, Ok(Ok(0) | Err(_))), "{name}: connection closed after the close frame");
    }
    srv.shutdown().await;
}
