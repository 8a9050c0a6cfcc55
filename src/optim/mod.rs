//! Optimizers, learning-rate schedules, gradient clipping and second-order methods: everything
//! that turns [`Gradients`] into new [`Param`] values.
//!
//! | item | file | one job |
//! |---|---|---|
//! | [`Optimizer`] | `mod.rs` | the common interface: `step`, learning rate, [`ParamGroups`], state export/import |
//! | [`Sgd`] | `sgd.rs` | stochastic gradient descent, with momentum (`momentum.rs`) and Nesterov |
//! | [`Adagrad`] | `adagrad.rs` | per-coordinate rates from accumulated squared gradients |
//! | [`RmsProp`] | `rmsprop.rs` | a moving average of squared gradients, optionally centred, with momentum |
//! | [`Adam`], [`AdamW`] | `adam.rs`, `adamw.rs` | bias-corrected moments; L2 penalty or decoupled decay |
//! | [`Lbfgs`] | `lbfgs.rs` | limited-memory BFGS with an optional strong-Wolfe line search |
//! | [`newton_cg`] | `newton.rs` | Newton's method with Hessian-vector products and conjugate gradients |
//! | [`LrScheduler`], [`ReduceLrOnPlateau`] | `schedule.rs` | learning rate per epoch |
//! | [`clip_grad_norm`], [`clip_grad_value`] | `clip.rs` | gradient clipping |
//! | [`OptimizerState`] | `state.rs` | moments and step counts, exported and imported exactly |
//!
//! Each first-order optimizer file holds its `Config` (field names and defaults of PyTorch's
//! `torch.optim`), its per-parameter state and a pure update of one parameter's slice from its
//! gradient and state; the update rule is written as a formula in each type's documentation.
//! Hyper-parameters are `f64` whatever the element type; they are rounded to `T` once per step.
//!
//! # A training step
//!
//! ```
//! use tapegrad::prelude::*;
//!
//! // Minimise (w - 3)² with Adam.
//! let w = Param::new(Tensor::<f64>::scalar(0.0));
//! let mut opt = Adam::new(vec![w.clone()], AdamConfig { lr: 0.1, ..Default::default() });
//! let mut tape = Tape::new();
//! for _ in 0..500 {
//!     tape.reset();
//!     let loss = (tape.param(&w) - 3.0).powi(2);
//!     let grads = loss.backward();
//!     tape.reset(); // optional: lets the step write the parameters in place (see below)
//!     opt.step(&grads);
//! }
//! assert!((w.value().item() - 3.0).abs() < 1e-3);
//! ```
//!
//! A tape shares the values of the parameters bound to it (copy-on-write). Resetting or dropping
//! the tape after `backward` and before `step`, as above, lets the step update each parameter in
//! place; otherwise the first write copies the parameter once.
//!
//! # Steps to convergence
//!
//! Each optimizer, from the start `(-1.2, 1)`, in `f64`, with the learning rate in the table (other
//! settings at their defaults), until the objective is within `1e-6` of its minimum 0 (test
//! `each_optimizer_minimises_the_quadratic_and_rosenbrock` in `tests/optim.rs` checks these
//! counts). The quadratic is `(x − 1)² + (x − 1)(y − 1) + 5 (y − 1)²`; Rosenbrock is
//! `(1 − x)² + 100 (y − x²)²`.
//!
//! | optimizer | quadratic: lr, steps | Rosenbrock: lr, steps |
//! |---|---|---|
//! | Sgd | 0.1: 37 | 2e-3: 7_493 |
//! | Sgd, momentum 0.9 | 0.1: 88 | 2e-3: 769 |
//! | Sgd, Nesterov 0.9 | 0.1: 31 | 1e-3: 1_426 |
//! | Adagrad | 1: 17 | 0.5: 7_898 |
//! | RmsProp | 0.2: 8 | 5e-5: 57_185 |
//! | RmsProp, momentum 0.9 | 1e-3: 362 | 1e-3: 1_120 |
//! | Adam | 0.1: 115 | 0.1: 1_139 |
//! | AdamW (weight decay 0.01) | 0.05: 72 | 1e-3: 12_963 |
//! | Lbfgs (strong Wolfe): calls of `step_with` | 1: 1 | 1: 2 |
//! | newton_cg: iterations | 1 | 19 (61 with `cg_rtol: None`) |
//!
//! Each call of [`Lbfgs::step_with`] runs up to 20 iterations. With a fixed learning rate the
//! first-order methods need small rates on Rosenbrock's curved valley (larger ones diverge or,
//! for RmsProp, hover around the minimum); L-BFGS and Newton-CG need none. The tests also take
//! L-BFGS and Newton-CG to within `1e-8` of `(1, 1)`.

mod adagrad;
mod adam;
mod adamw;
mod clip;
mod groups;
mod lbfgs;
mod momentum;
mod newton;
mod rmsprop;
mod schedule;
mod sgd;
mod state;
mod validate;

pub use adagrad::{Adagrad, AdagradConfig};
pub use adam::{Adam, AdamConfig};
pub use adamw::{AdamW, AdamWConfig};
pub use clip::{ClipGradNormConfig, clip_grad_norm, clip_grad_norm_with, clip_grad_value};
pub use groups::{ParamGroup, ParamGroups};
pub use lbfgs::{Lbfgs, LbfgsConfig, LineSearch};
pub use newton::{NewtonCgConfig, NewtonCgReport, newton_cg};
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use schedule::{
    CosineAnnealingLr, ExponentialLr, LinearWarmup, LrScheduler, PlateauConfig, PlateauMode,
    ReduceLrOnPlateau, Schedule, Sequential, StepLr, ThresholdMode,
};
pub use sgd::{Sgd, SgdConfig};
pub use state::{GroupState, OptimizerState, ParamState};

use crate::param::ParamMap;
use crate::{Error, Float, Gradients, Param};

/// The common interface of the optimizers: one step from [`Gradients`], the learning rate,
/// [`ParamGroups`] and the export and import of the optimizer's state.
///
/// Parameters without a gradient in the [`Gradients`] are skipped (their state does not advance),
/// as PyTorch skips parameters whose `.grad` is `None`.
///
/// ```
/// use tapegrad::prelude::*;
///
/// fn train<O: Optimizer<f64>>(opt: &mut O, w: &Param<f64>) {
///     let mut tape = Tape::new();
///     for _ in 0..100 {
///         tape.reset();
///         let grads = (tape.param(w) * tape.param(w)).backward();
///         opt.step(&grads);
///     }
/// }
/// let w = Param::new(Tensor::<f64>::scalar(1.0));
/// let mut opt = Sgd::new(vec![w.clone()], SgdConfig { lr: 0.1, ..Default::default() });
/// train(&mut opt, &w);
/// assert!(w.value().item().abs() < 1e-9);
/// opt.set_lr(0.01);
/// assert_eq!(opt.lr(), 0.01);
/// ```
pub trait Optimizer<T: Float = f32> {
    /// Updates every parameter that has a gradient in `grads`.
    ///
    /// # Panics
    /// If a gradient's shape differs from its parameter's.
    fn step(&mut self, grads: &Gradients<T>);

    /// The parameter groups: their parameters, learning rates and weight decays.
    fn param_groups(&self) -> &ParamGroups<T>;

    /// The parameter groups, to change a group's learning rate or weight decay.
    fn param_groups_mut(&mut self) -> &mut ParamGroups<T>;

    /// Adds a group of parameters; a rate or decay it does not set comes from the config.
    ///
    /// # Panics
    /// If the group's values are invalid, a parameter is already in a group, or the optimizer
    /// takes one group only ([`Lbfgs`]).
    #[track_caller]
    fn add_param_group(&mut self, group: ParamGroup<T>) {
        self.param_groups_mut().push(group);
    }

    /// The learning rate of the first group.
    fn lr(&self) -> f64 {
        self.param_groups().lr(0)
    }

    /// Sets the learning rate of every group (use [`ParamGroups::set_lr`] for one group).
    ///
    /// # Panics
    /// If `lr` is negative or not finite.
    #[track_caller]
    fn set_lr(&mut self, lr: f64) {
        self.param_groups_mut().set_lr_all(lr);
    }

    /// A copy of the state (moments, step counts, each group's rate and decay), exact to the bit.
    /// Together with the parameter values it is everything needed to resume a run.
    fn state(&self) -> OptimizerState;

    /// Restores a state from [`Optimizer::state`] into an optimizer built with the same kind of
    /// config over parameters of the same shapes, in the same groups and order.
    ///
    /// # Errors
    /// [`Error::InvalidData`] if the state is from another optimizer or does not fit the groups
    /// and shapes; the optimizer is left unchanged then.
    fn load_state(&mut self, state: &OptimizerState) -> Result<(), Error>;
}

/// The groups and the per-parameter state of a first-order optimizer, with the loop that hands
/// each parameter's slices to a pure update.
pub(crate) struct Slots<T: Float, S> {
    pub(crate) groups: ParamGroups<T>,
    pub(crate) states: ParamMap<S>,
}

/// One group's rate and decay, as the update sees them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupHyper {
    pub(crate) lr: f64,
    pub(crate) weight_decay: f64,
}

impl<T: Float, S: state::StateIo<T>> Slots<T, S> {
    pub(crate) fn new(groups: ParamGroups<T>) -> Self {
        Slots {
            groups,
            states: ParamMap::default(),
        }
    }

    /// Calls `update(hyper, param, grad, state)` for every parameter with a gradient, creating
    /// its state with `init(numel)` on its first step.
    #[track_caller]
    pub(crate) fn step(
        &mut self,
        grads: &Gradients<T>,
        init: impl Fn(usize) -> S,
        mut update: impl FnMut(GroupHyper, &mut [T], &[T], &mut S),
    ) {
        let name = self.groups.optimizer();
        for (g, group) in self.groups.groups().iter().enumerate() {
            let hyper = GroupHyper {
                lr: group.lr,
                weight_decay: group.weight_decay,
            };
            for (i, param) in group.params.iter().enumerate() {
                let Some(grad) = grads.param(param) else { continue };
                check_grad_shape(name, (g, i), param, grad.shape());
                let state = self
                    .states
                    .entry(param.id())
                    .or_insert_with(|| init(grad.numel()));
                param.update(|value| update(hyper, value.as_mut_slice(), grad.as_slice(), state));
            }
        }
    }

    pub(crate) fn export(&self) -> OptimizerState {
        let params = self
            .groups
            .all_params()
            .map(|p| {
                self.states.get(&p.id()).map(|s| ParamState {
                    shape: p.shape(),
                    ..s.export()
                })
            })
            .collect();
        OptimizerState {
            optimizer: self.groups.optimizer().to_string(),
            groups: self.groups.export(),
            params,
            extra: Vec::new(),
        }
    }

    /// Imports `state`, reading each parameter's buffers with `import(numel, state)`.
    pub(crate) fn import(
        &mut self,
        state: &OptimizerState,
        import: impl Fn(usize, &ParamState) -> Result<S, String>,
    ) -> Result<(), Error> {
        let name = self.groups.optimizer();
        self.groups.check_import(state)?;
        if !state.extra.is_empty() {
            return Err(state::invalid(name, "unexpected optimizer-wide buffers"));
        }
        let mut states = ParamMap::default();
        for (i, (param, saved)) in self.groups.all_params().zip(&state.params).enumerate() {
            if let Some(saved) = saved {
                let shape = param.shape();
                if saved.shape != shape {
                    return Err(state::invalid(
                        name,
                        &format!(
                            "parameter {i}: the state is for a parameter of shape {:?}, this one has shape {shape:?}",
                            saved.shape
                        ),
                    ));
                }
                let numel = param.value().numel();
                let s =
                    import(numel, saved).map_err(|e| state::invalid(name, &format!("parameter {i}: {e}")))?;
                states.insert(param.id(), s);
            }
        }
        self.groups.import_hyper(state);
        self.states = states;
        Ok(())
    }
}

/// Panics unless a gradient has its parameter's shape.
#[track_caller]
pub(crate) fn check_grad_shape<T: Float>(
    optimizer: &str,
    (group, position): (usize, usize),
    param: &Param<T>,
    grad: &[usize],
) {
    let shape = param.shape();
    assert!(
        shape == grad,
        "tapegrad: {optimizer}: the gradient of parameter {position} of group {group} has shape \
         {grad:?}, but the parameter has shape {shape:?}"
    );
}
