//! Calls to tollgate-store as the host must send them: cluster, headers (the proxy token, the
//! authority), body and time-out all decided here, so a host only hands them to its HTTP
//! callout.

use crate::config::StoreConfig;
use crate::time::duration::Duration;

/// One HTTP call to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreCall {
    /// The Envoy cluster of the store (`store.cluster`).
    pub cluster: String,
    /// Pseudo-headers first (`:method`, `:path`, `:authority`), then the others.
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout: Duration,
}

impl StoreCall {
    /// A call with the proxy token and `store.timeout`.
    pub fn new(store: &StoreConfig, method: &'static str, path: &str, body: Option<Vec<u8>>) -> StoreCall {
        let mut headers = vec![(":method", method.to_string()), (":path", path.to_string())];
        headers.push((":authority", store.authority.clone()));
        if body.is_some() {
            headers.push(("content-type", "application/json".to_string()));
        }
        if let Some(token) = &store.token {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        StoreCall { cluster: store.cluster.clone(), headers, body, timeout: store.timeout }
    }

    pub fn post(store: &StoreConfig, path: &str, body: Vec<u8>) -> StoreCall {
        StoreCall::new(store, "POST", path, Some(body))
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> StoreCall {
        self.headers.push((name, value));
        self
    }
}

/// The store's answer as the host received it. `status` is None when there was no answer
/// (time-out, connection refused, reset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreAnswer<'a> {
    pub status: Option<u32>,
    pub body: &'a [u8],
}
