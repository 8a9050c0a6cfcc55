//! Learning-rate schedules. A [`Schedule`] is a pure function of the base rate and the epoch;
//! [`LrScheduler`] applies one to any [`Optimizer`] (each parameter group from its own base
//! rate), and [`ReduceLrOnPlateau`] lowers the rates when a metric stops improving.
//!
//! The values match PyTorch's `StepLR`, `ExponentialLR`, `CosineAnnealingLR`, `LinearLR` and
//! `ReduceLROnPlateau`: the rate during epoch `e` (counting from 0) is `schedule.lr(base, e)`,
//! and [`LrScheduler::step`] is called at the end of each epoch.

use super::{Optimizer, validate};
use crate::Float;

/// A learning rate as a function of the base rate and the epoch (0, 1, 2, …).
///
/// Any closure `Fn(f64, usize) -> f64` is a schedule too (PyTorch's `LambdaLR`, with the base
/// rate passed in), and [`then`](Schedule::then) switches from one schedule to another.
///
/// ```
/// use tapegrad::optim::{CosineAnnealingLr, LinearWarmup, Schedule};
/// // 5 epochs of linear warm-up, then cosine annealing over 20 epochs.
/// let s = LinearWarmup::new(0.1, 1.0, 5).then(5, CosineAnnealingLr::new(20, 0.0));
/// assert!((s.lr(1.0, 0) - 0.1).abs() < 1e-15);
/// assert_eq!(s.lr(1.0, 5), 1.0);
/// assert!((s.lr(1.0, 15) - 0.5).abs() < 1e-15);
/// let halve_every_10 = |base: f64, epoch: usize| base * 0.5f64.powi((epoch / 10) as i32);
/// assert_eq!(halve_every_10.lr(0.1, 25), 0.025);
/// ```
pub trait Schedule {
    /// The learning rate during `epoch` for a group whose base rate is `base_lr`.
    fn lr(&self, base_lr: f64, epoch: usize) -> f64;

    /// This schedule for epochs before `milestone`, then `next` restarted at epoch 0 (PyTorch's
    /// `SequentialLR`, whose later schedules also start from the base rate).
    fn then<S: Schedule>(self, milestone: usize, next: S) -> Sequential<Self, S>
    where
        Self: Sized,
    {
        Sequential {
            first: self,
            milestone,
            next,
        }
    }
}

impl<F: Fn(f64, usize) -> f64> Schedule for F {
    fn lr(&self, base_lr: f64, epoch: usize) -> f64 {
        self(base_lr, epoch)
    }
}

/// Multiplies the rate by `gamma` every `step_size` epochs (PyTorch's `StepLR`):
/// `lr = base · γ^⌊epoch / step_size⌋`.
///
/// ```
/// use tapegrad::optim::{Schedule, StepLr};
/// let s = StepLr::new(3, 0.5);
/// assert_eq!([0, 2, 3, 6].map(|e| s.lr(0.1, e)), [0.1, 0.1, 0.05, 0.025]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepLr {
    step_size: usize,
    gamma: f64,
}

impl StepLr {
    /// # Panics
    /// If `step_size` is 0 or `gamma` is not a finite number `>= 0`.
    #[track_caller]
    pub fn new(step_size: usize, gamma: f64) -> Self {
        validate::check(
            "StepLr",
            "step_size",
            step_size,
            step_size > 0,
            "must be at least 1",
        );
        validate::non_negative("StepLr", "gamma", gamma);
        StepLr { step_size, gamma }
    }
}

impl Schedule for StepLr {
    fn lr(&self, base_lr: f64, epoch: usize) -> f64 {
        base_lr * powu(self.gamma, epoch / self.step_size)
    }
}

/// Multiplies the rate by `gamma` every epoch (PyTorch's `ExponentialLR`): `lr = base · γ^epoch`.
///
/// ```
/// use tapegrad::optim::{ExponentialLr, Schedule};
/// assert_eq!(ExponentialLr::new(0.5).lr(1.0, 3), 0.125);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExponentialLr {
    gamma: f64,
}

impl ExponentialLr {
    /// # Panics
    /// If `gamma` is not a finite number `>= 0`.
    #[track_caller]
    pub fn new(gamma: f64) -> Self {
        validate::non_negative("ExponentialLr", "gamma", gamma);
        ExponentialLr { gamma }
    }
}

impl Schedule for ExponentialLr {
    fn lr(&self, base_lr: f64, epoch: usize) -> f64 {
        base_lr * powu(self.gamma, epoch)
    }
}

/// Cosine annealing from the base rate down to `eta_min` over `t_max` epochs, and back up over
/// the next `t_max` (PyTorch's `CosineAnnealingLR`, without restarts; Loshchilov & Hutter,
/// "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017):
/// `lr = η_min + (base − η_min) · (1 + cos(π · epoch / t_max)) / 2`.
///
/// ```
/// use tapegrad::optim::{CosineAnnealingLr, Schedule};
/// let s = CosineAnnealingLr::new(10, 0.0);
/// assert_eq!((s.lr(1.0, 0), s.lr(1.0, 10)), (1.0, 0.0));
/// assert!((s.lr(1.0, 5) - 0.5).abs() < 1e-15);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CosineAnnealingLr {
    t_max: usize,
    eta_min: f64,
}

impl CosineAnnealingLr {
    /// # Panics
    /// If `t_max` is 0 or `eta_min` is not a finite number `>= 0`.
    #[track_caller]
    pub fn new(t_max: usize, eta_min: f64) -> Self {
        validate::check(
            "CosineAnnealingLr",
            "t_max",
            t_max,
            t_max > 0,
            "must be at least 1",
        );
        validate::non_negative("CosineAnnealingLr", "eta_min", eta_min);
        CosineAnnealingLr { t_max, eta_min }
    }
}

impl Schedule for CosineAnnealingLr {
    fn lr(&self, base_lr: f64, epoch: usize) -> f64 {
        // cos(π·e/T) has period 2T: reduce first so large epochs keep full precision.
        let e = epoch % (2 * self.t_max);
        if e == 0 {
            return base_lr;
        }
        let cos = (std::f64::consts::PI * e as f64 / self.t_max as f64).cos();
        self.eta_min + (base_lr - self.eta_min) * (1.0 + cos) / 2.0
    }
}

/// Scales the rate linearly from `start_factor · base` to `end_factor · base` over `total_iters`
/// epochs, then holds it (PyTorch's `LinearLR`; with `end_factor = 1`, a linear warm-up):
/// `lr = base · (s + (e − s) · min(epoch, total_iters) / total_iters)`.
///
/// ```
/// use tapegrad::optim::{LinearWarmup, Schedule};
/// let s = LinearWarmup::new(0.25, 1.0, 3);
/// assert_eq!([0, 1, 2, 3, 9].map(|e| s.lr(1.0, e)), [0.25, 0.5, 0.75, 1.0, 1.0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearWarmup {
    start_factor: f64,
    end_factor: f64,
    total_iters: usize,
}

impl LinearWarmup {
    /// # Panics
    /// If `start_factor` is not in `(0, 1]`, `end_factor` not in `[0, 1]` (PyTorch's rules), or
    /// `total_iters` is 0.
    #[track_caller]
    pub fn new(start_factor: f64, end_factor: f64, total_iters: usize) -> Self {
        let name = "LinearWarmup";
        validate::check(
            name,
            "start_factor",
            start_factor,
            start_factor > 0.0 && start_factor <= 1.0,
            "must be in (0, 1]",
        );
        validate::unit_interval(name, "end_factor", end_factor);
        validate::check(
            name,
            "total_iters",
            total_iters,
            total_iters > 0,
            "must be at least 1",
        );
        LinearWarmup {
            start_factor,
            end_factor,
            total_iters,
        }
    }
}

impl Schedule for LinearWarmup {
    fn lr(&self, base_lr: f64, epoch: usize) -> f64 {
        let progress = epoch.min(self.total_iters) as f64 / self.total_iters as f64;
        base_lr * (self.start_factor + (self.end_factor - self.start_factor) * progress)
    }
}

/// One schedule until a milestone epoch, then another from its epoch 0: see [`Schedule::then`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sequential<A, B> {
    first: A,
    milestone: usize,
    next: B,
}

impl<A: Schedule, B: Schedule> Schedule for Sequential<A, B> {
    fn lr(&self, base_lr: f64, epoch: usize) -> f64 {
        if epoch < self.milestone {
            self.first.lr(base_lr, epoch)
        } else {
            self.next.lr(base_lr, epoch - self.milestone)
        }
    }
}

/// `x^n` for a count `n`, by repeated squaring in `f64`.
fn powu(x: f64, n: usize) -> f64 {
    match i32::try_from(n) {
        Ok(n) => x.powi(n),
        Err(_) => x.powf(n as f64),
    }
}

/// Drives a [`Schedule`] on an optimizer: each parameter group's rate is the schedule applied
/// to that group's base rate (its rate when the scheduler was made).
///
/// Works with any [`Optimizer`]; making the scheduler sets the epoch-0 rates, and
/// [`step`](LrScheduler::step) moves to the next epoch.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::optim::{LrScheduler, StepLr};
///
/// let w = Param::new(Tensor::<f32>::zeros(&[4]));
/// let mut opt = Sgd::new(vec![w], SgdConfig { lr: 0.1, momentum: 0.9, ..Default::default() });
/// let mut sched = LrScheduler::new(StepLr::new(2, 0.1), &mut opt);
/// let mut rates = vec![];
/// for _epoch in 0..5 {
///     // ... a pass over the data, calling opt.step(&grads) for each batch ...
///     rates.push(opt.lr());
///     sched.step(&mut opt);
/// }
/// let expected = [0.1, 0.1, 0.01, 0.01, 0.001];
/// assert!(rates.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-12));
/// ```
#[derive(Clone, Debug)]
pub struct LrScheduler<S> {
    schedule: S,
    base_lrs: Vec<f64>,
    epoch: usize,
}

impl<S: Schedule> LrScheduler<S> {
    /// Takes each group's current rate as its base rate and sets the epoch-0 rates.
    ///
    /// # Panics
    /// If the schedule gives a negative or non-finite rate.
    #[track_caller]
    pub fn new<T: Float, O: Optimizer<T> + ?Sized>(schedule: S, optimizer: &mut O) -> Self {
        let base_lrs = optimizer.param_groups().lrs();
        let scheduler = LrScheduler {
            schedule,
            base_lrs,
            epoch: 0,
        };
        scheduler.apply(optimizer);
        scheduler
    }

    /// A scheduler at `epoch` with the given base rates, without touching an optimizer: to resume
    /// a run, with the optimizer's rates restored by
    /// [`Optimizer::load_state`](super::Optimizer::load_state).
    pub fn resume(schedule: S, base_lrs: Vec<f64>, epoch: usize) -> Self {
        LrScheduler {
            schedule,
            base_lrs,
            epoch,
        }
    }

    /// Moves to the next epoch and sets each group's rate.
    ///
    /// # Panics
    /// If the optimizer's number of groups changed, or the schedule gives a negative or
    /// non-finite rate.
    #[track_caller]
    pub fn step<T: Float, O: Optimizer<T> + ?Sized>(&mut self, optimizer: &mut O) {
        self.epoch += 1;
        self.apply(optimizer);
    }

    #[track_caller]
    fn apply<T: Float, O: Optimizer<T> + ?Sized>(&self, optimizer: &mut O) {
        let groups = optimizer.param_groups_mut();
        assert!(
            groups.len() == self.base_lrs.len(),
            "tapegrad: LrScheduler: the optimizer has {} parameter groups, the scheduler was made \
             for {}",
            groups.len(),
            self.base_lrs.len()
        );
        for (i, &base) in self.base_lrs.iter().enumerate() {
            groups.set_lr(i, self.schedule.lr(base, self.epoch));
        }
    }

    /// The current epoch (0 before the first [`step`](LrScheduler::step)).
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Each group's base rate.
    pub fn base_lrs(&self) -> &[f64] {
        &self.base_lrs
    }

    /// The rates of the current epoch.
    pub fn lrs(&self) -> Vec<f64> {
        self.base_lrs
            .iter()
            .map(|&b| self.schedule.lr(b, self.epoch))
            .collect()
    }
}

/// Whether a lower or a higher metric is better, for [`ReduceLrOnPlateau`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlateauMode {
    /// Lower is better (a loss).
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// How [`PlateauConfig::threshold`] measures a significant improvement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThresholdMode {
    /// Better than `best · (1 ∓ threshold)`.
    Rel,
    /// Better than `best ∓ threshold`.
    Abs,
}

/// Configuration of [`ReduceLrOnPlateau`]: PyTorch's `ReduceLROnPlateau` options and defaults.
///
/// ```
/// use tapegrad::optim::{PlateauConfig, PlateauMode};
/// let c = PlateauConfig { patience: 2, ..Default::default() };
/// assert_eq!((c.mode, c.factor, c.threshold, c.cooldown), (PlateauMode::Min, 0.1, 1e-4, 0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlateauConfig {
    /// Whether the metric should go down or up (default [`PlateauMode::Min`]).
    pub mode: PlateauMode,
    /// Factor the rates are multiplied by on a plateau (default 0.1); in `[0, 1)`.
    pub factor: f64,
    /// Epochs without improvement tolerated before reducing (default 10).
    pub patience: usize,
    /// Least improvement that counts (default `1e-4`); `>= 0`.
    pub threshold: f64,
    /// Relative or absolute threshold (default [`ThresholdMode::Rel`]).
    pub threshold_mode: ThresholdMode,
    /// Epochs to wait after a reduction before counting bad epochs again (default 0).
    pub cooldown: usize,
    /// Lower bound of every group's rate (default 0); `>= 0`.
    pub min_lr: f64,
    /// A reduction smaller than this is skipped (default `1e-8`); `>= 0`.
    pub eps: f64,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        PlateauConfig {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }
    }
}

/// Reduces every group's rate by `factor` when a metric has not improved for more than
/// `patience` epochs (PyTorch's `ReduceLROnPlateau`).
///
/// ```text
/// better(x) = x < best·(1 − threshold)   (Min, Rel)    x < best − threshold   (Min, Abs)
///             x > best·(1 + threshold)   (Max, Rel)    x > best + threshold   (Max, Abs)
/// bad ← 0 if better(x) (and best ← x), else bad + 1; bad ← 0 during cooldown
/// if bad > patience:  lr ← max(lr·factor, min_lr) per group (if it drops by more than eps);
///                     cooldown starts, bad ← 0
/// ```
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::optim::{PlateauConfig, ReduceLrOnPlateau};
///
/// let w = Param::new(Tensor::<f32>::zeros(&[1]));
/// let mut opt = Adam::new(vec![w], AdamConfig { lr: 0.1, ..Default::default() });
/// let mut plateau = ReduceLrOnPlateau::new(PlateauConfig { patience: 1, factor: 0.5, ..Default::default() });
/// for loss in [1.0, 0.5, 0.5, 0.5, 0.5, 0.5] {
///     plateau.step(&mut opt, loss);
/// }
/// // Epochs 3 and 4 do not improve on 0.5: two bad epochs, more than the patience of 1, so the
/// // rate is halved and the count restarts; epochs 5 and 6 halve it again.
/// assert_eq!(opt.lr(), 0.025);
/// ```
#[derive(Clone, Debug)]
pub struct ReduceLrOnPlateau {
    config: PlateauConfig,
    best: f64,
    num_bad_epochs: usize,
    cooldown_counter: usize,
    epoch: usize,
}

impl ReduceLrOnPlateau {
    /// # Panics
    /// If `factor` is not in `[0, 1)`, or `threshold`, `min_lr` or `eps` is negative or not
    /// finite.
    #[track_caller]
    pub fn new(config: PlateauConfig) -> Self {
        let name = "ReduceLrOnPlateau";
        validate::unit_interval_open(name, "factor", config.factor);
        validate::non_negative(name, "threshold", config.threshold);
        validate::non_negative(name, "min_lr", config.min_lr);
        validate::non_negative(name, "eps", config.eps);
        ReduceLrOnPlateau {
            config,
            best: match config.mode {
                PlateauMode::Min => f64::INFINITY,
                PlateauMode::Max => f64::NEG_INFINITY,
            },
            num_bad_epochs: 0,
            cooldown_counter: 0,
            epoch: 0,
        }
    }

    fn is_better(&self, x: f64) -> bool {
        let (t, best) = (self.config.threshold, self.best);
        match (self.config.mode, self.config.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => x < best * (1.0 - t),
            (PlateauMode::Min, ThresholdMode::Abs) => x < best - t,
            (PlateauMode::Max, ThresholdMode::Rel) => x > best * (t + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => x > best + t,
        }
    }

    /// Records the metric of the epoch that just ended and lowers the rates on a plateau.
    #[track_caller]
    pub fn step<T: Float, O: Optimizer<T> + ?Sized>(&mut self, optimizer: &mut O, metric: f64) {
        self.epoch += 1;
        if self.is_better(metric) {
            self.best = metric;
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad_epochs = 0;
        }
        if self.num_bad_epochs > self.config.patience {
            let groups = optimizer.param_groups_mut();
            for i in 0..groups.len() {
                let old = groups.lr(i);
                let new = (old * self.config.factor).max(self.config.min_lr);
                if old - new > self.config.eps {
                    groups.set_lr(i, new);
                }
            }
            self.cooldown_counter = self.config.cooldown;
            self.num_bad_epochs = 0;
        }
    }

    /// The best metric seen so far.
    pub fn best(&self) -> f64 {
        self.best
    }

    /// Epochs since the last improvement (reset by a reduction and during cooldown).
    pub fn num_bad_epochs(&self) -> usize {
        self.num_bad_epochs
    }

    /// Epochs recorded so far.
    pub fn epoch(&self) -> usize {
        self.epoch
    }
}
