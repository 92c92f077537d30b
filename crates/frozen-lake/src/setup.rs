//! The readings of the paper's under-specified set-up (issue 16), each a named variant of
//! the experiment. Every reading and its coefficients were fixed before its numbers were
//! seen; `docs/frozen-lake.md` reports each whatever it shows.

use ift::methods::ift::{Propagation, PropagationItem, PropagationParams};
use serde::{Deserialize, Serialize};

use crate::ift_method::{IftParams, Lambda};
use crate::methods::{Method, MethodParams};

/// Which reading of the set-up a run follows; options that belong to one reading live
/// in its variant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Setup {
    /// The first reading: every method from the untrained network, one fixed pair.
    Baseline,
    /// Reading 1: every method fine-tunes one pre-trained start (DPO's `π_ref`).
    Pretrained {
        /// ε of `(1 − ε)·π* + ε·noise`, the table the start is pre-trained towards.
        corruption: f64,
        /// Full-batch Adam steps of pre-training (at the fine-tuning learning rate).
        pretrain_steps: usize,
    },
    /// Reading 2: SFT first, then DPO / ORPO from and against the SFT policy.
    Sequential,
    /// Reading 3: the rejected trajectory is a sample from the current policy.
    OnPolicy {
        /// Draw a new negative every this many optimiser steps (from step 0).
        resample_every: usize,
    },
    /// Reading 4: slippery ice; the pair is sampled (see `data::training_pair`).
    Slippery,
    /// Reading 5: IFT's options beside the four methods.
    Ablation,
}

/// One row of a reading's table: a method, its coefficients, where it starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Arm {
    pub label: &'static str,
    pub method: Method,
    /// The paper's method this row stands for in the ordering check (one row per method).
    pub role: Option<Method>,
    pub params: MethodParams,
    /// Run SFT for the same number of steps first; fine-tune from, and refer to, its result.
    pub after_sft: bool,
}

impl Setup {
    /// Every reading with its chosen coefficients, in the order of the page.
    pub const ALL: [Setup; 6] = [
        Setup::Baseline,
        Setup::Pretrained {
            corruption: 0.5,
            pretrain_steps: 500,
        },
        Setup::Sequential,
        Setup::OnPolicy { resample_every: 10 },
        Setup::Slippery,
        Setup::Ablation,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Setup::Baseline => "baseline",
            Setup::Pretrained { .. } => "pretrained",
            Setup::Sequential => "sequential",
            Setup::OnPolicy { .. } => "on-policy",
            Setup::Slippery => "slippery",
            Setup::Ablation => "ablation",
        }
    }

    /// The heading of the reading's section on the page.
    pub fn title(&self) -> &'static str {
        match self {
            Setup::Baseline => "Baseline: the first reading",
            Setup::Pretrained { .. } => "Reading 1: a pre-trained start",
            Setup::Sequential => "Reading 2: SFT, then DPO or ORPO",
            Setup::OnPolicy { .. } => "Reading 3: on-policy negatives",
            Setup::Slippery => "Reading 4: slippery ice",
            Setup::Ablation => "Reading 5: IFT's options",
        }
    }

    /// The reading of that name with its chosen coefficients.
    pub fn from_name(name: &str) -> Option<Setup> {
        Setup::ALL.into_iter().find(|s| s.name() == name)
    }

    /// One line for `--help` and the page, with this variant's coefficients.
    pub fn summary(&self) -> String {
        match self {
            Setup::Baseline => "every method trains the untrained network on one fixed pair of routes".into(),
            Setup::Pretrained { corruption, pretrain_steps } => format!(
                "{pretrain_steps} steps of pre-training towards the optimal table mixed with {:.0}% random noise, then each method fine-tunes that start (DPO's reference)",
                100.0 * corruption
            ),
            Setup::Sequential => "adds SFT→DPO and SFT→ORPO (SFT first, then the preference method from and against the SFT policy)".into(),
            Setup::OnPolicy { resample_every } => format!(
                "DPO's and ORPO's rejected trajectory is sampled from the current policy, re-drawn every {resample_every} steps"
            ),
            Setup::Slippery => "each move may slip sideways; chosen = a sampled success of the optimal policy, rejected = a sampled failure of the no-slip optimal policy".into(),
            Setup::Ablation => "IFT with γ = 0, λ = 0, a linear λ, Eq. 21, logps or mask propagation, detached weights, beside SFT, DPO and ORPO".into(),
        }
    }

    pub fn is_slippery(&self) -> bool {
        matches!(self, Setup::Slippery)
    }

    /// The rows of this reading, from the base coefficients `base`.
    pub fn arms(&self, base: &MethodParams) -> Vec<Arm> {
        let arm = |label, method, role, after_sft| Arm {
            label,
            method,
            role,
            params: *base,
            after_sft,
        };
        let mut arms: Vec<Arm> = Method::ALL
            .into_iter()
            .map(|m| arm(m.name(), m, Some(m), false))
            .collect();
        match self {
            Setup::Sequential => {
                for (k, label) in [(2, "SFT→DPO"), (3, "SFT→ORPO")] {
                    let method = arms[k].method;
                    arms[k].role = None;
                    arms.push(arm(label, method, Some(method), true));
                }
            }
            Setup::Ablation => {
                let (d, w) = (base.ift, base.ift.weights);
                // The trainer's defaults for the ramp: from 0 over 150 steps, to the static λ.
                let ramp = Lambda::Linear {
                    from: 0.0,
                    to: d.lambda.at(usize::MAX),
                    steps: 150,
                };
                let variants = [
                    (
                        "IFT γ=0",
                        IftParams {
                            weights: PropagationParams { gamma: 0.0, ..w },
                            ..d
                        },
                    ),
                    (
                        "IFT λ=0",
                        IftParams {
                            lambda: Lambda::Static { value: 0.0 },
                            ..d
                        },
                    ),
                    ("IFT λ linear", IftParams { lambda: ramp, ..d }),
                    (
                        "IFT eq. 21",
                        IftParams {
                            propagation: Propagation::PaperEq21,
                            ..d
                        },
                    ),
                    (
                        "IFT logps",
                        IftParams {
                            weights: PropagationParams {
                                item: PropagationItem::Logps,
                                ..w
                            },
                            ..d
                        },
                    ),
                    (
                        "IFT mask",
                        IftParams {
                            weights: PropagationParams {
                                item: PropagationItem::Mask,
                                ..w
                            },
                            ..d
                        },
                    ),
                    (
                        "IFT detached",
                        IftParams {
                            detach_weights: true,
                            ..d
                        },
                    ),
                ];
                for (label, ift) in variants {
                    let mut a = arm(label, Method::Ift, None, false);
                    a.params.ift = ift;
                    arms.push(a);
                }
            }
            _ => {}
        }
        arms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_each_reading_has_one_row_per_role() {
        for s in Setup::ALL {
            assert_eq!(Setup::from_name(s.name()), Some(s));
            let arms = s.arms(&MethodParams::default());
            for m in Method::ALL {
                assert_eq!(
                    arms.iter().filter(|a| a.role == Some(m)).count(),
                    1,
                    "{s:?} {m:?}"
                );
            }
            let labels: std::collections::HashSet<_> = arms.iter().map(|a| a.label).collect();
            assert_eq!(labels.len(), arms.len(), "{s:?}: labels are distinct");
        }
        assert_eq!(Setup::from_name("nope"), None);
        let seq = Setup::Sequential.arms(&MethodParams::default());
        let dpo = seq.iter().find(|a| a.role == Some(Method::Dpo)).unwrap();
        assert!(dpo.after_sft && dpo.label == "SFT→DPO");
        // Each ablation row differs from the default IFT row in its parameters.
        let abl = Setup::Ablation.arms(&MethodParams::default());
        let ift = abl
            .iter()
            .filter(|a| a.method == Method::Ift)
            .collect::<Vec<_>>();
        assert_eq!(ift.len(), 8);
        assert!(ift[1..].iter().all(|a| a.params != ift[0].params));
    }
}
