//! One request through Tollgate, callback by callback: decide on the headers (or buffer the
//! body a body rule needs and decide on it), rewrite what the decision asks (degrade, the
//! usage Tollgate needs), wait for the store when a global rule asks it, hold throttled
//! requests, add the rate-limit headers to the response, read its usage as it streams by
//! (withholding the usage chunk Tollgate caused), and settle every charge when the stream
//! ends, however it ends.

use super::failure_mode::{self, Fallback};
use super::{Host, StoreAnswer, StoreCall, Stream, Worker};
use crate::config::{Sync, Unit};
use crate::engine::algorithm::Decision;
use crate::global::lease;
use crate::global::{self, GlobalCheck, StoreFailure};
use crate::limiter::{AppliedRule, BodyPlan, Evaluation, Reply, Reservation, RuleOutcome, RuleStatus};
use crate::llm::{self, Forward, ResponseReader};
use crate::metrics::ProxyMetric;
use crate::request::Request;
use crate::response::Shape;

/// What the host does with the request after a callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Let it go on.
    Continue,
    /// Stop here: Tollgate answered it, buffers its body, or holds it until `Worker::tick`
    /// releases it or the store answers (`Flow::on_store_answer`).
    Pause,
}

/// Global rules waiting for the store.
#[derive(Debug, Default)]
struct PendingGlobal {
    checks: Vec<GlobalCheck>,
    local: Vec<AppliedRule>,
    token: Option<u32>,
    /// The call in flight asks for leases (batched) rather than a check (strict).
    leasing: bool,
}

/// One request's state.
#[derive(Default)]
pub struct Flow {
    /// The host's id of the stream (to hold and release it).
    id: u64,
    /// Held by a throttle rule, until the worker's tick releases it.
    held: bool,
    /// The body is being buffered for the decision; the headers are kept meanwhile.
    awaiting_body: Option<Vec<(String, String)>>,
    /// The shape of this request's error bodies (for answers decided after the store's).
    shape: Shape,
    /// Rate-limit headers to add to the response.
    response_headers: Vec<(&'static str, String)>,
    /// Local charges to settle when the stream ends.
    reservations: Vec<Reservation>,
    /// Tollgate added `stream_options.include_usage` (the client did not ask for usage).
    include_usage_added: bool,
    /// Reads the response's usage (and withholds the usage chunk Tollgate caused).
    usage: Option<ResponseReader>,
    /// Total tokens from the configured usage header.
    header_usage: Option<u64>,
    global: PendingGlobal,
    /// Global counters charged at the store (to settle or release there).
    global_charged: Vec<GlobalCheck>,
}

/// The core's view of a request whose headers the flow holds.
fn view<'a>(
    headers: &'a [(String, String)],
    peer: Option<&'a str>,
    body: Option<&'a serde_json::Value>,
) -> Request<'a> {
    let pseudo = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("");
    Request { method: pseudo(":method"), path: pseudo(":path"), headers, peer, body }
}

/// Pairs for a local reply.
fn pairs<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    headers.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

impl Flow {
    pub fn new(id: u64) -> Flow {
        Flow { id, ..Flow::default() }
    }

    /// Whether the store call `token` is this request's.
    pub fn awaits(&self, token: u32) -> bool {
        self.global.token == Some(token)
    }

    pub fn on_request_headers(&mut self, w: &Worker, host: &dyn Host, s: &mut dyn Stream, end_of_stream: bool) -> Step {
        let limiter = &w.limiter;
        if limiter.is_idle() {
            return Step::Continue; // nothing to limit: not even the headers are read
        }
        let mut headers = s.request_headers();
        if limiter.is_exempt(view(&headers, None, None).path) {
            return Step::Continue;
        }
        let plan = if end_of_stream { BodyPlan::default() } else { limiter.body_plan(&view(&headers, None, None)) };
        if !plan.buffer {
            return self.decide(w, host, s, &headers, None, 0);
        }
        // A rule that reads the body may apply: rules that need only the headers may deny now,
        // before the upstream sees anything; the decision follows the body.
        if let Some(step) = self.precheck(w, host, s, &headers) {
            return step;
        }
        if plan.reads_usage {
            // Usage is read from the response body: ask for it uncompressed.
            s.set_request_header("accept-encoding", None);
        }
        let hold = limiter.config.hold_headers;
        if plan.may_rewrite && !hold && s.set_request_header("content-length", None) {
            // The headers go on before the body is read: without a length the upstream gets
            // the body chunked, so a rewrite may change its size.
            headers.retain(|(k, _)| k != "content-length");
        }
        self.awaiting_body = Some(headers);
        if hold {
            Step::Pause // allow_on_headers_stop_iteration: the body still comes
        } else {
            Step::Continue
        }
    }

    pub fn on_request_body(
        &mut self,
        w: &Worker,
        host: &dyn Host,
        s: &mut dyn Stream,
        body_size: usize,
        end_of_stream: bool,
    ) -> Step {
        if self.awaiting_body.is_none() {
            return Step::Continue;
        }
        let cap = usize::try_from(w.limiter.config.max_body_bytes).unwrap_or(usize::MAX);
        if !end_of_stream && body_size <= cap {
            return Step::Pause; // the host buffers until the end of the body
        }
        let headers = self.awaiting_body.take().unwrap_or_default();
        let body = if body_size <= cap {
            s.request_body(body_size).and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        } else {
            None // Over the cap: body keys are missing, the request still goes through.
        };
        self.decide(w, host, s, &headers, body.as_ref(), body_size)
    }

    /// A body that ended with trailers: decide without it.
    pub fn on_request_trailers(&mut self, w: &Worker, host: &dyn Host, s: &mut dyn Stream) -> Step {
        match self.awaiting_body.take() {
            Some(headers) => self.decide(w, host, s, &headers, None, 0),
            None => Step::Continue,
        }
    }

    /// Decide with the headers (and the body, when buffered) and carry out the reply.
    fn decide(
        &mut self,
        w: &Worker,
        host: &dyn Host,
        s: &mut dyn Stream,
        headers: &[(String, String)],
        body: Option<&serde_json::Value>,
        body_size: usize,
    ) -> Step {
        let overrides = w.overrides();
        let peer = self.peer(w, s, &overrides);
        let req = view(headers, peer.as_deref(), body);
        let now = host.now();
        let can_hold = w.held.borrow().has_room();
        let eval = w.limiter.evaluate(host.shared(), &req, now, can_hold, &overrides);
        w.record(&eval);
        self.shape = eval.shape;
        let debug = w.limiter.config.debug.then(|| debug_line(w, &req, &eval));
        if matches!(eval.reply, Reply::Continue { .. }) {
            self.rewrite_request(w, s, &req, &eval, body_size);
        }
        self.reservations = eval.reservations;
        match eval.reply {
            Reply::Continue { headers } => {
                self.response_headers = headers;
                self.response_headers.extend(debug.map(|d| ("x-tollgate-rules", d)));
                if !eval.global.is_empty() {
                    return self.start_global(w, host, s, eval.global, eval.applied);
                }
                if eval.hold_ns > 0 {
                    w.held.borrow_mut().hold(self.id, now, eval.hold_ns);
                    w.tally.held();
                    self.held = true;
                    return Step::Pause;
                }
                Step::Continue
            }
            Reply::Deny { status, mut headers, body } => {
                headers.extend(debug.map(|d| ("x-tollgate-rules", d)));
                if s.send_reply(status, &pairs(&headers), body.as_bytes()) {
                    return Step::Pause;
                }
                log::warn!("cannot send the local reply (status {status})");
                Step::Continue
            }
        }
    }

    /// Before the body: answer now when the rules that need only the headers deny, and send a
    /// degrade's marker header with the headers. None: wait for the body.
    fn precheck(
        &mut self,
        w: &Worker,
        host: &dyn Host,
        s: &mut dyn Stream,
        headers: &[(String, String)],
    ) -> Option<Step> {
        let overrides = w.overrides();
        let peer = self.peer(w, s, &overrides);
        let req = view(headers, peer.as_deref(), None);
        let can_hold = w.held.borrow().has_room();
        let eval = w.limiter.precheck(host.shared(), &req, host.now(), can_hold, &overrides)?;
        if let Reply::Deny { status, headers, body } = &eval.reply {
            w.record(&eval);
            let mut headers = headers.clone();
            if w.limiter.config.debug {
                headers.push(("x-tollgate-rules", debug_line(w, &req, &eval)));
            }
            if s.send_reply(*status, &pairs(&headers), body.as_bytes()) {
                return Some(Step::Pause);
            }
            log::warn!("cannot send the local reply (status {status})");
            return None;
        }
        let rule = eval.degraded_by.and_then(|i| w.limiter.config.rules.get(i));
        if let Some((rule, name)) = rule.and_then(|r| Some((r, r.degrade.as_ref()?.add_header.as_ref()?))) {
            s.set_request_header(name, Some(&rule.name));
        }
        None
    }

    /// The peer address, when a rule or an override needs it.
    fn peer(&self, w: &Worker, s: &dyn Stream, overrides: &crate::overrides::Overrides) -> Option<String> {
        w.limiter.needs_peer(overrides).then(|| s.peer_address()).flatten()
    }

    /// Degrade (model rewrite, marker header) and ask OpenAI-style streams for usage.
    fn rewrite_request(&mut self, w: &Worker, s: &mut dyn Stream, req: &Request, eval: &Evaluation, body_size: usize) {
        let config = &w.limiter.config;
        let degrade =
            eval.degraded_by.and_then(|i| config.rules.get(i)).and_then(|r| r.degrade.as_ref().map(|d| (r, d)));
        if let Some((rule, d)) = degrade {
            if let Some(name) = &d.add_header {
                s.set_request_header(name, Some(&rule.name));
            }
        }
        let Some(body) = req.body else { return };
        let include_usage =
            config.llm.include_usage && !eval.reservations.is_empty() && llm::asks_for_usage_when_streaming(req.path);
        let set_model = degrade.and_then(|(_, d)| d.set_model.as_deref());
        let Some(new_body) = llm::rewrite_body(body, include_usage, set_model) else { return };
        // Once the headers went upstream (Envoy without stop-iteration) the length cannot change
        // any more: then the body is left as it is. (A body without a length, chunked, has none
        // to keep in step: the host re-frames it.)
        let len = new_body.bytes.len().to_string();
        let framed = req.header("content-length").is_some();
        if framed && !s.set_request_header("content-length", Some(&len)) {
            return;
        }
        let rewritten = s.set_request_body(body_size, &new_body.bytes);
        self.include_usage_added = rewritten && new_body.added_include_usage;
        if framed && !rewritten {
            s.set_request_header("content-length", Some(&body_size.to_string()));
        }
    }

    pub fn on_response_headers(&mut self, w: &Worker, s: &mut dyn Stream) {
        for (name, value) in self.response_headers.drain(..) {
            s.add_response_header(name, &value);
        }
        let reads_usage = self.reservations.iter().any(|r| r.unit.is_llm())
            || self.global_charged.iter().any(|c| w.limiter.rule_unit(c.rule).is_some_and(Unit::is_llm));
        if !reads_usage && !self.include_usage_added {
            return;
        }
        let content_type = s.response_header("content-type").unwrap_or_default();
        self.usage = ResponseReader::for_response(&content_type, reads_usage, self.include_usage_added);
        if self.usage.as_ref().is_some_and(ResponseReader::may_change_body) {
            // The body may lose the usage chunk: its length is no longer known.
            s.set_response_header("content-length", None);
        }
        if let Some(name) = w.limiter.config.llm.usage_header.as_deref().filter(|_| reads_usage) {
            self.header_usage = s.response_header(name).and_then(|v| v.trim().parse().ok());
        }
    }

    /// Read usage as the body streams by (nothing is buffered); the chunk flows on as it is,
    /// except the usage chunk Tollgate caused, which is withheld.
    pub fn on_response_body(&mut self, s: &mut dyn Stream, body_size: usize, end_of_stream: bool) {
        let Some(reader) = &mut self.usage else { return };
        if body_size == 0 && !end_of_stream {
            return;
        }
        let chunk = if body_size == 0 { Vec::new() } else { s.response_body(body_size) };
        if let Forward::Replace(bytes) = reader.feed(&chunk, end_of_stream) {
            if !s.set_response_body(body_size, bytes) {
                log::warn!("cannot replace a response body chunk ({body_size} bytes)");
            }
        }
    }

    /// The stream ended, however it ended (complete, reset, abort, time-out): settle.
    pub fn on_done(&mut self, w: &Worker, host: &dyn Host) {
        if self.held && w.held.borrow_mut().forget(self.id) {
            // The client left while held: free its place and give back its charges.
            w.tally.abandoned();
            self.refund_all(w, host);
            return;
        }
        self.settle(w, host);
    }

    /// Settle reservations with the usage the response reported.
    fn settle(&mut self, w: &Worker, host: &dyn Host) {
        let limiter = &w.limiter;
        let needs_usage = |unit: Unit| unit != Unit::Requests;
        let global_units: Vec<Unit> = self.global_charged.iter().filter_map(|c| limiter.rule_unit(c.rule)).collect();
        if !self.reservations.iter().any(|r| needs_usage(r.unit)) && !global_units.iter().any(|u| needs_usage(*u)) {
            return;
        }
        let reader = self.usage.take();
        if let Some(skipped) = reader.as_ref().map(ResponseReader::oversized).filter(|n| *n > 0) {
            log::warn!("{skipped} usage value(s) over {} bytes skipped", llm::json_scan::MAX_CAPTURE_BYTES);
        }
        let mut usage = reader.map(ResponseReader::finish).unwrap_or_default();
        if usage.is_empty() {
            usage.total = self.header_usage;
        }
        let counts_tokens =
            self.reservations.iter().any(|r| r.unit.is_llm()) || global_units.iter().any(|u| u.is_llm());
        let found = !usage.is_empty();
        for (check, unit) in std::mem::take(&mut self.global_charged).into_iter().zip(global_units) {
            if let Some(delta) = limiter.settlement(unit, check.cost, check.price, found.then_some(&usage)) {
                w.adjustments.borrow_mut().push((check, delta));
            }
        }
        if counts_tokens && !found {
            w.tally.proxy(ProxyMetric::UsageMissing, 1);
        }
        let reservations = std::mem::take(&mut self.reservations);
        let stats = limiter.settle(host.shared(), &reservations, found.then_some(&usage), host.now());
        w.record_stats(&stats);
    }

    /// Give back every local charge of a request that will not go on.
    fn refund_all(&mut self, w: &Worker, host: &dyn Host) {
        let reservations = std::mem::take(&mut self.reservations);
        let stats = w.limiter.refund(host.shared(), &reservations, host.now());
        w.record_stats(&stats);
    }

    // --- Global rules ---------------------------------------------------------------------

    /// Decide the request's global rules: from this proxy's leases (batched, steady state),
    /// else by asking the store, else by the failure mode.
    fn start_global(
        &mut self,
        w: &Worker,
        host: &dyn Host,
        s: &mut dyn Stream,
        checks: Vec<GlobalCheck>,
        local: Vec<AppliedRule>,
    ) -> Step {
        let now = host.now();
        let limiter = &w.limiter;
        let batched = checks.iter().all(|c| limiter.config.rules.get(c.rule).is_some_and(|r| r.sync == Sync::Batched));
        if batched && lease::spend_all(&limiter.engine, host.shared(), &checks, now) {
            // Steady state of batched sync: spent from this proxy's leases, no callout.
            let outcomes: Vec<RuleOutcome> = checks
                .iter()
                .map(|c| RuleOutcome { rule: c.rule, status: RuleStatus::Allowed, near_limit: false })
                .collect();
            w.record_outcomes(&outcomes);
            self.global_charged = checks;
            return self.conclude(w, host, s, &local, &[], &[]);
        }
        self.global = PendingGlobal { checks, local, token: None, leasing: batched };
        let Some(store) = limiter.config.store.as_ref() else { return Step::Continue };
        if !w.breaker.borrow_mut().allows(now) {
            return self.store_failed(w, host, s, None);
        }
        let rule_name = |i: usize| limiter.rule_name(i).to_string();
        let (path, body) = if batched {
            let items: Vec<(GlobalCheck, u64, u64)> =
                self.global.checks.iter().map(|c| (*c, lease::first_lease(c, store.fleet_size), 0)).collect();
            ("/v1/lease", global::lease_body(&items, rule_name))
        } else {
            ("/v1/check", global::check_body(&self.global.checks, rule_name))
        };
        match host.dispatch(&StoreCall::post(store, path, body)) {
            Some(token) => {
                self.global.token = Some(token);
                w.tally.proxy(ProxyMetric::StoreWaited, 1);
                Step::Pause // until on_store_answer
            }
            None => {
                w.breaker.borrow_mut().failure(host.now());
                self.store_failed(w, host, s, Some(StoreFailure::Error))
            }
        }
    }

    /// The store answered (or failed to): decide. True: the host resumes the request.
    pub fn on_store_answer(&mut self, w: &Worker, host: &dyn Host, s: &mut dyn Stream, answer: StoreAnswer) -> bool {
        self.global.token = None;
        let n = self.global.checks.len();
        let decided = if self.global.leasing {
            global::parse_lease(answer.status, answer.body, n).map(|grants| self.spend_grants(w, host, &grants))
        } else {
            global::parse_check(answer.status, answer.body, n).map(|a| a.decisions)
        };
        let step = match decided {
            Ok(decisions) => {
                w.breaker.borrow_mut().success();
                let (local, checks) = (std::mem::take(&mut self.global.local), self.global.checks.clone());
                self.conclude(w, host, s, &local, &checks, &decisions)
            }
            Err(failure) => {
                w.breaker.borrow_mut().failure(host.now());
                self.store_failed(w, host, s, Some(failure))
            }
        };
        step == Step::Continue
    }

    /// Keep what the store leased and spend this request's cost from it; the decisions say
    /// which checks were covered. When some is not, the units spent for the others go back into
    /// their leases (the request will be denied).
    fn spend_grants(&mut self, w: &Worker, host: &dyn Host, grants: &[global::Grant]) -> Vec<Decision> {
        let now = host.now();
        let ttl = lease::lease_ttl(w.limiter.config.store.as_ref());
        let engine = &w.limiter.engine;
        let covered: Vec<bool> = self
            .global
            .checks
            .iter()
            .zip(grants)
            .map(|(c, g)| lease::apply_grant(engine, host.shared(), c, g, c.cost, now, ttl))
            .collect();
        let entries: Vec<lease::IndexEntry> = self.global.checks.iter().map(lease::IndexEntry::of).collect();
        lease::index_add(host.shared(), &entries);
        if covered.iter().any(|c| !c) {
            for (c, ok) in self.global.checks.iter().zip(&covered) {
                if *ok {
                    lease::give_back(engine, host.shared(), c, c.cost, now);
                }
            }
        }
        grants.iter().zip(&covered).map(|(g, ok)| Decision { allowed: *ok, ..g.decision }).collect()
    }

    /// No answer from the store: count it and apply `store.failure_mode`. `failure` is None
    /// when the circuit breaker skipped the call.
    fn store_failed(&mut self, w: &Worker, host: &dyn Host, s: &mut dyn Stream, failure: Option<StoreFailure>) -> Step {
        match failure {
            Some(StoreFailure::Timeout) => w.tally.proxy(ProxyMetric::StoreTimeouts, 1),
            Some(StoreFailure::Error) => w.tally.proxy(ProxyMetric::StoreErrors, 1),
            None => {}
        }
        w.tally.proxy(ProxyMetric::FailureModeUsed, 1);
        let Some(store) = w.limiter.config.store.as_ref() else { return Step::Continue };
        let local = std::mem::take(&mut self.global.local);
        match failure_mode::fallback(store) {
            Fallback::LocalShare => {
                let (decisions, reservations, stats) =
                    failure_mode::admit_local_share(&w.limiter, host.shared(), &self.global.checks, host.now());
                w.record_stats(&stats);
                self.reservations.extend(reservations);
                self.global.checks.iter_mut().for_each(|c| c.cost = 0); // charged locally, not at the store
                let checks = self.global.checks.clone();
                self.conclude(w, host, s, &local, &checks, &decisions)
            }
            Fallback::Allow => {
                self.global.checks.clear();
                self.conclude(w, host, s, &local, &[], &[])
            }
            Fallback::Unavailable => {
                self.refund_all(w, host);
                if let Reply::Deny { status, headers, body } = w.limiter.store_unavailable(self.shape) {
                    s.send_reply(status, &pairs(&headers), body.as_bytes());
                }
                Step::Pause
            }
        }
    }

    /// The final reply once global rules are decided.
    fn conclude(
        &mut self,
        w: &Worker,
        host: &dyn Host,
        s: &mut dyn Stream,
        local: &[AppliedRule],
        checks: &[GlobalCheck],
        decisions: &[Decision],
    ) -> Step {
        let (reply, outcomes) = w.limiter.conclude_global(local, checks, decisions, self.shape, host.now());
        w.record_outcomes(&outcomes);
        match reply {
            Reply::Continue { headers } => {
                self.response_headers = headers;
                // Charged at the store: settle (tokens, cost) or release (concurrency) there.
                let charged = checks.iter().zip(decisions).filter(|(c, d)| d.allowed && c.cost > 0);
                self.global_charged.extend(charged.map(|(c, _)| *c));
                Step::Continue
            }
            Reply::Deny { status, headers, body } => {
                self.refund_all(w, host);
                s.send_reply(status, &pairs(&headers), body.as_bytes());
                Step::Pause
            }
        }
    }
}

/// The `x-tollgate-rules` value, and one log line per request (`"debug": true`).
fn debug_line(w: &Worker, req: &Request, eval: &Evaluation) -> String {
    let summary = eval.debug_header(&w.limiter.config);
    let verdict = match eval.reply {
        Reply::Continue { .. } => "allow".to_string(),
        Reply::Deny { status, .. } => format!("deny {status}"),
    };
    log::info!("debug: {} {} -> {verdict}; rules: {summary}", req.method, req.path_only());
    summary
}
