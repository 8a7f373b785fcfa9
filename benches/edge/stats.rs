//! Percentiles, the Zipf draw of which modules a worker loads, and plain-text tables.

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// p50, p99 and max of `samples`, and how many there are.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub count: usize,
}

pub fn summarize(samples: &[Duration]) -> Summary {
    let mut sorted = samples.to_vec();
    sorted.sort();
    // Nearest rank: the smallest sample with at least q of the samples at or below it.
    let rank = |q: f64| -> Duration {
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let at = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[at]
    };
    Summary {
        p50: rank(0.5),
        p99: rank(0.99),
        max: sorted.last().copied().unwrap_or_default(),
        count: sorted.len(),
    }
}

/// The median of `values`.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[sorted.len() / 2]
}

/// Draws from a Zipf distribution (exponent `s`) over `n` modules whose popularity order is a
/// seeded shuffle, so that popular modules are not all small ones.
pub struct Zipf {
    cumulative: Vec<f64>,
    by_rank: Vec<usize>,
}

impl Zipf {
    pub fn new(n: usize, s: f64, popularity_seed: u64) -> Zipf {
        let mut total = 0.0;
        let cumulative = (1..=n)
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(s);
                total
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|c| c / total)
            .collect();
        let mut by_rank: Vec<usize> = (0..n).collect();
        by_rank.shuffle(&mut rand::rngs::StdRng::seed_from_u64(popularity_seed));
        Zipf {
            cumulative,
            by_rank,
        }
    }

    /// `k` draws with `seed`, reduced to the distinct modules in the order first drawn: the
    /// first loads of a process that serves those `k` requests.
    pub fn first_loads(&self, k: usize, seed: u64) -> Vec<usize> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut seen = Vec::new();
        for _ in 0..k {
            let u: f64 = rng.random();
            let rank = self.cumulative.partition_point(|&c| c < u);
            let module = self.by_rank[rank.min(self.by_rank.len() - 1)];
            if !seen.contains(&module) {
                seen.push(module);
            }
        }
        seen
    }
}

/// `850 ns`, `12.3 µs`, `1.35 ms`, `2.10 s`.
pub fn time(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    let (value, unit) = if ns < 1e3 {
        return format!("{ns:.0} ns");
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    if value < 10.0 {
        format!("{value:.2} {unit}")
    } else if value < 100.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

/// `1.5 MiB`.
pub fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// A Markdown table (which also reads well as plain text).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                let pad = widths[c] - cell.chars().count();
                if c == 0 {
                    format!("{cell}{}", " ".repeat(pad))
                } else {
                    format!("{}{cell}", " ".repeat(pad))
                }
            })
            .collect();
        format!("| {} |", padded.join(" | "))
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    out.push('\n');
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(c, w)| {
            if c == 0 {
                "-".repeat(*w)
            } else {
                format!("{}:", "-".repeat(w - 1))
            }
        })
        .collect();
    out.push_str(&format!("| {} |\n", rule.join(" | ")));
    for row in rows {
        out.push_str(&line(row.clone()));
        out.push('\n');
    }
    out
}
