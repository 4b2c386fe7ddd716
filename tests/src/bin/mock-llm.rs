//! `mock-llm`: a small, deterministic HTTP/1.1 upstream that imitates LLM APIs
//! (OpenAI, Anthropic, Gemini) for Tollgate's end-to-end tests and the demo.
//! Full documentation: `docs/mock-llm.md`.
//!
//! CLI: `mock-llm [--listen ADDR] [--quiet] [--fixtures DIR]` (default
//! `127.0.0.1:0`). Once bound it prints exactly one line, `listening on IP:PORT`,
//! to stdout and flushes it; it then serves until killed. Without `--quiet` it
//! logs one line per request to stderr. With `--fixtures DIR` (or the
//! `MOCK_LLM_FIXTURES` environment variable) a request carrying
//! `x-mock-fixture: NAME` is answered with the recorded body `DIR/NAME.body`,
//! verbatim, with the `content_type` of `DIR/NAME.json`.
//!
//! Deterministic token counts:
//!
//! * `T` = total UTF-8 byte length of the text found in the top-level request
//!   fields `messages`, `prompt`, `input`, `instructions`, `system`,
//!   `contents` and `systemInstruction`, where the text of a string is the
//!   string itself, of an array the text of its elements, of an object the
//!   text of its `text`, `content` and `parts` members, and of anything else
//!   nothing.
//! * prompt tokens `P = max(1, ceil(T / 4))`.
//! * completion tokens `C` = the first of `max_completion_tokens`,
//!   `max_tokens`, `max_output_tokens`, `generationConfig.maxOutputTokens`
//!   that is a non-negative integer, else 16. Always 0 for embeddings.
//! * request headers `x-mock-prompt-tokens: N` / `x-mock-completion-tokens: N`
//!   override `P` / `C`.
//!
//! Every LLM response carries `x-mock-usage: P,C` (unless `x-mock-no-usage`),
//! and every counted response carries `x-mock-request-count: N`.

use serde_json::{json, Map, Value};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

const USAGE: &str = "usage: mock-llm [--listen ADDR] [--quiet] [--fixtures DIR]\n\
  --listen ADDR   address to bind (default 127.0.0.1:0; port 0 picks a free port)\n\
  --quiet, -q     do not log requests to stderr\n\
  --fixtures DIR  recorded responses served by `x-mock-fixture: NAME` (DIR/NAME.body, DIR/NAME.json);\n\
                  default: the MOCK_LLM_FIXTURES environment variable\n\
prints `listening on IP:PORT` on stdout once bound; runs until killed\n";

/// Largest accepted request body (larger ones get 413).
const MAX_BODY: usize = 8 * 1024 * 1024;
/// Largest accepted request line + header block (larger ones get 431).
const MAX_HEAD: usize = 64 * 1024;
/// Most header fields accepted in one request.
const MAX_HEADERS: usize = 256;
/// The echo response carries at most this many bytes of the request body.
const ECHO_BODY_LIMIT: usize = 64 * 1024;
/// Completion tokens when the request names no maximum.
const DEFAULT_COMPLETION_TOKENS: u64 = 16;
/// Content delta events in a stream by default.
const DEFAULT_STREAM_CHUNKS: u64 = 5;
/// Pause between stream chunks by default, so that Envoy forwards them separately.
const DEFAULT_CHUNK_DELAY_MS: u64 = 2;
/// At most this many "tok" words of content are generated (usage is unaffected).
const MAX_CONTENT_TOKENS: u64 = 65_536;
/// Fixed `created` timestamp, for deterministic bodies.
const CREATED: u64 = 1_700_000_000;
/// Name of the field `x-mock-body-bytes` adds to pad JSON bodies.
const PADDING_FIELD: &str = "mock_padding";

/// Requests served (every parsed request except the `/__mock/*` control ones).
static REQUESTS: AtomicU64 = AtomicU64::new(0);
/// The directory of recorded responses (`--fixtures`), set once at start.
static FIXTURES: OnceLock<Option<PathBuf>> = OnceLock::new();
/// Bodies up to this size are written one byte per chunk by `x-mock-split: awkward`.
const AWKWARD_BYTEWISE_MAX: usize = 1024;
/// Most cut points of `x-mock-split: random:SEED`.
const RANDOM_CUTS: usize = 64;

fn main() -> ExitCode {
    let cfg = match Config::from_args(std::env::args().skip(1)) {
        Ok(Some(cfg)) => cfg,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = write!(io::stderr(), "mock-llm: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let _ = FIXTURES.set(cfg.fixtures.clone().or_else(|| std::env::var_os("MOCK_LLM_FIXTURES").map(PathBuf::from)));
    let listener = match TcpListener::bind(&cfg.listen) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(io::stderr(), "mock-llm: cannot listen on {}: {e}", cfg.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            let _ = writeln!(io::stderr(), "mock-llm: local_addr: {e}");
            return ExitCode::FAILURE;
        }
    };
    {
        let mut out = io::stdout().lock();
        if writeln!(out, "listening on {addr}").and_then(|()| out.flush()).is_err() {
            return ExitCode::FAILURE;
        }
    }
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let quiet = cfg.quiet;
                // If the thread cannot be spawned the stream is dropped (closed).
                let _ =
                    thread::Builder::new().name("mock-llm-conn".into()).spawn(move || serve_connection(stream, quiet));
            }
            Err(e) => {
                if !cfg.quiet {
                    let _ = writeln!(io::stderr(), "mock-llm: accept: {e}");
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    ExitCode::SUCCESS
}

struct Config {
    listen: String,
    quiet: bool,
    fixtures: Option<PathBuf>,
}

impl Config {
    /// `Ok(None)` means `--help` was asked for.
    fn from_args(args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
        let mut cfg = Config { listen: "127.0.0.1:0".to_string(), quiet: false, fixtures: None };
        let mut args = args;
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--listen" | "-l" => {
                    cfg.listen = args.next().ok_or("--listen needs an address")?;
                }
                "--quiet" | "-q" => cfg.quiet = true,
                "--fixtures" => {
                    cfg.fixtures = Some(PathBuf::from(args.next().ok_or("--fixtures needs a directory")?));
                }
                "--help" | "-h" => return Ok(None),
                other => {
                    if let Some(addr) = other.strip_prefix("--listen=") {
                        cfg.listen = addr.to_string();
                    } else if let Some(dir) = other.strip_prefix("--fixtures=") {
                        cfg.fixtures = Some(PathBuf::from(dir));
                    } else {
                        return Err(format!("unknown argument {other:?}"));
                    }
                }
            }
        }
        Ok(Some(cfg))
    }
}

// ---------------------------------------------------------------------------
// HTTP/1.1 request parsing
// ---------------------------------------------------------------------------

/// Why a request could not be read.
enum HttpError {
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

enum LineError {
    Io,
    TooLong,
}

struct Request {
    method: String,
    /// The request target exactly as received (path and query).
    target: String,
    http10: bool,
    /// Header fields in order, names lower-cased, values trimmed.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.header_values(name).any(|v| v.eq_ignore_ascii_case(token))
    }

    fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target.as_str(), |(p, _)| p)
    }

    fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    fn keep_alive(&self) -> bool {
        if self.http10 {
            self.has_token("connection", "keep-alive")
        } else {
            !self.has_token("connection", "close")
        }
    }
}

/// Reads one line (up to and including `\n`) of at most `max` bytes.
/// `Ok(None)` at end of input (a partial line at EOF is discarded).
fn read_line(r: &mut impl BufRead, max: usize) -> Result<Option<Vec<u8>>, LineError> {
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

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Reads a request line and header block. `Ok(None)` on a clean EOF.
fn read_head(r: &mut impl BufRead) -> Result<Option<Request>, HttpError> {
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

fn send_continue(w: &mut impl Write) -> Result<(), HttpError> {
    w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    w.flush()?;
    Ok(())
}

fn too_large() -> HttpError {
    HttpError::Reply(413, format!("request body larger than {MAX_BODY} bytes"))
}

/// Reads the request body framed by Content-Length or chunked encoding.
fn read_body(r: &mut impl BufRead, w: &mut impl Write, req: &Request) -> Result<Vec<u8>, HttpError> {
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

fn read_chunked(r: &mut impl BufRead) -> Result<Vec<u8>, HttpError> {
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

// ---------------------------------------------------------------------------
// Connection handling and response writing
// ---------------------------------------------------------------------------

fn serve_connection(stream: TcpStream, quiet: bool) {
    let _ = stream.set_nodelay(true);
    let Ok(mut w) = stream.try_clone() else {
        return;
    };
    let mut r = BufReader::with_capacity(16 * 1024, stream);
    loop {
        let mut req = match read_head(&mut r) {
            Ok(Some(req)) => req,
            Ok(None) | Err(HttpError::Close) => return,
            Err(HttpError::Reply(status, msg)) => return reject(&mut r, &mut w, status, &msg),
        };
        match read_body(&mut r, &mut w, &req) {
            Ok(body) => req.body = body,
            Err(HttpError::Close) => return,
            Err(HttpError::Reply(status, msg)) => return reject(&mut r, &mut w, status, &msg),
        }
        let keep_alive = req.keep_alive();
        let reply = handle(&req);
        if !quiet {
            let _ = writeln!(io::stderr(), "mock-llm: {} {} -> {}{}", req.method, req.target, reply.status, reply.note);
        }
        match write_reply(&mut w, &req, reply, keep_alive) {
            Ok(true) => {}
            // Error (client went away) or the connection is not to be reused.
            Ok(false) | Err(_) => return,
        }
    }
}

/// Answers an unreadable request with an error, then closes the connection
/// after draining (briefly) what the client still sends, so that the client
/// sees the answer rather than a reset.
fn reject(r: &mut BufReader<TcpStream>, w: &mut TcpStream, status: u16, msg: &str) {
    let body = error_body("invalid_request_error", msg);
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    if w.write_all(head.as_bytes()).and_then(|()| w.write_all(&body)).and_then(|()| w.flush()).is_err() {
        return;
    }
    let _ = w.shutdown(Shutdown::Write);
    let _ = r.get_ref().set_read_timeout(Some(Duration::from_millis(500)));
    let mut sink = [0u8; 16 * 1024];
    let mut drained = 0usize;
    while drained < 2 * MAX_BODY {
        match r.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

enum Body {
    /// A complete body, sent with Content-Length (or chunked with `x-mock-split`).
    Full(Vec<u8>),
    /// Stream events, each written as its own chunk (unless `x-mock-split`).
    Stream(Vec<Vec<u8>>),
}

struct Reply {
    status: u16,
    content_type: String,
    headers: Vec<(&'static str, String)>,
    body: Body,
    delay_ms: u64,
    chunk_delay_ms: u64,
    split: Option<Split>,
    abort_after: Option<usize>,
    /// Extra text for the request log line.
    note: String,
}

impl Reply {
    fn json(status: u16, value: &Value) -> Reply {
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

    fn stream(content_type: &str, events: Vec<Vec<u8>>) -> Reply {
        Reply { content_type: content_type.to_string(), body: Body::Stream(events), ..Reply::json(200, &Value::Null) }
    }

    fn error(status: u16, kind: &str, msg: &str) -> Reply {
        Reply {
            body: Body::Full(error_body(kind, msg)),
            note: format!(" ({msg})"),
            ..Reply::json(status, &Value::Null)
        }
    }
}

/// An error body understood by both OpenAI and Anthropic style clients.
fn error_body(kind: &str, msg: &str) -> Vec<u8> {
    json!({"type": "error", "error": {"type": kind, "message": msg}}).to_string().into_bytes()
}

fn reason(status: u16) -> &'static str {
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
fn write_reply(w: &mut TcpStream, req: &Request, reply: Reply, keep_alive: bool) -> io::Result<bool> {
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

/// How `x-mock-split` cuts a body into HTTP chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Split {
    /// Pieces of exactly N bytes (the last may be shorter).
    Bytes(usize),
    /// Cut where parsers go wrong: inside every CRLF, inside every multi-byte UTF-8 sequence,
    /// in the middle of every line, after every `data:` and at every line start (so a blank
    /// line comes alone); bodies up to `AWKWARD_BYTEWISE_MAX` bytes one byte at a time.
    Awkward,
    /// Up to `RANDOM_CUTS` cuts at positions drawn from this seed (xorshift64*).
    Random(u64),
}

impl Split {
    fn parse(v: &str) -> Result<Split, String> {
        let bad = || format!("invalid x-mock-split: {v:?} (expected 1..=16777216, `awkward` or `random:SEED`)");
        if v.eq_ignore_ascii_case("awkward") {
            return Ok(Split::Awkward);
        }
        if let Some(seed) = v.strip_prefix("random:") {
            return seed.parse::<u64>().map(Split::Random).map_err(|_| bad());
        }
        match v.parse::<usize>() {
            Ok(n) if (1..=1 << 24).contains(&n) => Ok(Split::Bytes(n)),
            _ => Err(bad()),
        }
    }

    /// Where to cut `bytes` (sorted, distinct, strictly inside).
    fn cuts(self, bytes: &[u8]) -> Vec<usize> {
        let len = bytes.len();
        let mut cuts: Vec<usize> = match self {
            Split::Bytes(n) => (n.max(1)..len).step_by(n.max(1)).collect(),
            Split::Awkward if len <= AWKWARD_BYTEWISE_MAX => (1..len).collect(),
            Split::Awkward => awkward_cuts(bytes),
            Split::Random(seed) => {
                let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
                (0..RANDOM_CUTS.min(len.saturating_sub(1)))
                    .map(|_| {
                        state ^= state >> 12;
                        state ^= state << 25;
                        state ^= state >> 27;
                        let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
                        1 + (r % (len as u64 - 1)) as usize
                    })
                    .collect()
            }
        };
        cuts.retain(|&c| c > 0 && c < len);
        cuts.sort_unstable();
        cuts.dedup();
        cuts
    }
}

fn awkward_cuts(bytes: &[u8]) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut line_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            cuts.push(i + 1); // between '\r' and '\n'
        }
        if (0xc0..0xf8).contains(&b) {
            cuts.push(i + 1); // after the lead byte of a UTF-8 sequence
        }
        if i == line_start && bytes[i..].starts_with(b"data:") {
            cuts.push(i + 5);
        }
        if b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
            cuts.push((line_start + i) / 2); // the middle of the line
            cuts.push(i + 1); // the next line's start
            line_start = i + 1;
        }
    }
    cuts.push((line_start + bytes.len()) / 2);
    cuts
}

fn split_pieces(bytes: &[u8], split: Split) -> Vec<Vec<u8>> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for cut in split.cuts(bytes).into_iter().chain([bytes.len()]) {
        pieces.push(bytes[start..cut].to_vec());
        start = cut;
    }
    pieces
}

// ---------------------------------------------------------------------------
// Request handling
// ---------------------------------------------------------------------------

/// The `x-mock-*` request headers.
struct MockOpts {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    status: Option<u16>,
    delay_ms: u64,
    chunk_delay_ms: u64,
    split: Option<Split>,
    no_usage: bool,
    stream_chunks: u64,
    body_bytes: Option<usize>,
    abort_after: Option<usize>,
}

impl MockOpts {
    fn from_request(req: &Request) -> Result<MockOpts, String> {
        let num = |name: &str, min: u64, max: u64| -> Result<Option<u64>, String> {
            let Some(v) = req.header(name) else {
                return Ok(None);
            };
            match v.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(format!("invalid {name}: {v:?} (expected an integer in {min}..={max})")),
            }
        };
        let size = |v: Option<u64>| v.and_then(|n| usize::try_from(n).ok());
        const TOKENS_MAX: u64 = 1_000_000_000_000;
        Ok(MockOpts {
            prompt_tokens: num("x-mock-prompt-tokens", 0, TOKENS_MAX)?,
            completion_tokens: num("x-mock-completion-tokens", 0, TOKENS_MAX)?,
            status: num("x-mock-status", 200, 599)?.and_then(|s| u16::try_from(s).ok()),
            delay_ms: num("x-mock-delay-ms", 0, 600_000)?.unwrap_or(0),
            chunk_delay_ms: num("x-mock-chunk-delay-ms", 0, 60_000)?.unwrap_or(DEFAULT_CHUNK_DELAY_MS),
            split: req.header("x-mock-split").map(Split::parse).transpose()?,
            no_usage: req.header("x-mock-no-usage").is_some_and(|v| !(v == "0" || v.eq_ignore_ascii_case("false"))),
            stream_chunks: num("x-mock-stream-chunks", 0, 10_000)?.unwrap_or(DEFAULT_STREAM_CHUNKS),
            body_bytes: size(num("x-mock-body-bytes", 0, 1 << 26)?),
            abort_after: size(num("x-mock-abort-after", 0, 1_000_000)?),
        })
    }
}

fn handle(req: &Request) -> Reply {
    match (req.method.as_str(), req.path()) {
        ("GET", "/__mock/stats") => return Reply::json(200, &json!({"requests": REQUESTS.load(Ordering::SeqCst)})),
        ("POST", "/__mock/reset") => {
            REQUESTS.store(0, Ordering::SeqCst);
            return Reply::json(200, &json!({"requests": 0}));
        }
        _ => {}
    }
    let n = REQUESTS.fetch_add(1, Ordering::SeqCst) + 1;
    let mut reply = match MockOpts::from_request(req) {
        Ok(opts) => {
            let mut reply = route(req, n, &opts);
            reply.delay_ms = opts.delay_ms;
            reply.chunk_delay_ms = opts.chunk_delay_ms;
            reply.split = opts.split;
            reply.abort_after = opts.abort_after;
            if let (Some(target), Body::Full(body)) = (opts.body_bytes, &mut reply.body) {
                pad_json(body, target);
            }
            reply
        }
        Err(msg) => Reply::error(400, "invalid_request_error", &msg),
    };
    reply.headers.push(("x-mock-request-count", n.to_string()));
    reply
}

/// Grows a serialized JSON object to exactly `target` bytes by adding a
/// `"mock_padding":"xxx…"` member, when `target` leaves room for it.
fn pad_json(body: &mut Vec<u8>, target: usize) {
    if body.len() < 2 || body.last() != Some(&b'}') {
        return;
    }
    let empty = body.len() == 2;
    let overhead = PADDING_FIELD.len() + 5 + usize::from(!empty);
    let Some(fill) = target.checked_sub(body.len() + overhead) else {
        return;
    };
    body.pop();
    if !empty {
        body.push(b',');
    }
    body.extend_from_slice(format!("\"{PADDING_FIELD}\":\"").as_bytes());
    body.resize(body.len() + fill, b'x');
    body.extend_from_slice(b"\"}");
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Chat,
    Completions,
    Responses,
    Embeddings,
    Messages,
    Gemini,
    GeminiStream,
}

impl Api {
    fn detect(req: &Request) -> Option<Api> {
        if req.method != "POST" {
            return None;
        }
        let path = req.path();
        if path.contains(":streamGenerateContent") {
            Some(Api::GeminiStream)
        } else if path.contains(":generateContent") {
            Some(Api::Gemini)
        } else if path.ends_with("/chat/completions") {
            Some(Api::Chat)
        } else if path.ends_with("/completions") {
            Some(Api::Completions)
        } else if path.ends_with("/responses") {
            Some(Api::Responses)
        } else if path.ends_with("/embeddings") {
            Some(Api::Embeddings)
        } else if path.ends_with("/messages") {
            Some(Api::Messages)
        } else {
            None
        }
    }
}

fn route(req: &Request, n: u64, opts: &MockOpts) -> Reply {
    if let Some(status) = opts.status.filter(|&s| s >= 400) {
        return Reply::error(status, "mock_forced_status", &format!("status {status} forced by x-mock-status"));
    }
    // `x-mock-echo`: show what an LLM endpoint would have received.
    let forced_echo = req.header("x-mock-echo").is_some();
    let mut reply = match (req.header("x-mock-fixture"), Api::detect(req).filter(|_| !forced_echo)) {
        (Some(name), _) => fixture(name),
        (None, Some(api)) => llm(req, api, n, opts),
        (None, None) => echo(req),
    };
    if let Some(status) = opts.status {
        if reply.status == 200 {
            reply.status = status;
        }
    }
    reply
}

/// A recorded response, verbatim: `NAME.body` with the `content_type` of `NAME.json`. An
/// event stream is written one event per HTTP chunk (unless `x-mock-split`).
fn fixture(name: &str) -> Reply {
    let Some(dir) = FIXTURES.get().and_then(Option::as_ref) else {
        return Reply::error(
            500,
            "mock_fixture_error",
            "x-mock-fixture needs mock-llm --fixtures DIR (or MOCK_LLM_FIXTURES)",
        );
    };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Reply::error(400, "mock_fixture_error", &format!("invalid fixture name {name:?}"));
    }
    let (meta, body) =
        match (std::fs::read(dir.join(format!("{name}.json"))), std::fs::read(dir.join(format!("{name}.body")))) {
            (Ok(meta), Ok(body)) => (meta, body),
            _ => {
                let msg = format!("no fixture {name:?} in {}", dir.display());
                return Reply::error(404, "mock_fixture_not_found", &msg);
            }
        };
    let meta: Value = serde_json::from_slice(&meta).unwrap_or(Value::Null);
    let Some(content_type) = meta.get("content_type").and_then(Value::as_str) else {
        return Reply::error(500, "mock_fixture_error", &format!("{name}.json has no content_type"));
    };
    let mut reply = if content_type.to_ascii_lowercase().starts_with("text/event-stream") {
        Reply::stream(content_type, sse_events(&body))
    } else {
        Reply { content_type: content_type.to_string(), body: Body::Full(body), ..Reply::json(200, &Value::Null) }
    };
    reply.note = format!(" fixture={name}");
    reply
}

/// A stream cut after each blank line (each event with its line ends).
fn sse_events(body: &[u8]) -> Vec<Vec<u8>> {
    let mut events = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < body.len() {
        let sep = [&b"\r\n\r\n"[..], b"\n\n", b"\r\r"].into_iter().find(|sep| body[i..].starts_with(sep));
        match sep {
            Some(sep) => {
                i += sep.len();
                events.push(body[start..i].to_vec());
                start = i;
            }
            None => i += 1,
        }
    }
    if start < body.len() {
        events.push(body[start..].to_vec());
    }
    events
}

fn echo(req: &Request) -> Reply {
    let mut headers = Map::new();
    for (name, value) in &req.headers {
        match headers.get_mut(name) {
            Some(Value::String(s)) => {
                s.push_str(", ");
                s.push_str(value);
            }
            _ => {
                headers.insert(name.clone(), Value::String(value.clone()));
            }
        }
    }
    let shown = &req.body[..req.body.len().min(ECHO_BODY_LIMIT)];
    let parsed = serde_json::from_slice::<Value>(&req.body).unwrap_or(Value::Null);
    Reply::json(
        200,
        &json!({
            "path": req.target,
            "method": req.method,
            "headers": headers,
            "body": String::from_utf8_lossy(shown),
            "body_bytes": req.body.len(),
            "json": parsed,
        }),
    )
}

// ---------------------------------------------------------------------------
// Token counting
// ---------------------------------------------------------------------------

/// Fields whose text counts toward the prompt, in every API.
const PROMPT_FIELDS: [&str; 7] =
    ["messages", "prompt", "input", "instructions", "system", "contents", "systemInstruction"];

/// Byte length of the text in `v` (see the module documentation).
fn text_bytes(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.len() as u64,
        Value::Array(items) => items.iter().map(text_bytes).sum(),
        Value::Object(obj) => ["text", "content", "parts"].iter().filter_map(|k| obj.get(*k)).map(text_bytes).sum(),
        _ => 0,
    }
}

fn prompt_tokens(body: &Value) -> u64 {
    let bytes: u64 = PROMPT_FIELDS.iter().filter_map(|f| body.get(*f)).map(text_bytes).sum();
    bytes.div_ceil(4).max(1)
}

fn completion_tokens(body: &Value) -> u64 {
    ["/max_completion_tokens", "/max_tokens", "/max_output_tokens", "/generationConfig/maxOutputTokens"]
        .iter()
        .find_map(|p| body.pointer(p).and_then(Value::as_u64))
        .unwrap_or(DEFAULT_COMPLETION_TOKENS)
}

// ---------------------------------------------------------------------------
// LLM responses
// ---------------------------------------------------------------------------

/// Everything a response builder needs.
struct Gen {
    id: u64,
    model: String,
    prompt: u64,
    completion: u64,
    usage: bool,
    chunks: u64,
    include_usage: bool,
}

impl Gen {
    /// The full completion text: `tok tok tok …`, `completion` words (capped).
    fn content(&self) -> String {
        words(0, self.completion)
    }

    /// The completion split into `chunks` deltas: (text, tokens in it).
    /// Tokens are spread evenly, the first deltas taking the remainder.
    fn deltas(&self) -> Vec<(String, u64)> {
        let n = self.chunks;
        if n == 0 {
            return Vec::new();
        }
        let (base, rem) = (self.completion / n, self.completion % n);
        let mut start = 0;
        (0..n)
            .map(|i| {
                let k = base + u64::from(i < rem);
                let text = words(start, k);
                start += k;
                (text, k)
            })
            .collect()
    }

    fn total(&self) -> u64 {
        self.prompt.saturating_add(self.completion)
    }
}

/// Words `start..start+count` of the content: "tok", then " tok" each.
fn words(start: u64, count: u64) -> String {
    let end = start.saturating_add(count).min(MAX_CONTENT_TOKENS);
    let mut s = String::new();
    for i in start..end {
        s.push_str(if i == 0 { "tok" } else { " tok" });
    }
    s
}

fn sse_data(v: &Value) -> Vec<u8> {
    format!("data: {v}\n\n").into_bytes()
}

fn sse_event(name: &str, v: &Value) -> Vec<u8> {
    format!("event: {name}\ndata: {v}\n\n").into_bytes()
}

/// Sets `obj[key] = value` when `present`, removes the key otherwise.
fn set_or_remove(obj: &mut Value, key: &str, present: bool, value: Value) {
    if let Some(map) = obj.as_object_mut() {
        if present {
            map.insert(key.to_string(), value);
        } else {
            map.remove(key);
        }
    }
}

fn llm(req: &Request, api: Api, n: u64, opts: &MockOpts) -> Reply {
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return Reply::error(400, "invalid_request_error", "request body must be a JSON object"),
        Err(e) => return Reply::error(400, "invalid_request_error", &format!("malformed JSON request body: {e}")),
    };
    let model = match api {
        Api::Gemini | Api::GeminiStream => {
            let last = req.path().rsplit('/').next().unwrap_or_default();
            last.split(':').next().unwrap_or_default().to_string()
        }
        _ => body.get("model").and_then(Value::as_str).unwrap_or("mock-model").to_string(),
    };
    let g = Gen {
        id: n,
        model,
        prompt: opts.prompt_tokens.unwrap_or_else(|| prompt_tokens(&body)),
        completion: match api {
            Api::Embeddings => 0,
            _ => opts.completion_tokens.unwrap_or_else(|| completion_tokens(&body)),
        },
        usage: !opts.no_usage,
        chunks: opts.stream_chunks,
        include_usage: body.pointer("/stream_options/include_usage") == Some(&Value::Bool(true)),
    };
    let stream = match api {
        Api::GeminiStream => true,
        Api::Gemini | Api::Embeddings => false,
        _ => body.get("stream") == Some(&Value::Bool(true)),
    };
    let mut reply = match (api, stream) {
        (Api::Chat, false) => Reply::json(200, &chat_json(&g)),
        (Api::Chat, true) => Reply::stream("text/event-stream", chat_stream(&g)),
        (Api::Completions, false) => Reply::json(200, &completions_json(&g)),
        (Api::Completions, true) => Reply::stream("text/event-stream", completions_stream(&g)),
        (Api::Responses, false) => Reply::json(200, &responses_json(&g, true)),
        (Api::Responses, true) => Reply::stream("text/event-stream", responses_stream(&g)),
        (Api::Embeddings, _) => Reply::json(200, &embeddings_json(&g, &body)),
        (Api::Messages, false) => Reply::json(200, &messages_json(&g)),
        (Api::Messages, true) => Reply::stream("text/event-stream", messages_stream(&g)),
        (Api::Gemini, _) => Reply::json(200, &gemini_chunk(&g, &g.content(), g.completion, true)),
        (Api::GeminiStream, _) => {
            let sse = req.query().split('&').any(|kv| kv.eq_ignore_ascii_case("alt=sse"));
            if sse {
                Reply::stream("text/event-stream", gemini_stream_sse(&g))
            } else {
                Reply::stream("application/json", gemini_stream_array(&g))
            }
        }
    };
    if g.usage {
        reply.headers.push(("x-mock-usage", format!("{},{}", g.prompt, g.completion)));
    }
    reply.note = format!(" usage={},{}", g.prompt, g.completion);
    reply
}

fn openai_usage(g: &Gen) -> Value {
    json!({
        "prompt_tokens": g.prompt,
        "completion_tokens": g.completion,
        "total_tokens": g.total(),
    })
}

fn chat_json(g: &Gen) -> Value {
    let mut v = json!({
        "id": format!("chatcmpl-mock-{}", g.id),
        "object": "chat.completion",
        "created": CREATED,
        "model": g.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": g.content()},
            "logprobs": null,
            "finish_reason": "stop",
        }],
    });
    set_or_remove(&mut v, "usage", g.usage, openai_usage(g));
    v
}

fn chat_chunk(g: &Gen, choices: Value) -> Value {
    let mut v = json!({
        "id": format!("chatcmpl-mock-{}", g.id),
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": g.model,
        "choices": choices,
    });
    if g.include_usage && g.usage {
        // Like OpenAI: every chunk but the last carries `"usage": null`.
        set_or_remove(&mut v, "usage", true, Value::Null);
    }
    v
}

fn chat_stream(g: &Gen) -> Vec<Vec<u8>> {
    let mut events: Vec<Vec<u8>> = g
        .deltas()
        .into_iter()
        .enumerate()
        .map(|(i, (text, _))| {
            let delta = if i == 0 { json!({"role": "assistant", "content": text}) } else { json!({"content": text}) };
            sse_data(&chat_chunk(g, json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": null}])))
        })
        .collect();
    events
        .push(sse_data(&chat_chunk(g, json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"}]))));
    if g.include_usage && g.usage {
        let mut last = chat_chunk(g, json!([]));
        set_or_remove(&mut last, "usage", true, openai_usage(g));
        events.push(sse_data(&last));
    }
    events.push(b"data: [DONE]\n\n".to_vec());
    events
}

fn completions_chunk(g: &Gen, object: &str, text: &str, finish: Value) -> Value {
    json!({
        "id": format!("cmpl-mock-{}", g.id),
        "object": object,
        "created": CREATED,
        "model": g.model,
        "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}],
    })
}

fn completions_json(g: &Gen) -> Value {
    let mut v = completions_chunk(g, "text_completion", &g.content(), json!("stop"));
    set_or_remove(&mut v, "usage", g.usage, openai_usage(g));
    v
}

fn completions_stream(g: &Gen) -> Vec<Vec<u8>> {
    let with_usage = g.include_usage && g.usage;
    let chunk = |text: &str, finish: Value| {
        let mut v = completions_chunk(g, "text_completion", text, finish);
        if with_usage {
            set_or_remove(&mut v, "usage", true, Value::Null);
        }
        sse_data(&v)
    };
    let mut events: Vec<Vec<u8>> = g.deltas().iter().map(|(text, _)| chunk(text, Value::Null)).collect();
    events.push(chunk("", json!("stop")));
    if with_usage {
        let mut last = completions_chunk(g, "text_completion", "", Value::Null);
        if let Some(map) = last.as_object_mut() {
            map.insert("choices".into(), json!([]));
            map.insert("usage".into(), openai_usage(g));
        }
        events.push(sse_data(&last));
    }
    events.push(b"data: [DONE]\n\n".to_vec());
    events
}

fn responses_message(g: &Gen, text: &str, status: &str) -> Value {
    json!({
        "type": "message",
        "id": format!("msg_mock_{}", g.id),
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    })
}

/// The Responses API object; `done` selects the completed (vs in-progress) form.
fn responses_json(g: &Gen, done: bool) -> Value {
    let mut v = json!({
        "id": format!("resp_mock_{}", g.id),
        "object": "response",
        "created_at": CREATED,
        "status": if done { "completed" } else { "in_progress" },
        "model": g.model,
        "output": if done { json!([responses_message(g, &g.content(), "completed")]) } else { json!([]) },
    });
    if done {
        set_or_remove(
            &mut v,
            "usage",
            g.usage,
            json!({
                "input_tokens": g.prompt,
                "output_tokens": g.completion,
                "total_tokens": g.total(),
            }),
        );
    } else {
        set_or_remove(&mut v, "usage", true, Value::Null);
    }
    v
}

fn responses_stream(g: &Gen) -> Vec<Vec<u8>> {
    let mut seq = 0u64;
    let mut ev = |name: &str, mut v: Value| {
        if let Some(map) = v.as_object_mut() {
            map.insert("type".into(), json!(name));
            map.insert("sequence_number".into(), json!(seq));
        }
        seq += 1;
        sse_event(name, &v)
    };
    let item_id = format!("msg_mock_{}", g.id);
    let content = g.content();
    let mut events = vec![
        ev("response.created", json!({"response": responses_json(g, false)})),
        ev("response.in_progress", json!({"response": responses_json(g, false)})),
        ev("response.output_item.added", json!({"output_index": 0, "item": responses_message(g, "", "in_progress")})),
        ev(
            "response.content_part.added",
            json!({"item_id": item_id, "output_index": 0, "content_index": 0,
                   "part": {"type": "output_text", "text": "", "annotations": []}}),
        ),
    ];
    for (text, _) in g.deltas() {
        events.push(ev(
            "response.output_text.delta",
            json!({"item_id": item_id, "output_index": 0, "content_index": 0, "delta": text}),
        ));
    }
    events.push(ev(
        "response.output_text.done",
        json!({"item_id": item_id, "output_index": 0, "content_index": 0, "text": content}),
    ));
    events.push(ev(
        "response.content_part.done",
        json!({"item_id": item_id, "output_index": 0, "content_index": 0,
               "part": {"type": "output_text", "text": content, "annotations": []}}),
    ));
    events.push(ev(
        "response.output_item.done",
        json!({"output_index": 0, "item": responses_message(g, &content, "completed")}),
    ));
    events.push(ev("response.completed", json!({"response": responses_json(g, true)})));
    events
}

fn embeddings_json(g: &Gen, body: &Value) -> Value {
    let inputs = match body.get("input") {
        Some(Value::Array(items)) if items.iter().all(|i| !i.is_number()) => items.len(),
        _ => 1,
    };
    let data: Vec<Value> = (0..inputs)
        .map(|i| {
            json!({
                "object": "embedding",
                "index": i,
                "embedding": [0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875],
            })
        })
        .collect();
    let mut v = json!({"object": "list", "data": data, "model": g.model});
    set_or_remove(&mut v, "usage", g.usage, json!({"prompt_tokens": g.prompt, "total_tokens": g.prompt}));
    v
}

fn messages_json(g: &Gen) -> Value {
    let mut v = json!({
        "id": format!("msg_mock_{}", g.id),
        "type": "message",
        "role": "assistant",
        "model": g.model,
        "content": [{"type": "text", "text": g.content()}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
    });
    set_or_remove(&mut v, "usage", g.usage, json!({"input_tokens": g.prompt, "output_tokens": g.completion}));
    v
}

fn messages_stream(g: &Gen) -> Vec<Vec<u8>> {
    let mut message = json!({
        "id": format!("msg_mock_{}", g.id),
        "type": "message",
        "role": "assistant",
        "model": g.model,
        "content": [],
        "stop_reason": null,
        "stop_sequence": null,
    });
    set_or_remove(&mut message, "usage", g.usage, json!({"input_tokens": g.prompt, "output_tokens": 1}));
    let mut events = vec![
        sse_event("message_start", &json!({"type": "message_start", "message": message})),
        sse_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
        ),
        sse_event("ping", &json!({"type": "ping"})),
    ];
    for (text, _) in g.deltas() {
        events.push(sse_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": text}}),
        ));
    }
    events.push(sse_event("content_block_stop", &json!({"type": "content_block_stop", "index": 0})));
    let mut delta = json!({
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": null},
    });
    set_or_remove(&mut delta, "usage", g.usage, json!({"output_tokens": g.completion}));
    events.push(sse_event("message_delta", &delta));
    events.push(sse_event("message_stop", &json!({"type": "message_stop"})));
    events
}

/// A Gemini `GenerateContentResponse` carrying `text`, with usage counting
/// `completed` candidate tokens so far.
fn gemini_chunk(g: &Gen, text: &str, completed: u64, last: bool) -> Value {
    let mut candidate = json!({
        "content": {"parts": [{"text": text}], "role": "model"},
        "index": 0,
    });
    if last {
        set_or_remove(&mut candidate, "finishReason", true, json!("STOP"));
    }
    let mut v = json!({
        "candidates": [candidate],
        "modelVersion": g.model,
        "responseId": format!("mock-{}", g.id),
    });
    set_or_remove(
        &mut v,
        "usageMetadata",
        g.usage,
        json!({
            "promptTokenCount": g.prompt,
            "candidatesTokenCount": completed,
            "totalTokenCount": g.prompt.saturating_add(completed),
        }),
    );
    v
}

/// Gemini stream chunks; always at least one (the last carries the final usage).
fn gemini_chunks(g: &Gen) -> Vec<Value> {
    let mut deltas = g.deltas();
    if deltas.is_empty() {
        deltas.push((g.content(), g.completion));
    }
    let count = deltas.len();
    let mut done = 0u64;
    deltas
        .into_iter()
        .enumerate()
        .map(|(i, (text, k))| {
            done += k;
            gemini_chunk(g, &text, done, i + 1 == count)
        })
        .collect()
}

/// `?alt=sse`: Server-Sent Events, CRLF line endings as Google sends them.
fn gemini_stream_sse(g: &Gen) -> Vec<Vec<u8>> {
    gemini_chunks(g).iter().map(|v| format!("data: {v}\r\n\r\n").into_bytes()).collect()
}

/// Without `alt=sse`: one JSON array, written element by element.
fn gemini_stream_array(g: &Gen) -> Vec<Vec<u8>> {
    let mut pieces: Vec<Vec<u8>> = gemini_chunks(g)
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{}{v}", if i == 0 { "[" } else { ",\r\n" }).into_bytes())
        .collect();
    pieces.push(b"]".to_vec());
    pieces
}
