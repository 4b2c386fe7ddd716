//! The thin proxy-wasm adapter: a root context that compiles the configuration and defines
//! metrics, and an HTTP context per request that builds a `Request`, asks the `Limiter`,
//! and carries out its `Reply`. All decisions live in tollgate-core.
//!
//! Built for `wasm32` only (on other targets the crate is empty).
#![cfg(target_arch = "wasm32")]

mod ffi;
mod flusher;
mod held;
mod metrics;
mod poller;
mod shared_data;
mod store_call;

use held::{HeldQueue, SharedQueue};
use metrics::Metrics;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
use shared_data::HostSharedData;
use std::cell::RefCell;
use std::rc::Rc;
use store_call::{Next, PendingGlobal};
use tollgate_core::config::Config;
use tollgate_core::limiter::{BodyPlan, Evaluation, Limiter, Reply, Reservation};
use tollgate_core::llm::{self, Forward, ResponseReader};
use tollgate_core::metrics::ProxyMetric;
use tollgate_core::request::Request;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(TollgateRoot { active: None, flusher: flusher::Flusher::new(), poller: Default::default() }) });
}}

/// What every request of this worker shares: the compiled rules and the metric ids.
struct Active {
    limiter: Limiter,
    metrics: Metrics,
    held: SharedQueue,
    /// This worker's circuit breaker for store calls.
    breaker: RefCell<tollgate_core::global::Breaker>,
    /// Corrections for global counters (settled tokens, released slots), sent by the tick.
    store_adjustments: RefCell<Vec<(tollgate_core::global::GlobalCheck, i64)>>,
    /// Overrides and per-key limits last pulled from the store.
    overrides: RefCell<Rc<tollgate_core::overrides::Overrides>>,
}

struct TollgateRoot {
    active: Option<Rc<Active>>,
    flusher: flusher::Flusher,
    poller: poller::Poller,
}

/// How often held requests are checked for release and metrics are flushed.
const TICK: std::time::Duration = std::time::Duration::from_millis(10);

impl Context for TollgateRoot {
    fn on_http_call_response(&mut self, _token: u32, num_headers: usize, _body_size: usize, _trailers: usize) {
        let Some(active) = &self.active else { return };
        if self.flusher.on_response(active, _token, _body_size, now_nanos())
            || self.poller.on_response(active, _token, _body_size)
        {
            return;
        }
        // Answers to /v1/adjust: only failures matter.
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status").ok().flatten();
        if num_headers == 0 || status.as_deref() != Some("200") {
            active.metrics.proxy(ProxyMetric::StoreErrors, 1);
        }
    }
}

impl RootContext for TollgateRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes =
            hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX).ok().flatten().unwrap_or_default();
        let config = match Config::parse(&bytes) {
            Ok(c) => c,
            Err(e) => {
                log::error!("invalid configuration: {e}");
                return false;
            }
        };
        let limiter = Limiter::new(config);
        if let Err(e) = limiter.prepare(&HostSharedData) {
            log::error!("cannot allocate shared data for counters: {e:?}");
            return false;
        }
        let metrics = Metrics::define(&limiter.config);
        if limiter.config.enabled {
            log::info!(
                "configured {} rule(s), {} counter slots ({} KiB of shared data)",
                limiter.config.rules.len(),
                limiter.engine.table().capacity(),
                limiter.engine.table().value_bytes() / 1024
            );
        } else {
            log::info!("disabled by configuration (\"enabled\": false): every request passes");
        }
        let held = HeldQueue::new(limiter.config.throttle_queue as usize);
        // The tick releases held requests, runs store work and flushes metrics.
        let _ = hostcalls::set_tick_period(TICK);
        self.active = Some(Rc::new(Active {
            limiter,
            metrics,
            held,
            breaker: RefCell::new(Default::default()),
            store_adjustments: RefCell::new(Vec::new()),
            overrides: RefCell::new(Rc::new(Default::default())),
        }));
        true
    }

    fn on_tick(&mut self) {
        let Some(active) = &self.active else { return };
        active.metrics.flush();
        let waits = active.held.borrow_mut().release_due(now_nanos());
        for wait in waits {
            active.metrics.released(wait);
        }
        if active.limiter.has_batched() {
            self.flusher.tick(active, now_nanos());
        }
        self.poller.tick(active, now_nanos());
        let adjustments = std::mem::take(&mut *active.store_adjustments.borrow_mut());
        if !adjustments.is_empty() {
            let body = tollgate_core::global::adjust_body(&adjustments, store_call::rule_name(active));
            if store_call::dispatch(active, "/v1/adjust", &body).is_none() {
                active.metrics.proxy(ProxyMetric::StoreErrors, 1);
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(TollgateFilter { active: self.active.clone(), context_id, ..TollgateFilter::default() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request.
#[derive(Default)]
struct TollgateFilter {
    active: Option<Rc<Active>>,
    context_id: u32,
    /// Held by a throttle rule (until the root context resumes it).
    held: bool,
    /// Kept only while the body is being buffered for the decision.
    request_headers: Vec<(String, String)>,
    /// The shape of this request's error bodies (for answers decided after the store's).
    shape: tollgate_core::response::Shape,
    /// Rate-limit headers to add to the upstream's response.
    response_headers: Vec<(&'static str, String)>,
    /// Charges to settle when the stream ends.
    reservations: Vec<Reservation>,
    /// Tollgate added `stream_options.include_usage` to the request (the client did not ask).
    include_usage_added: bool,
    /// Reads the response's usage (and withholds the usage chunk Tollgate caused).
    usage: Option<ResponseReader>,
    /// Total tokens from the configured usage header.
    header_usage: Option<u64>,
    /// Global rules waiting for the store.
    global: PendingGlobal,
    /// Global counters charged at the store (to settle or release there).
    global_charged: Vec<tollgate_core::global::GlobalCheck>,
}

impl Context for TollgateFilter {
    fn on_http_call_response(&mut self, token: u32, _num_headers: usize, body_size: usize, _trailers: usize) {
        let Some(active) = self.active.clone() else { return };
        if self.global.token == Some(token) {
            self.on_store_answer(&active, body_size);
        }
    }
}

fn request_headers() -> Vec<(String, String)> {
    // The bytes variant: a header value that is not UTF-8 must not panic the VM, and is kept
    // apart from every other value (`header_text`).
    hostcalls::get_map_bytes(MapType::HttpRequestHeaders)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, tollgate_core::request::header_text(v)))
        .collect()
}

fn pseudo<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
}

/// The core's view of a request.
fn request_view<'a>(
    headers: &'a [(String, String)],
    peer: Option<&'a str>,
    body: Option<&'a serde_json::Value>,
) -> Request<'a> {
    Request { method: pseudo(headers, ":method"), path: pseudo(headers, ":path"), headers, peer, body }
}

/// The peer address, when a rule or an override needs it.
fn peer_address(active: &Active, overrides: &tollgate_core::overrides::Overrides) -> Option<String> {
    let needed = active.limiter.needs_ip || overrides.has_ips() || active.limiter.static_overrides.has_ips();
    if !needed {
        return None;
    }
    hostcalls::get_property(vec!["source", "address"]).ok().flatten().and_then(|b| String::from_utf8(b).ok())
}

fn now_nanos() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos().min(u64::MAX as u128) as u64)
        .unwrap_or(0)
}

impl TollgateFilter {
    /// Decide with the headers (and body, when buffered) and carry out the reply.
    fn decide(
        &mut self,
        active: &Active,
        headers: &[(String, String)],
        body: Option<&serde_json::Value>,
        body_size: usize,
    ) -> Action {
        let overrides = active.overrides.borrow().clone();
        let peer = peer_address(active, &overrides);
        let req = request_view(headers, peer.as_deref(), body);
        let now = now_nanos();
        let can_hold = active.held.borrow().has_room();
        let eval = active.limiter.evaluate(&HostSharedData, &req, now, can_hold, &overrides);
        active.metrics.record(&eval);
        self.shape = eval.shape;
        let debug = active.limiter.config.debug.then(|| self.debug(active, &req, &eval));
        if matches!(eval.reply, Reply::Continue { .. }) {
            self.rewrite_request(active, &req, &eval, body_size);
        }
        self.reservations = eval.reservations;
        match eval.reply {
            Reply::Continue { headers } => {
                self.response_headers = headers;
                if let Some(d) = debug {
                    self.response_headers.push(("x-tollgate-rules", d));
                }
                if !eval.global.is_empty() {
                    return match self.start_global(active, eval.global, eval.applied) {
                        Next::Continue => Action::Continue,
                        Next::Replied => Action::Pause,
                    };
                }
                if eval.hold_ns > 0 {
                    active.held.borrow_mut().hold(self.context_id, now, eval.hold_ns);
                    active.metrics.held();
                    self.held = true;
                    return Action::Pause;
                }
                Action::Continue
            }
            Reply::Deny { status, mut headers, body } => {
                if let Some(d) = debug {
                    headers.push(("x-tollgate-rules", d));
                }
                let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                if !ffi::send_response(status, &pairs, body.as_bytes()) {
                    log::warn!("cannot send the local reply (status {status})");
                    return Action::Continue;
                }
                Action::Pause
            }
        }
    }

    /// Before the body: answer now when the rules that need only the headers deny, and send
    /// a degrade's marker header with the headers. None: wait for the body.
    fn precheck(&mut self, active: &Active, headers: &[(String, String)]) -> Option<Action> {
        let overrides = active.overrides.borrow().clone();
        let peer = peer_address(active, &overrides);
        let req = request_view(headers, peer.as_deref(), None);
        let can_hold = active.held.borrow().has_room();
        let eval = active.limiter.precheck(&HostSharedData, &req, now_nanos(), can_hold, &overrides)?;
        if matches!(eval.reply, Reply::Deny { .. }) {
            active.metrics.record(&eval);
            let debug = active.limiter.config.debug.then(|| self.debug(active, &req, &eval));
            if let Reply::Deny { status, mut headers, body } = eval.reply {
                headers.extend(debug.map(|d| ("x-tollgate-rules", d)));
                let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                if ffi::send_response(status, &pairs, body.as_bytes()) {
                    return Some(Action::Pause);
                }
                log::warn!("cannot send the local reply (status {status})");
            }
            return None;
        }
        let rule = eval.degraded_by.and_then(|i| active.limiter.config.rules.get(i));
        if let Some((rule, name)) = rule.and_then(|r| Some((r, r.degrade.as_ref()?.add_header.as_ref()?))) {
            ffi::set_header(MapType::HttpRequestHeaders, name, Some(&rule.name));
        }
        None
    }

    /// Degrade (model rewrite, marker header) and ask OpenAI-style streams for usage.
    fn rewrite_request(&mut self, active: &Active, req: &Request, eval: &Evaluation, body_size: usize) {
        let config = &active.limiter.config;
        let degrade =
            eval.degraded_by.and_then(|i| config.rules.get(i)).and_then(|r| r.degrade.as_ref().map(|d| (r, d)));
        if let Some((rule, d)) = degrade {
            if let Some(name) = &d.add_header {
                ffi::set_header(MapType::HttpRequestHeaders, name, Some(&rule.name));
            }
        }
        let Some(body) = req.body else { return };
        let include_usage =
            config.llm.include_usage && !eval.reservations.is_empty() && llm::asks_for_usage_when_streaming(req.path);
        let set_model = degrade.and_then(|(_, d)| d.set_model.as_deref());
        if let Some(new_body) = llm::rewrite_body(body, include_usage, set_model) {
            // Once the headers went upstream (Envoy without stop-iteration) the length cannot
            // change any more: then the body is left as it is.
            // (A chunked request has no length to keep in step: Envoy re-frames the body.)
            let len = new_body.bytes.len().to_string();
            let framed = req.header("content-length").is_some();
            if !framed || ffi::set_header(MapType::HttpRequestHeaders, "content-length", Some(&len)) {
                let rewritten = ffi::set_buffer(BufferType::HttpRequestBody, 0, body_size, &new_body.bytes);
                self.include_usage_added = rewritten && new_body.added_include_usage;
                if framed && !rewritten {
                    ffi::set_header(MapType::HttpRequestHeaders, "content-length", Some(&body_size.to_string()));
                }
            }
        }
    }

    /// Settle reservations with the usage the response reported.
    fn settle(&mut self, active: &Active) {
        let needs_usage = |unit: tollgate_core::config::Unit| unit != tollgate_core::config::Unit::Requests;
        let global_units: Vec<tollgate_core::config::Unit> = self
            .global_charged
            .iter()
            .filter_map(|c| active.limiter.config.rules.get(c.rule).map(|r| r.unit))
            .collect();
        if !self.reservations.iter().any(|r| needs_usage(r.unit)) && !global_units.iter().any(|u| needs_usage(*u)) {
            return;
        }
        let reader = self.usage.take();
        if let Some(skipped) = reader.as_ref().map(ResponseReader::oversized).filter(|n| *n > 0) {
            log::warn!("{skipped} usage value(s) over {} bytes skipped", llm::json_scan::MAX_CAPTURE_BYTES);
        }
        let mut usage = reader.map(ResponseReader::finish).unwrap_or_default();
        if usage.is_empty() {
            usage.total = self.header_usage;
        }
        let counts_tokens =
            self.reservations.iter().any(|r| r.unit.is_llm()) || global_units.iter().any(|u| u.is_llm());
        let found = !usage.is_empty();
        for (check, unit) in std::mem::take(&mut self.global_charged).into_iter().zip(global_units) {
            if let Some(delta) =
                tollgate_core::limiter::settlement(unit, check.cost, check.price, found.then_some(&usage))
            {
                active.store_adjustments.borrow_mut().push((check, delta));
            }
        }
        if counts_tokens && !found {
            active.metrics.proxy(ProxyMetric::UsageMissing, 1);
        }
        let reservations = std::mem::take(&mut self.reservations);
        let stats = active.limiter.settle(&HostSharedData, &reservations, found.then_some(&usage), now_nanos());
        active.metrics.record_stats(&stats);
    }

    fn debug(&self, active: &Active, req: &Request, eval: &Evaluation) -> String {
        let summary = eval.debug_header(&active.limiter.config);
        let verdict = match eval.reply {
            Reply::Continue { .. } => "allow".to_string(),
            Reply::Deny { status, .. } => format!("deny {status}"),
        };
        log::info!("debug: {} {} -> {verdict}; rules: {summary}", req.method, req.path_only());
        summary
    }
}

impl HttpContext for TollgateFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(active) = self.active.clone() else { return Action::Continue };
        if active.limiter.is_idle() {
            return Action::Continue; // nothing to limit: not even the headers are read
        }
        let mut headers = request_headers();
        if active.limiter.is_exempt(pseudo(&headers, ":path")) {
            return Action::Continue;
        }
        let plan = if end_of_stream {
            BodyPlan::default()
        } else {
            active.limiter.body_plan(&request_view(&headers, None, None))
        };
        if !plan.buffer {
            return self.decide(&active, &headers, None, 0);
        }
        // A rule that reads the body may apply: rules that need only the headers may deny now,
        // before the upstream sees anything; the decision follows the body.
        if let Some(action) = self.precheck(&active, &headers) {
            return action;
        }
        if plan.reads_usage {
            // Usage is read from the response body: ask for it uncompressed.
            ffi::set_header(MapType::HttpRequestHeaders, "accept-encoding", None);
        }
        let hold = active.limiter.config.hold_headers;
        if plan.may_rewrite && !hold && ffi::set_header(MapType::HttpRequestHeaders, "content-length", None) {
            // The headers go on before the body is read: without a length the upstream gets
            // the body chunked, so a rewrite may change its size.
            headers.retain(|(k, _)| k != "content-length");
        }
        self.request_headers = headers;
        if hold {
            Action::Pause // allow_on_headers_stop_iteration: the body still comes
        } else {
            Action::Continue
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(active) = self.active.clone() else { return Action::Continue };
        if self.request_headers.is_empty() {
            return Action::Continue;
        }
        let cap = active.limiter.config.max_body_bytes as usize;
        if !end_of_stream && body_size <= cap {
            return Action::Pause; // Envoy buffers until the end of the body
        }
        let headers = std::mem::take(&mut self.request_headers);
        let body = if body_size <= cap {
            hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size)
                .ok()
                .flatten()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        } else {
            None // Over the cap: body keys are missing, the request still goes through.
        };
        self.decide(&active, &headers, body.as_ref(), body_size)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        // A body that ended with trailers: decide without it.
        let Some(active) = self.active.clone() else { return Action::Continue };
        if self.request_headers.is_empty() {
            return Action::Continue;
        }
        let headers = std::mem::take(&mut self.request_headers);
        self.decide(&active, &headers, None, 0)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (name, value) in self.response_headers.drain(..) {
            ffi::add_header(MapType::HttpResponseHeaders, name, &value);
        }
        let reads_usage = self.reservations.iter().any(|r| r.unit.is_llm());
        if reads_usage || self.include_usage_added {
            let header = |name: &str| hostcalls::get_map_value(MapType::HttpResponseHeaders, name).ok().flatten();
            let content_type = header("content-type").unwrap_or_default();
            self.usage = ResponseReader::for_response(&content_type, reads_usage, self.include_usage_added);
            if self.usage.as_ref().is_some_and(ResponseReader::may_change_body) {
                // The body may lose the usage chunk: its length is no longer known.
                ffi::set_header(MapType::HttpResponseHeaders, "content-length", None);
            }
            if let Some(active) = self.active.as_ref().filter(|_| reads_usage) {
                if let Some(name) = &active.limiter.config.llm.usage_header {
                    self.header_usage = header(name).and_then(|v| v.trim().parse().ok());
                }
            }
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        // Read usage as the body streams by (nothing is buffered); the chunk flows on as it
        // is, except the usage chunk Tollgate caused, which is withheld.
        let Some(reader) = &mut self.usage else { return Action::Continue };
        if body_size == 0 && !end_of_stream {
            return Action::Continue;
        }
        let chunk = if body_size == 0 {
            Vec::new()
        } else {
            hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size).ok().flatten().unwrap_or_default()
        };
        if let Forward::Replace(bytes) = reader.feed(&chunk, end_of_stream) {
            if !ffi::set_buffer(BufferType::HttpResponseBody, 0, body_size, bytes) {
                log::warn!("cannot replace a response body chunk ({body_size} bytes)");
            }
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        // Every stream ends here, however it ended (complete, reset, abort, timeout).
        let Some(active) = self.active.clone() else { return };
        if self.held && active.held.borrow_mut().forget(self.context_id) {
            // The client left while held: free its place and give back its charges.
            active.metrics.abandoned();
            let reservations = std::mem::take(&mut self.reservations);
            let stats = active.limiter.refund(&HostSharedData, &reservations, now_nanos());
            active.metrics.record_stats(&stats);
            return;
        }
        self.settle(&active);
    }
}
