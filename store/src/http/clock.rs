//! The request's time: the store's clock, or, when it runs with `--test-clock`, the time a
//! client sets in `X-Tollgate-Now-Ns` (nanoseconds since the epoch; tests move time by hand).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tollgate_core::engine::algorithm::Nanos;

use crate::app::App;
use crate::error::ApiError;

/// Header that sets the time of a request when the store runs with `--test-clock`.
pub const TEST_CLOCK_HEADER: &str = "x-tollgate-now-ns";

/// Milliseconds since the epoch by this replica's clock (never the test clock).
pub fn now_ms() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

/// The request's time, in nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now(pub Nanos);

impl Now {
    /// In milliseconds since the epoch.
    pub fn ms(self) -> u64 {
        self.0 / 1_000_000
    }
}

impl FromRequestParts<Arc<App>> for Now {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Now, ApiError> {
        if app.test_clock {
            if let Some(v) = parts.headers.get(TEST_CLOCK_HEADER) {
                return v
                    .to_str()
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .map(Now)
                    .ok_or_else(|| ApiError::invalid("X-Tollgate-Now-Ns", "must be nanoseconds since the epoch"));
            }
        }
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Ok(Now(u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)))
    }
}
