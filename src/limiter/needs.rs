//! What the configured rules need from a request, worked out once per configuration, so that
//! the host reads nothing a rule does not use: the client address, the body (and for which
//! rules), the response's usage.

use crate::config::{Config, Rule, Scope, Sync};
use crate::request::keys::KeySource;

/// Why a rule needs the request body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BodyNeeds {
    /// A body key, an LLM unit (max_tokens, model) or a model condition: the decision.
    pub decides: bool,
    /// `degrade.set_model`: the rewrite.
    pub rewrites_model: bool,
}

impl BodyNeeds {
    fn of(rule: &Rule) -> BodyNeeds {
        BodyNeeds {
            decides: rule.key.iter().any(KeySource::needs_body)
                || rule.unit.is_llm()
                || !rule.matcher.models.is_empty(),
            rewrites_model: rule.degrade.as_ref().is_some_and(|d| d.set_model.is_some()),
        }
    }

    pub fn any(&self) -> bool {
        self.decides || self.rewrites_model
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// Some enabled rule keys on the client IP.
    pub ip: bool,
    /// Some enabled rule needs the request body.
    pub body: bool,
    /// Per rule (enabled or not), why it needs the body.
    pub rule_body: Vec<BodyNeeds>,
    /// Some enabled rule counts tokens or cost.
    pub usage: bool,
    /// Some enabled global rule is `sync: batched` (the flusher runs).
    pub leases: bool,
    /// No request can be limited (the filter is off, or no rule is enabled).
    pub nothing: bool,
}

impl Needs {
    pub fn of(config: &Config) -> Needs {
        let enabled = || config.rules.iter().filter(|r| r.enabled);
        let rule_body: Vec<BodyNeeds> = config.rules.iter().map(BodyNeeds::of).collect();
        Needs {
            ip: enabled().any(|r| r.key.contains(&KeySource::Ip)),
            body: config.rules.iter().zip(&rule_body).any(|(r, n)| r.enabled && n.any()),
            rule_body,
            usage: enabled().any(|r| r.unit.is_llm()),
            leases: enabled().any(|r| r.scope == Scope::Global && r.sync == Sync::Batched),
            nothing: !config.enabled || enabled().next().is_none(),
        }
    }

    /// Why rule `i` needs the body.
    pub fn body_of(&self, i: usize) -> BodyNeeds {
        self.rule_body.get(i).copied().unwrap_or_default()
    }
}

/// What a request's headers tell about its body (`Limiter::body_plan`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BodyPlan {
    /// A rule that reads the body may apply: buffer it and decide when it is complete.
    pub buffer: bool,
    /// A token or cost rule may apply: the response's usage will be read (ask for it
    /// uncompressed).
    pub reads_usage: bool,
    /// Tollgate may rewrite the body (include_usage, degrade's model), so its length may
    /// change.
    pub may_rewrite: bool,
}
