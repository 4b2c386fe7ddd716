//! Pulls overrides and per-key limits from the store (`GET /v1/sync`) on the worker's tick,
//! with `If-None-Match` so an unchanged poll is a cheap 304. Each worker keeps its own copy
//! (no host call per request to read it) and keeps the last good copy when the store cannot
//! answer.

use super::{StoreAnswer, StoreCall};
use crate::config::StoreConfig;
use crate::engine::algorithm::Nanos;
use crate::overrides::Overrides;
use std::rc::Rc;

#[derive(Debug, Default)]
pub struct Poller {
    last_run: Nanos,
    in_flight: Option<u32>,
}

/// What an answer to a poll means.
#[derive(Debug)]
pub enum Polled {
    /// Not our call.
    NotOurs,
    /// 304: what we have is current.
    Unchanged,
    Changed(Rc<Overrides>),
    /// No answer, or one that could not be read: keep the last good copy.
    Failed,
}

impl Poller {
    /// The poll to send now, if it is time (`version`: the copy we have).
    pub fn due(&mut self, store: &StoreConfig, version: &str, now: Nanos) -> Option<StoreCall> {
        if self.in_flight.is_some() || now.saturating_sub(self.last_run) < store.poll_interval.as_nanos() {
            return None;
        }
        self.last_run = now;
        let call = StoreCall::new(store, "GET", "/v1/sync", None);
        Some(if version.is_empty() { call } else { call.with_header("if-none-match", format!("\"{version}\"")) })
    }

    pub fn sent(&mut self, token: u32) {
        self.in_flight = Some(token);
    }

    pub fn on_answer(&mut self, token: u32, answer: StoreAnswer) -> Polled {
        if self.in_flight != Some(token) {
            return Polled::NotOurs;
        }
        self.in_flight = None;
        match answer.status {
            Some(304) => Polled::Unchanged,
            Some(200) => Overrides::parse_sync(answer.body).map_or(Polled::Failed, |o| Polled::Changed(Rc::new(o))),
            _ => Polled::Failed,
        }
    }
}
