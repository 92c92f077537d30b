//! JSON text formatted as Python's `json.dumps(..., ensure_ascii=False)`: `", "` and `": "`
//! separators without indent, `","` + newline with one; keys in insertion order.

use std::io;

use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter, Serializer};

/// Separators of `json.dumps` without `indent`.
struct PythonCompact;

impl Formatter for PythonCompact {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

pub(crate) fn to_python_json<T: Serialize + ?Sized>(
    value: &T,
    indent: Option<usize>,
) -> serde_json::Result<String> {
    let mut out = Vec::new();
    match indent {
        None => value.serialize(&mut Serializer::with_formatter(&mut out, PythonCompact))?,
        Some(n) => {
            let pad = vec![b' '; n];
            value.serialize(&mut Serializer::with_formatter(
                &mut out,
                PrettyFormatter::with_indent(&pad),
            ))?
        }
    }
    // serde_json writes only valid UTF-8.
    Ok(String::from_utf8(out).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_python_json_dumps() {
        // python3 -c 'import json; print(json.dumps({"b": [1, "é<"], "a": {}}, ensure_ascii=False))'
        let v = serde_json::json!({"b": [1, "é<"], "a": {}});
        let m = minijinja::Value::from_serialize(&v);
        let s = to_python_json(&m, None).unwrap();
        // serde_json's own Value sorts keys; Python keeps insertion order, so only check shape.
        assert!(
            s == r#"{"a": {}, "b": [1, "é<"]}"# || s == r#"{"b": [1, "é<"], "a": {}}"#,
            "{s}"
        );
        assert_eq!(to_python_json(&m, Some(2)).unwrap().lines().count(), 7);
    }
}
