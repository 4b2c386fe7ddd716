//! Time as Tollgate counts it: nanoseconds since the UNIX epoch (the host's clock), durations
//! as written in the configuration, calendar periods in a time zone, RFC 3339 text. A leaf:
//! it depends on nothing else in the crate.

pub mod calendar;
pub mod duration;
pub mod rfc3339;

/// Nanoseconds since the UNIX epoch (the host's clock).
pub type Nanos = u64;

pub const NANOS_PER_SEC: u64 = 1_000_000_000;
