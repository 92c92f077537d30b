//! `SFT_BENCH_PARTS=1`: forward + backward of the pieces of step (b) in
//! isolation, at the 32M config's shapes, to see where the step's time goes
//! without instrumenting the model. Each part starts from fresh `Var`s so
//! its backward covers exactly that piece; "× 8" parts run once per layer.

use candle_core::{DType, Device, Result, Tensor, Var};
use ift::engine::kernels::attention::attention_forward;
use ift::engine::kernels::attention_backward::attention_backward;
use ift::engine::kernels::softmax::AttnMask;
use ift::loss::{log_softmax, token_logprobs_primitive};
use ift::model::{attention_bias, softmax_last_dim};

use super::{measure, Figure, Opts, BATCH, SEQ};

fn var(shape: &[usize], dev: &Device) -> Result<Var> {
    Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, dev)?)
}

/// `x Wᵀ` for a weight `(out, in)`, as `Linear` computes it.
fn linear(x: &Tensor, w: &Var) -> Result<Tensor> {
    x.matmul(&w.as_tensor().t()?)
}

pub fn run(opts: &Opts, ids: &Tensor) -> Result<Vec<Figure>> {
    let dev = Device::Cpu;
    let (b, t, v, hid, inter, h, kvh, d) = (BATCH, SEQ, 8192, 512, 1408, 8, 4, 64);
    let rows = b * t;
    let mut out = Vec::new();

    let logits = var(&[b, t, v], &dev)?;
    out.push(measure("part: loss over vocab", opts, || {
        let logp = token_logprobs_primitive(logits.as_tensor(), ids)?;
        logp.neg()?.mean_all()?.backward().map(drop)
    })?);
    // Candidate: log-softmax over the contiguous (b, t, vocab) logits, one
    // gather, then drop the last position — no narrow + contiguous copy of
    // the logits, no strided reductions.
    let next = Tensor::cat(&[&ids.narrow(1, 1, t - 1)?, &ids.narrow(1, 0, 1)?], 1)?;
    out.push(measure("part: loss, alt full-row", opts, || {
        let logp = log_softmax(logits.as_tensor())?.gather(&next.unsqueeze(2)?, 2)?;
        let logp = logp.squeeze(2)?.narrow(1, 0, t - 1)?;
        logp.neg()?.mean_all()?.backward().map(drop)
    })?);

    check_fused_loss(&logits, ids)?;
    out.push(measure("part: loss, FUSED op", opts, || {
        let logp = ift::loss::token_logprobs(logits.as_tensor(), ids)?;
        logp.neg()?.mean_all()?.backward().map(drop)
    })?);

    let x = var(&[rows, hid], &dev)?;
    let head = var(&[v, hid], &dev)?;
    out.push(measure("part: lm_head matmul", opts, || {
        linear(x.as_tensor(), &head)?.backward().map(drop)
    })?);

    let shapes = [
        (h * d, hid),
        (kvh * d, hid),
        (kvh * d, hid),
        (hid, h * d),
        (inter, hid),
        (inter, hid),
        (hid, inter),
    ];
    let ws: Vec<Var> = shapes
        .iter()
        .map(|&(o, i)| var(&[o, i], &dev))
        .collect::<Result<_>>()?;
    let xi = var(&[rows, inter], &dev)?;
    out.push(measure("part: layer matmuls x 8", opts, || {
        for _ in 0..8 {
            for (w, &(_, i)) in ws.iter().zip(&shapes) {
                let input = if i == hid { &x } else { &xi };
                linear(input.as_tensor(), w)?.backward()?;
            }
        }
        Ok(())
    })?);

    let q = var(&[b, kvh, 2 * t, d], &dev)?;
    let k = var(&[b, kvh, t, d], &dev)?;
    let vv = var(&[b, kvh, t, d], &dev)?;
    let bias = attention_bias(&Tensor::ones((b, t), DType::F32, &dev)?, None)?;
    out.push(measure("part: attention core x 8", opts, || {
        for _ in 0..8 {
            let s = (q.as_tensor().matmul(&k.as_tensor().t()?)? * 0.125)?;
            let s = s.reshape((b, kvh, 2, t, t))?.broadcast_add(&bias)?;
            let p = softmax_last_dim(&s)?.reshape((b, kvh, 2 * t, t))?;
            p.matmul(vv.as_tensor())?.backward()?;
        }
        Ok(())
    })?);
    // The engine's fused CPU attention (what the explicit engine runs): a
    // no-grad forward, then a training forward and its backward.
    let mask = AttnMask::new(&Tensor::ones((b, t), DType::U8, &dev)?, None)?;
    let (qt, kt, vt) = (q.as_tensor(), k.as_tensor(), vv.as_tensor());
    out.push(measure("part: engine attention forward x 8", opts, || {
        for _ in 0..8 {
            attention_forward(qt, kt, vt, &mask, 0.125, false)?;
        }
        Ok(())
    })?);
    let d_o = Tensor::randn(0f32, 1.0, (b, kvh, 2 * t, d), &dev)?;
    out.push(measure("part: engine attention fwd+bwd x 8", opts, || {
        for _ in 0..8 {
            let a = attention_forward(qt, kt, vt, &mask, 0.125, true)?
                .ok_or_else(|| candle_core::Error::Msg("no fused attention".into()))?;
            let lse = a
                .lse
                .ok_or_else(|| candle_core::Error::Msg("no lse".into()))?;
            let delta = (&d_o * &a.o)?.sum(3)?;
            attention_backward(qt, kt, vt, &d_o, &delta, &lse, &mask, 0.125)?;
        }
        Ok(())
    })?);
    out.push(measure("part: attn matmuls only x 8", opts, || {
        for _ in 0..8 {
            let s = q.as_tensor().matmul(&k.as_tensor().t()?)?;
            s.matmul(vv.as_tensor())?.backward()?;
        }
        Ok(())
    })?);
    let scores = var(&[b, kvh, 2, t, t], &dev)?;
    out.push(measure("part: attn bias+softmax x 8", opts, || {
        for _ in 0..8 {
            let s = scores.as_tensor().broadcast_add(&bias)?;
            softmax_last_dim(&s)?.backward()?;
        }
        Ok(())
    })?);
    check_fused(&scores, &bias)?;
    out.push(measure("part: attn bias+FUSED softmax x 8", opts, || {
        for _ in 0..8 {
            let s = scores.as_tensor().broadcast_add(&bias)?;
            s.apply_op1(super::fused::Softmax)?.backward()?;
        }
        Ok(())
    })?);
    out.push(measure("part: attn bias add only x 8", opts, || {
        for _ in 0..8 {
            scores.as_tensor().broadcast_add(&bias)?.backward()?;
        }
        Ok(())
    })?);
    Ok(out)
}

/// The prototype must agree with the model's softmax, values and gradients,
/// before its timing means anything.
fn check_fused(scores: &Var, bias: &Tensor) -> Result<()> {
    let s = scores.as_tensor().broadcast_add(bias)?;
    let w = Tensor::randn(0f32, 1.0, s.shape(), s.device())?;
    let (a, b) = (softmax_last_dim(&s)?, s.apply_op1(super::fused::Softmax)?);
    let (ga, gb) = (
        (&a * &w)?.sum_all()?.backward()?,
        (&b * &w)?.sum_all()?.backward()?,
    );
    let (ga, gb) = (ga.get(scores).unwrap(), gb.get(scores).unwrap());
    let max = |x: Tensor| x.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>();
    eprintln!(
        "fused softmax vs model: max |dp| = {:e}, max |dgrad| = {:e}",
        max((a - b)?)?,
        max((ga - gb)?)?
    );
    Ok(())
}

fn check_fused_loss(logits: &Var, ids: &Tensor) -> Result<()> {
    let a = token_logprobs_primitive(logits.as_tensor(), ids)?;
    let b = ift::loss::token_logprobs(logits.as_tensor(), ids)?;
    let (ga, gb) = (a.mean_all()?.backward()?, b.mean_all()?.backward()?);
    let (ga, gb) = (ga.get(logits).unwrap(), gb.get(logits).unwrap());
    let max = |x: Tensor| x.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>();
    eprintln!(
        "fused token_logprobs vs model: max |dlogp| = {:e}, max |dgrad| = {:e}",
        max((a - b)?)?,
        max((ga - gb)?)?
    );
    Ok(())
}
