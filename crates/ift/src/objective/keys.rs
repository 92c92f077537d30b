//! The objective kinds and the keys each accepts.

use super::fields::{field_names, FieldError};
use super::ift_wire::IftWire;
use super::ReferenceOptions;
use super::SftParams;
use crate::methods::{DpoParams, KtoParams, OrpoParams, SimpoParams, TdpoParams};

/// `objective.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectiveKind {
    Sft,
    Ift,
    Dpo,
    Orpo,
    Simpo,
    Tdpo,
    Kto,
}

impl ObjectiveKind {
    pub const ALL: [ObjectiveKind; 7] = [
        ObjectiveKind::Sft,
        ObjectiveKind::Ift,
        ObjectiveKind::Dpo,
        ObjectiveKind::Orpo,
        ObjectiveKind::Simpo,
        ObjectiveKind::Tdpo,
        ObjectiveKind::Kto,
    ];

    /// The TOML name.
    pub fn name(self) -> &'static str {
        match self {
            ObjectiveKind::Sft => "sft",
            ObjectiveKind::Ift => "ift",
            ObjectiveKind::Dpo => "dpo",
            ObjectiveKind::Orpo => "orpo",
            ObjectiveKind::Simpo => "simpo",
            ObjectiveKind::Tdpo => "tdpo",
            ObjectiveKind::Kto => "kto",
        }
    }

    /// `sft, ift, dpo, ...` for messages.
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }

    pub fn from_name(name: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                FieldError::new(
                    "objective.kind",
                    format!("unknown objective `{name}`; one of {}", Self::names()),
                )
            })
    }

    /// Every key this kind accepts besides `kind`: its options type's fields
    /// (and the reference model's, for the objectives that have one).
    pub fn keys(self) -> Vec<&'static str> {
        let reference = field_names::<ReferenceOptions>();
        let (own, with_reference): (&[&str], &[&str]) = match self {
            ObjectiveKind::Sft => (field_names::<SftParams>(), &[]),
            ObjectiveKind::Ift => (field_names::<IftWire>(), &[]),
            ObjectiveKind::Dpo => (field_names::<DpoParams>(), reference),
            ObjectiveKind::Orpo => (field_names::<OrpoParams>(), &[]),
            ObjectiveKind::Simpo => (field_names::<SimpoParams>(), &[]),
            // TDPO always uses a reference model: no `reference_free`.
            ObjectiveKind::Tdpo => (field_names::<TdpoParams>(), &["reference"]),
            ObjectiveKind::Kto => (field_names::<KtoParams>(), reference),
        };
        own.iter().chain(with_reference).copied().collect()
    }

    /// Every key of `table` must be one of [`Self::keys`]; a key of another
    /// kind is named as such.
    pub fn check_keys(self, table: &toml::Table) -> Result<(), FieldError> {
        for key in table.keys() {
            if self.keys().contains(&key.as_str()) {
                continue;
            }
            let owners: Vec<&str> = Self::ALL
                .into_iter()
                .filter(|k| k.keys().contains(&key.as_str()))
                .map(Self::name)
                .collect();
            let own = self.keys().join(", ");
            let message = match owners.is_empty() {
                true => format!(
                    "unknown key for objective kind `{}` (its keys: {own})",
                    self.name()
                ),
                false => format!(
                    "is an option of objective kind `{}`, not of `{}` (its keys: {own})",
                    owners.join("`, `"),
                    self.name()
                ),
            };
            return Err(FieldError::new(format!("objective.{key}"), message));
        }
        Ok(())
    }
}
