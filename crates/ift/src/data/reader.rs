//! Reading a data file: a JSON array of records or JSON Lines, chosen by [`DataFormat`].

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{DataError, Location};
use super::records::Record;
use super::wire::parse_record;

/// The file's syntax. Record kinds are recognised per record from their keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    /// A file whose first non-blank character is `[` is a JSON array, otherwise JSON Lines.
    #[default]
    Auto,
    JsonArray,
    JsonLines,
}

/// Reads and parses every record of `path`; the first malformed record is an error naming its
/// file, line and field.
pub fn load_records(path: &Path, format: DataFormat) -> Result<Vec<Record>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_records(&text, path, format)
}

/// [`load_records`] on text already in memory; `path` is only used in errors.
pub fn parse_records(
    text: &str,
    path: &Path,
    format: DataFormat,
) -> Result<Vec<Record>, DataError> {
    // Editors on Windows may start a UTF-8 file with a byte-order mark, which JSON forbids.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let array = match format {
        DataFormat::Auto => text.trim_start().starts_with('['),
        DataFormat::JsonArray => true,
        DataFormat::JsonLines => false,
    };
    if array {
        parse_array(text, path)
    } else {
        parse_lines(text, path)
    }
}

fn parse_lines(text: &str, path: &Path) -> Result<Vec<Record>, DataError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|source| DataError::Json {
            path: path.to_path_buf(),
            line: i + 1,
            source,
        })?;
        let location = Location {
            path: path.to_path_buf(),
            line: i + 1,
            index: out.len(),
        };
        out.push(parse_record(value, location)?);
    }
    Ok(out)
}

fn parse_array(text: &str, path: &Path) -> Result<Vec<Record>, DataError> {
    let values: Vec<Value> = serde_json::from_str(text).map_err(|source| DataError::Json {
        path: path.to_path_buf(),
        line: source.line(),
        source,
    })?;
    let lines = element_lines(text);
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            let line = lines.get(index).copied().unwrap_or(0);
            parse_record(
                value,
                Location {
                    path: path.to_path_buf(),
                    line,
                    index,
                },
            )
        })
        .collect()
}

/// The 1-based line on which each top-level element of a (valid) JSON array starts, so that an
/// error in element `i` can name its line. A tiny scanner: it tracks only strings and nesting.
fn element_lines(text: &str) -> Vec<usize> {
    let (mut line, mut depth, mut in_string, mut escaped, mut expecting) =
        (1, 0usize, false, false, false);
    let mut out = Vec::new();
    for c in text.chars() {
        if c == '\n' {
            line += 1;
        }
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if depth == 1 && expecting && !c.is_whitespace() && c != ']' {
            out.push(line);
            expecting = false;
        }
        match c {
            '"' => in_string = true,
            '[' | '{' => {
                depth += 1;
                expecting = depth == 1;
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 1 => expecting = true,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_lines_skip_nested_brackets_and_strings() {
        let text = "[\n {\"a\": \"[,{\\\"\"},\n\n {\"b\": [1,\n 2]}, {\"c\": 3}\n]";
        assert_eq!(element_lines(text), vec![2, 4, 5]);
    }
}
