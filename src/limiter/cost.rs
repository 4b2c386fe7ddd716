//! What a request costs under one rule (one request, an estimate of tokens, micro-dollars at
//! the model's price, a concurrency slot), and the correction that settles the charge with
//! the usage the response reported.

use super::Limiter;
use crate::config::{Rule, Unit};
use crate::engine::algorithm::{Algorithm, Quota};
use crate::llm::{self, LlmRequest, PriceRef, Usage};

/// How one rule charges one request.
pub(super) enum Cost {
    Charge {
        algorithm: Algorithm,
        quota: Quota,
        cost: u64,
        price: Option<PriceRef>,
    },
    /// The rule does not apply (a cost rule on a request without a model).
    NotApplicable,
    /// A cost rule, a model without a price and no default price.
    UnknownModel,
}

impl Limiter {
    /// How `rule` charges this request. Every charge is at least 1, so that a spent budget
    /// denies whatever the estimate (`llm.estimate: none`, no `max_tokens`).
    pub(super) fn cost_of(&self, rule: &Rule, quota: Quota, req: Option<&LlmRequest>) -> Cost {
        let Some(algorithm) = rule.algorithm else {
            // Concurrency: a GCRA whose emission interval is the lease, so a slot that is
            // never released frees itself after the lease; releases refund exactly.
            let slots = quota.limit;
            let quota = Quota { limit: slots, burst: slots, window_ns: quota.window_ns.saturating_mul(slots) };
            return Cost::Charge { algorithm: Algorithm::Gcra, quota, cost: 1, price: None };
        };
        let estimate = |req: &LlmRequest| llm::estimate_tokens(&self.config.llm, req, rule.unit);
        match rule.unit {
            Unit::Requests | Unit::Concurrent => Cost::Charge { algorithm, quota, cost: 1, price: None },
            Unit::Tokens | Unit::InputTokens | Unit::OutputTokens => {
                let tokens = req.map(estimate).unwrap_or(0);
                Cost::Charge { algorithm, quota, cost: tokens.max(1), price: None }
            }
            Unit::CostUsd => {
                let Some(req) = req.filter(|r| r.model.is_some()) else { return Cost::NotApplicable };
                let found = llm::price_ref(&self.config.llm, req.model.as_deref())
                    .and_then(|r| Some((r, llm::price_at(&self.config.llm, r)?)));
                let Some((price_ref, price)) = found else { return Cost::UnknownModel };
                let micro = llm::cost_micro_usd(price, 0, estimate(req));
                Cost::Charge { algorithm, quota, cost: micro.max(1), price: Some(price_ref) }
            }
        }
    }

    /// The correction that settles a charge of `reserved` units once the response ended:
    /// LLM units take the real usage (None: no usage found, the estimate stands), concurrency
    /// slots are released, requests stay as charged.
    pub fn settlement(&self, unit: Unit, reserved: u64, price: Option<PriceRef>, usage: Option<&Usage>) -> Option<i64> {
        match (unit, usage) {
            (Unit::Concurrent, _) => Some(-1),
            (Unit::Requests, _) | (_, None) => None,
            (unit, Some(u)) => {
                let price = price.and_then(|r| llm::price_at(&self.config.llm, r));
                let used = llm::units_used(unit, u, price);
                let delta = (i128::from(used) - i128::from(reserved)).clamp(i128::from(i64::MIN), i128::from(i64::MAX));
                let delta = i64::try_from(delta).unwrap_or(0);
                (delta != 0).then_some(delta)
            }
        }
    }
}
