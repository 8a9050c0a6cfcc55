//! [`RmsProp`]: gradients scaled by a moving average of their squares.

use super::momentum::Momentum;
use super::state::{ParamState, StateIo};
use super::{GroupHyper, Optimizer, OptimizerState, ParamGroup, ParamGroups, Slots, validate};
use crate::{Error, Float, Gradients, Param};

/// Configuration of [`RmsProp`]: PyTorch's `torch.optim.RMSprop` options and defaults.
///
/// ```
/// use tapegrad::optim::RmsPropConfig;
/// let c = RmsPropConfig::default();
/// assert_eq!((c.lr, c.alpha, c.eps, c.momentum, c.centered), (1e-2, 0.99, 1e-8, 0.0, false));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsPropConfig {
    /// Learning rate η (default `1e-2`); `>= 0`.
    pub lr: f64,
    /// Smoothing constant α of the average of squares (default 0.99); in `[0, 1)`.
    pub alpha: f64,
    /// Term ε added to the denominator (default `1e-8`); `> 0`.
    pub eps: f64,
    /// L2 penalty λ added to the gradient (default 0); `>= 0`.
    pub weight_decay: f64,
    /// Momentum factor μ (default 0); `>= 0`.
    pub momentum: f64,
    /// Centred RMSProp: divide by an estimate of the variance instead of the second moment
    /// (default `false`).
    pub centered: bool,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        RmsPropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
        }
    }
}

impl RmsPropConfig {
    #[track_caller]
    fn validate(&self) {
        validate::non_negative("RmsProp", "lr", self.lr);
        validate::unit_interval_open("RmsProp", "alpha", self.alpha);
        validate::positive("RmsProp", "eps", self.eps);
        validate::non_negative("RmsProp", "weight_decay", self.weight_decay);
        validate::non_negative("RmsProp", "momentum", self.momentum);
    }
}

/// RMSProp (Tieleman & Hinton, "Lecture 6.5 — RMSprop", COURSERA: Neural Networks for Machine
/// Learning, 2012; the centred variant from Graves, "Generating Sequences With Recurrent Neural
/// Networks", arXiv:1308.0850, 2013), as PyTorch's `torch.optim.RMSprop`.
///
/// For each parameter θ with gradient g, learning rate η, smoothing α, weight decay λ and
/// momentum μ, with every buffer starting at zero:
///
/// ```text
/// g ← g + λ·θ                         (if λ ≠ 0)
/// v ← α·v + (1 − α)·g²
/// m ← m + (1 − α)·(g − m)             (centred only: an average of g)
/// a = √(v − m²) + ε  (centred)   or   a = √v + ε
/// b ← μ·b + g / a,  θ ← θ − η·b       (if μ > 0)
/// θ ← θ − η·g / a                     (otherwise)
/// ```
///
/// State per parameter: the step count, `square_avg` (v), `grad_avg` (m, centred only) and
/// `momentum_buffer` (b, only when μ > 0).
///
/// ```
/// use tapegrad::prelude::*;
///
/// // First step from v = 0: v = (1 − α)·g², so θ moves by η·g/(√(1 − α)·|g| + ε) ≈ η/√(1 − α).
/// let w = Param::new(Tensor::<f64>::scalar(0.0));
/// let mut opt = RmsProp::new(vec![w.clone()], RmsPropConfig { lr: 0.01, ..Default::default() });
/// let tape = Tape::new();
/// opt.step(&(tape.param(&w) * 4.0).backward());
/// assert!((w.value().item() + 0.1).abs() < 1e-8);
/// ```
pub struct RmsProp<T: Float = f32> {
    config: RmsPropConfig,
    slots: Slots<T, RmsPropState<T>>,
}

/// Per-parameter state; the optional buffers exist when the config uses them.
struct RmsPropState<T> {
    step: u64,
    square_avg: Vec<T>,
    grad_avg: Option<Vec<T>>,
    momentum_buffer: Option<Vec<T>>,
}

impl<T: Float> StateIo<T> for RmsPropState<T> {
    fn export(&self) -> ParamState {
        let mut buffers: Vec<(&str, &[T])> = vec![("square_avg", &self.square_avg)];
        if let Some(m) = &self.grad_avg {
            buffers.push(("grad_avg", m));
        }
        if let Some(b) = &self.momentum_buffer {
            buffers.push(("momentum_buffer", b));
        }
        ParamState::from_slices(self.step, &buffers)
    }
}

impl<T: Float> RmsProp<T> {
    /// RMSProp over `params`, one group with the config's learning rate and weight decay.
    ///
    /// # Panics
    /// If a config value is invalid (negative `lr`, `alpha` outside `[0, 1)`, `eps <= 0`, ...):
    /// the message names the field and the value. Also if `params` is empty or holds a parameter
    /// twice.
    #[track_caller]
    pub fn new(params: Vec<Param<T>>, config: RmsPropConfig) -> Self {
        Self::with_groups(vec![ParamGroup::new(params)], config)
    }

    /// RMSProp over several parameter groups, each with its own learning rate and weight decay.
    ///
    /// # Panics
    /// As [`RmsProp::new`], and if a group's values are invalid.
    #[track_caller]
    pub fn with_groups(groups: Vec<ParamGroup<T>>, config: RmsPropConfig) -> Self {
        config.validate();
        RmsProp {
            config,
            slots: Slots::new(ParamGroups::new(
                "RmsProp",
                config.lr,
                Some(config.weight_decay),
                false,
                groups,
            )),
        }
    }

    /// The configuration (its `lr` and `weight_decay` are the defaults for new groups).
    pub fn config(&self) -> &RmsPropConfig {
        &self.config
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        let mut names = vec!["square_avg"];
        if self.config.centered {
            names.push("grad_avg");
        }
        if self.config.momentum > 0.0 {
            names.push("momentum_buffer");
        }
        names
    }
}

/// The update of one parameter. Elementwise, in PyTorch's order of operations; each variant's
/// branches are on constants of the step, which the compiler moves out of the loop.
fn update<T: Float>(
    config: &RmsPropConfig,
    hyper: GroupHyper,
    param: &mut [T],
    grad: &[T],
    state: &mut RmsPropState<T>,
) {
    state.step += 1;
    let lr = T::from_f64(hyper.lr);
    let wd = T::from_f64(hyper.weight_decay);
    let decay = hyper.weight_decay != 0.0;
    let alpha = T::from_f64(config.alpha);
    let one_minus_alpha = T::from_f64(1.0 - config.alpha);
    let eps = T::from_f64(config.eps);
    let momentum = Momentum::<T>::new(config.momentum, 0.0);
    let n = param.len();
    let grad_avg = state.grad_avg.as_deref_mut();
    let buf = state.momentum_buffer.as_deref_mut();
    // The optional buffers are zipped as empty slices when absent, so one loop serves all cases.
    let mut no_avg: [T; 0] = [];
    let mut no_buf: [T; 0] = [];
    let (grad_avg, centered) = match grad_avg {
        Some(m) => (m, true),
        None => (&mut no_avg[..], false),
    };
    let (buf, with_momentum) = match buf {
        Some(b) => (b, true),
        None => (&mut no_buf[..], false),
    };
    debug_assert!(grad.len() == n && state.square_avg.len() == n);
    for i in 0..n {
        let p = param[i];
        let g = if decay { grad[i] + wd * p } else { grad[i] };
        let v = state.square_avg[i] * alpha + one_minus_alpha * (g * g);
        state.square_avg[i] = v;
        let a = if centered {
            // torch: grad_avg.lerp_(g, 1 − α); avg = (v − m²).sqrt() + ε
            let m = lerp(grad_avg[i], g, one_minus_alpha);
            grad_avg[i] = m;
            (v - m * m).sqrt() + eps
        } else {
            v.sqrt() + eps
        };
        param[i] = if with_momentum {
            let d = momentum.apply::<false, false>(g / a, &mut buf[i]);
            p - lr * d
        } else {
            p - lr * (g / a)
        };
    }
}

/// PyTorch's `lerp(a, b, w)`: `a + w·(b − a)` for `w < 0.5`, else `b − (b − a)·(1 − w)`.
#[inline(always)]
pub(crate) fn lerp<T: Float>(a: T, b: T, w: T) -> T {
    if w < T::from_f64(0.5) {
        a + w * (b - a)
    } else {
        b - (b - a) * (T::ONE - w)
    }
}

impl<T: Float> Optimizer<T> for RmsProp<T> {
    #[track_caller]
    fn step(&mut self, grads: &Gradients<T>) {
        let config = self.config;
        self.slots.step(
            grads,
            |n| RmsPropState {
                step: 0,
                square_avg: vec![T::ZERO; n],
                grad_avg: config.centered.then(|| vec![T::ZERO; n]),
                momentum_buffer: (config.momentum > 0.0).then(|| vec![T::ZERO; n]),
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
        let names = self.buffer_names();
        let config = self.config;
        self.slots.import(state, |numel, saved| {
            saved.expect_names(&names)?;
            Ok(RmsPropState {
                step: saved.step,
                square_avg: saved.take_non_negative("square_avg", numel)?,
                grad_avg: if config.centered {
                    Some(saved.take("grad_avg", numel)?)
                } else {
                    None
                },
                momentum_buffer: if config.momentum > 0.0 {
                    Some(saved.take("momentum_buffer", numel)?)
                } else {
                    None
                },
            })
        })
    }
}
