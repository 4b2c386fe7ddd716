//! Global limits across two Envoys (2 workers each), two tollgate-store replicas and one
//! Redis (or a 3-node Redis Cluster): strict sync is exact over the fleet; when Redis or the
//! store is gone the failure mode holds, nothing waits past the timeout, and limiting resumes
//! when Redis returns.

use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tollgate_e2e::http::Request;
use tollgate_e2e::redis::{Cluster, Redis};
use tollgate_e2e::store::{Store, PROXY_TOKEN};
use tollgate_e2e::{repo_root, Envoy, EnvoyOptions, MockLlm};

fn plugin_config(sync: &str, failure_mode: &str, limit: u64) -> String {
    json!({
        "store": {"cluster": "tollgate_store", "authority": "tollgate-store", "token": PROXY_TOKEN,
                  "timeout": "250ms", "failure_mode": failure_mode, "fleet_size": 2},
        "rules": [{"name": "fleet", "key": ["api_key"], "scope": "global", "sync": sync,
                   "algorithm": "gcra", "limit": limit, "window": "1h"}]
    })
    .to_string()
}

fn envoy_with_store(config: &str, upstream: u16, store_port: u16) -> Envoy {
    let mut opts = EnvoyOptions::standalone(config, upstream);
    opts.template = repo_root().join("envoy/with-store.yaml");
    opts.vars.push(("STORE_PORT".into(), store_port.to_string()));
    Envoy::start(opts)
}

/// Two Envoys, each in front of its own store replica.
struct Fleet {
    envoys: Vec<Envoy>,
    _stores: Vec<Store>,
    _llm: MockLlm,
}

fn fleet(redis_url: &str, config: &str) -> Fleet {
    let llm = MockLlm::start();
    let stores = vec![Store::start(redis_url, &[]), Store::start(redis_url, &[])];
    let envoys = stores.iter().map(|s| envoy_with_store(config, llm.port, s.port)).collect();
    Fleet { envoys, _stores: stores, _llm: llm }
}

fn send(envoy: &Envoy, key: &str) -> (u16, Duration) {
    let start = Instant::now();
    let status = Request::get(&envoy.url("/")).header("x-api-key", key).send().map(|r| r.status).unwrap_or(0);
    (status, start.elapsed())
}

/// 400 requests from 16 threads spread over both proxies; how many got 200.
fn admitted_over_the_fleet(f: &Fleet, key: &str) -> usize {
    let ok = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..16 {
            let (ok, envoy) = (&ok, &f.envoys[t % 2]);
            s.spawn(move || {
                for _ in 0..25 {
                    let (status, _) = send(envoy, key);
                    assert!(status == 200 || status == 429, "status {status}");
                    if status == 200 {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    ok.load(Ordering::SeqCst)
}

#[test]
fn strict_sync_admits_exactly_the_limit_over_two_proxies() {
    let redis = Redis::start();
    let f = fleet(&redis.url(), &plugin_config("strict", "closed", 100));
    assert_eq!(admitted_over_the_fleet(&f, "sk-fleet"), 100);
    // The counter lives in Redis, under its hash: another key is independent.
    assert_eq!(send(&f.envoys[1], "sk-other").0, 200);
    assert!(redis.keys().iter().all(|k| !k.contains("sk-")), "no raw key in Redis: {:?}", redis.keys());
}

#[test]
fn strict_sync_on_a_redis_cluster() {
    let cluster = Cluster::start(3);
    let f = fleet(&cluster.url(), &plugin_config("strict", "closed", 60));
    assert_eq!(admitted_over_the_fleet(&f, "sk-cluster"), 60);
}

#[test]
fn redis_down_closed_answers_503_quickly_and_recovers() {
    let mut redis = Redis::start();
    let f = fleet(&redis.url(), &plugin_config("strict", "closed", 1000));
    assert_eq!(send(&f.envoys[0], "k").0, 200);
    redis.stop();
    for i in 0..10 {
        let (status, took) = send(&f.envoys[i % 2], "k");
        assert_eq!(status, 503, "request {i} with Redis down");
        // Never past store.timeout: a bound with ample slack for a busy machine (a request that
        // waited for the dead Redis would take Envoy's 15 s route timeout).
        assert!(took < Duration::from_secs(3), "request {i} took {took:?}: past the timeout");
    }
    let failures = f.envoys[0].prometheus_value("tollgate_failure_mode_used{}").unwrap();
    assert!(failures >= 5.0, "failure_mode_used {failures}");
    redis.restart();
    // The breaker lets a probe through within its cooldown; limiting resumes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while send(&f.envoys[0], "k").0 != 200 {
        assert!(Instant::now() < deadline, "global limiting did not resume after Redis returned");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn redis_down_local_mode_admits_each_proxy_its_share() {
    let mut redis = Redis::start();
    let f = fleet(&redis.url(), &plugin_config("strict", "local", 20));
    redis.stop();
    // fleet_size 2: each proxy may admit 10 of the 20 on its own.
    for (i, envoy) in f.envoys.iter().enumerate() {
        let statuses: Vec<u16> = (0..15).map(|_| send(envoy, "sk-local").0).collect();
        let ok = statuses.iter().filter(|s| **s == 200).count();
        assert_eq!(ok, 10, "proxy {i}: {statuses:?}");
    }
}

#[test]
fn redis_down_open_mode_lets_everything_through() {
    let mut redis = Redis::start();
    let f = fleet(&redis.url(), &plugin_config("strict", "open", 1));
    assert_eq!(send(&f.envoys[0], "sk-open").0, 200);
    assert_eq!(send(&f.envoys[0], "sk-open").0, 429);
    redis.stop();
    for _ in 0..5 {
        assert_eq!(send(&f.envoys[1], "sk-open").0, 200);
    }
}

#[test]
fn batched_sync_never_admits_more_than_the_limit_and_stays_within_its_bound() {
    let redis = Redis::start();
    let f = fleet(&redis.url(), &plugin_config("batched", "closed", 100));
    let admitted = admitted_over_the_fleet(&f, "sk-batched");
    // Each proxy holds at most max_lease = ceil(100 / (2 x 2)) = 25 units of it.
    eprintln!("batched: admitted {admitted} of limit 100 (400 requests over 2 proxies)");
    assert!(admitted <= 100, "over-admitted: {admitted}");
    assert!(admitted >= 50, "under-admitted beyond the bound: {admitted}");
}

#[test]
fn batched_sync_in_steady_state_waits_for_no_callout() {
    let redis = Redis::start();
    let f = fleet(&redis.url(), &plugin_config("batched", "closed", 100_000));
    let envoy = &f.envoys[0];
    // About 3 s: leases last 5 x 100 ms, so they must be renewed several times.
    let n = 1000;
    for i in 0..n {
        let (status, _) = send(envoy, "sk-steady");
        assert_eq!(status, 200, "request {i}");
        std::thread::sleep(Duration::from_millis(2));
    }
    let waited = envoy.prometheus_value("tollgate_store_waited{}").unwrap();
    eprintln!("batched steady state: {waited} of {n} requests waited for a callout");
    assert!(waited <= 3.0, "{waited} of {n} requests waited for the store");
}

#[test]
fn batched_leases_are_renewed_ahead_of_need_by_one_flusher() {
    let redis = Redis::start();
    // max_lease = 1000 / 4 = 250; a first lease of 125 lasts ~0.25 s at this pace.
    let f = fleet(&redis.url(), &plugin_config("batched", "closed", 1000));
    let envoy = &f.envoys[0];
    let n = 600;
    let mut ok = 0;
    for _ in 0..n {
        if send(envoy, "sk-renew").0 == 200 {
            ok += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let waited = envoy.prometheus_value("tollgate_store_waited{}").unwrap();
    eprintln!("batched renewals: {ok} admitted, {waited} of {n} waited for a callout");
    assert_eq!(ok, n, "1000/h admits all 600");
    assert!(waited <= (n / 10) as f64, "{waited} of {n} requests waited: leases are not renewed ahead of need");
}
