use super::*;
use crate::map::MAP_ROUTE;
use crate::report::format_table;

/// A few seeds and steps: enough to exercise every path of a reading.
fn small(setup: Setup) -> ExperimentConfig {
    ExperimentConfig {
        seeds: 2,
        episodes: 20,
        setup,
        train: TrainConfig {
            steps: 12,
            ..TrainConfig::default()
        },
        ..ExperimentConfig::default()
    }
}

#[test]
fn every_reading_runs_and_is_deterministic() {
    let map = Map::parse(MAP_ROUTE).unwrap();
    for setup in Setup::ALL {
        let setup = match setup {
            Setup::Pretrained { corruption, .. } => Setup::Pretrained {
                corruption,
                pretrain_steps: 20,
            },
            s => s,
        };
        let cfg = small(setup);
        let (a, b) = (run(&map, &cfg).unwrap(), run(&map, &cfg).unwrap());
        let json = |r: &ExperimentResult| serde_json::to_string(r).unwrap();
        assert_eq!(json(&a), json(&b), "{setup:?}");
        assert_eq!(a.rows.len(), setup.arms(&cfg.methods).len());
        // And the seeds matter: a different seed count changes the table.
        let c = run(&map, &ExperimentConfig { seeds: 3, ..cfg }).unwrap();
        assert_ne!(format_table(&a), format_table(&c), "{setup:?}");
    }
}

#[test]
fn pretraining_without_corruption_starts_at_the_optimal_table() {
    // Reading 1 with ε = 0: step 0 of every row is the pre-trained start, which must be
    // the optimal table itself (a wrong target or too little pre-training would not be).
    let map = Map::parse(MAP_ROUTE).unwrap();
    let Setup::Pretrained { pretrain_steps, .. } = Setup::ALL[1] else {
        panic!("order of ALL")
    };
    let cfg = ExperimentConfig {
        seeds: 1,
        ..small(Setup::Pretrained {
            corruption: 0.0,
            pretrain_steps,
        })
    };
    let r = run(&map, &cfg).unwrap();
    for row in &r.rows {
        assert!(
            row.curve[0].1 < 1e-3,
            "{}: MSE at step 0 = {}",
            row.arm.label,
            row.curve[0].1
        );
    }
    // With corruption, the start is visibly off the table.
    let noisy = run(
        &map,
        &ExperimentConfig {
            seeds: 1,
            ..small(Setup::ALL[1])
        },
    )
    .unwrap();
    assert!(
        noisy.rows[0].curve[0].1 > 1e-2,
        "{}",
        noisy.rows[0].curve[0].1
    );
}

#[test]
fn sft_then_dpo_starts_where_sft_ends() {
    // The SFT→DPO row fine-tunes the SFT row's result: its curve starts at SFT's last point.
    let map = Map::parse(MAP_ROUTE).unwrap();
    let r = run(&map, &small(Setup::Sequential)).unwrap();
    let sft = r.role(Method::Sft);
    let seq = r.role(Method::Dpo);
    assert_eq!(seq.arm.label, "SFT→DPO");
    assert!((seq.curve[0].1 - sft.curve.last().unwrap().1).abs() < 1e-12);
    assert!(
        (seq.curve[0].1 - seq.curve.last().unwrap().1).abs() > 1e-9,
        "DPO then moved"
    );
}
