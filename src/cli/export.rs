//! `autoresearch export`: the session's experiments as a table for a paper, from the
//! journal (read-only) or a results.tsv from elsewhere. Writes stdout or `-o FILE`.

use super::exit;
use super::report::{Source, load, session_config};
use crate::report::export::{self, ExportData, Format};
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub source: Source,
    /// md (Markdown table), latex (booktabs), csv or json.
    #[arg(long, value_enum, default_value = "md")]
    pub format: Format,
    /// Write here instead of stdout (relative paths are taken from the current directory).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn export(args: &ExportArgs) -> anyhow::Result<i32> {
    let loaded = load(&args.source)?;
    for (line, why) in &loaded.skipped {
        eprintln!("skipped line {line}: {why}");
    }
    // Every run of every experiment, from the journal; a file from elsewhere has one
    // value per row.
    let mut runs: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    let mut noise = None;
    let mut extra = Vec::new();
    if loaded.state_dir.is_some() {
        let journal = super::report::open_journal(&loaded.root)?;
        let row = super::report::pick_session(&journal, args.source.tag.as_deref())?;
        let measurements = journal.measurements(row.id)?;
        for m in measurements.iter() {
            if let Some(v) = m.value.filter(|v| v.is_finite()) {
                runs.entry(m.experiment_id).or_default().push(v);
            }
        }
        let model = crate::session::progress::noise_of(&measurements);
        noise = model.sigma().map(|s| (s, model.df(), model.measurements()));
        let settings = journal.settings(row.id)?;
        if let Some(cmd) = settings.and_then(|s| s.command) {
            extra.push(("Command".to_string(), cmd));
        }
        if let Some(cfg) = session_config(&loaded.root, &row) {
            extra.push((
                "Decision".to_string(),
                format!(
                    "{} (baseline runs {}, z {}, min Δ {})",
                    match cfg.decision.mode {
                        crate::config::DecisionMode::Greedy => "greedy",
                        crate::config::DecisionMode::NoiseAware => "noise-aware",
                    },
                    cfg.decision.baseline_runs,
                    cfg.decision.z,
                    cfg.decision.min_delta
                ),
            ));
        }
    }
    // Repeats of one fixed seed say nothing about the noise: no intervals from them.
    let fixed_seed = loaded.info.fixed_seed.clone();
    let rows = if fixed_seed.is_some() {
        let mut rows = export::rows(&loaded.records, &runs, None);
        rows.iter_mut().for_each(|r| r.effect = None);
        rows
    } else {
        export::rows(&loaded.records, &runs, noise.map(|(s, df, _)| (s, df)))
    };
    let data = ExportData {
        settings: export::settings(&loaded.info, &loaded.records, &extra),
        noise,
        fixed_seed,
        metric_name: loaded.info.metric_name.clone(),
        rows,
    };
    let text = export::render(args.format, &data);
    match &args.out {
        Some(path) => {
            std::fs::write(path, text.as_bytes())
                .with_context(|| format!("cannot write {}; check the -o path", path.display()))?;
            println!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(exit::OK)
}
