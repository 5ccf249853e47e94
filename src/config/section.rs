//! Typed, located reads of one TOML table (strings, integers, durations, relative paths),
//! and the unknown-key check. Reads only; what the values mean is decided in `load`.

use super::duration::{self, DurationError};
use super::error::{ConfigError, Location, invalid_at, nearest, one_line};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;
use toml_edit::{Item, TableLike, Value};

/// The config text and file, for turning byte spans into locations.
pub(super) struct Cx<'a> {
    pub file: &'a Path,
    pub text: &'a str,
}

impl Cx<'_> {
    pub(super) fn loc(&self, span: Option<Range<usize>>) -> Location {
        match span {
            Some(s) => Location::at(self.file, self.text, s.start),
            None => Location::file_only(self.file),
        }
    }
}

/// One table of the document with typed, located accessors.
pub(super) struct Section<'a> {
    pub cx: &'a Cx<'a>,
    pub table: &'a dyn TableLike,
    /// `""` for the top level, else the table name (used as a key prefix in messages).
    pub name: &'static str,
    /// Where the table starts, for errors about keys it lacks.
    pub header: Option<Range<usize>>,
}

impl<'a> Section<'a> {
    pub(super) fn here(&self) -> Location {
        self.cx.loc(self.header.clone())
    }

    fn full_key(&self, key: &str) -> String {
        if self.name.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.name)
        }
    }

    pub(super) fn check_keys(&self, valid: &'static [&'static str]) -> Result<(), ConfigError> {
        let mut unknown: Vec<(usize, &str, Location)> = self
            .table
            .iter()
            .filter(|(k, _)| !valid.contains(k))
            .map(|(k, item)| {
                let span = self
                    .table
                    .key(k)
                    .and_then(|key| key.span())
                    .or_else(|| item.span());
                let order = span.as_ref().map_or(usize::MAX, |s| s.start);
                (order, k, self.cx.loc(span))
            })
            .collect();
        unknown.sort_by_key(|u| u.0);
        match unknown.into_iter().next() {
            Some((_, key, at)) => Err(ConfigError::UnknownKey {
                at,
                key: one_line(key),
                table: self.name,
                suggestion: nearest(key, valid),
                valid,
            }),
            None => Ok(()),
        }
    }

    /// The item for `key` and where its value is (falling back to the key, then the table).
    pub(super) fn get(&self, key: &str) -> Option<(&'a Item, Location)> {
        let (k, item) = self.table.get_key_value(key)?;
        let span = item.span().or_else(|| k.span()).or(self.header.clone());
        Some((item, self.cx.loc(span)))
    }

    fn wrong(&self, key: &str, at: Location, expected: &'static str, item: &Item) -> ConfigError {
        ConfigError::WrongType {
            at,
            key: self.full_key(key),
            expected,
            found: article(item.type_name()),
        }
    }

    pub(super) fn invalid(&self, key: &str, problem: &str, fix: &str) -> ConfigError {
        let at = self.get(key).map_or_else(|| self.here(), |(_, at)| at);
        invalid_at(at, &self.full_key(key), problem, fix)
    }

    pub(super) fn table(
        &self,
        key: &'static str,
        valid: &'static [&'static str],
    ) -> Result<Option<Section<'a>>, ConfigError> {
        let Some((item, at)) = self.get(key) else {
            return Ok(None);
        };
        let Some(table) = item.as_table_like() else {
            return Err(self.wrong(key, at, "a table", item));
        };
        let header = item
            .span()
            .or_else(|| self.table.key(key).and_then(|k| k.span()));
        let section = Section {
            cx: self.cx,
            table,
            name: key,
            header,
        };
        section.check_keys(valid)?;
        Ok(Some(section))
    }

    pub(super) fn string(&self, key: &str) -> Result<Option<(String, Location)>, ConfigError> {
        let Some((item, at)) = self.get(key) else {
            return Ok(None);
        };
        match item.as_str() {
            Some(s) => Ok(Some((s.to_string(), at))),
            None => Err(self.wrong(key, at, "a string", item)),
        }
    }

    pub(super) fn int(&self, key: &str) -> Result<Option<(i64, Location)>, ConfigError> {
        let Some((item, at)) = self.get(key) else {
            return Ok(None);
        };
        match item.as_integer() {
            Some(n) => Ok(Some((n, at))),
            None => Err(self.wrong(key, at, "an integer", item)),
        }
    }

    pub(super) fn uint(&self, key: &str) -> Result<Option<u32>, ConfigError> {
        match self.int(key)? {
            Some((n, at)) => u32::try_from(n).map(Some).map_err(|_| {
                invalid_at(
                    at,
                    &self.full_key(key),
                    format!("is {n}"),
                    "use 0 or a positive integer",
                )
            }),
            None => Ok(None),
        }
    }

    /// A float; integers are accepted too (`z = 2`).
    pub(super) fn float(&self, key: &str) -> Result<Option<(f64, Location)>, ConfigError> {
        let Some((item, at)) = self.get(key) else {
            return Ok(None);
        };
        match (item.as_float(), item.as_integer()) {
            (Some(f), _) => Ok(Some((f, at))),
            (None, Some(n)) => Ok(Some((n as f64, at))),
            _ => Err(self.wrong(key, at, "a number", item)),
        }
    }

    /// A duration: a string like `"5m"` or integer seconds.
    pub(super) fn duration(
        &self,
        key: &str,
        expected: &'static str,
    ) -> Result<Option<(Duration, Location)>, ConfigError> {
        let Some((item, at)) = self.get(key) else {
            return Ok(None);
        };
        let parsed = match item.as_value() {
            Some(Value::String(s)) => duration::parse(s.value()),
            Some(Value::Integer(n)) => duration::from_int(*n.value()),
            // `budget = 1.5` means seconds, like the integer form.
            Some(Value::Float(f)) => duration::parse(&f.value().to_string()),
            _ => return Err(self.wrong(key, at, expected, item)),
        };
        parsed.map(|d| Some((d, at.clone()))).map_err(|e| {
            let fix = match e {
                DurationError::Zero | DurationError::Negative(_) => {
                    "a run needs a positive time, e.g. \"5m\""
                }
                _ => "write it like \"300\", \"20s\", \"5m\" or \"1h30m\"",
            };
            invalid_at(at, &self.full_key(key), e.to_string(), fix)
        })
    }

    /// A relative path inside the repository.
    pub(super) fn path(&self, key: &str) -> Result<Option<(PathBuf, Location)>, ConfigError> {
        match self.string(key)? {
            Some((s, at)) => Ok(Some((self.check_relative(key, &s, at.clone())?, at))),
            None => Ok(None),
        }
    }

    fn check_relative(&self, key: &str, s: &str, at: Location) -> Result<PathBuf, ConfigError> {
        let p = PathBuf::from(s);
        let inside = !s.is_empty()
            && p.components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside {
            return Err(invalid_at(
                at,
                &self.full_key(key),
                format!("has `{s}`, which is not a path inside the repository"),
                "use a path relative to the config's directory, e.g. \"train.py\"",
            ));
        }
        // `./train.py` and `train.py` are the same file; keep one spelling.
        Ok(p.components().filter(|c| *c != Component::CurDir).collect())
    }

    /// A list of strings, each with its own location.
    pub(super) fn string_list(
        &self,
        key: &str,
    ) -> Result<Option<Vec<(String, Location)>>, ConfigError> {
        self.strings(key, "a list of strings like [\".cache\"]")
    }

    /// The strings of an array value, each with its own location; `expected` names the
    /// shape in a wrong-type error.
    fn strings(
        &self,
        key: &str,
        expected: &'static str,
    ) -> Result<Option<Vec<(String, Location)>>, ConfigError> {
        let Some((item, at)) = self.get(key) else {
            return Ok(None);
        };
        let Some(array) = item.as_array() else {
            return Err(self.wrong(key, at, expected, item));
        };
        let mut out = Vec::new();
        for v in array.iter() {
            let vat = self.cx.loc(v.span().or(item.span()));
            let Some(s) = v.as_str() else {
                return Err(ConfigError::WrongType {
                    at: vat,
                    key: self.full_key(key),
                    expected,
                    found: article(v.type_name()),
                });
            };
            out.push((s.to_string(), vat));
        }
        Ok(Some(out))
    }

    /// A list of relative paths, each with its own location.
    pub(super) fn path_list(
        &self,
        key: &str,
    ) -> Result<Option<Vec<(PathBuf, Location)>>, ConfigError> {
        let Some(items) = self.strings(key, "a list of paths like [\"train.py\"]")? else {
            return Ok(None);
        };
        let mut out: Vec<(PathBuf, Location)> = Vec::new();
        for (s, vat) in items {
            let p = self.check_relative(key, &s, vat.clone())?;
            if !out.iter().any(|(q, _)| *q == p) {
                out.push((p, vat));
            }
        }
        Ok(Some(out))
    }
}

fn article(type_name: &'static str) -> &'static str {
    match type_name {
        "string" => "a string",
        "integer" => "an integer",
        "float" => "a float",
        "boolean" => "a boolean",
        "array" => "a list",
        "table" | "inline table" => "a table",
        "array of tables" => "an array of tables",
        "offset datetime" | "local datetime" | "local date" | "local time" | "datetime" => {
            "a date/time"
        }
        other => other,
    }
}
