//! `[objective]` of the run configuration: a choice of `kind` whose variant
//! (a `crate::methods::Objective`) holds exactly that method's options. A key
//! of another objective, an unknown key and an out-of-range value are errors
//! naming the key (and the kind, and the range); nothing is silently ignored
//! or clamped. Also which reference a run uses (`reference_source.rs`).

mod fields;
mod ift_wire;
mod keys;
mod reference_source;

use serde::{Deserialize, Serialize};

pub use crate::methods::ift::{Disturb, EmbeddingGrad, IftParams, Lambda, Prediction};
pub use crate::methods::{Objective, ReferenceOptions, SftParams};
pub use fields::{check_range, field_names, from_table, FieldError};
pub use ift_wire::{IftWire, LambdaDisturb, LambdaSchedule, PredictionMode};
pub use keys::ObjectiveKind;
pub use reference_source::{reference_source, ReferenceModel, ReferenceSource, RunSituation};

use crate::methods::{DpoParams, KtoParams, OrpoParams, SimpoParams, TdpoParams};

/// What one training example is, for an objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExampleKind {
    /// One sequence with trained answer tokens (SFT, IFT).
    Sequence,
    /// A prompt with a chosen and a rejected answer (DPO, ORPO, SimPO, TDPO).
    Pair,
    /// A prompt with one answer labelled desirable or not (KTO).
    Unpaired,
}

impl Objective {
    /// `kind` with every option at its default.
    pub fn default_of(kind: ObjectiveKind) -> Objective {
        let r = ReferenceOptions::default();
        match kind {
            ObjectiveKind::Sft => Objective::Sft(SftParams::default()),
            ObjectiveKind::Ift => Objective::Ift(IftParams::default()),
            ObjectiveKind::Dpo => Objective::Dpo(DpoParams::default(), r),
            ObjectiveKind::Orpo => Objective::Orpo(OrpoParams::default()),
            ObjectiveKind::Simpo => Objective::Simpo(SimpoParams::default()),
            ObjectiveKind::Tdpo => Objective::Tdpo(TdpoParams::default(), r),
            ObjectiveKind::Kto => Objective::Kto(KtoParams::default(), r),
        }
    }

    pub fn kind(&self) -> ObjectiveKind {
        match self {
            Objective::Sft(_) => ObjectiveKind::Sft,
            Objective::Ift(_) => ObjectiveKind::Ift,
            Objective::Dpo(..) => ObjectiveKind::Dpo,
            Objective::Orpo(_) => ObjectiveKind::Orpo,
            Objective::Simpo(_) => ObjectiveKind::Simpo,
            Objective::Tdpo(..) => ObjectiveKind::Tdpo,
            Objective::Kto(..) => ObjectiveKind::Kto,
        }
    }

    pub fn example_kind(&self) -> ExampleKind {
        match self {
            Objective::Sft(_) | Objective::Ift(_) => ExampleKind::Sequence,
            Objective::Kto(..) => ExampleKind::Unpaired,
            _ => ExampleKind::Pair,
        }
    }

    /// The reference options of an objective that uses a reference model.
    pub fn reference(&self) -> Option<&ReferenceOptions> {
        match self {
            Objective::Dpo(_, r) | Objective::Tdpo(_, r) | Objective::Kto(_, r) => Some(r),
            _ => None,
        }
    }

    /// Whether the objective needs reference log-probabilities per sequence
    /// (computed once and cached): DPO and KTO unless reference-free. TDPO needs
    /// full reference distributions instead and keeps the model.
    pub fn uses_cached_reference(&self) -> bool {
        matches!(self, Objective::Dpo(_, r) | Objective::Kto(_, r) if !r.reference_free)
    }

    /// Reads `[objective]` (without the section name): `kind` (default `sft`)
    /// picks the variant; every other key must belong to it.
    pub fn from_table(mut table: toml::Table) -> Result<Self, FieldError> {
        let kind = match table.remove("kind") {
            None => ObjectiveKind::Sft,
            Some(toml::Value::String(s)) => ObjectiveKind::from_name(&s)?,
            Some(other) => {
                return Err(FieldError::new(
                    "objective.kind",
                    format!("{other} is not a string; one of {}", ObjectiveKind::names()),
                ))
            }
        };
        kind.check_keys(&table)?;
        let reference = |t: &mut toml::Table| -> Result<ReferenceOptions, FieldError> {
            let mut r = toml::Table::new();
            for k in ["reference", "reference_free"] {
                if let Some(v) = t.remove(k) {
                    r.insert(k.to_string(), v);
                }
            }
            from_table(&r, "objective")
        };
        let objective = match kind {
            ObjectiveKind::Sft => Objective::Sft(from_table(&table, "objective")?),
            ObjectiveKind::Ift => {
                Objective::Ift(from_table::<IftWire>(&table, "objective")?.resolve()?)
            }
            ObjectiveKind::Dpo => {
                let r = reference(&mut table)?;
                Objective::Dpo(from_table(&table, "objective")?, r)
            }
            ObjectiveKind::Orpo => Objective::Orpo(from_table(&table, "objective")?),
            ObjectiveKind::Simpo => Objective::Simpo(from_table(&table, "objective")?),
            ObjectiveKind::Tdpo => {
                let r = reference(&mut table)?;
                Objective::Tdpo(from_table(&table, "objective")?, r)
            }
            ObjectiveKind::Kto => {
                let r = reference(&mut table)?;
                Objective::Kto(from_table(&table, "objective")?, r)
            }
        };
        objective.validate()?;
        Ok(objective)
    }

    /// The flat TOML table of this objective, `kind` first, every option present.
    pub fn to_table(&self) -> toml::Table {
        fn table<T: Serialize>(v: &T) -> toml::Table {
            match toml::Value::try_from(v).expect("objective options serialise") {
                toml::Value::Table(t) => t,
                _ => unreachable!("options are structs"),
            }
        }
        let mut out = toml::Table::new();
        out.insert("kind".into(), self.kind().name().into());
        let (main, reference) = match self {
            Objective::Sft(p) => (table(p), None),
            Objective::Ift(p) => (table(&IftWire::from(p)), None),
            Objective::Dpo(p, r) => (table(p), Some(r)),
            Objective::Orpo(p) => (table(p), None),
            Objective::Simpo(p) => (table(p), None),
            Objective::Tdpo(p, r) => (table(p), Some(r)),
            Objective::Kto(p, r) => (table(p), Some(r)),
        };
        out.extend(main);
        if let Some(r) = reference {
            let mut r = table(r);
            if self.kind() == ObjectiveKind::Tdpo {
                r.remove("reference_free");
            }
            out.extend(r);
        }
        out
    }

    /// Ranges and combinations no type can express.
    fn validate(&self) -> Result<(), FieldError> {
        let positive = |k: &str, v: f64| check_range(k, v, 0.0, f64::INFINITY, true);
        let non_negative = |k: &str, v: f64| check_range(k, v, 0.0, f64::INFINITY, false);
        let smoothing = |v: f64| -> Result<(), FieldError> {
            check_range("label_smoothing", v, 0.0, 0.5, false)?;
            match v < 0.5 {
                true => Ok(()),
                false => Err(FieldError::new(
                    "objective.label_smoothing",
                    format!("{v} is out of range: must be in [0, 0.5)"),
                )),
            }
        };
        match self {
            Objective::Sft(_) | Objective::Ift(_) => Ok(()),
            Objective::Dpo(p, _) => {
                positive("beta", p.beta)?;
                smoothing(p.label_smoothing)?;
                non_negative("sft_weight", p.sft_weight)?;
                if p.label_smoothing > 0.0
                    && p.loss_type != crate::methods::dpo::DpoLossType::Sigmoid
                {
                    return Err(FieldError::new(
                        "objective.label_smoothing",
                        "applies only to loss_type = \"sigmoid\" (conservative DPO)",
                    ));
                }
                Ok(())
            }
            Objective::Orpo(p) => non_negative("beta", p.beta),
            Objective::Simpo(p) => {
                positive("beta", p.beta)?;
                non_negative("gamma_beta_ratio", p.gamma_beta_ratio)?;
                smoothing(p.label_smoothing)?;
                non_negative("sft_weight", p.sft_weight)
            }
            Objective::Tdpo(p, _) => {
                positive("beta", p.beta)?;
                non_negative("alpha", p.alpha)?;
                non_negative("sft_weight", p.sft_weight)
            }
            Objective::Kto(p, _) => {
                positive("beta", p.beta)?;
                positive("desirable_weight", p.desirable_weight)?;
                positive("undesirable_weight", p.undesirable_weight)?;
                non_negative("sft_weight", p.sft_weight)
            }
        }
    }
}

impl Serialize for Objective {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_table().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Objective {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let table = toml::Table::deserialize(d)?;
        Objective::from_table(table)
            .map_err(|e| serde::de::Error::custom(format!("`{}`: {}", e.field, e.message)))
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
