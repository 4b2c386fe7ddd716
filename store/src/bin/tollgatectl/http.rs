//! A minimal blocking HTTP/1.1 client over `std::net::TcpStream` (one request per connection,
//! `http://` only: tollgate-store serves plain HTTP), so tollgatectl needs no HTTP crate.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest response accepted.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Where the store is: `http://host:port[/prefix]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `host:port`, as written (also the Host header).
    pub authority: String,
    /// Path prefix without a trailing slash ("" for none).
    pub prefix: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some((scheme, _)) => return Err(format!("{url}: only http:// URLs are supported, not {scheme}://")),
            None => url,
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{url}: expected http://HOST:PORT"));
        }
        let authority = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Target { authority, prefix: path.trim_end_matches('/').to_string() })
    }
}

#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Send one request; `path` includes the query string.
pub fn send(target: &Target, method: &str, path: &str, token: &str, body: Option<&str>) -> Result<Response, String> {
    let fail = |e: std::io::Error| format!("cannot reach the store at http://{}: {e}", target.authority);
    let addrs: Vec<_> = target.authority.to_socket_addrs().map_err(fail)?.collect();
    let mut last = None;
    let mut stream = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, CONNECT_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut stream = match (stream, last) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(fail(e)),
        (None, None) => return Err(format!("cannot resolve {}", target.authority)),
    };
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(fail)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(fail)?;
    let mut head = format!(
        "{method} {}{path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\nauthorization: Bearer {token}\r\n\
         accept: application/json\r\nuser-agent: tollgatectl/{}\r\n",
        target.prefix,
        target.authority,
        env!("CARGO_PKG_VERSION")
    );
    let body = body.unwrap_or("");
    if !body.is_empty() || method != "GET" {
        head.push_str(&format!("content-type: application/json\r\ncontent-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).map_err(fail)?;
    stream.write_all(body.as_bytes()).map_err(fail)?;
    read_response(&mut BufReader::new(stream)).map_err(|e| format!("bad answer from http://{}: {e}", target.authority))
}

fn read_response(r: &mut impl BufRead) -> std::io::Result<Response> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("not HTTP: {:?}", line.trim_end())))?;
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            break;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = v.parse::<usize>().ok();
            } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad(format!("bad chunk size {:?}", line.trim())))?;
            if size == 0 {
                break;
            }
            if body.len() + size > MAX_RESPONSE_BYTES {
                return Err(bad("response too large".into()));
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(n) = length {
        if n > MAX_RESPONSE_BYTES {
            return Err(bad("response too large".into()));
        }
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if status != 204 && status != 304 {
        r.take(MAX_RESPONSE_BYTES as u64).read_to_end(&mut body)?;
    }
    Ok(Response { status, body })
}

/// Percent-encode everything but the unreserved characters (RFC 3986).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?a=1&b=x%20y` from the pairs whose value is present ("" when none).
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> =
        pairs.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v)))).collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}
