//! The reference model, paid once: per-sequence reference log-probabilities
//! for DPO and KTO, computed in one graph-free pass before training, stored in
//! a cache beside the run (`cache.rs`) and reused by later runs and seeds.
//! With every needed entry in the cache, the reference model is never loaded.

mod cache;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;

pub use cache::{sequence_key, weights_fingerprint, SeqKey};

use crate::data::{kto_kl_sequences, BatchPlan, EncodedExample, StepExamples, TrainData};
use crate::error::{Error, Result};
use crate::eval::score_sequences;
use crate::model::LlamaForCausalLM;

/// Summed reference log-probabilities by sequence content.
#[derive(Debug, Clone, Default)]
pub struct ReferenceLogps {
    map: HashMap<SeqKey, f32>,
}

impl ReferenceLogps {
    /// The reference log-probability of `e`'s trained tokens.
    pub fn get(&self, e: &EncodedExample) -> Result<f32> {
        self.map.get(&sequence_key(e)).copied().ok_or_else(|| {
            Error::Train(format!(
                "no reference log-probability for a sequence of {} tokens (the reference pass missed it; this is a bug)",
                e.len()
            ))
        })
    }
}

/// What the reference pass did.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceReport {
    pub cache_file: PathBuf,
    /// Sequences found in the cache.
    pub cached: usize,
    /// Sequences computed now (and added to the cache).
    pub computed: usize,
    /// Forward passes of the reference model (0 with a complete cache).
    pub forward_passes: usize,
    /// Whether the reference model was loaded.
    pub model_loaded: bool,
    /// A corrupt cache file that was recomputed.
    pub warning: Option<String>,
}

/// Every sequence whose reference log-probability a run can ask for: both
/// answers of every pair, every KTO record, and the KTO mismatched pairs of
/// every planned step and evaluation batch (KTO's records are the only
/// unpaired data).
pub fn needed_sequences(
    train: &TrainData,
    plan: &BatchPlan,
    total_steps: u64,
    eval: &TrainData,
    eval_batch: usize,
) -> Vec<EncodedExample> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut add = |e: &EncodedExample| {
        if seen.insert(sequence_key(e)) {
            out.push(e.clone());
        }
    };
    let mut visit = |examples: &StepExamples<'_>, kl: bool| match examples {
        StepExamples::Sequences(v) => v.iter().for_each(|e| add(e)),
        StepExamples::Pairs(v) => v.iter().for_each(|p| {
            add(&p.chosen);
            add(&p.rejected);
        }),
        StepExamples::Unpaired(v) => {
            v.iter().for_each(|k| add(&k.example));
            if kl {
                kto_kl_sequences(v).iter().for_each(&mut add);
            }
        }
    };
    let kto = matches!(train, TrainData::Unpaired(_));
    if kto {
        for step in 0..total_steps {
            visit(&train.select(&plan.batch(step)), true);
        }
    } else {
        visit(&train.select(&(0..train.len()).collect::<Vec<_>>()), false);
    }
    for chunk in eval.chunks(eval_batch) {
        visit(&chunk, kto);
    }
    out
}

/// How much reference-pass work a kill may lose: the cache is rewritten at
/// least this often while the pass runs (a rewrite costs 20 bytes a sequence).
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(20);

/// Fills the reference log-probabilities of `sequences` from the cache file
/// `<cache_dir>/<fingerprint>.safetensors`, computing the missing ones with the
/// model `load` returns (called only if something is missing) in batches of
/// `micro`, and writes the completed cache back. `progress(done, total)` is
/// called after each batch.
pub fn prepare_reference_logps(
    sequences: &[EncodedExample],
    cache_dir: &Path,
    fingerprint: &str,
    load: &mut dyn FnMut() -> Result<LlamaForCausalLM>,
    micro: usize,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(ReferenceLogps, ReferenceReport)> {
    let cache_file = cache_dir.join(format!("{fingerprint}.safetensors"));
    let (mut map, warning) = cache::read_cache(&cache_file);
    let missing: Vec<&EncodedExample> = sequences
        .iter()
        .filter(|e| !map.contains_key(&sequence_key(e)))
        .collect();
    let mut report = ReferenceReport {
        cache_file: cache_file.clone(),
        cached: sequences.len() - missing.len(),
        computed: missing.len(),
        forward_passes: 0,
        model_loaded: false,
        warning,
    };
    if !missing.is_empty() {
        let model = load()?;
        report.model_loaded = true;
        // Longest first, as `score_sequences` batches (little padding), one
        // batch per call so that a stop is honoured between batches.
        let mut owned: Vec<EncodedExample> = missing.into_iter().cloned().collect();
        owned.sort_by_key(|e| std::cmp::Reverse(e.input_ids.len()));
        let total = owned.len();
        std::fs::create_dir_all(cache_dir).map_err(|e| Error::io(cache_dir, e))?;
        // The cache is written as the pass goes (every FLUSH_EVERY), so a
        // kill loses at most that much work and a stop loses none.
        let mut flushed = Instant::now();
        let mut done = 0;
        for batch in owned.chunks(micro.max(1)) {
            let scored = score_sequences(&model, batch, micro, device, |_| {});
            let scores = match scored {
                Err(Error::Interrupted(_)) => {
                    cache::write_cache_merged(&cache_file, &map)?;
                    return Err(Error::Interrupted(format!(
                        "interrupted during the reference pass: {} of {total} reference log-probabilities computed and saved in {}; the same command continues from there",
                        done,
                        cache_file.display()
                    )));
                }
                r => r?,
            };
            for (e, s) in batch.iter().zip(scores) {
                map.insert(sequence_key(e), s.logprob_sum as f32);
            }
            done += batch.len();
            report.forward_passes += 1;
            progress(done, total);
            if flushed.elapsed() >= FLUSH_EVERY && done < total {
                cache::write_cache_merged(&cache_file, &map)?;
                flushed = Instant::now();
            }
        }
        cache::write_cache_merged(&cache_file, &map)?;
    }
    Ok((ReferenceLogps { map }, report))
}
