//! Which reference a run uses, as one named choice: picked by
//! [`reference_source`], a pure function of the objective and the run's
//! situation, so each case has a name and a unit test.

use std::path::{Path, PathBuf};

use crate::objective::Objective;

/// Where a run's reference comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ReferenceSource {
    /// The objective uses none (SFT, IFT, ORPO, SimPO, reference-free DPO or KTO).
    None,
    /// Per-sequence log-probabilities of this model, scored once before
    /// training and cached (DPO, KTO).
    Cached(ReferenceModel),
    /// The base with the adapter switched off, run on every micro-batch: an
    /// adapter, no `objective.reference` and no `train.reference_cache`
    /// (DPO, KTO), or TDPO with an adapter and no `objective.reference`.
    AdapterOffLive,
    /// A model loaded from this directory and run on every micro-batch
    /// (TDPO needs its full distributions).
    LoadedLive(PathBuf),
}

/// The model a cached reference is scored with.
#[derive(Debug, Clone, PartialEq)]
pub enum ReferenceModel {
    /// The base with the adapter switched off (a view of the loaded policy).
    AdapterOff,
    /// A fresh run's own initial weights (a view of the policy before its
    /// first step: no second copy).
    InitialWeights,
    /// Loaded from a directory (`objective.reference`, or `model.path` when
    /// resuming) — only if the cache lacks an entry.
    Loaded(PathBuf),
}

/// What about a run decides its reference besides the objective.
#[derive(Debug, Clone, Copy)]
pub struct RunSituation<'a> {
    /// `model.path`: the initial policy.
    pub model_path: &'a Path,
    /// The policy carries an adapter (LoRA).
    pub has_adapter: bool,
    /// The run resumes a checkpoint (the policy is no longer the initial one).
    pub resuming: bool,
    /// `train.reference_cache` is set.
    pub cache_configured: bool,
}

/// The reference `objective` uses in situation `s`. With an adapter and no
/// `objective.reference`, the reference is the base with the adapter off
/// (no second model), cached only when `train.reference_cache` asks.
pub fn reference_source(objective: &Objective, s: RunSituation<'_>) -> ReferenceSource {
    let Some(options) = objective.reference() else {
        return ReferenceSource::None;
    };
    let explicit = options.reference.as_deref();
    let adapter_off = s.has_adapter && explicit.is_none();
    let loaded = || explicit.unwrap_or(s.model_path).to_path_buf();
    match objective {
        Objective::Tdpo(..) if adapter_off => ReferenceSource::AdapterOffLive,
        Objective::Tdpo(..) => ReferenceSource::LoadedLive(loaded()),
        _ if !objective.uses_cached_reference() => ReferenceSource::None,
        _ if adapter_off && !s.cache_configured => ReferenceSource::AdapterOffLive,
        _ if adapter_off => ReferenceSource::Cached(ReferenceModel::AdapterOff),
        _ if explicit.is_none() && !s.resuming => {
            ReferenceSource::Cached(ReferenceModel::InitialWeights)
        }
        _ => ReferenceSource::Cached(ReferenceModel::Loaded(loaded())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objective(kind: &str, extra: &str) -> Objective {
        let text = format!("kind = \"{kind}\"\n{extra}");
        Objective::from_table(text.parse().unwrap()).unwrap()
    }

    fn pick(o: &Objective, adapter: bool, resuming: bool, cache: bool) -> ReferenceSource {
        reference_source(
            o,
            RunSituation {
                model_path: Path::new("base"),
                has_adapter: adapter,
                resuming,
                cache_configured: cache,
            },
        )
    }

    #[test]
    fn objectives_without_a_reference_get_none() {
        for kind in ["sft", "ift", "orpo", "simpo"] {
            let o = objective(kind, "");
            assert_eq!(pick(&o, true, true, true), ReferenceSource::None, "{kind}");
        }
        for kind in ["dpo", "kto"] {
            let o = objective(kind, "reference_free = true\n");
            assert_eq!(
                pick(&o, false, false, false),
                ReferenceSource::None,
                "{kind}"
            );
        }
    }

    #[test]
    fn dpo_and_kto_cache_the_initial_weights_of_a_fresh_run() {
        for kind in ["dpo", "kto"] {
            let o = objective(kind, "");
            assert_eq!(
                pick(&o, false, false, false),
                ReferenceSource::Cached(ReferenceModel::InitialWeights)
            );
            // Resumed, the policy has moved: the base is loaded from model.path.
            assert_eq!(
                pick(&o, false, true, false),
                ReferenceSource::Cached(ReferenceModel::Loaded("base".into()))
            );
        }
    }

    #[test]
    fn an_explicit_reference_is_loaded_whatever_the_adapter() {
        let o = objective("dpo", "reference = \"ref\"\n");
        for (adapter, resuming, cache) in [
            (false, false, false),
            (true, false, false),
            (true, true, true),
        ] {
            assert_eq!(
                pick(&o, adapter, resuming, cache),
                ReferenceSource::Cached(ReferenceModel::Loaded("ref".into()))
            );
        }
        let t = objective("tdpo", "reference = \"ref\"\n");
        assert_eq!(
            pick(&t, true, false, false),
            ReferenceSource::LoadedLive("ref".into())
        );
    }

    #[test]
    fn an_adapter_makes_the_base_with_the_adapter_off_the_reference() {
        let o = objective("kto", "");
        assert_eq!(
            pick(&o, true, false, false),
            ReferenceSource::AdapterOffLive
        );
        assert_eq!(pick(&o, true, true, false), ReferenceSource::AdapterOffLive);
        assert_eq!(
            pick(&o, true, false, true),
            ReferenceSource::Cached(ReferenceModel::AdapterOff)
        );
        let t = objective("tdpo", "");
        assert_eq!(pick(&t, true, false, true), ReferenceSource::AdapterOffLive);
    }

    #[test]
    fn tdpo_without_an_adapter_loads_its_reference() {
        let t = objective("tdpo", "");
        assert_eq!(
            pick(&t, false, false, false),
            ReferenceSource::LoadedLive("base".into())
        );
        assert_eq!(
            pick(&t, false, true, true),
            ReferenceSource::LoadedLive("base".into())
        );
    }
}
