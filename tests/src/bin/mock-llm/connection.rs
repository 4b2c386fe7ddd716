//! One client connection: requests read, answered and logged in turn while the client keeps
//! the connection alive; an unreadable request is answered with an error, then the
//! connection is drained and closed.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use crate::http::{read_body, read_head, HttpError, MAX_BODY};
use crate::reply::{error_body, reason, write_reply};
use crate::routes::handle;

pub fn serve_connection(stream: TcpStream, quiet: bool) {
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
pub fn reject(r: &mut BufReader<TcpStream>, w: &mut TcpStream, status: u16, msg: &str) {
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
