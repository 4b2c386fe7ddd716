//! The store's shared state, one per process: Redis (`backend`), the tokens, this replica's
//! metrics and statistics, the per-counter locks, and the admin plane's scripts. Handlers get it
//! as `State<Arc<App>>`.

use std::sync::Arc;
use std::time::Instant;

use crate::admin_store::AdminStore;
use crate::backend::Backend;
use crate::counters::{Counters, KeyLocks};
use crate::metrics::Metrics;
use crate::stats::Stats;

pub struct App {
    pub backend: Backend,
    pub metrics: Arc<Metrics>,
    pub proxy_token: String,
    pub admin_token: String,
    /// Whether clients may set a request's time (`--test-clock`, `X-Tollgate-Now-Ns`).
    pub test_clock: bool,
    pub locks: KeyLocks,
    /// This replica's statistics not yet flushed to Redis.
    pub stats: Stats,
    pub admin: AdminStore,
    /// Whether the web console is served at `/ui` (`--no-ui` turns it off).
    pub ui: bool,
    /// When this replica started.
    pub started: Instant,
}

impl App {
    pub fn new(
        backend: Backend,
        metrics: Arc<Metrics>,
        proxy_token: String,
        admin_token: String,
        test_clock: bool,
    ) -> App {
        App {
            backend,
            metrics,
            proxy_token,
            admin_token,
            test_clock,
            locks: KeyLocks::default(),
            stats: Stats::default(),
            admin: AdminStore::default(),
            ui: true,
            started: Instant::now(),
        }
    }

    pub fn counters(&self) -> Counters<'_> {
        Counters { backend: &self.backend, metrics: &self.metrics, locks: &self.locks }
    }
}
