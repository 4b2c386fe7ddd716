//! The filter over any host: what a host gives Tollgate (`Host` per worker, `Stream` per
//! request) and what Tollgate does with it (`Worker` per worker, `Flow` per request). A host
//! adapter (host/wasm: proxy-wasm; host/native: Envoy's dynamic modules) only maps its
//! callbacks onto these verbs and carries out what they return; every decision is here, and
//! tested natively against the in-memory host of `testing`.

mod failure_mode;
mod flow;
mod flusher;
mod held;
mod poller;
mod store_call;
#[cfg(test)]
mod testing;
mod worker;

pub use flow::{Flow, Step};
pub use held::Release;
pub use store_call::{StoreAnswer, StoreCall};
pub use worker::Worker;

use crate::engine::algorithm::Nanos;
use crate::engine::shared_store::SharedStore;

/// What one worker of a host provides. Called from the worker's own thread only.
pub trait Host {
    /// Wall-clock time, nanoseconds since the UNIX epoch.
    fn now(&self) -> Nanos;
    /// The counters every worker of this proxy shares.
    fn shared(&self) -> &dyn SharedStore;
    /// Send an HTTP call to tollgate-store; the id its answer will come back with, or None
    /// when the host refused to send it.
    fn dispatch(&self, call: &StoreCall) -> Option<u32>;
}

/// One HTTP request as the host holds it. Setters return whether the host accepted the
/// change (e.g. request headers cannot change any more once they went upstream).
pub trait Stream {
    /// The request headers, names in lower case, values decoded without loss
    /// (`request::header_text`).
    fn request_headers(&self) -> Vec<(String, String)>;
    /// The connection's peer address (`ip:port` or `[ip]:port`).
    fn peer_address(&self) -> Option<String>;
    fn set_request_header(&mut self, name: &str, value: Option<&str>) -> bool;
    /// The buffered request body (`size` bytes, as the body callback reported).
    fn request_body(&self, size: usize) -> Option<Vec<u8>>;
    fn set_request_body(&mut self, size: usize, body: &[u8]) -> bool;
    /// Answer the request locally.
    fn send_reply(&mut self, status: u32, headers: &[(&str, &str)], body: &[u8]) -> bool;
    fn response_header(&self, name: &str) -> Option<String>;
    fn add_response_header(&mut self, name: &str, value: &str) -> bool;
    fn set_response_header(&mut self, name: &str, value: Option<&str>) -> bool;
    /// The response body chunk the body callback reported (`size` bytes).
    fn response_body(&self, size: usize) -> Vec<u8>;
    fn set_response_body(&mut self, size: usize, body: &[u8]) -> bool;
}
