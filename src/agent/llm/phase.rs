//! Research phases: `[agent] phases = ["1-10: hyperparameters only", "11-30: architecture",
//! "31-: anything"]`, or the same as lines in program.md starting with `Phase`
//! (`Phase 1-10: hyperparameters only`). A range is `A-B`, `A-` or `A+` (open-ended), or a
//! single `A`; iterations are 1-based. The first phase containing the current iteration is
//! named in the prompt. Config phases take precedence over program.md's. Only reads.

use crate::agent::Context;

/// A declared research phase: iterations `from..=to` (open-ended when `to` is None).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    pub from: u64,
    pub to: Option<u64>,
    pub focus: String,
}

impl Phase {
    /// Parses `A-B: focus`, `A-: focus`, `A+: focus` or `A: focus`.
    pub fn parse(s: &str) -> Result<Phase, String> {
        let err = || {
            format!(
                "bad phase {s:?}: write e.g. \"1-10: hyperparameters only\" or \"11-: anything\""
            )
        };
        let (range, focus) = s.split_once(':').ok_or_else(err)?;
        let range = range.trim().replace(['–', '—'], "-");
        let num = |t: &str| t.trim().parse::<u64>().map_err(|_| err());
        let (from, to) = if let Some(a) = range.strip_suffix('+') {
            (num(a)?, None)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                num(a)?,
                if b.trim().is_empty() {
                    None
                } else {
                    Some(num(b)?)
                },
            )
        } else {
            let a = num(&range)?;
            (a, Some(a))
        };
        let focus = focus.trim().to_string();
        if focus.is_empty() || to.is_some_and(|t| t < from) {
            return Err(err());
        }
        Ok(Phase { from, to, focus })
    }

    pub fn contains(&self, iteration: u64) -> bool {
        iteration >= self.from && self.to.is_none_or(|t| iteration <= t)
    }
}

/// Phases from program.md lines starting with `Phase` (markdown bullets allowed).
pub fn phases_in_program(text: &str) -> Vec<Phase> {
    text.lines()
        .filter_map(|l| {
            let t = l.trim().trim_start_matches(['-', '*', '#', ' ']);
            let head = t.get(..6)?;
            head.eq_ignore_ascii_case("phase ")
                .then(|| Phase::parse(&t[6..]).ok())
                .flatten()
        })
        .collect()
}

pub(super) fn phase_text(ctx: &Context<'_>) -> String {
    let phases: Vec<Phase> = if ctx.config.agent.phases.is_empty() {
        let program =
            std::fs::read_to_string(ctx.repo.join(&ctx.config.program)).unwrap_or_default();
        phases_in_program(&program)
    } else {
        ctx.config
            .agent
            .phases
            .iter()
            .filter_map(|p| Phase::parse(p).ok())
            .collect()
    };
    match phases.iter().find(|p| p.contains(ctx.iteration)) {
        Some(p) => {
            let to = p.to.map_or_else(|| "on".to_string(), |t| format!("to {t}"));
            format!(
                "\nCurrent research phase (experiments {} {to}): {}. Stay within it.\n",
                p.from, p.focus
            )
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_parse_and_contain() {
        let p = Phase::parse("1-10: hyperparameters only").unwrap();
        assert!(p.contains(1) && p.contains(10) && !p.contains(11));
        let p = Phase::parse("11+: anything").unwrap();
        assert!(p.contains(500) && !p.contains(10));
        assert_eq!(Phase::parse("11-: x").unwrap().to, None);
        assert!(Phase::parse("10-2: x").is_err());
        assert!(Phase::parse("soon: x").is_err());
        let v = phases_in_program("intro\n- Phase 1-3: tune LR\nPHASE 4-: architecture\n");
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].focus, "architecture");
    }
}
