//! Parsing, stepping and formatting of numeric constants, and the constants found in a
//! karpathy-shaped train.py.

mod search_support;

use autoresearch::agent::search::{Dir, Notation, Number, category_of, find_constants};
use autoresearch::experiment::Category;
use search_support::fixture;

fn num(s: &str) -> Number {
    Number::parse(s).unwrap_or_else(|| panic!("{s} should parse"))
}

fn up(s: &str, level: usize) -> Option<String> {
    num(s).step(Dir::Up, level)
}

fn down(s: &str, level: usize) -> Option<String> {
    num(s).step(Dir::Down, level)
}

#[test]
fn parses_every_number_form() {
    let cases: &[(&str, f64)] = &[
        ("8", 8.0),
        ("1_000", 1000.0),
        ("0", 0.0),
        ("0.04", 0.04),
        (".5", 0.5),
        ("3.", 3.0),
        ("3e-4", 3e-4),
        ("1E-3", 1e-3),
        ("1.5e+2", 150.0),
        ("2**19", 524_288.0),
        ("2 ** 10", 1024.0),
        ("-1", -1.0),
        ("-0.5", -0.5),
        ("-2**3", -8.0),
    ];
    for &(text, value) in cases {
        let n = num(text);
        assert_eq!(n.value, value, "{text}");
        assert_eq!(n.text, text);
    }
    assert!(matches!(
        num("8").notation,
        Notation::Int { underscores: false }
    ));
    assert!(matches!(
        num("1_000").notation,
        Notation::Int { underscores: true }
    ));
    assert!(matches!(
        num("3e-4").notation,
        Notation::Sci { upper: false, .. }
    ));
    assert!(matches!(
        num("1E-3").notation,
        Notation::Sci { upper: true, .. }
    ));
    assert!(matches!(
        num(".5").notation,
        Notation::Plain {
            leading_zero: false,
            trailing_dot: false
        }
    ));
    assert!(matches!(
        num("3.").notation,
        Notation::Plain {
            leading_zero: true,
            trailing_dot: true
        }
    ));
    assert!(matches!(
        num("2**19").notation,
        Notation::Pow {
            base: 2,
            exp: 19,
            ..
        }
    ));
    assert!(num("0.0").is_float() && !num("0").is_float());
}

#[test]
fn rejects_what_is_not_a_number() {
    for text in [
        "(0.8, 0.95)",
        "\"SSSL\"",
        "True",
        "None",
        "DEPTH * 64",
        "2**DEPTH",
        "1__000",
        "_1",
        "1_",
        "1e",
        ".",
        "0x10",
        "1j",
        "3 + 4",
        "-",
        "",
        "1.2.3",
        "2**-1",
    ] {
        assert!(Number::parse(text).is_none(), "{text:?} should not parse");
    }
}

#[test]
fn coarse_steps_keep_the_notation() {
    assert_eq!(up("0.04", 0).as_deref(), Some("0.08"));
    assert_eq!(down("0.04", 0).as_deref(), Some("0.02"));
    assert_eq!(up("3e-4", 0).as_deref(), Some("6e-4"));
    assert_eq!(down("3e-4", 0).as_deref(), Some("1.5e-4"));
    assert_eq!(up("6e-4", 0).as_deref(), Some("1.2e-3"));
    assert_eq!(up("1E-3", 0).as_deref(), Some("2E-3"));
    assert_eq!(up("1.0e+5", 0).as_deref(), Some("2.0e+5"));
    assert_eq!(up(".5", 0).as_deref(), Some("1.0"));
    assert_eq!(down(".5", 0).as_deref(), Some(".25"));
    assert_eq!(up("3.", 0).as_deref(), Some("6."));
    assert_eq!(down("3.", 0).as_deref(), Some("1.5"));
    assert_eq!(up("-0.5", 0).as_deref(), Some("-1.0"));
    assert_eq!(up("2**19", 0).as_deref(), Some("2**20"));
    assert_eq!(down("2**19", 0).as_deref(), Some("2**18"));
    assert_eq!(up("2 ** 10", 0).as_deref(), Some("2 ** 11"));
    assert_eq!(up("1_000", 0).as_deref(), Some("2_000"));
    assert_eq!(up("512_000", 0).as_deref(), Some("1_024_000"));
    assert_eq!(up("8", 0).as_deref(), Some("16"));
    assert_eq!(down("8", 0).as_deref(), Some("4"));
    assert_eq!(
        down("5", 0).as_deref(),
        Some("3"),
        "5/2 rounds half away from zero"
    );
    assert_eq!(up("-8", 0).as_deref(), Some("-16"));
    assert_eq!(up("128", 0).as_deref(), Some("256"));
}

#[test]
fn small_ints_step_by_one_and_never_below_one() {
    assert_eq!(up("3", 0).as_deref(), Some("4"));
    assert_eq!(down("3", 0).as_deref(), Some("2"));
    assert_eq!(down("2", 0).as_deref(), Some("1"));
    assert_eq!(down("1", 0), None);
    assert_eq!(up("1", 0).as_deref(), Some("2"));
    assert_eq!(up("0", 0).as_deref(), Some("1"));
    assert_eq!(down("0", 0), None);
    assert_eq!(down("-1", 0), None);
    assert_eq!(down("2**1", 0), None);
}

#[test]
fn zero_floats_move_to_a_small_positive_value() {
    assert_eq!(up("0.0", 0).as_deref(), Some("0.1"));
    assert_eq!(down("0.0", 0).as_deref(), Some("0.05"));
    assert_eq!(up("0.0", 1), None);
    assert_eq!(up("0e0", 0).as_deref(), Some("1e-1"));
}

#[test]
fn fine_steps_are_clean() {
    assert_eq!(up("0.04", 1).as_deref(), Some("0.06"));
    assert_eq!(down("0.04", 1).as_deref(), Some("0.02667"));
    assert_eq!(up("0.04", 2).as_deref(), Some("0.05"));
    assert_eq!(down("0.04", 2).as_deref(), Some("0.032"));
    assert_eq!(
        up("0.2", 1).as_deref(),
        Some("0.3"),
        "no 0.30000000000000004"
    );
    assert_eq!(up("3e-4", 1).as_deref(), Some("4.5e-4"));
    assert_eq!(up("8", 1).as_deref(), Some("12"));
    assert_eq!(down("8", 1).as_deref(), Some("5"));
    assert_eq!(up("8", 2).as_deref(), Some("10"));
    assert_eq!(down("8", 2).as_deref(), Some("6"));
    assert_eq!(up("2**19", 1), None, "a power only moves its exponent");
}

#[test]
fn formatting_round_trips() {
    for text in [
        "0.04", "0.6", "0.004", ".5", "3.", "1.5", "-0.25", "3e-4", "1E-3", "1.5e-4", "2.0e+5",
        "0.1", "1000.0", "0.0001",
    ] {
        let n = num(text);
        assert_eq!(n.render_float(n.value).as_deref(), Some(text), "{text}");
    }
    // Stepping up then down comes back to the same literal.
    for text in [
        "0.04", "3e-4", "8", "1_000", "2**19", "0.6", "1E-3", ".25", "12",
    ] {
        let there = up(text, 0).unwrap();
        let back = num(&there).step(Dir::Down, 0).unwrap();
        assert_eq!(back, text, "{text} → {there} → {back}");
    }
    // Doubling many times stays short.
    let mut s = "0.1".to_string();
    for _ in 0..10 {
        s = num(&s).step(Dir::Up, 0).unwrap();
    }
    assert_eq!(s, "102.4");
}

#[test]
fn categories_follow_the_name() {
    let cases = [
        ("MATRIX_LR", Category::Optimizer),
        ("EMBEDDING_LR", Category::Optimizer),
        ("ADAM_BETAS", Category::Optimizer),
        ("WEIGHT_DECAY", Category::Optimizer),
        ("MOMENTUM", Category::Optimizer),
        ("ADAM_EPS", Category::Optimizer),
        ("DEPTH", Category::Architecture),
        ("N_LAYERS", Category::Architecture),
        ("HEAD_DIM", Category::Architecture),
        ("ASPECT_RATIO", Category::Architecture),
        ("MODEL_WIDTH", Category::Architecture),
        ("CONTEXT_LEN", Category::Architecture),
        ("WARMUP_RATIO", Category::TrainingDynamics),
        ("WARMDOWN_RATIO", Category::TrainingDynamics),
        ("LR_DECAY_STEPS", Category::TrainingDynamics),
        ("GRAD_CLIP", Category::TrainingDynamics),
        ("TOTAL_BATCH_SIZE", Category::Hyperparameters),
        ("TOTAL_STEPS", Category::Hyperparameters),
        ("SEED", Category::Hyperparameters),
    ];
    for (name, cat) in cases {
        assert_eq!(category_of(name), cat, "{name}");
    }
}

#[test]
fn finds_the_constants_of_a_karpathy_shaped_file() {
    let text = fixture();
    let found = find_constants(&text);
    let names: Vec<&str> = found.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ASPECT_RATIO",
            "HEAD_DIM",
            "TOTAL_BATCH_SIZE",
            "EMBEDDING_LR",
            "UNEMBEDDING_LR",
            "MATRIX_LR",
            "SCALAR_LR",
            "WEIGHT_DECAY",
            "ADAM_EPS",
            "WARMUP_RATIO",
            "WARMDOWN_RATIO",
            "FINAL_LR_FRAC",
            "GRAD_CLIP",
            "DEPTH",
            "DEVICE_BATCH_SIZE",
            "LOG_EVERY",
            "SEED",
        ]
    );
    // Skipped: tuple, string, boolean, expressions, docstring, call arguments, indented.
    for skipped in [
        "ADAM_BETAS",
        "WINDOW_PATTERN",
        "USE_COMPILE",
        "MODEL_DIM",
        "EVAL_TOKENS",
        "DOC_CONSTANT",
        "LIKE_A_CONSTANT",
        "WARM",
        "STEPS",
        "MATRIX_LR_OVERRIDE",
        "DEPTH_FOR_MAIN",
    ] {
        assert!(!names.contains(&skipped), "{skipped} should be skipped");
    }
    let batch = &found[2];
    assert_eq!(batch.number.text, "2**19");
    assert_eq!(&text[batch.span.clone()], "2**19");
    assert_eq!(
        batch.comment.as_deref(),
        Some("# about half a million tokens per step")
    );
    assert_eq!(batch.category, Category::Hyperparameters);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[batch.line],
        "TOTAL_BATCH_SIZE = 2**19 # about half a million tokens per step"
    );
    let eps = found.iter().find(|c| c.name == "ADAM_EPS").unwrap();
    assert_eq!(eps.comment, None);
    assert_eq!(eps.number.value, 1e-8);
    let seed = found.iter().find(|c| c.name == "SEED").unwrap();
    assert_eq!(seed.number.int, Some(1337));
}

#[test]
fn skips_reassigned_names_and_handles_crlf() {
    let text = "LR = 0.1\r\nDEPTH = 4\r\nLR = 0.2\r\nX = 'a # b'\r\n";
    let found = find_constants(text);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, "DEPTH");
    assert_eq!(&text[found[0].span.clone()], "4");
    // A continued line and a lowercase or indented name are not constants.
    let text = "TOTAL = 1 + \\\n2\nB = \\\n3\nlr = 0.1\n  C = 2\nD=5\n";
    let names: Vec<String> = find_constants(text).into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["D"]);
}
