//! `autoresearch init` driven with scripted answers in temp repos: detection in a
//! karpathy-shaped repo, questions, confirmation, flags, and refusing to overwrite.

use autoresearch::config::init::{
    Detected, InitArgs, InitError, config_table, detect, direction_for, run_init,
};
use autoresearch::config::{self, Config, default_command, load};
use autoresearch::experiment::Direction;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/config/karpathy"
);

/// A temp copy of the karpathy-shaped fixture repo.
fn karpathy() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(FIXTURE).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

/// Runs init with `answers` as the terminal's input; returns the result and the output.
fn init(
    repo: &Path,
    args: &InitArgs,
    answers: &str,
    interactive: bool,
) -> (Result<Config, InitError>, String) {
    let mut input = Cursor::new(answers.as_bytes().to_vec());
    let mut output = Vec::new();
    let result = run_init(repo, args, &mut input, &mut output, interactive);
    (result, String::from_utf8(output).unwrap())
}

fn config_path(dir: &TempDir) -> PathBuf {
    dir.path().join("autoresearch.toml")
}

fn paths(list: &[&str]) -> Vec<PathBuf> {
    list.iter().map(PathBuf::from).collect()
}

#[test]
fn detects_a_karpathy_shaped_repo() {
    let dir = karpathy();
    let d: Detected = detect(dir.path());
    let budget = d.budget.expect("TIME_BUDGET = 300 in prepare.py");
    assert_eq!(budget.value, Duration::from_secs(300));
    assert!(
        budget.source.starts_with("prepare.py:4 TIME_BUDGET = 300"),
        "{}",
        budget.source
    );
    let metric = d.metric.expect("print(f\"val_bpb: …\") in train.py");
    assert_eq!(metric.value, "val_bpb");
    assert!(
        metric.source.starts_with("train.py:17"),
        "{}",
        metric.source
    );
    assert_eq!(d.direction, Some(Direction::Minimize));
    assert_eq!(d.editable, paths(&["train.py"]));
    assert_eq!(
        d.read_only,
        paths(&["prepare.py", "pyproject.toml", "uv.lock"])
    );
    assert_eq!(d.command, default_command(dir.path(), &d.editable));
}

#[test]
fn detects_other_spellings() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("train.py"),
        "TIME_BUDGET: int = 2 * 60  # seconds\nprint('epoch:', e)\nprint(\"test_acc:\", acc)\n",
    )
    .unwrap();
    let d = detect(dir.path());
    assert_eq!(d.budget.unwrap().value, Duration::from_secs(120));
    assert_eq!(d.metric.unwrap().value, "test_acc");
    assert_eq!(d.direction, Some(Direction::Maximize));
    assert!(d.read_only.is_empty());

    let empty = tempfile::tempdir().unwrap();
    assert_eq!(detect(empty.path()).budget, None);
    assert_eq!(detect(empty.path()).metric, None);
}

#[test]
fn direction_from_metric_names() {
    for name in [
        "val_bpb",
        "loss",
        "val_loss",
        "perplexity",
        "test_ppl",
        "wer",
        "eval_rmse",
        "nll",
        "top1_err",
    ] {
        assert_eq!(direction_for(name), Some(Direction::Minimize), "{name}");
    }
    for name in [
        "accuracy",
        "val_acc",
        "f1",
        "auc",
        "bleu",
        "rouge1",
        "mean_reward",
        "map",
        "recall",
    ] {
        assert_eq!(direction_for(name), Some(Direction::Maximize), "{name}");
    }
    for name in ["tokens_per_second", "depth", "peak_vram_mb", "lossy_thing"] {
        assert_eq!(direction_for(name), None, "{name}");
    }
}

#[test]
fn enter_confirms_what_was_detected() {
    let dir = karpathy();
    let (result, out) = init(dir.path(), &InitArgs::default(), "\n\n\n\n", true);
    let cfg = result.unwrap();
    assert!(
        out.contains("Time budget per training run (e.g. 5m) [5m]: "),
        "{out}"
    );
    assert!(
        out.contains("detected prepare.py:4 TIME_BUDGET = 300"),
        "{out}"
    );
    assert!(out.contains("[val_bpb]: "), "{out}");
    assert!(out.contains("(minimize/maximize) [minimize]: "), "{out}");
    assert!(out.contains("| Time budget per run | 5m |"), "{out}");
    assert!(
        out.contains("| Metric | `val_bpb` (lower is better) |"),
        "{out}"
    );
    assert!(out.contains("Proceed? [Y/n] "), "{out}");
    assert_eq!(cfg.budget, Duration::from_secs(300));
    assert_eq!(cfg.timeout, Duration::from_secs(660));
    assert_eq!(cfg.metric.name, "val_bpb");
    assert_eq!(cfg.metric.direction, Direction::Minimize);
    assert_eq!(cfg.editable, paths(&["train.py"]));
    assert_eq!(
        cfg.read_only,
        paths(&["prepare.py", "pyproject.toml", "uv.lock"])
    );
    // What was written reads back to what was returned.
    assert_eq!(load(&config_path(&dir)).unwrap(), cfg);
}

#[test]
fn answers_override_suggestions_and_bad_answers_are_asked_again() {
    let dir = karpathy();
    let (result, out) = init(
        dir.path(),
        &InitArgs::default(),
        "ten minutes\n10m\nval_acc\n\ny\n",
        true,
    );
    let cfg = result.unwrap();
    assert!(out.contains("is not a duration"), "{out}");
    assert_eq!(cfg.budget, Duration::from_secs(600));
    assert_eq!(cfg.metric.name, "val_acc");
    assert!(
        out.contains("Is lower or higher val_acc better? (minimize/maximize) [maximize]: "),
        "{out}"
    );
    assert_eq!(cfg.metric.direction, Direction::Maximize);
}

#[test]
fn declining_writes_nothing() {
    let dir = karpathy();
    let (result, out) = init(dir.path(), &InitArgs::default(), "\n\n\nn\n", true);
    assert!(matches!(result, Err(InitError::Declined)), "{result:?}");
    assert!(out.contains("Research Config"), "{out}");
    assert!(!config_path(&dir).exists());
    // Input that ends at the confirmation is a no as well.
    let (result, _) = init(dir.path(), &InitArgs::default(), "\n\n\n", true);
    assert!(matches!(result, Err(InitError::Declined)), "{result:?}");
    assert!(!config_path(&dir).exists());
}

#[test]
fn non_interactive_without_budget_names_the_flags() {
    let dir = karpathy();
    let (result, _) = init(dir.path(), &InitArgs::default(), "", false);
    let msg = result.unwrap_err().to_string();
    assert!(
        msg.contains("the time budget and the metric and its direction not confirmed"),
        "{msg}"
    );
    assert!(
        msg.contains(
            "pass --budget 5m --metric val_bpb --minimize (or --yes to accept what was detected)"
        ),
        "{msg}"
    );
    assert!(!config_path(&dir).exists());

    // Nothing detected: the message still says exactly what to pass.
    let bare = tempfile::tempdir().unwrap();
    std::fs::write(bare.path().join("train.py"), "print('hello')\n").unwrap();
    let (result, _) = init(bare.path(), &InitArgs::default(), "", false);
    let msg = result.unwrap_err().to_string();
    assert!(
        msg.ends_with("pass --budget 5m --metric val_bpb --minimize"),
        "{msg}"
    );

    // Only the budget missing: only the budget flag is named.
    let args = InitArgs {
        metric: Some("val_bpb".into()),
        minimize: true,
        ..InitArgs::default()
    };
    let (result, _) = init(bare.path(), &args, "", false);
    let msg = result.unwrap_err().to_string();
    assert!(msg.starts_with("the time budget not confirmed"), "{msg}");
    assert!(msg.ends_with("pass --budget 5m"), "{msg}");
}

#[test]
fn yes_accepts_detection_without_questions() {
    let dir = karpathy();
    let args = InitArgs {
        yes: true,
        tag: Some("nov23".into()),
        max_iterations: Some(20),
        ..InitArgs::default()
    };
    let (result, out) = init(dir.path(), &args, "", false);
    let cfg = result.unwrap();
    assert!(!out.contains("Proceed?"), "{out}");
    assert_eq!(cfg.budget, Duration::from_secs(300));
    assert_eq!(cfg.metric.name, "val_bpb");
    assert_eq!(cfg.branch(), "autoresearch/nov23");
    assert_eq!(cfg.max_iterations, Some(20));
    assert_eq!(load(&config_path(&dir)).unwrap(), cfg);
}

#[test]
fn flags_alone_are_enough() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.py"), "print('accuracy: 0.5')\n").unwrap();
    std::fs::write(dir.path().join("requirements.txt"), "torch\n").unwrap();
    let args = InitArgs {
        budget: Some(Duration::from_secs(90)),
        metric: Some("accuracy".into()),
        maximize: true,
        command: Some("python3 model.py".into()),
        editable: paths(&["model.py"]),
        tag: Some("exp1".into()),
        results: Some("runs.tsv".into()),
        ..InitArgs::default()
    };
    let (result, _) = init(dir.path(), &args, "", false);
    let cfg = result.unwrap();
    assert_eq!(cfg.budget, Duration::from_secs(90));
    assert_eq!(cfg.metric.direction, Direction::Maximize);
    assert_eq!(cfg.command, "python3 model.py");
    assert_eq!(cfg.read_only, paths(&["requirements.txt"]));
    assert_eq!(cfg.results, PathBuf::from("runs.tsv"));
    assert_eq!(load(&config_path(&dir)).unwrap(), cfg);
}

#[test]
fn bad_flags_are_refused_before_asking() {
    let dir = karpathy();
    let args = InitArgs {
        editable: paths(&["missing.py"]),
        ..InitArgs::default()
    };
    let msg = init(dir.path(), &args, "", true).0.unwrap_err().to_string();
    assert!(
        msg.starts_with("--editable: `missing.py` is not a file inside"),
        "{msg}"
    );
    let args = InitArgs {
        tag: Some("a b".into()),
        ..InitArgs::default()
    };
    let msg = init(dir.path(), &args, "", true).0.unwrap_err().to_string();
    assert!(
        msg.contains("--tag: `a b` contains ' '; use letters"),
        "{msg}"
    );
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = karpathy();
    std::fs::write(config_path(&dir), "# mine\n").unwrap();
    let args = InitArgs {
        yes: true,
        ..InitArgs::default()
    };
    let msg = init(dir.path(), &args, "", false)
        .0
        .unwrap_err()
        .to_string();
    assert!(
        msg.ends_with("autoresearch.toml already exists; pass --force to overwrite it"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read_to_string(config_path(&dir)).unwrap(),
        "# mine\n"
    );

    let args = InitArgs {
        yes: true,
        force: true,
        ..InitArgs::default()
    };
    let cfg = init(dir.path(), &args, "", false).0.unwrap();
    assert_eq!(load(&config_path(&dir)).unwrap(), cfg);
}

#[test]
fn input_ending_mid_question_says_which_flags_to_pass() {
    let dir = karpathy();
    let msg = init(dir.path(), &InitArgs::default(), "\n", true)
        .0
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("input ended before init finished"), "{msg}");
    assert!(
        msg.contains("--budget 5m --metric val_bpb --minimize"),
        "{msg}"
    );
    assert!(!config_path(&dir).exists());
}

#[test]
fn the_config_table() {
    let dir = karpathy();
    let text = "budget = 300\ntag = \"nov23\"\ncommand = \"uv run train.py | tee run.log\"\n[metric]\nname = \"val_bpb\"\ndirection = \"minimize\"\n";
    let cfg = config::load_str(text, &config_path(&dir)).unwrap();
    assert_eq!(
        config_table(&cfg),
        "\
| Parameter | Value |
|---|---|
| Training script | `train.py` |
| Read-only files | `prepare.py`, `pyproject.toml`, `uv.lock` |
| Run command | `uv run train.py \\| tee run.log` |
| Time budget per run | 5m |
| Hard timeout | 11m |
| Metric | `val_bpb` (lower is better) |
| Max iterations | unlimited |
| Modification scope | all |
| Branch | `autoresearch/nov23` |
| Results file | `results.tsv` |
| Program file | `program.md` |
| Keep rule | noise-aware (3 baseline runs, z = 2.0, up to 2 confirmation runs, recheck every 10, 6 revisits) |
"
    );
}

#[derive(clap::Parser, Debug)]
struct Cli {
    #[command(flatten)]
    init: InitArgs,
}

#[test]
fn init_flags_parse() {
    use clap::{CommandFactory, Parser};
    Cli::command().debug_assert();
    let cli = Cli::try_parse_from([
        "init",
        "--budget",
        "1h30m",
        "--metric",
        "val_bpb",
        "--minimize",
        "--editable",
        "a.py",
        "--editable",
        "b.py",
        "--read-only",
        "p.py",
        "--scope",
        "optimizer",
        "--max-iterations",
        "50",
        "--tag",
        "nov23",
        "--results",
        "r.tsv",
        "--command",
        "python a.py",
        "-y",
        "--force",
    ])
    .unwrap();
    let a = cli.init;
    assert_eq!(a.budget, Some(Duration::from_secs(5400)));
    assert_eq!(a.metric.as_deref(), Some("val_bpb"));
    assert!(a.minimize && !a.maximize && a.yes && a.force);
    assert_eq!(a.editable, paths(&["a.py", "b.py"]));
    assert_eq!(a.read_only, paths(&["p.py"]));
    assert_eq!(a.scope, Some(config::Scope::Optimizer));
    assert_eq!(a.max_iterations, Some(50));
    let e = Cli::try_parse_from(["init", "--minimize", "--maximize"]).unwrap_err();
    assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
    let e = Cli::try_parse_from(["init", "--budget", "0"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is zero; write it like 300, 20s, 5m or 1h30m"),
        "{e}"
    );
    assert!(Cli::try_parse_from(["init", "--scope", "everything"]).is_err());
    assert!(Cli::try_parse_from(["init", "--max-iterations", "0"]).is_err());
}

/// A temp git repository holding the karpathy-shaped fixture with its fixed seed, its
/// committed progress.png and uv.lock.
fn karpathy_seeded() -> TempDir {
    let src = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/config/karpathy_seeded"
    );
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

#[test]
fn init_on_karpathys_repo_names_the_seed_the_budget_and_the_command_it_chose() {
    let dir = karpathy_seeded();
    // A PATH with neither uv nor python: the choice must be said, not made silently.
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_autoresearch"))
        .args(["init", "--yes", "--budget", "1m", "--repo"])
        .arg(dir.path())
        .env("PATH", empty.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |needle: &str| {
        stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{stdout}"))
            .to_string()
    };
    let uv = line("uv.lock ask for uv");
    assert!(
        uv.contains("not on PATH") && uv.contains("`python train.py`"),
        "{uv}"
    );
    let seed = line("pins its own seed");
    assert!(
        seed.contains("train.py:6 torch.manual_seed(42)")
            && seed.contains("torch.manual_seed(int(os.environ.get(\"AUTORESEARCH_SEED\", 42)))"),
        "{seed}"
    );
    let budget = line("is read-only");
    assert!(
        budget.contains("the budget is 1m but prepare.py:4 TIME_BUDGET = 300"),
        "{budget}"
    );
    // The hard timeout leaves room for the 5 minutes the loop really trains.
    let cfg = load(&dir.path().join("autoresearch.toml")).unwrap();
    assert_eq!(cfg.budget, Duration::from_secs(60));
    assert!(
        cfg.timeout >= Duration::from_secs(300 * 2 + 60),
        "{:?}",
        cfg.timeout
    );
    assert_eq!(cfg.command, "python train.py");
}

#[test]
fn init_says_nothing_of_seeds_or_budgets_when_all_is_well() {
    let dir = karpathy();
    let (result, out) = init(
        dir.path(),
        &InitArgs {
            budget: Some(Duration::from_secs(300)),
            yes: true,
            ..InitArgs::default()
        },
        "",
        false,
    );
    result.unwrap();
    assert!(!out.contains("pins its own seed"), "{out}");
    assert!(!out.contains("is read-only: the training loop"), "{out}");
}

#[test]
fn init_for_slurm_asks_for_the_partition_and_writes_the_executor() {
    let dir = karpathy();
    let args = InitArgs {
        executor: Some("slurm".into()),
        ..InitArgs::default()
    };
    // Enter for the budget, metric, direction; a bad partition, a good one; Enter to proceed.
    let (result, out) = init(dir.path(), &args, "\n\n\ngpu a100\ngpu\n\n", true);
    let cfg = result.unwrap();
    assert!(
        out.contains("Slurm partition for the training jobs"),
        "{out}"
    );
    assert!(out.contains("a partition name is one word"), "{out}");
    assert!(
        out.contains("| Executor | Slurm jobs (partition gpu per job) |"),
        "{out}"
    );
    let autoresearch::config::ExecutorConfig::Slurm(s) = &cfg.executor else {
        panic!("{:?}", cfg.executor)
    };
    assert_eq!(s.partition.as_deref(), Some("gpu"));
    assert_eq!(load(&config_path(&dir)).unwrap(), cfg);
    // With --partition nothing is asked.
    let other = karpathy();
    let args = InitArgs {
        executor: Some("slurm".into()),
        partition: Some("debug".into()),
        yes: true,
        ..InitArgs::default()
    };
    let (result, out) = init(other.path(), &args, "", false);
    assert!(!out.contains("Slurm partition for"), "{out}");
    assert!(load(&config_path(&other)).unwrap() == result.unwrap());
}
