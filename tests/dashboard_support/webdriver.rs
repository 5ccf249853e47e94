//! A small WebDriver client (plain HTTP and JSON) for headless Chromium via chromedriver.
//! Waiting is polling a condition in the page with a deadline, never a fixed sleep.

use serde_json::{Value, json};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Chromium's flags on this closed network (background connections would fail and stall).
const FLAGS: [&str; 10] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
];

fn find(env: &str, names: &[&str]) -> Option<String> {
    if let Ok(p) = std::env::var(env) {
        return Some(p);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    for dir in path.split(':') {
        for n in names {
            let p = std::path::Path::new(dir).join(n);
            if p.is_file() {
                return Some(p.display().to_string());
            }
        }
    }
    None
}

/// A browser session, or `None` (said on stderr) where no browser is installed. CI sets
/// AUTORESEARCH_REQUIRE_BROWSER=1, which turns a missing browser into a failure.
pub fn browser() -> Option<Browser> {
    let chromium = find(
        "AUTORESEARCH_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let driver = find("AUTORESEARCH_CHROMEDRIVER", &["chromedriver"]);
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        let msg =
            "no chromium and chromedriver on PATH (apt-get install -y chromium chromium-driver)";
        if std::env::var("AUTORESEARCH_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!("AUTORESEARCH_REQUIRE_BROWSER=1 but {msg}");
        }
        eprintln!("SKIPPED browser test: {msg}");
        return None;
    };
    Some(Browser::start(&chromium, &driver))
}

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(90)))
        .build()
        .into()
}

fn call(method: &str, url: &str, body: Option<&Value>) -> Value {
    let a = agent();
    let resp = match (method, body) {
        ("GET", _) => a.get(url).call(),
        ("DELETE", _) => a.delete(url).call(),
        (_, b) => a
            .post(url)
            .header("content-type", "application/json")
            .send(b.cloned().unwrap_or_else(|| json!({})).to_string()),
    };
    let mut resp = resp.unwrap_or_else(|e| panic!("webdriver {method} {url}: {e}"));
    let code = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert!(code < 300, "webdriver {method} {url}: {code} {v}");
    v["value"].clone()
}

impl Browser {
    fn start(chromium: &str, driver: &str) -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {driver}: {e}"));
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = agent()
                .get(&format!("{base}/status"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .is_some_and(|v| v["value"]["ready"] == json!(true));
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args }
        }}});
        let mut b = Browser {
            driver: child,
            base,
            session: String::new(),
            _profile: profile,
        };
        let v = call("POST", &format!("{}/session", b.base), Some(&caps));
        b.session = v["sessionId"].as_str().expect("a session id").to_string();
        b
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/session/{}/{rest}", self.base, self.session)
    }

    pub fn goto(&self, url: &str) {
        call("POST", &self.url("url"), Some(&json!({ "url": url })));
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub fn js(&self, script: &str) -> Value {
        call(
            "POST",
            &self.url("execute/sync"),
            Some(&json!({ "script": script, "args": [] })),
        )
    }

    /// Polls `script` until it returns something truthy (and returns that), or panics with
    /// `what` after `timeout`.
    pub fn wait(&self, what: &str, timeout: Duration, script: &str) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.js(script);
            let truthy =
                !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} (last: {v})"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A real mouse click at viewport coordinates.
    pub fn click_at(&self, x: i64, y: i64) {
        call(
            "POST",
            &self.url("actions"),
            Some(&json!({ "actions": [{
                "type": "pointer", "id": "mouse", "parameters": { "pointerType": "mouse" },
                "actions": [
                    { "type": "pointerMove", "duration": 0, "x": x, "y": y, "origin": "viewport" },
                    { "type": "pointerDown", "button": 0 },
                    { "type": "pointerUp", "button": 0 }
                ]
            }]})),
        );
    }

    /// The page as PNG.
    pub fn screenshot(&self) -> Vec<u8> {
        let v = call("GET", &self.url("screenshot"), None);
        base64(v.as_str().expect("base64 PNG"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = agent()
                .delete(&format!("{}/session/{}", self.base, self.session))
                .call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (what WebDriver's screenshots use).
fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter_map(val) {
        acc = (acc << 6) | u32::from(c);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
