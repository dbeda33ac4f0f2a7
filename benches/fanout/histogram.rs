//! A log-linear histogram of microsecond values (delivery latency, publisher
//! lag) and the percentiles the report prints from it.
//!
//! Memory is bounded (≈ 8 KB per histogram, whatever the count), recording is
//! an index computation and an add, and two histograms merge bucket by
//! bucket, so every subscriber keeps its own and the run merges them at the
//! end. Values below 64 µs are exact; above, a bucket spans at most 1/32 of
//! its value, and the reported midpoint is within ≈1.6 % of every value in
//! it. The maximum is kept exactly. No I/O, no clock: tests feed it values.

use serde::Serialize;

/// p50 / p99 / p99.9 / max of one histogram, in milliseconds.
#[derive(Serialize, Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Percentiles {
    /// Values recorded.
    pub(crate) count: u64,
    /// Median.
    pub(crate) p50: f64,
    /// 99th percentile.
    pub(crate) p99: f64,
    /// 99.9th percentile.
    pub(crate) p999: f64,
    /// Exact maximum.
    pub(crate) max: f64,
}


/// Sub-buckets per power of two: 2^5 = 32, so a bucket spans ≤ 1/32 of its
/// value and the midpoint we report is within ≈1.6% of any value in it.
const SUB_BITS: u32 = 5;
/// Values (µs) at or above 2^MAX_BITS (≈ 38 hours) land in the last bucket.
const MAX_BITS: u32 = 37;
/// Bucket count: 64 exact buckets for 0..64, then 32 per further octave.
const BUCKETS: usize = ((MAX_BITS - SUB_BITS) as usize + 1) << SUB_BITS;

/// A log-linear histogram of microsecond values with bounded memory
/// (≈ 8 KB) and an exact maximum.
#[derive(Default)]
pub(crate) struct Histogram {
    /// Count per bucket; empty until the first value (a `Default` histogram allocates nothing).
    counts: Vec<u64>,
    /// Values recorded.
    total: u64,
    /// The largest value recorded (exact).
    max: u64,
}

impl Histogram {
    /// An empty histogram with its buckets allocated.
    pub(crate) fn new() -> Self {
        Histogram { counts: vec![0; BUCKETS], total: 0, max: 0 }
    }

    /// Bucket index of `v`: v itself below 64, else (octave, top 5 bits below the leading one).
    fn index(v: u64) -> usize {
        let v = v.min((1u64 << MAX_BITS) - 1);
        if v < (2 << SUB_BITS) {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros();
        let shift = msb - SUB_BITS;
        ((shift as usize) << SUB_BITS) + (v >> shift) as usize
    }

    /// Midpoint of bucket `i`'s value range.
    fn value_at(i: usize) -> f64 {
        if i < (2 << SUB_BITS) {
            return i as f64;
        }
        let shift = (i >> SUB_BITS) - 1;
        let mantissa = (i & ((1 << SUB_BITS) - 1)) + (1 << SUB_BITS);
        let low = (mantissa as u64) << shift;
        low as f64 + ((1u64 << shift) as f64 - 1.0) / 2.0
    }

    /// Adds one value (µs).
    pub(crate) fn record(&mut self, v: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    /// Adds every value of `other`.
    pub(crate) fn merge(&mut self, other: &Histogram) {
        if other.total == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// Value (µs) at quantile `q`: the first bucket whose cumulative count reaches ⌈q·total⌉.
    pub(crate) fn quantile(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value_at(i).min(self.max as f64);
            }
        }
        self.max as f64
    }

    /// The report's percentiles, converted from µs to ms.
    pub(crate) fn percentiles_ms(&self) -> Percentiles {
        Percentiles {
            count: self.total,
            p50: self.quantile(0.50) / 1000.0,
            p99: self.quantile(0.99) / 1000.0,
            p999: self.quantile(0.999) / 1000.0,
            max: self.max as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random values (a 64-bit LCG), so failures reproduce.
    fn values(n: usize, seed: u64, spread: u64) -> Vec<u64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                // Log-uniform-ish: a random octave, then a random value in it.
                let octave = (x >> 58) % 64_u64.min(spread);
                let base = 1u64 << octave.min(36);
                base + (x >> 20) % base
            })
            .collect()
    }

    /// Nearest-rank quantile of sorted values: the ⌈q·n⌉-th smallest.
    fn exact(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    #[test]
    fn quantiles_match_exact_nearest_rank_within_half_a_bucket() {
        for (seed, spread) in [(1, 20), (7, 10), (42, 37), (99, 5)] {
            let mut vs = values(20_000, seed, spread);
            let mut h = Histogram::new();
            for &v in &vs {
                h.record(v);
            }
            vs.sort_unstable();
            for q in [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0] {
                let want = exact(&vs, q) as f64;
                let got = h.quantile(q);
                // A bucket above 64 spans ≤ 1/32 of its low end, so its midpoint is
                // within 1/64 (≈1.6 %) of every value in it.
                assert!((got - want).abs() <= want / 64.0 + 0.5, "seed {seed} q {q}: got {got}, exact {want}");
            }
            assert_eq!(h.percentiles_ms().max, *vs.last().unwrap() as f64 / 1000.0, "max is exact");
        }
    }

    #[test]
    fn values_below_64_are_exact() {
        let mut h = Histogram::new();
        for v in 0..64 {
            h.record(v);
        }
        for v in 0..64u64 {
            // rank v+1 of 64 values 0..63 is v
            assert_eq!(h.quantile((v + 1) as f64 / 64.0), v as f64);
        }
    }

    #[test]
    fn percentiles_in_ms_and_exact_max() {
        let mut h = Histogram::new();
        for _ in 0..98 {
            h.record(1_000); // 1 ms
        }
        h.record(50_000);
        h.record(123_457); // the max, not a bucket midpoint
        let p = h.percentiles_ms();
        assert_eq!(p.count, 100);
        assert!((p.p50 - 1.0).abs() <= 1.0 / 64.0, "{p:?}");
        assert!((p.p99 - 50.0).abs() <= 50.0 / 64.0, "{p:?}");
        assert_eq!(p.max, 123.457);
        assert_eq!(p.p999, 123.457, "rank 100 of 100 is the max, clamped exactly");
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let (a_vals, b_vals) = (values(5_000, 3, 30), values(7_000, 5, 12));
        let (mut a, mut b, mut all) = (Histogram::new(), Histogram::new(), Histogram::new());
        a_vals.iter().for_each(|&v| a.record(v));
        b_vals.iter().for_each(|&v| b.record(v));
        a_vals.iter().chain(&b_vals).for_each(|&v| all.record(v));
        let mut merged = Histogram::default(); // unallocated, as a Merged starts
        merged.merge(&a);
        merged.merge(&b);
        merged.merge(&Histogram::default());
        assert_eq!(merged.percentiles_ms(), all.percentiles_ms());
    }

    #[test]
    fn empty_and_huge_values() {
        assert_eq!(Histogram::default().percentiles_ms(), Percentiles::default());
        assert_eq!(Histogram::new().quantile(0.5), 0.0);
        let mut h = Histogram::default();
        h.record(u64::MAX); // clamps into the last bucket (≈ 38 h); max stays exact
        h.record(1);
        assert_eq!(h.quantile(0.5), 1.0);
        let top = h.quantile(1.0);
        assert!(top > 0.98 * (1u64 << MAX_BITS) as f64 && top < (1u64 << MAX_BITS) as f64, "{top}");
        assert_eq!(h.percentiles_ms().max, u64::MAX as f64 / 1000.0);
    }
}
