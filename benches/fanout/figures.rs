//! Unit tests of the figures the fan-out bench computes: loss accounting,
//! duplicate and out-of-order counting, the log-linear histogram's
//! percentiles against exact values, the deliveries/s windows, the
//! sustainable verdict, the limit-server ratios, and option checks.
//!
//! Why a second target: `fanout` has `harness = false` (its `main` is the
//! benchmark), and such a target's `#[test]`s are never compiled or run. This
//! one has the standard harness and compiles the same pure modules from
//! `benches/fanout/` (the `mod` lines below resolve next to this file), so
//! their `#[cfg(test)]` blocks run under `cargo test --benches` and
//! `cargo test --all-targets`. Under `cargo bench` it runs nothing. The
//! modules with sockets, processes and timers stay in the `fanout` target only.

// The bench binary uses what the tests here do not (the table, the echo of
// options, tracker constructors in run paths); only the tests count here.
#![allow(dead_code)]

mod delivery;
mod histogram;
mod report;
mod scenario;
