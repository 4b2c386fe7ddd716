//! Command line and environment: what `tollgate-store` is started with.

use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 200;

pub const USAGE: &str = "\
tollgate-store: shared rate-limit counters in Redis for Tollgate proxies

USAGE:
    tollgate-store --redis URL --listen ADDR --proxy-token P --admin-token A [OPTIONS]

OPTIONS (environment variable in brackets):
    --redis URL             Redis to keep the counters in [REDIS_URL] (default redis://127.0.0.1:6379):
                              redis://[user:password@]host:port[/db]      one node
                              rediss://...                                the same over TLS
                              redis+cluster://host1:port,host2:port        Redis Cluster (seed nodes)
                              rediss+cluster://...                        Redis Cluster over TLS
                              redis+sentinel://host1:26379,host2:26379/NAME[/db]   Sentinel, master NAME
                            Given several times: the seed nodes of a Redis Cluster.
    --listen ADDR           Address to serve HTTP on [TOLLGATE_STORE_LISTEN] (default 127.0.0.1:8080;
                            port 0 picks a free port)
    --proxy-token P         Bearer token proxies must send [TOLLGATE_PROXY_TOKEN] (required)
    --admin-token A         Bearer token admins must send [TOLLGATE_ADMIN_TOKEN] (required, != proxy token)
    --redis-timeout-ms N    Deadline of every Redis call, in ms [TOLLGATE_REDIS_TIMEOUT_MS] (default 200)
    --redis-ca-file PEM     rediss://: trust this CA instead of the system's [TOLLGATE_REDIS_CA_FILE]
    --redis-cert-file PEM   rediss://: client certificate for mutual TLS [TOLLGATE_REDIS_CERT_FILE]
    --redis-key-file PEM    rediss://: its private key [TOLLGATE_REDIS_KEY_FILE]
    --no-ui                 Do not serve the web console at /ui (404) [TOLLGATE_NO_UI=1]
    --test-clock            Honour the X-Tollgate-Now-Ns request header (tests only: lets a client
                            choose the time; never enable in production)
    -h, --help              Print this help
    -V, --version           Print the version
";

/// Where the counters live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisTarget {
    /// One node: `redis://` or `rediss://` URL.
    Single(String),
    /// Redis Cluster: the seed node URLs (`redis://host:port` or `rediss://`).
    Cluster(Vec<String>),
    /// Sentinel: the sentinel node URLs, the master's name, and the URL-form settings of the
    /// master connection (credentials, db, TLS).
    Sentinel {
        sentinels: Vec<String>,
        service: String,
        tls: bool,
        username: Option<String>,
        password: Option<String>,
        db: i64,
    },
}

impl RedisTarget {
    /// A description without credentials, for logs.
    pub fn describe(&self) -> String {
        match self {
            RedisTarget::Single(url) => format!("redis {}", redact(url)),
            RedisTarget::Cluster(nodes) => {
                format!("redis cluster {}", nodes.iter().map(|n| redact(n)).collect::<Vec<_>>().join(","))
            }
            RedisTarget::Sentinel { sentinels, service, .. } => {
                format!("redis sentinel {} master {service}", sentinels.join(","))
            }
        }
    }
}

/// A URL with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map(|(u, _)| u).unwrap_or(userinfo);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

/// PEM files for `rediss://` connections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
}

impl TlsFiles {
    pub fn is_empty(&self) -> bool {
        self == &TlsFiles::default()
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub redis: RedisTarget,
    pub redis_tls: TlsFiles,
    pub listen: String,
    pub proxy_token: String,
    pub admin_token: String,
    pub redis_timeout: Duration,
    pub test_clock: bool,
    /// Serve the web console at `/ui` (on unless `--no-ui` or `TOLLGATE_NO_UI`).
    pub ui: bool,
}

#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    Help,
    Version,
}

/// Parse the arguments (without the program name); `env` looks up environment variables.
/// Errors are one line, without the program name.
pub fn parse(args: impl IntoIterator<Item = String>, env: impl Fn(&str) -> Option<String>) -> Result<Command, String> {
    let mut redis: Vec<String> = Vec::new();
    let mut listen: Option<String> = None;
    let mut proxy_token: Option<String> = None;
    let mut admin_token: Option<String> = None;
    let mut timeout_ms: Option<String> = None;
    let mut tls = TlsFiles::default();
    let mut test_clock = false;
    let mut no_ui = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args.next().ok_or_else(|| format!("{name} needs a value (see --help)")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--redis" => redis.push(value("--redis")?),
            "--listen" => listen = Some(value("--listen")?),
            "--proxy-token" => proxy_token = Some(value("--proxy-token")?),
            "--admin-token" => admin_token = Some(value("--admin-token")?),
            "--redis-timeout-ms" => timeout_ms = Some(value("--redis-timeout-ms")?),
            "--redis-ca-file" => tls.ca_file = Some(value("--redis-ca-file")?),
            "--redis-cert-file" => tls.cert_file = Some(value("--redis-cert-file")?),
            "--redis-key-file" => tls.key_file = Some(value("--redis-key-file")?),
            "--test-clock" if inline.is_none() => test_clock = true,
            "--no-ui" if inline.is_none() => no_ui = true,
            _ => return Err(format!("unknown argument {arg:?} (see --help)")),
        }
    }
    if redis.is_empty() {
        redis.push(env("REDIS_URL").filter(|v| !v.is_empty()).unwrap_or_else(|| DEFAULT_REDIS.to_string()));
    }
    let redis = parse_redis(&redis)?;
    let listen = listen
        .or_else(|| env("TOLLGATE_STORE_LISTEN").filter(|v| !v.is_empty()))
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let proxy_token = proxy_token
        .or_else(|| env("TOLLGATE_PROXY_TOKEN"))
        .filter(|t| !t.is_empty())
        .ok_or("a proxy token is required: --proxy-token P or TOLLGATE_PROXY_TOKEN")?;
    let admin_token = admin_token
        .or_else(|| env("TOLLGATE_ADMIN_TOKEN"))
        .filter(|t| !t.is_empty())
        .ok_or("an admin token is required: --admin-token A or TOLLGATE_ADMIN_TOKEN")?;
    if proxy_token == admin_token {
        return Err("the proxy token and the admin token must differ".into());
    }
    let timeout_ms = match timeout_ms.or_else(|| env("TOLLGATE_REDIS_TIMEOUT_MS").filter(|v| !v.is_empty())) {
        None => DEFAULT_REDIS_TIMEOUT_MS,
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (1..=60_000).contains(&n) => n,
            _ => return Err(format!("--redis-timeout-ms: {v:?} is not a number of milliseconds in 1..=60000")),
        },
    };
    let from_env = |name: &str| env(name).filter(|v| !v.is_empty());
    let no_ui = no_ui
        || match from_env("TOLLGATE_NO_UI").as_deref() {
            None | Some("0" | "false" | "no") => false,
            Some("1" | "true" | "yes") => true,
            Some(v) => return Err(format!("TOLLGATE_NO_UI: {v:?} must be 1 or 0 (also true or false, yes or no)")),
        };
    tls.ca_file = tls.ca_file.or_else(|| from_env("TOLLGATE_REDIS_CA_FILE"));
    tls.cert_file = tls.cert_file.or_else(|| from_env("TOLLGATE_REDIS_CERT_FILE"));
    tls.key_file = tls.key_file.or_else(|| from_env("TOLLGATE_REDIS_KEY_FILE"));
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        return Err("--redis-cert-file and --redis-key-file go together".into());
    }
    if !tls.is_empty() && matches!(redis, RedisTarget::Sentinel { .. }) {
        return Err(
            "--redis-ca-file/--redis-cert-file are not supported with redis+sentinel:// (use the system trust store)"
                .into(),
        );
    }
    Ok(Command::Run(Box::new(Config {
        redis,
        redis_tls: tls,
        listen,
        proxy_token,
        admin_token,
        redis_timeout: Duration::from_millis(timeout_ms),
        test_clock,
        ui: !no_ui,
    })))
}

fn parse_redis(urls: &[String]) -> Result<RedisTarget, String> {
    if let [url] = urls {
        let url = url.trim();
        let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("--redis: {:?} is not a URL", redact(url)))?;
        return match scheme {
            "redis" | "rediss" => {
                if rest.is_empty() {
                    return Err(format!("--redis: {:?} has no host", redact(url)));
                }
                Ok(RedisTarget::Single(url.to_string()))
            }
            "redis+cluster" | "rediss+cluster" => {
                let base = if scheme == "rediss+cluster" { "rediss" } else { "redis" };
                let (userinfo, hosts, path) = split_authority(rest);
                let nodes: Vec<String> = hosts
                    .split(',')
                    .filter(|h| !h.is_empty())
                    .map(|h| match userinfo {
                        Some(u) => format!("{base}://{u}@{h}{path}"),
                        None => format!("{base}://{h}{path}"),
                    })
                    .collect();
                if nodes.is_empty() {
                    return Err(format!("--redis: {:?} names no cluster node", redact(url)));
                }
                Ok(RedisTarget::Cluster(nodes))
            }
            "redis+sentinel" | "rediss+sentinel" => {
                let tls = scheme == "rediss+sentinel";
                let (userinfo, hosts, path) = split_authority(rest);
                let sentinels: Vec<String> = hosts
                    .split(',')
                    .filter(|h| !h.is_empty())
                    .map(|h| format!("{}://{h}", if tls { "rediss" } else { "redis" }))
                    .collect();
                if sentinels.is_empty() {
                    return Err(format!("--redis: {:?} names no sentinel", redact(url)));
                }
                let mut parts = path.trim_start_matches('/').split('/');
                let service = parts.next().unwrap_or("").to_string();
                if service.is_empty() {
                    return Err(
                        "--redis: a sentinel URL needs the master's name: redis+sentinel://host:26379/NAME".into()
                    );
                }
                let db = match parts.next() {
                    None | Some("") => 0,
                    Some(d) => d.parse::<i64>().map_err(|_| format!("--redis: database {d:?} is not a number"))?,
                };
                let (username, password) = match userinfo {
                    None => (None, None),
                    Some(u) => match u.split_once(':') {
                        Some((user, pass)) => {
                            ((!user.is_empty()).then(|| user.to_string()), (!pass.is_empty()).then(|| pass.to_string()))
                        }
                        None => (None, (!u.is_empty()).then(|| u.to_string())),
                    },
                };
                Ok(RedisTarget::Sentinel { sentinels, service, tls, username, password, db })
            }
            _ => Err(format!(
                "--redis: unsupported scheme {scheme:?} (use redis://, rediss://, redis+cluster://, redis+sentinel://)"
            )),
        };
    }
    // Several --redis flags: the seed nodes of a cluster.
    for u in urls {
        if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
            return Err(format!(
                "--redis: {:?}: with several --redis flags (a cluster), each must be a redis:// or rediss:// node URL",
                redact(u)
            ));
        }
    }
    Ok(RedisTarget::Cluster(urls.to_vec()))
}

/// `[userinfo@]hosts[/path]` -> (userinfo, hosts, "/path" or "").
fn split_authority(rest: &str) -> (Option<&str>, &str, &str) {
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h, path),
        None => (None, authority, path),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, String> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        match parse(args.iter().map(|s| s.to_string()), |k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))? {
            Command::Run(c) => Ok(*c),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_and_defaults() {
        let c = run(&["--redis", "redis://10.0.0.1:6379", "--proxy-token", "p", "--admin-token=a"], &[]).unwrap();
        assert_eq!(c.redis, RedisTarget::Single("redis://10.0.0.1:6379".into()));
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.redis_timeout, Duration::from_millis(200));
        assert!(!c.test_clock);
        assert!(c.ui, "the console is on by default");
        let off = |args: &[&str], env: &[(&str, &str)]| run(args, env).map(|c| c.ui);
        assert_eq!(off(&["--no-ui", "--proxy-token", "p", "--admin-token", "a"], &[]), Ok(false));
        let tokens = [("TOLLGATE_PROXY_TOKEN", "p"), ("TOLLGATE_ADMIN_TOKEN", "a")];
        assert_eq!(off(&[], &[tokens[0], tokens[1], ("TOLLGATE_NO_UI", "1")]), Ok(false));
        assert_eq!(off(&[], &[tokens[0], tokens[1], ("TOLLGATE_NO_UI", "0")]), Ok(true));
        assert!(off(&[], &[tokens[0], tokens[1], ("TOLLGATE_NO_UI", "maybe")]).unwrap_err().contains("TOLLGATE_NO_UI"));
        let c =
            run(&[], &[("REDIS_URL", "rediss://h:1"), ("TOLLGATE_PROXY_TOKEN", "p"), ("TOLLGATE_ADMIN_TOKEN", "a")])
                .unwrap();
        assert_eq!(c.redis, RedisTarget::Single("rediss://h:1".into()));
    }

    #[test]
    fn tokens_are_required_and_differ() {
        assert!(run(&["--admin-token", "a"], &[]).unwrap_err().contains("proxy token is required"));
        assert!(run(&["--proxy-token", "p"], &[]).unwrap_err().contains("admin token is required"));
        assert_eq!(
            run(&["--proxy-token", "x", "--admin-token", "x"], &[]).unwrap_err(),
            "the proxy token and the admin token must differ"
        );
    }

    #[test]
    fn cluster_and_sentinel_urls() {
        let c =
            run(&["--redis", "redis+cluster://:pw@h1:7000,h2:7001", "--proxy-token", "p", "--admin-token", "a"], &[])
                .unwrap();
        assert_eq!(c.redis, RedisTarget::Cluster(vec!["redis://:pw@h1:7000".into(), "redis://:pw@h2:7001".into()]));
        let c = run(
            &["--redis", "redis://h1:1", "--redis", "redis://h2:2", "--proxy-token", "p", "--admin-token", "a"],
            &[],
        )
        .unwrap();
        assert_eq!(c.redis, RedisTarget::Cluster(vec!["redis://h1:1".into(), "redis://h2:2".into()]));
        let c = run(
            &["--redis", "redis+sentinel://:s3@s1:26379,s2:26379/main/2", "--proxy-token", "p", "--admin-token", "a"],
            &[],
        )
        .unwrap();
        assert_eq!(
            c.redis,
            RedisTarget::Sentinel {
                sentinels: vec!["redis://s1:26379".into(), "redis://s2:26379".into()],
                service: "main".into(),
                tls: false,
                username: None,
                password: Some("s3".into()),
                db: 2
            }
        );
        assert!(run(&["--redis", "http://x", "--proxy-token", "p", "--admin-token", "a"], &[]).is_err());
        assert!(run(&["--redis", "redis+sentinel://s1:1", "--proxy-token", "p", "--admin-token", "a"], &[]).is_err());
        assert_eq!(redact("redis://u:secret@h:1/0"), "redis://u:***@h:1/0");
    }

    #[test]
    fn bad_values() {
        assert!(run(&["--redis-timeout-ms", "0", "--proxy-token", "p", "--admin-token", "a"], &[]).is_err());
        assert!(run(&["--bogus"], &[]).unwrap_err().contains("unknown argument"));
        assert!(run(&["--listen"], &[]).unwrap_err().contains("needs a value"));
    }
}
