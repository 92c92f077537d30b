//! Per-choice log-likelihoods against `transformers`, computed the lm-eval way
//! (`scripts/reference/make_eval_fixtures.py`), and task loading errors.

use std::path::PathBuf;

use candle_core::Device;
use ift::eval::tasks::{
    choice_requests, encode_request, load_task, loglikelihoods, schema_requests, shared_prefix,
    EvalOptions, Evaluator, Prompting, Request, TaskKind,
};
use ift::model::{Pretrained, Trainable};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn choice_logliks_match_transformers() {
    let device = Device::Cpu;
    let p = Pretrained::load(
        &fixtures().join("models/llama_gqa"),
        &Trainable::None,
        &device,
    )
    .unwrap();
    let text = std::fs::read_to_string(fixtures().join("eval/llama_gqa_loglik.json")).unwrap();
    let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ev = Evaluator {
        model: &p.model,
        tokenizer: &p.tokenizer,
        template: None,
        device: &device,
    };
    let prompting = Prompting {
        chat: None,
        shots: String::new(),
    };
    let mut groups: Vec<Vec<Request>> = Vec::new();
    let cases = golden["cases"].as_array().unwrap();
    for case in cases {
        let rec = case["record"].clone();
        groups.push(
            match case["kind"].as_str().unwrap() {
                "multiple_choice" => {
                    choice_requests(&prompting, &serde_json::from_value(rec).unwrap())
                }
                _ => schema_requests(&prompting, &serde_json::from_value(rec).unwrap()),
            }
            .unwrap(),
        );
    }
    // The shared-context path (what `ift eval` runs): every group must share
    // a prefix, or this would test the fallback instead.
    // Batch 5 rows packs several questions per forward and splits others.
    let shared = ev.grouped(&groups, true, 5, &mut |_, _| {}).unwrap();
    for g in &groups {
        let enc: Vec<_> = g
            .iter()
            .map(|r| encode_request(&p.tokenizer, r, true, 4096).unwrap())
            .collect();
        assert!(shared_prefix(&enc) > 0, "{g:?}");
    }
    // The flat batched path; batch 3 mixes lengths and splits records across
    // batches: padding must not matter.
    let flat: Vec<Request> = groups.iter().flatten().cloned().collect();
    let scores = loglikelihoods(&p.model, &p.tokenizer, &flat, true, 3, &device, |_| {}).unwrap();
    let mut it = scores.iter().map(|s| s.logprob_sum);
    let flat: Vec<Vec<f64>> = groups
        .iter()
        .map(|g| it.by_ref().take(g.len()).collect())
        .collect();
    for (case, got) in cases.iter().cycle().zip(shared.iter().chain(&flat)) {
        let want: Vec<f64> = serde_json::from_value(case["loglik"].clone()).unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() < 1e-4,
                "{}:{}: {g} vs {w}",
                case["file"],
                case["line"]
            );
        }
    }
}

#[test]
fn kinds_are_detected_and_bad_records_name_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let mc = write(
        "mc.jsonl",
        r#"{"query": "q", "choices": ["a", "b"], "gold": 1}"#,
    );
    assert_eq!(load_task(&mc).unwrap().kind, TaskKind::MultipleChoice);
    let ws = write(
        "ws.jsonl",
        r#"{"context_options": ["a", "b"], "continuation": "c", "gold": 0}"#,
    );
    assert_eq!(load_task(&ws).unwrap().kind, TaskKind::Schema);
    let gen = write("gen.jsonl", r#"{"context": "1+1?", "answer": "2"}"#);
    assert_eq!(load_task(&gen).unwrap().kind, TaskKind::Generation);
    assert_eq!(
        load_task(&format!("{gen}:perplexity")).unwrap().kind,
        TaskKind::Perplexity
    );
    let bad = write(
        "bad.jsonl",
        "{\"query\": \"q\", \"choices\": [\"a\"], \"gold\": 0}\n{\"query\": \"q\", \"choices\": [\"a\"], \"gold\": 3}\n",
    );
    let err = load_task(&bad).unwrap_err().to_string();
    assert!(err.contains("bad.jsonl:2:"), "{err}");
}

#[test]
fn preference_ties_count_as_wrong_and_the_margin_is_chosen_minus_rejected() {
    let device = Device::Cpu;
    let p = Pretrained::load(
        &fixtures().join("models/llama_gqa"),
        &Trainable::None,
        &device,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prefs.jsonl");
    std::fs::write(
        &file,
        "{\"prompt\": \"Say hi\", \"chosen\": \"hi there\", \"rejected\": \"hi there\"}\n\
         {\"prompt\": \"Say hi\", \"chosen\": \"hello\", \"rejected\": \"zzzz qqq\"}\n",
    )
    .unwrap();
    let task = load_task(file.to_str().unwrap()).unwrap();
    assert_eq!(task.kind, TaskKind::Preference);
    let ev = Evaluator {
        model: &p.model,
        tokenizer: &p.tokenizer,
        template: None,
        device: &device,
    };
    let one = |limit| {
        let o = EvalOptions {
            limit: Some(limit),
            ..EvalOptions::default()
        };
        ev.run(&task, &o, |_, _| {}).unwrap().metrics
    };
    let tie = one(1);
    assert_eq!(
        (tie["acc"], tie["acc_mean"], tie["margin"]),
        (0.0, 0.0, 0.0)
    );
    let both = one(2);
    // The tie still counts as wrong; the other pair moves the margin off zero.
    assert!([0.0, 0.5].contains(&both["acc"]), "{both:?}");
    assert!(both["margin"] != 0.0);
}

#[test]
fn the_continuation_is_every_token_ending_after_the_context() {
    let tok = ift::tokenizer::HfTokenizer::from_dir(&fixtures().join("models/llama_gqa")).unwrap();
    for (context, continuation) in [
        ("Question: why?", " Because."),
        ("The cat sa", "t down"),
        ("abc", "def"),
    ] {
        let req = Request {
            context: context.into(),
            continuation: continuation.into(),
        };
        let ex = ift::eval::tasks::encode_request(&tok, &req, true, 1000).unwrap();
        let first = ex
            .loss_mask
            .iter()
            .position(|&m| m)
            .expect("something is scored");
        assert!(ex.loss_mask[first..].iter().all(|&m| m), "{context:?}");
        let scored = tok.decode(&ex.input_ids[first..], true).unwrap();
        let before = tok.decode(&ex.input_ids[..first], true).unwrap();
        // Nothing lost or doubled at the join, and the continuation is scored whole.
        assert_eq!(
            format!("{before}{scored}"),
            format!("{context}{continuation}")
        );
        assert!(scored.ends_with(continuation.trim_start()) && context.starts_with(&before));
    }
    // Longer than the window: the context is cut from the left, the continuation kept.
    let req = Request {
        context: "x ".repeat(50),
        continuation: " end".into(),
    };
    let ex = ift::eval::tasks::encode_request(&tok, &req, true, 8).unwrap();
    assert_eq!(ex.input_ids.len(), 8);
    assert!(!ex.loss_mask[0] && ex.loss_mask[7]);
}
