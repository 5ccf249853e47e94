//! Constrained output: the JSON schema a proposal is asked in (OpenAI `response_format:
//! {type: json_schema}`, which llama.cpp, vLLM, Ollama and LM Studio accept too, so that a
//! server with grammar-constrained decoding can only produce a well-formed proposal), and
//! reading such an answer into the same `Parsed` as the SEARCH/REPLACE format. An answer
//! that is not the JSON asked for is read as SEARCH/REPLACE text instead. Pure.

use crate::agent::edits::{self, Edit, Parsed};
use crate::experiment::Category;
use serde_json::{Value, json};
use std::path::PathBuf;

/// The categories a proposal may name.
const CATEGORIES: [&str; 6] = [
    "architecture",
    "optimizer",
    "hyperparameters",
    "training-dynamics",
    "data",
    "other",
];

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
        out.edits.push(if search.trim().is_empty() {
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
        });
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
