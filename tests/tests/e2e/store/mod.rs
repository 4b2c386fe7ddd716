//! tollgate-store's proxy API against a real Redis and Redis Cluster (`api`), and over TLS and
//! Sentinel (`redis_modes`).

mod api;
mod redis_modes;
