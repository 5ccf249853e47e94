//! LLM proposers: Anthropic's Messages API, OpenAI-compatible Chat Completions (OpenAI,
//! Ollama, vLLM, llama.cpp, LM Studio, OpenRouter) and CLI coding agents. Every answer is
//! validated here (format, editable paths, no-ops, duplicates) before the session sees it.
//! A proposer never runs training, never commits, and never reveals an API key.

pub mod api;
pub mod command;
pub mod pricing;
pub mod prompt;
pub mod transport;

use self::api::{Client, Provider, Role};
use self::command::CommandAgent;
use self::prompt::{AnswerStyle, Prompt, Templates};
use self::transport::{Http, RetryPolicy, Secret};
use super::edits::{self, ApplyError, Edit};
use super::{AgentError, Context, FileChange, Proposal, Proposer, Usage, state_hash};
use crate::config::{AgentBackend, AgentConfig};
use crate::experiment::Category;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Anthropic's model when `[agent] model` is not set.
pub const DEFAULT_ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";

enum Backend {
    Api(Client),
    Command(CommandAgent),
}

/// A proposer backed by an LLM. Build it with [`LlmProposer::from_config`].
pub struct LlmProposer {
    backend: Backend,
    templates: Templates,
    last_prompt: Option<String>,
    /// Usage of the last propose or repair, kept when the answer was unusable too.
    last_usage: Usage,
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
                Backend::Api(Client {
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
                })
            }
            AgentBackend::OpenAi => {
                let Some(model) = agent.model.clone() else {
                    return Err(AgentError::Fatal(
                        "the openai backend needs a model: set [agent] model (e.g. \"gpt-4o\" or \"qwen2.5-coder:32b\")".into(),
                    ));
                };
                Backend::Api(Client {
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
                })
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
            last_prompt: None,
            last_usage: Usage::default(),
        })
    }

    /// Why costs read 0, when they do (a model without known prices and none configured).
    pub fn cost_note(&self) -> Option<String> {
        match &self.backend {
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
                    .complete(system, &[(Role::User, user.to_string())])
                    .map(|(text, _)| text),
            ),
            Backend::Command(_) => None,
        }
    }

    /// The last prompt sent (system part, then the conversation), for saving beside the
    /// run. It never contains a key.
    pub fn last_prompt(&self) -> Option<&str> {
        self.last_prompt.as_deref()
    }

    /// Asks once for a repair of a trivial crash. `ctx.files` must hold the editable files
    /// as they were when the run crashed, and `ctx.history`'s last record the crashed
    /// attempt; for the command backend the work tree must hold that state too. The
    /// returned changes are relative to `ctx.files`.
    pub fn repair(&mut self, ctx: &Context<'_>, traceback: &str) -> Result<Proposal, AgentError> {
        let style = self.style();
        let p = self.templates.repair(ctx, traceback, style);
        self.run(ctx, p)
    }

    fn style(&self) -> AnswerStyle {
        match self.backend {
            Backend::Api(_) => AnswerStyle::Blocks,
            Backend::Command(_) => AnswerStyle::EditInPlace,
        }
    }

    fn run(&mut self, ctx: &Context<'_>, p: Prompt) -> Result<Proposal, AgentError> {
        self.last_prompt = Some(p.full());
        self.last_usage = Usage::default();
        match &self.backend {
            Backend::Api(client) => ask(
                client,
                &self.templates,
                ctx,
                &p,
                &mut self.last_prompt,
                &mut self.last_usage,
            ),
            Backend::Command(agent) => {
                let out = agent.run(ctx.repo, &p.full(), &ctx.config.editable)?;
                let mut files = ctx.files.clone();
                files.extend(out.changes);
                let desc = edits::field(&out.output, "DESCRIPTION");
                let cat = edits::field(&out.output, "CATEGORY").and_then(|c| Category::parse(&c));
                finish(ctx, files, desc, cat, None, Usage::default())
            }
        }
    }
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
        let style = self.style();
        let p = self.templates.propose(ctx, style);
        self.run(ctx, p)
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
        self.last_usage
    }
}

/// One HTTP proposal: ask, parse, apply; on unmatched blocks ask once more for them only.
/// `spent` adds up every answer's usage, whether or not the proposal is usable.
fn ask(
    client: &Client,
    templates: &Templates,
    ctx: &Context<'_>,
    p: &Prompt,
    log: &mut Option<String>,
    spent: &mut Usage,
) -> Result<Proposal, AgentError> {
    let mut conv = vec![(Role::User, p.task.clone())];
    let (answer, first) = client.complete(&p.system, &conv)?;
    *spent = first;
    let parsed = edits::parse(&answer).map_err(|e| AgentError::Invalid(e.to_string()))?;
    if parsed.edits.is_empty() {
        return Err(AgentError::Invalid(
            "the answer has no edit blocks (expected a path line and <<<<<<< SEARCH … >>>>>>> REPLACE)".into(),
        ));
    }
    let editable = &ctx.config.editable;
    let mut edits_used = parsed.edits.clone();
    let files = match edits::apply(ctx.files, &edits_used, editable) {
        Ok(f) => f,
        Err(ApplyError::Blocks(failures)) => {
            let follow_up = templates.retry(&failures, &parsed.edits);
            conv.push((Role::Assistant, answer));
            conv.push((Role::User, follow_up));
            if let Some(l) = log.as_mut() {
                for (r, t) in &conv[1..] {
                    l.push_str(&format!("\n\n--- {r:?} ---\n{t}"));
                }
            }
            let (again, u2) = client.complete(&p.system, &conv)?;
            pricing::add(spent, &u2);
            let fixed = edits::parse(&again)
                .map_err(|e| AgentError::Invalid(format!("second answer: {e}")))?
                .edits;
            edits_used = merge_fixes(&parsed.edits, &failures, fixed);
            edits::apply(ctx.files, &edits_used, editable)
                .map_err(|e| AgentError::Invalid(format!("after asking again: {e}")))?
        }
        Err(e) => return Err(AgentError::Invalid(e.to_string())),
    };
    let cat = parsed.category.and_then(Result::ok);
    finish(
        ctx,
        files,
        parsed.description,
        cat,
        parsed.scratchpad,
        *spent,
    )
}

/// The first answer's good blocks plus the corrected ones: position for position when
/// the counts agree, otherwise all the corrections in place of the failed blocks.
fn merge_fixes(first: &[Edit], failures: &[edits::BlockFailure], fixed: Vec<Edit>) -> Vec<Edit> {
    let failed: Vec<usize> = failures.iter().map(|f| f.index).collect();
    let mut out: Vec<Edit> = Vec::with_capacity(first.len());
    let mut fixes = fixed.into_iter();
    let one_for_one = fixes.len() == failed.len();
    for (k, e) in first.iter().enumerate() {
        if !failed.contains(&(k + 1)) {
            out.push(e.clone());
        } else if one_for_one {
            out.extend(fixes.next());
        }
    }
    out.extend(fixes);
    out
}

/// Final checks shared by all backends, then the proposal.
fn finish(
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
