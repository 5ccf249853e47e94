//! The keep/discard decision and its statistics: pure code that the session loop drives with
//! measurements. Never runs processes, reads files or touches git; it only says what to do.
//!
//! - [`stats`]: moments, pooled variance, t and Wilcoxon tests.
//! - [`policy`]: the rule itself ([`policy::decide`]), the noise model, baseline planning,
//!   drift rechecks, and the short evidence strings shown to the user.
//! - [`curve`]: a run's training curve, read from its progress lines.
//! - [`prune`]: whether a running candidate's curve is already hopeless.

pub mod curve;
pub mod policy;
pub mod prune;
pub mod stats;

pub use policy::{
    ALPHA, CLEAR_MARGIN, Earlier, Measurement, NoiseModel, Verdict, baseline_needs_more,
    baseline_plan, decide, decide_again, default_config, near_miss_score, needs_recheck,
    recheck_seeds, repeats_suffix, seed, z_multiplier,
};
