//! `[adapter]` of the run configuration. The LoRA settings a model carries
//! (`LoraConfig`, `TargetModule`) are the model's (`model/lora_config.rs`).

use serde::{Deserialize, Serialize};

pub use crate::model::{LoraConfig, TargetModule};

/// `adapter.kind`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdapterKind {
    /// Full fine-tuning (or `model.freeze`): no adapter.
    #[default]
    None,
    /// LoRA (Hu et al., 2021) as PEFT implements it; only the adapters train.
    Lora,
}

/// `[adapter]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdapterConfig {
    /// `none` (default: every parameter trains, as without this section) or `lora`.
    pub kind: AdapterKind,
    /// LoRA rank (PEFT's `r`). Default 16, a common choice for 1–8B models.
    pub r: usize,
    /// LoRA scale numerator (PEFT's `lora_alpha`): the update is scaled by
    /// `alpha / r` (`alpha / √r` with `use_rslora`). Default 32 (= 2r).
    pub alpha: f64,
    /// Dropout on each adapter's input while training (PEFT's `lora_dropout`),
    /// in [0, 1). Default 0.05.
    pub dropout: f64,
    /// Projections that get an adapter, by Hugging Face name (`q_proj`, `k_proj`,
    /// `v_proj`, `o_proj`, `gate_proj`, `up_proj`, `down_proj`). Default: all
    /// seven, the attention and MLP projections (QLoRA's choice).
    pub target_modules: Vec<TargetModule>,
    /// Rank-stabilised LoRA (Kalajdzievski, 2023): scale `alpha / √r`. Default false.
    pub use_rslora: bool,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        AdapterConfig {
            kind: AdapterKind::None,
            r: 16,
            alpha: 32.0,
            dropout: 0.05,
            target_modules: TargetModule::ALL.to_vec(),
            use_rslora: false,
        }
    }
}

impl AdapterConfig {
    /// The LoRA settings, or `None` for `kind = "none"`.
    pub fn lora(&self) -> Option<LoraConfig> {
        (self.kind == AdapterKind::Lora).then(|| LoraConfig {
            r: self.r,
            alpha: self.alpha,
            dropout: self.dropout,
            target_modules: self.target_modules.clone(),
            use_rslora: self.use_rslora,
        })
    }

    /// Ranges and lists no type can check; the error names the full key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.r == 0 {
            return Err(("adapter.r", "must be at least 1".into()));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            let m = format!("{} must be a finite number > 0", self.alpha);
            return Err(("adapter.alpha", m));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            let m = format!("{} is out of range: must be in [0, 1)", self.dropout);
            return Err(("adapter.dropout", m));
        }
        let mut sorted = self.target_modules.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.is_empty() || sorted.len() != self.target_modules.len() {
            let m = "must list at least one projection, each once";
            return Err(("adapter.target_modules", m.into()));
        }
        Ok(())
    }
}
