//! Medians over the rounds, and one case's row of the results with its round-by-round ratios
//! to another case.

use crate::store_traffic::GlobalCounts;
use crate::wrk::Run;

pub fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Medians of one case over the rounds.
pub struct Row {
    pub name: &'static str,
    pub rps: f64,
    pub p50: f64,
    pub p99: f64,
    pub rss: f64,
    /// Envoy CPU µs per request.
    pub cpu: f64,
    /// Spread of requests/s over the rounds, (max - min) / median.
    pub spread: f64,
    pub non2xx: u64,
    pub socket_errors: u64,
    /// Per round, for ratios paired round by round.
    pub cpu_runs: Vec<f64>,
    pub rps_runs: Vec<f64>,
    pub p99_runs: Vec<f64>,
    pub p50_runs: Vec<f64>,
    /// Requests served over the rounds, and the store traffic they caused (global cases).
    pub requests: u64,
    pub global: GlobalCounts,
}

impl Row {
    pub fn of(name: &'static str, runs: &[Run]) -> Row {
        let rps: Vec<f64> = runs.iter().map(Run::rps).collect();
        let med = median(rps.clone());
        let max = rps.iter().copied().fold(f64::MIN, f64::max);
        let min = rps.iter().copied().fold(f64::MAX, f64::min);
        Row {
            name,
            rps: med,
            p50: median(runs.iter().map(|r| r.p50_us as f64).collect()),
            p99: median(runs.iter().map(|r| r.p99_us as f64).collect()),
            rss: median(runs.iter().map(|r| r.rss as f64).collect()),
            cpu: median(runs.iter().map(Run::cpu_us_per_request).collect()),
            spread: if med > 0.0 { (max - min) / med } else { 0.0 },
            non2xx: runs.iter().map(|r| r.non2xx).sum(),
            socket_errors: runs.iter().map(|r| r.socket_errors).sum(),
            cpu_runs: runs.iter().map(Run::cpu_us_per_request).collect(),
            rps_runs: rps,
            p99_runs: runs.iter().map(|r| r.p99_us as f64).collect(),
            p50_runs: runs.iter().map(|r| r.p50_us as f64).collect(),
            requests: runs.iter().map(|r| r.requests).sum(),
            global: runs.iter().fold(GlobalCounts::default(), |mut sum, r| {
                sum.add(&r.global);
                sum
            }),
        }
    }

    /// This case's p99 minus `base`'s, round by round, then the median (µs).
    pub fn p99_over(&self, base: &Row) -> f64 {
        median(self.p99_runs.iter().zip(&base.p99_runs).map(|(c, b)| c - b).collect())
    }

    /// The same for p50.
    pub fn p50_over(&self, base: &Row) -> f64 {
        median(self.p50_runs.iter().zip(&base.p50_runs).map(|(c, b)| c - b).collect())
    }

    /// This case over `base`, round by round (runs seconds apart, so drift on the machine
    /// mostly cancels), then the median: (by Envoy CPU per request, by requests/s).
    pub fn ratios(&self, base: &Row) -> (f64, f64) {
        let cpu = self.cpu_runs.iter().zip(&base.cpu_runs).map(|(c, b)| b / c.max(1e-9)).collect();
        let rps = self.rps_runs.iter().zip(&base.rps_runs).map(|(c, b)| c / b.max(1e-9)).collect();
        (median(cpu), median(rps))
    }
}
