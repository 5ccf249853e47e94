//! LLM proposers: Anthropic's Messages API, OpenAI-compatible Chat Completions (OpenAI,
//! Ollama, vLLM, llama.cpp, LM Studio, OpenRouter) and CLI coding agents. Every answer is
//! validated here (format, editable paths, no-ops, duplicates) before the session sees it.
//! A proposer never runs training, never commits, and never reveals an API key.

pub mod api;
pub mod check;
pub mod command;
pub mod exchange;
pub mod fit;
pub mod next_steps;
mod phase;
pub mod pricing;
pub mod prompt;
pub mod stream;
pub mod structured;
pub mod transport;

use self::api::{Client, Provider, Role};
use self::command::CommandAgent;
use self::exchange::{Ask, Ledger};
use self::prompt::{AnswerStyle, Prompt, Templates};
use self::transport::{Http, RetryPolicy, Secret};
use super::edits;
use super::{AgentError, CallRecord, Context, FileChange, Proposal, Proposer, Usage, state_hash};
use crate::config::{AgentBackend, AgentConfig};
use crate::experiment::Category;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Anthropic's model when `[agent] model` is not set.
pub const DEFAULT_ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";

#[derive(Clone)]
enum Backend {
    Api(Box<Client>),
    Command(CommandAgent),
}

/// A proposer backed by an LLM. Build it with [`LlmProposer::from_config`].
#[derive(Clone)]
pub struct LlmProposer {
    backend: Backend,
    templates: Templates,
    /// The window, the calls, the last prompt and usage.
    ledger: Ledger,
    /// `[agent] context_tokens`: wins over what the server says.
    configured_context: Option<u64>,
}

impl std::fmt::Debug for LlmProposer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the name: the client holds the key (itself redacted), prompts are large.
        f.debug_struct("LlmProposer")
            .field("name", &self.name())
            .finish()
    }
}

impl LlmProposer {
    /// Builds the proposer for `[agent]`, reading the API key from the environment
    /// (`ANTHROPIC_API_KEY`, or `OPENAI_API_KEY` when set).
    pub fn from_config(agent: &AgentConfig) -> Result<LlmProposer, AgentError> {
        let var = match agent.backend {
            AgentBackend::Anthropic => Some("ANTHROPIC_API_KEY"),
            AgentBackend::OpenAi => Some("OPENAI_API_KEY"),
            _ => None,
        };
        let key = var
            .and_then(|v| std::env::var(v).ok())
            .filter(|k| !k.trim().is_empty());
        LlmProposer::with_key(agent, key)
    }

    /// Like `from_config` with the key given (tests, or a caller with its own source).
    pub fn with_key(agent: &AgentConfig, key: Option<String>) -> Result<LlmProposer, AgentError> {
        let templates = Templates::load(agent.templates.as_deref()).map_err(AgentError::Fatal)?;
        let timeout = agent.timeout;
        let http = || {
            Http::new(
                timeout.unwrap_or(transport::DEFAULT_TIMEOUT),
                RetryPolicy::from_config(agent),
            )
        };
        let backend = match agent.backend {
            AgentBackend::Anthropic => {
                let Some(key) = key else {
                    return Err(AgentError::Fatal(
                        "ANTHROPIC_API_KEY is not set: export it, or choose another [agent] backend".into(),
                    ));
                };
                Backend::Api(Box::new(Client {
                    provider: Provider::Anthropic,
                    model: agent
                        .model
                        .clone()
                        .unwrap_or_else(|| DEFAULT_ANTHROPIC_MODEL.into()),
                    base_url: agent
                        .base_url
                        .clone()
                        .unwrap_or_else(|| api::ANTHROPIC_URL.into()),
                    max_tokens: agent.max_tokens,
                    key: Some(Secret(key.trim().to_string())),
                    prices: agent.prices,
                    http: http(),
                    stream: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(agent.stream)),
                    structured: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(
                        agent.structured != crate::config::Structured::Off,
                    )),
                }))
            }
            AgentBackend::OpenAi => {
                let Some(model) = agent.model.clone() else {
                    return Err(AgentError::Fatal(
                        "the openai backend needs a model: set [agent] model (e.g. \"gpt-4o\" or \"qwen2.5-coder:32b\")".into(),
                    ));
                };
                Backend::Api(Box::new(Client {
                    provider: Provider::OpenAi,
                    model,
                    base_url: agent
                        .base_url
                        .clone()
                        .unwrap_or_else(|| api::OPENAI_URL.into()),
                    max_tokens: agent.max_tokens,
                    key: key.map(|k| Secret(k.trim().to_string())),
                    prices: agent.prices,
                    http: http(),
                    stream: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(agent.stream)),
                    structured: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(
                        agent.structured != crate::config::Structured::Off,
                    )),
                }))
            }
            AgentBackend::Command => {
                let Some(command) = agent.command.clone().filter(|c| !c.trim().is_empty()) else {
                    return Err(AgentError::Fatal(
                        "the command backend needs a command line: set [agent] command (e.g. \"claude -p\")".into(),
                    ));
                };
                Backend::Command(CommandAgent {
                    command,
                    timeout: timeout.unwrap_or(command::DEFAULT_TIMEOUT),
                })
            }
            AgentBackend::Search => {
                return Err(AgentError::Fatal(
                    "the search backend is not an LLM: build agent::search's proposer instead"
                        .into(),
                ));
            }
        };
        Ok(LlmProposer {
            backend,
            templates,
            ledger: Ledger {
                context_tokens: agent.context_tokens,
                ..Ledger::default()
            },
            configured_context: agent.context_tokens,
        })
    }

    /// The model's context in tokens, when known (configured, from the server, or learned
    /// from an overflow).
    pub fn context_tokens(&self) -> Option<u64> {
        self.ledger.context_tokens
    }

    /// The start-up check (see `check`): for an HTTP backend, the endpoint, the key, the
    /// model, and the context size it reports.
    pub fn check(&mut self) -> Result<Vec<String>, AgentError> {
        let Backend::Api(client) = &self.backend else {
            return Ok(Vec::new());
        };
        let served = check::check(client)?;
        let mut notes = served.notes;
        if self.configured_context.is_none() {
            if let Some(n) = served.context_tokens {
                self.ledger.context_tokens = Some(n);
            }
        }
        let answer = self.ledger.answer_tokens(client);
        notes.push(match self.ledger.context_tokens {
            Some(n) => {
                let from = if self.configured_context.is_some() {
                    "[agent] context_tokens"
                } else {
                    "the server"
                };
                format!(
                    "LLM at {}: context {n} tokens ({from}), answers up to {answer} tokens",
                    client.base_url
                )
            }
            None => format!(
                "LLM at {}: answers up to {answer} tokens (context size unknown: set [agent] context_tokens to fit prompts to it)",
                client.base_url
            ),
        });
        Ok(notes)
    }

    /// Why costs read 0, when they do (a model without known prices and none configured).
    pub fn cost_note(&self) -> Option<String> {
        match &self.backend {
            // A server on this machine costs nothing per token.
            Backend::Api(c) if is_loopback(&c.base_url) => None,
            Backend::Api(c) if c.effective_prices().is_none() => Some(format!(
                "no prices known for model \"{}\": costs are recorded as 0 (set [agent] price_input and price_output, USD per million tokens, to estimate them)",
                c.model
            )),
            Backend::Command(_) => {
                Some("the command backend reports no token usage: costs are recorded as 0".into())
            }
            Backend::Api(_) => None,
        }
    }

    /// Asks an API backend for free text (e.g. a summary's next steps). `None` for the
    /// command backend, which edits files rather than answering.
    pub fn write_text(&self, system: &str, user: &str) -> Option<Result<String, AgentError>> {
        match &self.backend {
            Backend::Api(client) => Some(
                client
                    .complete(
                        system,
                        &[(Role::User, user.to_string())],
                        self.ledger.answer_tokens(client),
                    )
                    .map(|a| a.text)
                    .map_err(AgentError::from),
            ),
            Backend::Command(_) => None,
        }
    }

    /// The last prompt sent (system part, then the conversation), for saving beside the
    /// run. It never contains a key.
    pub fn last_prompt(&self) -> Option<&str> {
        self.ledger.last_prompt.as_deref()
    }

    /// The calls made since the last time this was asked, oldest first.
    pub fn take_calls(&mut self) -> Vec<CallRecord> {
        std::mem::take(&mut self.ledger.calls)
    }

    /// Asks once for a repair of a trivial crash. `ctx.files` must hold the editable files
    /// as they were when the run crashed, and `ctx.history`'s last record the crashed
    /// attempt; for the command backend the work tree must hold that state too. The
    /// returned changes are relative to `ctx.files`.
    pub fn repair(&mut self, ctx: &Context<'_>, traceback: &str) -> Result<Proposal, AgentError> {
        self.run(ctx, Ask::Repair(traceback))
    }

    fn run(&mut self, ctx: &Context<'_>, ask: Ask<'_>) -> Result<Proposal, AgentError> {
        self.ledger.usage = Usage::default();
        match &self.backend {
            Backend::Api(client) => {
                exchange::propose(client, &self.templates, ctx, ask, &mut self.ledger)
            }
            Backend::Command(agent) => {
                let style = AnswerStyle::EditInPlace;
                let p: Prompt = match ask {
                    Ask::Propose => self.templates.propose(ctx, style),
                    Ask::Repair(tb) => self.templates.repair(ctx, tb, style),
                };
                let prompt = p.full();
                self.ledger.last_prompt = Some(prompt.clone());
                let started_at =
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let clock = std::time::Instant::now();
                let ran = agent.run(ctx.repo, &prompt, &ctx.config.editable);
                let duration_s = clock.elapsed().as_secs_f64();
                let answer = ran.as_ref().ok().map(|o| o.output.clone());
                let result = ran.and_then(|out| {
                    let mut files = ctx.files.clone();
                    files.extend(out.changes);
                    let desc = edits::field(&out.output, "DESCRIPTION");
                    let cat =
                        edits::field(&out.output, "CATEGORY").and_then(|c| Category::parse(&c));
                    finish(ctx, files, desc, cat, None, Usage::default())
                });
                // The agent's run is a call like any other: on the record.
                self.ledger.calls.push(CallRecord {
                    purpose: ask.purpose().to_string(),
                    started_at,
                    duration_s,
                    prompt,
                    answer,
                    finish_reason: None,
                    usage: Usage::default(),
                    outcome: super::CallOutcome::Used,
                    reason: String::new(),
                });
                self.ledger.settle(&result);
                result
            }
        }
    }
}

/// Is the URL's host this machine (`localhost`, `127.0.0.0/8`, `::1`)?
pub fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host_port = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = host_port.rsplit_once('@').map_or(host_port, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Proposer for LlmProposer {
    fn name(&self) -> String {
        match &self.backend {
            Backend::Api(c) => match c.provider {
                Provider::Anthropic => format!("anthropic:{}", c.model),
                Provider::OpenAi => format!("openai:{}", c.model),
            },
            Backend::Command(a) => {
                // The program's file name, past any leading `VAR=value` assignments.
                let prog = a
                    .command
                    .split_whitespace()
                    .find(|w| w.split_once('=').is_none_or(|(k, _)| k.contains('/')))
                    .map_or("agent", |w| w.rsplit('/').next().unwrap_or(w));
                format!("command:{prog}")
            }
        }
    }

    fn propose(&mut self, ctx: &Context<'_>) -> Result<Proposal, AgentError> {
        self.run(ctx, Ask::Propose)
    }

    fn repair(
        &mut self,
        ctx: &Context<'_>,
        traceback: &str,
    ) -> Option<Result<Proposal, AgentError>> {
        Some(LlmProposer::repair(self, ctx, traceback))
    }

    fn last_prompt(&self) -> Option<String> {
        LlmProposer::last_prompt(self).map(str::to_string)
    }

    fn note(&self) -> Option<String> {
        self.cost_note()
    }

    fn last_usage(&self) -> Usage {
        self.ledger.usage
    }

    fn check(&mut self) -> Result<Vec<String>, AgentError> {
        LlmProposer::check(self)
    }

    fn take_calls(&mut self) -> Vec<CallRecord> {
        LlmProposer::take_calls(self)
    }

    fn watch(&mut self, cancel: crate::runner::Cancel, progress: Option<super::ProgressSink>) {
        self.ledger.watch = exchange::Watch {
            cancel: Some(cancel),
            progress,
        };
    }

    fn fork(&self) -> Option<Box<dyn Proposer>> {
        // The client's clones share its connection pool and what it learned about
        // streaming; the window and the watch are copied; the calls, the last prompt and
        // usage start empty, so that no call is on two records.
        let mut twin = self.clone();
        twin.ledger.calls = Vec::new();
        twin.ledger.last_prompt = None;
        twin.ledger.usage = Usage::default();
        Some(Box::new(twin))
    }
}

/// Final checks shared by all backends, then the proposal.
pub(super) fn finish(
    ctx: &Context<'_>,
    files: BTreeMap<PathBuf, String>,
    description: Option<String>,
    category: Option<Category>,
    scratchpad: Option<String>,
    usage: Usage,
) -> Result<Proposal, AgentError> {
    let changes: Vec<FileChange> = files
        .iter()
        .filter(|(p, c)| ctx.files.get(*p) != Some(*c))
        .map(|(p, c)| FileChange {
            path: p.clone(),
            contents: c.clone(),
        })
        .collect();
    if changes.is_empty() {
        return Err(AgentError::Invalid("the proposal changes nothing".into()));
    }
    if ctx.seen.contains(&state_hash(&files)) {
        return Err(AgentError::Invalid(
            "the proposal recreates code that was already run (a duplicate experiment)".into(),
        ));
    }
    let description = description
        .map(|d| d.chars().take(300).collect())
        .unwrap_or_else(|| diff_summary(ctx.files, &changes));
    Ok(Proposal {
        description,
        category: category.unwrap_or(Category::Other),
        changes,
        scratchpad,
        usage,
    })
}

/// `edit train.py: +3 -1 lines`, from the changed middle of each file.
pub fn diff_summary(before: &BTreeMap<PathBuf, String>, changes: &[FileChange]) -> String {
    let parts: Vec<String> = changes
        .iter()
        .map(|c| {
            let old: Vec<&str> = before
                .get(&c.path)
                .map_or(Vec::new(), |s| s.lines().collect());
            let new: Vec<&str> = c.contents.lines().collect();
            let pre = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
            let post = old[pre..]
                .iter()
                .rev()
                .zip(new[pre..].iter().rev())
                .take_while(|(a, b)| a == b)
                .count();
            format!(
                "{}: +{} -{} lines",
                c.path.display(),
                new.len() - pre - post,
                old.len() - pre - post
            )
        })
        .collect();
    format!("edit {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_urls_are_this_machine_only() {
        for url in [
            "http://localhost:8080/v1",
            "http://127.0.0.1:11434/v1",
            "http://127.0.0.2",
            "http://[::1]:8000/v1",
            "http://user:pw@LOCALHOST/v1",
            "http://ollama.localhost:11434/v1",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "https://api.openai.com/v1",
            "http://localhost.example.com/v1",
            "http://10.0.0.5:8000/v1",
            "http://127.0.0.1.nip.io/v1",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }
}
