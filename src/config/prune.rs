//! Reading the `[prune]` table: whether hopeless runs are stopped early, from where in the
//! budget, at what error rate, and how the training curve is read. Reads and validates
//! only; the rule is `decision::prune`.

use super::error::{ConfigError, invalid_at};
use super::section::Section;
use crate::decision::curve::CurveSpec;

pub(super) const KEYS: &[&str] = &[
    "enabled",
    "start",
    "alpha",
    "min_runs",
    "min_codes",
    "curve",
];

/// `[prune] enabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PruneMode {
    /// On when the runs print a curve (the default): a script that prints none is never
    /// pruned.
    #[default]
    Auto,
    /// On, and the session warns once when the baseline printed no curve.
    On,
    Off,
}

impl PruneMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PruneMode::Auto => "auto",
            PruneMode::On => "true",
            PruneMode::Off => "false",
        }
    }
}

/// `[prune]`: stopping runs whose curve is already hopeless.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneConfig {
    pub mode: PruneMode,
    /// No run is pruned before this fraction of the budget.
    pub start: f64,
    /// The bound on how often a run that would have beaten the best is pruned.
    pub alpha: f64,
    /// Finished runs with a curve needed before anything is pruned.
    pub min_runs: u32,
    /// ... of at least this many different codes (so crossings have been seen).
    pub min_codes: u32,
    /// How progress lines are read.
    pub curve: CurveSpec,
}

impl Default for PruneConfig {
    fn default() -> Self {
        PruneConfig {
            mode: PruneMode::Auto,
            start: 0.3,
            alpha: 0.05,
            min_runs: 5,
            min_codes: 3,
            curve: CurveSpec::default(),
        }
    }
}

impl PruneConfig {
    pub fn enabled(&self) -> bool {
        self.mode != PruneMode::Off
    }

    /// One line for the Research Config.
    pub fn describe(&self) -> String {
        if !self.enabled() {
            return "off".into();
        }
        let curve = match &self.curve.regex {
            Some(re) => format!("curve '{}'", re.as_str()),
            None => "karpathy's `step … (x%) | loss:` lines".into(),
        };
        format!(
            "{}: from {:.0}% of the budget, a winner pruned at most {:.0}% of the time, after {} finished runs of {} codes; {curve}",
            self.mode.as_str(),
            100.0 * self.start,
            100.0 * self.alpha,
            self.min_runs,
            self.min_codes
        )
    }
}

pub(super) fn read(top: &Section) -> Result<PruneConfig, ConfigError> {
    let mut p = PruneConfig::default();
    let Some(t) = top.table("prune", KEYS)? else {
        return Ok(p);
    };
    if let Some((item, at)) = t.get("enabled") {
        p.mode = match (item.as_bool(), item.as_str()) {
            (Some(true), _) => PruneMode::On,
            (Some(false), _) => PruneMode::Off,
            (None, Some(s)) if s.eq_ignore_ascii_case("auto") => PruneMode::Auto,
            (None, Some(s)) if s.eq_ignore_ascii_case("true") => PruneMode::On,
            (None, Some(s)) if s.eq_ignore_ascii_case("false") => PruneMode::Off,
            _ => {
                return Err(invalid_at(
                    at,
                    "prune.enabled",
                    format!("is {}", item.to_string().trim()),
                    "use true, false or \"auto\" (on when the runs print a training curve)",
                ));
            }
        };
    }
    if let Some((v, at)) = t.float("start")? {
        if !(0.0..1.0).contains(&v) {
            return Err(invalid_at(
                at,
                "prune.start",
                format!("is {v}"),
                "use a fraction of the budget from 0 to below 1, e.g. start = 0.3",
            ));
        }
        p.start = v;
    }
    if let Some((v, at)) = t.float("alpha")? {
        if !(v > 0.0 && v < 0.5) {
            return Err(invalid_at(
                at,
                "prune.alpha",
                format!("is {v}"),
                "use a probability above 0 and below 0.5, e.g. alpha = 0.05",
            ));
        }
        p.alpha = v;
    }
    if let Some(n) = t.uint("min_runs")? {
        p.min_runs = n.max(2);
    }
    if let Some(n) = t.uint("min_codes")? {
        p.min_codes = n.max(1);
    }
    if let Some((r, at)) = t.string("curve")? {
        let Some(re) = super::load::value_regex(&r, &at)? else {
            return Err(invalid_at(
                at,
                "prune.curve",
                "has no capture group for the value".to_string(),
                "wrap the number in parentheses, e.g. 'loss=([0-9.]+)', or name it (?P<value>...) and the percentage (?P<progress>...)",
            ));
        };
        p.curve = CurveSpec { regex: Some(re) };
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(prune: &str) -> Result<PruneConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.py"), "LR = 0.1\n").unwrap();
        let text = format!(
            "editable = [\"train.py\"]\nbudget = \"5m\"\n[metric]\nname = \"val_bpb\"\ndirection = \"minimize\"\n{prune}"
        );
        let path = dir.path().join("autoresearch.toml");
        super::super::load_str(&text, &path)
            .map(|c| c.prune)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_every_spelling_of_enabled() {
        assert_eq!(load("").unwrap(), PruneConfig::default());
        assert_eq!(load("[prune]\nenabled = true").unwrap().mode, PruneMode::On);
        assert_eq!(
            load("[prune]\nenabled = false").unwrap().mode,
            PruneMode::Off
        );
        assert_eq!(
            load("[prune]\nenabled = \"auto\"").unwrap().mode,
            PruneMode::Auto
        );
        let p = load("[prune]\nstart = 0.2\nalpha = 0.1\nmin_runs = 8\nmin_codes = 4\ncurve = 'it (?P<progress>\\d+)% l=(?P<value>[0-9.]+)'").unwrap();
        assert_eq!(
            (p.start, p.alpha, p.min_runs, p.min_codes),
            (0.2, 0.1, 8, 4)
        );
        assert_eq!(p.curve.parse("it 50% l=2.5"), Some((2.5, Some(0.5))));
        assert!(
            p.describe().starts_with("auto: from 20% of the budget"),
            "{}",
            p.describe()
        );
    }

    #[test]
    fn bad_values_name_the_key_and_the_fix() {
        let e = load("[prune]\nenabled = \"sometimes\"").unwrap_err();
        assert!(e.contains("prune.enabled") && e.contains("\"auto\""), "{e}");
        let e = load("[prune]\nstart = 1.5").unwrap_err();
        assert!(
            e.contains("prune.start") && e.contains("start = 0.3"),
            "{e}"
        );
        let e = load("[prune]\nalpha = 0").unwrap_err();
        assert!(e.contains("prune.alpha"), "{e}");
        let e = load("[prune]\ncurve = 'loss'").unwrap_err();
        assert!(e.contains("prune.curve") && e.contains("capture"), "{e}");
        let e = load("[prune]\nstrat = 0.3").unwrap_err();
        assert!(e.contains("start"), "{e}");
    }
}
