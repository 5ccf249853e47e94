//! Properties of the results.tsv importer: it never panics on any text, and it reads back
//! exactly what `store::results::render` writes (commit, metric to 6 places, memory to 1,
//! status, description with tabs and newlines flattened).

use autoresearch::experiment::{Category, ExperimentRecord, Status};
use autoresearch::store::import::parse_results;
use autoresearch::store::results::render;
use proptest::prelude::*;

fn record(
    commit: String,
    status: Status,
    metric: f64,
    memory: Option<f64>,
    description: String,
) -> ExperimentRecord {
    ExperimentRecord {
        id: 1,
        iteration: 1,
        attempt: 1,
        parent: String::new(),
        commit,
        status,
        metric: Some(metric),
        metrics: Default::default(),
        memory_gb: memory,
        description,
        category: Category::Other,
        proposer: "search".into(),
        reason: String::new(),
        log_path: None,
        started_at: String::new(),
        finished_at: None,
        duration_s: None,
        state_hash: String::new(),
    }
}

fn any_record() -> impl Strategy<Value = ExperimentRecord> {
    (
        "[0-9a-f]{7,40}",
        prop_oneof![
            Just(Status::Keep),
            Just(Status::Discard),
            Just(Status::Crash)
        ],
        -1e6f64..1e6,
        prop::option::of(0f64..1e4),
        // Any text at all, tabs, newlines and odd Unicode included.
        any::<String>(),
    )
        .prop_map(|(c, s, m, mem, d)| record(c, s, m, mem, d))
}

/// What a metric column header may be: not one of the names the importer reserves.
fn metric_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,15}".prop_filter("not a reserved column", |n| {
        ![
            "commit",
            "hash",
            "sha",
            "status",
            "memory_gb",
            "memory",
            "mem_gb",
            "peak_memory_gb",
            "vram_gb",
            "description",
            "desc",
            "change",
            "notes",
            "note",
        ]
        .contains(&n.as_str())
    })
}

fn rounded(x: f64, places: usize) -> f64 {
    format!("{x:.places$}").parse().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_any_text(text in any::<String>()) {
        let imported = parse_results(&text);
        let _ = imported.to_records();
    }

    #[test]
    fn never_panics_on_tsv_like_text(
        lines in prop::collection::vec(
            prop::collection::vec(
                prop_oneof![
                    Just("keep".to_string()), Just("crash".to_string()), Just("status".to_string()),
                    Just("commit".to_string()), Just("nan".to_string()), Just("".to_string()),
                    "[0-9a-f]{7}", "-?[0-9]{1,3}\\.[0-9]{1,6}", "[ -~]{0,10}",
                ],
                0..8,
            ).prop_map(|f| f.join("\t")),
            0..12,
        )
    ) {
        let text = lines.join("\n");
        let imported = parse_results(&text);
        let nonblank = text.split('\n').filter(|l| !l.trim().is_empty()).count();
        prop_assert!(imported.rows.len() + imported.skipped.len() <= nonblank);
    }

    #[test]
    fn reads_back_what_render_writes(
        name in metric_name(),
        records in prop::collection::vec(any_record(), 0..12),
    ) {
        let text = render(&name, &records);
        let imported = parse_results(&text);
        prop_assert!(imported.skipped.is_empty(), "skipped {:?} in\n{}", imported.skipped, text);
        prop_assert_eq!(imported.rows.len(), records.len());
        if !records.is_empty() {
            prop_assert_eq!(&imported.metric_name, &name);
        }
        for (row, r) in imported.rows.iter().zip(&records) {
            let crash = r.status == Status::Crash;
            prop_assert_eq!(&row.commit, &r.commit[..7]);
            prop_assert_eq!(row.status, r.status);
            let metric = if crash { None } else { Some(rounded(r.metric.unwrap(), 6)) };
            prop_assert_eq!(row.metric, metric);
            let memory = if crash { None } else { Some(rounded(r.memory_gb.unwrap_or(0.0), 1)) };
            prop_assert_eq!(row.memory_gb, memory);
            let flat: String = r.description.chars()
                .map(|c| if matches!(c, '\t' | '\n' | '\r') { ' ' } else { c })
                .collect();
            prop_assert_eq!(&row.description, flat.trim());
        }
    }
}
