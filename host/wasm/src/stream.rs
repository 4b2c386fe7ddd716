//! The request being processed, as proxy-wasm exposes it to the current HTTP context.

use super::ffi;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};
use tollgate_core::filter::Stream;
use tollgate_core::request::header_text;

/// The current HTTP context's request and response (proxy-wasm keeps one per callback).
pub struct WasmStream;

impl Stream for WasmStream {
    fn request_headers(&self) -> Vec<(String, String)> {
        // The bytes variant: a header value that is not UTF-8 must not panic the VM, and is
        // kept apart from every other value (`header_text`).
        hostcalls::get_map_bytes(MapType::HttpRequestHeaders)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, header_text(v)))
            .collect()
    }

    fn peer_address(&self) -> Option<String> {
        hostcalls::get_property(vec!["source", "address"]).ok().flatten().and_then(|b| String::from_utf8(b).ok())
    }

    fn set_request_header(&mut self, name: &str, value: Option<&str>) -> bool {
        ffi::set_header(MapType::HttpRequestHeaders, name, value)
    }

    fn request_body(&self, size: usize) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size).ok().flatten()
    }

    fn set_request_body(&mut self, size: usize, body: &[u8]) -> bool {
        ffi::set_buffer(BufferType::HttpRequestBody, 0, size, body)
    }

    fn send_reply(&mut self, status: u32, headers: &[(&str, &str)], body: &[u8]) -> bool {
        ffi::send_response(status, headers, body)
    }

    fn response_header(&self, name: &str) -> Option<String> {
        hostcalls::get_map_value(MapType::HttpResponseHeaders, name).ok().flatten()
    }

    fn add_response_header(&mut self, name: &str, value: &str) -> bool {
        ffi::add_header(MapType::HttpResponseHeaders, name, value)
    }

    fn set_response_header(&mut self, name: &str, value: Option<&str>) -> bool {
        ffi::set_header(MapType::HttpResponseHeaders, name, value)
    }

    fn response_body(&self, size: usize) -> Vec<u8> {
        hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size).ok().flatten().unwrap_or_default()
    }

    fn set_response_body(&mut self, size: usize, body: &[u8]) -> bool {
        ffi::set_buffer(BufferType::HttpResponseBody, 0, size, body)
    }
}
