use super::*;
use serde_json::json;

/// Writes a tiny word-level tokenizer whose post-processor prepends `<s>`, the way Llama 2's
/// does, so BOS handling is the tokenizer's decision. Shared with the data module's unit tests.
pub(crate) fn write_tiny_tokenizer(dir: &Path, config: serde_json::Value) {
    let words = [
        "<unk>",
        "<s>",
        "</s>",
        "hello",
        "world",
        "user",
        "assistant",
        ":",
        "hi",
        "there",
    ];
    let vocab: serde_json::Map<String, serde_json::Value> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), json!(i)))
        .collect();
    let added = |id: u32, content: &str| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false,
               "rstrip": false, "normalized": false, "special": true})
    };
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>"), added(10, "<|end|>")],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
}

#[test]
fn loads_special_tokens_templates_and_encodes_like_post_processor() {
    let dir = tempfile::tempdir().unwrap();
    let config = json!({
        "bos_token": {"content": "<s>", "lstrip": false, "normalized": false, "rstrip": false, "single_word": false},
        "eos_token": "</s>",
        "pad_token": null,
        "add_bos_token": true,
        "chat_template": [{"name": "default", "template": "A"}, {"name": "tool_use", "template": "B"}]
    });
    write_tiny_tokenizer(dir.path(), config);
    let tok = HfTokenizer::from_dir(dir.path()).unwrap();

    assert_eq!(tok.vocab_size(), 11, "added token <|end|> has id 10");
    assert_eq!(
        (tok.bos_token(), tok.bos_token_id()),
        (Some("<s>"), Some(1))
    );
    assert_eq!(
        (tok.eos_token(), tok.eos_token_id()),
        (Some("</s>"), Some(2))
    );
    assert_eq!((tok.pad_token(), tok.pad_token_id()), (None, None));
    assert_eq!(tok.add_bos_token(), Some(true));
    assert_eq!(tok.chat_template(None), Some("A"));
    assert_eq!(tok.chat_template(Some("tool_use")), Some("B"));
    assert_eq!(tok.chat_template(Some("rag")), None);

    let with = tok.encode("hello world<|end|>", true).unwrap();
    assert_eq!(with.ids, vec![1, 3, 4, 10]);
    assert_eq!(with.offsets, vec![(0, 0), (0, 5), (6, 11), (11, 18)]);
    let without = tok.encode("hello world", false).unwrap();
    assert_eq!(without.ids, vec![3, 4]);
    assert_eq!(tok.decode(&[1, 3, 4], true).unwrap(), "hello world");
    assert_eq!(tok.token_to_id("<|end|>"), Some(10));
}

#[test]
fn template_file_and_plain_string_template() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_tokenizer(dir.path(), json!({"chat_template": "from config"}));
    assert_eq!(
        HfTokenizer::from_dir(dir.path())
            .unwrap()
            .chat_template(None),
        Some("from config")
    );
    std::fs::write(dir.path().join("chat_template.jinja"), "from file").unwrap();
    let tok = HfTokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(tok.chat_template(None), Some("from file"));
}

#[test]
fn missing_or_invalid_files_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let err = HfTokenizer::from_dir(dir.path()).unwrap_err();
    assert!(matches!(err, TokenizerError::Missing { .. }));
    assert!(err.to_string().contains("tokenizer.json"), "{err}");

    std::fs::write(dir.path().join("tokenizer.json"), "{not json").unwrap();
    let err = HfTokenizer::from_dir(dir.path()).unwrap_err();
    assert!(matches!(err, TokenizerError::Invalid { .. }), "{err}");
    assert!(err
        .to_string()
        .contains(&dir.path().join("tokenizer.json").display().to_string()));

    write_tiny_tokenizer(dir.path(), json!({"eos_token": 42}));
    let err = HfTokenizer::from_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("tokenizer_config.json"), "{err}");
}
