//! Which weights train, and the named list of all of them.

use candle_core::{Tensor, Var};

/// Which parameters get gradients.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Trainable {
    /// Inference only: no parameter records a graph.
    #[default]
    None,
    /// Every parameter trains.
    All,
    /// Every parameter trains except those whose Hugging Face name starts
    /// with one of these prefixes (e.g. `model.embed_tokens`).
    AllExcept(Vec<String>),
}

impl Trainable {
    fn trains(&self, name: &str) -> bool {
        match self {
            Trainable::None => false,
            Trainable::All => true,
            Trainable::AllExcept(prefixes) => {
                !prefixes.iter().any(|p| name.starts_with(p.as_str()))
            }
        }
    }
}

/// Every parameter of a model by Hugging Face name, in checkpoint order, plus
/// the trainable ones as [`Var`]s. A trainable parameter's tensor and its
/// `Var` share storage, so an optimiser's `Var::set` is seen by the model.
#[derive(Debug, Clone, Default)]
pub struct Parameters {
    named: Vec<(String, Tensor)>,
    vars: Vec<(String, Var)>,
}

impl Parameters {
    /// Registers `tensor` under `name`; returns the tensor the module should
    /// hold (the `Var`'s tensor when it trains, so the graph reaches it).
    pub(crate) fn register(
        &mut self,
        name: &str,
        tensor: Tensor,
        trainable: &Trainable,
    ) -> candle_core::Result<Tensor> {
        let tensor = if trainable.trains(name) {
            let var = Var::from_tensor(&tensor)?;
            self.vars.push((name.to_string(), var.clone()));
            var.as_tensor().clone()
        } else {
            tensor
        };
        self.named.push((name.to_string(), tensor.clone()));
        Ok(tensor)
    }

    /// Registers a trainable tensor that is not part of the base checkpoint
    /// (a LoRA adapter's, under its PEFT name); returns the `Var`'s tensor.
    pub(crate) fn add_var(&mut self, name: &str, tensor: Tensor) -> candle_core::Result<Tensor> {
        let var = Var::from_tensor(&tensor)?;
        self.vars.push((name.to_string(), var.clone()));
        Ok(var.as_tensor().clone())
    }

    /// Replaces the tensor of checkpoint parameter `name` (a merged weight).
    pub(crate) fn replace(&mut self, name: &str, tensor: Tensor) {
        if let Some(slot) = self.named.iter_mut().find(|(n, _)| n == name) {
            slot.1 = tensor;
        }
    }

    /// Drops checkpoint parameter `name` (a weight now held quantised).
    pub(crate) fn remove(&mut self, name: &str) {
        self.named.retain(|(n, _)| n != name);
    }

    /// The checkpoint parameters with nothing trainable.
    pub(crate) fn frozen(&self) -> Parameters {
        Parameters {
            named: self.named.clone(),
            vars: Vec::new(),
        }
    }

    /// All parameters, trainable or not, by Hugging Face name.
    pub fn named(&self) -> &[(String, Tensor)] {
        &self.named
    }

    /// The trainable parameters, by Hugging Face name.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// Total number of scalars in all parameters.
    pub fn count(&self) -> usize {
        self.named.iter().map(|(_, t)| t.elem_count()).sum()
    }
}
