//! Masks, BOS handling, plain records and truncation on the real SmolLM2 tokenizer.

mod common;

use std::path::Path;

use common::{model, smollm2, BOS, LLAMA3};
use ift::data::*;
use serde_json::json;

fn record(line: &str) -> Record {
    parse_records(line, Path::new("t.jsonl"), DataFormat::JsonLines)
        .unwrap()
        .remove(0)
}

/// The decoded trained tokens, one string per contiguous run.
fn trained_runs(tok: &ift::tokenizer::HfTokenizer, ids: &[u32], mask: &[bool]) -> Vec<String> {
    let mut runs: Vec<Vec<u32>> = Vec::new();
    for (k, &m) in mask.iter().enumerate() {
        if m {
            if k == 0 || !mask[k - 1] {
                runs.push(Vec::new());
            }
            runs.last_mut().unwrap().push(ids[k]);
        }
    }
    runs.iter().map(|r| tok.decode(r, false).unwrap()).collect()
}

const TWO_TURNS: &str = r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello there!"}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "It is 4."}]}"#;

#[test]
fn all_turns_last_turn_and_prompt_training() {
    let (_d, tok) = smollm2();
    let t = ChatTemplate::for_tokenizer(&tok, &TemplateOptions::default()).unwrap();
    let r = record(TWO_TURNS);
    let all = encode_record(&r, &tok, t.as_ref(), &EncodeOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        trained_runs(&tok, &all.input_ids, &all.loss_mask),
        ["Hello there!<|im_end|>", "It is 4.<|im_end|>"]
    );

    let last = EncodeOptions {
        train_on: TrainOn::LastAssistantTurn,
        ..EncodeOptions::default()
    };
    let e = encode_record(&r, &tok, t.as_ref(), &last).unwrap().unwrap();
    assert_eq!(
        trained_runs(&tok, &e.input_ids, &e.loss_mask),
        ["It is 4.<|im_end|>"]
    );
    assert_eq!(e.input_ids, all.input_ids);

    let prompt = EncodeOptions {
        train_on_prompt: true,
        ..EncodeOptions::default()
    };
    let e = encode_record(&r, &tok, t.as_ref(), &prompt)
        .unwrap()
        .unwrap();
    assert!(!e.loss_mask[0] && e.loss_mask[1..].iter().all(|&m| m));
}

#[test]
fn template_bos_is_not_duplicated_and_text_gets_the_post_processor_bos() {
    let (_d, tok) = model(
        json!({"bos_token": BOS, "eos_token": "<|eot_id|>", "chat_template": LLAMA3}),
        true,
    );
    let bos = tok.token_to_id(BOS).unwrap();
    let t = ChatTemplate::for_tokenizer(&tok, &TemplateOptions::default()).unwrap();
    let e = encode_record(
        &record(TWO_TURNS),
        &tok,
        t.as_ref(),
        &EncodeOptions::default(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(e.input_ids[0], bos);
    assert_eq!(
        e.input_ids.iter().filter(|&&i| i == bos).count(),
        1,
        "one BOS, from the template"
    );

    let text = encode_record(
        &record(r#"{"text": "Hello world"}"#),
        &tok,
        t.as_ref(),
        &EncodeOptions::default(),
    );
    let text = text.unwrap().unwrap();
    assert_eq!(text.input_ids, tok.encode("Hello world", true).unwrap().ids);
    assert_eq!(text.input_ids[0], bos);
    assert_eq!(text.loss_mask, [false, true, true]);
}

#[test]
fn plain_records_without_template_and_chat_records_need_one() {
    let (_d, tok) = model(json!({"bos_token": BOS, "eos_token": "<|im_end|>"}), true);
    let none = ChatTemplate::for_tokenizer(&tok, &TemplateOptions::default()).unwrap();
    assert!(none.is_none());
    let plain = record(r#"{"prompt": "The sky is", "completion": " blue."}"#);
    let e = encode_record(&plain, &tok, None, &EncodeOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        e.input_ids,
        tok.encode("The sky is blue.<|im_end|>", true).unwrap().ids
    );
    assert_eq!(
        trained_runs(&tok, &e.input_ids, &e.loss_mask),
        [" blue.<|im_end|>"]
    );

    let err = encode_record(&record(TWO_TURNS), &tok, None, &EncodeOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::NoChatTemplate { .. }), "{err}");
    assert!(
        err.to_string().contains("t.jsonl:1") && err.to_string().contains("chatml"),
        "{err}"
    );

    let opts = TemplateOptions {
        fallback: Some(BuiltinTemplate::Chatml),
        ..TemplateOptions::default()
    };
    let t = ChatTemplate::for_tokenizer(&tok, &opts).unwrap().unwrap();
    let e = encode_record(
        &record(TWO_TURNS),
        &tok,
        Some(&t),
        &EncodeOptions::default(),
    )
    .unwrap()
    .unwrap();
    let text = tok.decode(&e.input_ids, false).unwrap();
    assert!(
        text.starts_with("<|im_start|>user\nhi<|im_end|>\n"),
        "{text}"
    );
}

#[test]
fn preference_and_kto_train_only_the_answer() {
    let (_d, tok) = smollm2();
    let t = ChatTemplate::for_tokenizer(&tok, &TemplateOptions::default()).unwrap();
    let r = record(
        r#"{"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4?"}, {"from": "human", "value": "Sure?"}], "chosen": {"from": "gpt", "value": "Yes, 4."}, "rejected": {"from": "gpt", "value": "No, 5."}}"#,
    );
    let p = encode_preference(&r, &tok, t.as_ref(), &EncodeOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        trained_runs(&tok, &p.chosen.input_ids, &p.chosen.loss_mask),
        ["Yes, 4.<|im_end|>"]
    );
    assert_eq!(
        trained_runs(&tok, &p.rejected.input_ids, &p.rejected.loss_mask),
        ["No, 5.<|im_end|>"]
    );
    let k = record(
        r#"{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}], "label": false}"#,
    );
    let k = encode_unpaired(&k, &tok, t.as_ref(), &EncodeOptions::default())
        .unwrap()
        .unwrap();
    assert!(!k.label);
    assert_eq!(
        trained_runs(&tok, &k.example.input_ids, &k.example.loss_mask),
        ["5<|im_end|>"]
    );
    let err = encode_record(&r, &tok, t.as_ref(), &EncodeOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::WrongKind { .. }), "{err}");
}

#[test]
fn truncation_edge_cases() {
    let (_d, tok) = smollm2();
    let t = ChatTemplate::for_tokenizer(&tok, &TemplateOptions::default()).unwrap();
    let r = record(
        r#"{"messages": [{"role": "user", "content": "Tell me a long story about a cat."}, {"role": "assistant", "content": "Once upon a time there was a cat."}]}"#,
    );
    let full = mask_record(&r, &tok, t.as_ref(), &EncodeOptions::default()).unwrap();
    let (n, a) = (full.input_ids.len(), full.answer_start);
    let trained = full.loss_mask.iter().filter(|&&m| m).count();
    assert!(
        a > 10 && trained == n - a - 1,
        "answer runs to <|im_end|>, then a newline"
    );
    let cut = |opts: EncodeOptions| truncate(&full, &opts);

    // Prompt longer than max_length: nothing of the answer fits, the example is dropped.
    assert_eq!(
        cut(EncodeOptions {
            max_length: Some(a - 3),
            ..Default::default()
        }),
        None
    );
    // Zero-length answer: the prompt fills max_length exactly.
    assert_eq!(
        cut(EncodeOptions {
            max_length: Some(a),
            ..Default::default()
        }),
        None
    );
    // Answer cut mid-way: the prompt is kept whole, the answer's end goes.
    let e = cut(EncodeOptions {
        max_length: Some(a + 2),
        ..Default::default()
    })
    .unwrap();
    assert_eq!((e.len(), e.num_trained()), (a + 2, 2));
    assert_eq!(e.input_ids[..], full.input_ids[..a + 2]);
    // max_prompt_length: keep the end (nearest the answer) or the start.
    let keep_end = EncodeOptions {
        max_prompt_length: Some(4),
        ..Default::default()
    };
    let e = cut(keep_end).unwrap();
    assert_eq!(e.input_ids[..4], full.input_ids[a - 4..a]);
    assert_eq!(e.input_ids[4..], full.input_ids[a..]);
    assert!(!e.loss_mask[0] && e.num_trained() == trained);
    let keep_start = EncodeOptions {
        max_prompt_length: Some(4),
        prompt_truncation: PromptTruncation::KeepStart,
        max_length: Some(6),
        ..Default::default()
    };
    let e = cut(keep_start).unwrap();
    assert_eq!(e.input_ids[..4], full.input_ids[..4]);
    assert_eq!(e.input_ids[4..], full.input_ids[a..a + 2]);
    // No limits: unchanged.
    let e = cut(EncodeOptions {
        max_length: None,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        (e.input_ids, e.loss_mask),
        (full.input_ids.clone(), full.loss_mask.clone())
    );
}

#[test]
fn load_dataset_counts_dropped_records() {
    let (_d, tok) = smollm2();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.jsonl");
    let long = format!(
        r#"{{"prompt": [{{"role": "user", "content": "{}"}}], "completion": "ok"}}"#,
        "word ".repeat(200)
    );
    std::fs::write(&path, format!("{TWO_TURNS}\n{long}\n")).unwrap();
    let opts = LoadOptions {
        encode: EncodeOptions {
            max_length: Some(100),
            ..Default::default()
        },
        ..Default::default()
    };
    let (examples, summary) = load_dataset(&path, &tok, &opts).unwrap();
    assert_eq!(
        (
            examples.len(),
            summary.records,
            summary.kept,
            summary.dropped_truncated
        ),
        (1, 2, 1, 1)
    );
    assert!(summary.to_string().contains("1 dropped"), "{summary}");
}

#[test]
fn real_alpaca_file_trains_exactly_each_output_and_its_end_token() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/llamafactory/alpaca_en_demo.json");
    assert!(
        path.is_file(),
        "{} is missing: this test needs the project's shared data folder (../shared beside the repository)",
        path.display()
    );
    let (_d, tok) = smollm2();
    let t = ChatTemplate::for_tokenizer(&tok, &TemplateOptions::default()).unwrap();
    let records = load_records(&path, DataFormat::Auto).unwrap();
    let opts = EncodeOptions {
        max_length: None,
        ..Default::default()
    };
    for r in &records {
        let RecordBody::Conversation { messages, .. } = &r.body else {
            panic!()
        };
        let e = encode_record(r, &tok, t.as_ref(), &opts).unwrap().unwrap();
        let expected = format!("{}<|im_end|>", messages.last().unwrap().content);
        assert_eq!(
            trained_runs(&tok, &e.input_ids, &e.loss_mask),
            [expected],
            "{}",
            r.location
        );
    }
}

#[test]
fn real_preference_and_kto_files_load() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/llamafactory");
    assert!(
        base.join("dpo_en_demo.json").is_file(),
        "{} is missing: this test needs the project's shared data folder (../shared beside the repository)",
        base.display()
    );
    let (_d, tok) = smollm2();
    let opts = LoadOptions {
        encode: EncodeOptions {
            max_length: Some(512),
            ..Default::default()
        },
        ..Default::default()
    };
    let (pairs, s) = load_preference_dataset(&base.join("dpo_en_demo.json"), &tok, &opts).unwrap();
    assert_eq!(
        (s.records, s.kept + s.dropped_truncated, pairs.len()),
        (300, 300, s.kept)
    );
    assert!(pairs
        .iter()
        .all(|p| p.chosen.len() <= 512 && p.rejected.num_trained() > 0));
    let (kto, s) = load_kto_dataset(&base.join("kto_en_demo.json"), &tok, &opts).unwrap();
    assert_eq!(s.records, 300);
    assert!(kto.iter().any(|k| k.label) && kto.iter().any(|k| !k.label));
}

/// An answer that also occurs in the turn header ("a" in "assistant") is found after the header.
#[test]
fn short_answers_inside_the_header_are_located_after_it() {
    let (_d, tok) = smollm2();
    let t = ChatTemplate::for_tokenizer(&tok, &TemplateOptions::default()).unwrap();
    let r = record(
        r#"{"messages": [{"role": "user", "content": "Pick a or b."}, {"role": "assistant", "content": "a"}]}"#,
    );
    let e = encode_record(&r, &tok, t.as_ref(), &EncodeOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        trained_runs(&tok, &e.input_ids, &e.loss_mask),
        ["a<|im_end|>"]
    );
}

/// Regression (issue 3): a token that spans the prompt/answer join is tokenized once, as in the
/// whole text, and trained — tokenizing prompt and answer apart would drop or change it.
#[test]
fn a_token_across_the_prompt_answer_join_is_kept_and_trained() {
    let (_d, tok) = model(json!({"eos_token": "<|im_end|>"}), false);
    let r = record(r#"{"prompt": "Hello wor", "completion": "ld!"}"#);
    let e = encode_record(&r, &tok, None, &EncodeOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        e.input_ids,
        tok.encode("Hello world!<|im_end|>", true).unwrap().ids
    );
    assert_eq!(
        trained_runs(&tok, &e.input_ids, &e.loss_mask),
        [" world!<|im_end|>"]
    );
}
