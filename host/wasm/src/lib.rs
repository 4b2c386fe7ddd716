//! Tollgate as a proxy-wasm HTTP filter (tollgate.wasm): proxy-wasm's callbacks mapped onto
//! tollgate-core's `Worker` (the root context: configuration, tick, the worker's store calls,
//! metrics) and `Flow` (an HTTP context per request). Nothing here decides; it carries out.
//!
//! Built for `wasm32` only (on other targets the crate is empty).
#![cfg(target_arch = "wasm32")]

mod ffi;
mod metrics;
mod stream;

use metrics::Metrics;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, Status};
use std::rc::Rc;
use stream::WasmStream;
use tollgate_core::engine::algorithm::Nanos;
use tollgate_core::engine::shared_store::{SharedStore, StoreError};
use tollgate_core::filter::{Flow, Host, Step, StoreAnswer, StoreCall, Worker};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    // A panic aborts the VM (every request of this worker then fails): say why in Envoy's log.
    std::panic::set_hook(Box::new(|info| log::error!("panic: {info}")));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { active: None }) });
}}

/// How often held requests are released, store work runs and metrics are flushed.
const TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// The host as proxy-wasm gives it: Envoy's clock, shared data and HTTP callouts.
struct WasmHost;

impl Host for WasmHost {
    fn now(&self) -> Nanos {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    fn shared(&self) -> &dyn SharedStore {
        self
    }

    fn dispatch(&self, call: &StoreCall) -> Option<u32> {
        let headers: Vec<(&str, &str)> = call.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let timeout = std::time::Duration::from_nanos(call.timeout.as_nanos());
        hostcalls::dispatch_http_call(&call.cluster, headers, call.body.as_deref(), vec![], timeout).ok()
    }
}

/// Envoy shared data, shared by every worker of this Envoy.
impl SharedStore for WasmHost {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(value), cas)) => Some((value, cas.unwrap_or(0))),
            _ => None,
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
        match hostcalls::set_shared_data(key, Some(value), (cas != 0).then_some(cas)) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(StoreError::CasMismatch),
            Err(_) => Err(StoreError::Failed),
        }
    }
}

/// The answer to an HTTP callout, as the core reads it.
fn store_answer(num_headers: usize, body_size: usize) -> (Option<u32>, Vec<u8>) {
    // No headers: the callout failed (time-out, reset, no healthy host).
    let status = (num_headers > 0)
        .then(|| hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status").ok().flatten())
        .flatten()
        .and_then(|s| s.parse().ok());
    let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size).ok().flatten().unwrap_or_default();
    (status, body)
}

/// What every request of this worker shares.
struct Active {
    worker: Worker,
    metrics: Metrics,
}

struct Root {
    active: Option<Rc<Active>>,
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize, _trailers: usize) {
        let Some(active) = &self.active else { return };
        let (status, body) = store_answer(num_headers, body_size);
        active.worker.on_store_answer(&WasmHost, token, StoreAnswer { status, body: &body });
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes =
            hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX).ok().flatten().unwrap_or_default();
        let mut id = [0u8; 8];
        let _ = getrandom::getrandom(&mut id);
        let worker = match Worker::configure(&bytes, &WasmHost, u64::from_le_bytes(id)) {
            Ok(w) => w,
            Err(e) => {
                log::error!("{e}");
                // Envoy refuses the configuration (and keeps the one it has, on a reload).
                metrics::config_error();
                return false;
            }
        };
        let metrics = Metrics::define(&worker.limiter.config);
        let _ = hostcalls::set_tick_period(TICK);
        self.active = Some(Rc::new(Active { worker, metrics }));
        true
    }

    fn on_tick(&mut self) {
        let Some(active) = &self.active else { return };
        for release in active.worker.tick(&WasmHost) {
            let id = u32::try_from(release.id).unwrap_or(0);
            let resumed = ffi::set_effective_context(id) && ffi::resume_request();
            active.worker.resumed(release, resumed);
        }
        active.metrics.flush(&active.worker.tally);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let active = self.active.clone()?;
        Some(Box::new(Filter { active, flow: Flow::new(u64::from(context_id)) }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request.
struct Filter {
    active: Rc<Active>,
    flow: Flow,
}

fn action(step: Step) -> Action {
    match step {
        Step::Continue => Action::Continue,
        Step::Pause => Action::Pause,
    }
}

impl Context for Filter {
    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize, _trailers: usize) {
        if !self.flow.awaits(token) {
            return;
        }
        let (status, body) = store_answer(num_headers, body_size);
        let answer = StoreAnswer { status, body: &body };
        if self.flow.on_store_answer(&self.active.worker, &WasmHost, &mut WasmStream, answer) {
            ffi::resume_request();
        }
    }
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(self.flow.on_request_headers(&self.active.worker, &WasmHost, &mut WasmStream, end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let s = &mut WasmStream;
        action(self.flow.on_request_body(&self.active.worker, &WasmHost, s, body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        action(self.flow.on_request_trailers(&self.active.worker, &WasmHost, &mut WasmStream))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.flow.on_response_headers(&self.active.worker, &mut WasmStream);
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.flow.on_response_body(&mut WasmStream, body_size, end_of_stream);
        Action::Continue
    }

    fn on_log(&mut self) {
        // Every stream ends here, however it ended (complete, reset, abort, time-out).
        self.flow.on_done(&self.active.worker, &WasmHost);
    }
}
