//! The web console of tollgate-store (`/ui`, docs/console.md).
//!
//! `http_surface`: what the console promises over plain HTTP: security headers on every
//! answer, a login that turns the admin token into an HttpOnly SameSite=Strict session
//! cookie, CSRF-safe writes, the admin API reached in process (and nothing else), `--no-ui`.
//!
//! `browser`: an operator's session in a real Chromium (headless, through chromedriver)
//! against a real store, Redis and Envoy with Tollgate: log in, see the traffic on the
//! overview, look up a key Envoy traffic limited, add a grant and see it listed and audited,
//! remove it, edit per-key limits, reset the key; a stored `<img onerror>` shows as text; no
//! page scrolls sideways at 1280 px or on a phone; dark mode. Screenshots of every page go to
//! target/console-screenshots/ (and to docs/console/ with TOLLGATE_DOCS_SCREENSHOTS=1).
//!
//! Needs `make build` (the filter), `cargo build -p tollgate-store`, redis-server, chromium
//! and chromium-driver (`make setup`).

use serde_json::{json, Value};
use tollgate_e2e::fleet_hash;
use tollgate_e2e::http::{Request, Response};
use tollgate_e2e::redis::Redis;
use tollgate_e2e::store::{Store, ADMIN_TOKEN, PROXY_TOKEN};

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The screenshots docs/console.md shows (docs/console/NAME.png).
const DOC_SHOTS: [&str; 9] = [
    "login",
    "overview",
    "key-lookup",
    "overrides",
    "confirm-dialog",
    "per-key-limits",
    "audit",
    "phone-overrides",
    "overview-dark",
];

fn admin_api(s: &Store, method: &str, path: &str, body: Option<Value>) -> Response {
    let mut req = Request { method: method.into(), url: s.url(path), ..Default::default() }
        .header("authorization", &format!("Bearer {ADMIN_TOKEN}"));
    if let Some(b) = body {
        req.body = b.to_string().into_bytes();
        req = req.header("content-type", "application/json");
    }
    req.send().unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

mod http_surface {
    //! Security headers, login, session cookie, CSRF, in-process admin API, `--no-ui`.
    use super::*;

    /// A logged-in client: the session cookie and the CSRF token.
    struct Client<'a> {
        store: &'a Store,
        cookie: String,
        csrf: String,
    }

    fn login(store: &Store) -> (Response, Option<String>) {
        let r = Request::post(&store.url("/ui/login"), &json!({"token": ADMIN_TOKEN}).to_string())
            .header("origin", &store.url(""))
            .send()
            .unwrap();
        let cookie = r.header("set-cookie").and_then(|c| c.split(';').next()).map(str::to_string);
        (r, cookie)
    }

    impl<'a> Client<'a> {
        fn new(store: &'a Store) -> Client<'a> {
            let (r, cookie) = login(store);
            assert_eq!(r.status, 200, "{}", r.text());
            let cookie = cookie.expect("a session cookie");
            let s = Request::get(&store.url("/ui/api/session")).header("cookie", &cookie).send().unwrap();
            assert_eq!(s.status, 200, "{}", s.text());
            let csrf = s.json()["csrf"].as_str().unwrap().to_string();
            Client { store, cookie, csrf }
        }

        fn send(&self, method: &str, path: &str, body: Option<Value>, extra: &[(&str, &str)]) -> Response {
            let mut req = Request { method: method.into(), url: self.store.url(path), ..Default::default() }
                .header("cookie", &self.cookie);
            if let Some(b) = body {
                req.body = b.to_string().into_bytes();
                req = req.header("content-type", "application/json");
            }
            for (k, v) in extra {
                req = req.header(k, v);
            }
            req.send().unwrap_or_else(|e| panic!("{method} {path}: {e}"))
        }

        fn write(&self, method: &str, path: &str, body: Option<Value>) -> Response {
            let origin = self.store.url("");
            self.send(method, path, body, &[("x-tollgate-csrf", &self.csrf), ("origin", &origin)])
        }
    }

    fn assert_security_headers(r: &Response, what: &str) {
        assert_eq!(r.header("content-security-policy"), Some(CSP), "{what}");
        assert!(!CSP.contains("unsafe-inline"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{what}");
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{what}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{what}");
    }

    #[test]
    fn every_console_answer_carries_the_security_headers() {
        let redis = Redis::start();
        let store = Store::start(&redis.url(), &[]);
        let page = store.get("/ui/");
        assert_eq!(page.status, 200);
        assert!(page.header("content-type").unwrap().starts_with("text/html"));
        assert!(page.text().contains("<script type=\"module\" src=\"assets/app.js\"></script>"));
        assert_eq!(page.header("cache-control"), Some("no-store"));
        let moved = store.get("/ui");
        assert_eq!((moved.status, moved.header("location")), (308, Some("/ui/")));
        let js = store.get("/ui/assets/app.js");
        assert_eq!(js.header("content-type"), Some("text/javascript; charset=utf-8"));
        assert_eq!(store.get("/ui/assets/nope.js").status, 404);
        let api = store.get("/ui/api/overview");
        assert_eq!(api.status, 401);
        assert_eq!(api.header("cache-control"), Some("no-store"));
        for (r, what) in [(&page, "page"), (&moved, "redirect"), (&js, "asset"), (&api, "api 401")] {
            assert_security_headers(r, what);
        }
        assert_security_headers(&store.get("/ui/nowhere"), "unknown console path");
        assert_eq!(store.get("/ui/nowhere").status, 404);
    }

    #[test]
    fn login_sets_an_httponly_samesite_session_cookie_without_the_token() {
        let redis = Redis::start();
        let store = Store::start(&redis.url(), &[]);
        let post = |body: &str, ct: &str, origin: Option<&str>| {
            let mut r = Request::post(&store.url("/ui/login"), body);
            r.headers.retain(|(k, _)| k != "content-type");
            r = r.header("content-type", ct);
            if let Some(o) = origin {
                r = r.header("origin", o);
            }
            r.send().unwrap()
        };
        let wrong = post(&json!({"token": "guess"}).to_string(), "application/json", None);
        assert_eq!(wrong.status, 401);
        assert!(wrong.header("set-cookie").is_none());
        let proxy = post(&json!({"token": PROXY_TOKEN}).to_string(), "application/json", None);
        assert_eq!(proxy.status, 401, "the proxy token is not an admin token");
        // A form post (what another site could make a browser send) is refused.
        assert_eq!(post(&format!("token={ADMIN_TOKEN}"), "application/x-www-form-urlencoded", None).status, 415);
        let evil = post(&json!({"token": ADMIN_TOKEN}).to_string(), "application/json", Some("http://evil.example"));
        assert_eq!(evil.status, 403);

        let (ok, cookie) = login(&store);
        assert_eq!(ok.status, 200, "{}", ok.text());
        let set = ok.header("set-cookie").unwrap();
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=28800"] {
            assert!(set.split("; ").any(|a| a == attr), "{attr} missing in {set}");
        }
        assert!(!set.contains(ADMIN_TOKEN), "the cookie does not carry the token: {set}");
        assert!(cookie.unwrap().starts_with("tollgate_console="));
        // Behind an HTTPS proxy the cookie is Secure too.
        let https = Request::post(&store.url("/ui/login"), &json!({"token": ADMIN_TOKEN}).to_string())
            .header("x-forwarded-proto", "https")
            .send()
            .unwrap();
        assert!(https.header("set-cookie").unwrap().ends_with("; Secure"));
        // A forged or altered cookie is no session.
        let forged = Request::get(&store.url("/ui/api/session"))
            .header("cookie", "tollgate_console=99999999999999.00000000000000000000000000000000.00")
            .send()
            .unwrap();
        assert_eq!(forged.status, 401);
    }

    #[test]
    fn writes_need_the_session_the_csrf_token_and_this_origin() {
        let redis = Redis::start();
        let store = Store::start(&redis.url(), &[]);
        let c = Client::new(&store);
        let grant = json!({"kind": "grant", "target": "sk-csrf", "multiplier": 2, "ttl": "10m",
                           "admin": "alice", "reason": "csrf test"});
        // The admin token alone does not open the console API: it takes a session.
        let bearer = admin_api(&store, "GET", "/ui/api/v1/overrides", None);
        assert_eq!(bearer.status, 401);
        let no_csrf = c.send("POST", "/ui/api/v1/overrides", Some(grant.clone()), &[]);
        assert_eq!(no_csrf.status, 403, "{}", no_csrf.text());
        assert!(no_csrf.text().contains("X-Tollgate-CSRF"));
        let wrong = c.send("POST", "/ui/api/v1/overrides", Some(grant.clone()), &[("x-tollgate-csrf", "00ff")]);
        assert_eq!(wrong.status, 403);
        let cross = c.send(
            "POST",
            "/ui/api/v1/overrides",
            Some(grant.clone()),
            &[("x-tollgate-csrf", &c.csrf), ("origin", "https://evil.example")],
        );
        assert_eq!(cross.status, 403);
        let site = c.send(
            "POST",
            "/ui/api/v1/overrides",
            Some(grant.clone()),
            &[("x-tollgate-csrf", &c.csrf), ("sec-fetch-site", "cross-site")],
        );
        assert_eq!(site.status, 403);
        assert!(admin_api(&store, "GET", "/v1/overrides", None).json()["overrides"].as_array().unwrap().is_empty());

        // With all three: the admin API's own answer, audited like any admin write.
        let added = c.write("POST", "/ui/api/v1/overrides", Some(grant));
        assert_eq!(added.status, 201, "{}", added.text());
        assert_eq!(added.json()["target"], fleet_hash("sk-csrf"));
        assert_eq!(added.header("cache-control"), Some("no-store"));
        let audit = admin_api(&store, "GET", "/v1/audit?action=override.add", None).json();
        assert_eq!(audit["entries"][0]["reason"], "csrf test");
        assert_eq!(audit["entries"][0]["admin"], "alice");
        // Validation errors are the API's, in words.
        let bad = c.write(
            "POST",
            "/ui/api/v1/overrides",
            Some(json!({"kind": "grant", "target": "sk-1",
            "multiplier": 2, "ttl": "10 minutes", "admin": "a", "reason": "r"})),
        );
        assert_eq!(bad.status, 400);
        assert!(bad.json()["error"]["message"].as_str().unwrap().starts_with("ttl: "), "{}", bad.text());
        // Reads need the session only.
        let list = c.send("GET", "/ui/api/v1/overrides", None, &[]);
        assert_eq!(list.json()["overrides"].as_array().unwrap().len(), 1);
        // The raw key is hashed on a POST (never in a URL).
        let h = c.write("POST", "/ui/api/hash", Some(json!({"key": "sk-csrf"})));
        assert_eq!(h.json()["key"], fleet_hash("sk-csrf"));
        // Only the admin API: not the proxies' sync, not the proxy API.
        assert_eq!(c.send("GET", "/ui/api/v1/sync", None, &[]).status, 404);
        assert_eq!(c.write("POST", "/ui/api/v1/check", Some(json!({"checks": []}))).status, 404);

        // The overview in one call.
        let o = c.send("GET", "/ui/api/overview", None, &[]).json();
        assert_eq!(o["health"]["redis"]["ok"], true, "{o}");
        assert!(o["stats"]["rules"].is_array(), "{o}");
        assert_eq!(o["overrides"].as_array().unwrap().len(), 1);
        assert!(o["store"]["proxy_calls"]["/v1/check"].is_object());

        // Logging out clears the cookie (a write: it takes the CSRF token too).
        assert_eq!(c.send("POST", "/ui/logout", None, &[]).status, 403);
        let out = c.write("POST", "/ui/logout", None);
        assert_eq!(out.status, 200);
        assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn the_overview_still_answers_when_redis_is_down() {
        let mut redis = Redis::start();
        let store = Store::start(&redis.url(), &["--redis-timeout-ms", "200"]);
        let c = Client::new(&store);
        redis.stop();
        let o = c.send("GET", "/ui/api/overview", None, &[]);
        assert_eq!(o.status, 200, "{}", o.text());
        let o = o.json();
        assert_eq!(o["health"]["redis"]["ok"], false, "{o}");
        assert!(!o["health"]["redis"]["error"].as_str().unwrap().is_empty());
        assert!(o["stats"].is_null() && o["stats_error"].is_string(), "{o}");
    }

    #[test]
    fn docs_show_a_screenshot_of_every_page() {
        let doc = tollgate_e2e::read("docs/console.md");
        for name in DOC_SHOTS {
            assert!(doc.contains(&format!("(console/{name}.png)")), "docs/console.md does not show {name}.png");
            let png = tollgate_e2e::repo_root().join(format!("docs/console/{name}.png"));
            let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
            assert!(bytes.starts_with(b"\x89PNG"), "{} is not a PNG", png.display());
        }
        let readme = tollgate_e2e::read("README.md");
        assert!(readme.contains("(docs/console.md)"), "the README links docs/console.md");
    }

    #[test]
    fn no_ui_turns_the_console_off() {
        let redis = Redis::start();
        let store = Store::start(&redis.url(), &["--no-ui"]);
        for path in ["/ui/", "/ui", "/ui/assets/app.js", "/ui/api/session"] {
            assert_eq!(store.get(path).status, 404, "{path}");
        }
        let login = Request::post(&store.url("/ui/login"), &json!({"token": ADMIN_TOKEN}).to_string()).send().unwrap();
        assert_eq!(login.status, 404);
        assert_eq!(admin_api(&store, "GET", "/v1/overrides", None).status, 200, "the admin API stays");
    }
}

mod browser {
    //! An operator's session in a real browser.
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tollgate_e2e::webdriver::Browser;
    use tollgate_e2e::{repo_root, Envoy, EnvoyOptions, MockLlm};

    const KEY: &str = "sk-console-demo";
    const XSS: &str = "<img src=x onerror=alert(1)>";

    struct Setup {
        envoy: Envoy,
        store: Store,
        _redis: Redis,
        _llm: MockLlm,
    }

    fn setup() -> Setup {
        let redis = Redis::start();
        let store = Store::start(&redis.url(), &[]);
        let llm = MockLlm::start();
        let config = json!({
            "store": {"cluster": "tollgate_store", "authority": "tollgate-store", "token": PROXY_TOKEN,
                      "timeout": "1s", "poll_interval": "200ms"},
            "rules": [{"name": "fleet-rpm", "key": ["api_key"], "scope": "global", "sync": "strict",
                       "algorithm": "token_bucket", "limit": 3, "window": "1h"}]
        });
        let mut opts = EnvoyOptions::standalone(&config.to_string(), llm.port);
        opts.template = repo_root().join("envoy/with-store.yaml");
        opts.vars.push(("STORE_PORT".into(), store.port.to_string()));
        Setup { envoy: Envoy::start(opts), store, _redis: redis, _llm: llm }
    }

    fn status(envoy: &Envoy, key: &str) -> u16 {
        Request::get(&envoy.url("/")).header("x-api-key", key).send().map(|r| r.status).unwrap_or(0)
    }

    fn shot(b: &Browser, name: &str) {
        let path = repo_root().join("target/console-screenshots").join(format!("{name}.png"));
        b.screenshot(&path);
        if DOC_SHOTS.contains(&name) && std::env::var("TOLLGATE_DOCS_SCREENSHOTS").is_ok_and(|v| v == "1") {
            let docs: PathBuf = repo_root().join("docs/console").join(format!("{name}.png"));
            std::fs::create_dir_all(docs.parent().unwrap()).unwrap();
            std::fs::copy(&path, &docs).unwrap();
        }
    }

    fn page(b: &Browser, s: &Setup, hash: &str) {
        b.goto(&s.store.url(&format!("/ui/{hash}")));
    }

    /// Fill and confirm the confirmation dialog (with a screenshot of it named `shot_name`).
    fn confirm_with(b: &Browser, reason: &str, shot_name: Option<&str>) {
        b.wait("the confirmation dialog", || {
            b.script("return document.getElementById('confirm').open", json!([])).as_bool().filter(|o| *o)
        });
        b.type_into(&b.find("#confirm-admin"), "alice");
        b.type_into(&b.find("#confirm-reason"), reason);
        if let Some(name) = shot_name {
            shot(b, name);
        }
        b.click(&b.find("#confirm-ok"));
        b.wait("the dialog to close", || {
            let open = b.script("return document.getElementById('confirm').open", json!([]));
            if open == json!(true) {
                let err = b.visible_text("#confirm-error").unwrap_or_default();
                assert!(err.is_empty(), "the dialog shows an error: {err}");
                None
            } else {
                Some(())
            }
        });
    }

    fn confirm(b: &Browser, reason: &str) {
        confirm_with(b, reason, None)
    }

    /// No horizontal scrolling: the page is not wider than the viewport.
    fn fits(b: &Browser, what: &str) {
        let v = b.script("return [document.documentElement.scrollWidth, window.innerWidth]", json!([]));
        let (content, viewport) = (v[0].as_u64().unwrap(), v[1].as_u64().unwrap());
        assert!(content <= viewport, "{what}: the page is {content} px wide in a {viewport} px viewport");
    }

    fn luminance(css: &str) -> f64 {
        let n: Vec<f64> = css
            .trim_start_matches("rgba(")
            .trim_start_matches("rgb(")
            .trim_end_matches(')')
            .split(',')
            .filter_map(|p| p.trim().parse().ok())
            .collect();
        (0.2126 * n[0] + 0.7152 * n[1] + 0.0722 * n[2]) / 255.0
    }

    const PAGES: [&str; 5] = ["#/overview", "#/keys", "#/overrides", "#/limits", "#/audit"];

    #[test]
    fn an_operator_session_in_chromium() {
        let s = setup();
        // Real traffic through Envoy and Tollgate: a global rule at the store limits the key.
        let statuses: Vec<u16> = (0..5).map(|_| status(&s.envoy, KEY)).collect();
        assert_eq!(statuses, [200, 200, 200, 429, 429]);

        let b = Browser::start(1280, 900);
        b.viewport(1280, 900, false);

        // Log in: a wrong token is refused in words; the right one opens the overview.
        page(&b, &s, "");
        b.wait_text("#page-login h1", |t| t == "Log in");
        shot(&b, "login");
        b.type_into(&b.find("#login-token"), "not-the-token");
        b.click(&b.find("#login-submit"));
        b.wait_text("#login-error", |t| t.contains("That is not the admin token"));
        b.type_into(&b.find("#login-token"), ADMIN_TOKEN);
        b.click(&b.find("#login-submit"));
        b.wait_text("#page-overview h1", |t| t == "Overview");

        // The overview shows the rule, the proxy and the denied key from that traffic, and
        // decisions per second while traffic flows.
        let rules = b.wait_text("#ov-rules tbody", |t| t.contains("fleet-rpm"));
        assert!(rules.contains("fleet-rpm"), "{rules}");
        b.wait_text("#ov-top-keys tbody", |t| t.contains(&fleet_hash(KEY)));
        b.wait_text("#ov-proxies tbody", |t| t.contains("127.0.0.1"));
        b.wait_text("#ov-redis-list", |t| t.contains("answering"));
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    status(&s.envoy, &format!("sk-load-{i}"));
                }
            });
            // Allowed/s of fleet-rpm: the second cell of its row, non-zero once two polls saw traffic.
            b.wait("a non-zero allowed/s for fleet-rpm", || {
                let v = b.script(
                    "for (const tr of document.querySelectorAll('#ov-rules tbody tr')) \
                       if (tr.cells[0].textContent === 'fleet-rpm') return tr.cells[1].textContent; return null;",
                    json!([]),
                );
                v.as_str().and_then(|t| t.parse::<f64>().ok()).filter(|r| *r > 0.0)
            });
            shot(&b, "overview");
            stop.store(true, Ordering::SeqCst);
        });

        // Key lookup of the limited key: its counter at the store, used up.
        page(&b, &s, "#/keys");
        b.type_into(&b.find("#key-input"), KEY);
        b.click(&b.find("#key-form button[type=submit]"));
        let hash = fleet_hash(KEY);
        b.wait_text("#key-hash", |t| t == hash);
        let counters = b.wait_text("#key-rules tbody", |t| t.contains("fleet-rpm"));
        assert!(counters.contains("0 of 3"), "remaining 0 of 3: {counters}");
        assert!(b.current_url().ends_with(&format!("#/keys/{hash}")), "only the hash in the URL");
        shot(&b, "key-lookup");

        // Add a grant: a store error is shown in words in the dialog, which keeps what was
        // typed; then confirmed with admin and reason, listed, and in the audit log.
        page(&b, &s, "#/overrides");
        b.select("#ovr-kind", "grant");
        b.type_into(&b.find("#ovr-target"), KEY);
        b.select("#ovr-effect", "multiplier");
        b.type_into(&b.find("#ovr-multiplier"), "2");
        b.type_into(&b.find("#ovr-ttl"), "10 minutes");
        b.click(&b.find("#ovr-form button[type=submit]"));
        b.wait("the confirmation dialog", || {
            b.script("return document.getElementById('confirm').open", json!([])).as_bool().filter(|o| *o)
        });
        b.type_into(&b.find("#confirm-admin"), "alice");
        b.type_into(&b.find("#confirm-reason"), "console test grant");
        b.click(&b.find("#confirm-ok"));
        let err = b.wait_text("#confirm-error", |t| !t.is_empty());
        assert!(err.contains("ttl: \"10 minutes\": must be a duration like 90s, 10m, 2h or 7d"), "{err}");
        assert!(err.contains("HTTP 400"), "{err}");
        b.click(&b.find("#confirm-cancel"));
        b.type_into(&b.find("#ovr-ttl"), "10m");
        b.click(&b.find("#ovr-form button[type=submit]"));
        confirm_with(&b, "console test grant", Some("confirm-dialog"));
        let list = b.wait_text("#ovr-list tbody", |t| t.contains("console test grant"));
        assert!(list.contains(&hash) && list.contains("×2"), "{list}");
        b.wait_text("#ovr-list tbody", |t| t.contains("9m"));
        let api = admin_api(&s.store, "GET", "/v1/overrides", None).json();
        let grant = &api["overrides"][0];
        assert_eq!((grant["kind"].as_str(), grant["admin"].as_str()), (Some("grant"), Some("alice")));
        shot(&b, "overrides");
        page(&b, &s, "#/audit");
        let audit = b.wait_text("#audit-list tbody", |t| t.contains("console test grant"));
        assert!(audit.contains("override.add") && audit.contains("alice"), "{audit}");

        // Remove it (confirmed, with a reason): gone from the list, audited.
        page(&b, &s, "#/overrides");
        b.wait_text("#ovr-list tbody", |t| t.contains("console test grant"));
        b.click(&b.find("#ovr-list tbody button.danger"));
        confirm(&b, "grant no longer needed");
        b.wait_text("#ovr-empty", |t| t.contains("No active overrides"));
        page(&b, &s, "#/audit");
        b.select("#audit-action", "override.remove");
        b.click(&b.find("#audit-form button[type=submit]"));
        // Filtered by action: the removal only.
        b.wait_text("#audit-list tbody", |t| t.contains("grant no longer needed") && !t.contains("console test grant"));
        b.click(&b.find("#audit-clear"));
        b.wait_text("#audit-list tbody", |t| t.contains("console test grant"));
        shot(&b, "audit");

        // Per-key limits: a tier and the key's own limit for one rule.
        page(&b, &s, &format!("#/limits/{hash}"));
        b.wait_text("#lim-hash", |t| t == hash);
        b.type_into(&b.find("#lim-tier"), "pro");
        b.click(&b.find("#lim-add-rule"));
        b.type_into(&b.find("#lim-rules input[name=rule]"), "fleet-rpm");
        b.type_into(&b.find("#lim-rules input[name=limit]"), "10");
        b.click(&b.find("#lim-save"));
        confirm(&b, "enterprise contract");
        b.wait_text("#lim-current", |t| t.contains("enterprise contract"));
        let limits = admin_api(&s.store, "GET", &format!("/v1/keys/{hash}/limits?hash=1"), None).json();
        assert_eq!(limits["tier"], "pro");
        assert_eq!(limits["limits"]["fleet-rpm"], json!({"limit": 10, "burst": 10}));
        shot(&b, "per-key-limits");

        // Reset the key: its counters at the store are gone.
        page(&b, &s, &format!("#/keys/{hash}"));
        b.wait_text("#key-rules tbody", |t| t.contains("fleet-rpm"));
        b.click(&b.find("#key-reset"));
        confirm(&b, "support ticket 4711");
        b.wait_text("#key-rules tbody", |t| t.contains("No counter at the store"));
        let status = admin_api(&s.store, "GET", &format!("/v1/keys/{hash}/status?hash=1"), None).json();
        assert_eq!(status["rules"], json!([]), "{status}");

        // Stored markup is text: an override whose reason (and admin name) is HTML.
        let added = admin_api(
            &s.store,
            "POST",
            "/v1/overrides",
            Some(json!({"kind": "allow_ip", "target": "10.9.0.0/16", "ttl": "1h",
                        "admin": "<b>mallory</b>", "reason": XSS})),
        );
        assert_eq!(added.status, 201, "{}", added.text());
        for hash_page in ["#/overrides", "#/audit"] {
            page(&b, &s, hash_page);
            let table = if hash_page == "#/audit" { "#audit-list" } else { "#ovr-list" };
            b.wait_text(&format!("{table} tbody"), |t| t.contains(XSS));
            let cells = b.script(
                "return [...document.querySelectorAll(arguments[0] + ' tbody td')].map(td => td.textContent)",
                json!([table]),
            );
            let cells: Vec<&str> = cells.as_array().unwrap().iter().filter_map(Value::as_str).collect();
            assert!(cells.contains(&XSS), "{hash_page}: the reason shows as its characters: {cells:?}");
            assert!(cells.contains(&"<b>mallory</b>"), "{hash_page}: {cells:?}");
            let imgs = b.script("return document.querySelectorAll('main img, main b').length", json!([]));
            assert_eq!(imgs, json!(0), "{hash_page}: no element was made from the stored text");
            assert!(!b.alert_open(), "{hash_page}: no alert");
        }
        shot(&b, "xss-as-text");

        // The audit log pages: 30 writes by one admin, 25 a page, none lost or repeated
        // (many share a millisecond, the boundary the paging must get right).
        for i in 0..30 {
            let r = admin_api(
                &s.store,
                "POST",
                "/v1/overrides",
                Some(json!({"kind": "allow_ip", "target": format!("10.77.{i}.0/24"), "ttl": "1h",
                            "admin": "pager", "reason": format!("page test {i}")})),
            );
            assert_eq!(r.status, 201, "{}", r.text());
        }
        page(&b, &s, "#/audit");
        b.type_into(&b.find("#audit-admin"), "pager");
        b.select("#audit-size", "25");
        b.click(&b.find("#audit-form button[type=submit]"));
        let reasons = |b: &Browser| -> Vec<String> {
            let v = b.script(
                "return [...document.querySelectorAll('#audit-list tbody tr')].map(tr => tr.cells[5].textContent)",
                json!([]),
            );
            v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
        };
        b.wait_text("#audit-page", |t| t.starts_with("Page 1"));
        let first = b.wait("25 entries on page 1", || Some(reasons(&b)).filter(|r| r.len() == 25));
        assert_eq!(first[0], "page test 29", "newest first");
        b.click(&b.find("#audit-older"));
        b.wait_text("#audit-page", |t| t.starts_with("Page 2"));
        let second = reasons(&b);
        let mut all: Vec<String> = first.iter().chain(&second).cloned().collect();
        all.sort();
        all.dedup();
        assert_eq!((second.len(), all.len()), (5, 30), "page 2: {second:?}");
        assert_eq!(b.property(&b.find("#audit-older"), "disabled"), json!(true), "no page 3");
        b.click(&b.find("#audit-newer"));
        b.wait_text("#audit-page", |t| t.starts_with("Page 1"));
        assert_eq!(reasons(&b), first, "back to page 1");

        // Nothing secret where scripts or other sites can see it, and no request to anything
        // but the store.
        let origin = s.store.url("/");
        let elsewhere = b.script(
            "return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(arguments[0]))",
            json!([origin]),
        );
        assert_eq!(elsewhere, json!([]), "requests beyond the store");
        let seen = b.script(
            "return [document.cookie, location.href, ...performance.getEntriesByType('resource').map(e => e.name)].join(' ')",
            json!([]),
        );
        let seen = seen.as_str().unwrap();
        assert!(!seen.contains(ADMIN_TOKEN), "the admin token is in {seen}");
        assert!(!seen.contains("tollgate_console"), "the session cookie is readable by scripts: {seen}");
        assert!(!seen.contains(KEY), "a raw key went into a URL: {seen}");

        // Usable at 1280 px and on a phone: no page scrolls sideways.
        for (w, h, mobile) in [(1280, 900, false), (390, 844, true)] {
            b.viewport(w, h, mobile);
            for p in PAGES {
                page(&b, &s, p);
                b.wait("the page", || b.visible_text(&format!("#page-{} h1", &p[2..])));
                std::thread::sleep(std::time::Duration::from_millis(100));
                fits(&b, &format!("{p} at {w} px"));
            }
        }
        b.viewport(390, 844, true);
        page(&b, &s, "#/overrides");
        b.wait_text("#ovr-list tbody", |t| t.contains("10.9.0.0/16"));
        b.script("document.querySelector('#ovr-list').scrollIntoView()", json!([]));
        shot(&b, "phone-overrides");

        // Dark mode follows the system setting.
        b.viewport(1280, 900, false);
        b.color_scheme("dark");
        page(&b, &s, "#/overview");
        b.wait_text("#ov-rules tbody", |t| t.contains("fleet-rpm"));
        let colors =
            b.script("const s = getComputedStyle(document.body); return [s.backgroundColor, s.color]", json!([]));
        let (bg, fg) = (luminance(colors[0].as_str().unwrap()), luminance(colors[1].as_str().unwrap()));
        assert!(bg < 0.15 && fg > 0.7, "dark mode: background {colors} ({bg:.2}), text ({fg:.2})");
        shot(&b, "overview-dark");
        b.color_scheme("light");

        // Log out: back to the login form; the API refuses the old page.
        b.click(&b.find("#logout"));
        b.wait_text("#login-error", |t| t.contains("logged out"));
    }
}
