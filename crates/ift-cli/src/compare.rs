//! `ift compare`: the final evaluation figures of several runs side by side
//! (the shape of the paper's Table 2), printed and written as Markdown.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

#[derive(clap::Args)]
pub struct CompareArgs {
    /// Run folders holding `metrics.jsonl`, or `results.json` files of `ift eval`.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Also write the table here.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One column: a run's name and its figures by metric name.
pub type Column = (String, BTreeMap<String, f64>);

pub fn run(args: CompareArgs) -> Result<()> {
    let columns = args
        .runs
        .iter()
        .map(|p| read_run(p))
        .collect::<Result<Vec<_>>>()?;
    let table = markdown(&columns);
    print!("{table}");
    if let Some(out) = &args.out {
        ift::model::write_file_atomically(out, table.as_bytes())?;
    }
    Ok(())
}

/// The last value of every `eval_*` figure in `metrics.jsonl` (rows from the
/// final evaluation win over earlier ones), or the figures of a `results.json`.
pub fn read_run(path: &Path) -> Result<Column> {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut figures = BTreeMap::new();
    if path.is_file() {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let v: Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        for r in v["results"].as_array().into_iter().flatten() {
            for (m, x) in r["metrics"].as_object().into_iter().flatten() {
                if let (Some(t), Some(x)) = (r["task"].as_str(), x.as_f64()) {
                    figures.insert(format!("eval_{t}_{m}"), x);
                }
            }
        }
        return Ok((name, figures));
    }
    let file = path.join("metrics.jsonl");
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let row: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", file.display(), i + 1))?;
        for (k, x) in row.as_object().into_iter().flatten() {
            // Token counts are bookkeeping, not a figure to compare.
            if k.starts_with("eval_") && k != "eval_tokens" {
                if let Some(x) = x.as_f64() {
                    figures.insert(k.clone(), x);
                }
            }
        }
    }
    Ok((name, figures))
}

/// Metrics as rows (sorted), runs as columns; a figure a run lacks is `–`.
pub fn markdown(columns: &[Column]) -> String {
    let mut metrics: Vec<&String> = columns.iter().flat_map(|(_, f)| f.keys()).collect();
    metrics.sort();
    metrics.dedup();
    let mut s = String::from("| metric |");
    for (name, _) in columns {
        s.push_str(&format!(" {name} |"));
    }
    s.push_str(&format!("\n|---|{}\n", "---|".repeat(columns.len())));
    for m in metrics {
        s.push_str(&format!("| {} |", m.trim_start_matches("eval_")));
        for (_, f) in columns {
            match f.get(m) {
                Some(x) => s.push_str(&format!(" {x:.4} |")),
                None => s.push_str(" – |"),
            }
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_eval_rows_win_and_missing_figures_show_a_dash() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("sft");
        std::fs::create_dir(&a).unwrap();
        std::fs::write(
            a.join("metrics.jsonl"),
            "{\"step\":1,\"loss\":2.0}\n{\"step\":2,\"eval_loss\":1.5,\"eval_tokens\":9}\n\
             {\"step\":2,\"eval_arc_acc\":0.25}\n{\"step\":4,\"eval_loss\":1.25}\n{\"step\":4,\"eval_arc_acc\":0.5}\n",
        )
        .unwrap();
        let b = tmp.path().join("results.json");
        std::fs::write(&b, r#"{"results":[{"task":"arc","metrics":{"acc":0.75}}]}"#).unwrap();
        let cols = vec![read_run(&a).unwrap(), read_run(&b).unwrap()];
        assert_eq!(cols[0].1["eval_loss"], 1.25);
        assert!(!cols[0].1.contains_key("eval_tokens"));
        let t = markdown(&cols);
        assert_eq!(
            t,
            "| metric | sft | results.json |\n|---|---|---|\n| arc_acc | 0.5000 | 0.7500 |\n| loss | 1.2500 | – |\n"
        );
    }
}
