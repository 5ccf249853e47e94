//! `autoresearch demo`: copies the bundled `examples/tinylm` into a fresh git repository,
//! prepares a Python environment with numpy (uv when present, else a venv), and runs a
//! short session with the built-in proposer. No API key, no GPU.

use super::terminal::Reporter;
use crate::config::{self, default_timeout};
use crate::session::Options;
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The example, embedded so the demo works from an installed binary too.
const FILES: &[(&str, &str)] = &[
    ("train.py", include_str!("../../examples/tinylm/train.py")),
    (
        "prepare.py",
        include_str!("../../examples/tinylm/prepare.py"),
    ),
    (
        "program.md",
        include_str!("../../examples/tinylm/program.md"),
    ),
    (
        "requirements.txt",
        include_str!("../../examples/tinylm/requirements.txt"),
    ),
    (
        "autoresearch.toml",
        include_str!("../../examples/tinylm/autoresearch.toml"),
    ),
    ("README.md", include_str!("../../examples/tinylm/README.md")),
];

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where to create the demo repository (default: a new folder under the temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Time budget per training run.
    #[arg(long, default_value = "5s", value_parser = super::run::parse_duration_arg)]
    pub budget: std::time::Duration,
    /// Experiments after the baseline.
    #[arg(long, short = 'n', default_value_t = 4)]
    pub iterations: u64,
    /// Python interpreter that already has numpy (skips creating the environment).
    #[arg(long, env = "AUTORESEARCH_DEMO_PYTHON")]
    pub python: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("autoresearch")
}

fn has_numpy(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import numpy"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn on_path(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn step(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    Ok(())
}

/// A Python with numpy: the given one, or a cached environment made once.
pub(crate) fn ensure_python(
    given: Option<&Path>,
    say: &mut dyn FnMut(&str),
) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        if !has_numpy(p) {
            bail!(
                "{} cannot import numpy; install it (`{} -m pip install numpy`) or omit --python",
                p.display(),
                p.display()
            );
        }
        return Ok(p.to_path_buf());
    }
    let venv = cache_dir().join("demo-venv");
    let python = venv.join("bin").join("python");
    if has_numpy(&python) {
        return Ok(python);
    }
    say(&format!(
        "Preparing a Python environment with numpy in {} (once)…",
        venv.display()
    ));
    if on_path("uv") {
        step(
            Command::new("uv").args(["venv", "-q"]).arg(&venv),
            "uv venv",
        )?;
        step(
            Command::new("uv")
                .args(["pip", "install", "-q", "--python"])
                .arg(&python)
                .arg("numpy"),
            "uv pip install numpy",
        )?;
    } else {
        let base = if on_path("python3") {
            "python3"
        } else {
            "python"
        };
        step(Command::new(base).args(["-m", "venv"]).arg(&venv), "python3 -m venv")
            .context("Python 3 with the venv module is needed for the demo (Debian: apt-get install python3-venv)")?;
        step(
            Command::new(&python).args(["-m", "pip", "install", "-q", "numpy"]),
            "pip install numpy",
        )
        .context("the demo needs numpy from PyPI")?;
    }
    if !has_numpy(&python) {
        bail!(
            "numpy is still not importable from {}; delete that folder and retry",
            python.display()
        );
    }
    Ok(python)
}

/// Writes the example into `dir` and commits it.
pub(crate) fn write_example(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty; pass --dir with a new folder",
            dir.display()
        );
    }
    for (name, text) in FILES {
        std::fs::write(dir.join(name), text)?;
    }
    let git = |args: &[&str]| -> anyhow::Result<()> {
        step(
            Command::new("git")
                .args(args)
                .current_dir(dir)
                .env("GIT_AUTHOR_NAME", "autoresearch demo")
                .env("GIT_AUTHOR_EMAIL", "demo@autoresearch.local")
                .env("GIT_COMMITTER_NAME", "autoresearch demo")
                .env("GIT_COMMITTER_EMAIL", "demo@autoresearch.local"),
            &format!("git {}", args.join(" ")),
        )
    };
    git(&["init", "-q", "-b", "main"])?;
    git(&["add", "-A"])?;
    git(&[
        "-c",
        "commit.gpgsign=false",
        "commit",
        "-q",
        "--no-verify",
        "-m",
        "tinylm example",
    ])?;
    Ok(())
}

pub fn demo(args: &DemoArgs) -> anyhow::Result<i32> {
    let mut reporter = Reporter::new(args.json, args.quiet);
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "autoresearch-demo-{}",
            chrono::Local::now().format("%Y%m%d-%H%M%S")
        ))
    });
    let python = ensure_python(args.python.as_deref(), &mut |m| reporter.plain(m))?;
    write_example(&dir)?;
    reporter.plain(&format!("Demo repository: {}", dir.display()));
    // The data is prepared once, before the session, as karpathy's prepare.py is.
    step(
        Command::new(&python).arg("prepare.py").current_dir(&dir),
        "python prepare.py",
    )?;
    let mut cfg = config::load(&dir.join(config::CONFIG_FILE))?;
    cfg.command = format!(
        "'{}' train.py",
        python.display().to_string().replace('\'', r"'\''")
    );
    cfg.budget = args.budget;
    // The example trains a fixed amount of compute, so a busy machine makes its runs
    // longer, not worse: the hard timeout only guards against a hang, and must not cut
    // short a run that a loaded laptop needs a few minutes for.
    cfg.timeout = default_timeout(args.budget).max(std::time::Duration::from_secs(300));
    cfg.max_iterations = None;
    // The demo runs our own example with the built-in proposer: nothing untrusted. Where
    // this machine cannot cut a run off the network (macOS, locked-down containers), run
    // it without isolation rather than refuse a newcomer's first command.
    let probe = crate::runner::sandbox::Probe::cached();
    if crate::runner::sandbox::resolve(&cfg.sandbox, &dir, &[], probe).is_err() {
        reporter.plain(
            "note: no network sandbox is available here; the demo's trusted example runs without one",
        );
        cfg.sandbox.network = config::Network::Allow;
    }
    reporter.plain(&config::init::config_table(&cfg));
    let opts = Options {
        iterations: Some(args.iterations),
        grace: std::time::Duration::from_secs(2),
        ..Options::default()
    };
    let tag = cfg.tag.clone();
    let code = super::run::run_session(&dir, cfg, opts, &mut reporter)?;
    reporter.plain(&format!(
        "\nresults.tsv:\n{}",
        std::fs::read_to_string(dir.join("results.tsv")).unwrap_or_default(),
    ));
    super::run::where_reports_are(&dir, &tag, true, !args.json)?;
    reporter.plain(&format!(
        "Look around: cd {} && git log --oneline autoresearch/*",
        dir.display()
    ));
    Ok(code)
}
