//! What every handler shares, written once, so a handler's body is its business alone:
//!
//! - `auth`: who calls: [`Admin`] (admin token), [`Proxy`] (proxy token, and its address);
//! - `clock`: the request's time, [`Now`] (the `X-Tollgate-Now-Ns` header with `--test-clock`);
//! - `params`: the path and query: [`Key`] (`{key}`, hashed, or a hash with `?hash=1`),
//!   [`OverrideId`], and `input::Query`;
//! - `body`: bodies: [`JsonBody`] (at most `MAX_BODY_BYTES`, refusals in the store's words) and
//!   `input::Who` (`admin` and `reason` from the query or the body);
//! - `metrics`: the request counter of every route, as one middleware ([`metrics::record`]).
//!
//! Every refusal is an `ApiError`, answered as the store's JSON error.

mod auth;
mod body;
mod clock;
pub mod metrics;
mod params;

pub use auth::{constant_time_eq, Admin, Proxy};
pub use body::{JsonBody, MAX_BODY_BYTES};
pub use clock::{now_ms, Now, TEST_CLOCK_HEADER};
pub use params::{Key, OverrideId};
