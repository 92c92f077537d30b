//! Golden chat-template fixtures from `scripts/reference/make_template_fixtures.py`
//! (transformers `apply_chat_template` with the real SmolLM2 tokenizer): the rendered text, the
//! token ids and the assistant mask (content + end-of-turn token) must equal Python's exactly.

use std::path::{Path, PathBuf};

use ift::data::{encode_record, mask_conversation, ChatTemplate, EncodeOptions, Location, Message};
use ift::data::{Record, RecordBody, RecordFormat, Role, TemplateOptions};
use ift::tokenizer::HfTokenizer;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    messages: Vec<Msg>,
    rendered: String,
    input_ids: Vec<u32>,
    assistant_mask: Vec<bool>,
    generation_prompt_rendered: String,
}

#[derive(Deserialize)]
struct Msg {
    role: String,
    content: String,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates")
}

/// The shared tokenizer.json plus one template's tokenizer_config.json, as a model directory.
fn model_dir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    let config = fixtures().join(name).join("tokenizer_config.json");
    std::fs::copy(config, dir.path().join("tokenizer_config.json")).unwrap();
    dir
}

fn messages(case: &Case) -> Vec<Message> {
    let role = |r: &str| match r {
        "system" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => panic!("fixture role {other}"),
    };
    case.messages
        .iter()
        .map(|m| Message::new(role(&m.role), m.content.clone()))
        .collect()
}

fn check(name: &str) {
    let dir = model_dir(name);
    let tok = HfTokenizer::from_dir(dir.path()).unwrap();
    let template = ChatTemplate::for_tokenizer(&tok, &TemplateOptions::default())
        .unwrap()
        .unwrap();
    let text = std::fs::read_to_string(fixtures().join(name).join("cases.json")).unwrap();
    let fixture: Fixture = serde_json::from_str(&text).unwrap();
    assert!(fixture.cases.len() >= 3);
    for (i, case) in fixture.cases.iter().enumerate() {
        let msgs = messages(case);
        assert_eq!(
            template.render(&msgs, false).unwrap(),
            case.rendered,
            "{name} case {i}: rendering"
        );
        let prompt = template.render(&msgs[..msgs.len() - 1], true).unwrap();
        assert_eq!(
            prompt, case.generation_prompt_rendered,
            "{name} case {i}: generation prompt"
        );

        let loc = Location::inline(i);
        let masked = mask_conversation(&msgs, 0, &template, &tok, false, &loc).unwrap();
        assert_eq!(masked.input_ids, case.input_ids, "{name} case {i}: ids");
        assert_eq!(
            masked.loss_mask, case.assistant_mask,
            "{name} case {i}: mask"
        );

        // Every trained turn ends on the template's end-of-turn token.
        let eot = tok.token_to_id(end_of_turn(name)).unwrap();
        let ends: Vec<u32> = (0..masked.loss_mask.len())
            .filter(|&k| {
                masked.loss_mask[k] && !masked.loss_mask.get(k + 1).copied().unwrap_or(false)
            })
            .map(|k| masked.input_ids[k])
            .collect();
        assert_eq!(ends.len(), 2, "{name} case {i}: two assistant turns");
        assert!(
            ends.iter().all(|&id| id == eot),
            "{name} case {i}: turns end with {ends:?}"
        );

        // The public entry point gives the same sequence (nothing truncated at these lengths).
        let record = Record {
            location: loc,
            format: RecordFormat::Chat,
            body: RecordBody::Conversation {
                messages: msgs,
                conversational: true,
            },
        };
        let encoded = encode_record(&record, &tok, Some(&template), &EncodeOptions::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            (encoded.input_ids, encoded.loss_mask),
            (case.input_ids.clone(), case.assistant_mask.clone())
        );
    }
}

fn end_of_turn(name: &str) -> &'static str {
    match name {
        "chatml" => "<|im_end|>",
        "llama3" => "<|eot_id|>",
        _ => "</s>",
    }
}

#[test]
fn chatml_smollm2_matches_transformers() {
    check("chatml");
}

#[test]
fn llama3_matches_transformers() {
    check("llama3");
}

#[test]
fn zephyr_matches_transformers() {
    check("zephyr");
}

/// The built-in fallbacks render exactly like the real templates they copy.
#[test]
fn builtin_zephyr_equals_real_zephyr() {
    let dir = model_dir("zephyr");
    let tok = HfTokenizer::from_dir(dir.path()).unwrap();
    let real = ChatTemplate::for_tokenizer(&tok, &TemplateOptions::default())
        .unwrap()
        .unwrap();
    let builtin =
        ChatTemplate::new("zephyr", ift::data::BuiltinTemplate::Zephyr.source(), &tok).unwrap();
    let text = std::fs::read_to_string(fixtures().join("zephyr/cases.json")).unwrap();
    let fixture: Fixture = serde_json::from_str(&text).unwrap();
    for case in &fixture.cases {
        let msgs = messages(case);
        assert_eq!(
            builtin.render(&msgs, true).unwrap(),
            real.render(&msgs, true).unwrap()
        );
    }
}
