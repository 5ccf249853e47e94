//! Reading `[agent]` of `autoresearch.toml` into an [`AgentConfig`], with one-line errors
//! that name file:line:column and the fix. Reads only; never reads a key (keys come from
//! the environment when the proposer is built).

use super::error::{ConfigError, invalid_at};
use super::section::Section;
use super::{AgentBackend, AgentConfig, Structured, Tuner};

pub(super) const AGENT_KEYS: &[&str] = &[
    "backend",
    "model",
    "base_url",
    "command",
    "timeout",
    "max_tokens",
    "context_tokens",
    "stream",
    "structured",
    "max_cost_usd",
    "patience",
    "seed",
    "repair_attempts",
    "templates",
    "phases",
    "max_attempts",
    "retry_base",
    "retry_max_wait",
    "price_input",
    "price_output",
    "price_cache_read",
    "price_cache_write",
    "concurrency",
    "ahead",
    "tuner",
];
pub(super) fn read_agent(top: &Section) -> Result<AgentConfig, ConfigError> {
    let mut agent = AgentConfig::default();
    let Some(a) = top.table("agent", AGENT_KEYS)? else {
        return Ok(agent);
    };
    if let Some((b, at)) = a.string("backend")? {
        agent.backend = match b.to_ascii_lowercase().as_str() {
            "search" => AgentBackend::Search,
            "anthropic" | "claude" => AgentBackend::Anthropic,
            "openai" | "openai-compatible" => AgentBackend::OpenAi,
            "command" => AgentBackend::Command,
            _ => {
                return Err(invalid_at(
                    at,
                    "agent.backend",
                    format!("is `{b}`"),
                    "use one of search, anthropic, openai, command",
                ));
            }
        };
    }
    agent.model = a.string("model")?.map(|(s, _)| s);
    agent.base_url = a.string("base_url")?.map(|(s, _)| s);
    agent.command = a.string("command")?.map(|(s, _)| s);
    agent.timeout = a
        .duration("timeout", "a duration like \"5m\"")?
        .map(|(d, _)| d);
    if let Some((n, at)) = a.int("max_tokens")? {
        agent.max_tokens = Some(u32::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
            invalid_at(
                at,
                "agent.max_tokens",
                format!("is {n}"),
                "use a positive number, e.g. max_tokens = 8000",
            )
        })?);
    }
    if let Some((n, at)) = a.int("context_tokens")? {
        let bad = || {
            invalid_at(
                at,
                "agent.context_tokens",
                format!("is {n}"),
                "use the model's context size in tokens, e.g. context_tokens = 8192",
            )
        };
        agent.context_tokens = Some(
            u64::try_from(n)
                .ok()
                .filter(|n| *n >= 512)
                .ok_or_else(bad)?,
        );
    }
    if let Some((item, at)) = a.get("stream") {
        agent.stream = item.as_bool().ok_or_else(|| {
            invalid_at(
                at,
                "agent.stream",
                format!("is a {}", item.type_name()),
                "use true or false, e.g. stream = false",
            )
        })?;
    }
    if let Some((v, at)) = a.string("structured")? {
        agent.structured = match v.to_ascii_lowercase().as_str() {
            "auto" => Structured::Auto,
            "json" => Structured::Json,
            "off" | "text" => Structured::Off,
            _ => {
                return Err(invalid_at(
                    at,
                    "agent.structured",
                    format!("is `{v}`"),
                    "use one of auto, json, off",
                ));
            }
        };
    }
    if let Some((v, at)) = a.string("tuner")? {
        agent.tuner = match v.to_ascii_lowercase().as_str() {
            "search" | "tpe" | "on" => Tuner::Search,
            "off" | "none" => Tuner::Off,
            _ => {
                return Err(invalid_at(
                    at,
                    "agent.tuner",
                    format!("is `{v}`"),
                    "use search (the built-in tuner beside the LLM) or off (the LLM alone)",
                ));
            }
        };
    }
    if let Some((c, at)) = a.float("max_cost_usd")? {
        if c <= 0.0 || !c.is_finite() {
            return Err(invalid_at(
                at,
                "agent.max_cost_usd",
                format!("is {c}"),
                "use a positive amount in dollars, e.g. max_cost_usd = 5.0",
            ));
        }
        agent.max_cost_usd = Some(c);
    }
    if let Some(p) = a.uint("patience")? {
        agent.patience = p;
    }
    if let Some((s, at)) = a.int("seed")? {
        agent.seed = u64::try_from(s)
            .map_err(|_| invalid_at(at, "agent.seed", format!("is {s}"), "use 0 or more"))?;
    }
    if let Some(n) = a.uint("repair_attempts")? {
        agent.repair_attempts = n;
    }
    if let Some((n, at)) = a.int("concurrency")? {
        agent.concurrency = Some(u32::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
            invalid_at(
                at,
                "agent.concurrency",
                format!("is {n}"),
                "use the LLM calls to make at the same time, 1 or more, e.g. concurrency = 4",
            )
        })?);
    }
    if let Some((n, at)) = a.int("ahead")? {
        agent.ahead = Some(u32::try_from(n).map_err(|_| {
            invalid_at(
                at,
                "agent.ahead",
                format!("is {n}"),
                "use the proposals to prepare while runs train, 0 or more, e.g. ahead = 0",
            )
        })?);
    }
    agent.templates = a.path("templates")?.map(|(p, _)| p);
    if let Some(list) = a.path_list("phases")? {
        agent.phases = list
            .iter()
            .map(|p| p.0.to_string_lossy().into_owned())
            .collect();
    }
    if let Some(n) = a.uint("max_attempts")? {
        agent.max_attempts = Some(n.max(1));
    }
    agent.retry_base = a
        .duration("retry_base", "a duration like \"2s\"")?
        .map(|(d, _)| d);
    agent.retry_max_wait = a
        .duration("retry_max_wait", "a duration like \"60s\"")?
        .map(|(d, _)| d);
    let mut prices = crate::config::ModelPrices::default();
    let mut any_price = false;
    for (key, slot) in [
        ("price_input", &mut prices.input),
        ("price_output", &mut prices.output),
        ("price_cache_read", &mut prices.cache_read),
        ("price_cache_write", &mut prices.cache_write),
    ] {
        if let Some((v, at)) = a.float(key)? {
            if v < 0.0 || !v.is_finite() {
                return Err(invalid_at(
                    at,
                    &format!("agent.{key}"),
                    format!("is {v}"),
                    "use a price in USD per million tokens, e.g. price_input = 3.0",
                ));
            }
            *slot = v;
            any_price = true;
        }
    }
    if any_price {
        agent.prices = Some(prices);
    }
    if agent.backend == AgentBackend::Command && agent.command.is_none() {
        return Err(ConfigError::Missing {
            at: a.here(),
            key: "agent.command",
            help: "backend = \"command\" runs a CLI agent, e.g. command = \"claude -p @{prompt_file}\"",
        });
    }
    Ok(agent)
}
