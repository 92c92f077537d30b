//! `ift eval` end to end on the real eval files in `../shared/data/eval/`
//! with the tiny fixture model (skipped with a message where they are absent).

use std::path::PathBuf;
use std::process::Command;

fn shared_eval() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/eval"
    ))
}

#[test]
fn eval_runs_on_the_real_files() {
    let data = shared_eval();
    assert!(
        data.join("arc_easy.jsonl").is_file(),
        "{} is missing: this test needs the project's shared data folder (../shared beside the repository)",
        data.display()
    );
    let model =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ift/tests/fixtures/models/llama_gqa");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results.json");
    let mut args: Vec<String> = vec!["eval".into(), "--model".into(), model.display().to_string()];
    for f in [
        "arc_easy",
        "openbook_qa",
        "piqa",
        "copa",
        "winogrande",
        "svamp",
    ] {
        args.push("--task".into());
        args.push(data.join(format!("{f}.jsonl")).display().to_string());
    }
    args.extend(
        [
            "--limit",
            "3",
            "--fewshot",
            "1",
            "--max-new-tokens",
            "4",
            "--out",
        ]
        .map(String::from),
    );
    args.push(out.display().to_string());
    let res = Command::new(env!("CARGO_BIN_EXE_ift"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let table = String::from_utf8_lossy(&res.stdout);
    assert!(
        table.contains("| arc_easy | multiple_choice | 3 | acc_norm |"),
        "{table}"
    );
    assert!(
        table.contains("| svamp | generation | 3 | exact_match |"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    for r in results {
        assert_eq!(r["n"], 3);
        for (_, v) in r["metrics"].as_object().unwrap() {
            let v = v.as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{r}");
        }
    }
    assert_eq!(results[4]["kind"], "schema");
    // A generation task lists what it generated and what it scored.
    let samples = results[5]["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 3);
    let hits = samples.iter().filter(|s| s["correct"] == true).count();
    assert_eq!(
        hits as f64 / 3.0,
        results[5]["metrics"]["exact_match"].as_f64().unwrap()
    );
    for s in samples {
        let (g, a) = (
            s["generated"].as_str().unwrap(),
            s["answer"].as_str().unwrap(),
        );
        assert!(g.contains(a), "{s}");
        assert!(s["target"].is_string(), "{s}");
    }
    assert!(results[0].get("samples").is_none());

    // Training-style files: perplexity and preference accuracy.
    let lf = data.join("../llamafactory");
    let res = Command::new(env!("CARGO_BIN_EXE_ift"))
        .args([
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--limit",
            "3",
            "--task",
        ])
        .arg(lf.join("alpaca_en_demo.json"))
        .arg("--task")
        .arg(lf.join("dpo_en_demo.json"))
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let table = String::from_utf8_lossy(&res.stdout);
    assert!(
        table.contains("| alpaca_en_demo | perplexity | 3 | ppl |"),
        "{table}"
    );
    assert!(table.contains("| dpo_en_demo | preference |"), "{table}");
    assert!(table.contains("| margin |"), "{table}");
}

fn fixture_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ift/tests/fixtures/models/llama_gqa")
}

fn eval(args: &[&str]) -> (Option<i32>, String, String) {
    let model = fixture_model();
    let out = Command::new(env!("CARGO_BIN_EXE_ift"))
        .args(["eval", "--model", model.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Issue 27: a numeric flag out of range is a usage error naming the flag
/// (exit 2), before the model or any task is read.
#[test]
fn numeric_flags_out_of_range_are_usage_errors_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let task = tmp.path().join("t.jsonl");
    std::fs::write(
        &task,
        "{\"query\": \"Q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n",
    )
    .unwrap();
    let task = task.to_str().unwrap();
    for (flag, value, want) in [
        ("--limit", "0", "'--limit <LIMIT>': 0 must be at least 1"),
        (
            "--batch-size",
            "0",
            "'--batch-size <BATCH_SIZE>': 0 must be at least 1",
        ),
        (
            "--max-new-tokens",
            "0",
            "'--max-new-tokens <MAX_NEW_TOKENS>': 0 must be at least 1",
        ),
    ] {
        let (code, stdout, err) = eval(&["--task", task, flag, value]);
        assert_eq!(code, Some(2), "{flag} {value}: {err}");
        assert!(err.contains(want), "{flag} {value}: {err}");
        assert!(stdout.is_empty(), "{flag} {value}: {stdout}");
    }
}

/// Issue 27: a task that scores no record is an input error naming the task
/// file (exit 3), for every kind; no figure (an accuracy of 0) is reported.
#[test]
fn a_task_with_no_scored_record_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let long = "word ".repeat(300);
    let tasks = [
        (
            "choice.jsonl",
            "{\"query\": \"Q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n{\"query\": \"R\", \"choices\": [\"c\", \"d\"], \"gold\": 1}\n".to_string(),
            &["--fewshot", "2"][..],
            "its 2 record(s) all went to the 2 few-shot example(s) (--fewshot)",
        ),
        (
            "schema.jsonl",
            "{\"context_options\": [\"A\", \"B\"], \"continuation\": \"c\", \"gold\": 0}\n".to_string(),
            &["--fewshot", "3"][..],
            "its 1 record(s) all went to the 3 few-shot example(s) (--fewshot)",
        ),
        (
            "generation.jsonl",
            "{\"context\": \"1+1?\", \"answer\": \"2\"}\n".to_string(),
            &["--fewshot", "1"][..],
            "its 1 record(s) all went to the 1 few-shot example(s) (--fewshot)",
        ),
        // Prompts longer than the fixture's 128-token window: every answer is cut away.
        (
            "perplexity.jsonl",
            format!("{{\"prompt\": \"{long}\", \"completion\": \"yes\"}}\n"),
            &[][..],
            "no record has an answer left to score",
        ),
        (
            "preference.jsonl",
            format!("{{\"prompt\": \"{long}\", \"chosen\": \"yes\", \"rejected\": \"no\"}}\n"),
            &[][..],
            "no record has an answer left to score",
        ),
    ];
    for (name, text, extra, why) in tasks {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        let results = tmp.path().join("results.json");
        let (code, stdout, err) = eval(
            &[
                &[
                    "--task",
                    path.to_str().unwrap(),
                    "--out",
                    results.to_str().unwrap(),
                ][..],
                extra,
            ]
            .concat(),
        );
        assert_eq!(code, Some(3), "{name}: {err}");
        let want = format!("{}: no records were scored: {why}", path.display());
        assert!(err.contains(&want), "{name}: {err}");
        assert!(stdout.is_empty(), "{name}: {stdout}");
        assert!(!results.exists(), "{name}: results written");
    }
}
