//! A vectorisable `exp`, and the loops of the softmaxes, the vocabulary head
//! and SwiGLU built on it, compiled twice: for the baseline x86-64 target and
//! for AVX2 + FMA, picked at run time (`simd_fn!`).
//!
//! libm's `expf` is a scalar call: a SmolLM2 step makes about 2·10⁸ of them
//! (attention's softmax, the head's log-softmax, SwiGLU's sigmoid), 5 % of the
//! step in the profile. [`exp`] is branch-free arithmetic that the compiler
//! turns into 8-wide vector code inside these loops.

/// Defines `fn name(..)` that runs its body compiled for AVX2 + FMA when the
/// CPU has both (checked once and cached by `std`), for the baseline target
/// otherwise. The body must be safe code; only the dispatch is `unsafe`.
macro_rules! simd_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident: $t:ty),* $(,)?) $(-> $r:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($($a: $t),*) $(-> $r)? {
            #[inline(always)]
            fn imp($($a: $t),*) $(-> $r)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn wide($($a: $t),*) $(-> $r)? {
                    imp($($a),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has the features `wide` was compiled for.
                    return unsafe { wide($($a),*) };
                }
            }
            imp($($a),*)
        }
    };
}
pub(crate) use simd_fn;

/// `eˣ` to about 2 ulp: `x = n·ln 2 + r`, `|r| ≤ ln 2 / 2`, `eʳ` by Cephes'
/// degree-6 polynomial, `2ⁿ` written into the exponent bits. 0 below about
/// −87.7 (`2ⁿ` underflows to 0 at `n = −127`; the smallest normal f32 is
/// `e^−87.34`), `∞` above about 88.4 (`n = 128`), NaN for NaN.
///
/// No branches: the input is clamped (by selects that keep a NaN) and both
/// ends fall out of the exponent arithmetic, so the loops vectorise.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = if x < -88.0 { -88.0 } else { x };
    let x = if x > 88.7 { 88.7 } else { x };
    // Round x·log₂e to the nearest integer with the 1.5·2²³ trick: without a
    // `round` instruction (the baseline target has none).
    const MAGIC: f32 = 12_582_912.0;
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4; // ln 2 in two parts
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // n + 127 in the exponent field (t's low mantissa bits hold n + 2²²):
    // 0 (the float 0) at n = −127, 255 (∞) at n = 128.
    let bits = (t.to_bits() as i32)
        .wrapping_sub(0x4B40_0000)
        .wrapping_add(127)
        << 23;
    er * f32::from_bits(bits as u32)
}

simd_fn! {
    /// `xs[i] ← e^(xs[i] − shift)`, returning their sum (`−∞` entries give 0).
    pub fn exp_shifted(xs: &mut [f32], shift: f32) -> f32 {
        let mut acc = [0f32; 8];
        let mut chunks = xs.chunks_exact_mut(8);
        for c in &mut chunks {
            for i in 0..8 {
                c[i] = exp(c[i] - shift);
                acc[i] += c[i];
            }
        }
        let mut sum: f32 = acc.iter().sum();
        for x in chunks.into_remainder() {
            *x = exp(*x - shift);
            sum += *x;
        }
        sum
    }
}

simd_fn! {
    /// The largest of `xs`, `−∞` when empty; NaNs are passed over, as
    /// `f32::max` does (8 running maxima, so the loop vectorises).
    pub fn max(xs: &[f32]) -> f32 {
        let mut acc = [f32::NEG_INFINITY; 8];
        let mut chunks = xs.chunks_exact(8);
        for c in &mut chunks {
            for i in 0..8 {
                acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
            }
        }
        let m = acc.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        chunks.remainder().iter().fold(m, |m, &x| m.max(x))
    }
}

simd_fn! {
    /// `Σᵢ e^(xs[i] − shift)`.
    pub fn sum_exp_shifted(xs: &[f32], shift: f32) -> f32 {
        let mut acc = [0f32; 8];
        let mut chunks = xs.chunks_exact(8);
        for c in &mut chunks {
            for i in 0..8 {
                acc[i] += exp(c[i] - shift);
            }
        }
        let rest: f32 = chunks.remainder().iter().map(|&x| exp(x - shift)).sum();
        acc.iter().sum::<f32>() + rest
    }
}

simd_fn! {
    /// `out[i] ← scale · e^(xs[i] − shift)`.
    pub fn scaled_exp_shifted(out: &mut [f32], xs: &[f32], shift: f32, scale: f32) {
        for (o, &x) in out.iter_mut().zip(xs) {
            *o = scale * exp(x - shift);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_f64() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let rel = ((exp(x) as f64 - want) / want).abs();
            worst = worst.max(rel);
            x += 0.001_37;
        }
        assert!(worst < 2.5e-7, "worst relative error {worst}");
    }

    #[test]
    fn max_matches_the_scalar_fold() {
        for len in [0, 1, 7, 8, 9, 17, 100] {
            let mut xs: Vec<f32> = (0..len).map(|i| (i as f32 * 0.71).sin() * 5.0).collect();
            let want = xs.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            assert_eq!(max(&xs).to_bits(), want.to_bits(), "len {len}");
            if len > 9 {
                // A NaN is passed over, in a vector lane or the remainder.
                xs[2] = f32::NAN;
                xs[len - 1] = f32::NAN;
                let fold = xs.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                assert!(!fold.is_nan());
                assert_eq!(max(&xs), fold, "len {len}");
                xs[5] = 1e9;
                assert_eq!(max(&xs), 1e9, "len {len}");
            }
        }
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn slice_loops_match_the_scalar_exp() {
        // Lengths around the 8-wide chunks, and a masked (−∞) entry.
        for len in [0, 1, 7, 8, 9, 100] {
            let xs: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin() * 20.0).collect();
            let mut ys = xs.clone();
            if len > 3 {
                ys[3] = f32::NEG_INFINITY;
            }
            let want: Vec<f32> = ys
                .iter()
                .map(|&x| ((x - 1.5) as f64).exp() as f32)
                .collect();
            let wsum: f32 = want.iter().sum();
            let close = |a: f32, b: f32| (a - b).abs() <= 1e-6 * b.abs().max(1e-30);
            assert!(close(sum_exp_shifted(&ys, 1.5), wsum), "len {len}");
            let mut out = vec![0f32; len];
            scaled_exp_shifted(&mut out, &ys, 1.5, -2.0);
            assert!(out.iter().zip(&want).all(|(&o, &w)| close(o, -2.0 * w)));
            let sum = exp_shifted(&mut ys, 1.5);
            assert!(close(sum, wsum), "len {len}: {sum} vs {wsum}");
            assert!(
                ys.iter().zip(&want).all(|(&y, &w)| close(y, w)),
                "len {len}"
            );
        }
    }
}
