//! The TOML run configuration: defaults, overrides, and errors that name the key.

use ift::config::RunConfig;
use ift::train::OptimizerKind;

const BASE: &str = r#"
[model]
path = "models/base"
[data]
train = "train.jsonl"
[train]
lr = 2e-5
"#;

fn parse(text: &str, overrides: &[&str]) -> Result<RunConfig, String> {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    RunConfig::parse(text, "run.toml", &o).map_err(|e| e.to_string())
}

#[test]
fn defaults_fill_what_the_file_leaves_out() {
    let c = parse(BASE, &[]).unwrap();
    assert_eq!(c.train.lr, 2e-5);
    assert_eq!(c.train.optimizer, OptimizerKind::RmsProp);
    assert_eq!(c.data.max_length, Some(1024));
    assert_eq!(c.train.batch_size, 8);
}

#[test]
fn overrides_take_toml_values_or_bare_strings() {
    let c = parse(
        BASE,
        &[
            "train.lr=0.001",
            "train.optimizer=\"adamw\"",
            "data.eval=held_out.jsonl",
            "train.max_steps=7",
            "objective.normalize=token",
        ],
    )
    .unwrap();
    assert_eq!(c.train.lr, 1e-3);
    assert_eq!(c.train.optimizer, OptimizerKind::AdamW);
    assert_eq!(c.data.eval.unwrap().to_str().unwrap(), "held_out.jsonl");
    assert_eq!(c.train.max_steps, 7);
    assert_eq!(c.objective.normalize, ift::loss::Normalize::Token);
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    let err = parse(BASE, &["train.learning_rate=1e-4"]).unwrap_err();
    assert!(
        err.contains("run.toml") && err.contains("unknown field `learning_rate`"),
        "{err}"
    );
    let err = parse(&format!("{BASE}\n[trian]\nlr = 1\n"), &[]).unwrap_err();
    assert!(err.contains("unknown field `trian`"), "{err}");
}

#[test]
fn invalid_values_name_the_field() {
    let err = parse(BASE, &["train.micro_batch_size=3"]).unwrap_err();
    assert!(
        err.contains("`train.micro_batch_size`") && err.contains("divide train.batch_size = 8"),
        "{err}"
    );
    let err = parse("[data]\ntrain = \"x\"\n", &[]).unwrap_err();
    assert!(
        err.contains("`model.path`") && err.contains("required"),
        "{err}"
    );
    let err = parse(BASE, &["train.optimizer=adam"]).unwrap_err();
    assert!(err.contains("adam"), "{err}");
}

#[test]
fn resolved_toml_parses_back_to_the_same_config() {
    let c = parse(BASE, &["train.seed=7", "data.max_prompt_length=128"]).unwrap();
    let again = parse(&c.to_toml(), &[]).unwrap();
    assert_eq!(c, again);
}

/// The annotated example in docs/config.md is a valid configuration whose
/// values are the defaults (so the page cannot drift from the code).
#[test]
fn documented_example_parses_and_shows_the_defaults() {
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md"))
            .unwrap();
    let block = page
        .split("```toml")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let c = parse(block, &[]).unwrap();
    let defaults = RunConfig::default();
    assert_eq!(
        c.train,
        ift::train::TrainConfig {
            output_dir: "runs/ift".into(),
            ..defaults.train
        }
    );
    assert_eq!(c.objective, defaults.objective);
    assert_eq!(c.data.max_length, defaults.data.max_length);
    assert_eq!(c.data.train_on, defaults.data.train_on);
}

/// The paper's settings in docs/ift.md are a valid configuration.
#[test]
fn ift_page_example_parses() {
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ift.md")).unwrap();
    let block = page
        .split("```toml")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let c = parse(block, &["model.path=m", "data.train=t.jsonl"]).unwrap();
    assert_eq!(c.objective.kind, ift::train::ObjectiveKind::Ift);
    assert_eq!((c.objective.lambda, c.objective.gamma), (0.2, 0.95));
    assert_eq!(c.train.batch_size / c.train.micro_batch_size, 64);
}
