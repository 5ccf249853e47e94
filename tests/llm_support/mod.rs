//! Shared by the llm_* tests: a real HTTP/1.1 server on 127.0.0.1 that answers from a
//! script and records every request, a temp git repo, and a Context over owned data.
#![allow(dead_code)]

use autoresearch::agent::Context;
use autoresearch::config::{AgentBackend, AgentConfig, Config, DecisionConfig, MetricSpec, Scope};
use autoresearch::experiment::{Category, Direction, ExperimentRecord, Status};
use autoresearch::platform::{Accelerator, Platform};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

mod concurrent;
#[allow(unused_imports)]
pub use concurrent::Concurrent;

pub const KEY: &str = "sk-test-SECRET-0123456789";

pub const TRAIN: &str =
    "import torch\n\nLR = 0.04\nBATCH = 64\n\ndef step(x):\n    y = x * LR\n    return y\n";

/// One scripted reply.
pub enum Reply {
    Json(u16, String, Vec<(&'static str, String)>),
    /// Read the request, then never answer (until the client hangs up).
    Hang,
    /// Read the request, then close the connection without a word (a server going down).
    Close,
    /// A 200 with `text/event-stream`: each string is one event's `data:` (with its
    /// `event:` line when given as `event\ndata`), the body ended by closing.
    Sse(Vec<String>),
    /// A 200 with `text/event-stream` that never ends: this event's `data:` again and
    /// again, one every 20 ms, until the client hangs up (a model that runs away).
    Drip(String),
}

pub fn ok(body: String) -> Reply {
    Reply::Json(200, body, Vec::new())
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("request body is JSON")
    }
}

pub struct Server {
    pub url: String,
    /// The scripted (POST) requests, in order.
    pub requests: Arc<Mutex<Vec<Request>>>,
    /// GET requests (start-up probes), answered from the routes without using the script.
    pub gets: Arc<Mutex<Vec<Request>>>,
    /// Count of scripted requests received, for `wait_for`.
    arrived: Arc<(Mutex<usize>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

/// What a GET to a path answers; paths without a route get a 404.
pub type Routes = Vec<(&'static str, Reply)>;

impl Server {
    /// Serves each reply to one POST, in order, then stops listening. GETs get a 404.
    pub fn start(replies: Vec<Reply>) -> Server {
        Server::with_routes(replies, Vec::new())
    }

    /// Like `start`, with GET answers by path (e.g. `/v1/models`, `/props`), served as
    /// often as asked. With no script at all it serves GETs until the test ends.
    pub fn with_routes(replies: Vec<Reply>, routes: Routes) -> Server {
        let forever = replies.is_empty();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let gets = Arc::new(Mutex::new(Vec::new()));
        let (log, get_log) = (requests.clone(), gets.clone());
        let arrived = Arc::new((Mutex::new(0), Condvar::new()));
        let arrivals = arrived.clone();
        let handle = std::thread::spawn(move || {
            let mut script = replies.into_iter().peekable();
            while forever || script.peek().is_some() {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                // A safety net so a test can never hang on a client that vanished.
                stream
                    .set_read_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                let Some((req, reader)) = read_request(&stream) else {
                    continue;
                };
                if req.method == "GET" {
                    let reply = routes
                        .iter()
                        .find(|(p, _)| *p == req.path)
                        .map_or_else(not_found, |(_, r)| r.clone_reply());
                    get_log.lock().unwrap().push(req);
                    answer_with(stream, reader, reply);
                    continue;
                }
                log.lock().unwrap().push(req);
                {
                    let (n, cv) = &*arrivals;
                    *n.lock().unwrap() += 1;
                    cv.notify_all();
                }
                let Some(reply) = script.next() else {
                    continue;
                };
                answer_with(stream, reader, reply);
            }
        });
        Server {
            url,
            requests,
            gets,
            arrived,
            // A server without a script never ends: nothing to wait for.
            handle: (!forever).then_some(handle),
        }
    }

    /// Every request received, after the server has served its whole script.
    pub fn finish(mut self) -> Vec<Request> {
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        self.requests.lock().unwrap().clone()
    }

    pub fn received(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Blocks until `n` scripted requests have arrived (a minute at most, then panics).
    pub fn wait_for(&self, n: usize) {
        let (count, cv) = &*self.arrived;
        let (got, timeout) = cv
            .wait_timeout_while(count.lock().unwrap(), Duration::from_secs(60), |c| *c < n)
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "only {} of {n} requests arrived",
            *got
        );
    }

    pub fn probes(&self) -> Vec<Request> {
        self.gets.lock().unwrap().clone()
    }
}

fn not_found() -> Reply {
    Reply::Json(
        404,
        r#"{"error":{"code":404,"message":"File Not Found","type":"not_found_error"}}"#.into(),
        Vec::new(),
    )
}

impl Reply {
    fn clone_reply(&self) -> Reply {
        match self {
            Reply::Json(c, b, h) => Reply::Json(*c, b.clone(), h.clone()),
            Reply::Hang => Reply::Hang,
            Reply::Close => Reply::Close,
            Reply::Sse(e) => Reply::Sse(e.clone()),
            Reply::Drip(e) => Reply::Drip(e.clone()),
        }
    }
}

fn read_request(stream: &TcpStream) -> Option<(Request, BufReader<TcpStream>)> {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let req = Request {
        method,
        path,
        headers,
        body: String::from_utf8(body).unwrap(),
    };
    Some((req, reader))
}

fn answer_with(stream: TcpStream, mut reader: BufReader<TcpStream>, reply: Reply) {
    match reply {
        Reply::Close => drop((stream, reader)),
        Reply::Hang => {
            // Wait for the client to give up and close the connection.
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        }
        Reply::Sse(events) => {
            let mut w = stream;
            let _ = w.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n",
            );
            for e in events {
                let text = match e.split_once('\n') {
                    Some((name, data)) => format!("event: {name}\ndata: {data}\n\n"),
                    None => format!("data: {e}\n\n"),
                };
                let _ = w.write_all(text.as_bytes());
                let _ = w.flush();
            }
        }
        Reply::Drip(event) => {
            let mut w = stream;
            let _ = w.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n",
            );
            // The pace of a slow model; the stream ends only when the client goes.
            while w.write_all(format!("data: {event}\n\n").as_bytes()).is_ok() && w.flush().is_ok()
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        Reply::Json(status, body, extra) => {
            let mut w = stream;
            let mut head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (k, v) in extra {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = w.write_all(head.as_bytes());
            let _ = w.write_all(body.as_bytes());
            let _ = w.flush();
        }
    }
}

/// An Anthropic Messages API answer carrying `text`.
pub fn anthropic_answer(text: &str) -> String {
    serde_json::json!({
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {
            "input_tokens": 1200,
            "output_tokens": 150,
            "cache_creation_input_tokens": 3000,
            "cache_read_input_tokens": 0
        }
    })
    .to_string()
}

/// An OpenAI Chat Completions answer carrying `text`.
pub fn openai_answer(text: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "qwen2.5-coder",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 900, "completion_tokens": 80, "total_tokens": 980}
    })
    .to_string()
}

/// A streamed Chat Completions answer: `text` in pieces of `piece` chars, the finish
/// reason, then the usage chunk (`stream_options.include_usage`) and `[DONE]`.
pub fn openai_stream(text: &str, piece: usize, finish: &str) -> Reply {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        serde_json::json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
    };
    let mut events = vec![chunk(
        serde_json::json!({"role": "assistant", "content": ""}),
        None,
    )];
    let chars: Vec<char> = text.chars().collect();
    for part in chars.chunks(piece.max(1)) {
        let s: String = part.iter().collect();
        events.push(chunk(serde_json::json!({"content": s}), None));
    }
    events.push(chunk(serde_json::json!({}), Some(finish)));
    events.push(
        serde_json::json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [],
            "usage": {"prompt_tokens": 900, "completion_tokens": 80, "total_tokens": 980}})
        .to_string(),
    );
    events.push("[DONE]".into());
    Reply::Sse(events)
}

/// A streamed Messages API answer carrying `text`.
pub fn anthropic_stream(text: &str) -> Reply {
    let ev = |name: &str, v: serde_json::Value| format!("{name}\n{v}");
    Reply::Sse(vec![
        ev(
            "message_start",
            serde_json::json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5", "stop_reason": null,
            "usage": {"input_tokens": 1200, "cache_creation_input_tokens": 3000, "cache_read_input_tokens": 0, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            serde_json::json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev("ping", serde_json::json!({"type": "ping"})),
        ev(
            "content_block_delta",
            serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
        ),
        ev(
            "content_block_stop",
            serde_json::json!({"type": "content_block_stop", "index": 0}),
        ),
        ev(
            "message_delta",
            serde_json::json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 150}}),
        ),
        ev("message_stop", serde_json::json!({"type": "message_stop"})),
    ])
}

/// An OpenAI answer that hit `max_tokens` (`finish_reason: "length"`).
pub fn openai_cut_off(text: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(&openai_answer(text)).unwrap();
    v["choices"][0]["finish_reason"] = "length".into();
    v.to_string()
}

/// llama.cpp's 400 for a prompt past the context (its exact body).
pub fn llama_cpp_overflow(n_prompt_tokens: u64, n_ctx: u64) -> Reply {
    Reply::Json(
        400,
        serde_json::json!({"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it", "type": "exceed_context_size_error", "n_prompt_tokens": n_prompt_tokens, "n_ctx": n_ctx}}).to_string(),
        Vec::new(),
    )
}

/// llama.cpp's `/props` with the context it was started with.
pub fn llama_cpp_props(n_ctx: u64) -> Reply {
    ok(serde_json::json!({
        "default_generation_settings": {"n_ctx": n_ctx, "params": {"n_predict": -1}},
        "total_slots": 1,
        "model_path": "/models/SmolLM2-135M-Instruct-Q8_0.gguf",
        "chat_template": "{% for message in messages %}...{% endfor %}",
        "build_info": "b4500-abcdef"
    })
    .to_string())
}

/// `/v1/models` listing `ids` (OpenAI's shape; vLLM adds `max_model_len`).
pub fn models(ids: &[&str], max_model_len: Option<u64>) -> Reply {
    let data: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            let mut m = serde_json::json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "local"});
            if let Some(n) = max_model_len {
                m["max_model_len"] = n.into();
            }
            m
        })
        .collect();
    ok(serde_json::json!({"object": "list", "data": data}).to_string())
}

pub const GOOD_ANSWER: &str = "I will raise the learning rate.\n\nDESCRIPTION: raise LR 0.04 -> 0.08\nCATEGORY: hyperparameters\nSCRATCHPAD:\nLR sweep: 0.04 baseline, trying 0.08\nEND SCRATCHPAD\n\ntrain.py\n```python\n<<<<<<< SEARCH\nLR = 0.04\n=======\nLR = 0.08\n>>>>>>> REPLACE\n```\n";

pub fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A committed repo: train.py (editable), prepare.py (read-only), program.md, .gitignore.
pub fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("train.py"), TRAIN).unwrap();
    std::fs::write(p.join("prepare.py"), "DATA = 'tiny'\nSEQ_LEN = 256\n").unwrap();
    std::fs::write(
        p.join("program.md"),
        "# Program\nMake val_bpb go down. Prefer small models.\nPhase 1-2: hyperparameters only\nPhase 3-: anything\n",
    )
    .unwrap();
    std::fs::write(p.join(".gitignore"), "*.log\n").unwrap();
    git(p, &["init", "-q", "-b", "main"]);
    git(p, &["config", "user.email", "t@example.com"]);
    git(p, &["config", "user.name", "t"]);
    git(p, &["add", "-A"]);
    git(p, &["commit", "-qm", "init"]);
    dir
}

pub fn agent(backend: AgentBackend, base_url: &str) -> AgentConfig {
    AgentConfig {
        backend,
        model: None,
        base_url: Some(base_url.to_string()),
        timeout: Some(Duration::from_secs(10)),
        patience: 3,
        max_attempts: Some(3),
        retry_base: Some(Duration::from_millis(1)),
        retry_max_wait: Some(Duration::from_millis(10)),
        ..AgentConfig::default()
    }
}

pub fn config(agent: AgentConfig) -> Config {
    Config {
        source: None,
        editable: vec![PathBuf::from("train.py")],
        read_only: vec![PathBuf::from("prepare.py")],
        command: "python train.py".into(),
        budget: Duration::from_secs(300),
        timeout: Duration::from_secs(660),
        metric: MetricSpec {
            name: "val_bpb".into(),
            direction: Direction::Minimize,
            regex: None,
            memory_key: "peak_vram_mb".into(),
        },
        max_iterations: None,
        scope: Scope::All,
        tag: "test".into(),
        results: PathBuf::from("results.tsv"),
        program: PathBuf::from("program.md"),
        report_every: 5,
        agent,
        decision: DecisionConfig::default(),
        sandbox: Default::default(),
        executor: Default::default(),
        prune: Default::default(),
    }
}

pub fn record(
    iteration: u64,
    status: Status,
    metric: Option<f64>,
    description: &str,
) -> ExperimentRecord {
    ExperimentRecord {
        id: iteration as i64 + 1,
        iteration,
        attempt: 1,
        parent: "abc".into(),
        commit: format!("c{iteration}"),
        status,
        metric,
        metrics: BTreeMap::new(),
        memory_gb: None,
        description: description.into(),
        category: if iteration == 0 {
            Category::Baseline
        } else {
            Category::Hyperparameters
        },
        proposer: "test".into(),
        reason: String::new(),
        log_path: None,
        started_at: "2025-01-01T00:00:00Z".into(),
        finished_at: None,
        duration_s: None,
        state_hash: String::new(),
    }
}

/// Owned data a Context borrows.
pub struct World {
    pub repo: PathBuf,
    pub config: Config,
    pub platform: Platform,
    pub files: BTreeMap<PathBuf, String>,
    pub history: Vec<ExperimentRecord>,
    pub seen: HashSet<String>,
    pub crash: Option<String>,
    pub scratchpad: Option<String>,
    pub hypothesis: Option<String>,
    pub in_flight: Vec<ExperimentRecord>,
    pub iteration: u64,
}

impl World {
    pub fn new(repo: &Path, config: Config) -> World {
        World {
            repo: repo.to_path_buf(),
            config,
            platform: Platform::with(Accelerator::Cpu, vec![], 2),
            files: BTreeMap::from([(PathBuf::from("train.py"), TRAIN.to_string())]),
            history: vec![record(0, Status::Keep, Some(1.0), "baseline")],
            seen: HashSet::new(),
            crash: None,
            scratchpad: None,
            hypothesis: None,
            in_flight: Vec::new(),
            iteration: 1,
        }
    }

    pub fn ctx(&self) -> Context<'_> {
        Context {
            repo: &self.repo,
            config: &self.config,
            platform: &self.platform,
            iteration: self.iteration,
            files: &self.files,
            history: &self.history,
            best: self.history.iter().rfind(|r| r.status == Status::Keep),
            baseline: self.history.first(),
            seen: &self.seen,
            last_crash_tail: self.crash.as_deref(),
            scratchpad: self.scratchpad.as_deref(),
            hypothesis: self.hypothesis.as_deref(),
            in_flight: &self.in_flight,
        }
    }
}
