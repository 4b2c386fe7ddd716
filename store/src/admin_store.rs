//! The admin data in Redis: per-key limits, overrides, the version proxies poll, and the
//! audit log, all under the `{admin}` hash tag (one Redis Cluster slot), so that one script
//! changes an entry, bumps the version and appends the audit record atomically. Plus the
//! reads of a key's counters (through its rule index) for status and reset.
//!
//! | key | type | |
//! |---|---|---|
//! | `tollgate:{admin}:version` | string (integer) | bumped by every change of limits or overrides |
//! | `tollgate:{admin}:limits` | hash KEYHASH → JSON | per-key limits |
//! | `tollgate:{admin}:overrides` | hash ID → JSON | overrides (expired ones kept 24 h) |
//! | `tollgate:{admin}:audit` | stream | every admin write, `MAXLEN ~ 10000` |

use redis::Value;

use crate::backend::{items, pairs, text, Backend, StoreError};
use crate::counters::{index_key, redis_key};
use crate::input::Who;

pub const VERSION_KEY: &str = "tollgate:{admin}:version";
pub const LIMITS_KEY: &str = "tollgate:{admin}:limits";
pub const OVERRIDES_KEY: &str = "tollgate:{admin}:overrides";
pub const AUDIT_KEY: &str = "tollgate:{admin}:audit";

/// The audit log keeps about this many entries (`XADD MAXLEN ~`: Redis trims whole nodes, so
/// a few more may remain).
pub const AUDIT_MAXLEN: u64 = 10_000;

/// Change one field of an admin hash, bump the version and append the audit record, atomically.
/// KEYS: the hash, the version, the audit stream. ARGV: field, new value ('' = delete), now_ms,
/// audit MAXLEN, then the audit record's field/value pairs.
/// Deleting a field that does not exist changes nothing and returns {0}. Otherwise returns
/// {1, version, before ('' = absent), audit entry id}. The version becomes
/// max(version + 1, now_ms): strictly increasing, and never reused even if Redis lost it.
const WRITE_SCRIPT: &str = r#"
local before = redis.call('HGET', KEYS[1], ARGV[1])
if before == false then
  if ARGV[2] == '' then return {0} end
  before = ''
end
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
local v = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local now = tonumber(ARGV[3])
if v + 1 > now then v = v + 1 else v = now end
local vs = string.format('%.0f', v)
redis.call('SET', KEYS[2], vs)
local xadd = {'XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'version', vs, 'before', before, 'after', ARGV[2]}
for i = 5, #ARGV do xadd[#xadd + 1] = ARGV[i] end
local id = redis.call(unpack(xadd))
return {1, vs, before, id}
"#;

/// One consistent read of what `GET /v1/sync` serves: {version, overrides, limits}.
const SNAPSHOT_SCRIPT: &str = r#"
return {redis.call('GET', KEYS[1]) or '0', redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3])}
"#;

/// What an admin write records in the audit log besides the before and after values.
#[derive(Clone, Copy, Debug)]
pub struct Audit<'a> {
    /// `limits.set`, `limits.delete`, `key.reset`, `override.add`, `override.remove`.
    pub action: &'a str,
    pub who: &'a Who,
    /// The key hash concerned, if any.
    pub key: Option<&'a str>,
    /// The override concerned, if any.
    pub override_id: Option<&'a str>,
}

impl Audit<'_> {
    fn fields(&self) -> Vec<(&str, &str)> {
        let mut f =
            vec![("admin", self.who.admin.as_str()), ("action", self.action), ("reason", self.who.reason.as_str())];
        if let Some(k) = self.key {
            f.push(("key", k));
        }
        if let Some(id) = self.override_id {
            f.push(("override", id));
        }
        f
    }
}

/// The outcome of an admin write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub version: u64,
    /// The previous value (None: there was none).
    pub before: Option<String>,
}

/// One audit log entry as stored: its stream id and fields.
pub type AuditRecord = (String, Vec<(String, String)>);

/// A key's counter as found through its rule index: rule, stored quota, state bytes (empty
/// when the counter has expired).
pub type KeyCounter = (String, String, Vec<u8>);

pub struct AdminStore {
    write: redis::Script,
    snapshot: redis::Script,
}

impl Default for AdminStore {
    fn default() -> AdminStore {
        AdminStore { write: redis::Script::new(WRITE_SCRIPT), snapshot: redis::Script::new(SNAPSHOT_SCRIPT) }
    }
}

impl AdminStore {
    /// Set (`new` Some) or delete (None) `field` of the admin hash `hash`, bump the version and
    /// append the audit record. None when deleting a field that does not exist (nothing done).
    pub async fn write(
        &self,
        backend: &Backend,
        hash: &str,
        field: &str,
        new: Option<&str>,
        now_ms: u64,
        audit: &Audit<'_>,
    ) -> Result<Option<Written>, StoreError> {
        let now = now_ms.to_string();
        let maxlen = AUDIT_MAXLEN.to_string();
        let mut args: Vec<&[u8]> =
            vec![field.as_bytes(), new.unwrap_or("").as_bytes(), now.as_bytes(), maxlen.as_bytes()];
        let fields = audit.fields();
        for (k, v) in &fields {
            args.extend([k.as_bytes(), v.as_bytes()]);
        }
        let reply = items(backend.eval(&self.write, &[hash, VERSION_KEY, AUDIT_KEY], &args).await?);
        match reply.as_slice() {
            [Value::Int(0)] => Ok(None),
            [Value::Int(1), version, before, _id] => {
                let version = text(version).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                let before = text(before).filter(|b| !b.is_empty());
                Ok(Some(Written { version, before }))
            }
            other => Err(StoreError::Unavailable(format!("unexpected script reply {other:?}"))),
        }
    }

    /// Append an audit record for a write outside the admin hashes (a key reset).
    pub async fn audit(
        &self,
        backend: &Backend,
        audit: &Audit<'_>,
        before: &str,
        after: &str,
    ) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(AUDIT_KEY)
            .arg("MAXLEN")
            .arg("~")
            .arg(AUDIT_MAXLEN)
            .arg("*")
            .arg("before")
            .arg(before)
            .arg("after")
            .arg(after);
        for (k, v) in audit.fields() {
            cmd.arg(k).arg(v);
        }
        backend.query(cmd).await.map(|_| ())
    }

    /// The current version (0 before the first admin write): one GET.
    pub async fn version(&self, backend: &Backend) -> Result<u64, StoreError> {
        let v = backend.query(redis::cmd("GET").arg(VERSION_KEY).to_owned()).await?;
        Ok(text(&v).and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// Version, overrides and per-key limits, read atomically.
    #[allow(clippy::type_complexity)]
    pub async fn snapshot(
        &self,
        backend: &Backend,
    ) -> Result<(u64, Vec<(String, String)>, Vec<(String, String)>), StoreError> {
        let reply = backend.eval(&self.snapshot, &[VERSION_KEY, OVERRIDES_KEY, LIMITS_KEY], &[]).await?;
        let mut parts = items(reply).into_iter();
        let version = parts.next().as_ref().and_then(text).and_then(|v| v.parse().ok()).unwrap_or(0);
        let overrides = parts.next().map(pairs).unwrap_or_default();
        let limits = parts.next().map(pairs).unwrap_or_default();
        Ok((version, overrides, limits))
    }

    pub async fn get(&self, backend: &Backend, hash: &str, field: &str) -> Result<Option<String>, StoreError> {
        let v = backend.query(redis::cmd("HGET").arg(hash).arg(field).to_owned()).await?;
        Ok(text(&v))
    }

    pub async fn all(&self, backend: &Backend, hash: &str) -> Result<Vec<(String, String)>, StoreError> {
        Ok(pairs(backend.query(redis::cmd("HGETALL").arg(hash).to_owned()).await?))
    }

    /// How many entries `GET /v1/sync` may serve: per-key limits plus overrides.
    pub async fn entries(&self, backend: &Backend) -> Result<u64, StoreError> {
        let mut n = 0u64;
        for hash in [LIMITS_KEY, OVERRIDES_KEY] {
            let v = backend.query(redis::cmd("HLEN").arg(hash).to_owned()).await?;
            n += text(&v).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
        Ok(n)
    }

    /// Forget overrides (housekeeping, not audited: they expired long ago).
    pub async fn drop_overrides(&self, backend: &Backend, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        backend.query(redis::cmd("HDEL").arg(OVERRIDES_KEY).arg(ids).to_owned()).await.map(|_| ())
    }

    /// Audit entries from newest to oldest with ids in [start, end] (`-`/`+` for open ends,
    /// `(ID` for an exclusive end), at most `count`.
    pub async fn audit_page(
        &self,
        backend: &Backend,
        end: &str,
        start: &str,
        count: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let cmd = redis::cmd("XREVRANGE").arg(AUDIT_KEY).arg(end).arg(start).arg("COUNT").arg(count).to_owned();
        let reply = backend.query(cmd).await?;
        Ok(items(reply)
            .into_iter()
            .filter_map(|entry| {
                let mut e = items(entry).into_iter();
                let id = text(&e.next()?)?;
                Some((id, pairs(e.next()?)))
            })
            .collect())
    }

    /// A key hash's counters, through its rule index (one HGETALL, one MGET: same slot).
    pub async fn key_counters(&self, backend: &Backend, key_hash: &str) -> Result<Vec<KeyCounter>, StoreError> {
        let mut index = pairs(backend.query(redis::cmd("HGETALL").arg(index_key(key_hash)).to_owned()).await?);
        if index.is_empty() {
            return Ok(Vec::new());
        }
        index.sort();
        let keys: Vec<String> = index.iter().map(|(rule, _)| redis_key(key_hash, rule)).collect();
        let states = items(backend.query(redis::cmd("MGET").arg(&keys).to_owned()).await?);
        Ok(index
            .into_iter()
            .enumerate()
            .map(|(i, (rule, quota))| {
                let state = match states.get(i) {
                    Some(Value::BulkString(b)) => b.clone(),
                    _ => Vec::new(),
                };
                (rule, quota, state)
            })
            .collect())
    }

    /// Delete the counters of `rules` of a key hash and its rule index (one DEL: same slot).
    /// Returns how many keys existed.
    pub async fn delete_counters(&self, backend: &Backend, key_hash: &str, rules: &[&str]) -> Result<u64, StoreError> {
        let mut keys: Vec<String> = rules.iter().map(|r| redis_key(key_hash, r)).collect();
        keys.push(index_key(key_hash));
        let v = backend.query(redis::cmd("DEL").arg(&keys).to_owned()).await?;
        Ok(text(&v).and_then(|n| n.parse().ok()).unwrap_or(0))
    }
}
