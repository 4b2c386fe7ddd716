//! HTTP/1.1 request parsing: the request line, the header block (bounded in size and count)
//! and the body, framed by Content-Length or chunked encoding. What cannot be read either
//! closes the connection or gets an error status (`HttpError`).

use std::io::{self, BufRead, Write};

/// Largest accepted request body (larger ones get 413).
pub const MAX_BODY: usize = 8 * 1024 * 1024;
/// Largest accepted request line + header block (larger ones get 431).
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields accepted in one request.
pub const MAX_HEADERS: usize = 256;

/// Why a request could not be read.
pub enum HttpError {
    /// Close the connection without answering (bad request line, I/O error, EOF).
    Close,
    /// Answer with this status and message, then close the connection.
    Reply(u16, String),
}

impl From<io::Error> for HttpError {
    fn from(_: io::Error) -> Self {
        HttpError::Close
    }
}

pub enum LineError {
    Io,
    TooLong,
}

pub struct Request {
    pub method: String,
    /// The request target exactly as received (path and query).
    pub target: String,
    pub http10: bool,
    /// Header fields in order, names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.header_values(name).any(|v| v.eq_ignore_ascii_case(token))
    }

    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target.as_str(), |(p, _)| p)
    }

    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    pub fn keep_alive(&self) -> bool {
        if self.http10 {
            self.has_token("connection", "keep-alive")
        } else {
            !self.has_token("connection", "close")
        }
    }
}

/// Reads one line (up to and including `\n`) of at most `max` bytes.
/// `Ok(None)` at end of input (a partial line at EOF is discarded).
pub fn read_line(r: &mut impl BufRead, max: usize) -> Result<Option<Vec<u8>>, LineError> {
    let mut line = Vec::new();
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(LineError::Io),
        };
        if avail.is_empty() {
            return Ok(None);
        }
        let (take, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(pos) => (pos + 1, true),
            None => (avail.len(), false),
        };
        if line.len() + take > max {
            return Err(LineError::TooLong);
        }
        line.extend_from_slice(&avail[..take]);
        r.consume(take);
        if done {
            return Ok(Some(line));
        }
    }
}

pub fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Reads a request line and header block. `Ok(None)` on a clean EOF.
pub fn read_head(r: &mut impl BufRead) -> Result<Option<Request>, HttpError> {
    let mut budget = MAX_HEAD;
    let mut blank_lines = 0;
    let line = loop {
        let line = match read_line(r, budget) {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(None),
            Err(_) => return Err(HttpError::Close),
        };
        budget -= line.len();
        let text = trim_eol(&line);
        if !text.is_empty() {
            break text.to_vec();
        }
        // Tolerate a few stray CRLFs between requests.
        blank_lines += 1;
        if blank_lines > 4 {
            return Err(HttpError::Close);
        }
    };
    let line = String::from_utf8(line).map_err(|_| HttpError::Close)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Close);
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(HttpError::Close);
    }
    if target.is_empty() || !target.bytes().all(|b| b > b' ' && b != 0x7f) {
        return Err(HttpError::Close);
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(HttpError::Close),
    };

    let mut headers = Vec::new();
    loop {
        let line = match read_line(r, budget) {
            Ok(Some(line)) => line,
            Ok(None) | Err(LineError::Io) => return Err(HttpError::Close),
            Err(LineError::TooLong) => return Err(HttpError::Reply(431, "request header block too large".into())),
        };
        budget -= line.len();
        let text = trim_eol(&line);
        if text.is_empty() {
            break;
        }
        if text[0] == b' ' || text[0] == b'\t' {
            return Err(HttpError::Reply(400, "obsolete header line folding".into()));
        }
        if headers.len() >= MAX_HEADERS {
            return Err(HttpError::Reply(431, "too many header fields".into()));
        }
        let text = String::from_utf8_lossy(text);
        let Some((name, value)) = text.split_once(':') else {
            return Err(HttpError::Reply(400, "malformed header field".into()));
        };
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(HttpError::Reply(400, "malformed header name".into()));
        }
        headers.push((name.to_ascii_lowercase(), value.trim_matches([' ', '\t']).to_string()));
    }
    Ok(Some(Request { method: method.to_string(), target: target.to_string(), http10, headers, body: Vec::new() }))
}

pub fn send_continue(w: &mut impl Write) -> Result<(), HttpError> {
    w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    w.flush()?;
    Ok(())
}

pub fn too_large() -> HttpError {
    HttpError::Reply(413, format!("request body larger than {MAX_BODY} bytes"))
}

/// Reads the request body framed by Content-Length or chunked encoding.
pub fn read_body(r: &mut impl BufRead, w: &mut impl Write, req: &Request) -> Result<Vec<u8>, HttpError> {
    let expect_continue = !req.http10 && req.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    let codings: Vec<&str> = req.header_values("transfer-encoding").collect();
    if !codings.is_empty() {
        if codings.len() != 1 || !codings[0].eq_ignore_ascii_case("chunked") {
            return Err(HttpError::Reply(501, "only `Transfer-Encoding: chunked` is supported".into()));
        }
        if expect_continue {
            send_continue(w)?;
        }
        return read_chunked(r);
    }
    let lengths: Vec<&str> = req.header_values("content-length").collect();
    let Some(first) = lengths.first() else {
        return Ok(Vec::new());
    };
    if lengths.iter().any(|l| l != first) {
        return Err(HttpError::Reply(400, "conflicting Content-Length".into()));
    }
    if first.len() > 19 || !first.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::Reply(400, "malformed Content-Length".into()));
    }
    let len: usize = first.parse().map_err(|_| HttpError::Reply(400, "malformed Content-Length".into()))?;
    if len > MAX_BODY {
        return Err(too_large());
    }
    if expect_continue && len > 0 {
        send_continue(w)?;
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

pub fn read_chunked(r: &mut impl BufRead) -> Result<Vec<u8>, HttpError> {
    let bad = |what: &str| HttpError::Reply(400, format!("malformed chunked body: {what}"));
    let mut body = Vec::new();
    loop {
        let line = match read_line(r, 4096) {
            Ok(Some(line)) => line,
            Ok(None) | Err(LineError::Io) => return Err(HttpError::Close),
            Err(LineError::TooLong) => return Err(bad("chunk size line too long")),
        };
        let line = trim_eol(&line);
        let size = line.split(|&b| b == b';').next().unwrap_or_default();
        let size = String::from_utf8_lossy(size);
        let size = size.trim_matches([' ', '\t']);
        if size.is_empty() || size.len() > 15 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("bad chunk size"));
        }
        let size = usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            // Trailer section, ignored.
            let mut budget = MAX_HEAD;
            loop {
                match read_line(r, budget) {
                    Ok(Some(line)) => {
                        budget -= line.len();
                        if trim_eol(&line).is_empty() {
                            return Ok(body);
                        }
                    }
                    Ok(None) | Err(LineError::Io) => return Err(HttpError::Close),
                    Err(LineError::TooLong) => return Err(bad("trailers too large")),
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(too_large());
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        match read_line(r, 2) {
            Ok(Some(line)) if trim_eol(&line).is_empty() => {}
            Ok(None) | Err(LineError::Io) => return Err(HttpError::Close),
            _ => return Err(bad("missing CRLF after chunk data")),
        }
    }
}
