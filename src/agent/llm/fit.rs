//! Prompts that fit the model's context with room for the answer. Owns the shortening
//! order and the token estimate; it never shortens the editable files' text (a proposal
//! made without seeing all of it could not be applied), and it never calls a server.
//!
//! The order, each step applied on top of the ones before, until the prompt fits:
//! 1. history: the last 60 rows, then 20, then 5, then none;
//! 2. the crash log's tail: 6 KiB, then 2 KiB, then none;
//! 3. the scratchpad: 16 KiB, then 4 KiB, then none;
//! 4. the read-only files: 32 KiB in all, then 8 KiB, then 2 KiB, then none.

use super::prompt::{Limits, Prompt};

/// Bytes per token assumed before the server has said how many tokens a prompt took:
/// code and English run at 3.5–4.5 with the usual tokenizers; 3 errs on the short side.
pub const DEFAULT_BYTES_PER_TOKEN: f64 = 3.0;

/// Tokens the chat template and message framing add to a prompt, beyond its text.
const FRAMING_TOKENS: u64 = 64;

/// Every step of the shortening order, the full prompt first.
pub fn ladder() -> Vec<Limits> {
    let mut steps = vec![Limits::FULL];
    let mut l = Limits::FULL;
    for rows in [20, 5, 0] {
        l.history_rows = rows;
        steps.push(l);
    }
    for bytes in [2 * 1024, 0] {
        l.crash_bytes = bytes;
        steps.push(l);
    }
    for bytes in [4 * 1024, 0] {
        l.scratchpad_bytes = bytes;
        steps.push(l);
    }
    for bytes in [8 * 1024, 2 * 1024, 0] {
        l.read_only_bytes = bytes;
        steps.push(l);
    }
    steps
}

/// The model's window: its context and the room kept for the answer, with what the
/// server has taught us about its tokenizer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Context size in tokens (prompt and answer together).
    pub context_tokens: u64,
    /// Tokens kept for the answer (`max_tokens`).
    pub answer_tokens: u64,
    pub bytes_per_token: f64,
}

impl Window {
    /// Tokens the prompt may take.
    pub fn prompt_room(&self) -> u64 {
        self.context_tokens
            .saturating_sub(self.answer_tokens)
            .saturating_sub(FRAMING_TOKENS)
    }

    /// Estimated tokens of a text.
    pub fn tokens(&self, bytes: usize) -> u64 {
        (bytes as f64 / self.bytes_per_token.max(0.5)).ceil() as u64
    }
}

/// The prompt's size as sent: both parts.
pub fn prompt_bytes(p: &Prompt) -> usize {
    p.system.len() + p.task.len()
}

/// Why no step of the order fits.
#[derive(Debug, Clone, PartialEq)]
pub struct TooLarge {
    /// The smallest prompt's estimated tokens.
    pub smallest_tokens: u64,
    pub room: u64,
}

/// The first prompt, in the shortening order, that fits `window` and is under
/// `below_bytes` (a prompt that overflowed must never be sent again): the prompt and how
/// many steps were taken. `build` renders the prompt for given limits.
pub fn fit(
    window: Option<&Window>,
    below_bytes: Option<usize>,
    build: impl Fn(Limits) -> Prompt,
) -> Result<(Prompt, usize), TooLarge> {
    let fits = |p: &Prompt| {
        let bytes = prompt_bytes(p);
        below_bytes.is_none_or(|b| bytes < b)
            && window.is_none_or(|w| w.tokens(bytes) <= w.prompt_room())
    };
    let steps = ladder();
    let mut last = None;
    for (k, limits) in steps.iter().enumerate() {
        let p = build(*limits);
        if fits(&p) {
            return Ok((p, k));
        }
        last = Some(p);
    }
    let smallest = last.map_or(0, |p| prompt_bytes(&p));
    let w = window.copied().unwrap_or(Window {
        context_tokens: 0,
        answer_tokens: 0,
        bytes_per_token: DEFAULT_BYTES_PER_TOKEN,
    });
    Err(TooLarge {
        smallest_tokens: w.tokens(smallest),
        room: w.prompt_room(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_is_history_crash_scratchpad_read_only_and_each_step_shrinks() {
        let steps = ladder();
        assert_eq!(steps[0], Limits::FULL);
        let last = steps.last().unwrap();
        assert_eq!(
            (
                last.history_rows,
                last.crash_bytes,
                last.scratchpad_bytes,
                last.read_only_bytes
            ),
            (0, 0, 0, 0)
        );
        // History goes first, read-only files last.
        assert_eq!(steps[3].history_rows, 0);
        assert_eq!(steps[3].read_only_bytes, Limits::FULL.read_only_bytes);
        assert_eq!(steps[steps.len() - 2].read_only_bytes, 2 * 1024);
        for pair in steps.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!(
                b.history_rows <= a.history_rows
                    && b.crash_bytes <= a.crash_bytes
                    && b.scratchpad_bytes <= a.scratchpad_bytes
                    && b.read_only_bytes <= a.read_only_bytes
                    && a != b
            );
        }
    }

    fn prompt(limits: Limits) -> Prompt {
        Prompt {
            system: "s".repeat(100 + limits.read_only_bytes),
            task: "t".repeat(100 + limits.history_rows * 100),
        }
    }

    #[test]
    fn fit_takes_the_first_step_that_fits() {
        let w = Window {
            context_tokens: 4000,
            answer_tokens: 1000,
            bytes_per_token: 3.0,
        };
        // Room 2936 tokens = 8808 bytes: no history, read-only files cut to 8 KiB.
        let (p, k) = fit(Some(&w), None, prompt).unwrap();
        assert_eq!(k, 8, "read-only cut to 8 KiB");
        assert!(w.tokens(prompt_bytes(&p)) <= w.prompt_room());
        // Without a window everything is shown.
        assert_eq!(fit(None, None, prompt).unwrap().1, 0);
        // Strictly below what was sent before.
        let full = prompt_bytes(&prompt(Limits::FULL));
        let (p, _) = fit(None, Some(full), prompt).unwrap();
        assert!(prompt_bytes(&p) < full);
    }

    #[test]
    fn nothing_fits_a_tiny_window() {
        let w = Window {
            context_tokens: 100,
            answer_tokens: 50,
            bytes_per_token: 3.0,
        };
        let e = fit(Some(&w), None, prompt).unwrap_err();
        assert_eq!(e.room, 0);
        assert_eq!(e.smallest_tokens, 67);
    }
}
