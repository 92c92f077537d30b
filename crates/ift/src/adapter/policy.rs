//! The model a run trains and what its checkpoints hold. Without an adapter:
//! the whole model (from `model.path`, or the checkpoint being resumed). With
//! LoRA: the frozen base from `model.path` (quantised if `model.quantize`
//! says so) plus an adapter that is fresh, read from `model.adapter`, or read
//! from the checkpoint being resumed; checkpoints and `final/` then hold only
//! the adapter, in PEFT's format.

use std::path::Path;

use candle_core::Device;

use super::config::LoraConfig;
use super::load::{attach_fresh, attach_saved};
use super::peft::{write_adapter_files, ADAPTER_CONFIG};
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::model::{
    copy_companions, gguf, write_atomically, LlamaForCausalLM, Pretrained, SaveOptions, Trainable,
};

/// Loads the policy of a run; `resume` is the checkpoint being resumed.
pub fn load_policy(
    config: &RunConfig,
    resume: Option<&Path>,
    device: &Device,
) -> Result<Pretrained> {
    let Some(lora) = config.adapter.lora() else {
        let dir = resume.unwrap_or(&config.model.path);
        return load_base(dir, &config.trainable(), device);
    };
    let mut pre = load_base(&config.model.path, &Trainable::None, device)?;
    pre.model.quantize_base(config.model.quantize)?;
    match resume.or(config.model.adapter.as_deref()) {
        Some(dir) => {
            super::base::check_base(&pre.model, &config.model.path, dir)?;
            let saved = attach_saved(&mut pre.model, dir, true)?;
            check_same(&lora, &saved, dir)?;
            // The run's dropout applies (it is a training setting, not the adapter's).
            pre.model.set_adapter_dropout(lora.dropout);
        }
        None => attach_fresh(&mut pre.model, &lora, config.train.seed)?,
    }
    Ok(pre)
}

/// A Hugging Face directory, or a GGUF file read directly (in memory).
fn load_base(path: &Path, trainable: &Trainable, device: &Device) -> Result<Pretrained> {
    match gguf::is_gguf(path) {
        true => gguf::load_gguf(path, trainable, device),
        false => Pretrained::load(path, trainable, device),
    }
}

/// An adapter being continued must have the shape `[adapter]` describes.
fn check_same(want: &LoraConfig, saved: &LoraConfig, dir: &Path) -> Result<()> {
    let mut want_targets = want.target_modules.clone();
    want_targets.sort();
    let differs = [
        ("adapter.r", want.r != saved.r, format!("{}", saved.r)),
        (
            "adapter.alpha",
            want.alpha != saved.alpha,
            format!("{}", saved.alpha),
        ),
        (
            "adapter.use_rslora",
            want.use_rslora != saved.use_rslora,
            format!("{}", saved.use_rslora),
        ),
        (
            "adapter.target_modules",
            want_targets != saved.target_modules,
            format!(
                "{:?}",
                saved
                    .target_modules
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
            ),
        ),
    ];
    match differs.into_iter().find(|(_, d, _)| *d) {
        Some((key, _, value)) => Err(Error::Adapter {
            path: dir.join(ADAPTER_CONFIG),
            message: format!(
                "the saved adapter has {value}; set `{key}` to it to continue this adapter"
            ),
        }),
        None => Ok(()),
    }
}

impl LlamaForCausalLM {
    /// What a checkpoint or `final/` holds of the model: the adapter in PEFT's
    /// format when there is one, else the whole Hugging Face model. Into an
    /// existing directory (the caller renames it into place).
    pub fn write_trained_files(&self, dir: &Path, options: &SaveOptions) -> Result<()> {
        if self.adapter().is_none() {
            return self.write_model_files(dir, options);
        }
        write_adapter_files(self, dir)?;
        match &options.companions_from {
            Some(src) => copy_companions(src, dir),
            None => Ok(()),
        }
    }

    /// [`Self::write_trained_files`] into `dir`, atomically.
    pub fn save_trained(&self, dir: &Path, options: &SaveOptions) -> Result<()> {
        write_atomically(dir, |tmp| self.write_trained_files(tmp, options))
    }

    /// Sets the adapter's training dropout on every adapted projection.
    pub(crate) fn set_adapter_dropout(&mut self, p: f64) {
        for (_, _, lin) in self.projections_mut() {
            if let Some(l) = &mut lin.lora {
                l.dropout = p;
            }
        }
        if let Some(a) = &mut self.adapter {
            a.dropout = p;
        }
    }
}
