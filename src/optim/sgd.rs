//! [`Sgd`]: stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

use super::momentum::Momentum;
use super::state::{ParamState, StateIo};
use super::{GroupHyper, Optimizer, OptimizerState, ParamGroup, ParamGroups, Slots, validate};
use crate::{Error, Float, Gradients, Param};

/// Configuration of [`Sgd`]: PyTorch's `torch.optim.SGD` options and defaults.
///
/// ```
/// use tapegrad::optim::SgdConfig;
/// let c = SgdConfig { lr: 0.1, momentum: 0.9, ..Default::default() };
/// assert_eq!((c.dampening, c.weight_decay, c.nesterov), (0.0, 0.0, false));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate η (default `1e-3`, as in PyTorch 2); `>= 0`.
    pub lr: f64,
    /// Momentum factor μ (default 0: plain SGD); `>= 0`.
    pub momentum: f64,
    /// Dampening τ of the momentum (default 0); in `[0, 1]`.
    pub dampening: f64,
    /// L2 penalty λ added to the gradient (default 0); `>= 0`.
    pub weight_decay: f64,
    /// Nesterov momentum (default `false`); needs `momentum > 0` and `dampening == 0`.
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

impl SgdConfig {
    #[track_caller]
    fn validate(&self) {
        validate::non_negative("Sgd", "lr", self.lr);
        validate::non_negative("Sgd", "momentum", self.momentum);
        validate::unit_interval("Sgd", "dampening", self.dampening);
        validate::non_negative("Sgd", "weight_decay", self.weight_decay);
        if self.nesterov {
            validate::check(
                "Sgd",
                "nesterov",
                format!(
                    "true with momentum = {} and dampening = {}",
                    self.momentum, self.dampening
                ),
                self.momentum > 0.0 && self.dampening == 0.0,
                "Nesterov momentum needs momentum > 0 and dampening = 0",
            );
        }
    }
}

/// Stochastic gradient descent (Robbins & Monro, 1951) with heavy-ball or Nesterov momentum
/// (Polyak, 1964; Sutskever, Martens, Dahl & Hinton, "On the importance of initialization and
/// momentum in deep learning", ICML 2013), as PyTorch's `torch.optim.SGD`.
///
/// For each parameter θ with gradient g, learning rate η, weight decay λ, momentum μ,
/// dampening τ and step t = 1, 2, …:
///
/// ```text
/// g ← g + λ·θ                                  (if λ ≠ 0)
/// b ← g                      if t = 1          (if μ ≠ 0)
/// b ← μ·b + (1 − τ)·g        if t > 1
/// g ← g + μ·b  (Nesterov)    or  g ← b
/// θ ← θ − η·g
/// ```
///
/// State per parameter: the momentum buffer `momentum_buffer` (only when μ ≠ 0).
///
/// ```
/// use tapegrad::prelude::*;
///
/// // f(w) = ½ w², so g = w. Momentum 0.9, lr 0.1, from w = 1:
/// let w = Param::new(Tensor::<f64>::scalar(1.0));
/// let mut opt = Sgd::new(vec![w.clone()], SgdConfig { lr: 0.1, momentum: 0.9, ..Default::default() });
/// let tape = Tape::new();
/// opt.step(&(tape.param(&w).powi(2) * 0.5).backward());  // b = 1, w = 1 − 0.1 = 0.9
/// assert_eq!(w.value().item(), 0.9);
/// let tape = Tape::new();
/// opt.step(&(tape.param(&w).powi(2) * 0.5).backward());  // b = 0.9 + 0.9 = 1.8, w = 0.72
/// assert!((w.value().item() - 0.72).abs() < 1e-15);
/// ```
pub struct Sgd<T: Float = f32> {
    config: SgdConfig,
    slots: Slots<T, SgdState<T>>,
}

/// Per-parameter state: the momentum buffer, if momentum is on.
struct SgdState<T> {
    momentum_buffer: Option<Vec<T>>,
}

impl<T: Float> StateIo<T> for SgdState<T> {
    fn export(&self) -> ParamState {
        match &self.momentum_buffer {
            Some(b) => ParamState::from_slices(0, &[("momentum_buffer", b)]),
            None => ParamState::from_slices::<T>(0, &[]),
        }
    }
}

impl<T: Float> Sgd<T> {
    /// SGD over `params`, one group with the config's learning rate and weight decay.
    ///
    /// # Panics
    /// If a config value is invalid (negative `lr`, Nesterov without momentum, ...): the message
    /// names the field and the value. Also if `params` is empty or holds a parameter twice.
    #[track_caller]
    pub fn new(params: Vec<Param<T>>, config: SgdConfig) -> Self {
        Self::with_groups(vec![ParamGroup::new(params)], config)
    }

    /// SGD over several parameter groups, each with its own learning rate and weight decay
    /// (falling back to the config's).
    ///
    /// # Panics
    /// As [`Sgd::new`], and if a group's values are invalid.
    #[track_caller]
    pub fn with_groups(groups: Vec<ParamGroup<T>>, config: SgdConfig) -> Self {
        config.validate();
        Sgd {
            config,
            slots: Slots::new(ParamGroups::new(
                "Sgd",
                config.lr,
                Some(config.weight_decay),
                false,
                groups,
            )),
        }
    }

    /// The configuration (its `lr` and `weight_decay` are the defaults for new groups).
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }
}

/// The update of one parameter: `param` and `grad` are its elements, `state` its buffers.
fn update<T: Float>(
    config: &SgdConfig,
    hyper: GroupHyper,
    param: &mut [T],
    grad: &[T],
    state: &mut SgdState<T>,
) {
    let lr = T::from_f64(hyper.lr);
    let wd = T::from_f64(hyper.weight_decay);
    let decay = hyper.weight_decay != 0.0;
    if config.momentum == 0.0 {
        if decay {
            for (p, &g) in param.iter_mut().zip(grad) {
                *p = *p - lr * (g + wd * *p);
            }
        } else {
            for (p, &g) in param.iter_mut().zip(grad) {
                *p -= lr * g;
            }
        }
        return;
    }
    let m = Momentum::<T>::new(config.momentum, config.dampening);
    let first = state.momentum_buffer.is_none();
    let buf = state
        .momentum_buffer
        .get_or_insert_with(|| vec![T::ZERO; grad.len()]);
    match (first, config.nesterov, decay) {
        (true, false, false) => momentum_loop::<T, true, false, false>(m, lr, wd, param, grad, buf),
        (true, false, true) => momentum_loop::<T, true, false, true>(m, lr, wd, param, grad, buf),
        (true, true, false) => momentum_loop::<T, true, true, false>(m, lr, wd, param, grad, buf),
        (true, true, true) => momentum_loop::<T, true, true, true>(m, lr, wd, param, grad, buf),
        (false, false, false) => momentum_loop::<T, false, false, false>(m, lr, wd, param, grad, buf),
        (false, false, true) => momentum_loop::<T, false, false, true>(m, lr, wd, param, grad, buf),
        (false, true, false) => momentum_loop::<T, false, true, false>(m, lr, wd, param, grad, buf),
        (false, true, true) => momentum_loop::<T, false, true, true>(m, lr, wd, param, grad, buf),
    }
}

/// `θ ← θ − η·momentum(g + λθ)`, one variant per combination of constants: a branch-free loop.
#[inline(always)]
fn momentum_loop<T: Float, const FIRST: bool, const NESTEROV: bool, const DECAY: bool>(
    m: Momentum<T>,
    lr: T,
    wd: T,
    param: &mut [T],
    grad: &[T],
    buf: &mut [T],
) {
    for ((p, &g), b) in param.iter_mut().zip(grad).zip(buf.iter_mut()) {
        let g = if DECAY { g + wd * *p } else { g };
        let d = m.apply::<FIRST, NESTEROV>(g, b);
        *p -= lr * d;
    }
}

impl<T: Float> Optimizer<T> for Sgd<T> {
    #[track_caller]
    fn step(&mut self, grads: &Gradients<T>) {
        let config = self.config;
        self.slots.step(
            grads,
            |_| SgdState {
                momentum_buffer: None,
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
        let momentum = self.config.momentum != 0.0;
        self.slots.import(state, |numel, saved| {
            if momentum {
                saved.expect_names(&["momentum_buffer"])?;
                Ok(SgdState {
                    momentum_buffer: Some(saved.take("momentum_buffer", numel)?),
                })
            } else {
                saved.expect_names(&[])?;
                Ok(SgdState {
                    momentum_buffer: None,
                })
            }
        })
    }
}
