//! The Redis side: one connection (single node, cluster or sentinel-discovered master), every
//! call bounded by the configured timeout, and the compare-and-set script that commits a
//! counter's new state only if nobody changed it since it was read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{ErrorKind, RedisError, Value};

use crate::config::{RedisTarget, TlsFiles};
use crate::metrics::Metrics;

/// Compare-and-set: KEYS[1] the counter; ARGV[1] the expected current value ('' = absent),
/// ARGV[2] the new value, ARGV[3] the TTL in ms. Sets only if the current value equals the
/// expected one and returns {1}; otherwise changes nothing and returns {0, current} (current
/// '' when absent) so the caller can recompute without another round trip.
/// No arithmetic happens in Lua: the state is opaque bytes computed in Rust.
///
/// With KEYS[2] (the key hash's rule index, same hash slot), a successful write also records
/// the counter's rule (ARGV[4]) and quota (ARGV[5]) there, and makes the index live at least as
/// long as the counter: the admin API finds a key's counters without SCAN.
pub const CAS_SCRIPT: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur == false then cur = '' end
if cur ~= ARGV[1] then return {0, cur} end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if KEYS[2] then
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
  if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
end
return {1}
"#;

/// What a counter write also records in its key hash's rule index (see `CAS_SCRIPT`).
#[derive(Clone, Copy, Debug)]
pub struct IndexEntry<'a> {
    /// The index key, `tollgate:{KEYHASH}:#rules`.
    pub key: &'a str,
    pub rule: &'a str,
    /// The counter's quota, `ALGORITHM LIMIT WINDOW_MS BURST`.
    pub quota: &'a str,
}

/// Why a Redis call failed: every variant answers 503 `store_unavailable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No answer within the timeout.
    Timeout,
    /// Connection refused or lost, or a server error.
    Unavailable(String),
    /// The counter kept changing: the compare-and-set retries ran out.
    Contention,
    /// Too many requests of this replica queued for the same counter (waited too long).
    Busy,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Timeout => write!(f, "Redis did not answer in time"),
            StoreError::Unavailable(why) => write!(f, "Redis is unavailable: {why}"),
            StoreError::Contention => write!(f, "the counter is under too much contention, retry"),
            StoreError::Busy => write!(f, "too many requests queued for the same counter, retry"),
        }
    }
}

/// Outcome of one compare-and-set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cas {
    Set,
    /// The value changed meanwhile: here is the current one (empty = absent).
    Mismatch(Vec<u8>),
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

enum Target {
    Single(redis::Client),
    Cluster(ClusterClient),
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

pub struct Backend {
    target: Target,
    conn: tokio::sync::Mutex<Option<Conn>>,
    /// When the last attempt to connect failed: new attempts wait a little, so an outage
    /// costs each request one quick failure rather than one connection attempt each.
    last_failure: std::sync::Mutex<Option<(Instant, String)>>,
    script: redis::Script,
    timeout: Duration,
    metrics: Arc<Metrics>,
    /// For logging transitions only (not per request).
    healthy: AtomicBool,
}

const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// A failed connection attempt explains a timeout for this long.
const LAST_ERROR_RELEVANCE: Duration = Duration::from_secs(5);

/// The PEM files of `--redis-ca-file` / `--redis-cert-file` / `--redis-key-file`, read now.
fn tls_certificates(tls: &TlsFiles) -> Result<Option<redis::TlsCertificates>, String> {
    if tls.is_empty() {
        return Ok(None);
    }
    let read = |flag: &str, path: &str| std::fs::read(path).map_err(|e| format!("{flag} {path}: {e}"));
    let root_cert = match &tls.ca_file {
        Some(p) => Some(read("--redis-ca-file", p)?),
        None => None,
    };
    let client_tls = match (&tls.cert_file, &tls.key_file) {
        (Some(c), Some(k)) => Some(redis::ClientTlsConfig {
            client_cert: read("--redis-cert-file", c)?,
            client_key: read("--redis-key-file", k)?,
        }),
        _ => None,
    };
    Ok(Some(redis::TlsCertificates { client_tls, root_cert }))
}

impl Backend {
    pub fn new(
        target: &RedisTarget,
        tls: &TlsFiles,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Backend, String> {
        let certs = tls_certificates(tls)?;
        let target = match target {
            RedisTarget::Single(url) => Target::Single(
                match certs {
                    None => redis::Client::open(url.as_str()),
                    Some(certs) => redis::Client::build_with_tls(url.as_str(), certs),
                }
                .map_err(|e| format!("--redis: {e}"))?,
            ),
            RedisTarget::Cluster(nodes) => {
                let mut builder = ClusterClient::builder(nodes.iter().map(String::as_str).collect::<Vec<_>>())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(1);
                if let Some(certs) = certs {
                    builder = builder.certs(certs);
                }
                Target::Cluster(builder.build().map_err(|e| format!("--redis: {e}"))?)
            }
            RedisTarget::Sentinel { sentinels, service, tls, username, password, db } => {
                let mut info = redis::RedisConnectionInfo::default().set_db(*db);
                if let Some(u) = username {
                    info = info.set_username(u);
                }
                if let Some(p) = password {
                    info = info.set_password(p);
                }
                let mut node = SentinelNodeConnectionInfo::default().set_redis_connection_info(info);
                if *tls {
                    node = node.set_tls_mode(redis::TlsMode::Secure);
                }
                let client = SentinelClient::build(
                    sentinels.iter().map(String::as_str).collect::<Vec<_>>(),
                    service.clone(),
                    Some(node),
                    SentinelServerType::Master,
                )
                .map_err(|e| format!("--redis: {e}"))?;
                Target::Sentinel(tokio::sync::Mutex::new(client))
            }
        };
        Ok(Backend {
            target,
            conn: tokio::sync::Mutex::new(None),
            last_failure: std::sync::Mutex::new(None),
            script: redis::Script::new(CAS_SCRIPT),
            timeout,
            metrics,
            healthy: AtomicBool::new(true),
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200))
    }

    async fn connect(&self) -> Result<Conn, RedisError> {
        match &self.target {
            Target::Single(client) => {
                Ok(Conn::Single(ConnectionManager::new_with_config(client.clone(), self.manager_config()).await?))
            }
            Target::Cluster(client) => Ok(Conn::Cluster(client.get_async_connection().await?)),
            Target::Sentinel(sentinel) => {
                let client = sentinel.lock().await.async_get_client().await?;
                Ok(Conn::Single(ConnectionManager::new_with_config(client, self.manager_config()).await?))
            }
        }
    }

    async fn conn(&self) -> Result<Conn, StoreError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        if let Some(why) = self.recent_connect_failure(RECONNECT_PAUSE) {
            return Err(StoreError::Unavailable(why));
        }
        match self.connect().await {
            Ok(c) => {
                *guard = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), e.to_string()));
                Err(StoreError::Unavailable(e.to_string()))
            }
        }
    }

    /// Forget the connection after an error that suggests the server went away, so the next
    /// call connects afresh (for sentinel: asks the sentinels for the current master).
    /// A single node's ConnectionManager and a cluster connection reconnect by themselves.
    async fn on_error(&self, e: &RedisError) {
        let failover = matches!(e.kind(), ErrorKind::Server(redis::ServerErrorKind::ReadOnly));
        if matches!(self.target, Target::Sentinel(_)) && (e.is_io_error() || e.is_connection_dropped() || failover) {
            *self.conn.lock().await = None;
        }
    }

    /// Run one Redis call under the timeout, with metrics and error mapping.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        let start = Instant::now();
        let result = tokio::time::timeout(self.timeout, async {
            let conn = self.conn().await?;
            match f(conn).await {
                Ok(v) => Ok(v),
                Err(e) => {
                    self.on_error(&e).await;
                    Err(if e.is_timeout() { StoreError::Timeout } else { StoreError::Unavailable(e.to_string()) })
                }
            }
        })
        .await
        .unwrap_or(Err(StoreError::Timeout));
        match &result {
            Ok(_) => {
                self.metrics.redis_latency(start.elapsed());
                if !self.healthy.swap(true, Ordering::Relaxed) {
                    eprintln!("tollgate-store: Redis is reachable again");
                }
            }
            Err(e) => {
                match e {
                    StoreError::Timeout => Metrics::add(&self.metrics.redis_timeouts, 1),
                    _ => Metrics::add(&self.metrics.redis_errors, 1),
                }
                if self.healthy.swap(false, Ordering::Relaxed) {
                    eprintln!("tollgate-store: {e}");
                }
            }
        }
        if matches!(result, Err(StoreError::Timeout)) {
            // Waiting for a connection attempt that failed: say why.
            if let Some(why) = self.recent_connect_failure(LAST_ERROR_RELEVANCE) {
                return Err(StoreError::Unavailable(format!("{why} (no answer within the timeout)")));
            }
        }
        result
    }

    fn recent_connect_failure(&self, within: Duration) -> Option<String> {
        let last = self.last_failure.lock().unwrap_or_else(|e| e.into_inner());
        last.as_ref().filter(|(at, _)| at.elapsed() < within).map(|(_, why)| why.clone())
    }

    /// The raw value of a counter (empty when absent).
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let cmd = redis::cmd("GET").arg(key).to_owned();
        self.call(|conn| async move {
            let v: Option<Vec<u8>> = match conn {
                Conn::Single(mut c) => cmd.query_async(&mut c).await?,
                Conn::Cluster(mut c) => cmd.query_async(&mut c).await?,
            };
            Ok(v.unwrap_or_default())
        })
        .await
    }

    /// Set `key` to `new` (expiring in `ttl_ms`) only if its value is still `expected`; on
    /// success also record `index` (see `CAS_SCRIPT`).
    pub async fn cas(
        &self,
        key: &str,
        expected: &[u8],
        new: &[u8],
        ttl_ms: u64,
        index: Option<IndexEntry<'_>>,
    ) -> Result<Cas, StoreError> {
        let mut invocation = self.script.key(key);
        invocation.arg(expected).arg(new).arg(ttl_ms.max(1));
        if let Some(ix) = index {
            invocation.key(ix.key).arg(ix.rule).arg(ix.quota);
        }
        let value: Value = self
            .call(|conn| async move {
                match conn {
                    Conn::Single(mut c) => invocation.invoke_async(&mut c).await,
                    Conn::Cluster(mut c) => invocation.invoke_async(&mut c).await,
                }
            })
            .await?;
        match value {
            Value::Array(items) => match items.as_slice() {
                [Value::Int(1)] => Ok(Cas::Set),
                [Value::Int(0), Value::BulkString(cur)] => Ok(Cas::Mismatch(cur.clone())),
                [Value::Int(0), Value::Nil] | [Value::Int(0)] => Ok(Cas::Mismatch(Vec::new())),
                other => Err(StoreError::Unavailable(format!("unexpected script reply {other:?}"))),
            },
            other => Err(StoreError::Unavailable(format!("unexpected script reply {other:?}"))),
        }
    }

    /// Run one command. Its keys must share a hash slot (Redis Cluster): the admin data uses
    /// hash tags for that.
    pub async fn query(&self, cmd: redis::Cmd) -> Result<Value, StoreError> {
        self.call(|conn| async move {
            match conn {
                Conn::Single(mut c) => cmd.query_async(&mut c).await,
                Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
            }
        })
        .await
    }

    /// Run a Lua script (EVALSHA, loading it when Redis does not know it). Its keys must share
    /// a hash slot.
    pub async fn eval(&self, script: &redis::Script, keys: &[&str], args: &[&[u8]]) -> Result<Value, StoreError> {
        let mut invocation = script.prepare_invoke();
        for k in keys {
            invocation.key(*k);
        }
        for a in args {
            invocation.arg(*a);
        }
        self.call(|conn| async move {
            match conn {
                Conn::Single(mut c) => invocation.invoke_async(&mut c).await,
                Conn::Cluster(mut c) => invocation.invoke_async(&mut c).await,
            }
        })
        .await
    }

    /// PING (used by /healthz).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let cmd = redis::cmd("PING");
        self.call(|conn| async move {
            let _: Value = match conn {
                Conn::Single(mut c) => cmd.query_async(&mut c).await?,
                Conn::Cluster(mut c) => cmd.query_async(&mut c).await?,
            };
            Ok(())
        })
        .await
    }
}

/// Text of a bulk or simple string reply.
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        Value::Okay => Some("OK".into()),
        Value::Double(d) => Some(d.to_string()),
        _ => None,
    }
}

/// A flat array `[k1, v1, k2, v2, …]` (RESP2) or a map (RESP3) as pairs.
pub fn pairs(v: Value) -> Vec<(String, String)> {
    match v {
        Value::Array(items) => {
            items.chunks_exact(2).filter_map(|kv| Some((text(&kv[0])?, text(&kv[1]).unwrap_or_default()))).collect()
        }
        Value::Map(items) => items.iter().filter_map(|(k, v)| Some((text(k)?, text(v).unwrap_or_default()))).collect(),
        _ => Vec::new(),
    }
}

/// The elements of an array (or set) reply; empty for anything else.
pub fn items(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        _ => Vec::new(),
    }
}
