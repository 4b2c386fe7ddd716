//! What the limiter decided for one request: each rule's status (for metrics and the debug
//! header), the charges to settle, and the reply the host carries out (the rate-limit headers
//! of an allowed request, or a denial in the caller's provider's shape).

use super::Limiter;
use crate::config::{Config, Rule, Strategy, Unit};
use crate::engine::algorithm::{Algorithm, Decision, Nanos, Quota};
use crate::engine::slot_table::Place;
use crate::engine::{Check, EngineStats};
use crate::global::GlobalCheck;
use crate::llm::PriceRef;
use crate::response::{self, Applied, ErrorReply, Shape};

/// What one rule did to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleStatus {
    Allowed,
    Denied,
    /// A shadow rule that would have denied.
    ShadowDenied,
    /// The request's tier is unlimited for this rule.
    Unlimited,
    /// `missing_key: deny` answered 403.
    MissingKey,
    /// A cost rule without a price for the request's model answered 400.
    UnknownModel,
    /// A degrade rule over its limit: the request goes on, degraded.
    Degraded,
    /// A throttle rule over its limit: the request is held, then goes on.
    Throttled,
}

impl RuleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleStatus::Allowed => "allowed",
            RuleStatus::Denied => "denied",
            RuleStatus::ShadowDenied => "shadow_denied",
            RuleStatus::Unlimited => "unlimited",
            RuleStatus::MissingKey => "missing_key",
            RuleStatus::UnknownModel => "unknown_model",
            RuleStatus::Degraded => "degraded",
            RuleStatus::Throttled => "throttled",
        }
    }

    /// A rule's status from its counter's decision.
    pub(super) fn of(d: &Decision, strategy: Strategy) -> RuleStatus {
        match (d.allowed, strategy) {
            (true, _) => RuleStatus::Allowed,
            (false, Strategy::Shadow) => RuleStatus::ShadowDenied,
            (false, Strategy::Degrade) => RuleStatus::Degraded,
            (false, _) => RuleStatus::Denied,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleOutcome {
    pub rule: usize,
    pub status: RuleStatus,
    /// At least 80 % of the capacity is used.
    pub near_limit: bool,
}

/// At least 80 % of the capacity is used.
pub(super) fn near_limit(d: &Decision, algorithm: Algorithm, quota: &Quota) -> bool {
    d.remaining.saturating_mul(5) <= algorithm.capacity(quota)
}

/// What the host must do with the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Let it through, adding these headers to the response.
    Continue { headers: Vec<(&'static str, String)> },
    /// Answer locally.
    Deny { status: u32, headers: Vec<(&'static str, String)>, body: String },
}

impl Default for Reply {
    fn default() -> Reply {
        Reply::Continue { headers: Vec::new() }
    }
}

/// A charge to settle when the response ends: token and cost reservations are replaced by
/// the real usage, concurrency slots are released.
#[derive(Clone, Copy, Debug)]
pub struct Reservation {
    pub check: Check,
    pub place: Place,
    pub reserved: u64,
    pub unit: Unit,
    /// The price a cost rule reserved at (settled at the same one).
    pub price: Option<PriceRef>,
}

/// A rule applied to a request, by index (kept by the host while a store call is in flight).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppliedRule {
    pub rule: usize,
    pub quota: Quota,
    pub decision: Decision,
}

#[derive(Debug, Default)]
pub struct Evaluation {
    pub reply: Reply,
    pub rules: Vec<RuleOutcome>,
    pub stats: EngineStats,
    /// What to settle when the response ends.
    pub reservations: Vec<Reservation>,
    /// The first degrade rule over its limit (index into the rules).
    pub degraded_by: Option<usize>,
    /// Throttle: hold the request this long before letting it go on.
    pub hold_ns: u64,
    /// Local rules applied (for headers once global rules are decided).
    pub applied: Vec<AppliedRule>,
    /// Global rules to decide through the store before the request may go on.
    pub global: Vec<GlobalCheck>,
    /// An override (emergency access, an allowed key or IP) let the request skip every rule.
    pub overridden: bool,
    /// The shape of this request's error bodies.
    pub shape: Shape,
}

impl Evaluation {
    /// `x-tollgate-rules` debug value: `name=decision, ...`.
    pub fn debug_header(&self, config: &Config) -> String {
        let parts: Vec<String> = self
            .rules
            .iter()
            .filter_map(|o| config.rules.get(o.rule).map(|r| format!("{}={}", r.name, o.status.as_str())))
            .collect();
        if self.overridden {
            "override".to_string()
        } else if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// A refusal that is not a rate limit.
#[derive(Clone, Copy, Debug)]
pub(super) enum Refusal {
    MissingKey,
    UnknownModel,
}

fn json_headers() -> Vec<(&'static str, String)> {
    vec![("content-type", "application/json".to_string())]
}

impl Limiter {
    /// The reply for applied rules: headers, and when `denied_by` (an index into `applied`)
    /// is set, the denial, in the request's error `shape`.
    pub fn compose(&self, applied: &[AppliedRule], denied_by: Option<usize>, shape: Shape, now: Nanos) -> Reply {
        let applied: Vec<Applied> = applied
            .iter()
            .filter_map(|a| {
                Some(Applied { rule: self.config.rules.get(a.rule)?, quota: a.quota, decision: a.decision })
            })
            .collect();
        let mut headers = response::rate_limit_headers(&self.config.response.headers, &applied, denied_by, now);
        let Some(denier) = denied_by.and_then(|i| applied.get(i)) else { return Reply::Continue { headers } };
        // A spent budget does not come back by retrying soon.
        let budget = denier.rule.unit == Unit::CostUsd;
        let retry_after = if budget { None } else { response::retry_after_secs(&denier.decision) };
        if let Some(secs) = retry_after {
            headers.push(("retry-after", secs.to_string()));
        }
        headers.push(("content-type", "application/json".to_string()));
        let message = response::denial_message(&self.config.response.message, denier);
        let error = ErrorReply {
            status: self.config.response.status,
            message: &message,
            kind: denier.rule.unit.error_type(),
            code: if budget { "insufficient_quota" } else { "rate_limit_exceeded" },
            rule: &denier.rule.name,
            retry_after,
        };
        Reply::Deny { status: error.status, headers, body: response::error_body(shape, &error) }
    }

    /// A local refusal that is not a rate limit (403 missing key, 400 unknown model).
    pub(super) fn refusal(&self, i: usize, rule: &Rule, why: Refusal, shape: Shape) -> Evaluation {
        let (status, code, rule_status, message) = match why {
            Refusal::MissingKey => {
                (403, "missing_key", RuleStatus::MissingKey, "This request lacks the key rule {rule} needs")
            }
            Refusal::UnknownModel => {
                (400, "unknown_model", RuleStatus::UnknownModel, "Rule {rule} has no price for this model")
            }
        };
        let message = message.replace("{rule}", &format!("{:?}", rule.name));
        let error = ErrorReply {
            status,
            message: &message,
            kind: rule.unit.error_type(),
            code,
            rule: &rule.name,
            retry_after: None,
        };
        Evaluation {
            reply: Reply::Deny { status, headers: json_headers(), body: response::error_body(shape, &error) },
            rules: vec![RuleOutcome { rule: i, status: rule_status, near_limit: false }],
            shape,
            ..Evaluation::default()
        }
    }

    /// The 503 of `store.failure_mode: closed` when the store cannot answer.
    pub fn store_unavailable(&self, shape: Shape) -> Reply {
        let error = ErrorReply {
            status: 503,
            message: "Rate limit store unavailable",
            kind: "requests",
            code: "store_unavailable",
            rule: "",
            retry_after: None,
        };
        Reply::Deny { status: 503, headers: json_headers(), body: response::error_body(shape, &error) }
    }
}
