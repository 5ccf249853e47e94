//! The dashboard's routes: the embedded page and its JSON endpoints. Pure reads: each
//! request opens the journal read-only; bad input (unknown tag, an id that is not a
//! positive number, a log path outside the session's runs) is answered with a JSON error.

use super::data::{Reader, Row, SessionFull};
use super::files;
use super::{DashboardError, JOURNAL};
use crate::decision::policy::NoiseModel;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

pub const INDEX_HTML: &str = include_str!("assets/index.html");
pub const APP_JS: &str = include_str!("assets/app.js");
pub const APP_CSS: &str = include_str!("assets/app.css");
pub const CHART_JS: &str = include_str!("assets/chart.js");

/// What a server was started on: the repository and the session it shows by default.
#[derive(Debug, Clone)]
pub struct Context {
    pub root: PathBuf,
    pub default_tag: Option<String>,
    /// Served on loopback: only requests naming a loopback host are answered, so that a
    /// web page elsewhere cannot read the dashboard through DNS rebinding.
    pub loopback: bool,
}

impl Context {
    pub fn journal(&self) -> PathBuf {
        self.root.join(JOURNAL)
    }
}

/// Does the request's `Host` header name this machine (`127.0.0.1:8765`, `localhost`,
/// `[::1]:8765`)?
pub fn host_is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    super::is_loopback(name)
}

/// An answer: status, content type, body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    fn json(status: u16, v: &Value) -> Reply {
        Reply {
            status,
            content_type: "application/json; charset=utf-8",
            body: v.to_string(),
        }
    }

    pub fn error(status: u16, message: &str) -> Reply {
        Reply::json(status, &json!({ "error": message }))
    }

    fn asset(content_type: &'static str, body: &str) -> Reply {
        Reply {
            status: 200,
            content_type,
            body: body.to_string(),
        }
    }
}

/// A parsed request target: the path and its decoded query parameters.
#[derive(Debug)]
pub struct Target {
    pub path: String,
    pub query: Vec<(String, String)>,
}

impl Target {
    pub fn parse(url: &str) -> Target {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let query = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect();
        Target {
            path: decode(path),
            query,
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// Percent-decoding (and `+` as space); invalid escapes are kept as written.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A non-negative id from a query parameter or a path segment.
pub fn parse_id(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().filter(|n| *n >= 0)
}

/// Answers a GET (the SSE stream is the server's, not here).
pub fn route(ctx: &Context, target: &Target) -> Reply {
    let path = target.path.as_str();
    match path {
        "/" | "/index.html" => Reply::asset("text/html; charset=utf-8", INDEX_HTML),
        "/app.js" => Reply::asset("text/javascript; charset=utf-8", APP_JS),
        "/chart.js" => Reply::asset("text/javascript; charset=utf-8", CHART_JS),
        "/app.css" => Reply::asset("text/css; charset=utf-8", APP_CSS),
        "/api/sessions" => answer(sessions(ctx)),
        "/api/session" => answer(session(ctx, target.get("tag"))),
        "/api/experiments" => answer(experiments(ctx, target)),
        "/api/log" => answer(log(ctx, target)),
        _ => match path.strip_prefix("/api/experiment/") {
            Some(id) => match parse_id(id).filter(|n| *n > 0) {
                Some(id) => answer(experiment(ctx, id)),
                None => Reply::error(400, "the experiment id must be a positive whole number"),
            },
            None => Reply::error(
                404,
                &format!("no such page: {}", crate::text::flat(path, 200)),
            ),
        },
    }
}

/// A handler's result: a JSON value or an error reply.
type Answer = Result<Value, Reply>;

fn answer(a: Answer) -> Reply {
    match a {
        Ok(v) => Reply::json(200, &v),
        Err(r) => r,
    }
}

fn store(e: &DashboardError) -> Reply {
    match e {
        DashboardError::NoJournal(_) => Reply::error(404, &e.to_string()),
        _ => Reply::error(500, &e.to_string()),
    }
}

fn open(ctx: &Context) -> Result<Reader, Reply> {
    Reader::open(&ctx.journal()).map_err(|e| store(&e))
}

/// The session `tag` names, else the server's default, else the latest.
pub fn pick(ctx: &Context, r: &Reader, tag: Option<&str>) -> Result<SessionFull, Reply> {
    let tag = tag.or(ctx.default_tag.as_deref());
    match r.session(tag).map_err(|e| store(&e))? {
        Some(s) => Ok(s),
        None => Err(match tag {
            Some(t) => Reply::error(
                404,
                &format!("no session tagged `{}`", crate::text::flat(t, 100)),
            ),
            None => Reply::error(404, "the journal holds no session yet"),
        }),
    }
}

fn sessions(ctx: &Context) -> Answer {
    let r = open(ctx)?;
    let list = r.sessions().map_err(|e| store(&e))?;
    let default = match &ctx.default_tag {
        Some(t) => Some(t.strip_prefix("autoresearch/").unwrap_or(t).to_string()),
        None => list.first().map(|s| s.tag.clone()),
    };
    Ok(json!({ "default": default, "sessions": list }))
}

/// Which way the metric improves: true when smaller is better.
fn minimize(direction: &str) -> bool {
    !direction.eq_ignore_ascii_case("maximize")
}

fn session(ctx: &Context, tag: Option<&str>) -> Answer {
    let r = open(ctx)?;
    let s = pick(ctx, &r, tag)?;
    let rows = r.rows(s.summary.id, 0).map_err(|e| store(&e))?;
    let groups = r.measurement_groups(s.summary.id).map_err(|e| store(&e))?;
    let noise = NoiseModel::from_groups(groups.iter().map(Vec::as_slice));
    let mut counts = serde_json::Map::new();
    for row in &rows {
        let n = counts.entry(row.status.clone()).or_insert(json!(0));
        *n = json!(n.as_i64().unwrap_or(0) + 1);
    }
    let min = minimize(&s.summary.direction);
    let baseline = rows
        .iter()
        .find(|x| x.iteration == 0 && x.metric.is_some())
        .and_then(|x| x.metric);
    let best = best_of(&rows, min);
    let platform = serde_json::from_str::<crate::platform::Platform>(&s.platform)
        .map_or_else(|_| "unknown".to_string(), |p| p.describe());
    let cfg = config_of(&ctx.root, &s);
    // The lock is the repository's: it says the latest session runs, not an older one.
    let latest = r
        .session(None)
        .map_err(|e| store(&e))?
        .map(|l| l.summary.id);
    let running = latest == Some(s.summary.id) && lock_held(&ctx.root.join(".autoresearch"));
    Ok(json!({
        "id": s.summary.id,
        "tag": s.summary.tag,
        "branch": s.summary.branch,
        "base_branch": s.base_branch,
        "base_commit": s.base_commit,
        "started_at": s.summary.started_at,
        "metric": s.summary.metric,
        "direction": if min { "minimize" } else { "maximize" },
        "platform": platform,
        "config": crate::text::clean(&s.config),
        "budget_s": cfg.as_ref().map(|c| c.budget.as_secs_f64()),
        "editable": cfg.as_ref().map(|c| c.editable.iter().map(|p| p.display().to_string()).collect::<Vec<_>>()),
        "running": running,
        "experiments": rows.len(),
        "counts": counts,
        "baseline": baseline,
        "best": best.map(|b| b.metric),
        "best_id": best.map(|b| b.id),
        "noise": noise.sigma().map(|sigma| json!({ "sigma": sigma, "measurements": noise.measurements() })),
    }))
}

/// The best kept experiment.
fn best_of(rows: &[Row], min: bool) -> Option<&Row> {
    rows.iter()
        .filter(|x| x.status == "keep" && x.metric.is_some())
        .fold(None, |acc: Option<&Row>, x| match acc {
            Some(a) => {
                let (av, xv) = (a.metric.unwrap_or(0.0), x.metric.unwrap_or(0.0));
                if (min && xv < av) || (!min && xv > av) {
                    Some(x)
                } else {
                    Some(a)
                }
            }
            None => Some(x),
        })
}

/// The config the session started with, when it still parses.
fn config_of(root: &Path, s: &SessionFull) -> Option<crate::config::Config> {
    crate::config::load_str(&s.config, &root.join(crate::config::CONFIG_FILE)).ok()
}

/// Is a session holding the repository? A shared, non-blocking probe of the session lock,
/// released at once; the lock file is never written.
fn lock_held(state_dir: &Path) -> bool {
    use nix::fcntl::{Flock, FlockArg};
    let Ok(file) = std::fs::File::open(state_dir.join("lock")) else {
        return false;
    };
    Flock::lock(file, FlockArg::LockSharedNonblock).is_err()
}

fn since(target: &Target) -> Result<i64, Reply> {
    match target.get("since") {
        None => Ok(0),
        Some(s) => parse_id(s)
            .ok_or_else(|| Reply::error(400, "`since` must be a whole number, 0 or more")),
    }
}

fn experiments(ctx: &Context, target: &Target) -> Answer {
    let since = since(target)?;
    let r = open(ctx)?;
    let s = pick(ctx, &r, target.get("tag"))?;
    let rows = r.rows(s.summary.id, since).map_err(|e| store(&e))?;
    let max_id = rows.last().map_or(since, |x| x.id);
    Ok(json!({ "tag": s.summary.tag, "experiments": rows, "max_id": max_id }))
}

fn experiment(ctx: &Context, id: i64) -> Answer {
    let r = open(ctx)?;
    let Some(full) = r.experiment(id).map_err(|e| store(&e))? else {
        return Err(Reply::error(404, &format!("no experiment {id}")));
    };
    let s = r
        .session_by_id(full.session_id)
        .map_err(|e| store(&e))?
        .ok_or_else(|| Reply::error(404, &format!("experiment {id} has no session")))?;
    let runs = r.runs(id).map_err(|e| store(&e))?;
    let editable = config_of(&ctx.root, &s)
        .map(|c| c.editable)
        .unwrap_or_default();
    let diff = if full.commit.is_empty() {
        None
    } else {
        files::diff(&ctx.root, &full.parent, &full.commit, &editable)
    };
    let parent_id = if full.parent.is_empty() {
        None
    } else {
        r.id_of_commit(s.summary.id, &full.parent)
            .map_err(|e| store(&e))?
    };
    let log = full
        .log_path
        .as_deref()
        .map(|p| match files::log_tail(&ctx.root, p) {
            Ok(text) => json!({ "path": p, "text": text }),
            Err(why) => json!({ "path": p, "error": refusal(&why) }),
        });
    let metric = |k: &str| full.metrics.get(k).and_then(Value::as_f64);
    let cost = json!({
        "usd": metric("autoresearch_cost_usd"),
        "tokens_in": metric("autoresearch_tokens_in"),
        "tokens_out": metric("autoresearch_tokens_out"),
    });
    let mut v = serde_json::to_value(&full.row).unwrap_or_else(|_| json!({}));
    if let Some(o) = v.as_object_mut() {
        o.insert("tag".into(), json!(s.summary.tag));
        o.insert("metric_name".into(), json!(s.summary.metric));
        o.insert("parent".into(), json!(full.parent));
        o.insert("parent_id".into(), json!(parent_id));
        o.insert("commit".into(), json!(full.commit));
        o.insert("metrics".into(), full.metrics.clone());
        o.insert("memory_gb".into(), json!(full.memory_gb));
        o.insert("reason".into(), json!(crate::text::clean(&full.reason)));
        o.insert("log_path".into(), json!(full.log_path));
        o.insert("runs".into(), json!(runs));
        o.insert("diff".into(), json!(diff));
        o.insert("cost".into(), cost);
        o.insert("log".into(), json!(log));
    }
    Ok(v)
}

fn refusal(why: &files::LogRefusal) -> &'static str {
    match why {
        files::LogRefusal::Forbidden => "not a run log under .autoresearch/runs/",
        files::LogRefusal::Missing => "the log is gone",
    }
}

fn log(ctx: &Context, target: &Target) -> Answer {
    let Some(path) = target.get("path") else {
        return Err(Reply::error(
            400,
            "give the log as ?path=.autoresearch/runs/…",
        ));
    };
    let r = open(ctx)?;
    let s = pick(ctx, &r, target.get("tag"))?;
    // Only logs the journal names for this session, and only under the runs folder.
    if !r
        .is_session_log(s.summary.id, path)
        .map_err(|e| store(&e))?
    {
        return Err(Reply::error(403, "not a run log of this session"));
    }
    match files::log_tail(&ctx.root, path) {
        Ok(text) => Ok(json!({ "path": path, "text": text })),
        Err(files::LogRefusal::Forbidden) => {
            Err(Reply::error(403, refusal(&files::LogRefusal::Forbidden)))
        }
        Err(files::LogRefusal::Missing) => {
            Err(Reply::error(404, refusal(&files::LogRefusal::Missing)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_decoded() {
        let t = Target::parse("/api/log?path=a%2F..%2Fb&tag=x+y&bad=%zz&e=");
        assert_eq!(t.path, "/api/log");
        assert_eq!(t.get("path"), Some("a/../b"));
        assert_eq!(t.get("tag"), Some("x y"));
        assert_eq!(t.get("bad"), Some("%zz"));
        assert_eq!(t.get("e"), None);
        assert_eq!(Target::parse("/%").path, "/%");
        assert_eq!(parse_id("-1"), None);
        assert_eq!(parse_id("99999999999999999999999"), None);
        assert_eq!(parse_id("7"), Some(7));
        for ok in ["127.0.0.1:8765", "localhost:1", "[::1]:8765", "localhost"] {
            assert!(host_is_loopback(ok), "{ok}");
        }
        for bad in [
            "evil.example:8765",
            "evil.example",
            "10.0.0.1:8765",
            "[::]:1",
            "",
        ] {
            assert!(!host_is_loopback(bad), "{bad}");
        }
    }
}
