//! Real Redis servers for the tests: one node (`Redis`) or a 3-node Redis Cluster (`Cluster`),
//! on free ports of 127.0.0.1, without persistence, killed on drop. A tiny RESP client
//! (`Redis::cmd`) lets tests look at keys and TTLs without a Redis crate.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, Proc, TempDir};

/// A RESP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

impl Resp {
    pub fn as_int(&self) -> i64 {
        match self {
            Resp::Int(n) => *n,
            other => panic!("expected an integer reply, got {other:?}"),
        }
    }

    /// Bulk or simple string as text (None for nil).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Resp::Simple(s) => Some(s.clone()),
            Resp::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Resp::Bulk(None) => None,
            other => panic!("expected a string reply, got {other:?}"),
        }
    }

    pub fn as_bytes(&self) -> Option<Vec<u8>> {
        match self {
            Resp::Bulk(b) => b.clone(),
            Resp::Simple(s) => Some(s.as_bytes().to_vec()),
            other => panic!("expected a bulk reply, got {other:?}"),
        }
    }

    pub fn as_array(&self) -> Vec<Resp> {
        match self {
            Resp::Array(Some(a)) => a.clone(),
            Resp::Array(None) => Vec::new(),
            other => panic!("expected an array reply, got {other:?}"),
        }
    }
}

/// Send one command to 127.0.0.1:`port` and read its reply.
pub fn command(port: u16, args: &[&str]) -> std::io::Result<Resp> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    // Long enough for `DEBUG SLEEP` (tests make Redis slow for a few seconds).
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(out.as_bytes())?;
    read_resp(&mut BufReader::new(stream))
}

fn read_resp(r: &mut impl BufRead) -> std::io::Result<Resp> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(line.len().min(1));
    let num = || rest.parse::<i64>().map_err(|_| bad(format!("bad RESP line {line:?}")));
    Ok(match kind {
        "+" => Resp::Simple(rest.to_string()),
        "-" => Resp::Error(rest.to_string()),
        ":" => Resp::Int(num()?),
        "$" => match num()? {
            n if n < 0 => Resp::Bulk(None),
            n => {
                let mut buf = vec![0u8; n as usize + 2];
                r.read_exact(&mut buf)?;
                buf.truncate(n as usize);
                Resp::Bulk(Some(buf))
            }
        },
        "*" => match num()? {
            n if n < 0 => Resp::Array(None),
            n => Resp::Array(Some((0..n).map(|_| read_resp(r)).collect::<std::io::Result<Vec<_>>>()?)),
        },
        _ => return Err(bad(format!("bad RESP line {line:?}"))),
    })
}

fn require_redis_server() {
    let found = Command::new("redis-server").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(found.is_ok_and(|s| s.success()), "redis-server not found: run `make setup`");
}

fn wait_for_ping(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if matches!(command(port, &["PING"]), Ok(Resp::Simple(ref s)) if s == "PONG") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn spawn_server(port: u16, dir: &TempDir, extra: &[String]) -> Proc {
    let log = std::fs::File::create(dir.0.join(format!("redis-{port}.log"))).unwrap();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir.0)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn redis-server");
    Proc { name: format!("redis-server:{port}"), child }
}

/// One redis-server on 127.0.0.1.
pub struct Redis {
    pub port: u16,
    dir: TempDir,
    extra: Vec<String>,
    proc: Option<Proc>,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_with(TempDir::new("redis"), Vec::new())
    }

    /// Start with more redis-server flags, in `dir`.
    pub fn start_with(dir: TempDir, extra: Vec<String>) -> Redis {
        require_redis_server();
        let mut r = Redis { port: free_port(), dir, extra, proc: None };
        r.launch();
        r
    }

    /// A server that also listens with TLS (`tls_port`), requiring client certificates
    /// signed by a fresh test CA (made with the openssl CLI). The plain port stays open for
    /// the harness.
    pub fn start_tls() -> TlsRedis {
        let dir = TempDir::new("redis-tls");
        let certs = TestCerts::make(&dir.0);
        let tls_port = free_port();
        let extra = vec![
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            certs.server_cert.display().to_string(),
            "--tls-key-file".into(),
            certs.server_key.display().to_string(),
            "--tls-ca-cert-file".into(),
            certs.ca.display().to_string(),
            "--tls-auth-clients".into(),
            "yes".into(),
        ];
        TlsRedis { redis: Redis::start_with(dir, extra), tls_port, certs }
    }

    fn launch(&mut self) {
        self.proc = Some(spawn_server(self.port, &self.dir, &self.extra));
        assert!(
            wait_for_ping(self.port, Duration::from_secs(10)),
            "redis-server on port {} did not answer PING:\n{}",
            self.port,
            self.log()
        );
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join(format!("redis-{}.log", self.port))).unwrap_or_default()
    }

    /// Kill the server (its data is lost: no persistence).
    pub fn stop(&mut self) {
        drop(self.proc.take());
    }

    /// Start it again on the same port (empty).
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Freeze the server (SIGSTOP): connections stay open but nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Unfreeze it (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.proc.as_ref().expect("redis-server is not running").child.id();
        let ok = Command::new("kill").args([sig, &pid.to_string()]).status().is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid} failed");
    }

    /// Run one command (panics if Redis cannot be reached).
    pub fn cmd(&self, args: &[&str]) -> Resp {
        command(self.port, args).unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    /// Every key (SCAN).
    pub fn keys(&self) -> Vec<String> {
        scan_keys(self.port)
    }
}

pub fn scan_keys(port: u16) -> Vec<String> {
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    loop {
        let reply = command(port, &["SCAN", &cursor, "COUNT", "1000"]).unwrap().as_array();
        cursor = reply[0].as_text().unwrap();
        keys.extend(reply[1].as_array().iter().filter_map(Resp::as_text));
        if cursor == "0" {
            return keys;
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(p) = &self.proc {
                let _ = Command::new("kill").args(["-CONT", &p.child.id().to_string()]).status();
            }
        }
        self.stop();
    }
}

/// Certificates made by `openssl` for TLS tests: a CA, a server certificate for 127.0.0.1 and
/// a client certificate, all signed by the CA.
pub struct TestCerts {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TestCerts {
    pub fn make(dir: &Path) -> TestCerts {
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .stdin(Stdio::null())
                .output()
                .expect("openssl not found: install it (apt-get install openssl)");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=tollgate-test-ca",
        ]);
        for (name, subject) in [("server", "/CN=127.0.0.1"), ("client", "/CN=tollgate-store")] {
            let (key, csr, crt, ext) =
                (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("{name}.ext"));
            openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", subject]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &ext,
            ]);
        }
        TestCerts {
            ca: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
        }
    }
}

/// A Redis that also listens with TLS.
pub struct TlsRedis {
    pub redis: Redis,
    pub tls_port: u16,
    pub certs: TestCerts,
}

impl TlsRedis {
    /// `rediss://127.0.0.1:TLS_PORT`
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port)
    }
}

/// A master, one replica and one sentinel watching them (master name `tollgate`), so tests
/// can kill the master and watch the sentinel promote the replica.
pub struct Sentinel {
    pub master: Redis,
    pub replica: Redis,
    pub sentinel_port: u16,
    _sentinel: Proc,
    _dir: TempDir,
}

impl Sentinel {
    pub fn start() -> Sentinel {
        let master = Redis::start();
        let replica = Redis::start_with(
            TempDir::new("redis-replica"),
            vec!["--replicaof".into(), "127.0.0.1".into(), master.port.to_string()],
        );
        let dir = TempDir::new("redis-sentinel");
        let sentinel_port = free_port();
        let conf = dir.0.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {}\nsentinel monitor tollgate 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds tollgate 500\nsentinel failover-timeout tollgate 2000\n",
                dir.0.display(),
                master.port
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.0.join("sentinel.log")).unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn redis-server --sentinel");
        let sentinel = Proc { name: "redis-sentinel".into(), child };
        assert!(wait_for_ping(sentinel_port, Duration::from_secs(10)), "the sentinel did not answer PING");
        // Wait until the replica is in sync, so a failover has something to promote.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !command(replica.port, &["INFO", "replication"])
            .ok()
            .and_then(|r| r.as_text())
            .is_some_and(|t| t.contains("master_link_status:up"))
        {
            assert!(Instant::now() < deadline, "the replica did not sync with the master within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Sentinel { master, replica, sentinel_port, _sentinel: sentinel, _dir: dir }
    }

    /// `redis+sentinel://127.0.0.1:PORT/tollgate`
    pub fn url(&self) -> String {
        format!("redis+sentinel://127.0.0.1:{}/tollgate", self.sentinel_port)
    }

    /// The port of the master the sentinel currently reports.
    pub fn master_port(&self) -> Option<u16> {
        let r = command(self.sentinel_port, &["SENTINEL", "get-master-addr-by-name", "tollgate"]).ok()?;
        r.as_array().get(1)?.as_text()?.parse().ok()
    }
}

/// A Redis Cluster of `n` primaries (no replicas) on 127.0.0.1.
pub struct Cluster {
    pub ports: Vec<u16>,
    _dir: TempDir,
    _procs: Vec<Proc>,
}

impl Cluster {
    pub fn start(n: usize) -> Cluster {
        require_redis_server();
        let dir = TempDir::new("redis-cluster");
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let procs: Vec<Proc> = ports
            .iter()
            .map(|&port| {
                let extra = vec![
                    "--cluster-enabled".to_string(),
                    "yes".to_string(),
                    "--cluster-config-file".to_string(),
                    dir.0.join(format!("nodes-{port}.conf")).display().to_string(),
                    "--cluster-port".to_string(),
                    free_port().to_string(),
                    "--cluster-node-timeout".to_string(),
                    "5000".to_string(),
                ];
                spawn_server(port, &dir, &extra)
            })
            .collect();
        for &port in &ports {
            assert!(wait_for_ping(port, Duration::from_secs(10)), "cluster node {port} did not answer PING");
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli not found: run `make setup`");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = ports.iter().all(|&p| {
                command(p, &["CLUSTER", "INFO"])
                    .ok()
                    .and_then(|r| r.as_text())
                    .is_some_and(|t| t.contains("cluster_state:ok"))
            });
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "the cluster did not reach cluster_state:ok within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Cluster { ports, _dir: dir, _procs: procs }
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...`
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// Every key of every node, with the node's port.
    pub fn keys(&self) -> Vec<(u16, String)> {
        self.ports.iter().flat_map(|&p| scan_keys(p).into_iter().map(move |k| (p, k))).collect()
    }
}
