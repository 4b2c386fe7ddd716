//! Fleet statistics for `GET /v1/stats`: per-rule and per-proxy totals of the proxy API
//! (checks allowed and denied, leases granted and denied) and the top violators by key hash,
//! client IP and endpoint. A proxy is known by the address it calls the store from.
//!
//! The hot path only adds to an in-memory buffer of this replica (no Redis call per request);
//! the buffer is flushed to Redis every `FLUSH_INTERVAL` (and before `GET /v1/stats` answers)
//! by one script. Everything is bounded: at most `MAX_RULES` rules are counted in Redis,
//! each top list is trimmed to the `TOP_KEEP` highest scores after every flush (ZINCRBY then
//! ZREMRANGEBYRANK), and a buffer holds at most `MAX_BUFFERED` distinct members per list
//! between two flushes. All statistics keys share the `{stats}` hash tag (one Redis Cluster
//! slot) and expire `STATS_TTL_MS` after the last flush.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use redis::Value;
use serde_json::{json, Value as Json};
use tollgate_core::engine::algorithm::Decision;

use crate::backend::{Backend, StoreError};
use crate::counters::Counter;
use tollgate_core::time::rfc3339;

/// How often each replica writes its buffered statistics to Redis.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Each top list keeps this many members in Redis (the highest scores).
pub const TOP_KEEP: usize = 100;

/// Most rules counted (new rule names beyond this are not counted).
pub const MAX_RULES: usize = 1000;

/// Most proxy addresses counted (new addresses beyond this are not counted).
pub const MAX_PROXIES: usize = 1000;

/// Most distinct members of one list (or rules) buffered between two flushes.
pub const MAX_BUFFERED: usize = 10_000;

/// Statistics expire this long after the last flush (30 days).
pub const STATS_TTL_MS: u64 = 30 * 86_400_000;

const RULES_KEY: &str = "tollgate:{stats}:rules";
const TOP_KEYS: &str = "tollgate:{stats}:top:keys";
const TOP_IPS: &str = "tollgate:{stats}:top:ips";
const TOP_ENDPOINTS: &str = "tollgate:{stats}:top:endpoints";
const SINCE_KEY: &str = "tollgate:{stats}:since";
const PROXIES_KEY: &str = "tollgate:{stats}:proxies";

/// The per-rule counters, as fields `RULE|NAME` of the rules hash.
const FIELDS: [&str; 5] = ["allowed", "denied", "leases_granted", "leases_denied", "lease_units_granted"];

/// KEYS: rules hash, three top lists, since, proxies hash. ARGV: now_ms, ttl_ms, top_keep,
/// max rule fields, max proxy fields, then for the rules hash, each top list and the proxies
/// hash: a count n and n (member, increment) pairs.
const FLUSH_SCRIPT: &str = r#"
local now, ttl, keep = ARGV[1], ARGV[2], tonumber(ARGV[3])
redis.call('SET', KEYS[5], now, 'NX')
local i = 6
local function bounded_hash(key, max_fields)
  local n = tonumber(ARGV[i]); i = i + 1
  for _ = 1, n do
    local f, by = ARGV[i], ARGV[i + 1]; i = i + 2
    if redis.call('HEXISTS', key, f) == 1 or redis.call('HLEN', key) < max_fields then
      redis.call('HINCRBY', key, f, by)
    end
  end
end
bounded_hash(KEYS[1], tonumber(ARGV[4]))
for z = 2, 4 do
  local n = tonumber(ARGV[i]); i = i + 1
  for _ = 1, n do
    redis.call('ZINCRBY', KEYS[z], ARGV[i + 1], ARGV[i]); i = i + 2
  end
  if n > 0 then redis.call('ZREMRANGEBYRANK', KEYS[z], 0, -(keep + 1)) end
end
bounded_hash(KEYS[6], tonumber(ARGV[5]))
for k = 1, 6 do redis.call('PEXPIRE', KEYS[k], ttl) end
return 1
"#;

/// Optional `ip` and `endpoint` of a check (only used for the top-violator statistics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client address, canonical (`std::net::IpAddr` formatting).
    pub ip: Option<String>,
    /// The request's endpoint, e.g. `/v1/chat/completions` (1 to 256 characters).
    pub endpoint: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct RuleTotals([u64; 5]);

#[derive(Debug, Default)]
struct Buffer {
    rules: HashMap<String, RuleTotals>,
    keys: HashMap<String, u64>,
    ips: HashMap<String, u64>,
    endpoints: HashMap<String, u64>,
    /// By proxy address, the same totals as rules.
    proxies: HashMap<String, RuleTotals>,
}

impl Buffer {
    fn is_empty(&self) -> bool {
        self.rules.is_empty()
            && self.keys.is_empty()
            && self.ips.is_empty()
            && self.endpoints.is_empty()
            && self.proxies.is_empty()
    }

    fn rule(&mut self, rule: &str, field: usize, n: u64) {
        add_totals(&mut self.rules, rule, field, n);
    }

    fn proxy(&mut self, proxy: Option<&str>, field: usize, n: u64) {
        if let Some(p) = proxy {
            add_totals(&mut self.proxies, p, field, n);
        }
    }
}

fn add_totals(map: &mut HashMap<String, RuleTotals>, member: &str, field: usize, n: u64) {
    if n == 0 {
        return;
    }
    if let Some(t) = map.get_mut(member) {
        t.0[field] = t.0[field].saturating_add(n);
    } else if map.len() < MAX_BUFFERED {
        let mut t = RuleTotals::default();
        t.0[field] = n;
        map.insert(member.to_string(), t);
    }
}

fn bump(map: &mut HashMap<String, u64>, member: &str) {
    if let Some(n) = map.get_mut(member) {
        *n = n.saturating_add(1);
    } else if map.len() < MAX_BUFFERED {
        map.insert(member.to_string(), 1);
    }
}

/// This replica's buffer of statistics not yet written to Redis.
pub struct Stats {
    buffer: Mutex<Buffer>,
    script: redis::Script,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats { buffer: Mutex::new(Buffer::default()), script: redis::Script::new(FLUSH_SCRIPT) }
    }
}

impl Stats {
    fn buffer(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count one `POST /v1/check` call: every check of an allowed call is allowed; a check
    /// that denied counts as denied (for its rule, key hash, IP and endpoint). Checks that
    /// would have passed in a denied call, and peeks (cost 0), count in neither. The calling
    /// `proxy` (its address) counts the call once, allowed or denied, unless it only peeked.
    pub fn record_check(
        &self,
        checks: &[(Counter, u64)],
        origins: &[Origin],
        results: &[Decision],
        allowed: bool,
        proxy: Option<&str>,
    ) {
        let mut b = self.buffer();
        if checks.iter().any(|(_, cost)| *cost > 0) {
            b.proxy(proxy, if allowed { 0 } else { 1 }, 1);
        }
        for (i, ((counter, cost), decision)) in checks.iter().zip(results).enumerate() {
            if *cost == 0 {
                continue;
            }
            if allowed {
                b.rule(&counter.rule, 0, 1);
            } else if !decision.allowed {
                b.rule(&counter.rule, 1, 1);
                bump(&mut b.keys, &counter.key);
                if let Some(origin) = origins.get(i) {
                    if let Some(ip) = &origin.ip {
                        bump(&mut b.ips, ip);
                    }
                    if let Some(e) = &origin.endpoint {
                        bump(&mut b.endpoints, e);
                    }
                }
            }
        }
    }

    /// Count one lease item: granted (≥ 1 unit) or denied (units wanted, none granted), for
    /// its rule and for the calling `proxy`.
    pub fn record_lease(&self, rule: &str, want: u64, granted: u64, proxy: Option<&str>) {
        let mut b = self.buffer();
        if granted > 0 {
            b.rule(rule, 2, 1);
            b.rule(rule, 4, granted);
            b.proxy(proxy, 2, 1);
            b.proxy(proxy, 4, granted);
        } else if want > 0 {
            b.rule(rule, 3, 1);
            b.proxy(proxy, 3, 1);
        }
    }

    /// Write the buffer to Redis (and empty it). Statistics that cannot be written (Redis
    /// down) are dropped: they must not pile up in memory.
    pub async fn flush(&self, backend: &Backend, now_ms: u64) -> Result<(), StoreError> {
        let b = std::mem::take(&mut *self.buffer());
        if b.is_empty() {
            return Ok(());
        }
        let mut args: Vec<String> = vec![
            now_ms.to_string(),
            STATS_TTL_MS.to_string(),
            TOP_KEEP.to_string(),
            (MAX_RULES * FIELDS.len()).to_string(),
            (MAX_PROXIES * FIELDS.len()).to_string(),
        ];
        let hash_fields = |args: &mut Vec<String>, map: &HashMap<String, RuleTotals>| {
            let fields: Vec<(String, u64)> = map
                .iter()
                .flat_map(|(member, t)| {
                    FIELDS.iter().zip(t.0).filter(|(_, n)| *n > 0).map(move |(f, n)| (format!("{member}|{f}"), n))
                })
                .collect();
            args.push(fields.len().to_string());
            for (f, n) in fields {
                args.extend([f, n.to_string()]);
            }
        };
        hash_fields(&mut args, &b.rules);
        for list in [&b.keys, &b.ips, &b.endpoints] {
            args.push(list.len().to_string());
            for (member, n) in list {
                args.extend([member.clone(), n.to_string()]);
            }
        }
        hash_fields(&mut args, &b.proxies);
        let args: Vec<&[u8]> = args.iter().map(String::as_bytes).collect();
        let keys = [RULES_KEY, TOP_KEYS, TOP_IPS, TOP_ENDPOINTS, SINCE_KEY, PROXIES_KEY];
        backend.eval(&self.script, &keys, &args).await.map(|_| ())
    }
}

/// A totals hash (`MEMBER|FIELD` → count) read back, by member.
async fn read_totals(backend: &Backend, key: &str) -> Result<BTreeMap<String, RuleTotals>, StoreError> {
    let fields = backend.query(redis::cmd("HGETALL").arg(key).to_owned()).await?;
    let mut out: BTreeMap<String, RuleTotals> = BTreeMap::new();
    for (field, value) in crate::backend::pairs(fields) {
        let Some((member, name)) = field.rsplit_once('|') else { continue };
        let (Some(i), Ok(n)) = (FIELDS.iter().position(|f| *f == name), value.parse::<u64>()) else { continue };
        out.entry(member.to_string()).or_default().0[i] = n;
    }
    Ok(out)
}

/// `GET /v1/stats`: the totals, and the `top` first members of each top list and of the
/// proxies (most decisions first).
pub async fn read(backend: &Backend, top: usize) -> Result<Json, StoreError> {
    let since = backend.query(redis::cmd("GET").arg(SINCE_KEY).to_owned()).await?;
    let rules = read_totals(backend, RULES_KEY).await?;
    let mut proxies: Vec<(String, RuleTotals)> = read_totals(backend, PROXIES_KEY).await?.into_iter().collect();
    let decisions = |t: &RuleTotals| t.0[0].saturating_add(t.0[1]).saturating_add(t.0[2]).saturating_add(t.0[3]);
    proxies.sort_by(|(a, x), (b, y)| decisions(y).cmp(&decisions(x)).then_with(|| a.cmp(b)));
    let proxies: Vec<Json> = proxies
        .iter()
        .take(top)
        .map(|(p, t)| {
            let mut v = totals_json(None, t);
            v["proxy"] = p.as_str().into();
            v
        })
        .collect();
    let mut total = RuleTotals::default();
    let rules: Vec<Json> = rules
        .iter()
        .map(|(rule, t)| {
            for (sum, n) in total.0.iter_mut().zip(t.0) {
                *sum = sum.saturating_add(n);
            }
            totals_json(Some(rule), t)
        })
        .collect();
    let mut lists = Vec::new();
    for key in [TOP_KEYS, TOP_IPS, TOP_ENDPOINTS] {
        let stop = top.saturating_sub(1).to_string();
        let v = backend.query(redis::cmd("ZRANGE").arg(key).arg(0).arg(stop).arg("REV").arg("WITHSCORES").to_owned());
        lists.push(crate::backend::pairs(if top == 0 { Value::Nil } else { v.await? }));
    }
    let list = |i: usize, name: &str| -> Json {
        lists
            .get(i)
            .map(|l| {
                l.iter()
                    .map(|(m, score)| json!({ name: m, "denied": score.parse::<f64>().unwrap_or(0.0) as u64 }))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into()
    };
    let since_ms = crate::backend::text(&since).and_then(|s| s.parse::<u64>().ok());
    Ok(json!({
        "since": since_ms.map(rfc3339::format_ms),
        "totals": totals_json(None, &total),
        "rules": rules,
        "top_keys": list(0, "key"),
        "top_ips": list(1, "ip"),
        "top_endpoints": list(2, "endpoint"),
        "proxies": proxies,
        "top_kept": TOP_KEEP,
        "flush_interval_ms": FLUSH_INTERVAL.as_millis() as u64,
    }))
}

/// Share of decisions that hit the limit: denied / (allowed + denied), 0 without decisions.
fn hit_rate(allowed: u64, denied: u64) -> f64 {
    let all = allowed.saturating_add(denied);
    if all == 0 {
        return 0.0;
    }
    (denied as f64 / all as f64 * 10_000.0).round() / 10_000.0
}

fn totals_json(rule: Option<&str>, t: &RuleTotals) -> Json {
    let [allowed, denied, leases_granted, leases_denied, lease_units_granted] = t.0;
    let mut v = json!({
        "allowed": allowed,
        "denied": denied,
        "hit_rate": hit_rate(allowed, denied),
        "leases_granted": leases_granted,
        "leases_denied": leases_denied,
        "lease_units_granted": lease_units_granted,
    });
    if let Some(rule) = rule {
        v["rule"] = rule.into();
    }
    v
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tollgate_core::engine::algorithm::{Algorithm, Quota};

    fn counter(rule: &str, key: &str) -> Counter {
        Counter {
            rule: rule.into(),
            key: key.into(),
            algorithm: Algorithm::FixedWindow,
            quota: Quota { limit: 1, window_ns: 1, burst: 1 },
        }
    }

    fn decision(allowed: bool) -> Decision {
        Decision { allowed, remaining: 0, reset_after_ns: 0, retry_after_ns: 0 }
    }

    #[test]
    fn counts_checks_and_leases_and_bounds_the_buffer() {
        let s = Stats::default();
        let checks = vec![(counter("a", "k1"), 1), (counter("b", "k2"), 1), (counter("c", "k3"), 0)];
        let origins = vec![
            Origin { ip: Some("10.0.0.1".into()), endpoint: Some("/x".into()) },
            Origin { ip: Some("10.0.0.2".into()), endpoint: None },
            Origin::default(),
        ];
        s.record_check(&checks, &origins, &[decision(true); 3], true, Some("10.1.0.1"));
        s.record_check(&checks, &origins, &[decision(true), decision(false), decision(false)], false, Some("10.1.0.1"));
        s.record_check(&checks[2..], &origins[2..], &[decision(true)], true, Some("10.1.0.2"));
        s.record_lease("a", 5, 3, Some("10.1.0.2"));
        s.record_lease("a", 5, 0, None);
        s.record_lease("a", 0, 0, Some("10.1.0.2"));
        {
            let b = s.buffer();
            assert_eq!(b.rules["a"], RuleTotals([1, 0, 1, 1, 3]));
            assert_eq!(b.rules["b"], RuleTotals([1, 1, 0, 0, 0]));
            assert!(!b.rules.contains_key("c"), "peeks are not counted");
            assert_eq!(b.keys, HashMap::from([("k2".to_string(), 1)]));
            assert_eq!(b.ips, HashMap::from([("10.0.0.2".to_string(), 1)]));
            assert!(b.endpoints.is_empty());
            assert_eq!(b.proxies["10.1.0.1"], RuleTotals([1, 1, 0, 0, 0]));
            assert_eq!(b.proxies["10.1.0.2"], RuleTotals([0, 0, 1, 0, 3]), "a peek-only call is not a decision");
            assert_eq!(b.proxies.len(), 2);
        }
        let many: Vec<(Counter, u64)> = (0..MAX_BUFFERED + 50).map(|i| (counter("a", &format!("{i}")), 1)).collect();
        s.record_check(&many, &[], &vec![decision(false); many.len()], false, None);
        assert_eq!(s.buffer().keys.len(), MAX_BUFFERED);
    }

    #[test]
    fn hit_rate_is_the_denied_share() {
        assert_eq!(hit_rate(0, 0), 0.0);
        assert_eq!(hit_rate(3, 1), 0.25);
        assert_eq!(hit_rate(2, 1), 0.3333);
    }
}
