//! A reference filter for `make bench`: it does only the host calls its plugin configuration
//! lists (comma-separated), so the bench can show what the proxy-wasm boundary costs by
//! itself, next to Tollgate doing the same work plus its own.
//!
//! - `headers`: read the whole request header map (one call);
//! - `header`: read `authorization` (one call);
//! - `peer`: read the `source.address` property;
//! - `clock`: read the current time;
//! - `cas`: read a 320-byte shared-data value and write it back with its CAS token (what one
//!   rule's counter costs: Tollgate's slot sets are 8 records of 40 bytes);
//! - `response_headers`: add 5 response headers (Tollgate's default `ietf` + `x-ratelimit`).
//!
//! An empty configuration is the floor: an HTTP context that returns at once from every callback.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Probe { ops: Rc::new(Vec::new()) }) });
}}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Headers,
    Header,
    Peer,
    Clock,
    Cas,
    ResponseHeaders,
}

const SLOT_SET: &str = "tollgate-bench-probe.set";

struct Probe {
    ops: Rc<Vec<Op>>,
}

impl Context for Probe {}

impl RootContext for Probe {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes =
            hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX).ok().flatten().unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let mut ops = Vec::new();
        for name in text.split(',').map(|s| s.trim().trim_matches('"')).filter(|s| !s.is_empty()) {
            ops.push(match name {
                "headers" => Op::Headers,
                "header" => Op::Header,
                "peer" => Op::Peer,
                "clock" => Op::Clock,
                "cas" => Op::Cas,
                "response_headers" => Op::ResponseHeaders,
                other => {
                    let _ = hostcalls::log(LogLevel::Error, &format!("probe: unknown operation {other:?}"));
                    return false;
                }
            });
        }
        self.ops = Rc::new(ops);
        hostcalls::set_shared_data(SLOT_SET, Some(&[0u8; 320]), None).is_ok()
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request { ops: self.ops.clone() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Request {
    ops: Rc<Vec<Op>>,
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let mut seen = 0usize;
        for op in self.ops.iter() {
            seen += match op {
                Op::Headers => hostcalls::get_map_bytes(MapType::HttpRequestHeaders).map(|m| m.len()).unwrap_or(0),
                Op::Header => hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, "authorization")
                    .ok()
                    .flatten()
                    .map(|v| v.len())
                    .unwrap_or(0),
                Op::Peer => {
                    hostcalls::get_property(vec!["source", "address"]).ok().flatten().map(|v| v.len()).unwrap_or(0)
                }
                Op::Clock => usize::from(hostcalls::get_current_time().is_ok()),
                Op::Cas => match hostcalls::get_shared_data(SLOT_SET) {
                    Ok((Some(mut value), cas)) => {
                        if let Some(b) = value.first_mut() {
                            *b = b.wrapping_add(1);
                        }
                        usize::from(hostcalls::set_shared_data(SLOT_SET, Some(&value), cas).is_ok())
                    }
                    _ => 0,
                },
                Op::ResponseHeaders => 0,
            };
        }
        // Keep the reads from being optimized away.
        if seen == usize::MAX {
            let _ = hostcalls::log(LogLevel::Trace, "probe");
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.ops.contains(&Op::ResponseHeaders) {
            for (name, value) in [
                ("ratelimit-policy", "\"per-key\";q=1000000;w=1"),
                ("ratelimit", "\"per-key\";r=999999;t=1"),
                ("x-ratelimit-limit", "1000000"),
                ("x-ratelimit-remaining", "999999"),
                ("x-ratelimit-reset", "1"),
            ] {
                let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, name, value);
            }
        }
        Action::Continue
    }
}
