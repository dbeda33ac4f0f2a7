//! What an idle WebSocket connection costs in its task.

use super::*;

/// What an idle connection holds in its task: the driver's state machine with this
/// transport in it. A regression here multiplies by every connection of a node.
#[tokio::test]
async fn an_idle_connection_task_stays_small() {
    let config = Arc::new(crate::config::Config::from_text("").expect("config").config);
    let auth = Auth::from_config(&config.client).expect("auth");
    let hub = Hub::new(config, crate::broker::MemoryBroker::new(), Arc::new(crate::metrics::Metrics::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let _client = TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
    let (stream, _) = listener.accept().await.expect("accept");
    let ws = WsSocket::new(stream, &[], 65_536, drop);
    let sockets = Sockets { take: |_| Err(UpgradeError::Io(std::io::ErrorKind::Other.into())), on_drop: drop };
    let fut = drive(&Ctx { hub, auth, sockets, runtime: crate::transport::ConnRuntime::here() }, ws, Mode::Bidi(Codec::Json), None);
    let size = std::mem::size_of_val(&fut);
    // Under 1,024 − 104: tokio's task cell (header, scheduler, id, this future, trailer)
    // is a multiple of 128 bytes, 1,024 with a future of this size.
    assert!(size <= 920, "the connection future is {size} bytes");
    assert!(std::mem::size_of::<Outgoing>() <= 16, "queued items stay pointer-sized");
    eprintln!("an idle WebSocket connection's future: {size} bytes");
}

/// The server side of a socket pair as this transport's framing, and the client side as
/// a WebSocket client (no handshake: both ends are already "upgraded").
async fn socket_pair() -> (Socket, tokio_tungstenite::WebSocketStream<TcpStream>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    // A small, fixed receive window (set before connecting, so the kernel does not grow
    // it): a write of a few megabytes cannot be taken at once and goes partial.
    let client = tokio::net::TcpSocket::new_v4().expect("socket");
    client.set_recv_buffer_size(8 * 1024).expect("SO_RCVBUF");
    let client = client.connect(listener.local_addr().expect("addr")).await.expect("connect");
    let (stream, _) = listener.accept().await.expect("accept");
    let socket = Socket {
        ws: WsSocket::new(stream, &[], 65_536, drop),
        info: &INFO,
        codec: Codec::Json,
        metrics: Arc::new(crate::metrics::Metrics::default()),
        write_timeout_ms: 5_000,
        peer_closed: false,
        bufs: None,
    };
    let client = tokio_tungstenite::WebSocketStream::from_raw_socket(client, tungstenite::protocol::Role::Client, None).await;
    (socket, client)
}

fn publication(offset: u64, len: usize) -> Outgoing {
    let data = bytes::Bytes::from(format!("\"{}\"", "x".repeat(len)));
    let p = crate::protocol::Publication { channel: "c".into(), offset, data, ..Default::default() };
    Outgoing::Publication(crate::hub::SharedPublication::new(Arc::new(p)))
}

/// The offsets of the publications in one joined text frame, line by line.
fn offsets(frame: &tungstenite::Message) -> Vec<u64> {
    let tungstenite::Message::Text(text) = frame else { panic!("not a text frame: {frame:?}") };
    text.as_str()
        .split('\n')
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("each line is one JSON push");
            v["push"]["pub"]["offset"].as_u64().expect("offset")
        })
        .collect()
}

/// Several messages go newline-joined in one frame; past `MAX_BATCH_BYTES` they are cut
/// into several frames written in one go, in order, none lost or repeated.
#[tokio::test]
async fn joined_writes_are_one_frame_or_several_past_the_batch_bound() {
    use futures_util::StreamExt;
    let (mut socket, mut client) = socket_pair().await;
    let mut items = vec![publication(1, 10), publication(2, 10)];
    socket.write(&mut items).await.expect("small write");
    assert!(items.is_empty(), "the writer takes what it wrote");
    let frame = client.next().await.expect("a frame").expect("frame");
    assert_eq!(offsets(&frame), vec![1, 2], "two small publications share one frame");
    assert!(socket.bufs.as_ref().is_some_and(|b| b.body.capacity() > 0), "a small joined write keeps its body buffer for the next");
    socket.trim();
    assert!(socket.bufs.is_none(), "a quiet connection gives its buffers back");

    let big = super::super::MAX_BATCH_BYTES / 3 + 1;
    let mut items: Vec<Outgoing> = (1..=5).map(|o| publication(o, big)).collect();
    let write = socket.write(&mut items);
    let read = async {
        let mut got = Vec::new();
        while got.iter().map(Vec::len).sum::<usize>() < 5 {
            let frame = client.next().await.expect("a frame").expect("frame");
            got.push(offsets(&frame));
        }
        got
    };
    let (written, got) = tokio::join!(write, read);
    written.expect("big write");
    let frames: Vec<usize> = got.iter().map(Vec::len).collect();
    assert!(frames.len() > 1 && frames.iter().all(|&n| n <= 3), "cut at the batch bound: {frames:?}");
    assert_eq!(got.concat(), vec![1, 2, 3, 4, 5], "in order, each once");
    assert!(socket.bufs.as_ref().is_some_and(|b| b.body.capacity() == 0), "a burst's body buffer is given back");
}

/// A shared frame larger than the socket takes at once (the client's window is 8 KiB,
/// the server's send buffer at most 4 MiB here) is written through partial writes while
/// the client reads slowly: whole, once, and nothing copied (the frame stays the
/// publication's).
#[tokio::test]
async fn a_shared_frame_goes_out_whole_through_partial_writes() {
    use futures_util::StreamExt;
    let (mut socket, mut client) = socket_pair().await;
    let big = publication(7, 8_000_000);
    let shared = match &big {
        Outgoing::Publication(p) => p.clone(),
        _ => unreachable!(),
    };
    let mut items = vec![Outgoing::Ping, big];
    socket.info = &UNI_INFO;
    let read = async {
        // Slow at first: the server's socket buffer fills and its writes go partial.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ping = client.next().await.expect("a frame").expect("frame");
        let publication = client.next().await.expect("a frame").expect("frame");
        (ping, publication)
    };
    let (written, (ping, publication)) = tokio::join!(socket.write(&mut items), read);
    written.expect("write");
    assert_eq!(ping, tungstenite::Message::Text("{}".into()), "the ping first");
    let tungstenite::Message::Text(text) = publication else { panic!("not a text frame") };
    assert_eq!(text.as_bytes(), shared.encoded(Codec::Json), "the publication whole, after the ping");
    assert_eq!(std::sync::Arc::strong_count(&shared), 1, "the writer kept nothing of it");
}

/// A lone publication is written from its shared frame without making the write buffers,
/// also when the socket takes it in parts: whole, once, and nothing kept after.
#[tokio::test]
async fn a_lone_publication_needs_no_buffers_even_written_in_parts() {
    use futures_util::StreamExt;
    let (mut socket, mut client) = socket_pair().await;
    let mut items = vec![publication(1, 10)];
    assert!(matches!(socket.write_bounded(&mut items, Duration::from_secs(5)).await, Some(Ok(()))));
    assert!(items.is_empty() && socket.bufs.is_none(), "written at once from the shared frame, no buffers made");
    assert_eq!(offsets(&client.next().await.expect("a frame").expect("frame")), vec![1]);

    let mut items = vec![publication(2, 4_000_000)];
    let read = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        offsets(&client.next().await.expect("a frame").expect("frame"))
    };
    let (written, got) = tokio::join!(socket.write_bounded(&mut items, Duration::from_secs(20)), read);
    assert!(matches!(written, Some(Ok(()))), "{written:?}");
    assert_eq!(got, vec![2], "the big one whole, once");
    assert!(items.is_empty() && socket.bufs.is_none(), "its write position given back with the write");
}

/// A write the socket cannot take at once waits (boxed, off the connection's task) under
/// the write timeout: a client that does not read makes it time out; one that reads late
/// gets the whole frame, and the write gives its buffers back.
#[tokio::test]
async fn a_write_that_must_wait_is_bounded_by_the_timeout_and_finishes_whole() {
    use futures_util::StreamExt;
    let (mut socket, _silent) = socket_pair().await;
    let mut items = vec![publication(1, 4_000_000), publication(2, 4_000_000)];
    let waited = socket.write_bounded(&mut items, Duration::from_millis(200)).await;
    assert!(waited.is_none(), "a client that reads nothing: timed out, {waited:?}");

    let (mut socket, mut client) = socket_pair().await;
    let mut items = vec![publication(1, 4_000_000), publication(2, 4_000_000)];
    let read = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut got = Vec::new();
        while got.len() < 2 {
            got.extend(offsets(&client.next().await.expect("a frame").expect("frame")));
        }
        got
    };
    let (written, got) = tokio::join!(socket.write_bounded(&mut items, Duration::from_secs(20)), read);
    assert!(matches!(written, Some(Ok(()))), "{written:?}");
    assert_eq!(got, vec![1, 2], "both publications, once, in order");
    assert!(items.is_empty(), "the write is over");
    let b = socket.bufs.as_ref().expect("a joined write keeps its small buffers");
    assert!(b.pending.is_none(), "the write is over");
    assert_eq!((b.body.capacity(), b.ends.capacity()), (0, 0), "its big buffer is given back");
}

/// One message per frame (a unidirectional client): shared frames and frames made in the
/// scratch buffer interleave in the items' order.
#[tokio::test]
async fn shared_and_scratch_frames_keep_the_items_order() {
    use futures_util::StreamExt;
    let (mut socket, mut client) = socket_pair().await;
    socket.info = &UNI_INFO;
    let mut items = vec![publication(1, 10), Outgoing::Ping, Outgoing::Ping, publication(2, 10), Outgoing::Ping, publication(3, 10)];
    socket.write(&mut items).await.expect("write");
    let mut got = Vec::new();
    for _ in 0..6 {
        let frame = client.next().await.expect("a frame").expect("frame");
        got.push(if frame == tungstenite::Message::Text("{}".into()) { 0 } else { offsets(&frame)[0] });
    }
    assert_eq!(got, vec![1, 0, 0, 2, 0, 3]);
}
