//! What a reading shows, as Markdown: its table, IFT's paired differences, and whether
//! the paper's ordering holds. The sentences are computed from the numbers, so a reading
//! is reported whatever it shows.

use std::fmt::Write;

use crate::experiment::{ExperimentResult, RowResult, Stat};
use crate::methods::Method;

/// The paper's ordering, closest to the optimal table first.
pub const PAPER_ORDER: [Method; 4] = [Method::Dpo, Method::Ift, Method::Orpo, Method::Sft];

fn pm(s: Stat, digits: usize) -> String {
    format!("{:.digits$} ± {:.digits$}", s.mean, s.std)
}

/// Per-seed `a − b` of the all-state MSE and on how many seeds `a` is strictly closer.
pub fn paired(a: &RowResult, b: &RowResult) -> (Stat, usize) {
    let d: Vec<f64> = a
        .mse_all_per_seed
        .iter()
        .zip(&b.mse_all_per_seed)
        .map(|(x, y)| x - y)
        .collect();
    (Stat::of(&d), d.iter().filter(|&&x| x < 0.0).count())
}

/// The rows as a Markdown table, `mean ± std` over seeds; "at its start" is the mean MSE
/// of the network the row fine-tunes (step 0 of its curve), so that a reading shows
/// whether fine-tuning improved its start or spoilt it.
pub fn format_table(r: &ExperimentResult) -> String {
    let mut out = String::from(
        "| row | MSE at its start | MSE (all states) | MSE (chosen route) | success rate | coverage |\n|---|---|---|---|---|---|\n",
    );
    for row in &r.rows {
        let _ = writeln!(
            out,
            "| {} | {:.4} | {} | {} | {} | {} |",
            row.arm.label,
            row.curve[0].1,
            pm(row.mse_all, 4),
            pm(row.mse_route, 4),
            pm(row.success, 3),
            pm(row.coverage, 3)
        );
    }
    out
}

/// Every IFT row against the rows standing for SFT and DPO, seed by seed.
pub fn paired_table(r: &ExperimentResult) -> String {
    let (sft, dpo) = (r.role(Method::Sft), r.role(Method::Dpo));
    let n = sft.mse_all_per_seed.len();
    let mut out = format!(
        "| IFT row | IFT − {} | IFT − {} |\n|---|---|---|\n",
        sft.arm.label, dpo.arm.label
    );
    for row in r.rows.iter().filter(|row| row.arm.method == Method::Ift) {
        let cell = |other: &RowResult| {
            let (d, closer) = paired(row, other);
            format!("{:+.4} ± {:.4} (IFT closer on {closer}/{n})", d.mean, d.std)
        };
        let _ = writeln!(out, "| {} | {} | {} |", row.arm.label, cell(sft), cell(dpo));
    }
    out
}

/// The four roles, closest first by mean all-state MSE.
pub fn ordering(r: &ExperimentResult) -> Vec<&RowResult> {
    let mut rows: Vec<&RowResult> = Method::ALL.iter().map(|&m| r.role(m)).collect();
    rows.sort_by(|a, b| a.mse_all.mean.total_cmp(&b.mse_all.mean));
    rows
}

/// The paper's three adjacent claims (DPO closer than IFT, IFT than ORPO, ORPO than SFT):
/// whether each holds on the means, and on how many seeds.
pub struct Claim<'a> {
    pub closer: &'a RowResult,
    pub farther: &'a RowResult,
    pub holds: bool,
    pub seeds: usize,
}

pub fn claims(r: &ExperimentResult) -> Vec<Claim<'_>> {
    PAPER_ORDER
        .windows(2)
        .map(|w| {
            let (closer, farther) = (r.role(w[0]), r.role(w[1]));
            let holds = closer.mse_all.mean < farther.mse_all.mean;
            Claim {
                closer,
                farther,
                holds,
                seeds: paired(closer, farther).1,
            }
        })
        .collect()
}

/// Whether the paper's ordering holds on the means, with the per-seed count of each of its
/// adjacent pairs, and whether DPO, ORPO and IFT cover more cells than SFT (its
/// exploration claim).
pub fn verdict(r: &ExperimentResult) -> String {
    let claims = claims(r);
    let held = claims.iter().filter(|c| c.holds).count();
    let n = r.role(Method::Sft).mse_all_per_seed.len();
    let here: Vec<&str> = ordering(r).iter().map(|row| row.arm.label).collect();
    let per_seed: Vec<String> = claims
        .iter()
        .map(|c| {
            format!(
                "{} closer than {} on {}/{n}",
                c.closer.arm.label, c.farther.arm.label, c.seeds
            )
        })
        .collect();
    let sft = r.role(Method::Sft).coverage.mean;
    let explore: Vec<String> = [Method::Dpo, Method::Orpo, Method::Ift]
        .iter()
        .map(|&m| {
            let row = r.role(m);
            let more = if row.coverage.mean > sft {
                "more"
            } else {
                "not more"
            };
            format!("{} {more} ({:.3})", row.arm.label, row.coverage.mean)
        })
        .collect();
    let answer = match held {
        3 => "Yes".to_string(),
        1 => "No (1 of its 3 adjacent pairs holds on the means)".to_string(),
        _ => format!("No ({held} of its 3 adjacent pairs hold on the means)"),
    };
    format!(
        "**Does the paper's ordering (DPO > IFT > ORPO > SFT, closest first) hold under this \
         reading? {answer}.** Here, by mean all-state MSE: {}. Per seed: {}. Coverage against \
         SFT's {sft:.3}: {}.",
        here.join(" > "),
        per_seed.join(", "),
        explore.join(", ")
    )
}

/// One reading's section of the page; `level` is the heading's `#`s.
pub fn section(r: &ExperimentResult, level: &str) -> String {
    let s = &r.config.setup;
    format!(
        "{level} {} (`--setup {}`)\n\n{}. {} seeds; MSE against the optimal table.\n\n{}\n{}\n{}\n",
        s.title(),
        s.name(),
        capitalise(&s.summary()),
        r.config.seeds,
        format_table(r),
        paired_table(r),
        verdict(r)
    )
}

/// One line per reading: the ordering found and IFT's paired differences.
pub fn overview(results: &[ExperimentResult]) -> String {
    let mut out = String::from("| reading | closest first | paper's order holds | IFT − SFT | IFT − DPO |\n|---|---|---|---|---|\n");
    for r in results {
        let order: Vec<&str> = ordering(r).iter().map(|row| row.arm.label).collect();
        let holds = claims(r).iter().all(|c| c.holds);
        let ift = r.role(Method::Ift);
        let n = ift.mse_all_per_seed.len();
        let cell = |m| {
            let (d, closer) = paired(ift, r.role(m));
            format!("{:+.4} ({closer}/{n})", d.mean)
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            r.config.setup.name(),
            order.join(" > "),
            if holds { "yes" } else { "no" },
            cell(Method::Sft),
            cell(Method::Dpo)
        );
    }
    out
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{run, ExperimentConfig};
    use crate::map::{Map, MAP_ROUTE};
    use crate::train::TrainConfig;

    /// A real two-seed result whose all-state MSEs are then set by hand, per role.
    fn with_mse(mse: [(Method, [f64; 2]); 4]) -> ExperimentResult {
        let train = TrainConfig {
            steps: 1,
            ..TrainConfig::default()
        };
        let cfg = ExperimentConfig {
            seeds: 2,
            episodes: 1,
            train,
            ..ExperimentConfig::default()
        };
        let mut r = run(&Map::parse(MAP_ROUTE).unwrap(), &cfg).unwrap();
        for (m, per_seed) in mse {
            let row = r
                .rows
                .iter_mut()
                .find(|row| row.arm.role == Some(m))
                .unwrap();
            row.mse_all_per_seed = per_seed.to_vec();
            row.mse_all = Stat::of(&per_seed);
        }
        r
    }

    #[test]
    fn the_verdict_follows_the_numbers() {
        use Method::*;
        let r = with_mse([
            (Dpo, [0.1, 0.1]),
            (Ift, [0.2, 0.2]),
            (Orpo, [0.3, 0.3]),
            (Sft, [0.4, 0.4]),
        ]);
        let v = verdict(&r);
        assert!(
            v.contains("reading? Yes.") && v.contains("DPO > IFT > ORPO > SFT"),
            "{v}"
        );
        assert!(v.contains("DPO closer than IFT on 2/2"), "{v}");
        // IFT closest, and DPO behind IFT on one seed only: two pairs still hold.
        let r = with_mse([
            (Dpo, [0.1, 0.4]),
            (Ift, [0.2, 0.1]),
            (Orpo, [0.3, 0.3]),
            (Sft, [0.4, 0.4]),
        ]);
        let v = verdict(&r);
        assert!(
            v.contains("No (2 of its 3 adjacent pairs hold") && v.contains("IFT > DPO"),
            "{v}"
        );
        assert!(v.contains("DPO closer than IFT on 1/2"), "{v}");
        let (d, closer) = paired(r.role(Ift), r.role(Dpo));
        assert!((d.mean - (-0.1)).abs() < 1e-12 && closer == 1);
        assert!(overview(&[r])
            .contains("| IFT > DPO > ORPO > SFT | no | -0.2500 (2/2) | -0.1000 (1/2) |"));
    }
}
