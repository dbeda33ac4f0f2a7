//! Fan-out benchmark: publications in through the HTTP API, deliveries out
//! to many WebSocket subscribers (DESIGN.md "Performance targets").
//!
//! Black-box: it spawns the server binary as a child process
//! (`<bin> serve --config <tmp>/config.toml`, output in `<tmp>/server.log`) on
//! a free 127.0.0.1 port, and talks to it only over loopback sockets:
//! N WebSocket subscribers speaking the Centrifugo v2 client protocol — JSON,
//! or Protobuf with `--protocol protobuf` (`?format=protobuf`) — from
//! source addresses 127.0.0.2 … 127.0.0.(1+K), and P publishers calling
//! `POST /api/publish` (or `POST /api/batch` with `--batch B`) over HTTP/1.1
//! keep-alive. It never connects anywhere but 127.0.0.x, every loop is bounded
//! in count and time, and the server is killed (by PID) on every exit path,
//! SIGINT and SIGTERM included (SIGKILL of the bench cannot be caught).
//!
//! Phases: start the server and wait for `GET /health` → 200 (≤ 20 s) · read
//! its RSS · open the subscribers (≤ `--connect-concurrency` handshakes in
//! flight; each sends connect + subscribe in one frame and waits for both
//! replies) · settle `--settle` s and read the idle RSS · publish for
//! `--duration` s on an open-loop schedule · drain until every expected
//! delivery arrived or `--drain` s (≤ 5) passed · read the end RSS · report.
//!
//! How each figure is computed:
//! - **published / expected / delivered / lost**: publication m (0 ≤ m <
//!   round(rate × duration)) carries `seq = m` and goes to channel `m % C`.
//!   expected = Σ over channels of acknowledged publications × subscribers of
//!   that channel (subscriber i is on channel `i % C`); delivered counts unique
//!   arrivals (a seq at or below one already seen from the same publisher
//!   connection is counted as out-of-order/duplicate instead); lost =
//!   max(expected − delivered, 0) after the drain.
//! - **slow disconnects**: subscribers closed with code 3008; other closes and
//!   transport errors are counted apart.
//! - **deliveries/s** = delivered ÷ publish window, where the window runs from
//!   the first request sent to the last response received (≈ `--duration`
//!   when the publishers keep up). A second figure divides by the span from
//!   the first request to the last delivery, which is lower when the server
//!   lags behind.
//! - **latency** = receive time of the WebSocket frame − `t`, where `t` is read
//!   just before the request is written and carried in the payload; both come
//!   from one monotonic clock in this process (µs). Recorded per delivery in a
//!   log-linear histogram (≤ 1.6 % bucket error; exact max) and reported as
//!   p50 / p99 / p99.9 / max. It includes the bench's own receive path.
//! - **publish API latency** = response read − `t`, per request the server
//!   answered (any HTTP status), p50 / p99 / max: the HTTP publish round
//!   trip, through node 0 when there are several.
//! - **publisher lag** = actual send time − scheduled time, per request.
//!   Publishers never slow down: a late request goes out at once. Up to ~1 ms
//!   of it is tokio's timer granularity. Requests still unsent 5 s after the
//!   scheduled end are dropped and reported as `unsent`.
//! - **server RSS**: VmRSS from `/proc/<pid>/status` before subscribers, idle
//!   after all subscribed (+ settle), and at the end (before closing them);
//!   bytes/connection = (idle − before) ÷ N.
//! - **cpu seconds**: utime + stime from `/proc/<pid>/stat` of the server and of
//!   the bench, from publish start to drain end; server CPU µs per delivery
//!   = server CPU seconds × 10⁶ ÷ delivered. Server RSS and CPU are
//!   "unknown" (JSON `null`) for a `--target` without `--target-pid`, and
//!   summed over the nodes with `--nodes`; the bench's redis-server CPU is
//!   reported on a line of its own.
//! - **sustainable**: no loss, no disconnects, no failed or unsent
//!   publications, and latency p99 ≤ 100 ms (the criterion DESIGN.md uses for
//!   "max sustainable"); raise `--rate` until it turns false.
//!
//! Before running: `cargo build --release` (or let `cargo bench` build the
//! binary; `--server-bin` picks another), and allow enough open files — the
//! bench holds one socket per subscriber and the server, which inherits the
//! bench's limits, one more each. The bench raises its soft limit to the hard
//! one through `prlimit` when needed, and otherwise asks for `ulimit -n 20000`.
//!
//! The exact scenario command lines, and the ones for `--target` and
//! `--compare-limit`, are at the top of `scenario.rs`.
//!
//! With `--target URL` the bench spawns nothing and drives that server
//! (WebSocket subscribers only); its RSS and CPU come from `--target-pid` or
//! are reported as unknown. With `--compare-limit` it builds (or takes
//! `--limit-bin`) limit-server, runs the scenario against it on a free port
//! with a bounded `--lifetime`, kills it, runs the same scenario against a
//! spawned Tidewire, and prints both reports and Tidewire ÷ limit-server.
//! With `--engine redis` it starts its own redis-server (free 127.0.0.1 port,
//! `--save "" --appendonly no`, temp dir, killed by PID on every exit path)
//! and `--nodes N` Tidewire processes configured with `engine.type = "redis"`
//! on it; subscriber i connects to node `i % N`, publishers publish through
//! node 0. `--compare-memory` first runs the same scenario against one
//! memory-engine node, then the Redis run, and prints both reports and
//! Redis ÷ memory. `--compare-protocols` runs the scenario with JSON
//! subscribers against a spawned server, then with Protobuf subscribers
//! against a fresh one of the same kind (memory, or `--engine redis`), and
//! prints both reports and Protobuf ÷ JSON (deliveries/s, latency, server CPU
//! µs per delivery). A Protobuf subscriber sends connect + subscribe as
//! varint-delimited Commands in one binary frame, reads binary frames of
//! delimited Replies (a publication's `data` is the publishers' JSON payload,
//! read for `seq` and `t` as in JSON), and answers each ping (an empty Reply)
//! with an empty Command when the connect result says `pong`; its deliveries
//! go through the same loss / duplicate / latency accounting as JSON ones.
//!
//! Rooms: `scenario` (options, validation, the echo), `run` (phases, the
//! server modes, progress), `server` (spawned processes, redis-server,
//! targets, /proc), `subscribers` and `publishers` (the load), `http` (the API
//! client), `delivery` (parsing pushes, dedup, tallies), `histogram`,
//! `report` (derived figures, table, ratios). The pure ones — `scenario`,
//! `delivery`, `histogram`, `report` — are also compiled into the
//! `fanout_figures` bench target (`figures.rs`), which has the test harness,
//! so `cargo test --benches` runs their unit tests.
//!
//! Add `--json` for a one-line JSON summary; `--help` lists every option.
//! Run with no arguments at all — as `cargo test --all-targets` does — it
//! prints a note and exits 0 without starting anything (the unit tests of
//! its figures run in the `fanout_figures` target instead).

// Under `cargo test` / `clippy --all-targets` cargo builds this harness-less
// target with `--cfg test` but no `--test`: the pure modules' test blocks are
// compiled without their `#[test]` functions, which leaves their imports and
// helpers unused here. They run in the `fanout_figures` target (figures.rs).
#[cfg_attr(test, allow(unused_imports, dead_code))]
mod delivery;
#[cfg_attr(test, allow(unused_imports, dead_code))]
mod histogram;
mod http;
mod publishers;
#[cfg_attr(test, allow(unused_imports, dead_code))]
mod report;
mod run;
#[cfg_attr(test, allow(unused_imports, dead_code))]
mod scenario;
mod server;
mod subscribers;

use anyhow::Context as _;
use clap::Parser as _;

use crate::run::Outcome;
use crate::scenario::Args;

fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` (CI) runs bench targets with no arguments;
    // `cargo bench` always passes `--bench`. A benchmark is not a test, so skip.
    if std::env::args_os().len() <= 1 {
        println!("fanout: skipped (no arguments); run it with `cargo bench --bench fanout -- [options]`");
        return Ok(());
    }
    let args = Args::parse();
    args.validate()?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = args.threads {
        builder.worker_threads(threads.max(1));
    }
    let runtime = builder.build().context("building the tokio runtime")?;
    // On SIGINT / SIGTERM the run's future is dropped, and with it every spawned
    // process it holds (nodes, limit-server, redis-server): their `Drop` kills them
    // by PID, so an interrupted bench leaves nothing running.
    let outcome = runtime.block_on(async {
        let interrupted = interrupt_signal()?;
        tokio::select! {
            outcome = run::run(args.clone()) => outcome,
            signal = interrupted => anyhow::bail!("interrupted by {signal}; the spawned servers were killed"),
        }
    })?;
    match (outcome, args.json) {
        (Outcome::Single(summary), true) => println!("{}", serde_json::to_string(&summary)?),
        (Outcome::Single(summary), false) => print!("{}", summary.table()),
        (Outcome::Compare(comparison), true) => println!("{}", serde_json::to_string(&comparison)?),
        (Outcome::Compare(comparison), false) => print!("{}", comparison.table()),
        (Outcome::CompareEngines(comparison), true) => println!("{}", serde_json::to_string(&comparison)?),
        (Outcome::CompareEngines(comparison), false) => print!("{}", comparison.table()),
        (Outcome::CompareProtocols(comparison), true) => println!("{}", serde_json::to_string(&comparison)?),
        (Outcome::CompareProtocols(comparison), false) => print!("{}", comparison.table()),
    }
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM, registered when made; resolves to the signal's name.
fn interrupt_signal() -> anyhow::Result<impl std::future::Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}
