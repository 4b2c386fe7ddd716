//! tollgate-store against Redis over TLS (mutual TLS with a private CA) and behind Sentinel
//! (including a failover). Needs redis-server, openssl and `cargo build -p tollgate-store`.

use tollgate_e2e::eventually;

use serde_json::{json, Value};
use tollgate_e2e::redis::{Redis, Sentinel};
use tollgate_e2e::store::Store;

fn body(key: &str, cost: u64) -> Value {
    json!({"checks": [{"rule": "modes", "key": key, "algorithm": "fixed_window", "limit": 100,
                       "window_ms": 86_400_000, "cost": cost}]})
}

#[test]
fn rediss_with_a_private_ca_and_a_client_certificate() {
    let tls = Redis::start_tls();
    let c = &tls.certs;
    let (ca, cert, key) =
        (c.ca.display().to_string(), c.client_cert.display().to_string(), c.client_key.display().to_string());
    let s = Store::start(&tls.url(), &["--redis-ca-file", &ca, "--redis-cert-file", &cert, "--redis-key-file", &key]);
    assert_eq!(s.get("/healthz").status, 200, "{}", s.get("/healthz").text());
    let r = s.post("/v1/check", &body("00000000000000a1", 7));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["results"][0]["remaining"], 93);
    // The counter really is in that Redis.
    assert!(tls.redis.keys().contains(&"tollgate:{00000000000000a1}:modes".to_string()), "{:?}", tls.redis.keys());

    // Without the client certificate, the server refuses: 503, not a hang.
    let no_client_cert = Store::start(&tls.url(), &["--redis-ca-file", &ca]);
    let r = no_client_cert.post("/v1/check", &body("00000000000000a1", 1));
    assert_eq!(r.status, 503, "{}", r.text());
    // Without the CA, the server's certificate is not trusted.
    let untrusted = Store::start(&tls.url(), &["--redis-cert-file", &cert, "--redis-key-file", &key]);
    let why = eventually("503 naming the certificate", 10, || {
        let r = untrusted.get("/healthz");
        assert_eq!(r.status, 503, "{}", r.text());
        r.text().contains("certificate").then(|| r.text())
    });
    assert!(why.contains("store_unavailable"), "{why}");
}

#[test]
fn sentinel_finds_the_master_and_follows_a_failover() {
    let mut sentinel = Sentinel::start();
    let s = Store::start(&sentinel.url(), &[]);
    let key = "00000000000000b2";
    let r = s.post("/v1/check", &body(key, 10));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["results"][0]["remaining"], 90);
    // The write reached the master, and the replica has it too.
    let redis_key = format!("tollgate:{{{key}}}:modes");
    assert!(sentinel.master.keys().contains(&redis_key), "{:?}", sentinel.master.keys());
    eventually("the replica has the counter", 10, || {
        (sentinel.replica.cmd(&["EXISTS", &redis_key]).as_int() == 1).then_some(())
    });
    // The master dies: the sentinel promotes the replica, and the store follows.
    let old = sentinel.master.port;
    sentinel.master.stop();
    let promoted = eventually("the sentinel promotes the replica", 15, || sentinel.master_port().filter(|p| *p != old));
    assert_eq!(promoted, sentinel.replica.port);
    let remaining = eventually("the store answers from the new master", 15, || {
        let r = s.post("/v1/check", &body(key, 1));
        (r.status == 200).then(|| r.json()["results"][0]["remaining"].clone())
    });
    assert_eq!(remaining, 89, "the counter continues on the promoted replica");
    assert_eq!(s.get("/healthz").status, 200);
}
