//! GGUF → Hugging Face directory on a tiny synthetic llama (issue 12): the
//! test permutes Hugging Face weights as llama.cpp's converter does, writes a
//! GGUF with candle's writer, converts it, and must get the weights back
//! exactly; config, tokenizer and the errors that name what is unsupported.

mod golden;

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use ift::model::gguf::{convert_gguf, permute_rows, unpermute_rows};
use ift::model::{Pretrained, Trainable};

const HIDDEN: usize = 32;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = HIDDEN / HEADS;
const FFN: usize = 64;
const LAYERS: usize = 2;

/// GPT-2's byte → printable character map (bytes_to_unicode).
fn byte_tokens() -> Vec<String> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars = printable.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + n);
            n += 1;
        }
    }
    let mut pairs: Vec<(u32, u32)> = printable.into_iter().zip(chars).collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(_, c)| char::from_u32(c).unwrap().to_string())
        .collect()
}

fn vocab() -> Vec<String> {
    let mut v = vec![
        "<|endoftext|>".to_string(),
        "<|im_start|>".into(),
        "<|im_end|>".into(),
    ];
    v.extend(byte_tokens());
    v.push("Ġt".into());
    v.push("he".into());
    v
}

/// Hugging Face-named weights of a tiny random llama.
fn hf_weights(vocab: usize, tied: bool) -> Vec<(String, Tensor)> {
    let dev = Device::Cpu;
    let r = |shape: (usize, usize)| Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
    let mut w = vec![("model.embed_tokens.weight".to_string(), r((vocab, HIDDEN)))];
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        w.push((format!("{p}.self_attn.q_proj.weight"), r((HIDDEN, HIDDEN))));
        w.push((
            format!("{p}.self_attn.k_proj.weight"),
            r((KV_HEADS * HEAD_DIM, HIDDEN)),
        ));
        w.push((
            format!("{p}.self_attn.v_proj.weight"),
            r((KV_HEADS * HEAD_DIM, HIDDEN)),
        ));
        w.push((format!("{p}.self_attn.o_proj.weight"), r((HIDDEN, HIDDEN))));
        w.push((format!("{p}.mlp.gate_proj.weight"), r((FFN, HIDDEN))));
        w.push((format!("{p}.mlp.up_proj.weight"), r((FFN, HIDDEN))));
        w.push((format!("{p}.mlp.down_proj.weight"), r((HIDDEN, FFN))));
        w.push((
            format!("{p}.input_layernorm.weight"),
            Tensor::rand(0.5f32, 1.5, HIDDEN, &dev).unwrap(),
        ));
        w.push((
            format!("{p}.post_attention_layernorm.weight"),
            Tensor::rand(0.5f32, 1.5, HIDDEN, &dev).unwrap(),
        ));
    }
    w.push((
        "model.norm.weight".into(),
        Tensor::rand(0.5f32, 1.5, HIDDEN, &dev).unwrap(),
    ));
    if !tied {
        w.push(("lm_head.weight".into(), r((vocab, HIDDEN))));
    }
    w
}

/// llama.cpp's name for a Hugging Face tensor, as convert_hf_to_gguf.py maps it.
fn gguf_name(hf: &str) -> String {
    let fixed = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = fixed.iter().find(|(h, _)| *h == hf) {
        return g.to_string();
    }
    let rest = hf.strip_prefix("model.layers.").unwrap();
    let (layer, rest) = rest.split_once('.').unwrap();
    let parts = [
        ("self_attn.q_proj", "attn_q"),
        ("self_attn.k_proj", "attn_k"),
        ("self_attn.v_proj", "attn_v"),
        ("self_attn.o_proj", "attn_output"),
        ("mlp.gate_proj", "ffn_gate"),
        ("mlp.up_proj", "ffn_up"),
        ("mlp.down_proj", "ffn_down"),
        ("input_layernorm", "attn_norm"),
        ("post_attention_layernorm", "ffn_norm"),
    ];
    let (module, kind) = rest.rsplit_once('.').unwrap();
    let (_, g) = parts.iter().find(|(h, _)| *h == module).unwrap();
    format!("blk.{layer}.{g}.{kind}")
}

fn metadata(arch: &str, pre: &str) -> Vec<(String, Value)> {
    let tokens = vocab();
    let mut types = vec![Value::I32(1); tokens.len()];
    for t in types.iter_mut().take(3) {
        *t = Value::I32(3);
    }
    vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (format!("{arch}.block_count"), Value::U32(LAYERS as u32)),
        (format!("{arch}.context_length"), Value::U32(512)),
        (format!("{arch}.embedding_length"), Value::U32(HIDDEN as u32)),
        (format!("{arch}.feed_forward_length"), Value::U32(FFN as u32)),
        (format!("{arch}.attention.head_count"), Value::U32(HEADS as u32)),
        (format!("{arch}.attention.head_count_kv"), Value::U32(KV_HEADS as u32)),
        (format!("{arch}.rope.freq_base"), Value::F32(100000.0)),
        (format!("{arch}.attention.layer_norm_rms_epsilon"), Value::F32(1e-5)),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String(pre.into())),
        ("tokenizer.ggml.tokens".into(), Value::Array(tokens.into_iter().map(Value::String).collect())),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
        ("tokenizer.ggml.merges".into(), Value::Array(vec![Value::String("Ġ t".into()), Value::String("h e".into())])),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(2)),
        ("tokenizer.ggml.padding_token_id".into(), Value::U32(2)),
        // llama.cpp sets it for Llama 3 (llama-bpe), not for SmolLM2.
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(pre == "llama-bpe")),
        ("tokenizer.chat_template".into(), Value::String("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}".into())),
    ]
}

/// Writes the GGUF (permuting Q/K as llama.cpp does) and returns the HF weights.
fn write_gguf(
    path: &Path,
    arch: &str,
    pre: &str,
    tied: bool,
    dtype: GgmlDType,
) -> HashMap<String, Tensor> {
    let hf = hf_weights(vocab().len(), tied);
    let mut qtensors = Vec::new();
    for (name, t) in &hf {
        let t = if name.contains("q_proj") {
            permute_rows(t, HEADS).unwrap()
        } else if name.contains("k_proj") {
            permute_rows(t, KV_HEADS).unwrap()
        } else {
            t.clone()
        };
        let d = if t.rank() == 1 { GgmlDType::F32 } else { dtype };
        qtensors.push((gguf_name(name), QTensor::quantize(&t, d).unwrap()));
    }
    let meta = metadata(arch, pre);
    let meta: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensors: Vec<(&str, &QTensor)> = qtensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &meta, &tensors).unwrap();
    hf.into_iter().collect()
}

fn read_safetensors(dir: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn permute_then_unpermute_is_the_identity_and_not_a_no_op() {
    let w = Tensor::arange(0f32, (HIDDEN * 3) as f32, &Device::Cpu)
        .unwrap()
        .reshape((HIDDEN, 3))
        .unwrap();
    let p = permute_rows(&w, HEADS).unwrap();
    assert_ne!(p.to_vec2::<f32>().unwrap(), w.to_vec2::<f32>().unwrap());
    // llama.cpp: head 0's rows 0..4 and 4..8 interleave: 0, 4, 1, 5, ...
    let rows: Vec<f32> = p
        .narrow(1, 0, 1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(&rows[..HEAD_DIM], &[0., 12., 3., 15., 6., 18., 9., 21.]);
    assert_eq!(
        unpermute_rows(&p, HEADS).unwrap().to_vec2::<f32>().unwrap(),
        w.to_vec2::<f32>().unwrap()
    );
}

#[test]
fn a_llama_gguf_converts_back_to_its_hugging_face_weights() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny.gguf");
    let hf = write_gguf(&gguf, "llama", "smollm", true, GgmlDType::F32);
    let out = dir.path().join("hf");
    let summary = convert_gguf(&gguf, &out, DType::F32).unwrap();
    assert_eq!(summary.tensors, hf.len());
    let got = read_safetensors(&out);
    assert_eq!(
        got.len(),
        hf.len(),
        "no lm_head when the GGUF has no output.weight"
    );
    for (name, want) in &hf {
        let g = got.get(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(
            g.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            want.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            "{name}"
        );
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["rms_norm_eps"], 1e-5);
    assert_eq!(config["rope_theta"], 100000.0);
    assert_eq!(config["num_key_value_heads"], KV_HEADS);
    assert_eq!(config["max_position_embeddings"], 512);
    assert_eq!(config["tie_word_embeddings"], true);
    assert_eq!(config["vocab_size"], vocab().len());
    let generation: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("generation_config.json")).unwrap())
            .unwrap();
    assert_eq!(generation["eos_token_id"], 2);

    // The directory loads, and the tokenizer splits digits one by one (smollm).
    let pre = Pretrained::load(&out, &Trainable::None, &Device::Cpu).unwrap();
    assert!(pre.model.config.tie_word_embeddings);
    let ids = pre.tokenizer.encode("12 the<|im_end|>", false).unwrap().ids;
    let t = &pre.tokenizer;
    let id = |s: &str| t.token_to_id(s).unwrap();
    assert_eq!(ids, vec![id("1"), id("2"), id("Ġt"), id("he"), 2]);
    assert_eq!(pre.tokenizer.eos_token(), Some("<|im_end|>"));
    assert!(pre.tokenizer.chat_template(None).is_some());
}

#[test]
fn an_untied_qwen2_gguf_keeps_its_head_and_is_not_unpermuted() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny.gguf");
    // qwen2 GGUFs are not permuted: write the permuted weights and expect them back as written.
    let hf = write_gguf(&gguf, "qwen2", "qwen2", false, GgmlDType::F32);
    let out = dir.path().join("hf");
    convert_gguf(&gguf, &out, DType::BF16).unwrap();
    let got = read_safetensors(&out);
    assert!(got.contains_key("lm_head.weight"));
    assert_eq!(got["lm_head.weight"].dtype(), DType::BF16);
    let q = &got["model.layers.0.self_attn.q_proj.weight"];
    let want = permute_rows(&hf["model.layers.0.self_attn.q_proj.weight"], HEADS)
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    assert_eq!(
        q.to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap(),
        want.to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap()
    );
    let config = std::fs::read_to_string(out.join("config.json")).unwrap();
    assert!(
        config.contains("Qwen2ForCausalLM") && config.contains("bfloat16"),
        "{config}"
    );
}

#[test]
fn quantised_weights_are_dequantised() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny.gguf");
    let hf = write_gguf(&gguf, "llama", "gpt2", true, GgmlDType::Q8_0);
    let out = dir.path().join("hf");
    convert_gguf(&gguf, &out, DType::F32).unwrap();
    let got = read_safetensors(&out);
    let name = "model.layers.1.self_attn.k_proj.weight";
    let diff = golden::max_abs_diff(&got[name], &hf[name]);
    assert!(diff < 0.05, "Q8_0 k_proj differs by {diff}");
}

#[test]
fn unknown_architecture_and_pre_tokenizer_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("a.gguf");
    write_gguf(&gguf, "gemma3", "smollm", true, GgmlDType::F32);
    let msg = convert_gguf(&gguf, &dir.path().join("x"), DType::F32)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("a.gguf") && msg.contains("`gemma3`"), "{msg}");

    let gguf = dir.path().join("b.gguf");
    write_gguf(&gguf, "llama", "tekken", true, GgmlDType::F32);
    let msg = convert_gguf(&gguf, &dir.path().join("y"), DType::F32)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("b.gguf") && msg.contains("tokenizer.ggml.pre") && msg.contains("`tekken`"),
        "{msg}"
    );
    assert!(!dir.path().join("y").exists(), "nothing written on error");
}

#[test]
fn llama_bpe_and_qwen2_tokenizers_load_and_llama3_adds_bos() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("llama3.gguf");
    write_gguf(&gguf, "llama", "llama-bpe", true, GgmlDType::F32);
    let out = dir.path().join("llama3");
    convert_gguf(&gguf, &out, DType::F32).unwrap();
    let pre = Pretrained::load(&out, &Trainable::None, &Device::Cpu).unwrap();
    let ids = pre.tokenizer.encode("the 12345", true).unwrap().ids;
    assert_eq!(ids[0], 1, "BOS first: {ids:?}");
    assert_eq!(pre.tokenizer.decode(&ids, true).unwrap(), "the 12345");

    let gguf = dir.path().join("qwen2.gguf");
    write_gguf(&gguf, "qwen2", "qwen2", true, GgmlDType::F32);
    let out = dir.path().join("qwen2");
    convert_gguf(&gguf, &out, DType::F32).unwrap();
    let tok = ift::tokenizer::HfTokenizer::from_dir(&out).unwrap();
    let ids = tok.encode("the 12345", true).unwrap().ids;
    assert_eq!(tok.decode(&ids, true).unwrap(), "the 12345");
    assert_ne!(ids[0], 1, "qwen2 adds no BOS");
}

/// Issue 14: `model.path` may name a GGUF file; it loads in memory (nothing
/// written out) to exactly the model its converted directory holds.
#[test]
fn a_gguf_file_loads_directly_as_its_converted_directory() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny.gguf");
    write_gguf(&gguf, "llama", "smollm", true, GgmlDType::Q8_0);
    let out = dir.path().join("hf");
    convert_gguf(&gguf, &out, DType::F32).unwrap();
    assert!(ift::model::gguf::is_gguf(&gguf) && !ift::model::gguf::is_gguf(&out));
    let direct = ift::model::gguf::load_gguf(&gguf, &Trainable::None, &Device::Cpu).unwrap();
    let converted = Pretrained::load(&out, &Trainable::None, &Device::Cpu).unwrap();
    let text = "12 the<|im_end|>";
    let ids = direct.tokenizer.encode(text, false).unwrap().ids;
    assert_eq!(ids, converted.tokenizer.encode(text, false).unwrap().ids);
    let x = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mask = Tensor::ones(x.dims(), DType::F32, &Device::Cpu).unwrap();
    let logits = |p: &Pretrained| {
        let l = p
            .model
            .forward(ift::model::ModelInput::Ids(&x), &mask)
            .unwrap();
        l.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    assert_eq!(logits(&direct), logits(&converted));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "load_gguf wrote beside the file"
    );
}
