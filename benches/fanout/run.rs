//! The run: one scenario against one server, phase by phase, and the ways of
//! choosing the server — spawn Tidewire (memory engine, or `--engine redis`:
//! the bench's own redis-server plus `--nodes` Tidewire processes on it),
//! drive a `--target`, `--compare-limit` (limit-server, then Tidewire, in one
//! invocation), `--compare-memory` (one memory-engine node, then the Redis
//! nodes, in one invocation), or `--compare-protocols` (JSON subscribers, then
//! Protobuf subscribers, each against its own freshly spawned deployment of
//! the same kind, in one invocation).
//!
//! Phases: make sure the server answers · read its RSS · open the
//! subscribers · settle `--settle` s and read the idle RSS · publish for
//! `--duration` s · drain until every expected delivery arrived or `--drain`
//! s passed · read the end RSS and CPU · merge the subscribers' tallies ·
//! derive the figures (report.rs). Spawned servers (and the bench's
//! redis-server) are stopped by PID when their run returns, on every path
//! (`Deployment::stop`, else the `Drop` of each process). With several nodes
//! the subscribers are split round-robin over them and the publishers all
//! publish through node 0; RSS and CPU are summed over the nodes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use crate::publishers::{PUBLISH_GRACE, PUBLISH_LEAD, fill_history, publish_all, publish_burst};
use crate::report::{
    Burst, Comparison, EngineComparison, ProtocolComparison, Summary, Timing, expected_deliveries, per_connection,
};
use crate::scenario::{Args, BURST_PIECE_BYTES, Scenario, target_addr};
use crate::server::{
    Deployment, Server, ServerProcess, TidewireOptions, limit_server_bin, raise_fd_limit, read_cpu_secs, read_rss,
    resolve_server_bin,
};
use crate::subscribers::{SubscriberContext, finish_tasks, native_context, run_native_subscriber, run_subscriber};

/// limit-server's `--lifetime` beyond the scenario's own time: room for
/// start-up, connecting (see `LIMIT_LIFETIME_PER_1000_SUBSCRIBERS`), the
/// summary, and a loaded machine. It is killed by PID long before, normally.
const LIMIT_LIFETIME_SLACK_SECS: u64 = 120;
/// Extra limit-server lifetime per 1,000 subscribers, for connecting them.
const LIMIT_LIFETIME_PER_1000_SUBSCRIBERS: u64 = 10;

/// What one invocation produced.
pub(crate) enum Outcome {
    /// One server's run.
    Single(Box<Summary>),
    /// `--compare-limit`: both runs and the ratios.
    Compare(Box<Comparison>),
    /// `--compare-memory`: the memory run, the Redis run, and the ratios.
    CompareEngines(Box<EngineComparison>),
    /// `--compare-protocols`: the JSON run, the Protobuf run, and the ratios.
    CompareProtocols(Box<ProtocolComparison>),
}

/// Shared counters read by the progress line and the drain check.
#[derive(Default)]
pub(crate) struct Progress {
    /// Publications acknowledged so far.
    pub(crate) published: AtomicU64,
    /// Unique deliveries so far.
    pub(crate) delivered: AtomicU64,
    /// Subscribers that completed connect + subscribe.
    pub(crate) connected: AtomicUsize,
    /// Subscribers currently open (connected and not yet closed).
    pub(crate) open: AtomicUsize,
    /// Current phase, one of `PHASES`.
    pub(crate) phase: AtomicU8,
}

/// Names of the phases shown in the progress line.
const PHASES: [&str; 6] = ["starting", "connecting", "settling", "publishing", "draining", "burst"];

/// Longest a `--burst-bytes` burst may take, sending and reading; a burst not done by
/// then is reported with what did arrive (and what was not sent).
const BURST_TIME: Duration = Duration::from_secs(180);

impl Progress {
    /// Switches the phase shown in the progress line.
    pub(crate) fn set_phase(&self, name: &str) {
        let idx = PHASES.iter().position(|p| *p == name).unwrap_or(0);
        self.phase.store(idx as u8, Ordering::Relaxed);
    }
}

/// Runs the invocation's scenario: against `--target`, as a comparison, or
/// against a spawned Tidewire (on the memory engine or on Redis).
pub(crate) async fn run(args: Args) -> anyhow::Result<Outcome> {
    raise_fd_limit(args.subscribers);
    if let Some(url) = &args.target {
        let server = Server::target(url, target_addr(url)?, args.target_pid).await?;
        if args.fill_channels > 0 {
            fill_history(&args, &server).await?;
            std::process::exit(0);
        }
        let summary = run_with_server(&args, &server, None).await?;
        return Ok(Outcome::Single(Box::new(summary)));
    }
    let options = TidewireOptions::from_args(&args);
    if args.compare_limit {
        let bin = limit_server_bin(args.limit_bin.as_deref())?;
        // Resolve Tidewire's binary before spending a run on the reference.
        let tidewire_bin = resolve_server_bin(args.server_bin.as_deref())?;
        let limit = ServerProcess::start_limit(&bin, limit_lifetime_secs(&args)).await?;
        eprintln!("limit-server (PID {}) on {}", limit.server().pid.unwrap_or(0), limit.server().addr);
        let reference = run_spawned(&args, Deployment::single(limit), None).await?;
        // `--compare-limit` runs plain channels (validated): no history, no datagrams.
        let tidewire = ServerProcess::start_tidewire(&tidewire_bin, &options).await?;
        eprintln!("tidewire (PID {}) on {}", tidewire.server().pid.unwrap_or(0), tidewire.server().addr);
        let summary = run_spawned(&args, Deployment::single(tidewire), Some(options.engine())).await?;
        return Ok(Outcome::Compare(Box::new(Comparison::new(reference, summary))));
    }
    let bin = resolve_server_bin(args.server_bin.as_deref())?;
    if args.compare_protocols {
        // Validated: spawned servers, WebSocket subscribers, no --compare-memory.
        let json = run_deployment(&args.with_protocol("json"), &bin, &options).await?;
        let protobuf = run_deployment(&args.with_protocol("protobuf"), &bin, &options).await?;
        return Ok(Outcome::CompareProtocols(Box::new(ProtocolComparison::new(json, protobuf))));
    }
    if args.redis_engine() {
        let reference = if args.compare_memory {
            let memory = ServerProcess::start_tidewire(&bin, &options).await?;
            eprintln!("tidewire (PID {}, memory engine) on {}", memory.server().pid.unwrap_or(0), memory.server().addr);
            Some(run_spawned(&args, Deployment::single(memory), Some(options.engine())).await?)
        } else {
            None
        };
        let deployment = Deployment::start_on_redis(&bin, &options, args.nodes, args.redis_bin.as_deref()).await?;
        let summary = run_spawned(&args, deployment, Some("redis")).await?;
        return Ok(match reference {
            Some(memory) => Outcome::CompareEngines(Box::new(EngineComparison::new(memory, summary))),
            None => Outcome::Single(Box::new(summary)),
        });
    }
    let server = ServerProcess::start_tidewire(&bin, &options).await?;
    if args.fill_channels > 0 {
        let result = fill_history(&args, server.server()).await;
        server.stop(result.is_ok());
        result?;
        std::process::exit(0);
    }
    let summary = run_spawned(&args, Deployment::single(server), Some(options.engine())).await?;
    Ok(Outcome::Single(Box::new(summary)))
}

/// `--compare-protocols`' runs: spawns the deployment `args` asks for (one
/// memory-engine node, or `--nodes` on the bench's own redis-server), runs the
/// scenario against it, and stops it by PID.
async fn run_deployment(args: &Args, bin: &std::path::Path, options: &TidewireOptions) -> anyhow::Result<Summary> {
    let protocol = &args.protocol;
    if args.redis_engine() {
        let deployment = Deployment::start_on_redis(bin, options, args.nodes, args.redis_bin.as_deref()).await?;
        eprintln!("{protocol} subscribers: {} tidewire node(s) on redis", args.nodes);
        return run_spawned(args, deployment, Some("redis")).await;
    }
    let server = ServerProcess::start_tidewire(bin, options).await?;
    eprintln!("{protocol} subscribers: tidewire (PID {}) on {}", server.server().pid.unwrap_or(0), server.server().addr);
    run_spawned(args, Deployment::single(server), Some(options.engine())).await
}

/// Runs the scenario against spawned server(s), `engine` naming Tidewire's
/// when the bench configured it, and stops them (by PID) on every path; a
/// failed run keeps the server logs and quotes their tails.
async fn run_spawned(args: &Args, deployment: Deployment, engine: Option<&str>) -> anyhow::Result<Summary> {
    match run_with_server(args, deployment.server(), engine).await {
        Ok(summary) => {
            deployment.stop(true);
            Ok(summary)
        }
        Err(err) => {
            let note = deployment.log_note();
            deployment.stop(false);
            Err(anyhow!("{err:#}\n{note}"))
        }
    }
}

/// limit-server's `--lifetime`: the scenario's own time (settle, publishing,
/// grace, drain, a burst) plus connecting and slack; bounded, so it exits on its own
/// even if the bench is killed before it could kill it.
fn limit_lifetime_secs(args: &Args) -> u64 {
    let burst = if args.burst_bytes > 0 { BURST_TIME.as_secs_f64() + args.settle } else { 0.0 };
    let scenario = args.settle + PUBLISH_LEAD.as_secs_f64() + args.duration + PUBLISH_GRACE.as_secs_f64() + args.drain + burst;
    let connecting = (args.subscribers as u64).div_ceil(1000) * LIMIT_LIFETIME_PER_1000_SUBSCRIBERS;
    scenario.ceil() as u64 + connecting + LIMIT_LIFETIME_SLACK_SECS
}

/// The part of the run that needs a live server; `engine` is the spawned
/// Tidewire's (`None` for limit-server and a `--target`).
async fn run_with_server(args: &Args, server: &Server, engine: Option<&str>) -> anyhow::Result<Summary> {
    let origin = Instant::now();
    let progress = Arc::new(Progress::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let reporter = tokio::spawn(report_progress(Arc::clone(&progress), origin, stop_rx.clone()));

    let scenario = Scenario::new(args, &server.name, engine, server.nodes.len());
    let mut summary = Summary { scenario, ..Summary::default() };
    let rss_before = server.rss()?;
    // Subscribers.
    progress.set_phase("connecting");
    let connect_start = Instant::now();
    let ctx = Arc::new(SubscriberContext {
        nodes: server.nodes.clone(),
        source_ips: args.source_ips,
        channels: args.channels,
        batch: args.batch as u64,
        publishers: args.publishers as u64,
        protobuf: args.protobuf(),
        ws_read_buffer: args.ws_read_buffer,
        connect_gate: Semaphore::new(args.connect_concurrency),
        origin,
        progress: Arc::clone(&progress),
    });
    let (ready_tx, mut ready_rx) = mpsc::channel::<Result<(), String>>(1024);
    let mut subscribers = Vec::with_capacity(args.subscribers);
    let mut stoppers = Vec::with_capacity(args.subscribers);
    let native = native_context(args, server).await?;
    for i in 0..args.subscribers {
        let (stopper, stopped) = oneshot::channel();
        match &native {
            None => {
                let task = run_subscriber(Arc::clone(&ctx), i, stop_rx.clone(), stopped, ready_tx.clone());
                subscribers.push(tokio::spawn(task));
            }
            Some(n) => {
                let task = run_native_subscriber(Arc::clone(&ctx), Arc::clone(n), i, stopped, ready_tx.clone());
                subscribers.push(tokio::spawn(task));
            }
        }
        stoppers.push(stopper);
    }
    drop(ready_tx);
    let mut ready = 0usize;
    let mut first_error: Option<String> = None;
    while ready < args.subscribers {
        match ready_rx.recv().await {
            Some(Ok(())) => ready += 1,
            Some(Err(e)) => {
                // Stop at the first failure: no point in opening the rest.
                first_error = Some(e);
                break;
            }
            None => break,
        }
    }
    drop(ready_rx);
    summary.connect_secs = connect_start.elapsed().as_secs_f64();
    if ready < args.subscribers {
        let _ = stop_tx.send(true);
        for task in &subscribers {
            task.abort();
        }
        let _ = reporter.await;
        bail!(
            "only {ready} of {} subscribers connected and subscribed; first error: {}",
            args.subscribers,
            first_error.unwrap_or_else(|| "subscriber tasks ended early".into())
        );
    }

    // Idle memory.
    progress.set_phase("settling");
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    summary.set_rss(rss_before, server.rss()?);
    summary.bench_rss_idle = read_rss(std::process::id())?;

    if !args.idle_only {
        progress.set_phase("publishing");
        let cpu_start = (server.cpu_secs(), read_cpu_secs("/proc/self/stat"), server.redis_cpu_secs());
        let sys_start = server.sys_cpu_secs();
        let node_cpu_start = server.node_cpu_secs();
        let publish = publish_all(args, server, origin, &progress).await;
        summary.published = publish.ok;
        summary.publish_errors = publish.failed;
        summary.unsent = publish.unsent;
        summary.first_publish_error = publish.first_error.clone();
        summary.publisher_lag_ms = publish.lag.percentiles_ms();
        summary.publish_rtt_ms = publish.rtt.percentiles_ms();
        let expected = expected_deliveries(&publish.ok_per_channel, args.subscribers, args.channels);

        // Drain: wait until everything expected arrived, or the drain time ran out.
        progress.set_phase("draining");
        let drain_end = Instant::now() + Duration::from_secs_f64(args.drain);
        while Instant::now() < drain_end && progress.delivered.load(Ordering::Relaxed) < expected {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        summary.server_cpu_secs = match (server.cpu_secs(), cpu_start.0) {
            (Some(end), Some(start)) => Some(end - start),
            _ => None,
        };
        summary.server_sys_cpu_secs = match (server.sys_cpu_secs(), sys_start) {
            (Some(end), Some(start)) => Some(end - start),
            _ => None,
        };
        if server.nodes.len() > 1 {
            summary.node_cpu_secs = server.node_cpu_secs().iter().zip(&node_cpu_start).map(|(end, start)| end - start).collect();
        }
        summary.bench_cpu_secs = read_cpu_secs("/proc/self/stat") - cpu_start.1;
        summary.redis_cpu_secs = match (server.redis_cpu_secs(), cpu_start.2) {
            (Some(end), Some(start)) => Some(end - start),
            _ => None,
        };

        summary.rss_end = server.rss()?;
        let _ = stop_tx.send(true);
        let merged = finish_tasks(subscribers, stoppers).await;
        summary.delivered = merged.delivered;
        summary.frames = merged.frames;
        summary.out_of_order = merged.out_of_order;
        summary.slow_disconnects = merged.slow_disconnects;
        summary.other_disconnects = merged.other_disconnects;
        summary.first_disconnect = merged.first_disconnect;
        summary.other_messages = merged.other_messages;
        summary.unparsed = merged.unparsed;
        summary.pings = merged.pings;
        summary.pongs = merged.pongs;
        summary.latency_ms = merged.latency.percentiles_ms();
        let timing = Timing {
            first_send_us: publish.first_send_us,
            last_ack_us: publish.last_ack_us,
            last_rx_us: merged.last_rx_us,
        };
        summary.derive(&publish.ok_per_channel, timing);
    } else {
        summary.rss_end = summary.rss_idle;
        if args.burst_bytes > 0 {
            let burst = run_burst(args, server, origin, &progress, rss_before).await?;
            summary.rss_end = burst.rss;
            summary.burst = Some(burst);
        }
        let _ = stop_tx.send(true);
        let merged = finish_tasks(subscribers, stoppers).await;
        summary.other_disconnects = merged.other_disconnects + merged.slow_disconnects;
        summary.first_disconnect = merged.first_disconnect;
        summary.pings = merged.pings;
        summary.pongs = merged.pongs;
    }
    let _ = stop_tx.send(true);
    let _ = reporter.await;
    Ok(summary)
}

/// The `--burst-bytes` phase of an idle run: every channel gets the burst's publications,
/// the subscribers read them (or `BURST_DRAIN` passes), the server settles `--settle` s
/// and its RSS is read again, against `rss_before` (before any subscriber).
async fn run_burst(
    args: &Args,
    server: &Server,
    origin: Instant,
    progress: &Arc<Progress>,
    rss_before: Option<u64>,
) -> anyhow::Result<Burst> {
    progress.set_phase("burst");
    let started = Instant::now();
    let end = started + BURST_TIME;
    let delivered_before = progress.delivered.load(Ordering::Relaxed);
    let publish = publish_burst(args, server, origin, progress, end).await;
    let expected = expected_deliveries(&publish.ok_per_channel, args.subscribers, args.channels);
    let arrived = || progress.delivered.load(Ordering::Relaxed) - delivered_before;
    while Instant::now() < end && arrived() < expected {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (delivered, secs) = (arrived(), started.elapsed().as_secs_f64());
    progress.set_phase("settling");
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let rss = server.rss()?;
    Ok(Burst {
        per_channel: args.burst_per_channel(),
        piece_bytes: BURST_PIECE_BYTES,
        published: publish.ok,
        failed: publish.failed + publish.unsent,
        first_error: publish.first_error,
        expected,
        delivered,
        secs,
        rss,
        bytes_per_connection: per_connection(rss_before, rss, args.subscribers),
    })
}

/// Prints a progress line to stderr every second, overwriting it with `\r`.
async fn report_progress(progress: Arc<Progress>, origin: Instant, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_delivered = 0u64;
    let mut last_at = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let delivered = progress.delivered.load(Ordering::Relaxed);
        let now = Instant::now();
        let rate = (delivered - last_delivered.min(delivered)) as f64 / now.duration_since(last_at).as_secs_f64().max(1e-3);
        (last_delivered, last_at) = (delivered, now);
        let phase = PHASES[usize::from(progress.phase.load(Ordering::Relaxed)).min(PHASES.len() - 1)];
        eprint!(
            "\r[{:6.1}s] {:<10} published {:>9}  delivered {:>11}  {:>10.0}/s  connections {:>6} open / {:>6} subscribed   ",
            origin.elapsed().as_secs_f64(),
            phase,
            progress.published.load(Ordering::Relaxed),
            delivered,
            rate,
            progress.open.load(Ordering::Relaxed),
            progress.connected.load(Ordering::Relaxed),
        );
    }
    eprintln!();
}

