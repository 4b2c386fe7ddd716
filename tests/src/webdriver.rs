//! A small W3C WebDriver client over the harness's own HTTP client, driving Debian's
//! `chromium` (headless) through a `chromedriver` child process on a free loopback port.
//!
//! Chromium runs with a fresh profile in a temporary directory and with every background
//! service off (no sync, no component updates, no QUIC, no first-run), so it opens no
//! connection beyond 127.0.0.1. chromedriver accepts commands from 127.0.0.1 only. Both are
//! stopped on drop (the session is deleted first, which ends Chromium).
//!
//! A missing chromium or chromedriver fails the test with the command that installs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::{Request, Response};
use crate::{free_port, wait_for_port, Proc, TempDir};

/// The key of an element reference in W3C WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn require(path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.is_file(),
        "{path} not found: run `make setup` (as root it runs `apt-get install -y chromium chromium-driver`), \
         or `sudo apt-get install -y chromium chromium-driver`"
    );
    p
}

/// A WebDriver error answer.
#[derive(Debug)]
pub struct WdError {
    pub status: u16,
    pub error: String,
    pub message: String,
}

/// A browser session.
pub struct Browser {
    base: String,
    session: Option<String>,
    _profile: TempDir,
    dir: TempDir,
    driver: Option<Proc>,
}

/// A found element.
#[derive(Clone, Debug)]
pub struct Element(pub String);

impl Browser {
    /// Start chromedriver and a headless Chromium with a `width` x `height` window.
    pub fn start(width: u32, height: u32) -> Browser {
        let chromium = require(CHROMIUM);
        let driver = require(CHROMEDRIVER);
        let dir = TempDir::new("chromedriver");
        let profile = TempDir::new("chromium-profile");
        let port = free_port();
        let log = dir.0.join("chromedriver.log");
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg(format!("--allowed-origins=http://127.0.0.1:{port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let proc = Proc { name: "chromedriver".into(), child };
        assert!(wait_for_port(port, Duration::from_secs(30)), "chromedriver did not listen on 127.0.0.1:{port}");
        let mut b = Browser {
            base: format!("http://127.0.0.1:{port}"),
            session: None,
            _profile: profile,
            dir,
            driver: Some(proc),
        };
        let args = chromium_args(&b._profile.0, width, height);
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args}
        }}});
        let v = b
            .raw("POST", "/session", Some(&caps))
            .unwrap_or_else(|e| panic!("chromedriver could not start chromium: {e:?}\nchromedriver log:\n{}", b.log()));
        b.session = Some(v["sessionId"].as_str().expect("sessionId").to_string());
        b
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("chromedriver.log")).unwrap_or_default()
    }

    fn raw(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, WdError> {
        let mut req = Request { method: method.into(), url: format!("{}{path}", self.base), ..Default::default() };
        if let Some(b) = body {
            req.body = b.to_string().into_bytes();
            req = req.header("content-type", "application/json; charset=utf-8");
        }
        let r: Response = req.send().map_err(|e| WdError { status: 0, error: "io".into(), message: e.to_string() })?;
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        if r.status == 200 {
            return Ok(v["value"].clone());
        }
        Err(WdError {
            status: r.status,
            error: v["value"]["error"].as_str().unwrap_or("").to_string(),
            message: v["value"]["message"].as_str().unwrap_or(&r.text()).chars().take(500).collect(),
        })
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, WdError> {
        let id = self.session.as_deref().expect("no session");
        self.raw(method, &format!("/session/{id}{path}"), body.as_ref())
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.cmd(method, path, body).unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e:?}"))
    }

    pub fn goto(&self, url: &str) {
        self.ok("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn current_url(&self) -> String {
        self.ok("GET", "/url", None).as_str().unwrap_or("").to_string()
    }

    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self.ok("POST", "/elements", Some(json!({"using": "css selector", "value": css})));
        v.as_array()
            .map(|a| a.iter().filter_map(|e| e[ELEMENT].as_str().map(|s| Element(s.to_string()))).collect())
            .unwrap_or_default()
    }

    /// The first element matching `css`, waiting (at most 60 s) for one to exist.
    pub fn find(&self, css: &str) -> Element {
        self.wait(&format!("an element {css}"), || self.find_all(css).into_iter().next())
    }

    pub fn click(&self, e: &Element) {
        self.ok("POST", &format!("/element/{}/click", e.0), Some(json!({})));
    }

    pub fn clear(&self, e: &Element) {
        self.ok("POST", &format!("/element/{}/clear", e.0), Some(json!({})));
    }

    /// Type `text` into an element (after clearing it).
    pub fn type_into(&self, e: &Element, text: &str) {
        self.clear(e);
        self.ok("POST", &format!("/element/{}/value", e.0), Some(json!({ "text": text })));
    }

    pub fn text(&self, e: &Element) -> String {
        self.ok("GET", &format!("/element/{}/text", e.0), None).as_str().unwrap_or("").to_string()
    }

    pub fn property(&self, e: &Element, name: &str) -> Value {
        self.ok("GET", &format!("/element/{}/property/{name}", e.0), None)
    }

    /// Choose the `<option>` of a `<select>` by value (and fire `change`).
    pub fn select(&self, css: &str, value: &str) {
        let found = self.script(
            "const s = document.querySelector(arguments[0]); if (!s) return false; s.value = arguments[1]; \
             s.dispatchEvent(new Event('change', {bubbles: true})); return s.value === arguments[1];",
            json!([css, value]),
        );
        assert_eq!(found, json!(true), "select {css} has no option {value:?}");
    }

    /// Run a script in the page (`arguments[...]` are `args`); its return value.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.ok("POST", "/execute/sync", Some(json!({ "script": script, "args": args })))
    }

    /// Whether an alert, confirm or prompt is open.
    pub fn alert_open(&self) -> bool {
        match self.cmd("GET", "/alert/text", None) {
            Ok(_) => true,
            Err(e) if e.error == "no such alert" => false,
            Err(e) => panic!("GET /alert/text: {e:?}"),
        }
    }

    /// Save a PNG screenshot of the viewport.
    pub fn screenshot(&self, path: &Path) {
        let v = self.ok("GET", "/screenshot", None);
        let png = base64_decode(v.as_str().expect("screenshot is base64 text")).expect("valid base64");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// A Chrome DevTools Protocol command through chromedriver.
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.ok("POST", "/goog/cdp/execute", Some(json!({ "cmd": cmd, "params": params })))
    }

    /// Emulate a viewport (CSS pixels); `mobile` also applies the page's viewport meta tag.
    pub fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        );
    }

    /// Emulate `prefers-color-scheme` (`light` or `dark`).
    pub fn color_scheme(&self, scheme: &str) {
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({"media": "", "features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        );
    }

    /// Wait until `probe` gives Some (checked every 50 ms, for at most 60 s: generous, so a
    /// busy machine only makes the test slower, never failing). Panics naming `what`.
    pub fn wait<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = probe() {
                return v;
            }
            assert!(Instant::now() < deadline, "waited 60 s for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The text of the first element matching `css`, if there is one and it is not inside a
    /// hidden element.
    pub fn visible_text(&self, css: &str) -> Option<String> {
        self.script(
            "const e = document.querySelector(arguments[0]); return e && !e.closest('[hidden]') ? e.innerText : null;",
            json!([css]),
        )
        .as_str()
        .map(str::to_string)
    }

    /// Wait until the visible text of the first element matching `css` satisfies `ok` (for at
    /// most 60 s); that text.
    pub fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = None;
        loop {
            let text = self.visible_text(css);
            if let Some(t) = text.as_deref().filter(|t| ok(t)) {
                return t.to_string();
            }
            last = text.or(last);
            if Instant::now() > deadline {
                let page = self.script("return document.body.innerText", json!([]));
                let page: String = page.as_str().unwrap_or("").chars().take(3000).collect();
                panic!("waited 60 s for the text of {css}; last seen: {last:?}; the page shows:\n{page}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- chromedriver log (last lines) ----");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        if let Some(id) = self.session.take() {
            let _ = self.raw("DELETE", &format!("/session/{id}"), None);
        }
        drop(self.driver.take());
    }
}

/// Chromium's flags: headless, as root, a fresh profile, and nothing that calls home.
pub fn chromium_args(profile: &Path, width: u32, height: u32) -> Vec<String> {
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,InterestFeedContentSuggestions",
        "--no-default-browser-check",
        "--metrics-recording-only",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--lang=en-US",
        "--mute-audio",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--window-size={width},{height}"));
    args.push(format!("--user-data-dir={}", profile.display()));
    args
}

/// Standard base64 (with padding), as WebDriver sends screenshots.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let take = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8h").unwrap(), b"hello!");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert!(base64_decode("a$==").is_none());
    }
}
