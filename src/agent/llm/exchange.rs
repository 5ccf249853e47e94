//! One proposal over HTTP: fit the prompt to the model's context, ask, read the answer
//! (empty, cut off at `max_tokens`, or edit blocks), apply it, ask once more for blocks
//! that did not apply, and shrink the prompt and ask once more when it overflowed the
//! context. Every call goes on the record (`Ledger::calls`). Never touches git or files.

use super::api::{Answer, CallFailure, Client, Role};
use super::fit::{self, DEFAULT_BYTES_PER_TOKEN, TooLarge, Window};
use super::prompt::{AnswerStyle, Limits, Prompt, Templates};
use super::{pricing, structured};
use crate::agent::edits::{self, ApplyError, BlockFailure, Edit};
use crate::agent::{
    AgentError, CallOutcome, CallProgress, CallRecord, Context, ProgressSink, Proposal, Usage,
};
use crate::runner::Cancel;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Who waits on a call: a Ctrl-C to watch for and where progress goes.
#[derive(Clone, Default)]
pub struct Watch {
    pub cancel: Option<Cancel>,
    pub progress: Option<ProgressSink>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("cancel", &self.cancel)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// What a proposer has learned and done: the model's window, the calls made, the last
/// prompt and what the last proposal cost.
#[derive(Debug, Clone)]
pub struct Ledger {
    pub calls: Vec<CallRecord>,
    /// The model's context in tokens: `[agent] context_tokens`, the start-up check's, or
    /// an overflow's answer.
    pub context_tokens: Option<u64>,
    /// From the server's token counts (3 until an answer shows the tokenizer is denser).
    pub bytes_per_token: f64,
    pub last_prompt: Option<String>,
    /// Usage of the last propose or repair, kept when the answer was unusable too.
    pub usage: Usage,
    pub watch: Watch,
}

impl Default for Ledger {
    fn default() -> Ledger {
        Ledger {
            calls: Vec::new(),
            context_tokens: None,
            bytes_per_token: DEFAULT_BYTES_PER_TOKEN,
            last_prompt: None,
            usage: Usage::default(),
            watch: Watch::default(),
        }
    }
}

impl Ledger {
    /// The answer room asked for: `[agent] max_tokens` when set; else the backend's
    /// default, at most a quarter of a known context.
    pub fn answer_tokens(&self, client: &Client) -> u32 {
        match (client.max_tokens, self.context_tokens) {
            (Some(n), _) => n,
            (None, Some(ctx)) => {
                let quarter = u32::try_from((ctx / 4).max(256)).unwrap_or(u32::MAX);
                client.answer_tokens().min(quarter)
            }
            (None, None) => client.answer_tokens(),
        }
    }

    fn window(&self, client: &Client) -> Option<Window> {
        self.context_tokens.map(|context_tokens| Window {
            context_tokens,
            answer_tokens: u64::from(self.answer_tokens(client)),
            bytes_per_token: self.bytes_per_token,
        })
    }

    /// The outcome of the last call, from the proposal it led to.
    pub(super) fn settle(&mut self, result: &Result<Proposal, AgentError>) {
        let Some(last) = self.calls.last_mut() else {
            return;
        };
        if last.outcome != CallOutcome::Used {
            return;
        }
        match result {
            Ok(_) => {}
            Err(AgentError::Invalid(why)) => {
                last.outcome = CallOutcome::Rejected;
                last.reason = why.clone();
            }
            Err(e) => {
                last.outcome = CallOutcome::Failed;
                last.reason = e.to_string();
            }
        }
    }

    /// A context overflow teaches the context size and the tokenizer's density.
    fn learn_overflow(&mut self, p: &Prompt, prompt_tokens: Option<u64>, context: Option<u64>) {
        let bytes = fit::prompt_bytes(p) as f64;
        if let Some(n) = prompt_tokens.filter(|n| *n > 0) {
            self.bytes_per_token = (bytes / n as f64).clamp(1.0, 8.0);
        }
        let sent = prompt_tokens.unwrap_or((bytes / self.bytes_per_token) as u64);
        self.context_tokens = context.or(Some(sent * 3 / 4)).filter(|n| *n > 0);
    }
}

/// What is asked for.
#[derive(Debug, Clone, Copy)]
pub enum Ask<'t> {
    Propose,
    /// A repair of a trivial crash, with its traceback.
    Repair(&'t str),
}

impl Ask<'_> {
    pub(super) fn purpose(self) -> &'static str {
        match self {
            Ask::Propose => "propose",
            Ask::Repair(_) => "repair",
        }
    }
}

/// One proposal: the prompt fitted to the window, asked; on a context overflow, once
/// more with a strictly shorter prompt.
pub fn propose(
    client: &Client,
    templates: &Templates,
    ctx: &Context<'_>,
    ask: Ask<'_>,
    led: &mut Ledger,
) -> Result<Proposal, AgentError> {
    // JSON in the schema while the server takes it, else SEARCH/REPLACE text.
    let build = |l: Limits| {
        let style = if client.wants_json() {
            AnswerStyle::Json
        } else {
            AnswerStyle::Blocks
        };
        match ask {
            Ask::Propose => templates.propose_within(ctx, style, l),
            Ask::Repair(tb) => templates.repair_within(ctx, tb, style, l),
        }
    };
    led.usage = Usage::default();
    let mut below = None;
    let mut purpose = ask.purpose();
    let mut refused = false;
    loop {
        let window = led.window(client);
        let (p, _) =
            fit::fit(window.as_ref(), below, build).map_err(|e| too_large(&e, client, led, ctx))?;
        led.last_prompt = Some(p.full());
        match exchange(client, templates, ctx, &p, led, purpose) {
            Ok(proposal) => return Ok(proposal),
            Err(CallFailure::Agent(e)) => return Err(e),
            // The schema was refused (and is not asked for again): the same, as text.
            Err(CallFailure::FormatRefused(_)) if !refused => {
                refused = true;
                purpose = "as-text";
            }
            Err(f @ CallFailure::FormatRefused(_)) => return Err(f.into()),
            Err(CallFailure::ContextOverflow {
                prompt_tokens,
                context_tokens,
                message,
            }) => {
                led.learn_overflow(&p, prompt_tokens, context_tokens);
                if below.is_some() {
                    // Shrunk once already: the estimate is off or nothing fits.
                    return Err(CallFailure::ContextOverflow {
                        prompt_tokens,
                        context_tokens,
                        message,
                    }
                    .into());
                }
                below = Some(fit::prompt_bytes(&p));
                purpose = "shorter";
            }
        }
    }
}

fn too_large(e: &TooLarge, client: &Client, led: &Ledger, ctx: &Context<'_>) -> AgentError {
    let editable: usize = ctx.files.values().map(String::len).sum();
    AgentError::Fatal(format!(
        "the prompt cannot fit the model's context of {} tokens: with the history, crash log, scratchpad and read-only files left out it still takes about {} tokens (the editable files are {editable} bytes), and {} are left after {} kept for the answer; use a model or server with a larger context (llama-server --ctx-size), or lower [agent] max_tokens",
        led.context_tokens.unwrap_or(0),
        e.smallest_tokens,
        e.room,
        led.answer_tokens(client),
    ))
}

/// The proposal's schema for `client`: each edit's `search` one of its file's lines where
/// the server takes such an enum (one on this machine always; elsewhere within OpenAI's
/// limits), else free text.
fn json_schema(client: &Client, ctx: &Context<'_>) -> serde_json::Value {
    let editable = &ctx.config.editable;
    let local = super::is_loopback(&client.base_url);
    let fits = || {
        editable.iter().all(|p| {
            let text = ctx.files.get(p).map_or("", String::as_str);
            structured::fits_strict_limits(&structured::line_choices(text))
        })
    };
    if local || fits() {
        structured::schema_with_lines(editable, ctx.files)
    } else {
        structured::schema(editable)
    }
}

/// One prompt: asked, the answer used, blocks that did not apply asked for once more.
fn exchange(
    client: &Client,
    templates: &Templates,
    ctx: &Context<'_>,
    p: &Prompt,
    led: &mut Ledger,
    purpose: &str,
) -> Result<Proposal, CallFailure> {
    let max_tokens = led.answer_tokens(client);
    let schema = client.wants_json().then(|| json_schema(client, ctx));
    let shape = Shape {
        max_tokens,
        schema: schema.as_ref(),
    };
    let mut conv = vec![(Role::User, p.task.clone())];
    let first = call(client, &p.system, &conv, &shape, purpose, led)?;
    pricing::add(&mut led.usage, &first.usage);
    let result = use_answer(client, templates, ctx, p, &mut conv, &first, led, &shape);
    led.settle(&result);
    result.map_err(CallFailure::Agent)
}

#[expect(clippy::too_many_arguments, reason = "one exchange's whole state")]
fn use_answer(
    client: &Client,
    templates: &Templates,
    ctx: &Context<'_>,
    p: &Prompt,
    conv: &mut Vec<(Role, String)>,
    first: &Answer,
    led: &mut Ledger,
    shape: &Shape<'_>,
) -> Result<Proposal, AgentError> {
    let max_tokens = shape.max_tokens;
    let json = shape.schema.is_some();
    let parsed = parse(first, max_tokens, "", json)?;
    let editable = &ctx.config.editable;
    let files = match edits::apply(ctx.files, &parsed.edits, editable) {
        Ok(f) => f,
        Err(ApplyError::Blocks(failures)) => {
            if let Some(last) = led.calls.last_mut() {
                last.outcome = CallOutcome::Rejected;
                last.reason = format!("{} block(s) did not apply: asked again", failures.len());
            }
            conv.push((Role::Assistant, first.text.clone()));
            conv.push((Role::User, templates.retry(&failures, &parsed.edits)));
            if let Some(l) = led.last_prompt.as_mut() {
                for (r, t) in &conv[1..] {
                    l.push_str(&format!("\n\n--- {r:?} ---\n{t}"));
                }
            }
            let again = call(client, &p.system, conv, shape, "ask-again", led).map_err(
                |f| match f {
                    CallFailure::ContextOverflow { message, .. } => AgentError::Invalid(format!(
                        "asking again for the blocks that did not apply overflows the context ({message})"
                    )),
                    other => other.into(),
                },
            )?;
            pricing::add(&mut led.usage, &again.usage);
            let fixed = parse(&again, max_tokens, "second answer: ", json)?.edits;
            let used = merge_fixes(&parsed.edits, &failures, fixed);
            edits::apply(ctx.files, &used, editable)
                .map_err(|e| AgentError::Invalid(format!("after asking again: {e}")))?
        }
        Err(e) => {
            return Err(cut_off(
                first,
                max_tokens,
                AgentError::Invalid(e.to_string()),
            ));
        }
    };
    let cat = parsed.category.and_then(Result::ok);
    super::finish(
        ctx,
        files,
        parsed.description,
        cat,
        parsed.scratchpad,
        led.usage,
    )
}

/// The answer's edit blocks, or why there are none (an empty or cut-off answer says so).
fn parse(
    a: &Answer,
    max_tokens: u32,
    prefix: &str,
    json: bool,
) -> Result<edits::Parsed, AgentError> {
    if a.text.trim().is_empty() {
        let why = if a.cut_off() {
            format!(
                "the answer was cut off at max_tokens = {max_tokens} before any text: raise [agent] max_tokens"
            )
        } else {
            let stop = a
                .finish_reason
                .as_ref()
                .map_or(String::new(), |s| format!(" (stop reason: {s})"));
            format!("the model gave an empty answer{stop}")
        };
        return Err(AgentError::Invalid(format!("{prefix}{why}")));
    }
    let read = if json {
        structured::parse(&a.text)
    } else {
        edits::parse(&a.text)
    };
    let parsed =
        read.map_err(|e| cut_off(a, max_tokens, AgentError::Invalid(format!("{prefix}{e}"))))?;
    if parsed.edits.is_empty() {
        return Err(cut_off(
            a,
            max_tokens,
            AgentError::Invalid(format!(
                "{prefix}the answer has no edit blocks (expected a path line and <<<<<<< SEARCH … >>>>>>> REPLACE)"
            )),
        ));
    }
    Ok(parsed)
}

/// An unusable answer that hit `max_tokens` says so first: the cut is the cause.
fn cut_off(a: &Answer, max_tokens: u32, e: AgentError) -> AgentError {
    match e {
        AgentError::Invalid(m) if a.cut_off() => AgentError::Invalid(format!(
            "the answer was cut off at max_tokens = {max_tokens} (finish reason: {}): {m}; raise [agent] max_tokens",
            a.finish_reason.as_deref().unwrap_or("length")
        )),
        other => other,
    }
}

/// One call, on the record whatever happens.
/// What an answer must look like: its length bound and, when asked for, its schema.
pub struct Shape<'s> {
    pub max_tokens: u32,
    pub schema: Option<&'s serde_json::Value>,
}

fn call(
    client: &Client,
    system: &str,
    conv: &[(Role, String)],
    shape: &Shape<'_>,
    purpose: &str,
    led: &mut Ledger,
) -> Result<Answer, CallFailure> {
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let clock = Instant::now();
    let result = watched(client, system, conv, shape, &led.watch);
    let duration_s = clock.elapsed().as_secs_f64();
    let prompt = transcript(system, conv);
    let mut rec = CallRecord {
        purpose: purpose.to_string(),
        started_at,
        duration_s,
        prompt,
        answer: None,
        finish_reason: None,
        usage: Usage::default(),
        outcome: CallOutcome::Used,
        reason: String::new(),
    };
    match &result {
        Ok(a) => {
            rec.answer = Some(a.text.clone());
            rec.finish_reason.clone_from(&a.finish_reason);
            rec.usage = a.usage;
            let tokens =
                a.usage.input_tokens + a.usage.cache_read_tokens + a.usage.cache_write_tokens;
            if tokens > 0 {
                let bytes =
                    (system.len() + conv.iter().map(|(_, t)| t.len()).sum::<usize>()) as f64;
                // Denser than assumed is learned; looser never: a prompt cut a little
                // short costs less than one that overflows.
                led.bytes_per_token = (bytes / tokens as f64).clamp(1.0, DEFAULT_BYTES_PER_TOKEN);
            }
        }
        Err(CallFailure::ContextOverflow { message, .. }) => {
            rec.outcome = CallOutcome::Failed;
            rec.reason = format!("the prompt exceeds the model's context: {message}");
        }
        Err(CallFailure::FormatRefused(m)) => {
            rec.outcome = CallOutcome::Failed;
            rec.reason = format!("the server refused the JSON schema: {m}");
        }
        Err(CallFailure::Agent(e)) => {
            rec.outcome = CallOutcome::Failed;
            rec.reason = e.to_string();
        }
    }
    led.calls.push(rec);
    result
}

/// What a call's waiting reports: progress twice a second.
const TICK: Duration = Duration::from_millis(500);

/// One call; with a `Cancel`, on its own thread, so that a Ctrl-C abandons it at once
/// instead of waiting minutes for the answer (the thread ends with the process, or when
/// the server answers).
pub fn watched(
    client: &Client,
    system: &str,
    conv: &[(Role, String)],
    shape: &Shape<'_>,
    watch: &Watch,
) -> Result<Answer, CallFailure> {
    let (max_tokens, schema) = (shape.max_tokens, shape.schema.cloned());
    let Some(cancel) = watch.cancel.clone() else {
        return client.complete_streaming(system, conv, max_tokens, schema.as_ref(), &mut |_| {});
    };
    let _busy = cancel.asking();
    let pieces = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel();
    let (c, s, m, seen) = (
        client.clone(),
        system.to_string(),
        conv.to_vec(),
        pieces.clone(),
    );
    let spawned = std::thread::Builder::new()
        .name("llm-call".into())
        .spawn(move || {
            let r = c.complete_streaming(&s, &m, max_tokens, schema.as_ref(), &mut |n| {
                seen.store(n, Ordering::Relaxed);
            });
            let _ = tx.send(r);
        });
    if spawned.is_err() {
        let schema = shape.schema;
        return client.complete_streaming(system, conv, max_tokens, schema, &mut |_| {});
    }
    let clock = Instant::now();
    let show = |done: bool| {
        if let Some(p) = &watch.progress {
            p(&CallProgress {
                tokens: pieces.load(Ordering::Relaxed),
                seconds: clock.elapsed().as_secs_f64(),
                done,
            });
        }
    };
    let mut next = Instant::now() + TICK;
    loop {
        let step = Duration::from_millis(50).min(next.saturating_duration_since(Instant::now()));
        match rx.recv_timeout(step) {
            Ok(r) => {
                show(true);
                return r;
            }
            Err(RecvTimeoutError::Disconnected) => {
                show(true);
                return Err(CallFailure::Agent(AgentError::Transient(
                    "the LLM call ended without an answer".into(),
                )));
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        if cancel.requested() {
            show(true);
            return Err(CallFailure::Agent(AgentError::Transient(format!(
                "interrupted after {:.0}s: the LLM call was abandoned",
                clock.elapsed().as_secs_f64()
            ))));
        }
        if Instant::now() >= next {
            show(false);
            next += TICK;
        }
    }
}

/// The system part and the conversation as one text.
fn transcript(system: &str, conv: &[(Role, String)]) -> String {
    let mut t = format!("--- system ---\n{system}");
    for (r, m) in conv {
        t.push_str(&format!("\n\n--- {} ---\n{m}", r.as_str()));
    }
    t
}

/// The first answer's good blocks plus the corrected ones: position for position when
/// the counts agree, otherwise all the corrections in place of the failed blocks.
fn merge_fixes(first: &[Edit], failures: &[BlockFailure], fixed: Vec<Edit>) -> Vec<Edit> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overflow_teaches_the_context_and_the_density() {
        let mut led = Ledger::default();
        let p = Prompt {
            system: "s".repeat(60_000),
            task: "t".repeat(15_243),
        };
        led.learn_overflow(&p, Some(25_081), Some(8192));
        assert_eq!(led.context_tokens, Some(8192));
        assert!((led.bytes_per_token - 3.0).abs() < 0.01);
        // Without numbers: three quarters of what was sent.
        let mut led = Ledger::default();
        led.learn_overflow(&p, None, None);
        assert_eq!(led.context_tokens, Some(75_243 / 3 * 3 / 4));
    }
}
