//! What the bench binaries share: counts from the environment, samples of durations with
//! nearest-rank percentiles, and how durations are printed.
#![allow(dead_code)] // each bench uses its own part

use std::time::Duration;

/// A whole number from the environment variable `name`, else `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a whole number")),
        Err(_) => default,
    }
}

/// Per-iteration times of one kind of measurement, sorted.
pub struct Sample {
    pub name: String,
    pub times: Vec<Duration>,
}

impl Sample {
    pub fn new(name: impl Into<String>, mut times: Vec<Duration>) -> Self {
        times.sort();
        Self {
            name: name.into(),
            times,
        }
    }

    /// Nearest-rank percentile.
    pub fn pct(&self, p: f64) -> Duration {
        if self.times.is_empty() {
            return Duration::ZERO;
        }
        let rank = (p / 100.0 * self.times.len() as f64).ceil() as usize;
        self.times[rank.clamp(1, self.times.len()) - 1]
    }

    pub fn p50(&self) -> Duration {
        self.pct(50.0)
    }

    pub fn p99(&self) -> Duration {
        self.pct(99.0)
    }

    pub fn max(&self) -> Duration {
        self.times.last().copied().unwrap_or_default()
    }

    /// Sequential iterations per second (iterations over their summed time).
    pub fn per_second(&self) -> f64 {
        let total: Duration = self.times.iter().sum();
        if total.is_zero() {
            0.0
        } else {
            self.times.len() as f64 / total.as_secs_f64()
        }
    }
}

/// µs below 1 ms, ms below 10 s, else s.
pub fn fmt_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.1} µs")
    } else if us < 10_000_000.0 {
        format!("{:.2} ms", us / 1_000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}
