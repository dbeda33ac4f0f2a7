//! Warnings the network can trigger once per connection are rate-limited (issue 9,
//! item 7): a storm of connections against a full server writes a few lines a second,
//! and a later line reports how many were suppressed. This binary installs its own log
//! subscriber, so it holds this one test only.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines_with(&self, needle: &str) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned();
        text.lines().filter(|l| l.contains(needle)).map(str::to_owned).collect()
    }
}

/// Connection attempts over the limit in the storm.
const ATTEMPTS: usize = 300;

#[tokio::test]
async fn a_connection_storm_against_a_full_server_logs_a_few_lines_not_one_per_connection() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt().with_ansi(false).with_max_level(tracing::Level::WARN).with_writer(move || writer.clone()).init();

    let srv = common::start("[client]\nconnection_limit = 1\n").await;
    let (_holder, _) = srv.client("holder").await;
    let started = Instant::now();
    for _ in 0..ATTEMPTS {
        let refused = tokio::time::timeout(common::WAIT, tokio_tungstenite::connect_async(srv.ws_url())).await;
        assert!(matches!(refused, Ok(Err(_))), "over the limit, the upgrade is refused");
    }
    let storm = started.elapsed();
    // One more refusal in a later window carries the count of what was held back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _ = tokio_tungstenite::connect_async(srv.ws_url()).await;

    let lines = captured.lines_with("client.connection_limit reached");
    let windows = storm.as_secs() as usize + 2;
    assert!(!lines.is_empty(), "the refusals are logged");
    assert!(
        lines.len() <= tidewire::log::LINES_PER_WINDOW as usize * windows,
        "{} lines for {ATTEMPTS} refusals in {storm:?}",
        lines.len()
    );
    let suppressed: u64 = lines
        .iter()
        .filter_map(|l| l.split("suppressed=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(suppressed as usize + lines.len(), ATTEMPTS + 1, "every refusal is either logged or counted: {lines:#?}");
    srv.shutdown().await;
}
