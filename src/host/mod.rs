//! The thin proxy-wasm adapter: a root context that compiles the configuration and defines
//! metrics, and an HTTP context per request that builds a `Request`, asks the `Limiter`,
//! and carries out its `Reply`. All decisions live in the pure modules.

mod metrics;
mod shared_data;

use crate::config::Config;
use crate::limiter::{Evaluation, Limiter, Reply};
use crate::request::Request;
use metrics::Metrics;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};
use shared_data::HostSharedData;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(TollgateRoot { active: None }) });
}}

/// What every request of this worker shares: the compiled rules and the metric ids.
struct Active {
    limiter: Limiter,
    metrics: Metrics,
}

struct TollgateRoot {
    active: Option<Rc<Active>>,
}

impl Context for TollgateRoot {}

impl RootContext for TollgateRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = hostcalls::get_buffer(proxy_wasm::types::BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
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
        self.active = Some(Rc::new(Active { limiter, metrics }));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(TollgateFilter {
            active: self.active.clone(),
            request_headers: Vec::new(),
            body_bytes: 0,
            response_headers: Vec::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request.
struct TollgateFilter {
    active: Option<Rc<Active>>,
    /// Kept only while the body is being buffered for a body key.
    request_headers: Vec<(String, String)>,
    body_bytes: usize,
    /// Rate-limit headers to add to the upstream's response.
    response_headers: Vec<(&'static str, String)>,
}

impl Context for TollgateFilter {}

fn request_headers() -> Vec<(String, String)> {
    // The bytes variant: a header value that is not UTF-8 must not panic the VM.
    hostcalls::get_map_bytes(MapType::HttpRequestHeaders)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect()
}

fn pseudo<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
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
    fn decide(&mut self, active: &Active, headers: &[(String, String)], body: Option<&serde_json::Value>) -> Action {
        let peer = if active.limiter.needs_ip {
            hostcalls::get_property(vec!["source", "address"])
                .ok()
                .flatten()
                .and_then(|b| String::from_utf8(b).ok())
        } else {
            None
        };
        let req = Request {
            method: pseudo(headers, ":method"),
            path: pseudo(headers, ":path"),
            headers,
            peer: peer.as_deref(),
            body,
        };
        let eval = active.limiter.evaluate(&HostSharedData, &req, now_nanos());
        active.metrics.record(&eval);
        let debug = active.limiter.config.debug.then(|| self.debug(active, &req, &eval));
        match eval.reply {
            Reply::Continue { headers } => {
                self.response_headers = headers;
                if let Some(d) = debug {
                    self.response_headers.push(("x-tollgate-rules", d));
                }
                Action::Continue
            }
            Reply::Deny { status, mut headers, body } => {
                if let Some(d) = debug {
                    headers.push(("x-tollgate-rules", d));
                }
                let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                if let Err(e) = hostcalls::send_http_response(status, pairs, Some(body.as_bytes())) {
                    log::warn!("cannot send the local reply: {e:?}");
                    return Action::Continue;
                }
                Action::Pause
            }
        }
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
        let headers = request_headers();
        if active.limiter.is_exempt(pseudo(&headers, ":path")) {
            return Action::Continue;
        }
        if active.limiter.needs_body && !end_of_stream {
            // Wait for the body: a rule keys on a field of it.
            self.request_headers = headers;
            return Action::Pause;
        }
        self.decide(&active, &headers, None)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(active) = self.active.clone() else { return Action::Continue };
        if self.request_headers.is_empty() {
            return Action::Continue;
        }
        self.body_bytes = body_size;
        let cap = active.limiter.config.max_body_bytes as usize;
        if !end_of_stream && body_size <= cap {
            return Action::Pause;
        }
        let headers = std::mem::take(&mut self.request_headers);
        let body = if body_size <= cap {
            hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpRequestBody, 0, body_size)
                .ok()
                .flatten()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        } else {
            None // Over the cap: body keys are missing, the request still goes through.
        };
        self.decide(&active, &headers, body.as_ref())
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (name, value) in self.response_headers.drain(..) {
            let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, name, &value);
        }
        Action::Continue
    }
}
