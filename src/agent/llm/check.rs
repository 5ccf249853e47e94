//! The start-up check of an HTTP backend, before the baseline runs: the endpoint answers,
//! the key is accepted, the model is served, and how large the model's context is
//! (llama.cpp's `/props` `default_generation_settings.n_ctx`, vLLM's `/v1/models`
//! `max_model_len`). It only reads (GET), never sends a prompt, and never shows the key.

use super::api::{ANTHROPIC_VERSION, Client, Provider};
use super::transport::{CallError, Secret};
use crate::agent::AgentError;
use serde_json::Value;

/// What the server said about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Served {
    /// The model's context in tokens, when the server tells.
    pub context_tokens: Option<u64>,
    /// For the user: what was found, or a doubt that is not an error.
    pub notes: Vec<String>,
}

/// Probes the endpoint. An unreachable server, a refused key or a model the server does
/// not serve is an error that names the fix; a server without `/models` or `/props` is
/// fine (many are).
pub fn check(client: &Client) -> Result<Served, AgentError> {
    let base = client.base_url.trim_end_matches('/');
    let auth = client.auth();
    let secret: Vec<(&str, &Secret)> = auth.iter().map(|(k, v)| (*k, v)).collect();
    let (url, headers): (String, &[(&str, &str)]) = match client.provider {
        Provider::Anthropic => (
            format!("{base}/v1/models"),
            &[("anthropic-version", ANTHROPIC_VERSION)],
        ),
        Provider::OpenAi => (format!("{base}/models"), &[]),
    };
    let mut served = Served::default();
    // Two tries: a server that is still starting gets one more chance, a dead one fails fast.
    match client.http.get(&url, headers, &secret, 2) {
        Ok(body) => {
            if client.provider == Provider::OpenAi {
                served = read_models(client, base, &body)?;
            }
        }
        Err(CallError::Transport(m)) => {
            return Err(AgentError::Fatal(format!(
                "cannot reach the LLM server at {base} ({m}): start it, or fix [agent] base_url"
            )));
        }
        Err(CallError::Status { code, body }) if matches!(code, 401 | 403) => {
            return Err(start_error(client, &url, CallError::Status { code, body }));
        }
        // 501: a server without GET at all (a scripted one) has no listing to check.
        Err(CallError::Status { code, body }) if code >= 500 && code != 501 => {
            return Err(start_error(client, &url, CallError::Status { code, body }));
        }
        // No model listing here (404, 405, …): nothing to check.
        Err(CallError::Status { .. }) => {}
        Err(e @ CallError::BadUrl(_)) => return Err(start_error(client, &url, e)),
    }
    if client.provider == Provider::OpenAi && served.context_tokens.is_none() {
        served.context_tokens = llama_cpp_context(client, base, headers, &secret);
    }
    Ok(served)
}

/// A failure of the check in the session's terms: fatal, since nothing can run without it.
fn start_error(client: &Client, url: &str, e: CallError) -> AgentError {
    match client.status_error(url, e) {
        AgentError::Transient(m) => AgentError::Fatal(format!(
            "the LLM server failed at start-up ({m}): check the server's log, then run again"
        )),
        other => other,
    }
}

/// `/models`: the model must be among those served (one served model is fine whatever
/// its name: llama.cpp answers with it whatever the request names).
fn read_models(client: &Client, base: &str, body: &str) -> Result<Served, AgentError> {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let Some(list) = v["data"].as_array() else {
        return Ok(Served::default());
    };
    let model = client.model.as_str();
    let ids: Vec<&str> = list.iter().filter_map(|m| m["id"].as_str()).collect();
    let same = |id: &str| id == model || id.strip_suffix(":latest") == Some(model);
    let entry = list.iter().find(|m| m["id"].as_str().is_some_and(same));
    let mut served = Served::default();
    match entry {
        Some(m) => served.context_tokens = m["max_model_len"].as_u64().filter(|n| *n > 0),
        None if ids.len() > 1 => {
            let shown: Vec<&str> = ids.iter().take(10).copied().collect();
            return Err(AgentError::Fatal(format!(
                "model \"{model}\" is not served at {base} (it serves: {}): set [agent] model to one of them",
                shown.join(", ")
            )));
        }
        None if ids.len() == 1 => {
            served.context_tokens = list[0]["max_model_len"].as_u64().filter(|n| *n > 0);
            served.notes.push(format!(
                "the server at {base} serves one model, \"{}\"; requests name \"{model}\"",
                ids[0]
            ));
        }
        None => {}
    }
    Ok(served)
}

/// llama.cpp's `/props` (next to `/v1`): the context each slot has.
fn llama_cpp_context(
    client: &Client,
    base: &str,
    headers: &[(&str, &str)],
    secret: &[(&str, &Secret)],
) -> Option<u64> {
    let origin = base.strip_suffix("/v1").unwrap_or(base);
    let body = client
        .http
        .get(&format!("{origin}/props"), headers, secret, 1)
        .ok()?;
    let v: Value = serde_json::from_str(&body).ok()?;
    v["default_generation_settings"]["n_ctx"]
        .as_u64()
        .or_else(|| v["n_ctx"].as_u64())
        .filter(|n| *n > 0)
}
