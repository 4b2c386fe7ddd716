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
//!
//! Modules: `cli` (arguments), `http` (request parsing), `connection` (one client),
//! `routes` (which answer), `options` (the `x-mock-*` headers), `tokens` (token counting),
//! `llm` (generated answers) with `openai`, `anthropic` and `gemini`, `fixtures` (recorded
//! answers), `reply` (writing a response) and `split` (`x-mock-split`).

mod anthropic;
mod cli;
mod connection;
mod fixtures;
mod gemini;
mod http;
mod llm;
mod openai;
mod options;
mod reply;
mod routes;
mod split;
mod tokens;

use std::io::{self, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use cli::{Config, USAGE};
use connection::serve_connection;
use fixtures::FIXTURES;

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
