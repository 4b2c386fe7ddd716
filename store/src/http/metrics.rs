//! The request counter (`tollgate_store_requests_total{endpoint, status}`) of every answer, in
//! one middleware: the endpoint is the route as written (`/v1/keys/{key}/status`), `/ui` for the
//! whole console, and `other` for a path no route has (404) or a method the route lacks (405).
//! Layered with `Router::layer`, it runs after routing, so the matched route is known.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics::Metrics;

pub async fn record(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let r = next.run(req).await;
    metrics.request(endpoint(route.as_ref().map(MatchedPath::as_str), r.status()), r.status().as_u16());
    r
}

fn endpoint(route: Option<&str>, status: StatusCode) -> &str {
    match route {
        Some(r) if r == "/ui" || r.starts_with("/ui/") => "/ui",
        Some(r) if status != StatusCode::METHOD_NOT_ALLOWED => r,
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_routes_the_console_or_other() {
        assert_eq!(endpoint(Some("/v1/keys/{key}/status"), StatusCode::OK), "/v1/keys/{key}/status");
        assert_eq!(endpoint(Some("/ui/api/v1/{*rest}"), StatusCode::FORBIDDEN), "/ui");
        assert_eq!(endpoint(Some("/ui"), StatusCode::PERMANENT_REDIRECT), "/ui");
        assert_eq!(endpoint(Some("/v1/check"), StatusCode::METHOD_NOT_ALLOWED), "other");
        assert_eq!(endpoint(None, StatusCode::NOT_FOUND), "other");
    }
}
