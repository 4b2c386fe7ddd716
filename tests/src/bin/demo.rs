//! `make demo`: Envoy with Tollgate in front of the mock LLM; a scripted burst from a free
//! and a pro API key; a table of what each request got.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tollgate_e2e::http::Request;
use tollgate_e2e::{read, Envoy, MockLlm};

fn main() {
    let config = read("examples/demo.json");
    println!("Starting the mock LLM and Envoy (envoy/demo.yaml) with examples/demo.json ...");
    let llm = MockLlm::start();
    let mut opts = tollgate_e2e::EnvoyOptions::standalone(&config, llm.port);
    opts.template = tollgate_e2e::repo_root().join("envoy/demo.yaml");
    let envoy = Envoy::start(opts);
    println!("Envoy listening on 127.0.0.1:{} (admin {})\n", envoy.port, envoy.admin_port);
    println!("Rule per-key-rpm: 5 requests/minute for the free tier, 8 for pro (token bucket).");
    println!("Rule per-key-tpm: 1,000 tokens/minute for free, 10,000 for pro, on /v1/chat/completions.\n");
    println!(
        "{:>3}  {:<12} {:<5} {:>6}  {:>9}  {:>11}  rule / note",
        "#", "key", "tier", "status", "remaining", "retry-after"
    );
    let small = r#"{"model":"gpt-4o","max_tokens":100,"messages":[{"role":"user","content":"Say hello to the demo"}]}"#;
    let large = r#"{"model":"gpt-4o","max_tokens":4000,"messages":[{"role":"user","content":"Write a long story"}]}"#;
    // Two keys hit their requests-per-minute limits; a third pro key spends its tokens.
    let script =
        [("sk-demo-free", "free", small, 10), ("sk-demo-pro", "pro", small, 10), ("sk-demo-pro-2", "pro", large, 3)];
    let mut n = 0;
    let (mut ok, mut limited) = (0, 0);
    for (key, tier, body, count) in script {
        for _ in 0..count {
            n += 1;
            let r = Request::post(&envoy.url("/v1/chat/completions"), body)
                .header("authorization", &format!("Bearer {key}"))
                .send()
                .expect("request through Envoy");
            let note = if r.status == 200 {
                ok += 1;
                let tokens = r.header("x-ratelimit-remaining-tokens").unwrap_or("-");
                format!("usage {} (prompt,completion); tokens left {tokens}", r.header("x-mock-usage").unwrap_or("-"))
            } else {
                limited += 1;
                let v = r.json();
                format!(
                    "{} [{}]: {}",
                    v["error"]["rule"].as_str().unwrap_or("?"),
                    v["error"]["type"].as_str().unwrap_or("?"),
                    v["error"]["message"].as_str().unwrap_or("")
                )
            };
            println!(
                "{:>3}  {:<13} {:<5} {:>6}  {:>9}  {:>11}  {}",
                n,
                key,
                tier,
                r.status,
                r.header("x-ratelimit-remaining").unwrap_or("-"),
                r.header("retry-after").unwrap_or("-"),
                note
            );
            // Tokens are settled when the response ends.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    println!("\n{ok} allowed, {limited} limited. Envoy's metrics (/stats/prometheus):");
    for line in envoy.prometheus().lines().filter(|l| l.starts_with("tollgate_rule_") && !l.ends_with(" 0")) {
        println!("  {line}");
    }
    println!("\nStopping Envoy and the mock LLM.");
}
