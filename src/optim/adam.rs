//! [`Adam`]: bias-corrected first and second moments of the gradient, with an L2 penalty. The
//! update here is shared with [`AdamW`](super::AdamW), which decays the weights directly.

use rayon::prelude::*;

use super::rmsprop::lerp;
use super::state::{ParamState, StateIo};
use super::{GroupHyper, Optimizer, OptimizerState, ParamGroup, ParamGroups, Slots, validate};
use crate::tensor::elementwise_chunk;
use crate::{Error, Float, Gradients, Param};

/// Configuration of [`Adam`]: PyTorch's `torch.optim.Adam` options and defaults.
///
/// ```
/// use tapegrad::optim::AdamConfig;
/// let c = AdamConfig::default();
/// assert_eq!((c.lr, c.betas, c.eps, c.weight_decay, c.amsgrad), (1e-3, (0.9, 0.999), 1e-8, 0.0, false));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate η (default `1e-3`); `>= 0`.
    pub lr: f64,
    /// Decay rates (β₁, β₂) of the first and second moment (default `(0.9, 0.999)`); each in
    /// `[0, 1)`.
    pub betas: (f64, f64),
    /// Term ε added to the denominator (default `1e-8`); `> 0`.
    pub eps: f64,
    /// L2 penalty λ added to the gradient (default 0); `>= 0`. For decoupled weight decay use
    /// [`AdamW`](super::AdamW).
    pub weight_decay: f64,
    /// AMSGrad: divide by the running maximum of the second moment (default `false`).
    pub amsgrad: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
        }
    }
}

/// The values the Adam update needs, whichever of Adam and AdamW owns them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdamRule {
    pub(crate) betas: (f64, f64),
    pub(crate) eps: f64,
    pub(crate) amsgrad: bool,
    /// AdamW: `θ ← θ·(1 − ηλ)` before the step, instead of `g ← g + λθ`.
    pub(crate) decoupled: bool,
}

/// Checks the fields Adam and AdamW share.
#[track_caller]
pub(crate) fn validate_adam(name: &str, lr: f64, betas: (f64, f64), eps: f64, weight_decay: f64) {
    validate::non_negative(name, "lr", lr);
    validate::unit_interval_open(name, "betas.0", betas.0);
    validate::unit_interval_open(name, "betas.1", betas.1);
    validate::positive(name, "eps", eps);
    validate::non_negative(name, "weight_decay", weight_decay);
}

/// Adam (Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015), with AMSGrad
/// (Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond", ICLR 2018), as PyTorch's
/// `torch.optim.Adam`.
///
/// For each parameter θ with gradient g, learning rate η, betas (β₁, β₂), weight decay λ and
/// step t = 1, 2, …, with the moments m and v starting at zero:
///
/// ```text
/// g ← g + λ·θ                               (if λ ≠ 0)
/// m ← β₁·m + (1 − β₁)·g
/// v ← β₂·v + (1 − β₂)·g²
/// v̂ ← max(v̂, v)  and use v̂ below           (AMSGrad only)
/// θ ← θ − (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
/// ```
///
/// State per parameter: the step count, `exp_avg` (m), `exp_avg_sq` (v) and `max_exp_avg_sq`
/// (v̂, AMSGrad only). The inner loop is branch-free and vectorises; on one core it is bound by
/// memory bandwidth (see `BENCHMARKS.md`).
///
/// ```
/// use tapegrad::prelude::*;
///
/// // The first step moves every coordinate by about η, against the sign of its gradient.
/// let w = Param::new(Tensor::<f32>::from_vec(vec![1.0, 1.0], &[2]));
/// let mut opt = Adam::new(vec![w.clone()], AdamConfig { lr: 0.1, ..Default::default() });
/// let tape = Tape::new();
/// let scale = tape.constant(Tensor::from_vec(vec![5.0, -0.2], &[2]));
/// opt.step(&(tape.param(&w) * scale).sum().backward());
/// let v = w.value().to_vec();
/// assert!((v[0] - 0.9).abs() < 1e-6 && (v[1] - 1.1).abs() < 1e-6);
/// ```
pub struct Adam<T: Float = f32> {
    config: AdamConfig,
    slots: Slots<T, AdamState<T>>,
}

/// Per-parameter state of Adam and AdamW.
pub(crate) struct AdamState<T> {
    step: u64,
    exp_avg: Vec<T>,
    exp_avg_sq: Vec<T>,
    max_exp_avg_sq: Option<Vec<T>>,
}

impl<T: Float> StateIo<T> for AdamState<T> {
    fn export(&self) -> ParamState {
        let mut buffers: Vec<(&str, &[T])> =
            vec![("exp_avg", &self.exp_avg), ("exp_avg_sq", &self.exp_avg_sq)];
        if let Some(v) = &self.max_exp_avg_sq {
            buffers.push(("max_exp_avg_sq", v));
        }
        ParamState::from_slices(self.step, &buffers)
    }
}

impl<T: Float> Adam<T> {
    /// Adam over `params`, one group with the config's learning rate and weight decay.
    ///
    /// # Panics
    /// If a config value is invalid (negative `lr`, betas outside `[0, 1)`, `eps <= 0`, ...): the
    /// message names the field and the value. Also if `params` is empty or holds a parameter
    /// twice.
    #[track_caller]
    pub fn new(params: Vec<Param<T>>, config: AdamConfig) -> Self {
        Self::with_groups(vec![ParamGroup::new(params)], config)
    }

    /// Adam over several parameter groups, each with its own learning rate and weight decay.
    ///
    /// # Panics
    /// As [`Adam::new`], and if a group's values are invalid.
    #[track_caller]
    pub fn with_groups(groups: Vec<ParamGroup<T>>, config: AdamConfig) -> Self {
        validate_adam("Adam", config.lr, config.betas, config.eps, config.weight_decay);
        Adam {
            config,
            slots: Slots::new(ParamGroups::new(
                "Adam",
                config.lr,
                Some(config.weight_decay),
                false,
                groups,
            )),
        }
    }

    /// The configuration (its `lr` and `weight_decay` are the defaults for new groups).
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    fn rule(&self) -> AdamRule {
        AdamRule {
            betas: self.config.betas,
            eps: self.config.eps,
            amsgrad: self.config.amsgrad,
            decoupled: false,
        }
    }
}

/// Steps every parameter of `slots` with the Adam rule (shared by Adam and AdamW).
#[track_caller]
pub(crate) fn adam_step<T: Float>(slots: &mut Slots<T, AdamState<T>>, rule: AdamRule, grads: &Gradients<T>) {
    slots.step(
        grads,
        |n| AdamState {
            step: 0,
            exp_avg: vec![T::ZERO; n],
            exp_avg_sq: vec![T::ZERO; n],
            max_exp_avg_sq: rule.amsgrad.then(|| vec![T::ZERO; n]),
        },
        |hyper, p, g, s| update(rule, hyper, p, g, s),
    );
}

/// Reads one parameter's Adam state.
pub(crate) fn adam_import<T: Float>(
    rule: AdamRule,
    numel: usize,
    saved: &ParamState,
) -> Result<AdamState<T>, String> {
    if rule.amsgrad {
        saved.expect_names(&["exp_avg", "exp_avg_sq", "max_exp_avg_sq"])?;
    } else {
        saved.expect_names(&["exp_avg", "exp_avg_sq"])?;
    }
    Ok(AdamState {
        step: saved.step,
        exp_avg: saved.take("exp_avg", numel)?,
        exp_avg_sq: saved.take_non_negative("exp_avg_sq", numel)?,
        max_exp_avg_sq: if rule.amsgrad {
            Some(saved.take_non_negative("max_exp_avg_sq", numel)?)
        } else {
            None
        },
    })
}

/// The per-step constants, computed in `f64` as PyTorch does with Python floats, then rounded.
#[derive(Clone, Copy)]
struct Coefficients<T> {
    /// Weight of the new gradient in the first moment: `1 − β₁` (PyTorch's `lerp` weight).
    w1: T,
    beta2: T,
    one_minus_beta2: T,
    /// `η / (1 − β₁ᵗ)`.
    step_size: T,
    /// `1 / √(1 − β₂ᵗ)`.
    inv_bias_correction2_sqrt: T,
    eps: T,
    /// `λ` (L2) or `1 − ηλ` (decoupled).
    decay: T,
}

/// The update of one parameter.
fn update<T: Float>(
    rule: AdamRule,
    hyper: GroupHyper,
    param: &mut [T],
    grad: &[T],
    state: &mut AdamState<T>,
) {
    state.step += 1;
    let t = i32::try_from(state.step).unwrap_or(i32::MAX);
    let (beta1, beta2) = rule.betas;
    let bias_correction1 = 1.0 - beta1.powi(t);
    let bias_correction2 = 1.0 - beta2.powi(t);
    let c = Coefficients {
        w1: T::from_f64(1.0 - beta1),
        beta2: T::from_f64(beta2),
        one_minus_beta2: T::from_f64(1.0 - beta2),
        step_size: T::from_f64(hyper.lr / bias_correction1),
        inv_bias_correction2_sqrt: T::from_f64(1.0 / bias_correction2.sqrt()),
        eps: T::from_f64(rule.eps),
        decay: T::from_f64(if rule.decoupled {
            1.0 - hyper.lr * hyper.weight_decay
        } else {
            hyper.weight_decay
        }),
    };
    let decay = hyper.weight_decay != 0.0;
    // PyTorch's lerp takes its other branch when the weight is 0.5 or more (β₁ <= 0.5).
    let low_weight = 1.0 - beta1 < 0.5;
    // Large parameters are updated in chunks on several threads (see `set_num_threads`): every
    // element's update is independent, and two threads halve the optimizer's share of a step.
    let chunk = elementwise_chunk(param.len());
    let chunks = param
        .par_chunks_mut(chunk)
        .zip(grad.par_chunks(chunk))
        .zip(state.exp_avg.par_chunks_mut(chunk))
        .zip(state.exp_avg_sq.par_chunks_mut(chunk));
    match &mut state.max_exp_avg_sq {
        None => chunks.for_each(|(((p, g), m), v)| match (decay, rule.decoupled) {
            (false, _) => adam_loop::<T, false, false>(c, low_weight, p, g, m, v),
            (true, false) => adam_loop::<T, true, false>(c, low_weight, p, g, m, v),
            (true, true) => adam_loop::<T, true, true>(c, low_weight, p, g, m, v),
        }),
        Some(vmax) => chunks
            .zip(vmax.par_chunks_mut(chunk))
            .for_each(|((((p, g), m), v), vmax)| match (decay, rule.decoupled) {
                (false, _) => amsgrad_loop::<T, false, false>(c, low_weight, p, g, m, v, vmax),
                (true, false) => amsgrad_loop::<T, true, false>(c, low_weight, p, g, m, v, vmax),
                (true, true) => amsgrad_loop::<T, true, true>(c, low_weight, p, g, m, v, vmax),
            }),
    }
}

/// One element of Adam up to the moments: returns the (decoupled-decayed) parameter value and the
/// new second moment; `m` and `v` are updated in place.
#[inline(always)]
fn adam_element<T: Float, const DECAY: bool, const DECOUPLED: bool>(
    c: Coefficients<T>,
    low_weight: bool,
    p: T,
    g: T,
    m: &mut T,
    v: &mut T,
) -> (T, T) {
    let p = if DECAY && DECOUPLED { p * c.decay } else { p };
    let g = if DECAY && !DECOUPLED { g + c.decay * p } else { g };
    *m = if low_weight {
        *m + c.w1 * (g - *m)
    } else {
        lerp(*m, g, c.w1)
    };
    *v = *v * c.beta2 + c.one_minus_beta2 * (g * g);
    (p, *v)
}

/// Adam without AMSGrad: a branch-free loop over five streams (θ, g, m, v; θ, m, v written).
#[inline(always)]
fn adam_loop<T: Float, const DECAY: bool, const DECOUPLED: bool>(
    c: Coefficients<T>,
    low_weight: bool,
    param: &mut [T],
    grad: &[T],
    m: &mut [T],
    v: &mut [T],
) {
    let elements = param.iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut());
    if low_weight {
        for (((p, &g), m), v) in elements {
            let (q, v) = adam_element::<T, DECAY, DECOUPLED>(c, true, *p, g, m, v);
            let denom = v.sqrt() * c.inv_bias_correction2_sqrt + c.eps;
            *p = q - c.step_size * (*m / denom);
        }
    } else {
        for (((p, &g), m), v) in elements {
            let (q, v) = adam_element::<T, DECAY, DECOUPLED>(c, false, *p, g, m, v);
            let denom = v.sqrt() * c.inv_bias_correction2_sqrt + c.eps;
            *p = q - c.step_size * (*m / denom);
        }
    }
}

/// Adam with AMSGrad: the denominator uses the running maximum of v.
#[inline(always)]
fn amsgrad_loop<T: Float, const DECAY: bool, const DECOUPLED: bool>(
    c: Coefficients<T>,
    low_weight: bool,
    param: &mut [T],
    grad: &[T],
    m: &mut [T],
    v: &mut [T],
    vmax: &mut [T],
) {
    let elements = param
        .iter_mut()
        .zip(grad)
        .zip(m.iter_mut())
        .zip(v.iter_mut())
        .zip(vmax.iter_mut());
    for ((((p, &g), m), v), vmax) in elements {
        let (q, v) = adam_element::<T, DECAY, DECOUPLED>(c, low_weight, *p, g, m, v);
        // torch.maximum: NaN propagates
        *vmax = if v > *vmax || v.is_nan() { v } else { *vmax };
        let denom = vmax.sqrt() * c.inv_bias_correction2_sqrt + c.eps;
        *p = q - c.step_size * (*m / denom);
    }
}

impl<T: Float> Optimizer<T> for Adam<T> {
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
