//! The two HTTP wire formats: Anthropic's Messages API and OpenAI-compatible Chat
//! Completions. Builds request bodies, reads answers and usage, and turns failures into
//! `AgentError`s with a one-line fix. Never shows the API key.

use super::pricing;
use super::stream::{self, Assembled};
use super::transport::{CallError, Http, Secret};
use crate::agent::{AgentError, Usage};
use crate::config::ModelPrices;
use serde_json::{Value, json};
use std::io::{BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub const ANTHROPIC_URL: &str = "https://api.anthropic.com";
pub const OPENAI_URL: &str = "https://api.openai.com/v1";
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; enough for a few edit blocks and notes.
pub const DEFAULT_MAX_TOKENS: u32 = 8192;
/// Chat Completions servers run unbounded without `max_tokens` (a small local model can
/// ramble for minutes): every call is bounded, by this when `[agent] max_tokens` is unset.
pub const DEFAULT_OPENAI_MAX_TOKENS: u32 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Anthropic,
    OpenAi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One API endpoint with its model and (optional) key. Clones share the connection pool
/// and what was learned about streaming.
#[derive(Debug, Clone)]
pub struct Client {
    pub provider: Provider,
    pub model: String,
    pub base_url: String,
    pub max_tokens: Option<u32>,
    pub key: Option<Secret>,
    pub prices: Option<ModelPrices>,
    pub http: Http,
    /// Ask for a streamed answer (turned off for good when the server refuses it).
    pub stream: Arc<AtomicBool>,
    /// Ask for the proposal in the JSON schema (turned off for good when refused).
    pub structured: Arc<AtomicBool>,
}

/// One answer as the server gave it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub text: String,
    pub usage: Usage,
    /// The provider's own word for why the answer ended: `stop`, `length`, `end_turn`,
    /// `max_tokens`, …
    pub finish_reason: Option<String>,
}

impl Answer {
    /// The answer hit the `max_tokens` bound: what was meant to follow is missing.
    pub fn cut_off(&self) -> bool {
        matches!(self.finish_reason.as_deref(), Some("length" | "max_tokens"))
    }
}

/// Why a call produced no answer.
#[derive(Debug)]
pub enum CallFailure {
    /// The prompt does not fit the model's context (a 400 that says so). The numbers are
    /// the server's, when it gave them.
    ContextOverflow {
        prompt_tokens: Option<u64>,
        context_tokens: Option<u64>,
        message: String,
    },
    /// The server refused the JSON schema (`response_format`): ask for text instead.
    FormatRefused(String),
    /// Anything else, already in the session's terms.
    Agent(AgentError),
}

/// One request's parts.
struct Ask<'a> {
    system: &'a str,
    messages: &'a [(Role, String)],
    max_tokens: u32,
    schema: Option<&'a Value>,
}

/// Does a refusal name the structured-output request?
fn names_the_format(body: &str) -> bool {
    let b = body.to_ascii_lowercase();
    ["response_format", "json_schema", "schema", "grammar"]
        .iter()
        .any(|k| b.contains(k))
}

/// A `send`'s failure: a 400 to a streamed request is kept raw until it is known whether
/// streaming was the cause.
enum SendFailure {
    Refused { code: u16, body: String },
    Call(CallFailure),
}

impl From<CallFailure> for SendFailure {
    fn from(f: CallFailure) -> SendFailure {
        SendFailure::Call(f)
    }
}

impl From<CallFailure> for AgentError {
    fn from(f: CallFailure) -> AgentError {
        match f {
            CallFailure::ContextOverflow { message, .. } => AgentError::Fatal(format!(
                "the prompt does not fit the model's context ({message}): raise the server's context size (llama-server --ctx-size), set [agent] context_tokens, or use fewer read_only files"
            )),
            CallFailure::FormatRefused(m) => AgentError::Invalid(format!(
                "the server refused the JSON schema ({m}): set [agent] structured = \"off\""
            )),
            CallFailure::Agent(e) => e,
        }
    }
}

impl Client {
    /// The answer room requested from the server: `[agent] max_tokens`, else the
    /// backend's default.
    pub fn answer_tokens(&self) -> u32 {
        self.max_tokens.unwrap_or(match self.provider {
            Provider::Anthropic => DEFAULT_MAX_TOKENS,
            Provider::OpenAi => DEFAULT_OPENAI_MAX_TOKENS,
        })
    }

    /// The key's environment variable, for messages that name the fix.
    pub fn key_var(&self) -> &'static str {
        match self.provider {
            Provider::Anthropic => "ANTHROPIC_API_KEY",
            Provider::OpenAi => "OPENAI_API_KEY",
        }
    }

    /// The key's headers (none without a key).
    pub(crate) fn auth(&self) -> Vec<(&'static str, Secret)> {
        match (&self.key, self.provider) {
            (None, _) => Vec::new(),
            (Some(k), Provider::Anthropic) => vec![("x-api-key", k.clone())],
            (Some(k), Provider::OpenAi) => {
                vec![("authorization", Secret(format!("Bearer {}", k.0)))]
            }
        }
    }

    /// Sends the stable `system` prefix and the conversation, asking for at most
    /// `max_tokens` of answer; returns the answer, empty or cut off as it may be (the
    /// caller decides what that means).
    pub fn complete(
        &self,
        system: &str,
        messages: &[(Role, String)],
        max_tokens: u32,
    ) -> Result<Answer, CallFailure> {
        self.complete_streaming(system, messages, max_tokens, None, &mut |_| {})
    }

    /// Whether proposals are asked for in the JSON schema (Chat Completions only).
    pub fn wants_json(&self) -> bool {
        self.provider == Provider::OpenAi && self.structured.load(Ordering::SeqCst)
    }

    /// `complete`, with the answer constrained to `schema` when given, reporting
    /// streamed progress (text pieces so far) to `on_piece`.
    pub fn complete_streaming(
        &self,
        system: &str,
        messages: &[(Role, String)],
        max_tokens: u32,
        schema: Option<&Value>,
        on_piece: &mut dyn FnMut(u64),
    ) -> Result<Answer, CallFailure> {
        let streamed = self.stream.load(Ordering::SeqCst);
        let ask = Ask {
            system,
            messages,
            max_tokens,
            schema,
        };
        let first = match self.send(&ask, streamed, on_piece) {
            // A server that refuses `stream` (or its options) is asked plainly from now on.
            Err(SendFailure::Refused { body, .. })
                if body.to_ascii_lowercase().contains("stream") =>
            {
                self.stream.store(false, Ordering::SeqCst);
                self.send(&ask, false, on_piece)
            }
            other => other,
        };
        first.map_err(|f| match f {
            // One that refuses the schema is asked for text from now on.
            SendFailure::Refused { body, .. } if schema.is_some() && names_the_format(&body) => {
                self.structured.store(false, Ordering::SeqCst);
                CallFailure::FormatRefused(self.redact(&provider_message(&body)))
            }
            SendFailure::Refused { code, body } => {
                self.call_error(&self.endpoint(), CallError::Status { code, body })
            }
            SendFailure::Call(c) => c,
        })
    }

    fn endpoint(&self) -> String {
        let base = self.base_url.trim_end_matches('/');
        match self.provider {
            Provider::Anthropic => format!("{base}/v1/messages"),
            Provider::OpenAi => format!("{base}/chat/completions"),
        }
    }

    fn send(
        &self,
        ask: &Ask<'_>,
        streamed: bool,
        on_piece: &mut dyn FnMut(u64),
    ) -> Result<Answer, SendFailure> {
        let url = self.endpoint();
        let mut body = match self.provider {
            Provider::Anthropic => self.anthropic_body(ask.system, ask.messages, ask.max_tokens),
            Provider::OpenAi => self.openai_body(ask.system, ask.messages, ask.max_tokens),
        };
        if let (Some(schema), Provider::OpenAi) = (ask.schema, self.provider) {
            body["response_format"] = super::structured::response_format(schema);
        }
        if streamed {
            body["stream"] = json!(true);
            if self.provider == Provider::OpenAi {
                body["stream_options"] = json!({"include_usage": true});
            }
        }
        let auth = self.auth();
        let secret: Vec<(&str, &Secret)> = auth.iter().map(|(k, v)| (*k, v)).collect();
        let headers: &[(&str, &str)] = match self.provider {
            Provider::Anthropic => &[("anthropic-version", ANTHROPIC_VERSION)],
            Provider::OpenAi => &[],
        };
        let provider = self.provider;
        let deadline = std::time::Instant::now() + self.http.timeout();
        let read = self
            .http
            .post_read(&url, headers, &secret, &body.to_string(), &mut |ct, r| {
                if ct.is_some_and(|c| c.starts_with("text/event-stream")) {
                    let mut a = Assembled::default();
                    stream::read_events(BufReader::new(r), deadline, |v| {
                        a.take(provider, v);
                        on_piece(a.deltas);
                    })?;
                    Ok(Ok(a))
                } else {
                    let mut s = String::new();
                    Read::take(r, 64 * 1024 * 1024).read_to_string(&mut s)?;
                    Ok(Err(s))
                }
            });
        let v: Value = match read {
            Err(CallError::Status { code, body })
                if code == 400
                    && (streamed || ask.schema.is_some())
                    && context_overflow(&body).is_none() =>
            {
                return Err(SendFailure::Refused { code, body });
            }
            Err(e) => return Err(self.call_error(&url, e).into()),
            Ok(Ok(a)) => {
                if let Some(e) = a.error {
                    // An error event mid-stream: the provider failed this answer.
                    let failed = CallError::Status { code: 500, body: e };
                    return Err(self.call_error(&url, failed).into());
                }
                a.body(provider)
            }
            Ok(Err(text)) => serde_json::from_str(&text).map_err(|e| {
                CallFailure::Agent(AgentError::Invalid(format!(
                    "the answer from {url} is not JSON: {e}"
                )))
            })?,
        };
        match self.provider {
            Provider::Anthropic => self.read_anthropic(&v),
            Provider::OpenAi => self.read_openai(&v),
        }
        .map_err(|e| CallFailure::Agent(e).into())
    }

    fn anthropic_body(&self, system: &str, messages: &[(Role, String)], max_tokens: u32) -> Value {
        let msgs: Vec<Value> = messages
            .iter()
            .map(|(r, t)| json!({"role": r.as_str(), "content": t}))
            .collect();
        json!({
            "model": self.model,
            "max_tokens": max_tokens,
            // The prefix that stays the same across iterations: cached at a tenth of the price.
            "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
            "messages": msgs,
        })
    }

    fn openai_body(&self, system: &str, messages: &[(Role, String)], max_tokens: u32) -> Value {
        let mut msgs = vec![json!({"role": "system", "content": system})];
        msgs.extend(
            messages
                .iter()
                .map(|(r, t)| json!({"role": r.as_str(), "content": t})),
        );
        json!({"model": self.model, "messages": msgs, "max_tokens": max_tokens})
    }

    fn read_anthropic(&self, v: &Value) -> Result<Answer, AgentError> {
        let blocks = v["content"].as_array().ok_or_else(|| {
            AgentError::Invalid("the Anthropic answer has no `content` array".into())
        })?;
        let text: String = blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("");
        let u = &v["usage"];
        let n = |k: &str| u[k].as_u64().unwrap_or(0);
        let mut usage = Usage {
            input_tokens: n("input_tokens"),
            output_tokens: n("output_tokens"),
            cache_write_tokens: n("cache_creation_input_tokens"),
            cache_read_tokens: n("cache_read_input_tokens"),
            cost_usd: 0.0,
        };
        usage.cost_usd = pricing::cost(&usage, self.effective_prices());
        Ok(Answer {
            text,
            usage,
            finish_reason: v["stop_reason"].as_str().map(str::to_string),
        })
    }

    fn read_openai(&self, v: &Value) -> Result<Answer, AgentError> {
        let msg = &v["choices"][0]["message"];
        if msg.is_null() {
            return Err(AgentError::Invalid(
                "the answer has no choices[0].message".into(),
            ));
        }
        let text = msg["content"].as_str().unwrap_or("").to_string();
        let u = &v["usage"];
        let prompt = u["prompt_tokens"].as_u64().unwrap_or(0);
        let cached = u["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0)
            .min(prompt);
        let mut usage = Usage {
            input_tokens: prompt - cached,
            output_tokens: u["completion_tokens"].as_u64().unwrap_or(0),
            cache_read_tokens: cached,
            cache_write_tokens: 0,
            cost_usd: 0.0,
        };
        usage.cost_usd = pricing::cost(&usage, self.effective_prices());
        Ok(Answer {
            text,
            usage,
            finish_reason: v["choices"][0]["finish_reason"]
                .as_str()
                .map(str::to_string),
        })
    }

    pub fn effective_prices(&self) -> Option<ModelPrices> {
        self.prices.or_else(|| pricing::for_model(&self.model))
    }

    fn call_error(&self, url: &str, e: CallError) -> CallFailure {
        if let CallError::Status { code: 400, body } = &e {
            if let Some((prompt_tokens, context_tokens)) = context_overflow(body) {
                return CallFailure::ContextOverflow {
                    prompt_tokens,
                    context_tokens,
                    message: self.redact(&provider_message(body)),
                };
            }
        }
        CallFailure::Agent(self.status_error(url, e))
    }

    /// A failed call in the session's terms, with the fix.
    pub(crate) fn status_error(&self, url: &str, e: CallError) -> AgentError {
        let who = match self.provider {
            Provider::Anthropic => "Anthropic",
            Provider::OpenAi => "the server",
        };
        let (code, body) = match e {
            CallError::Transport(m) => return AgentError::Transient(m),
            CallError::BadUrl(m) => {
                return AgentError::Fatal(format!("{m} for the LLM API: check [agent] base_url"));
            }
            CallError::Status { code, body } => (code, body),
        };
        let detail = self.redact(&provider_message(&body));
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(" — {detail}")
        };
        let key_var = self.key_var();
        match code {
            401 if self.key.is_none() => AgentError::Fatal(format!(
                "{who} at {url} requires an API key (401): set {key_var}{detail}"
            )),
            401 => AgentError::Fatal(format!(
                "{who} rejected the API key (401): set {key_var} to a valid key{detail}"
            )),
            403 => AgentError::Fatal(format!(
                "{who} refused access (403): check that the key in {key_var} may use model \"{}\"{detail}",
                self.model
            )),
            404 => AgentError::Fatal(format!(
                "unknown model \"{}\" or wrong endpoint (404 from {url}): check [agent] model and base_url{detail}",
                self.model
            )),
            429 => {
                AgentError::Transient(format!("rate limited (429) by {url} after retries{detail}"))
            }
            500..=599 => {
                AgentError::Transient(format!("{who} failed ({code}) after retries{detail}"))
            }
            _ => AgentError::Invalid(format!("{who} refused the request ({code}){detail}")),
        }
    }

    /// Provider messages sometimes quote the key they were sent; never pass it on.
    fn redact(&self, s: &str) -> String {
        match &self.key {
            Some(k) if k.0.len() >= 4 => s.replace(&k.0, "***"),
            _ => s.to_string(),
        }
    }
}

/// A 400 saying the prompt exceeds the context: llama.cpp's `exceed_context_size_error`
/// (with `n_prompt_tokens` and `n_ctx`), OpenAI's `context_length_exceeded`, vLLM's and
/// others' "maximum context length is N tokens … resulted in M tokens". The numbers when
/// the body has them: (prompt tokens, context tokens).
pub fn context_overflow(body: &str) -> Option<(Option<u64>, Option<u64>)> {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let e = &v["error"];
    let kind = [&e["type"], &e["code"]]
        .iter()
        .filter_map(|x| x.as_str())
        .any(|k| k == "exceed_context_size_error" || k == "context_length_exceeded");
    let message = provider_message(body).to_ascii_lowercase();
    let said = message.contains("context length")
        || message.contains("context size")
        || message.contains("context window");
    if !kind && !said {
        return None;
    }
    let mut prompt = e["n_prompt_tokens"].as_u64();
    let mut context = e["n_ctx"].as_u64();
    if context.is_none() {
        static MAX: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(r"maximum context length is (\d+)").expect("static regex")
        });
        context = MAX.captures(&message).and_then(|c| c[1].parse().ok());
    }
    if prompt.is_none() {
        static GOT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(r"(?:resulted in|requested|you requested) (\d+) tokens")
                .expect("static regex")
        });
        prompt = GOT.captures(&message).and_then(|c| c[1].parse().ok());
    }
    Some((prompt, context))
}

/// `error.message` from either provider's error body, cut to one short line.
fn provider_message(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let m = v["error"]["message"]
        .as_str()
        .or_else(|| v["error"].as_str())
        .or_else(|| v["message"].as_str())
        .unwrap_or("");
    let one: String = m.split_whitespace().collect::<Vec<_>>().join(" ");
    one.chars().take(200).collect()
}
