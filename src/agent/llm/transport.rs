//! The HTTP transport for LLM APIs: one JSON POST with a timeout, retried with exponential
//! backoff and jitter on 429, 5xx and connection errors (honouring `retry-after`). It never
//! logs, and it never puts a request header (the API key) into an error.

use crate::config::AgentConfig;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::time::Duration;

/// Default per-request timeout: long answers from big models take minutes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Reads a success body, given its content type.
pub type BodyReader<'r, T> = dyn FnMut(Option<&str>, &mut dyn Read) -> std::io::Result<T> + 'r;

/// The most of a success body read (a runaway answer is cut here).
const MAX_BODY: u64 = 64 * 1024 * 1024;

/// How often and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    pub base: Duration,
    pub max_wait: Duration,
}

impl RetryPolicy {
    pub fn from_config(c: &AgentConfig) -> RetryPolicy {
        RetryPolicy {
            max_attempts: c.max_attempts.unwrap_or(5).max(1),
            base: c.retry_base.unwrap_or(Duration::from_secs(2)),
            max_wait: c.retry_max_wait.unwrap_or(Duration::from_secs(60)),
        }
    }

    /// The wait after failed attempt number `failed` (1-based). `jitter` in [0, 1) spreads
    /// clients apart; a server's `retry-after` wins over the backoff, up to `max_wait`.
    pub fn delay(&self, failed: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let d = match retry_after {
            Some(r) => r,
            None => {
                let exp = self
                    .base
                    .saturating_mul(1u32 << (failed.saturating_sub(1)).min(16));
                exp.mul_f64(0.5 + jitter.clamp(0.0, 1.0))
            }
        };
        d.min(self.max_wait)
    }
}

/// A number in [0, 1) from the process's random hasher keys: enough for jitter.
fn jitter() -> f64 {
    let h = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// `retry-after` as seconds (the form the LLM providers send); HTTP dates are ignored.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let s: f64 = v.trim().parse().ok()?;
    (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(3600.0)))
}

/// Why a call failed after its retries.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// The server answered with a non-success status (the body, for its message).
    Status { code: u16, body: String },
    /// No answer: connection refused, reset, timed out.
    Transport(String),
    /// The URL cannot be used at all.
    BadUrl(String),
}

/// A header value that must never be shown.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
    timeout: Duration,
    pub policy: RetryPolicy,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("timeout", &self.timeout)
            .field("policy", &self.policy)
            .finish()
    }
}

impl Http {
    pub fn new(timeout: Duration, policy: RetryPolicy) -> Http {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // Statuses are data here: the retry and error logic reads them.
            .http_status_as_error(false)
            .user_agent(concat!("autoresearch/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Http {
            agent,
            timeout,
            policy,
        }
    }

    /// The limit on one request, its answer included.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// POSTs `body` as JSON and returns the success body, retrying what may pass.
    pub fn post_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        secret_headers: &[(&str, &Secret)],
        body: &str,
    ) -> Result<String, CallError> {
        self.post_read(url, headers, secret_headers, body, &mut |_, r| {
            let mut s = String::new();
            r.take(MAX_BODY).read_to_string(&mut s)?;
            Ok(s)
        })
    }

    /// POSTs `body` as JSON; a success body is handed, with its content type, to `read`
    /// as it arrives (a stream of events, or one JSON document). Retries what may pass
    /// before a success; a body that breaks off is a transport error.
    pub fn post_read<T>(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        secret_headers: &[(&str, &Secret)],
        body: &str,
        read: &mut BodyReader<'_, T>,
    ) -> Result<T, CallError> {
        let mut failed = 0;
        loop {
            let (err, retry_after) = match self.once(url, headers, secret_headers, body, read) {
                Ok(ok) => return Ok(ok),
                Err(e) => e,
            };
            let retryable = match &err {
                CallError::Status { code, .. } => *code == 429 || (500..600).contains(code),
                CallError::Transport(_) => true,
                CallError::BadUrl(_) => false,
            };
            failed += 1;
            if !retryable || failed >= self.policy.max_attempts {
                return Err(err);
            }
            std::thread::sleep(self.policy.delay(failed, retry_after, jitter()));
        }
    }

    /// GETs `url` (a start-up probe), at most `attempts` times for what may pass.
    pub fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        secret_headers: &[(&str, &Secret)],
        attempts: u32,
    ) -> Result<String, CallError> {
        let mut failed = 0;
        loop {
            let mut req = self.agent.get(url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            for (k, v) in secret_headers {
                req = req.header(*k, v.0.as_str());
            }
            let (err, retry_after) = match req.call() {
                Ok(resp) => match self.read(url, resp) {
                    Ok(ok) => return Ok(ok),
                    Err(e) => e,
                },
                Err(e) => (self.transport_error(url, e), None),
            };
            let retryable = match &err {
                CallError::Status { code, .. } => *code == 429 || (500..600).contains(code),
                CallError::Transport(_) => true,
                CallError::BadUrl(_) => false,
            };
            failed += 1;
            if !retryable || failed >= attempts.max(1) {
                return Err(err);
            }
            std::thread::sleep(self.policy.delay(failed, retry_after, jitter()));
        }
    }

    fn once<T>(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        secret_headers: &[(&str, &Secret)],
        body: &str,
        read: &mut BodyReader<'_, T>,
    ) -> Result<T, (CallError, Option<Duration>)> {
        let mut req = self
            .agent
            .post(url)
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        for (k, v) in secret_headers {
            req = req.header(*k, v.0.as_str());
        }
        let mut resp = match req.send(body) {
            Ok(r) => r,
            Err(e) => return Err((self.transport_error(url, e), None)),
        };
        if !resp.status().is_success() {
            return Err(self.failure(url, resp));
        }
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut reader = resp.body_mut().as_reader();
        read(ct.as_deref(), &mut reader).map_err(|e| {
            // ureq's own limit reads as an `Other` error that says `timeout`.
            let m = if e.kind() == std::io::ErrorKind::TimedOut || e.to_string().contains("timeout") {
                format!(
                    "no complete answer from {url} within {:.1}s ([agent] timeout); a longer timeout or a smaller [agent] max_tokens may help",
                    self.timeout.as_secs_f64()
                )
            } else {
                format!("the answer from {url} broke off: {e}")
            };
            (CallError::Transport(m), None)
        })
    }

    /// A non-success response as an error, its body kept for the provider's message.
    fn failure(
        &self,
        url: &str,
        mut resp: ureq::http::Response<ureq::Body>,
    ) -> (CallError, Option<Duration>) {
        let code = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        match resp.body_mut().read_to_string() {
            Ok(body) => (CallError::Status { code, body }, retry_after),
            Err(e) => (self.transport_error(url, e), None),
        }
    }

    fn read(
        &self,
        url: &str,
        mut resp: ureq::http::Response<ureq::Body>,
    ) -> Result<String, (CallError, Option<Duration>)> {
        if !resp.status().is_success() {
            return Err(self.failure(url, resp));
        }
        resp.body_mut()
            .read_to_string()
            .map_err(|e| (self.transport_error(url, e), None))
    }

    fn transport_error(&self, url: &str, e: ureq::Error) -> CallError {
        match e {
            ureq::Error::BadUri(u) => CallError::BadUrl(format!("invalid URL {u:?}")),
            ureq::Error::Timeout(_) => CallError::Transport(format!(
                "no answer from {url} within {:.1}s",
                self.timeout.as_secs_f64()
            )),
            ureq::Error::HostNotFound => CallError::Transport(format!("host of {url} not found")),
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                CallError::Transport(format!(
                    "connection refused by {url}: nothing listens there"
                ))
            }
            other => CallError::Transport(format!("request to {url} failed: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_retry_after_wins_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_secs(1),
            max_wait: Duration::from_secs(60),
        };
        assert_eq!(p.delay(1, None, 0.5), Duration::from_secs(1));
        assert_eq!(p.delay(3, None, 0.5), Duration::from_secs(4));
        assert_eq!(p.delay(3, None, 0.0), Duration::from_secs(2));
        assert_eq!(p.delay(30, None, 0.5), Duration::from_secs(60));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(7)), 0.9),
            Duration::from_secs(7)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(600)), 0.0),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn retry_after_is_seconds() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn jitter_is_in_range() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
