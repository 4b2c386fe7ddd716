//! Replays fuzz inputs through the same checks as the fuzz targets, natively, without libFuzzer;
//! or, with `--mutate`, fuzzes them for a bounded time with a simple mutational fuzzer.
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --no-default-features --example replay            # every corpus
//! cargo run --manifest-path fuzz/Cargo.toml --no-default-features --example replay -- sse FILE  # given files
//! cargo run --manifest-path fuzz/Cargo.toml --no-default-features --example replay -- --mutate 3 [--seed N] [TARGET...]
//! ```
//!
//! With no arguments: every file of `fuzz/corpus/<target>/` for every target; a target whose
//! corpus is missing or empty is a failure. With `TARGET FILE...`: those files through that
//! target (or through one of the stricter `REGRESSIONS` checks). Prints one line per target (`replay: NAME: N inputs, B bytes, F failed, T ms`) and
//! one `FAILED` line per failing input, and exits 1 if any input failed.
//!
//! With `--mutate SECONDS`: for each target (all of them, or the ones named), SECONDS of
//! mutations of its corpus (bit flips, byte inserts/erases, interesting bytes and integers,
//! long runs, dictionary tokens, splices of two corpus inputs, ...; no coverage feedback), each
//! input run through the target's check under `catch_unwind`. Deterministic for a given
//! `--seed` (the sequence of inputs, not how many fit in the time). Prints one line per target
//! (`mutate: NAME: R runs in S s, F failures (...)`); the first failing input of a target is
//! saved to `target/fuzz-mutate/NAME/crash-HASH` (an input running longer than `--timeout`
//! to `timeout-HASH`) with its panic message, and the exit code is 1. Options:
//!
//! - `--seed N`: the PRNG seed (decimal or `0x` hex; default 0)
//! - `--runs N`: stop a target after N runs even if time is left (with the seed, this replays
//!   exactly the first N inputs of a run: how a failure at run #N is reproduced without its file)
//! - `--max-len N`: longest input tried (default 4096, as `scripts/fuzz.sh`)
//! - `--timeout SECONDS`: one input running longer is a failure (default 10)
//! - `--out DIR`: where failing inputs go (default `target/fuzz-mutate` of the repository)
//!
//! TARGET may also be a `REGRESSIONS` check (fuzzed from the corpus of the target its name starts
//! with) or `selftest` / `selftest_hang`: checks with a planted bug, to see the failure path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tollgate_fuzz::Check;

fn files_of(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

fn run(name: &str, check: fn(&[u8]), files: &[PathBuf]) -> (usize, usize) {
    let start = Instant::now();
    let mut failed = 0;
    let mut bytes = 0;
    for file in files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        bytes += data.len();
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            failed += 1;
            println!("FAILED {name} {}", file.display());
        }
    }
    println!(
        "replay: {name}: {} inputs, {bytes} bytes, {failed} failed, {} ms",
        files.len(),
        start.elapsed().as_millis()
    );
    (files.len(), failed)
}

/// Checks with a planted bug, to see that `--mutate` reports failures
/// (tests/tests/e2e/hardening/fuzz_short.rs): on an input holding a NUL byte followed by 0xff,
/// `selftest` panics and `selftest_hang` never returns.
const SELFTESTS: &[(&str, Check)] = &[("selftest", selftest), ("selftest_hang", selftest_hang)];

fn planted_bug(data: &[u8]) -> bool {
    data.windows(2).any(|w| w == [0, 0xff])
}

fn selftest(data: &[u8]) {
    assert!(!planted_bug(data), "selftest: the planted bug (a NUL byte followed by 0xff)");
}

fn selftest_hang(data: &[u8]) {
    while planted_bug(data) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A target, a `REGRESSIONS` check or a self-test, by name.
fn lookup(name: &str) -> (&'static str, Check) {
    tollgate_fuzz::TARGETS
        .iter()
        .chain(tollgate_fuzz::REGRESSIONS)
        .chain(SELFTESTS)
        .find(|(n, _)| *n == name)
        .copied()
        .unwrap_or_else(|| {
            let names: Vec<&str> = tollgate_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
            eprintln!("unknown target {name:?}; targets: {}", names.join(" "));
            std::process::exit(2)
        })
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--mutate") {
        std::process::exit(mutate_main(&args));
    }
    let mut any_failed = false;
    if let Some((target, files)) = args.split_first() {
        let (_, check) = lookup(target);
        let files: Vec<PathBuf> = files
            .iter()
            .flat_map(|f| {
                let p = PathBuf::from(f);
                if p.is_dir() {
                    files_of(&p)
                } else {
                    vec![p]
                }
            })
            .collect();
        let (_, failed) = run(target, check, &files);
        any_failed = failed > 0;
    } else {
        let corpus = corpus_dir();
        for (name, check) in tollgate_fuzz::TARGETS {
            let files = files_of(&corpus.join(name));
            if files.is_empty() {
                println!("FAILED {name}: no corpus in {}", corpus.join(name).display());
                any_failed = true;
                continue;
            }
            let (_, failed) = run(name, *check, &files);
            any_failed |= failed > 0;
        }
    }
    std::process::exit(i32::from(any_failed));
}

// ---------------------------------------------------------------------------------------------
// Mutation mode.

const USAGE: &str =
    "usage: replay --mutate SECONDS [--seed N] [--runs N] [--max-len N] [--timeout SECONDS] [--out DIR] [TARGET...]";

struct Options {
    seconds: f64,
    seed: u64,
    runs: u64,
    max_len: usize,
    timeout: Duration,
    out: PathBuf,
    targets: Vec<(&'static str, Check)>,
}

fn usage_error(msg: &str) -> ! {
    eprintln!("{msg}\n{USAGE}");
    std::process::exit(2)
}

fn parse_u64(flag: &str, text: &str) -> u64 {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    };
    parsed.unwrap_or_else(|| usage_error(&format!("{flag}: not a number: {text:?}")))
}

fn parse_secs(flag: &str, text: &str) -> f64 {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or_else(|| usage_error(&format!("{flag}: not a positive number of seconds: {text:?}")))
}

fn parse_options(args: &[String]) -> Options {
    let mut opts = Options {
        seconds: 0.0,
        seed: 0,
        runs: u64::MAX,
        max_len: 4096,
        timeout: Duration::from_secs(10),
        out: repo_root().join("target/fuzz-mutate"),
        targets: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_else(|| usage_error(&format!("{arg} needs a value")));
        match arg.as_str() {
            "--mutate" => opts.seconds = parse_secs(arg, &value()),
            "--seed" => opts.seed = parse_u64(arg, &value()),
            "--runs" => opts.runs = parse_u64(arg, &value()),
            "--max-len" => opts.max_len = usize::try_from(parse_u64(arg, &value())).unwrap_or(usize::MAX).max(1),
            "--timeout" => opts.timeout = Duration::from_secs_f64(parse_secs(arg, &value())),
            "--out" => opts.out = PathBuf::from(value()),
            flag if flag.starts_with("--") => usage_error(&format!("unknown option {flag}")),
            name => opts.targets.push(lookup(name)),
        }
    }
    if opts.targets.is_empty() {
        opts.targets = tollgate_fuzz::TARGETS.to_vec();
    }
    opts
}

/// FNV-1a, 64 bits: names failing inputs and mixes the target name into the seed.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// SplitMix64: small, fast, and good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when n is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A length biased toward small ones: 1..=2^k for a random k < 12, at most `max`.
    fn len(&mut self, max: usize) -> usize {
        let cap = 1usize << self.below(12);
        1 + self.below(cap.min(max.max(1)))
    }
}

/// Bytes where parsers and arithmetic tend to break.
const INTERESTING_BYTES: &[u8] = b"\x00\x01\x7f\x80\xff\"{}[]:,\n\r\t \\/-+.eE0123456789=;&?%";

/// Integers where arithmetic tends to break, written 1, 2, 4 or 8 bytes wide (the checks read
/// little-endian numbers, `Input` in fuzz/src/lib.rs).
#[rustfmt::skip]
const INTERESTING_INTS: &[u64] = &[
    0, 1, 2, 3, 4, 7, 8, 9, 10, 16, 31, 32, 63, 64, 100, 127, 128, 255, 256, 1000, 1024, 4095,
    4096, 32767, 32768, 65535, 65536, 1_000_000, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff,
    0x1_0000_0000, 1_000_000_000, 60_000_000_000, 3_600_000_000_000, 86_400_000_000_000,
    1_714_568_400_000_000_000, 0x7fff_ffff_ffff_ffff, 0x8000_0000_0000_0000, u64::MAX - 1,
    u64::MAX,
];

/// Decimal texts where number parsing tends to break.
#[rustfmt::skip]
const INTERESTING_NUMBERS: &[&str] = &[
    "0", "1", "-1", "-0", "00", "0.5", "1.0", "1e3", "1e308", "1e309", "-1e309", "1E-7",
    "0.000001", "255", "256", "65536", "4294967295", "4294967296", "9007199254740993",
    "9223372036854775807", "9223372036854775808", "18446744073709551615", "18446744073709551616",
    "99999999999999999999999999999", "1.7976931348623157e308", "NaN", "Infinity",
];

/// Tokens of the inputs' languages: JSON, SSE, HTTP headers, durations, the config's words.
#[rustfmt::skip]
const DICTIONARY: &[&str] = &[
    "null", "true", "false", "{}", "[]", "\"\"", "\":\"", "\":", "\\u0000", "\\ud800", "\\\"",
    "data: ", "data:", "event: ", "id: ", "retry: ", "\n\n", "\r\n", "\r\n\r\n", "[DONE]", "usage",
    "prompt_tokens", "completion_tokens", "total_tokens", "input_tokens", "output_tokens",
    "usageMetadata", "promptTokenCount", "candidatesTokenCount", "totalTokenCount",
    "thoughtsTokenCount", "cache_read_input_tokens", "cache_creation_input_tokens", "message_delta",
    "max_tokens", "max_completion_tokens", "max_output_tokens", "maxOutputTokens", "stream", "stream_options", "include_usage", "model", "rules", "name",
    "key", "limit", "window", "burst", "algorithm", "unit", "strategy", "tiers", "tier",
    "unlimited", "missing_key", "max_wait", "slots", "capacity", "response", "status", "headers",
    "llm", "prices", "input_per_mtok", "output_per_mtok", "token_bucket", "leaky_bucket",
    "fixed_window", "sliding_window", "gcra", "concurrent", "tokens", "cost_usd", "requests",
    "throttle", "shadow", "degrade", "api_key", "ip", "path", "method", "global", "header:",
    "query:", "cookie:", "jwt:", "body:", "/user/id", "ns", "us", "ms", "s", "m", "h", "d", "1s",
    "0s", "1ms", "1h", "1d", "authorization:", "Bearer ", "x-api-key:", "x-forwarded-for:",
    "session=", "; ", "?api_key=", "&", "=", "%00", "%", "eyJ", "e30.", ".sig",
    "[::1]:80", "10.0.0.1", ":8080", "POST", "GET", "/v1/chat/completions",
];

struct Mutator<'a> {
    rng: Rng,
    seeds: &'a [Vec<u8>],
    max_len: usize,
}

impl Mutator<'_> {
    fn byte(&mut self) -> u8 {
        if self.rng.one_in(2) {
            *self.rng.pick(INTERESTING_BYTES)
        } else {
            self.rng.next() as u8
        }
    }

    /// A corpus input, for splicing.
    fn other(&mut self) -> Vec<u8> {
        self.rng.pick(self.seeds).clone()
    }

    /// Inserts `bytes` at `at`, keeping the input within `max_len`.
    fn insert(&mut self, data: &mut Vec<u8>, at: usize, bytes: &[u8]) {
        let room = self.max_len.saturating_sub(data.len());
        let bytes = &bytes[..bytes.len().min(room)];
        data.splice(at..at, bytes.iter().copied());
    }

    /// Overwrites from `at` with `bytes` (growing the input when they run past its end).
    fn overwrite(&mut self, data: &mut Vec<u8>, at: usize, bytes: &[u8]) {
        let end = (at + bytes.len()).min(self.max_len).max(at);
        if data.len() < end {
            data.resize(end, 0);
        }
        data[at..end].copy_from_slice(&bytes[..end - at]);
    }

    /// 1 to 4 stacked mutations (biased toward 1), then the size cap.
    fn mutate(&mut self, data: &mut Vec<u8>) {
        let n = 1 + self.rng.below(4).min(self.rng.below(4));
        for _ in 0..n {
            self.mutate_once(data);
        }
        data.truncate(self.max_len);
    }

    fn mutate_once(&mut self, data: &mut Vec<u8>) {
        let len = data.len();
        let pos = self.rng.below(len);
        let ins = self.rng.below(len + 1);
        match self.rng.below(15) {
            // Flip one bit.
            0 if len > 0 => data[pos] ^= 1 << self.rng.below(8),
            // Replace a byte (random or interesting).
            1 if len > 0 => data[pos] = self.byte(),
            // Add a small delta to a byte.
            2 if len > 0 => data[pos] = data[pos].wrapping_add(self.rng.below(70) as u8).wrapping_sub(35),
            // Insert a byte, or a few.
            3 => {
                let bytes: Vec<u8> = (0..1 + self.rng.below(4)).map(|_| self.byte()).collect();
                self.insert(data, ins, &bytes);
            }
            // Insert a run of one byte: short, long or very long.
            4 => {
                let b = if self.rng.one_in(3) { b"a[{9 \n"[self.rng.below(6)] } else { self.byte() };
                let n = match self.rng.below(3) {
                    0 => 2 + self.rng.below(14),
                    1 => 16 + self.rng.below(240),
                    _ => 256 + self.rng.below(self.max_len.max(257) - 256),
                };
                self.insert(data, ins, &vec![b; n]);
            }
            // Erase a range.
            5 | 6 if len > 0 => {
                let n = self.rng.len(len - pos);
                data.drain(pos..pos + n);
            }
            // Overwrite an integer 1, 2, 4 or 8 bytes wide, little- or big-endian.
            7 => {
                let width = 1usize << self.rng.below(4);
                let mut v = *self.rng.pick(INTERESTING_INTS);
                if self.rng.one_in(4) {
                    v = v.wrapping_add(self.rng.below(5) as u64).wrapping_sub(2);
                }
                let bytes = if self.rng.one_in(4) {
                    v.to_be_bytes()[8 - width..].to_vec()
                } else {
                    v.to_le_bytes()[..width].to_vec()
                };
                let at = self.rng.below(len.saturating_sub(width) + 1);
                self.overwrite(data, at, &bytes);
            }
            // Replace a decimal number of the text (or insert one).
            8 => {
                let number: String = match self.rng.below(4) {
                    0 => self.rng.next().to_string(),
                    1 => (self.rng.next() >> self.rng.below(64)).to_string(),
                    _ => (*self.rng.pick(INTERESTING_NUMBERS)).to_string(),
                };
                let digits: Vec<usize> = (0..len).filter(|i| data[*i].is_ascii_digit()).collect();
                if digits.is_empty() {
                    self.insert(data, ins, number.as_bytes());
                } else {
                    let start = *self.rng.pick(&digits);
                    let start = (0..=start).rev().take_while(|i| data[*i].is_ascii_digit()).last().unwrap_or(start);
                    let end = (start..len).find(|i| !data[*i].is_ascii_digit()).unwrap_or(len);
                    data.splice(start..end, number.bytes());
                }
            }
            // Insert or overwrite with a dictionary token.
            9 | 10 => {
                let token = self.rng.pick(DICTIONARY).as_bytes();
                if self.rng.one_in(3) && len > 0 {
                    self.overwrite(data, pos, token);
                } else {
                    self.insert(data, ins, token);
                }
            }
            // Splice: this input's head, another corpus input's tail.
            11 => {
                let other = self.other();
                let from = self.rng.below(other.len() + 1);
                data.truncate(ins);
                self.insert(data, ins, &other[from..]);
            }
            // Insert a piece of another corpus input.
            12 => {
                let other = self.other();
                let from = self.rng.below(other.len());
                let n = self.rng.len(other.len() - from);
                let piece = other.get(from..from + n).unwrap_or_default().to_vec();
                self.insert(data, ins, &piece);
            }
            // Copy a piece of this input elsewhere in it (insert or overwrite).
            13 if len > 0 => {
                let n = self.rng.len(len - pos);
                let piece = data[pos..pos + n].to_vec();
                if self.rng.one_in(2) {
                    self.insert(data, ins, &piece);
                } else {
                    let at = self.rng.below(len);
                    self.overwrite(data, at, &piece);
                }
            }
            // Shuffle a small window, or swap two bytes.
            14 if len > 1 => {
                let n = 2 + self.rng.below((len - pos).clamp(2, 8) - 1);
                let end = (pos + n).min(len);
                for i in (pos + 1..end).rev() {
                    let j = pos + self.rng.below(i - pos + 1);
                    data.swap(i, j);
                }
            }
            // A mutation that needs bytes, on an empty input: give it some.
            _ => {
                let b = self.byte();
                self.insert(data, ins, &[b]);
            }
        }
    }
}

/// The panic message of the last failing run (set by the panic hook while a check runs).
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);
static IN_CHECK: AtomicBool = AtomicBool::new(false);

/// What the watchdog needs to save an input that does not finish.
struct Current {
    target: &'static str,
    input: Vec<u8>,
    started: Option<Instant>,
}

static CURRENT: Mutex<Current> = Mutex::new(Current { target: "", input: Vec::new(), started: None });

fn current() -> std::sync::MutexGuard<'static, Current> {
    CURRENT.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Saves a failing input as `DIR/TARGET/KIND-HASH` and says how to replay it.
fn save_failure(out: &Path, target: &str, kind: &str, input: &[u8]) -> PathBuf {
    let dir = out.join(target);
    let path = dir.join(format!("{kind}-{:016x}", fnv1a(input)));
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, input)) {
        println!("mutate: {target}: could not save the input to {}: {e}", path.display());
    }
    println!("mutate: {target}: input ({} bytes) saved to {}", input.len(), path.display());
    println!(
        "mutate: {target}: replay it: cargo run --manifest-path fuzz/Cargo.toml --no-default-features --example replay -- {target} {}",
        path.display()
    );
    path
}

/// Every `timeout`, checks that the running input started less than `timeout` ago; if not,
/// saves it and ends the process (a hang cannot be unwound).
fn watchdog(timeout: Duration, out: PathBuf) {
    std::thread::spawn(move || loop {
        std::thread::sleep((timeout / 4).min(Duration::from_millis(250)));
        let cur = current();
        if let Some(started) = cur.started.filter(|s| s.elapsed() > timeout) {
            println!(
                "mutate: {}: FAILED: an input ran for {:.1} s (over the {:.1} s timeout)",
                cur.target,
                started.elapsed().as_secs_f64(),
                timeout.as_secs_f64()
            );
            save_failure(&out, cur.target, "timeout", &cur.input);
            std::process::exit(1);
        }
    });
}

/// The seeds of a target: its corpus (none: an empty list); a `REGRESSIONS` check without one
/// uses the corpus of the target its name starts with (`duration_with_zero`: `duration`), or
/// else the empty input.
fn seeds_of(name: &str) -> Vec<Vec<u8>> {
    let corpus = corpus_dir();
    let mut files = files_of(&corpus.join(name));
    if files.is_empty() && !tollgate_fuzz::TARGETS.iter().any(|(n, _)| *n == name) {
        if let Some((base, _)) = tollgate_fuzz::TARGETS
            .iter()
            .filter(|(n, _)| name.starts_with(&format!("{n}_")))
            .max_by_key(|(n, _)| n.len())
        {
            files = files_of(&corpus.join(base));
        }
        if files.is_empty() {
            return vec![Vec::new()];
        }
    }
    files.iter().map(|f| std::fs::read(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()))).collect()
}

/// Fuzzes one target; true if it failed.
fn fuzz_target(name: &'static str, check: Check, seeds: &[Vec<u8>], opts: &Options) -> bool {
    let mut m = Mutator { rng: Rng(opts.seed ^ fnv1a(name.as_bytes())), seeds, max_len: opts.max_len };
    let budget = Duration::from_secs_f64(opts.seconds);
    let start = Instant::now();
    let (mut runs, mut bytes, mut slowest) = (0u64, 0u64, Duration::ZERO);
    let mut data = Vec::new();
    // Inputs come in chains: a corpus input, mutated, then mutated again up to 8 times.
    let mut chain = 0;
    let mut failed = false;
    while runs < opts.runs && start.elapsed() < budget {
        if chain == 0 {
            data.clear();
            data.extend_from_slice(m.rng.pick(seeds).as_slice());
            data.truncate(opts.max_len);
            chain = 1 + m.rng.below(8);
        }
        chain -= 1;
        m.mutate(&mut data);
        {
            let mut cur = current();
            cur.target = name;
            cur.input.clear();
            cur.input.extend_from_slice(&data);
            cur.started = Some(Instant::now());
        }
        let t = Instant::now();
        IN_CHECK.store(true, Ordering::SeqCst);
        let result = std::panic::catch_unwind(|| check(&data));
        IN_CHECK.store(false, Ordering::SeqCst);
        slowest = slowest.max(t.elapsed());
        current().started = None;
        runs += 1;
        bytes += data.len() as u64;
        if result.is_err() {
            let msg = LAST_PANIC.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            println!(
                "mutate: {name}: FAILED at run #{runs} (seed {}): {}",
                opts.seed,
                msg.as_deref().unwrap_or("panic without a message")
            );
            save_failure(&opts.out, name, "crash", &data);
            failed = true;
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "mutate: {name}: {runs} runs in {secs:.1} s, {} failures ({:.0} runs/s, {} seeds, mean input {} bytes, slowest run {} ms)",
        u8::from(failed),
        runs as f64 / secs.max(1e-9),
        seeds.len(),
        bytes / runs.max(1),
        slowest.as_millis()
    );
    failed
}

fn mutate_main(args: &[String]) -> i32 {
    let opts = parse_options(args);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if IN_CHECK.load(Ordering::SeqCst) {
            *LAST_PANIC.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(info.to_string());
        } else {
            default_hook(info);
        }
    }));
    watchdog(opts.timeout, opts.out.clone());
    println!(
        "mutate: seed {}, {} s per target, inputs up to {} bytes, timeout {} s, failures to {}",
        opts.seed,
        opts.seconds,
        opts.max_len,
        opts.timeout.as_secs_f64(),
        opts.out.display()
    );
    let mut failures = 0;
    for (name, check) in &opts.targets {
        let seeds = seeds_of(name);
        if seeds.is_empty() {
            println!("mutate: {name}: FAILED: no corpus in {}", corpus_dir().join(name).display());
            failures += 1;
            continue;
        }
        failures += usize::from(fuzz_target(name, *check, &seeds, &opts));
    }
    i32::from(failures > 0)
}
