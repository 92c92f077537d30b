//! A model directory for tests: the real SmolLM2 tokenizer of the template fixtures with a chosen
//! `tokenizer_config.json`, optionally with a post-processor that prepends a BOS the way Llama 3's
//! does (so BOS handling can be tested).
#![allow(dead_code)]

use std::path::Path;

use ift::tokenizer::HfTokenizer;
use serde_json::{json, Value};

pub const BOS: &str = "<|begin_of_text|>";

pub fn model(config: Value, bos_post_processor: bool) -> (tempfile::TempDir, HfTokenizer) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates");
    let text = std::fs::read_to_string(fixtures.join("tokenizer.json")).unwrap();
    let mut tokenizer: Value = serde_json::from_str(&text).unwrap();
    if bos_post_processor {
        tokenizer["post_processor"] = json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {BOS: {"id": BOS, "ids": [49152], "tokens": [BOS]}}
        });
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), tokenizer.to_string()).unwrap();
    std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
    let tok = HfTokenizer::from_dir(dir.path()).unwrap();
    (dir, tok)
}

/// SmolLM2's own configuration: ChatML with its default system prompt, no BOS post-processor.
pub fn smollm2() -> (tempfile::TempDir, HfTokenizer) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates");
    let config = std::fs::read_to_string(fixtures.join("chatml/tokenizer_config.json")).unwrap();
    model(serde_json::from_str(&config).unwrap(), false)
}

pub const LLAMA3: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}\
{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}\
{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}\
{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
