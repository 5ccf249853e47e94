//! The HTTP server: binds (loopback by default), answers each request on its own thread,
//! and streams changes as server-sent events by polling the journal's `data_version`.
//! Answers GET and HEAD only; nothing it does changes the repository or the journal.

use super::DashboardError;
use super::api::{self, Context, Reply, Target};
use super::data::{Reader, Row};
use serde_json::json;
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a stream looks at the journal: a change reaches the page within this plus
/// the time to read it.
pub const POLL: Duration = Duration::from_millis(250);
/// A comment line this often lets a stream notice a closed page.
const KEEPALIVE: Duration = Duration::from_secs(10);
/// Requests answered at once; more get 503 (a page opens two or three).
const MAX_ACTIVE: usize = 64;

/// What to serve and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// The repository root (its `.autoresearch/journal.sqlite` is read).
    pub root: PathBuf,
    /// The session shown by default (else the latest).
    pub tag: Option<String>,
    pub host: String,
    /// 0 lets the system choose.
    pub port: u16,
}

/// A bound dashboard server.
pub struct Dashboard {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    ctx: Arc<Context>,
    stop: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
    streams: Arc<Streams>,
}

/// The open event streams, each with when its last finished poll began: a server about to
/// stop waits until every page has been sent the journal's final state.
#[derive(Default)]
struct Streams {
    next: AtomicU64,
    polled: Mutex<HashMap<u64, Option<Instant>>>,
}

impl Streams {
    fn polled(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Option<Instant>>> {
        self.polled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A stream's entry in [`Streams`], removed when the stream ends.
struct Registered<'a> {
    streams: &'a Streams,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.streams.polled().remove(&self.id);
    }
}

/// Stops a server started with [`Dashboard::spawn`] when asked or dropped.
pub struct Handle {
    server: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    streams: Arc<Streams>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Handle {
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Waits (at most `limit`) until every open page has been sent what the journal holds
    /// now: a session that just ended shows its last experiment before the server goes.
    pub fn drain(&self, limit: Duration) {
        let since = Instant::now();
        while since.elapsed() < limit {
            if self
                .streams
                .polled()
                .values()
                .all(|t| t.is_some_and(|t| t >= since))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Dashboard {
    /// Binds `host:port`.
    pub fn bind(opts: &Options) -> Result<Dashboard, DashboardError> {
        let host = opts.host.trim_start_matches('[').trim_end_matches(']');
        let addr = if host.contains(':') {
            format!("[{host}]:{}", opts.port)
        } else {
            format!("{host}:{}", opts.port)
        };
        let server = tiny_http::Server::http(&addr).map_err(|e| DashboardError::Bind {
            addr: addr.clone(),
            detail: e.to_string(),
        })?;
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| DashboardError::Bind {
                addr: addr.clone(),
                detail: "not an IP address".into(),
            })?;
        Ok(Dashboard {
            server: Arc::new(server),
            addr: bound,
            ctx: Arc::new(Context {
                root: opts.root.clone(),
                default_tag: opts.tag.clone(),
                loopback: super::is_loopback(host),
            }),
            stop: Arc::new(AtomicBool::new(false)),
            active: Arc::new(AtomicUsize::new(0)),
            streams: Arc::new(Streams::default()),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's address, for the terminal.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Serves until the process ends (or [`Handle::stop`]).
    pub fn serve(&self) {
        loop {
            let request = match self.server.recv() {
                Ok(r) => r,
                Err(_) if self.stop.load(Ordering::SeqCst) => return,
                Err(_) => continue,
            };
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            if self.active.load(Ordering::SeqCst) >= MAX_ACTIVE {
                respond(
                    request,
                    &Reply::error(503, "too many open requests; close a tab"),
                );
                continue;
            }
            self.active.fetch_add(1, Ordering::SeqCst);
            let ctx = Arc::clone(&self.ctx);
            let stop = Arc::clone(&self.stop);
            let active = Arc::clone(&self.active);
            let streams = Arc::clone(&self.streams);
            let spawned = std::thread::Builder::new()
                .name("dashboard-request".into())
                .spawn(move || {
                    handle(&ctx, &stop, &streams, request);
                    active.fetch_sub(1, Ordering::SeqCst);
                });
            if spawned.is_err() {
                self.active.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Serves on a background thread (`run --dashboard`, tests).
    pub fn spawn(self) -> Handle {
        let server = Arc::clone(&self.server);
        let stop = Arc::clone(&self.stop);
        let streams = Arc::clone(&self.streams);
        let thread = std::thread::Builder::new()
            .name("dashboard".into())
            .spawn(move || self.serve())
            .ok();
        Handle {
            server,
            stop,
            streams,
            thread,
        }
    }
}

fn header(name: &str, value: &str) -> Option<tiny_http::Header> {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

/// Headers on every answer: nothing is cached, framed or fetched from elsewhere.
fn security_headers() -> Vec<tiny_http::Header> {
    [
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        (
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        ),
    ]
    .iter()
    .filter_map(|(k, v)| header(k, v))
    .collect()
}

fn respond(request: tiny_http::Request, reply: &Reply) {
    let mut response =
        tiny_http::Response::from_string(reply.body.clone()).with_status_code(reply.status);
    for h in security_headers()
        .into_iter()
        .chain(header("Content-Type", reply.content_type))
    {
        response.add_header(h);
    }
    // A page that went away mid-answer is not the server's problem.
    let _ = request.respond(response);
}

fn handle(ctx: &Context, stop: &AtomicBool, streams: &Streams, request: tiny_http::Request) {
    use tiny_http::Method;
    let method = request.method().clone();
    if !matches!(method, Method::Get | Method::Head) {
        respond(
            request,
            &Reply::error(405, "the dashboard only reads: use GET"),
        );
        return;
    }
    if ctx.loopback {
        let host = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Host"))
            .map(|h| h.value.as_str().to_string())
            .unwrap_or_default();
        if !api::host_is_loopback(&host) {
            respond(
                request,
                &Reply::error(
                    421,
                    "this dashboard answers only to 127.0.0.1, localhost or [::1]",
                ),
            );
            return;
        }
    }
    let target = Target::parse(request.url());
    if target.path == "/api/events" {
        stream(ctx, stop, streams, &target, request);
        return;
    }
    respond(request, &api::route(ctx, &target));
}

/// One server-sent events stream: `snapshot` (every experiment of the session) on connect,
/// then `experiments` with each new or changed one, `session` when the session's rows
/// change, `sessions` when a session starts, `waiting` while the session does not exist.
fn stream(
    ctx: &Context,
    stop: &AtomicBool,
    streams: &Streams,
    target: &Target,
    request: tiny_http::Request,
) {
    let tag = target.get("tag").map(str::to_string);
    // An unknown tag is answered like everywhere else, before the stream starts.
    if let Ok(r) = Reader::open(&ctx.journal()) {
        if tag.is_some() {
            if let Err(reply) = api::pick(ctx, &r, tag.as_deref()) {
                respond(request, &reply);
                return;
            }
        }
    }
    let mut out = request.into_writer();
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\
                Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n\
                retry: 1000\n\n";
    if out
        .write_all(head.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        return;
    }
    let me = Registered {
        streams,
        id: streams.next.fetch_add(1, Ordering::SeqCst),
    };
    // Not polled yet: a drain waits for this stream's first poll.
    streams.polled().insert(me.id, None);
    let mut watch = Watch::default();
    let mut last_write = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let began = Instant::now();
        let events = watch.poll(ctx, tag.as_deref());
        let mut text = String::new();
        for (name, data) in events {
            text.push_str(&format!("event: {name}\ndata: {data}\n\n"));
        }
        if text.is_empty() && last_write.elapsed() >= KEEPALIVE {
            text.push_str(": keepalive\n\n");
        }
        if !text.is_empty() {
            if out
                .write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .is_err()
            {
                return;
            }
            last_write = Instant::now();
        }
        me.streams.polled().insert(me.id, Some(began));
        std::thread::sleep(POLL);
    }
}

/// What a stream has already sent.
#[derive(Default)]
struct Watch {
    reader: Option<Reader>,
    version: Option<i64>,
    session_id: Option<i64>,
    sessions: Option<usize>,
    rows: HashMap<i64, Row>,
    waiting_sent: bool,
}

impl Watch {
    /// The events since the last poll (none when the journal did not change).
    fn poll(&mut self, ctx: &Context, tag: Option<&str>) -> Vec<(&'static str, String)> {
        if self.reader.is_none() {
            self.reader = Reader::open(&ctx.journal()).ok();
        }
        let Some(r) = &self.reader else {
            return self.waiting("no journal yet");
        };
        let Ok(version) = r.data_version() else {
            self.reader = None;
            return Vec::new();
        };
        if self.version == Some(version) {
            return Vec::new();
        }
        self.version = Some(version);
        let mut events = Vec::new();
        let n_sessions = r.sessions().map(|s| s.len()).unwrap_or(0);
        if self.sessions.is_some_and(|n| n != n_sessions) {
            events.push(("sessions", json!({ "count": n_sessions }).to_string()));
        }
        self.sessions = Some(n_sessions);
        let session = match api::pick(ctx, r, tag) {
            Ok(s) => s,
            Err(_) => {
                events.extend(self.waiting("no such session yet"));
                return events;
            }
        };
        let Ok(rows) = r.rows(session.summary.id, 0) else {
            return events;
        };
        if self.session_id != Some(session.summary.id) {
            // First sight (or the latest session changed): everything.
            self.session_id = Some(session.summary.id);
            self.rows = rows.iter().map(|x| (x.id, x.clone())).collect();
            events.push((
                "snapshot",
                json!({ "tag": session.summary.tag, "experiments": rows }).to_string(),
            ));
            return events;
        }
        let changed: Vec<&Row> = rows
            .iter()
            .filter(|x| self.rows.get(&x.id) != Some(*x))
            .collect();
        if !changed.is_empty() {
            events.push((
                "experiments",
                json!({ "tag": session.summary.tag, "experiments": changed }).to_string(),
            ));
            events.push(("session", json!({ "tag": session.summary.tag }).to_string()));
            for x in changed {
                self.rows.insert(x.id, x.clone());
            }
        }
        events
    }

    fn waiting(&mut self, why: &str) -> Vec<(&'static str, String)> {
        if self.waiting_sent {
            return Vec::new();
        }
        self.waiting_sent = true;
        vec![("waiting", json!({ "why": why }).to_string())]
    }
}
