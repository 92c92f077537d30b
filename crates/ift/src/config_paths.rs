//! Where a run config's relative paths point: a path written in the config
//! file is relative to that file's folder (as Cargo reads its manifests), so
//! a config runs the same from any working directory; a path given with
//! `--set` is relative to the working directory, like any command-line path.
//! Both become absolute before the config is used, so the resolved copy
//! written into the run directory (what `--resume` reads) stays valid
//! wherever the run is resumed from.

use std::path::{Path, PathBuf};

use crate::eval::tasks::parse_task_spec;

/// The keys whose value is a path, as (section, key).
const PATH_KEYS: [(&str, &str); 7] = [
    ("model", "path"),
    ("model", "adapter"),
    ("data", "train"),
    ("data", "eval"),
    ("objective", "reference"),
    ("train", "output_dir"),
    ("train", "reference_cache"),
];

/// `train.eval_tasks`: a list of `FILE[:kind]` specs.
const TASKS: (&str, &str) = ("train", "eval_tasks");

/// Makes the relative paths of `table` absolute, relative to `base`.
pub(crate) fn anchor_table(table: &mut toml::Table, base: &Path) {
    for (section, key) in PATH_KEYS.iter().chain([&TASKS]) {
        anchor_key(table, section, key, base);
    }
}

/// Makes the path under `section.key` absolute, relative to `base`; values
/// of the wrong type are left for the typed parse to report.
pub(crate) fn anchor_key(table: &mut toml::Table, section: &str, key: &str, base: &Path) {
    let Some(value) = table
        .get_mut(section)
        .and_then(toml::Value::as_table_mut)
        .and_then(|t| t.get_mut(key))
    else {
        return;
    };
    if (section, key) == TASKS {
        if let toml::Value::Array(specs) = value {
            for spec in specs.iter_mut() {
                if let toml::Value::String(s) = spec {
                    *s = anchor_task(s, base);
                }
            }
        }
    } else if PATH_KEYS.contains(&(section, key)) {
        if let toml::Value::String(s) = value {
            *s = anchor(Path::new(s.as_str()), base).display().to_string();
        }
    }
}

/// `FILE[:kind]` with FILE anchored and the kind kept.
fn anchor_task(spec: &str, base: &Path) -> String {
    let (path, kind) = parse_task_spec(spec);
    let anchored = anchor(&path, base).display().to_string();
    match kind {
        // The kind suffix is exactly what followed the last colon.
        Some(_) => format!("{anchored}{}", &spec[path.as_os_str().len()..]),
        None => anchored,
    }
}

/// `path` itself when absolute or empty (empty means "unset" and is reported
/// as such), else `base/path`.
fn anchor(path: &Path, base: &Path) -> PathBuf {
    if path.is_absolute() || path.as_os_str().is_empty() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// The absolute folder of `file`, for anchoring its paths.
pub(crate) fn folder_of(file: &Path) -> PathBuf {
    let parent = file.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = parent.unwrap_or(Path::new("."));
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// The working directory, for anchoring `--set` paths.
pub(crate) fn working_dir() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn relative_paths_join_the_base_and_absolute_ones_stay() {
        let mut t = table(
            "[model]\npath = \"m\"\n[data]\ntrain = \"/abs/t.json\"\neval = \"../e.json\"\n\
             [train]\noutput_dir = \"runs/x\"\neval_tasks = [\"a.jsonl\", \"b.jsonl:generation\", \"/c.jsonl:schema\"]\n",
        );
        anchor_table(&mut t, Path::new("/cfg"));
        let get = |s: &str, k: &str| t[s][k].clone();
        assert_eq!(get("model", "path").as_str(), Some("/cfg/m"));
        assert_eq!(get("data", "train").as_str(), Some("/abs/t.json"));
        assert_eq!(get("data", "eval").as_str(), Some("/cfg/../e.json"));
        assert_eq!(get("train", "output_dir").as_str(), Some("/cfg/runs/x"));
        let tasks: Vec<_> = get("train", "eval_tasks")
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            tasks,
            ["/cfg/a.jsonl", "/cfg/b.jsonl:generation", "/c.jsonl:schema"]
        );
    }

    #[test]
    fn non_path_keys_and_wrong_types_are_untouched() {
        let mut t = table("[train]\nlr = \"x\"\noutput_dir = 3\n[data]\ntemplate = \"t\"\n");
        let before = t.clone();
        anchor_table(&mut t, Path::new("/cfg"));
        assert_eq!(t, before);
    }

    #[test]
    fn a_file_in_the_working_directory_anchors_to_it() {
        assert_eq!(folder_of(Path::new("c.toml")), working_dir());
        assert_eq!(folder_of(Path::new("/a/b/c.toml")), PathBuf::from("/a/b"));
    }
}
