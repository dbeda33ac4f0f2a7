//! The publishers: P HTTP/1.1 keep-alive connections calling `POST
//! /api/publish` (or `/api/batch` with `--batch B`) on one open-loop schedule,
//! and the history fill of `--fill-channels`.
//!
//! Publication m (0 ≤ m < round(rate × duration)) goes to channel `m % C` and
//! carries `{"seq":m,"t":<µs since the bench's origin, read just before the
//! request is written>,"pad":"x…"}`; request r holds B consecutive seqs and
//! is sent by publisher `r % P` at `start + r·B / rate`, or at once when that
//! moment has passed (the lag is recorded — publishers never slow down).
//! Requests still unsent `PUBLISH_GRACE` after the scheduled end are counted
//! as `unsent`. Each publication is acknowledged or failed from the reply:
//! `{"result":…}` for `/api/publish`, each item of `replies` for `/api/batch`.
//! Each request's round trip (from `t`, just before it is written, to the
//! whole response read) is recorded when the server answered it at all (any
//! HTTP status): the publish API latency of the report. With several nodes
//! (`--nodes`), every request goes to node 0.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::histogram::Histogram;
use crate::http::HttpConn;
use crate::run::Progress;
use crate::scenario::{API_KEY, Args, BURST_PIECE_BYTES, BURST_WINDOW};
use crate::server::{Server, read_rss};

/// Budget for one HTTP API request; a slower one counts as failed.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Publishing stops this long after the scheduled end even if the publishers
/// are behind; what is left is reported as `unsent`.
pub(crate) const PUBLISH_GRACE: Duration = Duration::from_secs(5);
/// Publishing starts this long after the publishers are spawned, so that
/// every publisher shares one schedule origin in the future.
pub(crate) const PUBLISH_LEAD: Duration = Duration::from_millis(100);

/// Publisher results, merged over all publisher connections.
pub(crate) struct PublishOutcome {
    /// Publications acknowledged.
    pub(crate) ok: u64,
    /// Publications failed (HTTP or API error, timeout).
    pub(crate) failed: u64,
    /// Publications never sent (publishers still behind at the hard deadline).
    pub(crate) unsent: u64,
    /// Acknowledged publications per channel.
    pub(crate) ok_per_channel: Vec<u64>,
    /// Send time − scheduled time per request (µs).
    pub(crate) lag: Histogram,
    /// Request about to be written → response read, per answered request (µs).
    pub(crate) rtt: Histogram,
    /// When the first request was sent, µs since the origin.
    pub(crate) first_send_us: Option<u64>,
    /// When the last acknowledging response arrived, µs since the origin.
    pub(crate) last_ack_us: Option<u64>,
    /// The first failure, for the summary.
    pub(crate) first_error: Option<String>,
}
impl PublishOutcome {
    fn new(channels: usize) -> Self {
        PublishOutcome {
            ok: 0,
            failed: 0,
            unsent: 0,
            ok_per_channel: vec![0; channels],
            lag: Histogram::new(),
            rtt: Histogram::new(),
            first_send_us: None,
            last_ack_us: None,
            first_error: None,
        }
    }
}

/// Runs P publishers on one open-loop schedule and merges their outcomes.
///
/// Publication m (0 ≤ m < round(rate × duration)) goes to channel `m % C` and
/// carries `seq = m`; publications are grouped into requests of B consecutive
/// seqs, request r is sent by publisher `r % P` at `start + r·B / rate`, or at
/// once if that moment has passed (the lag is recorded).
pub(crate) async fn publish_all(args: &Args, server: &Server, origin: Instant, progress: &Arc<Progress>) -> PublishOutcome {
    let start = Instant::now() + PUBLISH_LEAD;
    let plan = Arc::new(PublishPlan {
        addr: server.addr,
        origin,
        start,
        hard_deadline: start + Duration::from_secs_f64(args.duration) + PUBLISH_GRACE,
        rate: args.rate,
        total: args.total_publications(),
        batch: args.batch as u64,
        publishers: args.publishers as u64,
        channels: args.channels,
        payload: args.payload,
        progress: Arc::clone(progress),
    });
    let tasks: Vec<_> = (0..args.publishers as u64)
        .map(|j| tokio::spawn(run_publisher(Arc::clone(&plan), j)))
        .collect();
    let mut outcome = PublishOutcome::new(args.channels);
    for task in tasks {
        let Ok(p) = task.await else {
            continue;
        };
        outcome.ok += p.ok;
        outcome.failed += p.failed;
        outcome.unsent += p.unsent;
        for (sum, n) in outcome.ok_per_channel.iter_mut().zip(&p.ok_per_channel) {
            *sum += n;
        }
        outcome.lag.merge(&p.lag);
        outcome.rtt.merge(&p.rtt);
        outcome.first_send_us = match (outcome.first_send_us, p.first_send_us) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        outcome.last_ack_us = outcome.last_ack_us.max(p.last_ack_us);
        if outcome.first_error.is_none() {
            outcome.first_error = p.first_error;
        }
    }
    outcome
}

/// The schedule every publisher follows.
struct PublishPlan {
    addr: std::net::SocketAddr,
    origin: Instant,
    start: Instant,
    hard_deadline: Instant,
    rate: f64,
    total: u64,
    batch: u64,
    publishers: u64,
    channels: usize,
    payload: usize,
    progress: Arc<Progress>,
}

/// Publisher `j`: sends requests j, j+P, j+2P, … of the plan on one keep-alive connection.
async fn run_publisher(plan: Arc<PublishPlan>, j: u64) -> PublishOutcome {
    let mut out = PublishOutcome::new(plan.channels);
    let mut conn = HttpConn::new(plan.addr);
    let pad = "x".repeat(plan.payload);
    let mut body = String::with_capacity(256 * plan.batch as usize);
    let path = if plan.batch > 1 { "/api/batch" } else { "/api/publish" };
    let mut request = j;
    while request * plan.batch < plan.total {
        let first = request * plan.batch;
        let last = (first + plan.batch).min(plan.total); // exclusive
        let due = plan.start + Duration::from_secs_f64(first as f64 / plan.rate);
        if Instant::now() >= plan.hard_deadline {
            // Count everything this publisher still owed.
            let mut r = request;
            while r * plan.batch < plan.total {
                out.unsent += ((r + 1) * plan.batch).min(plan.total) - r * plan.batch;
                r += plan.publishers;
            }
            break;
        }
        let now = Instant::now();
        if now < due {
            tokio::time::sleep_until(due.into()).await;
        }
        out.lag.record(Instant::now().saturating_duration_since(due).as_micros() as u64);

        let t = plan.origin.elapsed().as_micros() as u64;
        body.clear();
        if plan.batch > 1 {
            body.push_str("{\"commands\":[");
            for m in first..last {
                if m > first {
                    body.push(',');
                }
                body.push_str("{\"publish\":");
                write_publish(&mut body, m, t, plan.channels, &pad);
                body.push('}');
            }
            body.push_str("]}");
        } else {
            write_publish(&mut body, first, t, plan.channels, &pad);
        }
        out.first_send_us.get_or_insert(t);
        let reply = tokio::time::timeout(HTTP_TIMEOUT, conn.request("POST", path, body.as_bytes())).await;
        if matches!(reply, Ok(Ok(_))) {
            out.rtt.record((plan.origin.elapsed().as_micros() as u64).saturating_sub(t));
        }
        let n = (last - first) as usize;
        let verdicts = match reply {
            Ok(Ok((200, reply_body))) => {
                let verdicts = item_verdicts(&reply_body, plan.batch > 1, n);
                if verdicts.contains(&false) && out.first_error.is_none() {
                    out.first_error = Some(format!("{path}: {}", String::from_utf8_lossy(&reply_body)));
                }
                verdicts
            }
            Ok(Ok((status, reply_body))) => {
                out.first_error.get_or_insert_with(|| {
                    format!("{path}: HTTP {status} {}", String::from_utf8_lossy(&reply_body))
                });
                vec![false; n]
            }
            Ok(Err(e)) => {
                out.first_error.get_or_insert_with(|| format!("{path}: {e:#}"));
                vec![false; n]
            }
            Err(_) => {
                conn.reset();
                out.first_error.get_or_insert_with(|| format!("{path}: no response within {HTTP_TIMEOUT:?}"));
                vec![false; n]
            }
        };
        let acked_us = plan.origin.elapsed().as_micros() as u64;
        let mut ok_here = 0;
        for (m, ok) in (first..last).zip(verdicts) {
            if ok {
                ok_here += 1;
                out.ok_per_channel[(m % plan.channels as u64) as usize] += 1;
            } else {
                out.failed += 1;
            }
        }
        if ok_here > 0 {
            out.ok += ok_here;
            out.last_ack_us = Some(acked_us);
            plan.progress.published.fetch_add(ok_here, Ordering::Relaxed);
        }
        request += plan.publishers;
    }
    out
}

/// The `--burst-bytes` burst: `args.burst_publications()` publications of
/// `BURST_PIECE_BYTES`, round-robin over the channels, in seq order on one keep-alive
/// connection, with at most `BURST_WINDOW` of them not yet read by every subscriber. The
/// bound keeps the bytes in flight (every socket's share of the pieces not yet read) under
/// the kernel's TCP memory: all of 1 MB to 19,900 loopback clients at once puts TCP under
/// memory pressure, and the run then measures that. Publications not sent by `deadline`
/// are counted as unsent.
pub(crate) async fn publish_burst(args: &Args, server: &Server, origin: Instant, progress: &Arc<Progress>, deadline: Instant) -> PublishOutcome {
    let mut out = PublishOutcome::new(args.channels);
    let mut conn = HttpConn::new(server.addr);
    let pad = "x".repeat(BURST_PIECE_BYTES);
    let total = args.burst_publications();
    let delivered_before = progress.delivered.load(Ordering::Relaxed);
    // Deliveries owed by the acknowledged publications before each one (cumulative).
    let mut owed = Vec::with_capacity(total as usize + 1);
    owed.push(0u64);
    let mut body = String::with_capacity(BURST_PIECE_BYTES + 128);
    for m in 0..total {
        let waited_for = owed[(m + 1).saturating_sub(BURST_WINDOW) as usize];
        while progress.delivered.load(Ordering::Relaxed) - delivered_before < waited_for && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if Instant::now() >= deadline {
            out.unsent = total - m;
            break;
        }
        let t = origin.elapsed().as_micros() as u64;
        body.clear();
        write_publish(&mut body, m, t, args.channels, &pad);
        out.first_send_us.get_or_insert(t);
        let channel = (m % args.channels as u64) as usize;
        let reply = tokio::time::timeout(HTTP_TIMEOUT, conn.request("POST", "/api/publish", body.as_bytes())).await;
        let ok = match reply {
            Ok(Ok((200, reply_body))) if item_verdicts(&reply_body, false, 1) == [true] => true,
            Ok(Ok((status, reply_body))) => {
                out.first_error.get_or_insert_with(|| format!("/api/publish: HTTP {status} {}", String::from_utf8_lossy(&reply_body)));
                false
            }
            Ok(Err(e)) => {
                out.first_error.get_or_insert_with(|| format!("/api/publish: {e:#}"));
                false
            }
            Err(_) => {
                conn.reset();
                out.first_error.get_or_insert_with(|| format!("/api/publish: no response within {HTTP_TIMEOUT:?}"));
                false
            }
        };
        let last = *owed.last().unwrap_or(&0);
        if ok {
            out.ok += 1;
            out.ok_per_channel[channel] += 1;
            out.last_ack_us = Some(origin.elapsed().as_micros() as u64);
            progress.published.fetch_add(1, Ordering::Relaxed);
            owed.push(last + args.subscribers_of(channel));
        } else {
            out.failed += 1;
            owed.push(last);
        }
    }
    out
}

/// Appends `{"channel":"bench-k","data":{"seq":m,"t":t,"pad":"xx…"}}`, with
/// the pad sized so that `data` is `pad.len()` bytes (or just over, when the
/// numbers alone are longer).
fn write_publish(body: &mut String, m: u64, t: u64, channels: usize, pad: &str) {
    let channel = m % channels as u64;
    let _ = write!(body, "{{\"channel\":\"bench-{channel}\",\"data\":");
    let data_start = body.len();
    let _ = write!(body, "{{\"seq\":{m},\"t\":{t},\"pad\":\"");
    let fixed = body.len() - data_start + 2; // the closing `"}`
    body.push_str(&pad[..pad.len().saturating_sub(fixed)]);
    body.push_str("\"}}");
}

/// Which publications of one successful HTTP reply were accepted: the single
/// `{"result":…}` of `/api/publish`, or each item of `/api/batch`'s `replies`.
fn item_verdicts(body: &[u8], batch: bool, n: usize) -> Vec<bool> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return vec![false; n];
    };
    if !batch {
        return vec![value.get("result").is_some() && value.get("error").is_none(); n];
    }
    let replies = value.get("replies").and_then(serde_json::Value::as_array);
    (0..n)
        .map(|i| {
            replies
                .and_then(|r| r.get(i))
                .is_some_and(|reply| reply.get("error").is_none() && reply.get("publish").is_some())
        })
        .collect()
}

/// History memory mode: `--fill-channels` channels × `--history-size` publications of
/// `--payload` bytes, one `/api/batch` request per channel over one keep-alive
/// connection; prints the server's RSS before and after and the bytes per entry.
pub(crate) async fn fill_history(args: &Args, server: &Server) -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    anyhow::ensure!(args.history_size > 0, "--fill-channels needs --history-size");
    let addr = server.addr;
    let pid = server.pid.context("--fill-channels needs the server's PID for its RSS")?;
    let (channels, per_channel, payload) = (args.fill_channels, args.history_size, args.payload);
    let before = read_rss(pid)?;
    let started = Instant::now();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let stream = std::net::TcpStream::connect(addr).context("connecting to the API")?;
        let mut reader = BufReader::new(stream.try_clone().context("cloning the socket")?);
        let mut writer = stream;
        writer.set_nodelay(true).context("TCP_NODELAY")?;
        let pad = "x".repeat(payload.saturating_sub(20).max(1));
        for ch in 0..channels {
            let commands: Vec<serde_json::Value> = (0..per_channel)
                .map(|i| serde_json::json!({"publish": {"channel": format!("fill-{ch}"), "data": {"i": i, "p": pad}}}))
                .collect();
            let body = serde_json::json!({"commands": commands}).to_string();
            // One write per request: several small writes would meet Nagle and delayed ACKs.
            let request = format!(
                "POST /api/batch HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {API_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            writer.write_all(request.as_bytes())?;
            let mut status = String::new();
            reader.read_line(&mut status)?;
            anyhow::ensure!(status.starts_with("HTTP/1.1 200"), "batch failed: {status}");
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line)?;
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut sink = vec![0u8; length];
            reader.read_exact(&mut sink)?;
            if ch % 1000 == 999 {
                eprint!("\rfilled {} / {channels} channels", ch + 1);
            }
        }
        eprintln!();
        Ok(())
    })
    .await
    .context("fill task")??;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = read_rss(pid)?;
    let entries = (channels * per_channel) as u64;
    println!("=== history memory ===");
    println!("filled            {channels} channels × {per_channel} publications × {payload} B in {:.1} s", started.elapsed().as_secs_f64());
    println!("server RSS        before {:.1} MiB, after {:.1} MiB", before as f64 / 1048576.0, after as f64 / 1048576.0);
    println!("bytes/entry       {}", after.saturating_sub(before) / entries.max(1));
    Ok(())
}
