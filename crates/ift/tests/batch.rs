//! Batching: reproducible for a seed, every example exactly once, lengths grouped, right padding.

use candle_core::{DType, Device};
use ift::data::*;

fn example(len: usize, trained_from: usize) -> EncodedExample {
    EncodedExample {
        input_ids: (1..=len as u32).collect(),
        loss_mask: (0..len).map(|i| i >= trained_from && i > 0).collect(),
    }
}

#[test]
fn batches_are_reproducible_for_a_seed_and_cover_every_example_once() {
    let lengths: Vec<usize> = (0..1000).map(|i| (i * 7919) % 503 + 1).collect();
    let opts = BatchOptions {
        batch_size: 8,
        seed: 42,
        ..BatchOptions::default()
    };
    let a = batch_indices(&lengths, &opts);
    assert_eq!(a, batch_indices(&lengths, &opts), "same seed, same batches");
    assert_ne!(
        a,
        batch_indices(
            &lengths,
            &BatchOptions {
                seed: 43,
                ..opts.clone()
            }
        )
    );
    let mut all: Vec<usize> = a.iter().flatten().copied().collect();
    all.sort();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
    assert!(a.iter().all(|b| b.len() <= 8) && a.iter().filter(|b| b.len() < 8).count() <= 1);

    // Grouping: padding waste is far below that of random batches.
    let waste = |batches: &[Vec<usize>]| -> usize {
        batches
            .iter()
            .map(|b| {
                let max = b.iter().map(|&i| lengths[i]).max().unwrap();
                b.iter().map(|&i| max - lengths[i]).sum::<usize>()
            })
            .sum()
    };
    let random = batch_indices(
        &lengths,
        &BatchOptions {
            group_by_length: false,
            ..opts.clone()
        },
    );
    assert!(
        waste(&a) * 5 < waste(&random),
        "{} vs {}",
        waste(&a),
        waste(&random)
    );

    let ordered = batch_indices(
        &lengths,
        &BatchOptions {
            shuffle: false,
            group_by_length: false,
            ..opts
        },
    );
    assert_eq!(
        ordered[0],
        (0..8).collect::<Vec<_>>(),
        "no shuffle: file order"
    );
}

#[test]
fn collate_pads_right_and_builds_tensors() {
    let (a, b) = (example(5, 2), example(3, 1));
    let batch = SequenceBatch::collate(&[&a, &b], 0);
    assert_eq!(
        batch.input_ids,
        vec![vec![1, 2, 3, 4, 5], vec![1, 2, 3, 0, 0]]
    );
    assert_eq!(batch.attention_mask[1], [true, true, true, false, false]);
    assert_eq!(
        batch.loss_mask,
        vec![
            vec![false, false, true, true, true],
            vec![false, true, true, false, false]
        ]
    );
    assert_eq!(batch.num_trained(), 5);

    let t = batch.to_tensors(&Device::Cpu).unwrap();
    assert_eq!(
        (t.input_ids.dims(), t.input_ids.dtype()),
        (&[2usize, 5][..], DType::U32)
    );
    assert_eq!(
        (t.attention_mask.dims(), t.loss_mask.dtype()),
        (&[2usize, 5][..], DType::F32)
    );
    let lm: Vec<Vec<f32>> = t.loss_mask.to_vec2().unwrap();
    assert_eq!(lm[1], [0.0, 1.0, 1.0, 0.0, 0.0]);

    let pair = EncodedPreference {
        chosen: example(4, 2),
        rejected: example(6, 3),
    };
    let pb = PreferenceBatch::collate(&[&pair], 0);
    let both = pb.concatenated(0);
    assert_eq!((both.batch_size(), both.seq_len()), (2, 6));
    assert_eq!(both.loss_mask[0], [false, false, true, true, false, false]);
    let kto = EncodedKto {
        example: example(2, 1),
        label: true,
    };
    let kb = KtoBatch::collate(&[&kto], 0);
    assert_eq!((kb.labels, kb.sequences.seq_len()), (vec![true], 2));
}
