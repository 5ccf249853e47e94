//! The two HTTP wire formats: Anthropic's Messages API and OpenAI-compatible Chat
//! Completions. Builds request bodies, reads answers and usage, and turns failures into
//! `AgentError`s with a one-line fix. Never shows the API key.

use super::pricing;
use super::transport::{CallError, Http, Secret};
use crate::agent::{AgentError, Usage};
use crate::config::ModelPrices;
use serde_json::{Value, json};

pub const ANTHROPIC_URL: &str = "https://api.anthropic.com";
pub const OPENAI_URL: &str = "https://api.openai.com/v1";
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; enough for a few edit blocks and notes.
pub const DEFAULT_MAX_TOKENS: u32 = 8192;

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
    fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One API endpoint with its model and (optional) key.
#[derive(Debug)]
pub struct Client {
    pub provider: Provider,
    pub model: String,
    pub base_url: String,
    pub max_tokens: Option<u32>,
    pub key: Option<Secret>,
    pub prices: Option<ModelPrices>,
    pub http: Http,
}

impl Client {
    /// Sends the stable `system` prefix and the conversation; returns the answer's text.
    pub fn complete(
        &self,
        system: &str,
        messages: &[(Role, String)],
    ) -> Result<(String, Usage), AgentError> {
        let base = self.base_url.trim_end_matches('/');
        let (url, body) = match self.provider {
            Provider::Anthropic => (
                format!("{base}/v1/messages"),
                self.anthropic_body(system, messages),
            ),
            Provider::OpenAi => (
                format!("{base}/chat/completions"),
                self.openai_body(system, messages),
            ),
        };
        let mut secret = Vec::new();
        let auth;
        if let Some(k) = &self.key {
            match self.provider {
                Provider::Anthropic => secret.push(("x-api-key", k)),
                Provider::OpenAi => {
                    auth = Secret(format!("Bearer {}", k.0));
                    secret.push(("authorization", &auth));
                }
            }
        }
        let headers: &[(&str, &str)] = match self.provider {
            Provider::Anthropic => &[("anthropic-version", ANTHROPIC_VERSION)],
            Provider::OpenAi => &[],
        };
        let text = self
            .http
            .post_json(&url, headers, &secret, &body.to_string())
            .map_err(|e| self.call_error(&url, e))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| AgentError::Invalid(format!("the answer from {url} is not JSON: {e}")))?;
        match self.provider {
            Provider::Anthropic => self.read_anthropic(&v),
            Provider::OpenAi => self.read_openai(&v),
        }
    }

    fn anthropic_body(&self, system: &str, messages: &[(Role, String)]) -> Value {
        let msgs: Vec<Value> = messages
            .iter()
            .map(|(r, t)| json!({"role": r.as_str(), "content": t}))
            .collect();
        json!({
            "model": self.model,
            "max_tokens": self.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            // The prefix that stays the same across iterations: cached at a tenth of the price.
            "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
            "messages": msgs,
        })
    }

    fn openai_body(&self, system: &str, messages: &[(Role, String)]) -> Value {
        let mut msgs = vec![json!({"role": "system", "content": system})];
        msgs.extend(
            messages
                .iter()
                .map(|(r, t)| json!({"role": r.as_str(), "content": t})),
        );
        let mut body = json!({"model": self.model, "messages": msgs});
        if let Some(m) = self.max_tokens {
            body["max_tokens"] = json!(m);
        }
        body
    }

    fn read_anthropic(&self, v: &Value) -> Result<(String, Usage), AgentError> {
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
        non_empty(text, v["stop_reason"].as_str()).map(|t| (t, usage))
    }

    fn read_openai(&self, v: &Value) -> Result<(String, Usage), AgentError> {
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
        let stop = v["choices"][0]["finish_reason"].as_str();
        non_empty(text, stop).map(|t| (t, usage))
    }

    pub fn effective_prices(&self) -> Option<ModelPrices> {
        self.prices.or_else(|| pricing::for_model(&self.model))
    }

    fn call_error(&self, url: &str, e: CallError) -> AgentError {
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
        let key_var = match self.provider {
            Provider::Anthropic => "ANTHROPIC_API_KEY",
            Provider::OpenAi => "OPENAI_API_KEY",
        };
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

fn non_empty(text: String, stop: Option<&str>) -> Result<String, AgentError> {
    if text.trim().is_empty() {
        let why = stop.map_or(String::new(), |s| format!(" (stop reason: {s})"));
        return Err(AgentError::Invalid(format!(
            "the model gave an empty answer{why}"
        )));
    }
    Ok(text)
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
