//! `tokenizer.json`, `tokenizer_config.json` and `generation_config.json` from
//! the GGUF vocabulary (`tokenizer.ggml.*`) and chat template.

use serde_json::{json, Map, Value as Json};

use super::meta::Metadata;
use crate::error::GgufError;

/// llama.cpp's token types (`llama_token_type`).
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

/// The GPT-2 split, as tokenizers' `ByteLevel { use_regex: true }` applies it.
fn byte_level(use_regex: bool) -> Json {
    json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex})
}

fn split(pattern: &str) -> Json {
    json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false})
}

const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const SUPPORTED_PRE: &str = "smollm, llama-bpe, qwen2, gpt2, default";

/// `(normalizer, pre_tokenizer, ignore_merges)` for `tokenizer.ggml.pre`, as
/// the model's own Hugging Face `tokenizer.json` has them.
fn pre_tokenizer(meta: &Metadata, pre: &str) -> Result<(Json, Json, bool), GgufError> {
    Ok(match pre {
        // SmolLM: every digit on its own, then GPT-2 (transformers' GGUF loader
        // drops the digit split and so tokenizes numbers differently).
        "smollm" => (
            Json::Null,
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
            false,
        ),
        "llama-bpe" => (
            Json::Null,
            json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_REGEX), byte_level(false)]}),
            true,
        ),
        "qwen2" => (
            json!({"type": "NFC"}),
            json!({"type": "Sequence", "pretokenizers": [split(QWEN2_REGEX), byte_level(false)]}),
            false,
        ),
        "gpt2" | "default" => (Json::Null, byte_level(true), false),
        other => {
            return Err(GgufError::Tokenizer {
                path: meta.path.clone(),
                key: "tokenizer.ggml.pre".into(),
                value: other.into(),
                supported: SUPPORTED_PRE.into(),
            })
        }
    })
}

/// The rebuilt tokenizer files.
pub struct TokenizerFiles {
    pub tokenizer: Json,
    pub tokenizer_config: Json,
    pub generation_config: Json,
    /// Number of tokens in the vocabulary.
    pub vocab_len: usize,
}

pub fn tokenizer_files(
    meta: &Metadata,
    context: Option<usize>,
) -> Result<TokenizerFiles, GgufError> {
    let model = meta.string("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(GgufError::Tokenizer {
            path: meta.path.clone(),
            key: "tokenizer.ggml.model".into(),
            value: model.into(),
            supported: "gpt2 (byte-level BPE)".into(),
        });
    }
    let pre = meta.opt_string("tokenizer.ggml.pre")?.unwrap_or("default");
    let (normalizer, pre_tok, ignore_merges) = pre_tokenizer(meta, pre)?;
    let tokens = meta.strings("tokenizer.ggml.tokens")?;
    let merges = meta.strings("tokenizer.ggml.merges")?;
    let types = meta
        .opt_ints("tokenizer.ggml.token_type")?
        .unwrap_or_else(|| vec![1; tokens.len()]);
    if types.len() != tokens.len() {
        return Err(meta.bad(
            "tokenizer.ggml.token_type",
            format!("{} entries for {} tokens", types.len(), tokens.len()),
        ));
    }
    let mut vocab = Map::new();
    let mut added = Vec::new();
    for (id, (&token, &kind)) in tokens.iter().zip(&types).enumerate() {
        if vocab.insert(token.to_string(), id.into()).is_some() {
            return Err(meta.bad(
                "tokenizer.ggml.tokens",
                format!("token `{token}` appears twice"),
            ));
        }
        if kind == CONTROL || kind == USER_DEFINED {
            added.push(
                json!({"id": id, "content": token, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": kind == CONTROL}),
            );
        }
    }
    let token_at = |key: &str| -> Result<Option<String>, GgufError> {
        match meta.opt_usize(key)? {
            None => Ok(None),
            Some(id) => tokens
                .get(id)
                .map(|t| Some(t.to_string()))
                .ok_or_else(|| meta.bad(key, format!("id {id} is outside the vocabulary"))),
        }
    };
    let bos = token_at("tokenizer.ggml.bos_token_id")?;
    let add_bos = meta
        .opt_bool("tokenizer.ggml.add_bos_token")?
        .unwrap_or(false);
    let post_processor = match (&bos, add_bos) {
        (Some(bos), true) => {
            let id = vocab[bos].clone();
            json!({"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {bos.as_str(): {"id": bos, "ids": [id], "tokens": [bos]}}})
        }
        _ => {
            json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true})
        }
    };
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tok,
        "post_processor": post_processor,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": ignore_merges, "vocab": vocab, "merges": merges},
    });

    let template = meta.opt_string("tokenizer.chat_template")?;
    let mut config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": add_bos,
        "add_eos_token": false,
        "clean_up_tokenization_spaces": false,
    });
    for (field, key) in [
        ("bos_token", "tokenizer.ggml.bos_token_id"),
        ("eos_token", "tokenizer.ggml.eos_token_id"),
        ("pad_token", "tokenizer.ggml.padding_token_id"),
        ("unk_token", "tokenizer.ggml.unknown_token_id"),
    ] {
        if let Some(token) = token_at(key)? {
            config[field] = token.into();
        }
    }
    if let Some(t) = template {
        config["chat_template"] = t.into();
    }
    if let Some(n) = context {
        config["model_max_length"] = n.into();
    }

    // Generation stops at the template's end-of-turn token as well as at EOS.
    let mut stop: Vec<usize> = meta
        .opt_usize("tokenizer.ggml.eos_token_id")?
        .into_iter()
        .collect();
    if let Some(t) = template {
        for end in [
            "<|im_end|>",
            "<|eot_id|>",
            "<|end|>",
            "<end_of_turn>",
            "<|endoftext|>",
        ] {
            if let Some(id) = vocab.get(end).and_then(|v| v.as_u64()) {
                if t.contains(end) && !stop.contains(&(id as usize)) {
                    stop.push(id as usize);
                }
            }
        }
    }
    let mut generation = json!({});
    if let Some(id) = meta.opt_usize("tokenizer.ggml.bos_token_id")? {
        generation["bos_token_id"] = id.into();
    }
    match stop.as_slice() {
        [] => {}
        [one] => generation["eos_token_id"] = (*one).into(),
        many => generation["eos_token_id"] = many.into(),
    }
    if let Some(id) = meta.opt_usize("tokenizer.ggml.padding_token_id")? {
        generation["pad_token_id"] = id.into();
    }
    Ok(TokenizerFiles {
        tokenizer,
        tokenizer_config: config,
        generation_config: generation,
        vocab_len: tokens.len(),
    })
}
