//! The five limiting algorithms, each a pure function of
//! (state, now, cost, quota) -> (decision, new state).
//!
//! State is a fixed 24-byte value (`State`, three `u64`); the all-zero state is a fresh
//! counter (full bucket / empty window). All arithmetic is integer (u128 for products),
//! exact, and never panics: any 24 bytes decode to some valid state.

mod fixed_window;
mod gcra;
mod leaky_bucket;
mod sliding_window;
mod token_bucket;

#[cfg(test)]
mod tests;

pub use crate::time::{Nanos, NANOS_PER_SEC};

/// Which algorithm a rule uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    TokenBucket,
    LeakyBucket,
    FixedWindow,
    SlidingWindow,
    Gcra,
}

/// What a rule allows: `limit` units per `window_ns`, with `burst` capacity for the
/// bucket algorithms (token_bucket, leaky_bucket, gcra). Windowed algorithms ignore
/// `burst`. All three are > 0 (the config guarantees it; the algorithms still must not
/// panic or divide by zero if they are 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    pub limit: u64,
    pub window_ns: u64,
    pub burst: u64,
}

/// Compact per-counter state. All zero = fresh counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct State(pub [u64; 3]);

/// The answer of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Units still available right after this decision (after charging when allowed).
    pub remaining: u64,
    /// Time until the counter is back to its full capacity (bucket algorithms) or until the
    /// current window ends (windowed algorithms).
    pub reset_after_ns: u64,
    /// 0 when allowed. When denied: the time after which the same cost would be admitted if
    /// nothing else arrives meanwhile (a client that waits that long is admitted).
    /// `u64::MAX` when the cost can never be admitted (it exceeds the capacity).
    pub retry_after_ns: u64,
}

impl Algorithm {
    pub const ALL: [Algorithm; 5] = [
        Algorithm::TokenBucket,
        Algorithm::LeakyBucket,
        Algorithm::FixedWindow,
        Algorithm::SlidingWindow,
        Algorithm::Gcra,
    ];

    /// Name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::TokenBucket => "token_bucket",
            Algorithm::LeakyBucket => "leaky_bucket",
            Algorithm::FixedWindow => "fixed_window",
            Algorithm::SlidingWindow => "sliding_window",
            Algorithm::Gcra => "gcra",
        }
    }

    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Most units that can ever be admitted at once: `burst` for bucket algorithms,
    /// `limit` for windowed ones.
    pub fn capacity(self, q: &Quota) -> u64 {
        match self {
            Algorithm::TokenBucket | Algorithm::LeakyBucket | Algorithm::Gcra => q.burst,
            Algorithm::FixedWindow | Algorithm::SlidingWindow => q.limit,
        }
    }

    /// Decide whether `cost` units may pass at `now`. When allowed, the returned state has
    /// the cost charged; when denied, the returned state is equivalent to the input (no
    /// charge). `cost == 0` is a pure peek (always allowed, reports remaining/reset).
    /// `now` may be slightly earlier than a time already seen (clocks of different workers):
    /// treat elapsed time as saturating at zero, never panic.
    pub fn check(self, state: State, now: Nanos, cost: u64, q: &Quota) -> (Decision, State) {
        match self {
            Algorithm::TokenBucket => token_bucket::check(state, now, cost, q),
            Algorithm::LeakyBucket => leaky_bucket::check(state, now, cost, q),
            Algorithm::FixedWindow => fixed_window::check(state, now, cost, q),
            Algorithm::SlidingWindow => sliding_window::check(state, now, cost, q),
            Algorithm::Gcra => gcra::check(state, now, cost, q),
        }
    }

    /// Forced signed adjustment: `delta > 0` charges even beyond capacity (debt, used when
    /// settling real usage that exceeded the reservation); `delta < 0` refunds (never above
    /// fresh capacity; a refund in a later fixed window than the charge is a no-op only
    /// when the charge's window has passed).
    pub fn adjust(self, state: State, now: Nanos, delta: i64, q: &Quota) -> State {
        match self {
            Algorithm::TokenBucket => token_bucket::adjust(state, now, delta, q),
            Algorithm::LeakyBucket => leaky_bucket::adjust(state, now, delta, q),
            Algorithm::FixedWindow => fixed_window::adjust(state, now, delta, q),
            Algorithm::SlidingWindow => sliding_window::adjust(state, now, delta, q),
            Algorithm::Gcra => gcra::adjust(state, now, delta, q),
        }
    }

    /// How much of the capacity is in use at `now`, in permille (0..=1000, saturating).
    /// 0 means the state is equivalent to a fresh one: forgetting it loses nothing.
    pub fn pressure(self, state: State, now: Nanos, q: &Quota) -> u32 {
        match self {
            Algorithm::TokenBucket => token_bucket::pressure(state, now, q),
            Algorithm::LeakyBucket => leaky_bucket::pressure(state, now, q),
            Algorithm::FixedWindow => fixed_window::pressure(state, now, q),
            Algorithm::SlidingWindow => sliding_window::pressure(state, now, q),
            Algorithm::Gcra => gcra::pressure(state, now, q),
        }
    }
}

impl State {
    pub const BYTES: usize = 24;

    pub fn encode(&self, out: &mut [u8; 24]) {
        for (i, word) in self.0.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
        }
    }

    /// Any 24 bytes decode; shorter input decodes as fresh.
    pub fn decode(bytes: &[u8]) -> State {
        let mut words = [0u64; 3];
        if bytes.len() >= Self::BYTES {
            for (i, word) in words.iter_mut().enumerate() {
                let mut b = [0u8; 8];
                b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
                *word = u64::from_le_bytes(b);
            }
        }
        State(words)
    }
}
