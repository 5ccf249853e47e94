//! autoresearch.toml loading: defaults, dependency files, every error (with its line and
//! fix) and the to_toml round trip, on real files in temp dirs.

use autoresearch::config::{
    self, AgentBackend, Config, ConfigError, DecisionMode, Scope, default_command,
    default_command_with, load, load_str, to_toml,
};
use autoresearch::experiment::Direction;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;

/// A temp repo holding `files` (name, content).
fn repo(files: &[&str]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in files {
        let path = dir.path().join(f);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("# {f}\n")).unwrap();
    }
    dir
}

fn karpathy() -> TempDir {
    repo(&["train.py", "prepare.py", "pyproject.toml", "uv.lock"])
}

fn load_in(dir: &TempDir, text: &str) -> Result<Config, ConfigError> {
    load_str(text, &dir.path().join("autoresearch.toml"))
}

/// The error message for `text`, which must fail.
fn err(dir: &TempDir, text: &str) -> String {
    match load_in(dir, text) {
        Ok(cfg) => panic!("expected an error, loaded {cfg:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "one line: {msg}");
            msg
        }
    }
}

const METRIC: &str = "[metric]\nname = \"val_bpb\"\ndirection = \"minimize\"\n";

fn with_budget(top: &str) -> String {
    format!("budget = \"5m\"\n{top}\n{METRIC}")
}

fn paths(list: &[&str]) -> Vec<PathBuf> {
    list.iter().map(PathBuf::from).collect()
}

#[test]
fn minimal_config_gets_the_documented_defaults() {
    let dir = karpathy();
    let cfg = load_in(&dir, &with_budget("")).unwrap();
    assert_eq!(cfg.budget, Duration::from_secs(300));
    assert_eq!(cfg.timeout, Duration::from_secs(660), "2 x budget + 60 s");
    assert_eq!(cfg.editable, paths(&["train.py"]));
    assert_eq!(
        cfg.read_only,
        paths(&["prepare.py", "pyproject.toml", "uv.lock"])
    );
    assert_eq!(cfg.command, default_command(dir.path(), &cfg.editable));
    assert_eq!(cfg.metric.name, "val_bpb");
    assert_eq!(cfg.metric.direction, Direction::Minimize);
    assert_eq!(cfg.metric.memory_key, "peak_vram_mb");
    assert!(cfg.metric.regex.is_none());
    assert_eq!(cfg.max_iterations, None);
    assert_eq!(cfg.scope, Scope::All);
    assert_eq!(
        cfg.tag,
        config::default_tag(chrono::Local::now().date_naive())
    );
    assert_eq!(cfg.results, PathBuf::from("results.tsv"));
    assert_eq!(cfg.program, PathBuf::from("program.md"));
    assert_eq!(cfg.report_every, 10);
    assert_eq!(cfg.agent.backend, AgentBackend::Search);
    assert_eq!(cfg.agent.patience, 3);
    assert_eq!(cfg.decision.mode, DecisionMode::NoiseAware);
    assert_eq!(cfg.decision.baseline_runs, 3);
    assert_eq!(cfg.decision.z, 2.0);
    assert_eq!(cfg.decision.confirm_runs, 2);
    assert_eq!(cfg.source, Some(dir.path().join("autoresearch.toml")));
}

#[test]
fn budget_as_integer_seconds_and_every_duration_form() {
    let dir = karpathy();
    for (budget, secs) in [
        ("300", 300),
        ("\"300\"", 300),
        ("\"1h30m\"", 5400),
        ("\"1.5h\"", 5400),
        ("\"20s\"", 20),
    ] {
        let cfg = load_in(&dir, &format!("budget = {budget}\n{METRIC}")).unwrap();
        assert_eq!(cfg.budget, Duration::from_secs(secs), "{budget}");
    }
}

#[test]
fn default_command_follows_uv_and_python_on_path() {
    let dir = karpathy();
    let train = paths(&["train.py"]);
    let has = |names: &'static [&'static str]| move |p: &str| names.contains(&p);
    assert_eq!(
        default_command_with(dir.path(), &train, &has(&["uv", "python"])),
        "uv run train.py"
    );
    assert_eq!(
        default_command_with(dir.path(), &train, &has(&["python"])),
        "python train.py"
    );
    assert_eq!(
        default_command_with(dir.path(), &train, &has(&["python3"])),
        "python3 train.py"
    );
    let bare = repo(&["train.py"]);
    assert_eq!(
        default_command_with(bare.path(), &train, &has(&["uv", "python3"])),
        "python3 train.py",
        "uv without pyproject.toml is not karpathy's setup"
    );
    assert_eq!(
        default_command_with(bare.path(), &paths(&["model.py"]), &has(&["python"])),
        "python model.py"
    );
}

#[test]
fn dependency_files_are_always_read_only() {
    let dir = repo(&[
        "train.py",
        "requirements.txt",
        "requirements-dev.txt",
        "environment.yml",
    ]);
    let cfg = load_in(&dir, &with_budget("read_only = []")).unwrap();
    assert_eq!(
        cfg.read_only,
        paths(&[
            "requirements.txt",
            "environment.yml",
            "requirements-dev.txt"
        ])
    );
    // Listing one explicitly does not duplicate it; no prepare.py means none by default.
    let cfg = load_in(&dir, &with_budget("read_only = [\"requirements.txt\"]")).unwrap();
    assert_eq!(
        cfg.read_only
            .iter()
            .filter(|p| *p == Path::new("requirements.txt"))
            .count(),
        1
    );
    let cfg = load_in(&dir, &with_budget("")).unwrap();
    assert!(!cfg.read_only.contains(&PathBuf::from("prepare.py")));
}

#[test]
fn malformed_toml_names_line_and_column() {
    let dir = karpathy();
    let msg = err(&dir, "budget = \"5m\"\n\n[metric\nname = \"x\"\n");
    assert!(msg.contains("autoresearch.toml:3:"), "{msg}");
    assert!(msg.contains("invalid TOML"), "{msg}");
}

#[test]
fn unknown_key_suggests_the_nearest() {
    let dir = karpathy();
    let msg = err(
        &dir,
        &format!("# comment\neditable = [\"train.py\"]\nbudgt = \"5m\"\n{METRIC}"),
    );
    assert!(
        msg.ends_with("autoresearch.toml:3:1: unknown key `budgt`; did you mean `budget`?"),
        "{msg}"
    );
    let msg = err(
        &dir,
        "budget = \"5m\"\n[metric]\nname = \"v\"\ndirection = \"min\"\nmemroy_key = \"m\"\n",
    );
    assert!(
        msg.contains(":5:1: unknown key `memroy_key` in [metric]; did you mean `memory_key`?"),
        "{msg}"
    );
    let msg = err(
        &dir,
        &format!("budget = \"5m\"\n{METRIC}\n[sandbox]\nnet = false\n"),
    );
    assert!(
        msg.contains(":7:1: unknown key `net` in [sandbox]; did you mean `network`?"),
        "{msg}"
    );
}

#[test]
fn wrong_type_names_the_expected_form() {
    let dir = karpathy();
    let msg = err(&dir, &format!("budget = true\n{METRIC}"));
    assert!(
        msg.contains("autoresearch.toml:1:10: `budget` must be a duration like \"5m\""),
        "{msg}"
    );
    assert!(msg.ends_with("not a boolean"), "{msg}");
    let msg = err(&dir, &with_budget("editable = \"train.py\""));
    assert!(
        msg.contains(":2:12: `editable` must be a list of paths like [\"train.py\"], not a string"),
        "{msg}"
    );
    let msg = err(&dir, &with_budget("max_iterations = \"10\""));
    assert!(
        msg.contains(":2:18: `max_iterations` must be an integer"),
        "{msg}"
    );
}

#[test]
fn missing_budget_says_it_is_never_assumed() {
    let dir = karpathy();
    let msg = err(&dir, METRIC);
    let file = dir.path().join("autoresearch.toml");
    assert_eq!(
        msg,
        format!(
            "{}: `budget` is required: the wall-clock time each training run gets, e.g. budget = \"5m\" (autoresearch never assumes it)",
            file.display()
        )
    );
}

#[test]
fn missing_metric_table_name_or_direction() {
    let dir = karpathy();
    let msg = err(&dir, "budget = \"5m\"\n");
    assert!(
        msg.contains("`metric` is required: add a [metric] table with name = \"val_bpb\""),
        "{msg}"
    );
    let msg = err(
        &dir,
        "budget = \"5m\"\n[metric]\ndirection = \"minimize\"\n",
    );
    assert!(
        msg.contains("autoresearch.toml:2:1: `metric.name` is required"),
        "{msg}"
    );
    let msg = err(&dir, "budget = \"5m\"\n\n[metric]\nname = \"val_bpb\"\n");
    assert!(
        msg.contains(":3:1: `metric.direction` is required: direction = \"minimize\""),
        "{msg}"
    );
    let msg = err(
        &dir,
        "budget = \"5m\"\n[metric]\nname = \"val_bpb\"\ndirection = \"down-ish\"\n",
    );
    assert!(
        msg.contains(":4:13: `metric.direction` is `down-ish`; use \"minimize\""),
        "{msg}"
    );
}

#[test]
fn direction_aliases() {
    let dir = karpathy();
    for (word, want) in [
        ("lower", Direction::Minimize),
        ("min", Direction::Minimize),
        ("higher", Direction::Maximize),
        ("max", Direction::Maximize),
        ("maximize", Direction::Maximize),
    ] {
        let text = format!("budget = 60\nmetric = {{ name = \"acc\", direction = \"{word}\" }}\n");
        assert_eq!(
            load_in(&dir, &text).unwrap().metric.direction,
            want,
            "{word}"
        );
    }
}

#[test]
fn zero_negative_and_garbage_budgets() {
    let dir = karpathy();
    for (budget, problem, fix) in [
        ("0", "`budget` is zero", "a run needs a positive time"),
        ("\"0s\"", "`budget` is zero", "a run needs a positive time"),
        (
            "-5",
            "`budget` is negative (-5)",
            "a run needs a positive time",
        ),
        (
            "\"-5m\"",
            "`budget` is negative (-5m)",
            "a run needs a positive time",
        ),
        (
            "\"five\"",
            "`budget` `five` is not a duration",
            "write it like \"300\"",
        ),
    ] {
        let msg = err(&dir, &format!("\nbudget = {budget}\n{METRIC}"));
        assert!(msg.contains(":2:10: "), "{budget}: {msg}");
        assert!(msg.contains(problem), "{budget}: {msg}");
        assert!(msg.contains(fix), "{budget}: {msg}");
    }
}

#[test]
fn timeout_must_exceed_budget() {
    let dir = karpathy();
    let msg = err(&dir, &with_budget("timeout = \"5m\""));
    assert!(
        msg.contains(":2:11: `timeout` (5m) must be greater than `budget` (5m); raise it, or remove it for the default 2 x budget + 60s (11m)"),
        "{msg}"
    );
    let cfg = load_in(&dir, &with_budget("timeout = 400")).unwrap();
    assert_eq!(cfg.timeout, Duration::from_secs(400));
}

#[test]
fn regex_must_compile_and_capture() {
    let dir = karpathy();
    let metric = |re: &str| {
        format!(
            "budget = \"5m\"\n[metric]\nname = \"val_bpb\"\ndirection = \"minimize\"\nregex = '{re}'\n"
        )
    };
    let msg = err(&dir, &metric("val_bpb=([0-9.]+"));
    assert!(
        msg.contains(":5:9: `metric.regex` does not compile"),
        "{msg}"
    );
    assert!(msg.contains("fix the pattern"), "{msg}");
    let msg = err(&dir, &metric("val_bpb=[0-9.]+"));
    assert!(
        msg.contains(":5:9: `metric.regex` has no capture group"),
        "{msg}"
    );
    assert!(msg.contains("wrap it in parentheses"), "{msg}");
    let cfg = load_in(&dir, &metric("val_bpb=([0-9.]+)")).unwrap();
    assert_eq!(cfg.metric.regex.unwrap().as_str(), "val_bpb=([0-9.]+)");
    assert!(load_in(&dir, &metric("bpb (?P<value>[0-9.]+)")).is_ok());
}

#[test]
fn editable_files_must_exist_and_not_be_read_only() {
    let dir = karpathy();
    let msg = err(
        &dir,
        &with_budget("editable = [\"train.py\", \"model.py\"]"),
    );
    assert!(
        msg.contains(":2:25: editable file `model.py` does not exist in"),
        "{msg}"
    );
    assert!(msg.contains("create it or fix the path"), "{msg}");
    // prepare.py is read-only by default only while nobody made it editable.
    let cfg = load_in(&dir, &with_budget("editable = [\"prepare.py\"]")).unwrap();
    assert_eq!(cfg.read_only, paths(&["pyproject.toml", "uv.lock"]));
    let msg = err(
        &dir,
        &with_budget("editable = [\"train.py\"]\nread_only = [\"train.py\"]"),
    );
    assert!(msg.contains(":2:13: `train.py` is editable but also listed in `read_only`; an editable file cannot be read-only, remove it from one list"), "{msg}");
    let msg = err(&dir, &with_budget("editable = [\"pyproject.toml\"]"));
    assert!(
        msg.contains(
            ":2:13: `pyproject.toml` is editable but it is a dependency file, always read-only"
        ),
        "{msg}"
    );
    let msg = err(&dir, &with_budget("editable = [\"../train.py\"]"));
    assert!(msg.contains("not a path inside the repository"), "{msg}");
    let msg = err(&dir, &with_budget("read_only = [\"data.py\"]"));
    assert!(
        msg.contains(":2:14: read-only file `data.py` does not exist"),
        "{msg}"
    );
}

#[test]
fn program_file_is_optional_unless_named() {
    let dir = karpathy();
    let cfg = load_in(&dir, &with_budget("")).unwrap();
    assert_eq!(
        cfg.program,
        PathBuf::from("program.md"),
        "a missing default is fine"
    );
    let msg = err(&dir, &with_budget("program = \"notes.md\""));
    assert!(
        msg.contains(":2:11: program file `notes.md` does not exist"),
        "{msg}"
    );
    std::fs::write(dir.path().join("notes.md"), "# notes\n").unwrap();
    assert_eq!(
        load_in(&dir, &with_budget("program = \"notes.md\""))
            .unwrap()
            .program,
        PathBuf::from("notes.md")
    );
}

#[test]
fn other_values_are_checked() {
    let dir = karpathy();
    for (line, want) in [
        (
            "max_iterations = 0",
            ":2:18: `max_iterations` is 0; use 1 or more",
        ),
        (
            "scope = \"everything\"",
            ":2:9: `scope` is `everything`; use one of architecture",
        ),
        ("tag = \"nov 23\"", ":2:7: `tag` `nov 23` contains ' '"),
        ("command = \"  \"", "`command` is empty"),
        ("report_every = -1", "`report_every` is -1"),
    ] {
        let msg = err(&dir, &with_budget(line));
        assert!(msg.contains(want), "{line}: {msg}");
    }
    let msg = err(
        &dir,
        &format!("budget = \"5m\"\n{METRIC}[agent]\nbackend = \"command\"\n"),
    );
    assert!(msg.contains(":5:1: `agent.command` is required"), "{msg}");
    let msg = err(
        &dir,
        &format!("budget = \"5m\"\n{METRIC}[decision]\nmode = \"bayes\"\n"),
    );
    assert!(
        msg.contains(":6:8: `decision.mode` is `bayes`; use \"greedy\" or \"noise-aware\""),
        "{msg}"
    );
}

#[test]
fn reading_a_missing_file_points_to_init() {
    let dir = karpathy();
    let msg = load(&dir.path().join("autoresearch.toml"))
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("cannot read "), "{msg}");
    assert!(msg.contains("run `autoresearch init`"), "{msg}");
}

#[test]
fn columns_count_characters_not_bytes() {
    let dir = karpathy();
    let msg = err(&dir, &format!("budget = \"5m\" # é é\nbudgt = 1\n{METRIC}"));
    assert!(msg.contains(":2:1: unknown key `budgt`"), "{msg}");
    let msg = err(&dir, &format!("budget = \"5m\"\ntag = \"éé\"; x\n{METRIC}"));
    assert!(msg.contains(":2:11: invalid TOML"), "{msg}");
}

const FULL: &str = r#"
editable = ["train.py", "model.py"]
read_only = ["prepare.py", "data/loader.py"]
command = "uv run train.py --fast | tee log"
budget = "1h30m"
timeout = 7200
max_iterations = 100
scope = "optimizer"
tag = "nov23"
results = "out/results.tsv"
program = "notes.md"
report_every = 5

[metric]
name = "val_acc"
direction = "higher"
regex = 'acc=(?P<value>[0-9.]+)'
memory_key = "mem_mb"

[agent]
backend = "openai"
model = "gpt-x \"quoted\""
base_url = "http://127.0.0.1:8080/v1"
command = "agent --prompt {prompt_file}"
timeout = "5m"
max_tokens = 8000
max_cost_usd = 5.25
patience = 4
seed = 7

[decision]
mode = "noise-aware"
baseline_runs = 5
min_delta = 0.001
z = 2.5
confirm_runs = 3
recheck_every = 10
revisits = 1
"#;

#[test]
fn every_field_is_read() {
    let dir = repo(&[
        "train.py",
        "model.py",
        "prepare.py",
        "data/loader.py",
        "notes.md",
        "uv.lock",
    ]);
    let cfg = load_in(&dir, FULL).unwrap();
    assert_eq!(cfg.editable, paths(&["train.py", "model.py"]));
    assert_eq!(
        cfg.read_only,
        paths(&["prepare.py", "data/loader.py", "uv.lock"])
    );
    assert_eq!(cfg.timeout, Duration::from_secs(7200));
    assert_eq!(cfg.max_iterations, Some(100));
    assert_eq!(cfg.scope, Scope::Optimizer);
    assert_eq!(cfg.branch(), "autoresearch/nov23");
    assert_eq!(cfg.metric.direction, Direction::Maximize);
    assert_eq!(cfg.agent.backend, AgentBackend::OpenAi);
    assert_eq!(cfg.agent.model.as_deref(), Some("gpt-x \"quoted\""));
    assert_eq!(cfg.agent.max_cost_usd, Some(5.25));
    assert_eq!(cfg.agent.timeout, Some(Duration::from_secs(300)));
    assert_eq!(cfg.decision.mode, DecisionMode::NoiseAware);
    assert_eq!(cfg.decision.min_delta, 0.001);
    assert_eq!(cfg.decision.recheck_every, 10);
    assert_eq!(cfg.decision.revisits, 1);
}

#[test]
fn to_toml_round_trips() {
    let dir = repo(&[
        "train.py",
        "model.py",
        "prepare.py",
        "data/loader.py",
        "notes.md",
        "uv.lock",
        "requirements.txt",
    ]);
    let full = load_in(&dir, FULL).unwrap();
    let minimal = load_in(&dir, &with_budget("")).unwrap();
    for cfg in [full, minimal] {
        let text = to_toml(&cfg);
        let back = load_in(&dir, &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, cfg, "{text}");
        assert!(
            text.contains("# Wall-clock time each training run gets."),
            "commented: {text}"
        );
        assert_eq!(to_toml(&back), text);
    }
}

#[test]
fn llm_agent_keys_load_phases_repairs_retries_and_prices() {
    let dir = karpathy();
    let cfg = load_in(
        &dir,
        "budget = \"5m\"\n[metric]\nname = \"val_bpb\"\ndirection = \"minimize\"\n[agent]\nbackend = \"openai\"\nmodel = \"m\"\nrepair_attempts = 2\nphases = [\"1-10: hyperparameters only\", \"11-: anything\"]\nmax_attempts = 3\nretry_base = \"1s\"\nprice_input = 3.0\nprice_output = 15.0\n",
    )
    .unwrap();
    assert_eq!(cfg.agent.repair_attempts, 2);
    assert_eq!(
        cfg.agent.phases,
        ["1-10: hyperparameters only", "11-: anything"]
    );
    assert_eq!(cfg.agent.max_attempts, Some(3));
    assert_eq!(cfg.agent.retry_base, Some(Duration::from_secs(1)));
    let prices = cfg.agent.prices.unwrap();
    assert_eq!((prices.input, prices.output), (3.0, 15.0));
    // LLM calls at a time: one per worker, at most 4, for an HTTP backend unless set.
    assert_eq!(cfg.agent.concurrency, None);
    assert_eq!(cfg.agent.concurrency_for(2), 2);
    assert_eq!(cfg.agent.concurrency_for(8), 4);
    let agent =
        "budget = \"5m\"\n[metric]\nname = \"val_bpb\"\ndirection = \"minimize\"\n[agent]\n";
    let set = load_in(
        &dir,
        &format!("{agent}backend = \"command\"\ncommand = \"a\"\n"),
    )
    .unwrap();
    assert_eq!(set.agent.concurrency_for(4), 1);
    let set = load_in(
        &dir,
        &format!("{agent}backend = \"command\"\ncommand = \"a\"\nconcurrency = 3\n"),
    )
    .unwrap();
    assert_eq!(set.agent.concurrency_for(4), 3);
    let e = err(&dir, &format!("{agent}concurrency = 0\n"));
    assert!(
        e.contains("`agent.concurrency` is 0") && e.contains("1 or more"),
        "{e}"
    );
    // Proposals prepared ahead: one per worker unless set; 0 is the hand-run loop's order.
    assert_eq!(cfg.agent.ahead, None);
    let set = load_in(&dir, &format!("{agent}ahead = 0\n")).unwrap();
    assert_eq!(set.agent.ahead, Some(0));
    let e = err(&dir, &format!("{agent}ahead = -1\n"));
    assert!(
        e.contains("`agent.ahead` is -1") && e.contains("0 or more"),
        "{e}"
    );
    let e = err(
        &dir,
        "budget = \"5m\"\n[metric]\nname = \"val_bpb\"\ndirection = \"minimize\"\n[agent]\nprice_input = -1.0\n",
    );
    assert!(
        e.contains(":6:")
            && e.contains("`agent.price_input` is -1")
            && e.contains("USD per million tokens"),
        "{e}"
    );
}

#[test]
fn the_slurm_executor_loads_round_trips_and_shows_in_the_table() {
    let dir = repo(&["train.py", "prepare.py"]);
    let text = with_budget(
        "\n[executor]\nkind = \"slurm\"\npartition = \"gpu\"\naccount = \"lab\"\ngpus_per_job = 1\ncpus_per_job = 8\nmem = \"64G\"\ntime_margin = \"2m\"\nsbatch_args = [\"--constraint=a100\"]\n",
    );
    let cfg = load_in(&dir, &text).unwrap();
    let autoresearch::config::ExecutorConfig::Slurm(s) = &cfg.executor else {
        panic!("not slurm: {:?}", cfg.executor)
    };
    assert_eq!(s.partition.as_deref(), Some("gpu"));
    assert_eq!(s.gpus_per_job, Some(1));
    assert_eq!(s.cpus_per_job, Some(8));
    assert_eq!(s.time_margin, Duration::from_secs(120));
    assert_eq!(s.sbatch_args, ["--constraint=a100"]);
    let back = load_in(&dir, &to_toml(&cfg)).unwrap();
    assert_eq!(back, cfg);
    let table = autoresearch::config::init::config_table(&cfg);
    assert!(
        table.contains("| Executor | Slurm jobs (partition gpu, account lab, 1 GPU(s), 8 CPU(s), mem 64G per job) |"),
        "{table}"
    );
    // The default says nothing and writes nothing.
    let local = load_in(&dir, &with_budget("")).unwrap();
    assert!(!autoresearch::config::init::config_table(&local).contains("Executor"));
    assert!(!to_toml(&local).contains("[executor]"));
}

#[test]
fn bad_executor_tables_are_refused_with_the_fix() {
    let dir = repo(&["train.py", "prepare.py"]);
    let e = load_in(&dir, &with_budget("\n[executor]\nkind = \"k8s\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`executor.kind` is `k8s`") && e.contains("\"slurm\""),
        "{e}"
    );
    let e = load_in(&dir, &with_budget("\n[executor]\npartition = \"gpu\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sets `partition` for local runs") && e.contains("kind = \"slurm\""),
        "{e}"
    );
    let e = load_in(
        &dir,
        &with_budget("\n[executor]\nkind = \"slurm\"\npartition = \"a b\"\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("`executor.partition` is `a b`"), "{e}");
}

#[test]
fn the_tuner_is_on_beside_an_llm_unless_turned_off() {
    use autoresearch::config::Tuner;
    let dir = karpathy();
    let agent = |extra: &str| {
        format!("budget = \"5m\"\n{METRIC}[agent]\nbackend = \"openai\"\nmodel = \"m\"\n{extra}")
    };
    let on = load_in(&dir, &agent("")).unwrap();
    assert_eq!(on.agent.tuner, Tuner::Search);
    assert!(on.agent.has_tuner());
    assert!(to_toml(&on).contains("tuner = \"search\""));
    for (text, want) in [
        ("tpe", Tuner::Search),
        ("search", Tuner::Search),
        ("off", Tuner::Off),
    ] {
        let cfg = load_in(&dir, &agent(&format!("tuner = \"{text}\"\n"))).unwrap();
        assert_eq!(cfg.agent.tuner, want, "{text}");
        assert_eq!(load_in(&dir, &to_toml(&cfg)).unwrap(), cfg, "round trip");
    }
    let off = load_in(&dir, &agent("tuner = \"off\"\n")).unwrap();
    assert!(!off.agent.has_tuner());
    // The search alone is the tuner already.
    assert!(!load_in(&dir, &with_budget("")).unwrap().agent.has_tuner());
    let msg = err(&dir, &agent("tuner = \"optuna\"\n"));
    assert!(
        msg.contains("agent.tuner") && msg.contains("optuna") && msg.contains("off"),
        "{msg}"
    );
}
