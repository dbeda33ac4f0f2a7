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
    let fut = drive(Ctx { hub, auth, sockets }, ws, Mode::Bidi(Codec::Json), None);
    let size = std::mem::size_of_val(&fut);
    assert!(size <= 4096, "the connection future is {size} bytes");
    assert!(std::mem::size_of::<Outgoing>() <= 16, "queued items stay pointer-sized");
}
