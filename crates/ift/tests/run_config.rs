//! The TOML run configuration: defaults, overrides, and errors that name the key.

use ift::config::RunConfig;
use ift::objective::{IftParams, Lambda, Objective, ObjectiveKind, SftParams};
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
    assert_eq!(
        c.objective,
        Objective::Sft(SftParams {
            normalize: ift::loss::Normalize::Token
        })
    );
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    let err = parse(BASE, &["train.learning_rate=1e-4"]).unwrap_err();
    assert!(
        err.starts_with(
            "--set train.learning_rate=1e-4: `train.learning_rate`: unknown field `learning_rate`"
        ),
        "{err}"
    );
    let err = parse(&format!("{BASE}\n[trian]\nlr = 1\n"), &[]).unwrap_err();
    assert!(
        err.starts_with("run.toml:9: `trian`: unknown section"),
        "{err}"
    );
}

/// Issue 13: every config error names the file and the line of the key.
#[test]
fn errors_name_the_file_line_and_full_key() {
    let text = "[model]\npath = \"m\"\n[data]\ntrain = \"t.jsonl\"\n\n[train]\nlr = 1e-3\noptimizer = \"adam\"\n";
    let err = parse(text, &[]).unwrap_err();
    assert_eq!(
        err,
        "run.toml:8: `train.optimizer`: unknown variant `adam`, expected one of `adamw`, `rmsprop`, `sgd`"
    );
    let dotted = "model.path = \"m\"\ndata.train = \"t\"\ntrain.batch_size = 0\n";
    assert_eq!(
        parse(dotted, &[]).unwrap_err(),
        "run.toml:3: `train.batch_size`: must be at least 1"
    );
    let err = parse("[model]\npath = \"m\"\n[data\n", &[]).unwrap_err();
    assert!(
        err.starts_with("run.toml:3: "),
        "a syntax error names its line: {err}"
    );
    assert!(!err.contains('\n'), "one line: {err}");
    // A required key that is absent: its section's line.
    assert_eq!(
        parse("[model]\npath = \"m\"\n[data]\neval = \"e\"\n", &[]).unwrap_err(),
        "run.toml:3: `data.train`: is required (a file of training records)"
    );
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
    assert!(
        err.contains("`train.optimizer`") && err.contains("adam"),
        "{err}"
    );
    let err = parse(BASE, &["objective.kind=dpo", "objective.top_k=2"]).unwrap_err();
    assert!(
        err.contains("`objective.top_k`") && err.contains("`ift`") && err.contains("`dpo`"),
        "{err}"
    );
}

#[test]
fn resolved_toml_parses_back_to_the_same_config() {
    let c = parse(BASE, &["train.seed=7", "data.max_prompt_length=128"]).unwrap();
    let again = parse(&c.to_toml(), &[]).unwrap();
    assert_eq!(c, again);
}

fn page(name: &str) -> String {
    let path = format!("{}/../../docs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

/// The TOML blocks of a Markdown page.
fn toml_blocks(page: &str) -> Vec<String> {
    page.split("```toml")
        .skip(1)
        .map(|b| b.split("```").next().unwrap().to_string())
        .collect()
}

/// The annotated example in docs/config.md is a valid configuration whose
/// values are the defaults (so the page cannot drift from the code).
#[test]
fn documented_example_parses_and_shows_the_defaults() {
    let blocks = toml_blocks(&page("config.md"));
    let c = parse(&blocks[0], &[]).unwrap();
    let defaults = RunConfig::default();
    assert_eq!(
        c.train,
        ift::train::TrainConfig {
            output_dir: "runs/ift".into(),
            ..defaults.train
        }
    );
    assert_eq!(c.objective, defaults.objective);
    assert_eq!(c.adapter, defaults.adapter);
    assert_eq!(c.model.quantize, defaults.model.quantize);
    assert_eq!(c.data.max_length, defaults.data.max_length);
    assert_eq!(c.data.train_on, defaults.data.train_on);
}

/// docs/config.md has one block per objective kind that shows every key of
/// that kind (set ones at their defaults, optional ones as `# key = ...`
/// comments) and nothing else: every key of every objective is documented.
#[test]
fn every_key_of_every_objective_is_on_the_config_page() {
    let blocks = toml_blocks(&page("config.md"));
    for kind in ObjectiveKind::ALL {
        let head = format!("kind = \"{}\"", kind.name());
        let block = blocks
            .iter()
            .skip(1)
            .find(|b| b.contains(&head))
            .unwrap_or_else(|| panic!("docs/config.md has no block with {head}"));
        let c = parse(block, &["model.path=m", "data.train=t.jsonl"]).unwrap();
        assert_eq!(
            c.objective,
            Objective::default_of(kind),
            "{head}: not the defaults"
        );
        let mut keys: Vec<String> = block
            .lines()
            .map(|l| l.trim().trim_start_matches('#').trim())
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
            .filter(|k| !k.contains(' ') && k != "kind")
            .collect();
        keys.sort();
        keys.dedup();
        let mut want: Vec<String> = kind.keys().iter().map(|k| k.to_string()).collect();
        want.sort();
        assert_eq!(
            keys, want,
            "{head}: the documented keys differ from the code's"
        );
    }
}

/// The paper's settings in docs/ift.md are a valid configuration.
#[test]
fn ift_page_example_parses() {
    let block = toml_blocks(&page("ift.md")).remove(0);
    let c = parse(&block, &["model.path=m", "data.train=t.jsonl"]).unwrap();
    let Objective::Ift(p) = c.objective else {
        panic!("docs/ift.md's block is not kind = \"ift\"")
    };
    assert_eq!((p.lambda, p.gamma), (Lambda::Static(0.2), 0.95));
    assert_eq!(p, IftParams::default());
    assert_eq!(c.train.batch_size / c.train.micro_batch_size, 64);
}

#[test]
fn eval_split_is_a_share_and_excludes_an_eval_file() {
    assert_eq!(
        parse(BASE, &["data.eval_split=0.05"])
            .unwrap()
            .data
            .eval_split,
        0.05
    );
    let err = parse(BASE, &["data.eval_split=1.5"]).unwrap_err();
    assert!(
        err.contains("`data.eval_split`: must be in [0, 1), got 1.5"),
        "{err}"
    );
    let err = parse(BASE, &["data.eval_split=0.1", "data.eval=e.jsonl"]).unwrap_err();
    assert!(err.contains("and data.eval both set"), "{err}");
}

#[test]
fn a_config_file_anchors_its_paths_and_set_paths_stay_with_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sub/run.toml");
    let text = "[model]\npath = \"m\"\n[data]\ntrain = \"../t.jsonl\"\n[train]\neval_tasks = [\"e.jsonl:generation\"]\n";
    let c = RunConfig::parse_file(text, &file, &["data.eval=held.jsonl".into()]).unwrap();
    let sub = std::path::absolute(dir.path().join("sub")).unwrap();
    assert_eq!(c.model.path, sub.join("m"));
    assert_eq!(c.data.train, sub.join("../t.jsonl"));
    assert_eq!(
        c.train.eval_tasks,
        [format!("{}:generation", sub.join("e.jsonl").display())]
    );
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(c.data.eval, Some(cwd.join("held.jsonl")));
}
