//! Preference objectives in the trainer: the reference cache (reused, never
//! loading the reference; invalidated by a changed model or record; repaired
//! when corrupt), both pair record formats, and gradient accumulation
//! invariance for every objective.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use candle_core::Device;
use ift::config::RunConfig;
use ift::data::{
    load_preference_dataset, EncodedExample, EncodedKto, EncodedPreference, LoadOptions,
};
use ift::model::{LlamaForCausalLM, Pretrained, Trainable};
use ift::objective::{Objective, ObjectiveKind};
use ift::reference::{prepare_reference_logps, ReferenceReport};
use ift::run::train_from_config;
use ift::train::{
    kto_kl_sequences, step_passes, Engine, Observer, Reference, StepBatch, StepContext, StepEnv,
    StepPasses,
};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

struct Quiet;
impl Observer for Quiet {}

const PAIRS: &str = r#"{"prompt": [{"role": "user", "content": "Name a color."}], "chosen": [{"role": "assistant", "content": "Blue."}], "rejected": [{"role": "assistant", "content": "Seven."}]}
{"prompt": [{"role": "user", "content": "2+2?"}], "chosen": [{"role": "assistant", "content": "4"}], "rejected": [{"role": "assistant", "content": "5"}]}
{"prompt": [{"role": "user", "content": "Capital of France?"}], "chosen": [{"role": "assistant", "content": "Paris."}], "rejected": [{"role": "assistant", "content": "Rome, I think."}]}
{"prompt": [{"role": "user", "content": "Say hi."}], "chosen": [{"role": "assistant", "content": "Hi!"}], "rejected": [{"role": "assistant", "content": "No."}]}
"#;

fn config(dir: &Path, data: &Path, out: &str, extra: &[&str]) -> RunConfig {
    let text = format!(
        "[model]\npath = {:?}\n[data]\ntrain = {:?}\n[objective]\nkind = \"dpo\"\n[train]\noutput_dir = {:?}\nmax_steps = 2\nbatch_size = 2\nmicro_batch_size = 2\nlr = 1e-3\noptimizer = \"adamw\"\nreference_cache = {:?}\n",
        fixture("models/llama_gqa"),
        data,
        dir.join(out),
        dir.join("cache"),
    );
    let o: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    RunConfig::parse(&text, "test.toml", &o).unwrap()
}

fn report(c: &RunConfig) -> ReferenceReport {
    train_from_config(c, None, &AtomicBool::new(false), &mut Quiet)
        .unwrap()
        .reference
        .expect("DPO runs a reference pass")
}

#[test]
fn reference_cache_is_reused_invalidated_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("pairs.jsonl");
    std::fs::write(&data, PAIRS).unwrap();
    let first = report(&config(dir.path(), &data, "a", &[]));
    assert_eq!((first.cached, first.computed), (0, 8));
    assert!(first.forward_passes > 0);

    // Another run and seed: every sequence cached, the reference never loaded.
    let second = report(&config(dir.path(), &data, "b", &["train.seed=7"]));
    assert_eq!(
        (second.cached, second.computed, second.forward_passes),
        (8, 0, 0)
    );
    assert!(!second.model_loaded && second.warning.is_none());

    // One edited answer: exactly that sequence is recomputed.
    std::fs::write(&data, PAIRS.replace("Paris.", "Paris, of course.")).unwrap();
    let edited = report(&config(dir.path(), &data, "c", &[]));
    assert_eq!((edited.cached, edited.computed), (7, 1));

    // Another reference model: another cache file, all computed.
    let other = format!(
        "objective.reference={:?}",
        fixture("preference/llama_gqa_ref")
    );
    let changed = report(&config(dir.path(), &data, "d", &[&other]));
    assert_ne!(changed.cache_file, edited.cache_file);
    assert_eq!((changed.cached, changed.computed), (0, 8));

    // A truncated cache file: a warning naming it, then recomputed and rewritten.
    let bytes = std::fs::read(&edited.cache_file).unwrap();
    std::fs::write(&edited.cache_file, &bytes[..bytes.len() / 2]).unwrap();
    let repaired = report(&config(dir.path(), &data, "e", &[]));
    let warning = repaired.warning.expect("a corrupt cache is reported");
    assert!(
        warning.contains("corrupt") && warning.contains(&edited.cache_file.display().to_string()),
        "{warning}"
    );
    assert_eq!(repaired.computed, 8);
    let again = report(&config(dir.path(), &data, "f", &[]));
    assert_eq!((again.computed, again.warning), (0, None));
}

/// The same pair as `{"prompt", "chosen", "rejected"}` messages and as
/// ShareGPT gives the same tokens, so the same loss.
#[test]
fn both_pair_record_formats_encode_the_same_pair() {
    let p = Pretrained::load(&fixture("models/llama_gqa"), &Trainable::None, &Device::Cpu).unwrap();
    let opts = LoadOptions::default();
    let (plain, _) =
        load_preference_dataset(&fixture("records/preference.jsonl"), &p.tokenizer, &opts).unwrap();
    let (sharegpt, _) = load_preference_dataset(
        &fixture("records/sharegpt_preference.json"),
        &p.tokenizer,
        &opts,
    )
    .unwrap();
    assert_eq!(plain[1], sharegpt[0]);
    assert!(plain[1].chosen.num_trained() > 0 && plain[1].chosen != plain[1].rejected);
}

fn random_example(rng: &mut StdRng, prompt: usize, answer: usize) -> EncodedExample {
    EncodedExample {
        input_ids: (0..prompt + answer)
            .map(|_| rng.random_range(0..380))
            .collect(),
        loss_mask: (0..prompt + answer).map(|i| i >= prompt).collect(),
    }
}

fn passes(
    model: &LlamaForCausalLM,
    o: &Objective,
    batch: StepBatch<'_>,
    r: Reference<'_>,
    micro: usize,
) -> StepPasses {
    let env = StepEnv {
        objective: o,
        reference: r,
        ctx: StepContext { step: 0, seed: 1 },
        device: &Device::Cpu,
        engine: Engine::default(),
    };
    step_passes(model, batch, micro, &env, true).unwrap()
}

#[test]
fn accumulation_1x8_equals_8x1_for_every_preference_objective() {
    let dev = Device::Cpu;
    let model =
        LlamaForCausalLM::from_pretrained(&fixture("models/llama_gqa"), &Trainable::All, &dev)
            .unwrap();
    let reference = LlamaForCausalLM::from_pretrained(
        &fixture("preference/llama_gqa_ref"),
        &Trainable::None,
        &dev,
    )
    .unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let pairs: Vec<EncodedPreference> = (0..8)
        .map(|i| {
            let chosen = random_example(&mut rng, 3 + i % 3, 2 + i % 4);
            let mut rejected = random_example(&mut rng, 0, 1 + i % 5);
            let prompt = chosen.loss_mask.iter().position(|&m| m).unwrap();
            rejected
                .input_ids
                .splice(0..0, chosen.input_ids[..prompt].iter().copied());
            rejected
                .loss_mask
                .splice(0..0, std::iter::repeat_n(false, prompt));
            rejected.loss_mask[prompt] = true;
            EncodedPreference { chosen, rejected }
        })
        .collect();
    let kto: Vec<EncodedKto> = (0..8)
        .map(|i| EncodedKto {
            example: random_example(&mut rng, 2 + i % 4, 2 + i % 3),
            label: i % 3 != 0,
        })
        .collect();
    let (pr, kr): (Vec<&EncodedPreference>, Vec<&EncodedKto>) =
        (pairs.iter().collect(), kto.iter().collect());
    let mut seqs: Vec<EncodedExample> = pairs
        .iter()
        .flat_map(|p| [p.chosen.clone(), p.rejected.clone()])
        .collect();
    seqs.extend(kto.iter().map(|k| k.example.clone()));
    seqs.extend(kto_kl_sequences(&kr));
    let cache = tempfile::tempdir().unwrap();
    let mut load = || Ok(reference.clone());
    let (logps, _) =
        prepare_reference_logps(&seqs, cache.path(), "t", &mut load, 4, &dev, &mut |_, _| {})
            .unwrap();
    let r = Reference {
        logps: Some(&logps),
        model: Some(&reference),
    };
    for kind in ObjectiveKind::ALL
        .into_iter()
        .filter(|k| !matches!(k, ObjectiveKind::Sft | ObjectiveKind::Ift))
    {
        let o = Objective::default_of(kind);
        let batch = match kind {
            ObjectiveKind::Kto => StepBatch::Unpaired(&kr),
            _ => StepBatch::Pairs(&pr),
        };
        let (whole, split) = (
            passes(&model, &o, batch, r, 8),
            passes(&model, &o, batch, r, 1),
        );
        assert!(
            (whole.loss - split.loss).abs() < 1e-5 * whole.loss.abs(),
            "{kind:?}: {} vs {}",
            whole.loss,
            split.loss
        );
        // Rewards are differences of f32 sums of tens of nats: an absolute floor.
        for (k, v) in &whole.extra {
            assert!(
                (v - split.extra[k]).abs() < 1e-4 * v.abs() + 1e-5,
                "{kind:?} {k}: {v} vs {}",
                split.extra[k]
            );
        }
        for (name, var) in model.parameters().vars() {
            let (a, b) = (whole.grads.get(var).unwrap(), split.grads.get(var).unwrap());
            let d = (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let s = a
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d <= 1e-4 * s.max(1e-8), "{kind:?} {name}: {d} (max {s})");
        }
    }
}

/// Stops the run (as Ctrl-C does) once `at` steps are done.
struct StopAt<'a> {
    at: u64,
    flag: &'a AtomicBool,
}

impl Observer for StopAt<'_> {
    fn on_step(&mut self, m: &ift::train::StepMetrics) {
        if m.step == self.at {
            self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

fn final_weights(run: &Path) -> Vec<u8> {
    std::fs::read(run.join("final/model.safetensors")).unwrap()
}

/// Interrupt + resume gives the bit-identical model of an unbroken run, for a
/// cached-reference objective (DPO) and one with per-step mismatched pairs (KTO);
/// the resumed run takes its reference log-probabilities from the cache.
#[test]
fn interrupted_dpo_and_kto_runs_resume_bit_identically() {
    const KTO: &str = r#"{"messages": [{"role": "user", "content": "Name a color."}, {"role": "assistant", "content": "Blue."}], "label": true}
{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}], "label": false}
{"messages": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}], "label": true}
{"messages": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "No."}], "label": false}
"#;
    let dir = tempfile::tempdir().unwrap();
    for (kind, records) in [("dpo", PAIRS), ("kto", KTO)] {
        let data = dir.path().join(format!("{kind}.jsonl"));
        std::fs::write(&data, records).unwrap();
        let set = |out: &str| {
            let extra = [
                format!("objective.kind={kind}"),
                "train.max_steps=5".into(),
                "train.save_every=1".into(),
            ];
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            config(dir.path(), &data, &format!("{kind}-{out}"), &extra)
        };
        let (whole, broken) = (set("whole"), set("broken"));
        train_from_config(&whole, None, &AtomicBool::new(false), &mut Quiet).unwrap();
        let flag = AtomicBool::new(false);
        let end =
            train_from_config(&broken, None, &flag, &mut StopAt { at: 2, flag: &flag }).unwrap();
        let ift::train::RunEnd::Stopped { checkpoint } = end.end else {
            panic!("{kind}: not stopped")
        };
        let resumed = train_from_config(
            &broken,
            Some(&ift::resume::Resume {
                checkpoint: checkpoint.clone(),
                force: false,
                notices: Vec::new(),
            }),
            &AtomicBool::new(false),
            &mut Quiet,
        )
        .unwrap();
        let report = resumed.reference.unwrap();
        assert!(
            !report.model_loaded && report.computed == 0,
            "{kind}: {report:?}"
        );
        assert_eq!(
            final_weights(&whole.train.output_dir),
            final_weights(&broken.train.output_dir),
            "{kind}: resumed weights differ"
        );
        // Issue 13: checkpoints written after a resume keep the tokenizer files
        // even once pruning (keep_last = 2) deleted the checkpoint resumed from.
        let listing: Vec<_> = std::fs::read_dir(&broken.train.output_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            !checkpoint.exists(),
            "{kind}: the resumed-from checkpoint {checkpoint:?} was not pruned: {listing:?}"
        );
        let out = &broken.train.output_dir;
        for dir in std::fs::read_dir(out).unwrap().map(|e| e.unwrap().path()) {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("checkpoint-") || name == "final" {
                for f in ["tokenizer.json", "tokenizer_config.json"] {
                    assert!(dir.join(f).is_file(), "{kind}: {name}/{f} is missing");
                }
            }
        }
    }
}
