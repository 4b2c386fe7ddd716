//! tollgate-store: shared rate-limit counters in Redis for Tollgate proxies.
//!
//! Reading order, top down (no module uses one above it):
//!
//! - `server`: the router, every route in one place (and `run` below: listen, serve, stop);
//! - the handlers: `api` (the proxy API: check, lease, adjust, sync; its JSON is
//!   `tollgate_core::global::wire`, the filter's own types), `admin` (the admin API), `console` (the
//!   web console at `/ui`: a session cookie for the admin token, embedded HTML/CSS/JS, and
//!   `/ui/api/v1/...` calls that reach the admin API in process);
//! - `http`: what the handlers share: extractors (tokens, clock, key, who, JSON bodies) and the
//!   request metric middleware;
//! - `app`: the shared state;
//! - the work: `counters` (check / lease / adjust, computed by the filter's own
//!   `tollgate_core::engine::algorithm` and committed with a compare-and-set script), `admin_store`
//!   (Redis: limits, overrides, version, audit log), `sync` (the document proxies poll),
//!   `stats` (totals and top violators, buffered and flushed every second), `key_limits` and
//!   `overrides` (the admin plane's validated inputs);
//! - `input` (validated inputs: names, keys, who, query strings, JSON bodies in the store's
//!   words) and `error` (the error answer);
//! - `backend` (Redis: single node, cluster, sentinel; timeouts), `metrics`, `config` (CLI);
//!   times in RFC 3339 come from the core (`tollgate_core::time::rfc3339`).
//!
//! The service is stateless: any number of replicas may share one Redis.

pub mod admin;
pub mod admin_store;
pub mod api;
pub mod app;
pub mod backend;
pub mod config;
pub mod console;
pub mod counters;
pub mod error;
pub mod http;
pub mod input;
pub mod key_limits;
pub mod metrics;
pub mod overrides;
pub mod server;
pub mod stats;
pub mod sync;

#[cfg(test)]
mod parity_tests;

use std::future::IntoFuture;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use config::Config;

/// How long in-flight requests may take to finish after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Run the store until SIGTERM or SIGINT. Errors are one line (for the caller to print).
pub async fn run(config: Config) -> Result<(), String> {
    // TLS (rediss://) uses rustls with the ring provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = Arc::new(metrics::Metrics::default());
    let backend = backend::Backend::new(&config.redis, &config.redis_tls, config.redis_timeout, metrics.clone())?;
    let mut app =
        app::App::new(backend, metrics, config.proxy_token.clone(), config.admin_token.clone(), config.test_clock);
    app.ui = config.ui;
    let app = Arc::new(app);
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    eprintln!("tollgate-store: counters in {}", config.redis.describe());
    if config.ui {
        eprintln!(
            "tollgate-store: web console at http://{addr}/ui/ (log in with the admin token; --no-ui turns it off)"
        );
    }
    if config.test_clock {
        eprintln!("tollgate-store: WARNING: --test-clock is on: clients may set the time with X-Tollgate-Now-Ns");
    }
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "tollgate-store listening on {addr}");
        let _ = out.flush();
    }
    let probe = app.clone();
    tokio::spawn(async move {
        match probe.backend.ping().await {
            Ok(()) => eprintln!("tollgate-store: Redis is reachable"),
            Err(e) => eprintln!("tollgate-store: warning: {e} (requests get 503 until it is)"),
        }
    });
    let flusher = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(stats::FLUSH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let _ = flusher.stats.flush(&flusher.backend, http::now_ms()).await;
        }
    });
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let service = server::router(app.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    });
    let mut server = tokio::spawn(server.into_future());
    tokio::select! {
        r = &mut server => {
            return match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("server failed: {e}")),
                Err(e) => Err(format!("server failed: {e}")),
            };
        }
        () = shutdown_signal() => {}
    }
    eprintln!("tollgate-store: shutting down");
    let _ = stop_tx.send(true);
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(_) => eprintln!("tollgate-store: stopped"),
        Err(_) => eprintln!("tollgate-store: stopped (requests still in flight after {SHUTDOWN_GRACE:?} were cut)"),
    }
    // The statistics of the last second.
    let _ = app.stats.flush(&app.backend, http::now_ms()).await;
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
