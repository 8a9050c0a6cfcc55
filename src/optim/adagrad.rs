//! [`Adagrad`]: per-coordinate learning rates from the sum of squared gradients.

use super::state::{ParamState, StateIo};
use super::{GroupHyper, Optimizer, OptimizerState, ParamGroup, ParamGroups, Slots, validate};
use crate::{Error, Float, Gradients, Param};

/// Configuration of [`Adagrad`]: PyTorch's `torch.optim.Adagrad` options and defaults.
///
/// ```
/// use tapegrad::optim::AdagradConfig;
/// let c = AdagradConfig::default();
/// assert_eq!((c.lr, c.lr_decay, c.initial_accumulator_value, c.eps), (1e-2, 0.0, 0.0, 1e-10));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdagradConfig {
    /// Learning rate η (default `1e-2`); `>= 0`.
    pub lr: f64,
    /// Learning-rate decay δ: step t uses η / (1 + (t − 1)·δ) (default 0); `>= 0`.
    pub lr_decay: f64,
    /// L2 penalty λ added to the gradient (default 0); `>= 0`.
    pub weight_decay: f64,
    /// Starting value of the sum of squares (default 0); `>= 0`.
    pub initial_accumulator_value: f64,
    /// Term ε added to the denominator (default `1e-10`); `> 0`.
    pub eps: f64,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        AdagradConfig {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
        }
    }
}

impl AdagradConfig {
    #[track_caller]
    fn validate(&self) {
        validate::non_negative("Adagrad", "lr", self.lr);
        validate::non_negative("Adagrad", "lr_decay", self.lr_decay);
        validate::non_negative("Adagrad", "weight_decay", self.weight_decay);
        validate::non_negative(
            "Adagrad",
            "initial_accumulator_value",
            self.initial_accumulator_value,
        );
        validate::positive("Adagrad", "eps", self.eps);
    }
}

/// Adagrad (Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
/// Stochastic Optimization", JMLR 2011), as PyTorch's `torch.optim.Adagrad`.
///
/// For each parameter θ with gradient g, learning rate η, decay δ, weight decay λ and step
/// t = 1, 2, …, with the accumulator s starting at `initial_accumulator_value`:
///
/// ```text
/// g ← g + λ·θ                  (if λ ≠ 0)
/// η_t = η / (1 + (t − 1)·δ)
/// s ← s + g²
/// θ ← θ − η_t · g / (√s + ε)
/// ```
///
/// State per parameter: the step count and the sum `sum`.
///
/// ```
/// use tapegrad::prelude::*;
///
/// // The first step moves each coordinate by about η, whatever the gradient's scale:
/// // s = g², so θ ← θ − η·g/|g|.
/// let w = Param::new(Tensor::<f64>::from_vec(vec![1.0, 1.0], &[2]));
/// let mut opt = Adagrad::new(vec![w.clone()], AdagradConfig { lr: 0.5, ..Default::default() });
/// let tape = Tape::new();
/// let scale = tape.constant(Tensor::from_vec(vec![100.0, 0.01], &[2]));
/// opt.step(&(tape.param(&w) * scale).sum().backward());
/// let v = w.value().to_vec();
/// assert!((v[0] - 0.5).abs() < 1e-9 && (v[1] - 0.5).abs() < 1e-7);
/// ```
pub struct Adagrad<T: Float = f32> {
    config: AdagradConfig,
    slots: Slots<T, AdagradState<T>>,
}

/// Per-parameter state.
struct AdagradState<T> {
    step: u64,
    sum: Vec<T>,
}

impl<T: Float> StateIo<T> for AdagradState<T> {
    fn export(&self) -> ParamState {
        ParamState::from_slices(self.step, &[("sum", &self.sum)])
    }
}

impl<T: Float> Adagrad<T> {
    /// Adagrad over `params`, one group with the config's learning rate and weight decay.
    ///
    /// # Panics
    /// If a config value is invalid (negative `lr`, `eps <= 0`, ...): the message names the field
    /// and the value. Also if `params` is empty or holds a parameter twice.
    #[track_caller]
    pub fn new(params: Vec<Param<T>>, config: AdagradConfig) -> Self {
        Self::with_groups(vec![ParamGroup::new(params)], config)
    }

    /// Adagrad over several parameter groups, each with its own learning rate and weight decay.
    ///
    /// # Panics
    /// As [`Adagrad::new`], and if a group's values are invalid.
    #[track_caller]
    pub fn with_groups(groups: Vec<ParamGroup<T>>, config: AdagradConfig) -> Self {
        config.validate();
        Adagrad {
            config,
            slots: Slots::new(ParamGroups::new(
                "Adagrad",
                config.lr,
                Some(config.weight_decay),
                false,
                groups,
            )),
        }
    }

    /// The configuration (its `lr` and `weight_decay` are the defaults for new groups).
    pub fn config(&self) -> &AdagradConfig {
        &self.config
    }
}

/// The update of one parameter.
fn update<T: Float>(
    config: &AdagradConfig,
    hyper: GroupHyper,
    param: &mut [T],
    grad: &[T],
    state: &mut AdagradState<T>,
) {
    state.step += 1;
    let clr = T::from_f64(hyper.lr / (1.0 + (state.step - 1) as f64 * config.lr_decay));
    let wd = T::from_f64(hyper.weight_decay);
    let eps = T::from_f64(config.eps);
    let elements = param.iter_mut().zip(grad).zip(state.sum.iter_mut());
    if hyper.weight_decay != 0.0 {
        for ((p, &g), s) in elements {
            let g = g + wd * *p;
            *s += g * g;
            *p -= clr * (g / (s.sqrt() + eps));
        }
    } else {
        for ((p, &g), s) in elements {
            *s += g * g;
            *p -= clr * (g / (s.sqrt() + eps));
        }
    }
}

impl<T: Float> Optimizer<T> for Adagrad<T> {
    #[track_caller]
    fn step(&mut self, grads: &Gradients<T>) {
        let config = self.config;
        let init = T::from_f64(config.initial_accumulator_value);
        self.slots.step(
            grads,
            |n| AdagradState {
                step: 0,
                sum: vec![init; n],
            },
            |hyper, p, g, s| update(&config, hyper, p, g, s),
        );
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
        self.slots.import(state, |numel, saved| {
            saved.expect_names(&["sum"])?;
            Ok(AdagradState {
                step: saved.step,
                sum: saved.take_non_negative("sum", numel)?,
            })
        })
    }
}
