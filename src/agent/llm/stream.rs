//! Streamed answers: Server-Sent Events of Chat Completions (`stream: true`, usage in the
//! last chunk with `stream_options.include_usage`) and of the Messages API
//! (`message_start`, `content_block_delta`, `message_delta`, `error`), assembled into the
//! body the non-streamed answer would have had, so that one reader serves both. Pure
//! parsing; it never opens a connection.

use super::api::Provider;
use serde_json::{Value, json};
use std::io::BufRead;

/// The events of one streamed answer, assembled.
#[derive(Debug, Default)]
pub struct Assembled {
    pub text: String,
    pub finish_reason: Option<String>,
    usage: serde_json::Map<String, Value>,
    /// Text pieces received.
    pub deltas: u64,
    /// An `error` event's body, when the stream carried one.
    pub error: Option<String>,
}

impl Assembled {
    /// Takes one event's JSON.
    pub fn take(&mut self, provider: Provider, v: &Value) {
        match provider {
            Provider::OpenAi => self.openai(v),
            Provider::Anthropic => self.anthropic(v),
        }
    }

    fn openai(&mut self, v: &Value) {
        if v.get("error").is_some() {
            self.error = Some(v.to_string());
            return;
        }
        let choice = &v["choices"][0];
        if let Some(t) = choice["delta"]["content"].as_str() {
            if !t.is_empty() {
                self.text.push_str(t);
                self.deltas += 1;
            }
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(f.to_string());
        }
        if let Some(u) = v["usage"].as_object() {
            self.usage.clone_from(u);
        }
    }

    fn anthropic(&mut self, v: &Value) {
        match v["type"].as_str() {
            Some("message_start") => {
                if let Some(u) = v["message"]["usage"].as_object() {
                    self.usage.extend(u.clone());
                }
            }
            Some("content_block_delta") => {
                if let Some(t) = v["delta"]["text"].as_str() {
                    self.text.push_str(t);
                    self.deltas += 1;
                }
            }
            Some("message_delta") => {
                if let Some(s) = v["delta"]["stop_reason"].as_str() {
                    self.finish_reason = Some(s.to_string());
                }
                if let Some(u) = v["usage"].as_object() {
                    // Cumulative counts: the latest wins.
                    self.usage.extend(u.clone());
                }
            }
            Some("error") => self.error = Some(v.to_string()),
            _ => {}
        }
    }

    /// The body a non-streamed answer would have had.
    pub fn body(&self, provider: Provider) -> Value {
        match provider {
            Provider::OpenAi => json!({
                "choices": [{
                    "message": {"role": "assistant", "content": self.text},
                    "finish_reason": self.finish_reason,
                }],
                "usage": self.usage,
            }),
            Provider::Anthropic => json!({
                "content": [{"type": "text", "text": self.text}],
                "stop_reason": self.finish_reason,
                "usage": self.usage,
            }),
        }
    }
}

/// Reads an event stream to its end (or `[DONE]`), handing each event's JSON to `take`.
/// Lines that are not `data:` (comments, `event:` names, keep-alives) are skipped. A
/// stream still going at `deadline` (`[agent] timeout` after the request) is cut there:
/// a server that keeps sending never holds the session past its timeout.
pub fn read_events(
    reader: impl BufRead,
    deadline: std::time::Instant,
    mut take: impl FnMut(&Value),
) -> Result<(), std::io::Error> {
    let mut data = String::new();
    for line in reader.lines() {
        let line = line?;
        if std::time::Instant::now() > deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the streamed answer was still coming at [agent] timeout",
            ));
        }
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            if !data.is_empty() {
                if data.trim() == "[DONE]" {
                    return Ok(());
                }
                if let Ok(v) = serde_json::from_str::<Value>(&data) {
                    take(&v);
                }
                data.clear();
            }
            continue;
        }
        if let Some(d) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(d.strip_prefix(' ').unwrap_or(d));
        }
    }
    if !data.is_empty() && data.trim() != "[DONE]" {
        if let Ok(v) = serde_json::from_str::<Value>(&data) {
            take(&v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assemble(provider: Provider, sse: &str) -> Assembled {
        let mut a = Assembled::default();
        let later = std::time::Instant::now() + std::time::Duration::from_secs(60);
        read_events(sse.as_bytes(), later, |v| a.take(provider, v)).unwrap();
        a
    }

    #[test]
    fn chat_completions_chunks_with_usage_last() {
        let sse = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n\
                   data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"LR\"},\"finish_reason\":null}]}\n\n\
                   : keep-alive\n\n\
                   data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" = 0.2\"},\"finish_reason\":\"length\"}]}\n\n\
                   data: {\"choices\":[],\"usage\":{\"prompt_tokens\":900,\"completion_tokens\":2}}\n\n\
                   data: [DONE]\n\n";
        let a = assemble(Provider::OpenAi, sse);
        assert_eq!(a.text, "LR = 0.2");
        assert_eq!(a.deltas, 2);
        assert_eq!(a.finish_reason.as_deref(), Some("length"));
        let b = a.body(Provider::OpenAi);
        assert_eq!(b["usage"]["prompt_tokens"], 900);
        assert_eq!(b["choices"][0]["message"]["content"], "LR = 0.2");
    }

    #[test]
    fn messages_events_with_usage_at_start_and_end() {
        let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":1200,\"cache_creation_input_tokens\":3000,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n\
                   event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
                   event: ping\ndata: {\"type\":\"ping\"}\n\n\
                   event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n\
                   event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":150}}\n\n\
                   event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let a = assemble(Provider::Anthropic, sse);
        assert_eq!(a.text, "Hello");
        assert_eq!(a.finish_reason.as_deref(), Some("max_tokens"));
        let b = a.body(Provider::Anthropic);
        assert_eq!(b["usage"]["input_tokens"], 1200);
        assert_eq!(b["usage"]["output_tokens"], 150);
        assert_eq!(b["usage"]["cache_creation_input_tokens"], 3000);
        let e = assemble(
            Provider::Anthropic,
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        );
        assert!(e.error.unwrap().contains("Overloaded"));
    }
}
