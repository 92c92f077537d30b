//! `ift plot <run_dir>`: `loss.png` (training and evaluation loss) and
//! `lr.png` (learning rate) against the step, from `<run_dir>/metrics.jsonl`.

mod chart;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::{Map, Value};

use chart::{Chart, Series};

/// Arguments of `ift plot`.
#[derive(Debug, clap::Args)]
pub struct PlotArgs {
    /// Run folder holding `metrics.jsonl`.
    pub run_dir: PathBuf,
    /// Where to write `loss.png` and `lr.png` (default: the run folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The curves read from `metrics.jsonl`, each as `(step, value)`.
#[derive(Debug, Default)]
struct Curves {
    loss: Vec<(f64, f64)>,
    lr: Vec<(f64, f64)>,
    eval_loss: Vec<(f64, f64)>,
}

/// A number under `key`, or an error naming the key.
fn number(row: &Map<String, Value>, key: &str) -> anyhow::Result<f64> {
    match row.get(key) {
        Some(v) => v
            .as_f64()
            .with_context(|| format!("`{key}` is not a number: {v}")),
        None => bail!("missing `{key}`"),
    }
}

/// Training rows carry `loss` and `lr`; evaluation rows carry `eval_*` keys.
fn parse_row(line: &str, curves: &mut Curves) -> anyhow::Result<()> {
    let value: Value = serde_json::from_str(line).context("not valid JSON")?;
    let Value::Object(row) = value else {
        bail!("expected a JSON object");
    };
    let step = number(&row, "step")?;
    if row.keys().any(|k| k.starts_with("eval_")) {
        if row.contains_key("eval_loss") {
            curves.eval_loss.push((step, number(&row, "eval_loss")?));
        }
    } else {
        curves.loss.push((step, number(&row, "loss")?));
        curves.lr.push((step, number(&row, "lr")?));
    }
    Ok(())
}

fn read_curves(path: &Path) -> anyhow::Result<Curves> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut curves = Curves::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        parse_row(line, &mut curves).with_context(|| format!("{}:{}", path.display(), i + 1))?;
    }
    if curves.loss.is_empty() && curves.eval_loss.is_empty() {
        bail!("{}: no training or evaluation rows", path.display());
    }
    Ok(curves)
}

/// Reads `<run_dir>/metrics.jsonl` and writes `loss.png` and `lr.png`.
pub fn run(args: PlotArgs) -> anyhow::Result<()> {
    let curves = read_curves(&args.run_dir.join("metrics.jsonl"))?;
    let out = args.out.unwrap_or(args.run_dir);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let series = |name: &str, colour, points: &[(f64, f64)], markers| Series {
        name: name.into(),
        colour,
        points: points.to_vec(),
        markers,
    };
    let mut loss = Vec::new();
    if !curves.loss.is_empty() {
        loss.push(series("train loss", [31, 119, 180], &curves.loss, false));
    }
    if !curves.eval_loss.is_empty() {
        loss.push(series("eval loss", [230, 110, 0], &curves.eval_loss, true));
    }
    let chart = Chart {
        title: "Loss",
        x_label: "step",
        y_label: "loss",
        series: &loss,
    };
    chart.draw().save_png(&out.join("loss.png"))?;
    if !curves.lr.is_empty() {
        let lr = [series("lr", [44, 160, 44], &curves.lr, false)];
        let chart = Chart {
            title: "Learning rate",
            x_label: "step",
            y_label: "lr",
            series: &lr,
        };
        chart.draw().save_png(&out.join("lr.png"))?;
    }
    println!("wrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn writes_readable_non_blank_plots() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for step in 1..=60 {
            let loss = 3.0 * (-(step as f64) / 20.0).exp() + 0.5;
            let lr = 3e-4 * (step as f64 / 10.0).min(1.0);
            text += &format!(
                r#"{{"step":{step},"loss":{loss},"lr":{lr},"grad_norm":1.0,"tokens_per_s":900.0}}"#
            );
            text += "\n";
            if step % 20 == 0 {
                text += &format!("{{\"step\":{step},\"eval_loss\":{}}}\n", loss + 0.2);
            }
        }
        std::fs::write(dir.path().join("metrics.jsonl"), text).unwrap();
        let out = dir.path().join("plots");
        run(PlotArgs {
            run_dir: dir.path().into(),
            out: Some(out.clone()),
        })
        .unwrap();
        for name in ["loss.png", "lr.png"] {
            let (w, h, pixels) = decode(&out.join(name));
            assert_eq!((w, h), (900, 540), "{name}");
            let coloured = pixels
                .chunks(3)
                .filter(|p| !(p[0] == p[1] && p[1] == p[2]))
                .count();
            let dark = pixels
                .chunks(3)
                .filter(|p| p.iter().all(|&v| v < 50))
                .count();
            assert!(
                coloured > 500,
                "{name}: only {coloured} coloured pixels (no curve?)"
            );
            assert!(
                dark > 2000,
                "{name}: only {dark} dark pixels (no axes or text?)"
            );
        }
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let text = "{\"step\":1,\"loss\":2.0,\"lr\":0.1}\n{\"step\":2,\"loss\":\n";
        std::fs::write(dir.path().join("metrics.jsonl"), text).unwrap();
        let err = run(PlotArgs {
            run_dir: dir.path().into(),
            out: None,
        })
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("metrics.jsonl:2"), "{msg}");
    }
}
