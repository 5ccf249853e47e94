//! The dashboard over real HTTP on 127.0.0.1: every endpoint, bad input on each, the live
//! event stream, the CLI (`dashboard`, `run --dashboard`), and the page itself in headless
//! Chromium (points drawn, live update, click to diff, escaping, 10,000 experiments).

mod common;
mod dashboard_support;

use dashboard_support::webdriver::browser;
use dashboard_support::*;
use serde_json::Value;
use std::io::BufRead as _;
use std::time::{Duration, Instant};

/// A fixture with an older session, then the latest with `n` experiments (the baseline
/// measured three times, experiment 2 with a log).
fn fixture(n: usize) -> (Fixture, Vec<i64>) {
    let f = Fixture::new();
    let old = f.session("old");
    f.experiments(old, 2, |i| format!("old {i}"));
    let s = f.session("dec1");
    let ids = f.experiments(s, n, |i| {
        if i == 1 {
            XSS.to_string()
        } else {
            format!("change {i}")
        }
    });
    f.runs(ids[0], &[1.1, 1.102, 1.098]);
    f.log(
        ids[1],
        "step 1 | loss 3.0\n\u{1b}[31mval_bpb: 1.09\u{1b}[0m\n<img src=x onerror=window.__xss=2>\n",
    );
    (f, ids)
}

#[test]
fn endpoints_answer_sessions_experiments_and_one_experiment_with_its_diff_and_evidence() {
    let (f, ids) = fixture(6);
    let s = f.serve();
    let list = json(&format!("{}/api/sessions", s.url), 200);
    assert_eq!(list["default"], "dec1");
    let tags: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["dec1", "old"]);

    let session = json(&format!("{}/api/session", s.url), 200);
    assert_eq!(session["tag"], "dec1");
    assert_eq!(session["baseline"], 1.1);
    assert_eq!(session["experiments"], 6);
    assert_eq!(session["editable"][0], "train.py");
    let sigma = session["noise"]["sigma"].as_f64().unwrap();
    assert!((sigma - 0.002).abs() < 1e-9, "{sigma}");
    assert_eq!(
        json(&format!("{}/api/session?tag=autoresearch/old", s.url), 200)["experiments"],
        2
    );

    let all = json(&format!("{}/api/experiments?tag=dec1", s.url), 200);
    assert_eq!(all["experiments"].as_array().unwrap().len(), 6);
    assert_eq!(all["max_id"], ids[5]);
    let later = json(&format!("{}/api/experiments?since={}", s.url, ids[3]), 200);
    let later: Vec<i64> = later["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_i64().unwrap())
        .collect();
    assert_eq!(later, ids[4..]);

    let x = json(&format!("{}/api/experiment/{}", s.url, ids[1]), 200);
    assert_eq!(x["description"], XSS);
    let diff = x["diff"].as_str().unwrap();
    assert!(
        diff.contains("-LR = 0.1") && diff.contains("+LR = 0.2"),
        "{diff}"
    );
    assert_eq!(x["parent_id"], ids[0]);
    assert_eq!(x["cost"]["usd"], 0.0123);
    assert_eq!(x["cost"]["tokens_in"], 1500.0);
    let log = x["log"]["text"].as_str().unwrap();
    assert!(
        log.contains("val_bpb: 1.09\n") && !log.contains('\u{1b}'),
        "{log:?}"
    );
    let base = json(&format!("{}/api/experiment/{}", s.url, ids[0]), 200);
    let seeds: Vec<i64> = base["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seed"].as_i64().unwrap())
        .collect();
    assert_eq!(seeds, [1, 2, 3]);
    assert_eq!(base["runs"][2]["value"], 1.098);
    let tail = json(
        &format!(
            "{}/api/log?path=.autoresearch/runs/{:04}/run.log",
            s.url, ids[1]
        ),
        200,
    );
    assert!(tail["text"].as_str().unwrap().starts_with("step 1"));

    // The page and its assets are embedded, with a policy that forbids anything external.
    let (code, html) = get(&format!("{}/", s.url));
    assert_eq!(code, 200);
    assert!(
        html.contains("<canvas id=\"chart\"")
            && !html.contains("http://")
            && !html.contains("https://")
    );
    for asset in ["/app.js", "/chart.js", "/app.css"] {
        let (code, body) = get(&format!("{}{asset}", s.url));
        assert_eq!(code, 200, "{asset}");
        assert!(
            !body.contains("innerHTML"),
            "{asset} must build the DOM with textContent"
        );
    }
}

#[test]
fn bad_input_on_every_endpoint_is_answered_with_a_json_error() {
    let (f, ids) = fixture(3);
    // A journal row pointing its log outside the runs folder must not be served.
    std::fs::write(f.root().join("secret.txt"), "secret").unwrap();
    f.conn()
        .execute(
            "UPDATE experiments SET log_path = '.autoresearch/runs/../../secret.txt' WHERE id = ?1",
            [ids[2]],
        )
        .unwrap();
    let s = f.serve();
    let cases: &[(&str, u16)] = &[
        ("/api/session?tag=nope", 404),
        ("/api/experiments?tag=nope", 404),
        ("/api/events?tag=nope", 404),
        ("/api/log?tag=nope&path=x", 404),
        ("/api/experiments?since=-1", 400),
        ("/api/experiments?since=abc", 400),
        ("/api/experiment/0", 400),
        ("/api/experiment/-5", 400),
        ("/api/experiment/abc", 400),
        ("/api/experiment/99999999999999999999999", 400),
        ("/api/experiment/9223372036854775807", 404),
        ("/api/experiment/", 400),
        ("/api/log", 400),
        ("/api/log?path=../../etc/passwd", 403),
        ("/api/log?path=%2Fetc%2Fpasswd", 403),
        ("/api/log?path=.autoresearch/journal.sqlite", 403),
        ("/api/log?path=.autoresearch/runs/../../secret.txt", 403),
        ("/../../etc/passwd", 404),
        ("/nothing", 404),
    ];
    for (path, status) in cases {
        let (code, body) = get(&format!("{}{path}", s.url));
        assert_eq!(code, *status, "{path}: {body}");
        let v: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: {body}"
        );
    }
    let x = json(&format!("{}/api/experiment/{}", s.url, ids[2]), 200);
    assert!(x["log"]["text"].is_null(), "{}", x["log"]);
    assert!(!x.to_string().contains("secret\""), "{x}");
    for method in ["POST", "DELETE"] {
        let (code, body) = request(method, &format!("{}/api/session", s.url));
        assert_eq!(code, 405, "{method}: {body}");
    }
    // A page elsewhere that rebinds its name to 127.0.0.1 is not answered.
    let raw = |host: &str| {
        use std::io::{Read as _, Write as _};
        let addr = s.url.trim_start_matches("http://");
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        write!(
            c,
            "GET /api/sessions HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        answer.lines().next().unwrap_or("").to_string()
    };
    assert!(
        raw("evil.example:8765").starts_with("HTTP/1.1 421"),
        "{}",
        raw("evil.example")
    );
    assert!(raw(s.url.trim_start_matches("http://")).starts_with("HTTP/1.1 200"));
    // Nothing was written: the journal has what the fixture put there.
    let n: i64 = f
        .conn()
        .query_row("SELECT COUNT(*) FROM experiments", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 5);
}

#[test]
fn a_newer_journal_schema_is_read_and_a_missing_journal_is_a_clear_error() {
    let (f, _) = fixture(3);
    f.conn()
        .execute_batch(
            "CREATE TABLE from_a_later_release (id INTEGER PRIMARY KEY); PRAGMA user_version = 99;",
        )
        .unwrap();
    let s = f.serve();
    assert_eq!(
        json(&format!("{}/api/experiments", s.url), 200)["experiments"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let empty = common::repo(&[("train.py", "x = 1\n")]);
    let out = common::bin()
        .args(["dashboard", "--port", "0", "--repo"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no session journal") && err.contains("autoresearch run"),
        "{err}"
    );
}

/// Reads a server-sent events stream on a thread: (event name, data) as they arrive.
fn events(url: &str) -> std::sync::mpsc::Receiver<(String, String)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let url = url.to_string();
    std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let resp = agent.get(&url).call().unwrap();
        let reader = std::io::BufReader::new(resp.into_body().into_reader());
        let mut name = String::new();
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                if tx.send((name.clone(), d.to_string())).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

#[test]
fn the_event_stream_pushes_new_and_changed_experiments_within_a_second() {
    let (f, ids) = fixture(3);
    let s = f.serve();
    let rx = events(&format!("{}/api/events", s.url));
    let (name, data) = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(name, "snapshot");
    let snap: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(snap["experiments"].as_array().unwrap().len(), 3);

    // A session starts a run, then finishes it.
    let c = f.conn();
    let t = Instant::now();
    let id = insert(
        &c,
        2,
        3,
        "running",
        None,
        &f.changed,
        &f.changed,
        "LR 0.2 → 0.4",
    );
    let next = |rx: &std::sync::mpsc::Receiver<(String, String)>| loop {
        let (name, data) = rx.recv_timeout(Duration::from_secs(20)).expect("an event");
        if name == "experiments" {
            return serde_json::from_str::<Value>(&data).unwrap();
        }
    };
    let v = next(&rx);
    let latency = t.elapsed();
    assert_eq!(v["experiments"][0]["id"], id);
    assert_eq!(v["experiments"][0]["status"], "running");
    c.execute(
        "UPDATE experiments SET status = 'keep', metric = 1.05 WHERE id = ?1",
        [id],
    )
    .unwrap();
    let v = next(&rx);
    assert_eq!(
        v["experiments"].as_array().unwrap().len(),
        1,
        "only the changed row: {v}"
    );
    assert_eq!(v["experiments"][0]["status"], "keep");
    eprintln!(
        "event stream: a new experiment arrived {} ms after its commit",
        latency.as_millis()
    );
    assert!(ids.len() == 3);
}

#[test]
fn the_cli_warns_about_a_non_loopback_host_and_serves() {
    let (f, _) = fixture(2);
    let mut child = common::bin()
        .args(["dashboard", "--host", "0.0.0.0", "--port", "0", "--repo"])
        .arg(f.root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("dashboard: ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    let port = url.rsplit(':').next().unwrap().trim_end_matches('/');
    let sessions = json(&format!("http://127.0.0.1:{port}/api/sessions"), 200);
    child.kill().unwrap();
    child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("warning: --host 0.0.0.0") && err.contains("anyone who can reach"),
        "{err}"
    );
    assert_eq!(sessions["sessions"].as_array().unwrap().len(), 2);
}

/// `autoresearch run -n 1 --dashboard` on a fixture whose baseline waits for a gate file:
/// (the child, the dashboard's address, the gate, its folder).
fn gated_run() -> (
    std::process::Child,
    String,
    std::path::PathBuf,
    tempfile::TempDir,
    tempfile::TempDir,
) {
    let gate_dir = tempfile::tempdir().unwrap();
    let gate = gate_dir.path().join("go");
    let body = format!(
        "deadline = time.time() + 60\nwhile not os.path.exists({:?}) and time.time() < deadline:\n    time.sleep(0.05)\nprint(f'val_bpb: {{1.0 + LR:.6f}}')",
        gate.display().to_string()
    );
    let dir = common::repo(&[
        ("train.py", &common::train_py(&body)),
        (
            "autoresearch.toml",
            &common::config("").replace("timeout = \"20s\"", "timeout = \"90s\""),
        ),
    ]);
    let mut child = common::bin()
        .args([
            "run",
            "--yes",
            "--grace",
            "1",
            "-n",
            "1",
            "--dashboard",
            "--dashboard-port",
            "0",
            "--repo",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("dashboard: ") {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "no dashboard address"
        );
    }
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let url = line
        .trim()
        .strip_prefix("dashboard: ")
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    (child, url, gate, gate_dir, dir)
}

#[test]
fn run_dashboard_serves_the_running_session_beside_it() {
    let (mut child, url, gate, _gate_dir, dir) = gated_run();
    let deadline = Instant::now() + Duration::from_secs(60);
    let running = loop {
        let (code, body) = get(&format!("{url}/api/experiments"));
        if code == 200 {
            let v: Value = serde_json::from_str(&body).unwrap();
            if let Some(r) = v["experiments"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["status"] == "running")
            {
                break r.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the running baseline never showed: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(running["iteration"], 0);
    assert_eq!(json(&format!("{url}/api/session"), 200)["running"], true);
    std::fs::write(&gate, "").unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(common::journal(dir.path()).len(), 2);
}

#[test]
fn the_page_follows_a_real_session_as_it_runs() {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(b) = browser() else { return };
    let (mut child, url, gate, _gate_dir, _dir) = gated_run();
    // Opened before the session has written anything: the page waits, then fills in.
    b.goto(&format!("{url}/"));
    let limit = Duration::from_secs(60);
    let now = b.wait(
        "the running baseline under Now",
        limit,
        "const n = document.getElementById('now'); return !n.hidden && n.textContent.includes('iteration 0') && n.textContent;",
    );
    assert!(now.as_str().unwrap().contains("baseline"), "{now}");
    b.js("window.__notReloaded = true; return 1");
    std::fs::write(&gate, "").unwrap();
    b.wait(
        "both experiments drawn",
        limit,
        "return document.getElementById('chart').dataset.points === '2'",
    );
    b.wait(
        "Now emptied",
        limit,
        "return document.getElementById('now').hidden",
    );
    assert_eq!(b.js("return window.__notReloaded === true"), true);
    assert!(child.wait().unwrap().success());
}

/// Where a test artifact goes: the target folder (`target/` unless CARGO_TARGET_DIR moves it).
fn artifact(name: &str) -> std::path::PathBuf {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join(name)
}

/// Browser tests share the machine's two cores: one at a time.
static BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Opens the page at `url` and waits until it is ready with `points` points on the chart;
/// returns how long a wait the tests allow.
fn open_page(b: &dashboard_support::webdriver::Browser, url: &str, points: usize) -> Duration {
    b.goto(&format!("{url}/"));
    let ready = Duration::from_secs(30);
    b.wait(
        "the page",
        ready,
        "return document.documentElement.dataset.ready === '1'",
    );
    let drawn = b.wait(
        &format!("{points} points"),
        ready,
        &format!("const n = document.getElementById('chart').dataset.points; return n === '{points}' && n;"),
    );
    assert_eq!(drawn, points.to_string().as_str());
    ready
}

#[test]
fn the_page_draws_every_point_updates_live_opens_a_diff_and_escapes_text() {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(b) = browser() else { return };
    let (f, ids) = fixture(12);
    let s = f.serve();
    let ready = open_page(&b, &s.url, 12);
    assert_eq!(
        b.js("return document.querySelectorAll('#experiments tbody tr').length"),
        12
    );

    // The XSS description is text, visible as written, and ran nothing.
    let cell = b.js(&format!(
        "return document.querySelector('#experiments tr[data-id=\"{}\"] td.desc').textContent",
        ids[1]
    ));
    assert_eq!(cell, XSS);
    assert_eq!(
        b.js("return document.querySelectorAll('main img').length"),
        0
    );

    // Clicking a point opens that experiment with its diff.
    let pos = b.js(&format!("return window.__chart.positionOf({})", ids[1]));
    b.click_at(pos["x"].as_i64().unwrap(), pos["y"].as_i64().unwrap());
    b.wait(
        "the diff",
        ready,
        &format!("const d = document.getElementById('diff'); return document.getElementById('detail').dataset.id === '{}' && d && d.textContent.includes('+LR = 0.2');", ids[1]),
    );
    assert_eq!(
        b.js("return document.getElementById('detail-description').textContent"),
        XSS
    );
    // Hovering showed the point's status, value and description (as text).
    let tip =
        b.js("const t = document.getElementById('tooltip'); return !t.hidden && t.textContent");
    assert!(
        tip.as_str()
            .is_some_and(|t| t.contains("discard · 1.101") && t.contains(XSS)),
        "{tip}"
    );
    let log = b.js("return document.getElementById('log').textContent");
    assert!(
        log.as_str()
            .unwrap()
            .contains("<img src=x onerror=window.__xss=2>"),
        "{log}"
    );
    assert_eq!(
        b.js("return document.querySelectorAll('main img').length"),
        0
    );
    assert_eq!(b.js("return window.__xss === undefined"), true);

    // Filter by status, search, sort.
    let rows = "return Array.from(document.querySelectorAll('#experiments tbody tr')).map((r) => Number(r.dataset.id))";
    b.js("const f = document.getElementById('f-status'); f.value = 'crash'; f.dispatchEvent(new Event('change')); return 1");
    assert_eq!(b.js(rows), serde_json::json!([ids[5]]), "the one crash");
    b.js("const f = document.getElementById('f-status'); f.value = ''; f.dispatchEvent(new Event('change')); const s = document.getElementById('search'); s.value = 'lr UP'; s.dispatchEvent(new Event('input')); return 1");
    assert_eq!(
        b.js(rows),
        serde_json::json!([ids[1]]),
        "search is case-blind"
    );
    b.js("const s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input')); document.querySelector('th[data-key=\"metric\"]').click(); return 1");
    let sorted = b.js(rows);
    assert_eq!(sorted[0], ids[3], "the lowest metric first: {sorted}");

    // A new experiment appears without a reload.
    b.js("window.__notReloaded = true; return 1");
    let t = Instant::now();
    insert(
        &f.conn(),
        2,
        12,
        "keep",
        Some(1.0),
        &f.base,
        &f.changed,
        "new one",
    );
    b.wait(
        "the new point",
        ready,
        "return document.getElementById('chart').dataset.points === '13'",
    );
    let latency = t.elapsed();
    assert_eq!(b.js("return window.__notReloaded === true"), true);
    assert_eq!(
        b.js("return document.querySelectorAll('#experiments tbody tr').length"),
        13
    );
    eprintln!(
        "page: a new experiment was drawn {} ms after its commit",
        latency.as_millis()
    );

    let png = b.screenshot();
    assert_eq!(&png[1..4], b"PNG");
    let out = artifact("dashboard-screenshot.png");
    std::fs::write(&out, &png).unwrap();
    eprintln!("screenshot: {}", out.display());
}

#[test]
fn the_page_paints_ten_thousand_experiments() {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(b) = browser() else { return };
    let f = Fixture::new();
    let sid = f.session("big");
    let ids = f.experiments(sid, 10_000, |i| format!("experiment {i}: try a change"));
    f.runs(ids[0], &[1.1, 1.101, 1.099]);
    let s = f.serve();
    b.goto(&format!("{}/", s.url));
    b.wait(
        "the page",
        Duration::from_secs(60),
        "return document.documentElement.dataset.ready === '1'",
    );
    let first = b.js("return window.__firstPaintMs");
    assert_eq!(
        b.js("return document.getElementById('chart').dataset.points"),
        "10000"
    );
    eprintln!(
        "first paint with 10,000 experiments: {:.0} ms after navigation start",
        first.as_f64().unwrap()
    );
    let rows = b.js("return document.querySelectorAll('#experiments tbody tr').length");
    assert_eq!(rows, 300, "the table shows a page, not 10,000 rows");
    let png = b.screenshot();
    std::fs::write(artifact("dashboard-screenshot-10k.png"), &png).unwrap();
}

#[test]
fn a_pruned_experiment_is_drawn_and_counted_with_the_discards() {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(b) = browser() else { return };
    let (f, ids) = fixture(4);
    let session: i64 = f
        .conn()
        .query_row(
            "SELECT session_id FROM experiments WHERE id = ?1",
            [ids[0]],
            |r| r.get(0),
        )
        .unwrap();
    let (base, changed): (String, String) = f
        .conn()
        .query_row(
            "SELECT parent, commit_sha FROM experiments WHERE id = ?1",
            [ids[1]],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    insert(
        &f.conn(),
        session,
        4,
        "pruned",
        Some(1.3),
        &base,
        &changed,
        "hopeless",
    );
    let s = f.serve();
    // Four experiments and the pruned one: five points on the chart.
    open_page(&b, &s.url, 5);
    let cards = b.js("return document.getElementById('cards').textContent");
    let cards = cards.as_str().unwrap_or_default();
    // The fixture's two discards and the pruned one; and the pruned one on its own.
    assert!(cards.contains("discarded3"), "{cards}");
    assert!(cards.contains("pruned early1"), "{cards}");
    let status = b.js("return document.querySelector('#experiments .status.pruned')?.textContent");
    assert_eq!(status, "pruned");
}
