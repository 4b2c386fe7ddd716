//! A response and how it is written: with Content-Length, or chunked (one HTTP chunk per
//! stream event, or as `x-mock-split` cuts it), after `x-mock-delay-ms`, with
//! `x-mock-chunk-delay-ms` between chunks, cut short by `x-mock-abort-after`.

use serde_json::{json, Value};
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use crate::http::Request;
use crate::split::{split_pieces, Split};

/// Pause between stream chunks by default, so that Envoy forwards them separately.
pub const DEFAULT_CHUNK_DELAY_MS: u64 = 2;

pub enum Body {
    /// A complete body, sent with Content-Length (or chunked with `x-mock-split`).
    Full(Vec<u8>),
    /// Stream events, each written as its own chunk (unless `x-mock-split`).
    Stream(Vec<Vec<u8>>),
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    pub delay_ms: u64,
    pub chunk_delay_ms: u64,
    pub split: Option<Split>,
    pub abort_after: Option<usize>,
    /// Extra text for the request log line.
    pub note: String,
}

impl Reply {
    pub fn json(status: u16, value: &Value) -> Reply {
        Reply {
            status,
            content_type: "application/json".to_string(),
            headers: Vec::new(),
            body: Body::Full(value.to_string().into_bytes()),
            delay_ms: 0,
            chunk_delay_ms: DEFAULT_CHUNK_DELAY_MS,
            split: None,
            abort_after: None,
            note: String::new(),
        }
    }

    pub fn stream(content_type: &str, events: Vec<Vec<u8>>) -> Reply {
        Reply { content_type: content_type.to_string(), body: Body::Stream(events), ..Reply::json(200, &Value::Null) }
    }

    pub fn error(status: u16, kind: &str, msg: &str) -> Reply {
        Reply {
            body: Body::Full(error_body(kind, msg)),
            note: format!(" ({msg})"),
            ..Reply::json(status, &Value::Null)
        }
    }
}

/// An error body understood by both OpenAI and Anthropic style clients.
pub fn error_body(kind: &str, msg: &str) -> Vec<u8> {
    json!({"type": "error", "error": {"type": kind, "message": msg}}).to_string().into_bytes()
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Overloaded",
        _ => "Status",
    }
}

/// Writes `reply`; returns whether the connection may serve another request.
pub fn write_reply(w: &mut TcpStream, req: &Request, reply: Reply, keep_alive: bool) -> io::Result<bool> {
    if reply.delay_ms > 0 {
        thread::sleep(Duration::from_millis(reply.delay_ms));
    }
    let no_body = matches!(reply.status, 204 | 304);
    let head_only = no_body || req.method == "HEAD";
    let (pieces, chunked) = match reply.body {
        Body::Full(body) => match reply.split {
            Some(split) if !head_only => (split_pieces(&body, split), true),
            _ => (vec![body], false),
        },
        Body::Stream(events) => match reply.split {
            Some(split) => (split_pieces(&events.concat(), split), true),
            None => (events, true),
        },
    };
    // HTTP/1.0 has no chunked encoding: such bodies are delimited by closing.
    let close_delimited = chunked && req.http10;
    let keep = keep_alive && !close_delimited && reply.abort_after.is_none();

    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    if !no_body {
        head.push_str(&format!("content-type: {}\r\n", reply.content_type));
    }
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !no_body && !chunked {
        let len = pieces.first().map_or(0, Vec::len);
        head.push_str(&format!("content-length: {len}\r\n"));
    } else if !no_body && !close_delimited {
        head.push_str("transfer-encoding: chunked\r\n");
    }
    if !keep {
        head.push_str("connection: close\r\n");
    } else if req.http10 {
        head.push_str("connection: keep-alive\r\n");
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    if head_only {
        w.flush()?;
        return Ok(keep);
    }
    if !chunked {
        if let Some(body) = pieces.first() {
            w.write_all(body)?;
        }
        w.flush()?;
        return Ok(keep);
    }
    w.flush()?;
    for (i, piece) in pieces.iter().filter(|p| !p.is_empty()).enumerate() {
        if reply.abort_after == Some(i) {
            let _ = w.shutdown(Shutdown::Both);
            return Ok(false);
        }
        if i > 0 && reply.chunk_delay_ms > 0 {
            thread::sleep(Duration::from_millis(reply.chunk_delay_ms));
        }
        if close_delimited {
            w.write_all(piece)?;
        } else {
            let mut buf = format!("{:x}\r\n", piece.len()).into_bytes();
            buf.extend_from_slice(piece);
            buf.extend_from_slice(b"\r\n");
            w.write_all(&buf)?;
        }
        w.flush()?;
    }
    if reply.abort_after.is_some() {
        let _ = w.shutdown(Shutdown::Both);
        return Ok(false);
    }
    if close_delimited {
        let _ = w.shutdown(Shutdown::Write);
        return Ok(false);
    }
    w.write_all(b"0\r\n\r\n")?;
    w.flush()?;
    Ok(keep)
}
