//! Constrained output: the JSON schema a proposal is asked in (OpenAI `response_format:
//! {type: json_schema}`, which llama.cpp, vLLM, Ollama and LM Studio accept too, so that a
//! server with grammar-constrained decoding can only produce a well-formed proposal), and
//! reading such an answer into the same `Parsed` as the SEARCH/REPLACE format. An answer
//! that is not the JSON asked for is read as SEARCH/REPLACE text instead. Pure.
//!
//! Where the server can take it, each edit's `search` is constrained to an `enum` of the
//! file's lines (see [`line_choices`]): a small model's answer then always names text that
//! is in the file, and only its `replace` can be wrong.

use crate::agent::edits::{self, Edit, Parsed};
use crate::experiment::Category;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// OpenAI's documented limits on one `enum` in strict mode: at most 500 values, and at most
/// 7,500 characters in all when there are more than 250. Servers on this machine
/// (llama.cpp, Ollama, vLLM, LM Studio) compile any size into their grammar.
const ENUM_MAX_VALUES: usize = 500;
const ENUM_MANY_VALUES: usize = 250;
const ENUM_MAX_CHARS: usize = 7_500;
/// Edits one answer may hold when each is one line: a small model repeats an edit until
/// its `max_tokens` otherwise (SmolLM2-135M wrote the same line five times).
pub const MAX_LINE_EDITS: usize = 6;

/// The categories a proposal may name.
const CATEGORIES: [&str; 6] = [
    "architecture",
    "optimizer",
    "hyperparameters",
    "training-dynamics",
    "data",
    "other",
];

/// The lines of `text` an edit's `search` may be: every line that is not blank and occurs
/// exactly once (a repeated line would not say where to edit), in file order.
pub fn line_choices(text: &str) -> Vec<String> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for l in text.lines() {
        *count.entry(l).or_default() += 1;
    }
    text.lines()
        .filter(|l| !l.trim().is_empty() && count.get(l) == Some(&1))
        .map(str::to_string)
        .collect()
}

/// Whether `choices` fit OpenAI's limits on one enum (see [`ENUM_MAX_VALUES`]).
pub fn fits_strict_limits(choices: &[String]) -> bool {
    let chars: usize = choices.iter().map(|c| c.chars().count()).sum();
    choices.len() <= ENUM_MAX_VALUES
        && (choices.len() <= ENUM_MANY_VALUES || chars <= ENUM_MAX_CHARS)
}

/// The schema of one proposal, each edit's `search` one of its file's lines: one `anyOf`
/// branch per editable file (`files`: their current text; a file with no line to choose
/// keeps a free `search`).
pub fn schema_with_lines(paths: &[PathBuf], files: &BTreeMap<PathBuf, String>) -> Value {
    let branches: Vec<Value> = paths
        .iter()
        .map(|p| {
            let choices = files.get(p).map(|t| line_choices(t)).unwrap_or_default();
            let search = if choices.is_empty() {
                json!({"type": "string"})
            } else {
                json!({"type": "string", "enum": choices})
            };
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "enum": [p.display().to_string()]},
                    "search": search,
                    "replace": {"type": "string"}
                },
                "required": ["path", "search", "replace"],
                "additionalProperties": false
            })
        })
        .collect();
    let mut s = schema(paths);
    s["properties"]["edits"]["maxItems"] = json!(MAX_LINE_EDITS);
    s["properties"]["edits"]["items"] = if branches.len() == 1 {
        branches.into_iter().next().unwrap_or_default()
    } else {
        json!({"anyOf": branches})
    };
    s
}

/// The schema of one proposal; `paths`: the editable files (an edit names one of them).
pub fn schema(paths: &[PathBuf]) -> Value {
    let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    json!({
        "type": "object",
        "properties": {
            "description": {"type": "string"},
            "category": {"type": "string", "enum": CATEGORIES},
            "scratchpad": {"type": "string"},
            "edits": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "enum": paths},
                        "search": {"type": "string"},
                        "replace": {"type": "string"}
                    },
                    "required": ["path", "search", "replace"],
                    "additionalProperties": false
                }
            }
        },
        // Strict mode wants every property required; an empty scratchpad is fine.
        "required": ["description", "category", "scratchpad", "edits"],
        "additionalProperties": false
    })
}

/// Chat Completions' `response_format` for `schema`.
pub fn response_format(schema: &Value) -> Value {
    json!({
        "type": "json_schema",
        "json_schema": {"name": "proposal", "strict": true, "schema": schema}
    })
}

/// Reads an answer given in the schema (the object alone, or inside a code fence or
/// prose); anything else is read as SEARCH/REPLACE text.
pub fn parse(text: &str) -> Result<Parsed, edits::ParseError> {
    match from_json(text) {
        Some(p) => Ok(p),
        None => edits::parse(text),
    }
}

fn from_json(text: &str) -> Option<Parsed> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    let v: Value = serde_json::from_str(text.get(start..=end)?).ok()?;
    let list = v.get("edits")?.as_array()?;
    let mut out = Parsed::default();
    for e in list {
        let path = PathBuf::from(e.get("path")?.as_str()?.trim());
        let search = e.get("search").and_then(Value::as_str).unwrap_or("");
        let replace = e.get("replace").and_then(Value::as_str).unwrap_or("");
        let edit = if search.trim().is_empty() {
            Edit::WholeFile {
                path,
                contents: with_newline(replace),
            }
        } else {
            Edit::Replace {
                path,
                search: with_newline(search),
                replace: with_newline(replace),
            }
        };
        // The same edit twice is one edit (not two that overlap).
        if !out.edits.contains(&edit) {
            out.edits.push(edit);
        }
    }
    let text_of = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    out.description = text_of("description").map(|d| d.lines().next().unwrap_or("").to_string());
    out.category = text_of("category").map(|c| Category::parse(&c).ok_or(c));
    out.scratchpad = text_of("scratchpad").map(|s| {
        let mut cut = s.len().min(edits::SCRATCHPAD_MAX_BYTES);
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s[..cut].to_string()
    });
    Some(out)
}

/// Lines as the SEARCH/REPLACE format has them: each ends with a newline.
fn with_newline(s: &str) -> String {
    if s.is_empty() || s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_proposal_reads_like_blocks() {
        let text = r#"```json
{"description": "raise LR 0.04 -> 0.08\nsecond line", "category": "hyperparameters", "scratchpad": "",
 "edits": [{"path": "train.py", "search": "LR = 0.04", "replace": "LR = 0.08"},
           {"path": "model.py", "search": "", "replace": "X = 1"}]}
```"#;
        let p = parse(text).unwrap();
        assert_eq!(p.description.as_deref(), Some("raise LR 0.04 -> 0.08"));
        assert_eq!(p.category, Some(Ok(Category::Hyperparameters)));
        assert_eq!(p.scratchpad, None);
        assert_eq!(
            p.edits,
            [
                Edit::Replace {
                    path: "train.py".into(),
                    search: "LR = 0.04\n".into(),
                    replace: "LR = 0.08\n".into()
                },
                Edit::WholeFile {
                    path: "model.py".into(),
                    contents: "X = 1\n".into()
                }
            ]
        );
    }

    #[test]
    fn anything_else_is_read_as_blocks() {
        let blocks = "train.py\n<<<<<<< SEARCH\nLR = 0.04\n=======\nLR = 0.08\n>>>>>>> REPLACE\n";
        assert_eq!(parse(blocks).unwrap().edits.len(), 1);
        assert!(parse("{not json").unwrap().edits.is_empty());
        assert!(parse(r#"{"edits": "none"}"#).unwrap().edits.is_empty());
    }

    #[test]
    fn search_is_one_of_the_lines_that_occur_once() {
        let text = "LR = 0.1\n\n    return x\nWIDTH = 4\n    return x\n";
        assert_eq!(line_choices(text), ["LR = 0.1", "WIDTH = 4"]);
        let files = BTreeMap::from([
            (PathBuf::from("train.py"), text.to_string()),
            (PathBuf::from("model.py"), "DIM = 8\n".to_string()),
        ]);
        let one = schema_with_lines(&["train.py".into()], &files);
        let item = &one["properties"]["edits"]["items"];
        assert_eq!(
            item["properties"]["search"]["enum"],
            json!(["LR = 0.1", "WIDTH = 4"])
        );
        assert_eq!(item["properties"]["path"]["enum"], json!(["train.py"]));
        let two = schema_with_lines(&["train.py".into(), "model.py".into()], &files);
        let any = two["properties"]["edits"]["items"]["anyOf"]
            .as_array()
            .unwrap();
        assert_eq!(any.len(), 2);
        assert_eq!(any[1]["properties"]["search"]["enum"], json!(["DIM = 8"]));
        assert_eq!(
            item.get("maxItems"),
            None,
            "the bound is on the list, not on an item"
        );
        assert_eq!(
            one["properties"]["edits"]["maxItems"],
            json!(MAX_LINE_EDITS)
        );
        // A parsed answer in this schema is an edit of a line that is in the file; the
        // same edit repeated is one.
        let p = parse(r#"{"description": "d", "category": "other", "scratchpad": "", "edits": [{"path": "train.py", "search": "WIDTH = 4", "replace": "WIDTH = 8"}, {"path": "train.py", "search": "WIDTH = 4", "replace": "WIDTH = 8"}]}"#).unwrap();
        assert_eq!(p.edits.len(), 1);
        let new = edits::apply(&files, &p.edits, &["train.py".into()]).unwrap();
        assert!(new[&PathBuf::from("train.py")].contains("WIDTH = 8\n"));
    }

    #[test]
    fn big_enums_are_kept_for_servers_that_take_them() {
        let short: Vec<String> = (0..400).map(|i| format!("X{i} = 1")).collect();
        assert!(fits_strict_limits(&short), "400 values, 3k chars");
        let long: Vec<String> = (0..300).map(|i| format!("{i:040}")).collect();
        assert!(!fits_strict_limits(&long), "300 values, 12k chars");
        let many: Vec<String> = (0..501).map(|i| i.to_string()).collect();
        assert!(!fits_strict_limits(&many));
    }

    #[test]
    fn the_schema_names_the_editable_files_and_requires_everything() {
        let s = schema(&["train.py".into()]);
        assert_eq!(
            s["properties"]["edits"]["items"]["properties"]["path"]["enum"],
            json!(["train.py"])
        );
        assert_eq!(s["required"].as_array().unwrap().len(), 4);
        let f = response_format(&s);
        assert_eq!(f["type"], "json_schema");
        assert_eq!(f["json_schema"]["strict"], true);
    }
}
