//! Cost estimates: default prices per known model family (USD per million tokens, list
//! prices at the time of writing) and the cost of one call. Estimates only; configured
//! prices (`[agent] price_input`, `price_output`, …) win.

use crate::agent::Usage;
use crate::config::ModelPrices;

/// Anthropic-style cache pricing: writes cost 1.25x input, reads 0.1x.
const fn anthropic(input: f64, output: f64) -> ModelPrices {
    ModelPrices {
        input,
        output,
        cache_read: input * 0.1,
        cache_write: input * 1.25,
    }
}

/// OpenAI-style: cached input at a discount, no write surcharge.
const fn openai(input: f64, output: f64, cache_read: f64) -> ModelPrices {
    ModelPrices {
        input,
        output,
        cache_read,
        cache_write: input,
    }
}

/// Known families, most specific first; matched as substrings of the model name.
const TABLE: &[(&str, ModelPrices)] = &[
    ("opus-4-5", anthropic(5.0, 25.0)),
    ("opus-4.5", anthropic(5.0, 25.0)),
    ("opus", anthropic(15.0, 75.0)),
    ("sonnet", anthropic(3.0, 15.0)),
    ("haiku-4", anthropic(1.0, 5.0)),
    ("3-5-haiku", anthropic(0.8, 4.0)),
    ("haiku", anthropic(0.25, 1.25)),
    ("gpt-4o-mini", openai(0.15, 0.6, 0.075)),
    ("gpt-4o", openai(2.5, 10.0, 1.25)),
    ("gpt-4.1-nano", openai(0.1, 0.4, 0.025)),
    ("gpt-4.1-mini", openai(0.4, 1.6, 0.1)),
    ("gpt-4.1", openai(2.0, 8.0, 0.5)),
    ("gpt-5-nano", openai(0.05, 0.4, 0.005)),
    ("gpt-5-mini", openai(0.25, 2.0, 0.025)),
    ("gpt-5", openai(1.25, 10.0, 0.125)),
    ("o4-mini", openai(1.1, 4.4, 0.275)),
    ("o3-mini", openai(1.1, 4.4, 0.55)),
    ("o3", openai(2.0, 8.0, 0.5)),
];

/// Default prices for a model name, when its family is known.
pub fn for_model(model: &str) -> Option<ModelPrices> {
    let m = model.to_ascii_lowercase();
    // OpenRouter-style names carry a vendor prefix (`anthropic/claude-…`); substrings cope.
    TABLE.iter().find(|(k, _)| m.contains(k)).map(|(_, p)| *p)
}

/// The estimated cost of one call; 0 without prices.
pub fn cost(u: &Usage, prices: Option<ModelPrices>) -> f64 {
    let Some(p) = prices else { return 0.0 };
    let m = 1e-6;
    u.input_tokens as f64 * p.input * m
        + u.output_tokens as f64 * p.output * m
        + u.cache_read_tokens as f64 * p.cache_read * m
        + u.cache_write_tokens as f64 * p.cache_write * m
}

/// Adds `b` into `a` (several calls for one proposal).
pub fn add(a: &mut Usage, b: &Usage) {
    a.input_tokens += b.input_tokens;
    a.output_tokens += b.output_tokens;
    a.cache_read_tokens += b.cache_read_tokens;
    a.cache_write_tokens += b.cache_write_tokens;
    a.cost_usd += b.cost_usd;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_costs() {
        let p = for_model("claude-sonnet-4-5-20250929").unwrap();
        assert_eq!(p.input, 3.0);
        assert_eq!(for_model("anthropic/claude-opus-4-5").unwrap().input, 5.0);
        assert_eq!(for_model("gpt-4o-mini").unwrap().input, 0.15);
        assert!(for_model("llama3.1:8b").is_none());
        let u = Usage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cache_read_tokens: 1_000_000,
            cache_write_tokens: 0,
            cost_usd: 0.0,
        };
        let c = cost(&u, Some(p));
        assert!((c - (3.0 + 1.5 + 0.3)).abs() < 1e-9, "{c}");
        assert_eq!(cost(&u, None), 0.0);
    }
}
