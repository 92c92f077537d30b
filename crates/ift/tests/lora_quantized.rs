//! A quantised frozen base (issue 14, `model.quantize`): candle's quantised
//! matmul is `x̃ W̃ᵀ` (8-bit activations x̃, dequantised weights W̃) to f32
//! rounding, the custom op's backward equals the dense gradient of the
//! dequantised weight (several row blocks), LoRA gradients through a q8_0 /
//! q4_k base equal those autograd takes through the same forward, the
//! quantised projections take a fraction of the memory, a run trains with
//! one, and a quantised base is never saved.

mod golden;

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Tensor, Var};
use golden::l2;
use ift::adapter::{attach_fresh, TargetModule};
use ift::config::RunConfig;
use ift::loss::token_logprobs;
use ift::model::{
    LlamaConfig, LlamaForCausalLM, ModelInput, Quantize, QuantizedWeight, SaveOptions, Trainable,
};
use ift::run::train_from_config;
use ift::train::Observer;

fn rel(a: &Tensor, b: &Tensor) -> f32 {
    l2(&(a - b).unwrap()) / l2(b)
}

fn max_f64(t: Tensor) -> f64 {
    t.flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// `x` `(rows, k)` rounded to `format`'s 8-bit blocks by candle's own
/// quantiser (`from_float`, the one its quantised matmul applies to its
/// activations, SIMD variants included), back in f32: `d·q` per element.
fn rounded(x: &Tensor, format: GgmlDType) -> Tensor {
    QTensor::quantize(x, format)
        .unwrap()
        .dequantize(&Device::Cpu)
        .unwrap()
}

/// Per weight, a bound on the magnitude it brings into the kernel's f32
/// terms: `|W̃ᵢ|`, except for q4_k, whose kernels sum `d·scᵢ·qᵢ` and `dmin·mᵢ`
/// (`W̃ᵢ = d·scᵢ·qᵢ − dmin·mᵢ`) as separate terms, so `|d·scᵢ·qᵢ| + |dmin·mᵢ|`
/// (the first is the dequantisation with every `dmin` set to zero).
fn term_magnitudes(w: &Tensor, dtype: GgmlDType) -> Tensor {
    let q = QTensor::quantize(w, dtype).unwrap();
    let wq = q.dequantize(&Device::Cpu).unwrap();
    match dtype {
        GgmlDType::Q8_0 | GgmlDType::Q4_0 => wq.abs().unwrap(),
        GgmlDType::Q4K => {
            // A block: d (f16), dmin (f16), 12 bytes of scales, 128 of quants.
            let mut bytes = q.data().unwrap().into_owned();
            assert_eq!(bytes.len() % 144, 0);
            for block in bytes.chunks_mut(144) {
                block[2..4].fill(0);
            }
            let storage = QStorage::from_data(Cow::Owned(bytes), &Device::Cpu, dtype).unwrap();
            let scaled = QTensor::new(storage, w.shape())
                .unwrap()
                .dequantize(&Device::Cpu)
                .unwrap();
            let mins = (&scaled - &wq).unwrap();
            (scaled.abs().unwrap() + mins.abs().unwrap()).unwrap()
        }
        other => panic!("no term bound for {other:?}"),
    }
}

/// Checks that candle's quantised matmul `y = x Wᵀ` (`w` quantised to
/// `dtype`) is `x̃ W̃ᵀ` to f32 rounding, where `x̃` is `x` rounded to one of
/// the 8-bit activation formats its kernels use — which one depends on the
/// CPU and the shape (q8_0 weights: per-32 q8_0 blocks with an f16 scale in
/// the generic kernel, per-256 q8k blocks with an f32 scale in the AVX-512
/// VNNI / AVX-VNNI tiles; k-quants: q8k) — and returns that format and the
/// largest error as a fraction of its bound.
///
/// The bound: the kernels multiply the 8-bit integers exactly (a block's
/// integer dot product fits an i32) and do the rest in f32; each f32 term is
/// a product of scales and such an integer sum, i.e. `Σ x̃ᵢ W̃ᵢ` over a block
/// (for q4_k, `Σ x̃ᵢ d·scᵢ·qᵢ` and `Σ x̃ᵢ dmin·mᵢ` apart), formed with at most
/// 4 roundings (the scales' product, times the integer sum, and the
/// reference's own `d·q` and `W̃ᵢ`), and the terms, at most one per element,
/// are summed in f32 in some order. So (Higham, *Accuracy and Stability of
/// Numerical Algorithms*, §3–4: `|fl(Σ tⱼ) − Σ tⱼ| ≤ γₙ₋₁ Σ |tⱼ|`, `γₙ =
/// n·u/(1 − n·u)`, `u = 2⁻²⁴`) `|y − x̃ W̃ᵀ| ≤ γ_{k+4} Σᵢ |x̃ᵢ| Aᵢ`, with `Aᵢ`
/// from [`term_magnitudes`]; `x̃ W̃ᵀ` is computed in f64, where the products
/// of two f32 are exact.
fn activation_format(w: &Tensor, dtype: GgmlDType, x: &Tensor) -> (GgmlDType, f64) {
    let q = QuantizedWeight::quantize(w, dtype).unwrap();
    let y = q.forward(x).unwrap().to_dtype(DType::F64).unwrap();
    let wq = q.dequantize(&Device::Cpu).unwrap();
    let a = term_magnitudes(w, dtype).to_dtype(DType::F64).unwrap();
    let k = x.dim(1).unwrap();
    let u = 2f64.powi(-24);
    let n = (k + 4) as f64;
    let gamma = n * u / (1.0 - n * u);
    let f64t = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
    let mut worst = Vec::new();
    for format in [GgmlDType::Q8_0, GgmlDType::Q8K] {
        if !k.is_multiple_of(format.block_size()) {
            continue;
        }
        let xq = rounded(x, format);
        let want = f64t(&xq).matmul(&f64t(&wq).t().unwrap()).unwrap();
        let bound = (f64t(&xq.abs().unwrap()).matmul(&a.t().unwrap()).unwrap() * gamma).unwrap();
        let err = (&y - &want).unwrap().abs().unwrap();
        // The largest error as a fraction of its bound (0/0 = 0), and whether
        // every error is within its bound.
        let ratio = max_f64((&err / (&bound + f64::MIN_POSITIVE).unwrap()).unwrap());
        if max_f64((err - bound).unwrap()) <= 0.0 {
            return (format, ratio);
        }
        worst.push((format, ratio));
    }
    panic!(
        "{dtype:?} {:?}: candle's quantised matmul is x̃ W̃ᵀ for no known 8-bit activation format \
         (largest error / f32 rounding bound: {worst:?})",
        w.dims()
    );
}

#[test]
fn quantised_matmul_is_8_bit_activations_times_the_dequantised_weights() {
    let dev = Device::Cpu;
    // The shapes below, and those of `tiny(256)` (16 rows): whether a CPU's
    // tiled kernels take a matrix depends on its `out` and `in`.
    for (rows, out, inp) in [
        (6, 2100, 512),
        (16, 128, 256),
        (16, 256, 256),
        (16, 512, 256),
        (16, 256, 512),
    ] {
        let w = Tensor::randn(0f32, 0.05, (out, inp), &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (rows, inp), &dev).unwrap();
        for dtype in [GgmlDType::Q8_0, GgmlDType::Q4K] {
            let (format, ratio) = activation_format(&w, dtype, &x);
            eprintln!(
                "{dtype:?} ({rows}, {inp})·({out}, {inp})ᵀ: {format:?} activations, \
                 error ≤ {ratio:.3} of its bound"
            );
        }
    }
}

#[test]
fn quantised_matmul_input_gradient_is_the_dequantised_weights() {
    let dev = Device::Cpu;
    // 2100 × 512: the backward dequantises 2048 rows, then 52.
    let w = Tensor::randn(0f32, 0.05, (2100, 512), &dev).unwrap();
    let g = Tensor::randn(0f32, 1.0, (6, 2100), &dev).unwrap();
    for dtype in [GgmlDType::Q8_0, GgmlDType::Q4K] {
        let q = QuantizedWeight::quantize(&w, dtype).unwrap();
        let dense = q.dequantize(&dev).unwrap();
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (6, 512), &dev).unwrap()).unwrap();
        let y = q.forward(x.as_tensor()).unwrap();
        let grad_q = (y.clone() * &g)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let y_dense = x.as_tensor().matmul(&dense.t().unwrap()).unwrap();
        let grad_d = (y_dense.clone() * &g)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let (gq, gd) = (
            grad_q.get(x.as_tensor()).unwrap(),
            grad_d.get(x.as_tensor()).unwrap(),
        );
        assert!(
            rel(gq, gd) < 1e-5,
            "{dtype:?}: dX differs by {}",
            rel(gq, gd)
        );
        assert!(
            q.size_in_bytes() * 3 < w.elem_count() * 4,
            "{dtype:?} is not small"
        );
    }
}

fn tiny(hidden: usize) -> LlamaConfig {
    let json = serde_json::json!({
        "model_type": "llama", "vocab_size": 64, "hidden_size": hidden, "intermediate_size": 512,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "tie_word_embeddings": true,
    });
    let wire = serde_json::from_value(json).unwrap();
    LlamaConfig::resolve(&wire, std::path::Path::new("config.json")).unwrap()
}

/// The logits and the LoRA gradients of a summed log-likelihood on a model
/// whose adapter has a non-zero B (so both A and B get gradients).
fn lora_grads(model: &LlamaForCausalLM) -> (Tensor, Vec<(String, Tensor)>) {
    let dev = Device::Cpu;
    let ids = Tensor::new(
        &[[1u32, 5, 9, 13, 2, 7, 30, 4], [3, 8, 8, 21, 40, 2, 11, 6]],
        &dev,
    )
    .unwrap();
    let mask = Tensor::ones((2, 8), DType::F32, &dev).unwrap();
    let logits = model.forward(ModelInput::Ids(&ids), &mask).unwrap();
    let loss = token_logprobs(&logits, &ids)
        .unwrap()
        .sum_all()
        .unwrap()
        .neg()
        .unwrap();
    let grads = loss.backward().unwrap();
    let vars = model.parameters().vars();
    let grads = vars
        .iter()
        .map(|(n, v)| (n.clone(), grads.get(v.as_tensor()).unwrap().clone()))
        .collect();
    (logits, grads)
}

#[test]
fn lora_gradients_flow_through_a_quantised_base() {
    let config = golden::small_lora(&TargetModule::ALL, 0.0);
    for kind in [Quantize::Q8_0, Quantize::Q4K] {
        let mut model =
            LlamaForCausalLM::random(tiny(256), 0.05, 3, &Trainable::None, &Device::Cpu).unwrap();
        attach_fresh(&mut model, &config, 1).unwrap();
        // B = 0 would leave A without a gradient; give B values, seeded, so
        // that the comparison below is the same each run (candle's CPU
        // `randn` cannot be seeded, and made this test flaky).
        golden::nonzero_lora_b(&model, 11, 0.08);
        let bytes = model.quantize_base(kind).unwrap();
        assert!(model.is_quantized());
        assert!(
            bytes * 3 < 2 * (4 * 256 * 256 + 2 * 128 * 256 + 3 * 256 * 512) * 4,
            "{kind:?}: {bytes} bytes"
        );
        // The reference runs the same forward (candle's quantised matmul, so
        // the same 8-bit activations, whatever kernel this CPU gets; what
        // that matmul computes is checked above) and takes each quantised
        // projection's input gradient from autograd over the dequantised
        // matrix. It cannot run its own f32 forward instead: any rounding
        // difference in a projection's input can move an activation across
        // an 8-bit step (about 1 % of its block's largest value), which no
        // f32 tolerance covers. With the forward shared bit for bit, the
        // backward is linear in the loss gradient through the same Jacobians
        // and the two differ only in the order f32 sums are taken in (the
        // block-wise `dY·W̃` against one matmul, gradients summed into shared
        // nodes in another graph order): a few units of 2⁻²⁴ per operation,
        // over the ~40 operations between the loss and a layer-0 adapter, so
        // 1e-5 of each gradient's norm. A wrong backward (a missing row block,
        // a scale, no gradient below a quantised layer) is off by far more.
        let reference = model.with_autograd_quantized_backward().unwrap();
        let ((lq, q), (lr, r)) = (lora_grads(&model), lora_grads(&reference));
        assert_eq!(
            golden::max_abs_diff(&lq, &lr),
            0.0,
            "{kind:?}: the reference's forward is not the quantised one"
        );
        assert_eq!(q.len(), 2 * 7 * 2);
        for ((name, gq), (_, gr)) in q.iter().zip(&r) {
            let d = rel(gq, gr);
            assert!(
                d.is_finite() && d <= 1e-5,
                "{kind:?} {name}: gradient differs by {d}"
            );
            assert!(
                gq.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0,
                "{name}: zero gradient"
            );
        }
        let tmp = tempfile::tempdir().unwrap();
        let e = model
            .save_pretrained(&tmp.path().join("m"), &SaveOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("quantised"), "{e}");
    }
}

struct Quiet;
impl Observer for Quiet {}

#[test]
fn a_lora_run_trains_on_a_quantised_base() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("chats.jsonl");
    std::fs::write(&data, "{\"messages\": [{\"role\": \"user\", \"content\": \"Name a color.\"}, {\"role\": \"assistant\", \"content\": \"Blue.\"}]}\n").unwrap();
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/llama_gqa");
    for q in ["q8_0", "q4_k"] {
        let out = tmp.path().join(q);
        let text = format!("[model]\npath = {base:?}\nquantize = \"{q}\"\n[data]\ntrain = {data:?}\n[train]\noutput_dir = {out:?}\nmax_steps = 2\nbatch_size = 1\nmicro_batch_size = 1\nlr = 1e-2\nwarmup_ratio = 0.0\noptimizer = \"adamw\"\n[adapter]\nkind = \"lora\"\nr = 2\n");
        let c = RunConfig::parse(&text, "run.toml", &[]).unwrap();
        train_from_config(&c, None, &AtomicBool::new(false), &mut Quiet).unwrap();
        let rows = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        let losses: Vec<f64> = rows
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64())
            .collect();
        assert_eq!(losses.len(), 2);
        assert!(
            losses.iter().all(|l| l.is_finite()) && losses[1] < losses[0],
            "{q}: {losses:?}"
        );
        assert!(out.join("final/adapter_model.safetensors").is_file());
    }
}
