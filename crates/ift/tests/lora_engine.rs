//! LoRA on the explicit engine against the graph-built model (autograd over
//! `Linear::forward`), where no peft fixture reaches: dropout on (the engine
//! draws each mask again in its backward instead of keeping it), a q8_0 /
//! q4_k base (both paths run the same quantised matmul), and input
//! embeddings as IFT feeds them (the gradient reaching the embeddings).
//! Each case runs with the fused kernels and with their primitive fallbacks.

mod golden;

use candle_core::{Device, Tensor, Var};
use ift::adapter::{attach_fresh, TargetModule};
use ift::engine::with_primitive_kernels;
use ift::model::{LlamaConfig, LlamaForCausalLM, ModelInput, Quantize, Trainable};
use ift::train::{Engine, Policy};

fn tiny() -> LlamaConfig {
    let json = serde_json::json!({
        "model_type": "llama", "vocab_size": 96, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "tie_word_embeddings": false,
    });
    let wire = serde_json::from_value(json).unwrap();
    LlamaConfig::resolve(&wire, std::path::Path::new("config.json")).unwrap()
}

/// A random model with an adapter on `targets` whose B is non-zero (so A
/// gets a gradient too), dropout `p`.
fn adapted(targets: &[TargetModule], p: f64, quantize: Quantize) -> LlamaForCausalLM {
    let mut model =
        LlamaForCausalLM::random(tiny(), 0.05, 7, &Trainable::None, &Device::Cpu).unwrap();
    attach_fresh(&mut model, &golden::small_lora(targets, p), 3).unwrap();
    golden::nonzero_lora_b(&model, 5, 0.1);
    model.quantize_base(quantize).unwrap();
    model
}

struct Batch {
    ids: Tensor,
    mask: Tensor,
}

/// Two rows, the second right-padded.
fn batch() -> Batch {
    let dev = Device::Cpu;
    let ids = Tensor::new(
        &[
            [1u32, 5, 9, 13, 2, 7, 30, 4, 17, 60],
            [3, 8, 8, 21, 40, 2, 11, 0, 0, 0],
        ],
        &dev,
    )
    .unwrap();
    let mut m = vec![1f32; 20];
    m[17..].fill(0.0);
    let mask = Tensor::from_vec(m, (2, 10), &dev).unwrap();
    Batch { ids, mask }
}

/// The masked mean NLL's gradients for every trainable tensor, and for the
/// input embeddings when `embeds` feeds them.
fn grads(model: &LlamaForCausalLM, engine: Engine, b: &Batch, embeds: Option<&Var>) -> Vec<Tensor> {
    let policy = Policy::new(model, engine, true);
    let input = match embeds {
        Some(e) => ModelInput::Embeds(e.as_tensor()),
        None => ModelInput::Ids(&b.ids),
    };
    let (_, store) = golden::nll_backward(&policy, input, &b.mask, &b.ids);
    let mut out: Vec<Tensor> = golden::trainable_grads(model, &store)
        .into_iter()
        .map(|(_, g)| g)
        .collect();
    if let Some(e) = embeds {
        out.push(store.get(e).expect("no embedding gradient").clone());
    }
    out
}

fn check(label: &str, model: &LlamaForCausalLM, embeds: bool) {
    let b = batch();
    let e = embeds.then(|| Var::from_tensor(&model.embed(&b.ids).unwrap()).unwrap());
    let want = grads(model, Engine::Graph, &b, e.as_ref());
    for primitive in [false, true] {
        let run = || grads(model, Engine::Explicit, &b, e.as_ref());
        let got = match primitive {
            true => with_primitive_kernels(run),
            false => run(),
        };
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let scale = golden::max_abs(w);
            assert!(scale > 0.0, "{label}: gradient {i} is zero");
            let err = golden::max_abs_diff(g, w);
            assert!(
                err <= 1e-4 * scale + 1e-7,
                "{label} (primitive: {primitive}): gradient {i} off by {err} (scale {scale})"
            );
        }
    }
}

#[test]
fn dropout_masks_drawn_again_in_the_backward_give_autograd_gradients() {
    let model = adapted(&TargetModule::ALL, 0.3, Quantize::None).with_dropout(42);
    check("dropout 0.3, all projections", &model, false);
    // A different key draws a different mask: the gradients change.
    let b = batch();
    let other = grads(&model.with_dropout(43), Engine::Explicit, &b, None);
    let this = grads(&model, Engine::Explicit, &b, None);
    assert!(golden::max_abs_diff(&other[0], &this[0]) > 0.0);
}

#[test]
fn a_quantised_base_gives_the_graph_paths_gradients() {
    for kind in [Quantize::Q8_0, Quantize::Q4K] {
        let model = adapted(
            &[
                TargetModule::QProj,
                TargetModule::VProj,
                TargetModule::DownProj,
            ],
            0.1,
            kind,
        );
        assert!(model.is_quantized());
        check(&format!("{kind:?}"), &model.with_dropout(9), false);
    }
}

#[test]
fn embeddings_as_input_get_the_graph_paths_gradient() {
    let model = adapted(
        &[
            TargetModule::KProj,
            TargetModule::OProj,
            TargetModule::UpProj,
        ],
        0.2,
        Quantize::None,
    );
    check("embeddings", &model.with_dropout(1), true);
}
