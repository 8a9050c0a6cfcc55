//! [`AdamW`]: Adam with decoupled weight decay (the update is [`Adam`](super::Adam)'s, in
//! `adam.rs`).

use super::adam::{AdamRule, AdamState, adam_import, adam_step, validate_adam};
use super::{Optimizer, OptimizerState, ParamGroup, ParamGroups, Slots};
use crate::{Error, Float, Gradients, Param};

/// Configuration of [`AdamW`]: PyTorch's `torch.optim.AdamW` options and defaults (Adam's,
/// except `weight_decay` 0.01).
///
/// ```
/// use tapegrad::optim::AdamWConfig;
/// let c = AdamWConfig::default();
/// assert_eq!((c.lr, c.betas, c.eps, c.weight_decay, c.amsgrad), (1e-3, (0.9, 0.999), 1e-8, 0.01, false));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate η (default `1e-3`); `>= 0`.
    pub lr: f64,
    /// Decay rates (β₁, β₂) of the first and second moment (default `(0.9, 0.999)`); each in
    /// `[0, 1)`.
    pub betas: (f64, f64),
    /// Term ε added to the denominator (default `1e-8`); `> 0`.
    pub eps: f64,
    /// Decoupled weight decay λ: each step multiplies θ by `1 − ηλ` (default `0.01`); `>= 0`.
    pub weight_decay: f64,
    /// AMSGrad: divide by the running maximum of the second moment (default `false`).
    pub amsgrad: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.01,
            amsgrad: false,
        }
    }
}

/// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019), as
/// PyTorch's `torch.optim.AdamW`: Adam whose weight decay shrinks the weights directly instead of
/// entering the gradient (and so the moments).
///
/// For each parameter θ with gradient g, learning rate η, betas (β₁, β₂), weight decay λ and
/// step t = 1, 2, …, with the moments m and v starting at zero:
///
/// ```text
/// θ ← θ·(1 − η·λ)
/// m ← β₁·m + (1 − β₁)·g
/// v ← β₂·v + (1 − β₂)·g²
/// v̂ ← max(v̂, v)  and use v̂ below           (AMSGrad only)
/// θ ← θ − (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
/// ```
///
/// State per parameter: as [`Adam`](super::Adam).
///
/// ```
/// use tapegrad::prelude::*;
///
/// // With a zero gradient only the decay acts: θ ← θ·(1 − ηλ) = 2·(1 − 0.1·0.5) = 1.9.
/// let w = Param::new(Tensor::<f64>::scalar(2.0));
/// let mut opt = AdamW::new(vec![w.clone()], AdamWConfig { lr: 0.1, weight_decay: 0.5, ..Default::default() });
/// let tape = Tape::new();
/// opt.step(&(tape.param(&w) * 0.0).backward());
/// assert_eq!(w.value().item(), 1.9);
/// ```
pub struct AdamW<T: Float = f32> {
    config: AdamWConfig,
    slots: Slots<T, AdamState<T>>,
}

impl<T: Float> AdamW<T> {
    /// AdamW over `params`, one group with the config's learning rate and weight decay.
    ///
    /// # Panics
    /// If a config value is invalid (negative `lr`, betas outside `[0, 1)`, `eps <= 0`, ...): the
    /// message names the field and the value. Also if `params` is empty or holds a parameter
    /// twice.
    #[track_caller]
    pub fn new(params: Vec<Param<T>>, config: AdamWConfig) -> Self {
        Self::with_groups(vec![ParamGroup::new(params)], config)
    }

    /// AdamW over several parameter groups, each with its own learning rate and weight decay.
    ///
    /// # Panics
    /// As [`AdamW::new`], and if a group's values are invalid.
    #[track_caller]
    pub fn with_groups(groups: Vec<ParamGroup<T>>, config: AdamWConfig) -> Self {
        validate_adam("AdamW", config.lr, config.betas, config.eps, config.weight_decay);
        AdamW {
            config,
            slots: Slots::new(ParamGroups::new(
                "AdamW",
                config.lr,
                Some(config.weight_decay),
                false,
                groups,
            )),
        }
    }

    /// The configuration (its `lr` and `weight_decay` are the defaults for new groups).
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    fn rule(&self) -> AdamRule {
        AdamRule {
            betas: self.config.betas,
            eps: self.config.eps,
            amsgrad: self.config.amsgrad,
            decoupled: true,
        }
    }
}

impl<T: Float> Optimizer<T> for AdamW<T> {
    #[track_caller]
    fn step(&mut self, grads: &Gradients<T>) {
        let rule = self.rule();
        adam_step(&mut self.slots, rule, grads);
    }

    fn param_groups(&self) -> &ParamGroups<T> {
        &self.slots.groups
    }

    fn param_groups_mut(&mut self) -> &mut ParamGroups<T> {
        &mut self.slots.groups
    }

    fn state(&self) -> OptimizerState {
        self.slots.export()
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<(), Error> {
        let rule = self.rule();
        self.slots
            .import(state, |numel, saved| adam_import(rule, numel, saved))
    }
}
