//! End-to-end: `autoresearch run` with `[agent] backend = "openai"` against a real HTTP
//! server on 127.0.0.1 speaking Chat Completions, scripted per request. Asserts what the
//! binary leaves behind: journal rows and reasons, results.tsv, the branch, a clean tree.

mod common;
mod llm_session_support;
mod llm_support;

use common::{dirty, git, results, survivors, text};
use llm_session_support::*;
use llm_support::{Reply, Server, ok, openai_answer};

const LR_UP: (&str, &str) = ("LR = 0.1", "LR = 0.2");

fn good() -> Reply {
    ok(openai_answer(&answer(
        "raise LR 0.1 -> 0.2",
        LR_UP.0,
        LR_UP.1,
    )))
}

#[test]
fn an_improvement_is_kept_and_a_regression_discarded() {
    let server = Server::start(vec![
        good(),
        ok(openai_answer(&answer(
            "lower LR 0.2 -> 0.05",
            "LR = 0.2",
            "LR = 0.05",
        ))),
    ]);
    let dir = repo_with(&openai_agent(&server.url, ""));
    let out = run_n(dir.path(), 2, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = rows(dir.path());
    assert_eq!(
        shape(&rows),
        [(0, 1, "keep"), (1, 1, "keep"), (2, 1, "discard")]
    );
    assert_eq!(rows[1].description, "raise LR 0.1 -> 0.2");
    assert_eq!(rows[1].metric, Some(1.04));
    assert!(
        rows[2].reason.contains("1.040000 → 1.122500"),
        "{:?}",
        rows[2]
    );
    assert_eq!(rows[1].proposer, "openai:test-model");
    // Usage of each answer is on its experiment (900 prompt, 80 completion tokens).
    assert_eq!(rows[1].metrics["autoresearch_tokens_in"], 900.0);
    assert_eq!(rows[1].metrics["autoresearch_tokens_out"], 80.0);
    let tsv = results(dir.path());
    let cols: Vec<(&str, &str)> = tsv.iter().map(|r| (r[1].as_str(), r[3].as_str())).collect();
    assert_eq!(
        cols,
        [
            ("1.090000", "keep"),
            ("1.040000", "keep"),
            ("1.122500", "discard")
        ]
    );
    // The branch is at the kept commit, the tree clean, train.py as kept.
    assert_eq!(head(dir.path()), rows[1].commit);
    assert!(file(dir.path(), "train.py").starts_with("LR = 0.2\n"));
    assert_eq!(dirty(dir.path()), "");
    // The wire: the endpoint, the model, and the second prompt knows the first result.
    let reqs = server.received();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/v1/chat/completions");
    assert_eq!(reqs[0].json()["model"], "test-model");
    assert_eq!(reqs[0].header("authorization"), None, "no key, no header");
    let second = last_user(&reqs[1].json());
    assert!(second.contains("raise LR 0.1 -> 0.2"), "{second}");
    assert!(
        second.contains("LR = 0.2"),
        "the prompt shows the kept file"
    );
    // The prompt of each experiment is saved beside its runs.
    let prompts = std::fs::read_dir(dir.path().join(".autoresearch/runs"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path().join("prompt.md")).ok())
        .collect::<Vec<_>>();
    assert_eq!(prompts.len(), 2, "one prompt.md per experiment");
    assert!(prompts.iter().all(|p| p.contains("Make val_bpb go down.")));
    assert!(survivors(dir.path()).is_empty());
}

#[test]
fn bad_answers_are_recorded_as_rejections_and_the_loop_goes_on() {
    let prepare_before = common::PREPARE;
    let server = Server::start(vec![
        ok(openai_answer(&block_answer(
            "shorter budget",
            "prepare.py",
            "TIME_BUDGET = 300",
            "TIME_BUDGET = 1",
        ))),
        ok(openai_answer(
            "I think raising the learning rate would help. Let me know if you want me to try it!",
        )),
        ok(openai_answer("")),
        ok(openai_answer(
            "\u{0}\u{1}\u{7f}\u{fffd}\u{fffd}PK\u{3}\u{4}\u{14}\u{0}\u{8}\u{0}\u{0}ÿØÿà\u{10}JFIF",
        )),
        good(),
    ]);
    let dir = repo_with(&openai_agent(&server.url, ""));
    let out = run_n(dir.path(), 1, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = rows(dir.path());
    assert_eq!(
        shape(&rows),
        [
            (0, 1, "keep"),
            (1, 1, "rejected"),
            (2, 1, "rejected"),
            (3, 1, "rejected"),
            (4, 1, "rejected"),
            (5, 1, "keep"),
        ],
        "each answer is a numbered iteration; -n counts the one that ran: {rows:#?}"
    );
    let reasons: Vec<&str> = rows[1..5].iter().map(|r| r.reason.as_str()).collect();
    assert!(
        reasons[0].contains("prepare.py") && reasons[0].contains("not editable"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("no edit blocks"), "{reasons:?}");
    assert!(reasons[2].contains("empty answer"), "{reasons:?}");
    assert!(reasons[3].contains("no edit blocks"), "{reasons:?}");
    // Rejections never ran: no commit, no log, not in results.tsv.
    assert!(
        rows[1..5]
            .iter()
            .all(|r| r.commit.is_empty() && r.log_path.is_none())
    );
    let tsv = results(dir.path());
    assert_eq!(tsv.len(), 2, "baseline and the kept experiment");
    assert_eq!(file(dir.path(), "prepare.py"), prepare_before);
    assert_eq!(head(dir.path()), rows[5].commit);
    assert_eq!(dirty(dir.path()), "");
    assert_eq!(git(dir.path(), &["status", "--porcelain"]), "");
    assert_eq!(server.received().len(), 5);
}
