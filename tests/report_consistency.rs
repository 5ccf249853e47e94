//! Every report counts alike: a real session (an OOM retry, a crash, discards, two keeps)
//! under `--iterations`, then the final line, `status`, progress.md, the summary and the
//! chart title must all say the same number of experiments, kept, discarded and crashed,
//! the same limit and the budget the session ran with, even after the config file changed.

mod common;
mod llm_session_support;
mod llm_support;

use common::*;
use std::path::Path;

/// LR 0.1 → 0.2 runs out of memory at full batch (then its retry is kept), WD 0.5 → 1.0
/// crashes, WD 0.5 → 0.25 is kept, and of the rest (coordinate and joint moves of the
/// built-in search) one more is kept.
const TRAIN: &str = "LR = 0.1  # the knob\nWD = 0.5\nimport os, sys\nscale = float(os.environ['AUTORESEARCH_BATCH_SCALE'])\nif LR > 0.15 and scale >= 1.0:\n    sys.exit('torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB')\nif WD > 0.9:\n    raise ValueError('boom: WD too high')\nprint(f'val_bpb: {1.0 + abs(LR - 0.3) + abs(WD - 0.3):.6f}')\n";

const EXPECTED: &str = "8 experiments (3 kept, 4 discarded, 1 crashed; 1 OOM retry)";

fn report(dir: &Path, args: &[&str]) -> String {
    let out = bin().args(args).arg("--repo").arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `- **Experiments:** …` line of a markdown report.
fn experiments_line(md: &str) -> &str {
    md.lines()
        .find(|l| l.starts_with("- **Experiments:**"))
        .unwrap_or_else(|| panic!("no Experiments line in\n{md}"))
}

#[test]
fn final_line_status_progress_summary_and_chart_agree() {
    let dir = repo(&[
        ("train.py", TRAIN),
        ("autoresearch.toml", &config("max_iterations = 30\n")),
    ]);
    let out = bin()
        .env("AUTORESEARCH_PLATFORM", "cuda")
        .args(["run", "--yes", "--grace", "1", "-n", "8", "--repo"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().rev().find(|l| l.contains("done:")).unwrap();
    assert!(last.contains(EXPECTED), "final line: {last}");

    // results.tsv: the baseline, 8 experiments and the one retry, one row each.
    assert_eq!(results(dir.path()).len(), 10);

    // The config file changes after the session: the reports still say what ran.
    let toml = dir.path().join("autoresearch.toml");
    let edited = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("budget = \"1s\"", "budget = \"20s\"")
        .replace("max_iterations = 30", "max_iterations = 99");
    std::fs::write(&toml, edited).unwrap();

    let want = "- **Experiments:** 8 / 8 (3 kept, 4 discarded, 1 crashed; 1 OOM retry)";
    let status = report(dir.path(), &["status"]);
    assert_eq!(experiments_line(&status), want, "status");
    assert!(status.contains("- **Budget per run:** 1s"), "{status}");
    let progress = std::fs::read_to_string(dir.path().join(".autoresearch/progress.md")).unwrap();
    assert_eq!(experiments_line(&progress), want, "progress.md");

    report(dir.path(), &["summary"]);
    let summary = std::fs::read_to_string(dir.path().join("autoresearch-summary.md")).unwrap();
    assert_eq!(experiments_line(&summary), want, "summary");
    assert!(summary.contains("- **Budget per run:** 1s"), "{summary}");
    // Its sections count alike: the crash the OOM retry went on from is no failure.
    let failed = summary.split("## What didn't work").nth(1).unwrap();
    let failed = failed.split("## Recommended").next().unwrap();
    let sum = |word: &str| -> u64 {
        failed
            .lines()
            .filter(|l| l.starts_with("### "))
            .filter_map(|l| {
                let i = l.find(word)?;
                l[..i].rsplit(['(', ' ']).next()?.parse::<u64>().ok()
            })
            .sum()
    };
    assert_eq!((sum(" discarded"), sum(" crashed")), (4, 1), "{failed}");
    // And the keep rates: both categories kept something; their tries add up to the 8.
    let tried: u64 = summary
        .lines()
        .filter(|l| l.trim_start().starts_with("- ") && l.contains(" kept ("))
        .filter_map(|l| {
            l.split(" of ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert_eq!(tried, 8, "{summary}");

    let svg = std::fs::read_to_string(dir.path().join("progress.svg")).unwrap();
    assert!(
        svg.contains("Autoresearch Progress: 8 Experiments, 3 Kept Improvements"),
        "chart title"
    );
    // The session's own chart, redrawn after each experiment, says the same.
    let own = std::fs::read_to_string(dir.path().join(".autoresearch/progress.svg")).unwrap();
    assert!(own.contains("8 Experiments, 3 Kept Improvements"));
}

#[test]
fn a_resumed_session_counts_its_limit_from_what_is_on_record() {
    let dir = repo(&[
        (
            "train.py",
            &train_py("print(f'val_bpb: {1.0 + abs(LR - 0.3):.6f}')"),
        ),
        ("autoresearch.toml", &config("")),
    ]);
    let out = run(dir.path(), &["-n", "2"]);
    assert!(out.status.success(), "{}", text(&out));
    let first = report(dir.path(), &["status"]);
    assert!(experiments_line(&first).contains("2 / 2"), "{first}");
    // Two more on the same tag: the limit is the 2 on record plus 2.
    let out = run(dir.path(), &["-n", "2"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("done:") && stdout.contains("; 4 experiments ("),
        "{stdout}"
    );
    let again = report(dir.path(), &["status"]);
    assert!(
        experiments_line(&again).starts_with("- **Experiments:** 4 / 4 ("),
        "{again}"
    );
}

#[test]
fn run_summary_writes_the_summary_and_says_where_everything_is() {
    let dir = repo(&[
        (
            "train.py",
            &train_py("print(f'val_bpb: {1.0 + abs(LR - 0.3):.6f}')"),
        ),
        ("autoresearch.toml", &config("")),
    ]);
    let out = run(dir.path(), &["-n", "2", "--summary"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = dir.path().join("autoresearch-summary.md");
    assert!(
        stdout.contains(&format!("summary: {}", summary.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(".autoresearch/progress.png (and .svg)"),
        "{stdout}"
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("- **Experiments:** 2 / 2 ("), "{md}");
    assert!(dir.path().join("progress.png").exists());

    // With --json stdout stays events only, and the summary is still written.
    std::fs::remove_file(&summary).unwrap();
    let out = run(dir.path(), &["-n", "1", "--summary", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().all(|l| l.starts_with('{')), "{stdout}");
    assert!(summary.exists());
}

#[test]
fn a_hypothesis_without_an_llm_is_refused_in_one_line() {
    let dir = repo(&[
        ("train.py", &train_py("print(f'val_bpb: {1.0 + LR:.6f}')")),
        ("autoresearch.toml", &config("")),
    ]);
    let out = run(
        dir.path(),
        &["-n", "1", "--hypothesis", "a wider MLP helps"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("needs an LLM proposer"), "{err}");
    assert!(
        !dir.path().join(".autoresearch/journal.sqlite").exists(),
        "nothing started"
    );
}

#[test]
fn a_tracked_progress_png_is_never_overwritten() {
    let dir = repo(&[
        (
            "train.py",
            &train_py("print(f'val_bpb: {1.0 + abs(LR - 0.3):.6f}')"),
        ),
        ("autoresearch.toml", &config("")),
        ("progress.png", "karpathy's own chart"),
    ]);
    let out = run(dir.path(), &["-n", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = bin()
        .args(["summary", "--repo"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is tracked by git and is left alone"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("progress.png")).unwrap(),
        "karpathy's own chart"
    );
    assert!(dir.path().join("autoresearch-progress.png").exists());
    let md = std::fs::read_to_string(dir.path().join("autoresearch-summary.md")).unwrap();
    assert!(
        md.contains("![progress](autoresearch-progress.png)"),
        "{md}"
    );
    let out = bin()
        .args(["plot", "--repo"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("progress.png")).unwrap(),
        "karpathy's own chart"
    );
}

#[test]
fn repeats_of_a_pinned_seed_are_not_called_a_noise_estimate() {
    let train = "import random\nrandom.seed(42)\nLR = 0.1\nprint(f'val_bpb: {1.0 + abs(LR - 0.3) + random.random() * 1e-3:.6f}')\n";
    let toml = "editable = [\"train.py\"]\nread_only = [\"prepare.py\"]\ncommand = \"python3 train.py\"\nbudget = \"1s\"\ntimeout = \"20s\"\ntag = \"t\"\n\n[decision]\nmode = \"noise-aware\"\n\n[metric]\nname = \"val_bpb\"\ndirection = \"minimize\"\n";
    let dir = repo(&[("train.py", train), ("autoresearch.toml", toml)]);
    let out = run(dir.path(), &["-n", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("train.py:2 random.seed(42) pins the seed")
            && all.contains("not a noise estimate")
            && all.contains("random.seed(int(os.environ.get(\"AUTORESEARCH_SEED\", 42)))"),
        "{all}"
    );
    let status = report(dir.path(), &["status"]);
    let noise = status
        .lines()
        .find(|l| l.starts_with("- **Noise estimate:**"))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        noise.contains(
            "runs of one fixed seed (train.py:2 random.seed(42)) is not a noise estimate"
        ),
        "{noise}"
    );
    let table = report(dir.path(), &["export"]);
    assert!(
        table.contains("none: the runs repeat one fixed seed"),
        "{table}"
    );
    assert!(
        !table.contains(" [-") && !table.contains(" [+"),
        "no intervals: {table}"
    );
}

#[test]
fn a_hypothesis_reaches_the_llm_and_the_journal() {
    use llm_support::{Server, ok, openai_answer};
    let reply = || {
        ok(openai_answer(&llm_session_support::answer(
            "raise LR 0.1 -> 0.2",
            "LR = 0.1",
            "LR = 0.2",
        )))
    };
    let server = Server::start(vec![reply()]);
    let dir = llm_session_support::repo_with(&llm_session_support::openai_agent(&server.url, ""));
    let out = run(
        dir.path(),
        &["-n", "1", "--hypothesis", "a larger LR helps"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let reqs = server.received();
    let prompt = llm_session_support::last_user(&reqs[0].json());
    assert!(
        prompt.contains("## The researcher's hypothesis") && prompt.contains("a larger LR helps"),
        "{prompt}"
    );
    let conn = rusqlite::Connection::open(dir.path().join(".autoresearch/journal.sqlite")).unwrap();
    let h: String = conn
        .query_row("SELECT hypothesis FROM session_settings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(h, "a larger LR helps");
    report(dir.path(), &["summary"]);
    let md = std::fs::read_to_string(dir.path().join("autoresearch-summary.md")).unwrap();
    assert!(
        md.contains("- **Hypothesis tested first:** a larger LR helps"),
        "{md}"
    );
}

#[test]
fn max_iterations_counts_experiments_on_the_engine_too() {
    use llm_session_support::{answer, block_answer, openai_agent};
    use llm_support::{Server, ok, openai_answer};
    // A rejected proposal (it edits a read-only file), then two that run.
    let server = Server::start(vec![
        ok(openai_answer(&block_answer(
            "tune the budget",
            "prepare.py",
            "TIME_BUDGET = 300",
            "TIME_BUDGET = 900",
        ))),
        ok(openai_answer(&answer(
            "raise LR 0.1 -> 0.2",
            "LR = 0.1",
            "LR = 0.2",
        ))),
        // Prepared while the first runs, on the same parent: it changes another line.
        ok(openai_answer(&answer(
            "WIDTH 4 -> 8",
            "WIDTH = 4",
            "WIDTH = 8",
        ))),
    ]);
    let dir = repo(&[
        ("train.py", &llm_session_support::train_py()),
        ("program.md", "# Program\n"),
        (
            "autoresearch.toml",
            &config(&format!(
                "max_iterations = 2\n{}",
                openai_agent(&server.url, "")
            )),
        ),
    ]);
    let out = run(dir.path(), &["--workers", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().rev().find(|l| l.contains("done:")).unwrap();
    assert!(
        last.contains("max_iterations reached; 2 experiments ("),
        "{last}"
    );
    let status = report(dir.path(), &["status"]);
    assert!(experiments_line(&status).contains("2 / 2 ("), "{status}");
}
