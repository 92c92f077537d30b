//! Drawing one token from a row of logits: the one nucleus (top-p) sampler,
//! used by generation (`eval::generate`) and by IFT's sampled predictions
//! (`loss::ift_predict`). A leaf module: it depends on nothing in the crate.

/// Token ids by logit, most likely first; ties keep the lower id first (a
/// stable sort).
pub fn by_likelihood(logits: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order
}

/// A draw from the nucleus: of `order` (ids most likely first, perhaps cut to
/// the top k), the shortest prefix whose probability at `temperature`
/// (normalised over `order`) reaches `top_p` — at least one token — sampled
/// in proportion to probability with `u`, uniform in `[0, 1)`.
pub fn nucleus_draw(logits: &[f32], order: &[usize], top_p: f64, temperature: f64, u: f64) -> u32 {
    assert!(!order.is_empty(), "sampling from no tokens");
    let t = temperature.max(1e-6);
    let max = logits[order[0]] as f64;
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| ((logits[i] as f64 - max) / t).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let (mut keep, mut mass) = (0, 0.0);
    while keep < weights.len() && (keep == 0 || mass < top_p * total) {
        mass += weights[keep];
        keep += 1;
    }
    let mut draw = u * mass;
    for (n, w) in weights[..keep].iter().enumerate() {
        draw -= w;
        if draw < 0.0 {
            return order[n] as u32;
        }
    }
    order[keep - 1] as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probabilities 0.5, 0.3, 0.2 (logits are their logs).
    fn logits() -> Vec<f32> {
        [0.5f32, 0.3, 0.2].iter().map(|p| p.ln()).collect()
    }

    fn drawn(top_p: f64, temperature: f64, order: &[usize]) -> std::collections::BTreeSet<u32> {
        let l = logits();
        (0..1000)
            .map(|k| nucleus_draw(&l, order, top_p, temperature, k as f64 / 1000.0))
            .collect()
    }

    #[test]
    fn draws_keep_to_the_nucleus() {
        let all = by_likelihood(&logits());
        assert_eq!(all, [0, 1, 2]);
        assert_eq!(drawn(1.0, 1.0, &all), [0, 1, 2].into());
        // {0.5} does not reach 0.7; {0.5, 0.3} does.
        assert_eq!(drawn(0.7, 1.0, &all), [0, 1].into());
        assert_eq!(drawn(0.5, 1.0, &all), [0].into());
        assert_eq!(drawn(0.4, 1.0, &all), [0].into());
        // Cut to the top 2: normalised over them.
        assert_eq!(drawn(1.0, 1.0, &all[..2]), [0, 1].into());
        // A tiny temperature concentrates on the argmax.
        assert_eq!(drawn(1.0, 1e-3, &all), [0].into());
    }

    #[test]
    fn draws_follow_the_probabilities() {
        let (l, all) = (logits(), [0usize, 1, 2]);
        let n = 10_000;
        let mut counts = [0usize; 3];
        for k in 0..n {
            counts[nucleus_draw(&l, &all, 1.0, 1.0, (k as f64 + 0.5) / n as f64) as usize] += 1;
        }
        for (c, p) in counts.iter().zip([0.5, 0.3, 0.2]) {
            assert!((*c as f64 / n as f64 - p).abs() < 1e-3, "{counts:?}");
        }
    }

    #[test]
    fn ties_keep_the_lower_id_first() {
        assert_eq!(by_likelihood(&[1.0, 3.0, 3.0, 0.0]), [1, 2, 0, 3]);
    }
}
