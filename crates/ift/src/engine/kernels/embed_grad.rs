//! The embedding's backward, `dE[id] += dx[token]` for every token.
//!
//! On the CPU this is candle's `index_add`. On CUDA, candle's `index_add`
//! kernel gives each of the `hidden` columns one thread that walks every
//! token in turn, so a step's 16 k tokens run serially. Here the token
//! indices are sorted by id on the host (the ids were read there before the
//! forward queued any work, `Tape::host_ids`), and one GPU thread per
//! (distinct id, column) sums that id's tokens in token order: parallel over
//! ids × columns, and deterministic (no float atomics), so a GPU run repeats
//! bit for bit.

use candle_core::{Result, Tensor};

/// `(vocab, hidden)` f32: the gradient of the embedding rows given `dx`
/// `(tokens, hidden)` f32 and the token ids `(tokens,)`.
pub fn embedding_backward(
    ids: &Tensor,
    host_ids: Option<&[u32]>,
    dx: &Tensor,
    vocab: usize,
) -> Result<Tensor> {
    let hidden = dx.dim(1)?;
    match (dx.device().is_cuda(), host_ids) {
        #[cfg(feature = "cuda")]
        (true, Some(h)) => super::cuda::segment_sum(h, dx, vocab),
        _ => Tensor::zeros((vocab, hidden), dx.dtype(), dx.device())?.index_add(ids, dx, 0),
    }
}

/// Tokens grouped by id, in token order within each group: `order` (token
/// indices) and, per group, its start in `order` (plus a final end) and id.
/// (The CUDA segment sum's; tested on every build.)
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub fn group_by_id(ids: &[u32]) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    order.sort_by_key(|&i| (ids[i as usize], i)); // stable: token order within an id
    let (mut starts, mut group_ids) = (Vec::new(), Vec::new());
    for (k, &i) in order.iter().enumerate() {
        let id = ids[i as usize];
        if group_ids.last() != Some(&id) {
            starts.push(k as u32);
            group_ids.push(id);
        }
    }
    starts.push(order.len() as u32);
    (order, starts, group_ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_token_order_within_an_id() {
        let (order, starts, ids) = group_by_id(&[5, 2, 5, 9, 2, 5]);
        assert_eq!(ids, vec![2, 5, 9]);
        assert_eq!(starts, vec![0, 2, 5, 6]);
        assert_eq!(order, vec![1, 4, 0, 2, 5, 3]);
        assert_eq!(group_by_id(&[]), (vec![], vec![0], vec![]));
    }
}
