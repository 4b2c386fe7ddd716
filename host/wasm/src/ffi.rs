//! Host calls that may fail at run time, without the SDK's panics.
//!
//! proxy-wasm 0.2.5 panics on any status it does not expect, and a panic kills the VM for
//! every request of the worker. Header changes fail once headers have gone upstream (e.g. when
//! Envoy cannot pause headers for the body), a stream may be gone when it is resumed, a local
//! reply may be refused: these wrappers call the same ABI and return whether it worked.

use proxy_wasm::types::{BufferType, MapType};

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_add_header_map_value(map: u32, key: *const u8, key_size: usize, value: *const u8, size: usize) -> u32;
    fn proxy_replace_header_map_value(map: u32, key: *const u8, key_size: usize, value: *const u8, size: usize) -> u32;
    fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
    fn proxy_set_buffer_bytes(buffer: u32, start: usize, size: usize, data: *const u8, data_size: usize) -> u32;
    fn proxy_continue_stream(stream: u32) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn proxy_send_local_response(
        status: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
}

const OK: u32 = 0;
/// `StreamType::HttpRequest` of the ABI.
const HTTP_REQUEST_STREAM: u32 = 0;

/// Add a header (request or response); false when the host refused.
pub fn add_header(map: MapType, name: &str, value: &str) -> bool {
    // SAFETY: pointers and lengths describe live byte slices for the duration of the call.
    unsafe { proxy_add_header_map_value(map as u32, name.as_ptr(), name.len(), value.as_ptr(), value.len()) == OK }
}

/// Set (`Some`) or remove (`None`) a header; false when the host refused.
pub fn set_header(map: MapType, name: &str, value: Option<&str>) -> bool {
    // SAFETY: as above.
    unsafe {
        match value {
            Some(v) => proxy_replace_header_map_value(map as u32, name.as_ptr(), name.len(), v.as_ptr(), v.len()) == OK,
            None => proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) == OK,
        }
    }
}

/// Replace `size` bytes of a buffer from `start` with `data`.
pub fn set_buffer(buffer: BufferType, start: usize, size: usize, data: &[u8]) -> bool {
    // SAFETY: as above.
    unsafe { proxy_set_buffer_bytes(buffer as u32, start, size, data.as_ptr(), data.len()) == OK }
}

/// Let a paused request go on (the effective context must be its own).
pub fn resume_request() -> bool {
    // SAFETY: no pointers.
    unsafe { proxy_continue_stream(HTTP_REQUEST_STREAM) == OK }
}

/// Switch to another HTTP context (from the root context's tick); false when it is gone.
pub fn set_effective_context(context_id: u32) -> bool {
    // SAFETY: no pointers.
    unsafe { proxy_set_effective_context(context_id) == OK }
}

/// Answer the request locally.
pub fn send_response(status: u32, headers: &[(&str, &str)], body: &[u8]) -> bool {
    let map = serialize_map(headers);
    // SAFETY: as above; an empty details string is allowed.
    unsafe {
        proxy_send_local_response(status, "".as_ptr(), 0, body.as_ptr(), body.len(), map.as_ptr(), map.len(), -1) == OK
    }
}

/// The ABI's header map encoding: count, (name size, value size) pairs, then each name and
/// value followed by a NUL.
fn serialize_map(map: &[(&str, &str)]) -> Vec<u8> {
    let size = 4 + map.iter().map(|(n, v)| n.len() + v.len() + 10).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(map.len() as u32).to_le_bytes());
    for (name, value) in map {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (name, value) in map {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out
}
