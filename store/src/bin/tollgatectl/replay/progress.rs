//! A progress bar on standard error, only when it is a terminal (never in a pipe, a file or
//! a test): how much of the logs was read (compressed bytes for gzip), lines, elapsed time.

use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::input::Input;

const EVERY: Duration = Duration::from_millis(200);
const WIDTH: usize = 30;

pub struct Progress {
    on: bool,
    started: Instant,
    last: Instant,
}

impl Progress {
    pub fn new() -> Progress {
        let now = Instant::now();
        Progress { on: std::io::stderr().is_terminal(), started: now, last: now }
    }

    /// Redraw, at most every 200 ms (call it as often as you like).
    pub fn tick(&mut self, input: &Input, requests: u64) {
        if !self.on || self.last.elapsed() < EVERY {
            return;
        }
        self.last = Instant::now();
        let read = input.bytes_read.load(Ordering::Relaxed);
        let line = bar(read, input.bytes_total, input.stats.lines, requests, self.started.elapsed());
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
    }

    pub fn done(&self) {
        if self.on {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// `[#########.....................]  31%  1,234,567 lines  1,234,000 requests  3.2 s`
pub fn bar(read: u64, total: u64, lines: u64, requests: u64, elapsed: Duration) -> String {
    let share = if total == 0 { None } else { Some((read as f64 / total as f64).min(1.0)) };
    let filled = share.map(|s| (s * WIDTH as f64) as usize).unwrap_or(0);
    let percent = share.map(|s| format!("{:3.0}%", s * 100.0)).unwrap_or_else(|| "   ?".into());
    format!(
        "[{}{}] {percent}  {} lines  {} requests  {:.1} s",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        thousands(lines),
        thousands(requests),
        elapsed.as_secs_f64()
    )
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_bar() {
        let b = bar(50, 100, 1_234_567, 1_000, Duration::from_millis(3200));
        assert_eq!(b, format!("[{}{}]  50%  1,234,567 lines  1,000 requests  3.2 s", "#".repeat(15), ".".repeat(15)));
        assert!(bar(1, 0, 0, 0, Duration::ZERO).contains("   ?"));
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }
}
