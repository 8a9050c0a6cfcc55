//! [`Lbfgs`]: limited-memory BFGS, a port of PyTorch's `torch.optim.LBFGS` (two-loop recursion,
//! optional strong-Wolfe line search with cubic interpolation).

use std::collections::VecDeque;

use super::state::{self, OptimizerState};
use super::{Optimizer, ParamGroup, ParamGroups, check_grad_shape, validate};
use crate::{Error, Float, Gradients, Param, Tape, Var};

/// The line search of [`Lbfgs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineSearch {
    /// Find a step satisfying the strong Wolfe conditions (sufficient decrease `c1 = 1e-4`,
    /// curvature `c2 = 0.9`), by bracketing and cubic interpolation, at most 25 evaluations
    /// (Nocedal & Wright, *Numerical Optimization*, 2nd ed., algorithms 3.5 and 3.6).
    StrongWolfe,
}

/// Configuration of [`Lbfgs`]: PyTorch's `torch.optim.LBFGS` options and defaults.
///
/// ```
/// use tapegrad::optim::{LbfgsConfig, LineSearch};
/// let c = LbfgsConfig { line_search_fn: Some(LineSearch::StrongWolfe), ..Default::default() };
/// assert_eq!((c.lr, c.max_iter, c.max_eval, c.history_size), (1.0, 20, None, 100));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LbfgsConfig {
    /// Step length η (default 1); `>= 0`. The first iteration of a run uses
    /// `min(1, 1/‖g‖₁)·η`; with a line search this is the first trial step.
    pub lr: f64,
    /// Most iterations per [`Lbfgs::step_with`] (default 20); at least 1.
    pub max_iter: usize,
    /// Most loss evaluations per [`Lbfgs::step_with`] (default `None`: `max_iter · 5 / 4`).
    pub max_eval: Option<usize>,
    /// Stop when `max |g_i| <= tolerance_grad` (default `1e-7`); `>= 0`.
    pub tolerance_grad: f64,
    /// Stop when the step `max |t·d_i|`, the change of the loss, or the slope `−g·d` along the
    /// direction falls below this (default `1e-9`); `>= 0`. In `f64`, lower it (and
    /// `tolerance_grad`) to converge beyond about `1e-5` of a minimum.
    pub tolerance_change: f64,
    /// Number of correction pairs kept (default 100); at least 1.
    pub history_size: usize,
    /// Line search (default `None`: fixed steps of η).
    pub line_search_fn: Option<LineSearch>,
}

impl Default for LbfgsConfig {
    fn default() -> Self {
        LbfgsConfig {
            lr: 1.0,
            max_iter: 20,
            max_eval: None,
            tolerance_grad: 1e-7,
            tolerance_change: 1e-9,
            history_size: 100,
            line_search_fn: None,
        }
    }
}

impl LbfgsConfig {
    #[track_caller]
    fn validate(&self) {
        let name = "Lbfgs";
        validate::non_negative(name, "lr", self.lr);
        validate::check(
            name,
            "max_iter",
            self.max_iter,
            self.max_iter >= 1,
            "must be at least 1",
        );
        if let Some(max_eval) = self.max_eval {
            validate::check(name, "max_eval", max_eval, max_eval >= 1, "must be at least 1");
        }
        validate::non_negative(name, "tolerance_grad", self.tolerance_grad);
        validate::non_negative(name, "tolerance_change", self.tolerance_change);
        validate::check(
            name,
            "history_size",
            self.history_size,
            self.history_size >= 1,
            "must be at least 1",
        );
    }

    fn max_eval(&self) -> usize {
        self.max_eval.unwrap_or(self.max_iter * 5 / 4)
    }
}

/// Limited-memory BFGS (Liu & Nocedal, "On the limited memory BFGS method for large scale
/// optimization", Mathematical Programming 45, 1989), a port of PyTorch's `torch.optim.LBFGS`.
///
/// All parameters form one vector x (a single parameter group) with gradient g. Each iteration
/// k keeps the last m pairs `s_i = x_{i+1} − x_i`, `y_i = g_{i+1} − g_i` (a pair is kept only if
/// `y·s > 1e-10`) and finds the direction `d = −H·g` by the two-loop recursion:
///
/// ```text
/// q ← −g
/// for i = k−1 … k−m:   ρ_i = 1/(y_i·s_i),  α_i = ρ_i·(s_i·q),  q ← q − α_i·y_i
/// r ← γ·q,  γ = (y_{k−1}·s_{k−1}) / (y_{k−1}·y_{k−1})        (γ = 1 on the first iteration)
/// for i = k−m … k−1:   β = ρ_i·(y_i·r),  r ← r + (α_i − β)·s_i
/// d = r,  x ← x + t·d
/// ```
///
/// with `t` from the strong-Wolfe line search, or fixed: `t = η` (`min(1, 1/‖g‖₁)·η` on the
/// very first iteration).
///
/// [`step_with`](Lbfgs::step_with) runs up to `max_iter` iterations, re-evaluating the loss with
/// a closure that records it on a fresh tape, as PyTorch's `step(closure)`. [`Optimizer::step`]
/// takes one iteration from given gradients, with the fixed step (like PyTorch with
/// `max_iter = 1` and no line search), so L-BFGS also fits a loop written for any optimizer.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::optim::{Lbfgs, LbfgsConfig, LineSearch};
///
/// // Rosenbrock's function (1 − x)² + 100 (y − x²)², from (−1.2, 1).
/// let (x, y) = (Param::new(Tensor::<f64>::scalar(-1.2)), Param::new(Tensor::<f64>::scalar(1.0)));
/// let config = LbfgsConfig {
///     line_search_fn: Some(LineSearch::StrongWolfe),
///     tolerance_grad: 1e-10,  // PyTorch's defaults (1e-7, 1e-9) stop about 1e-5 short here
///     tolerance_change: 0.0,  // do not stop on small changes of the loss (which is near 0)
///     ..Default::default()
/// };
/// let mut opt = Lbfgs::new(vec![x.clone(), y.clone()], config);
/// for _ in 0..3 {
///     opt.step_with(|tape| {
///         let (x, y) = (tape.param(&x), tape.param(&y));
///         (1.0 - x).powi(2) + 100.0 * (y - x.powi(2)).powi(2)
///     });
/// }
/// assert!((x.value().item() - 1.0).abs() < 1e-9 && (y.value().item() - 1.0).abs() < 1e-9);
/// ```
pub struct Lbfgs<T: Float = f32> {
    config: LbfgsConfig,
    groups: ParamGroups<T>,
    state: LbfgsState<T>,
    /// Reset before each evaluation of the closure.
    tape: Tape<T>,
}

/// What L-BFGS carries from one iteration to the next (PyTorch's names).
#[derive(Clone, Debug, Default)]
struct LbfgsState<T> {
    func_evals: u64,
    n_iter: u64,
    d: Option<Vec<T>>,
    t: f64,
    old_dirs: VecDeque<Vec<T>>,
    old_stps: VecDeque<Vec<T>>,
    ro: VecDeque<f64>,
    h_diag: f64,
    prev_flat_grad: Option<Vec<T>>,
    prev_loss: Option<f64>,
}

impl<T: Float> Lbfgs<T> {
    /// L-BFGS over `params` (one vector: L-BFGS takes a single parameter group).
    ///
    /// # Panics
    /// If a config value is invalid: the message names the field and the value. Also if
    /// `params` is empty or holds a parameter twice.
    #[track_caller]
    pub fn new(params: Vec<Param<T>>, config: LbfgsConfig) -> Self {
        config.validate();
        Lbfgs {
            config,
            groups: ParamGroups::new("Lbfgs", config.lr, None, true, vec![ParamGroup::new(params)]),
            state: LbfgsState::default(),
            tape: Tape::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LbfgsConfig {
        &self.config
    }

    /// Loss evaluations so far, over every call.
    pub fn func_evals(&self) -> u64 {
        self.state.func_evals
    }

    /// Iterations so far, over every call.
    pub fn n_iter(&self) -> u64 {
        self.state.n_iter
    }

    /// Runs up to `max_iter` L-BFGS iterations and returns the loss at the start (as PyTorch).
    ///
    /// `closure` records the loss on the tape it is given (binding the parameters with
    /// [`Tape::param`]) and returns it; it is called once at the start and once per evaluation of
    /// the line search (or per iteration without one). It stops early when the gradient, the step
    /// or the change of the loss falls below the tolerances, or after `max_eval` evaluations.
    ///
    /// # Panics
    /// If the closure's result has more than one element.
    #[track_caller]
    pub fn step_with<F>(&mut self, mut closure: F) -> f64
    where
        F: for<'t> FnMut(&'t Tape<T>) -> Var<'t, T>,
    {
        let c = self.config;
        let (mut loss, mut flat_grad) = evaluate(&mut self.tape, &self.groups, &mut closure);
        let orig_loss = loss;
        let mut current_evals = 1;
        self.state.func_evals += 1;
        if max_abs(&flat_grad) <= c.tolerance_grad {
            return orig_loss;
        }
        let lr = self.groups.lr(0);
        let mut opt_cond = false;
        let mut n_iter = 0;
        while n_iter < c.max_iter {
            n_iter += 1;
            self.update_direction(&flat_grad);
            self.state.prev_loss = Some(loss);
            let t = self.initial_step(lr, &flat_grad);
            self.state.t = t;
            let d = self.state.d.clone().expect("L-BFGS: direction set above");
            let gtd = dot(&flat_grad, &d);
            if gtd > -c.tolerance_change {
                break;
            }
            let ls_func_evals;
            let t = match c.line_search_fn {
                Some(LineSearch::StrongWolfe) => {
                    let x_init: Vec<_> = self.groups.params(0).iter().map(Param::value).collect();
                    let (tape, groups) = (&mut self.tape, &self.groups);
                    let obj = |t: f64| {
                        add_scaled(groups, t, &d);
                        let out = evaluate(tape, groups, &mut closure);
                        for (p, x) in groups.params(0).iter().zip(&x_init) {
                            p.set_value(x.clone());
                        }
                        out
                    };
                    let ls = strong_wolfe(obj, t, &d, loss, &flat_grad, gtd, c.tolerance_change);
                    (loss, flat_grad, ls_func_evals) = (ls.f, ls.g, ls.evals);
                    add_scaled(&self.groups, ls.t, &d);
                    opt_cond = max_abs(&flat_grad) <= c.tolerance_grad;
                    ls.t
                }
                None => {
                    add_scaled(&self.groups, t, &d);
                    if n_iter != c.max_iter {
                        (loss, flat_grad) = evaluate(&mut self.tape, &self.groups, &mut closure);
                        opt_cond = max_abs(&flat_grad) <= c.tolerance_grad;
                        ls_func_evals = 1;
                    } else {
                        ls_func_evals = 0;
                    }
                    t
                }
            };
            self.state.t = t;
            current_evals += ls_func_evals;
            self.state.func_evals += ls_func_evals as u64;
            if n_iter == c.max_iter || current_evals >= c.max_eval() || opt_cond {
                break;
            }
            if max_abs(&d) * t.abs() <= c.tolerance_change {
                break;
            }
            if (loss - self.state.prev_loss.unwrap_or(loss)).abs() < c.tolerance_change {
                break;
            }
        }
        orig_loss
    }

    /// The step length before any line search: `min(1, 1/‖g‖₁)·η` on the very first iteration.
    fn initial_step(&self, lr: f64, flat_grad: &[T]) -> f64 {
        if self.state.n_iter == 1 {
            let l1: f64 = flat_grad.iter().map(|x| x.to_f64().abs()).sum();
            (1.0f64).min(1.0 / l1) * lr
        } else {
            lr
        }
    }

    /// Counts an iteration, adds the newest correction pair to the history and computes the
    /// direction `d = −H·g` by the two-loop recursion.
    fn update_direction(&mut self, flat_grad: &[T]) {
        let history_size = self.config.history_size;
        let s = &mut self.state;
        s.n_iter += 1;
        if s.n_iter == 1 {
            s.d = Some(flat_grad.iter().map(|&g| -g).collect());
            s.old_dirs.clear();
            s.old_stps.clear();
            s.ro.clear();
            s.h_diag = 1.0;
        } else {
            let prev = s
                .prev_flat_grad
                .as_deref()
                .expect("L-BFGS: a previous gradient after iteration 1");
            let d =
                s.d.as_deref()
                    .expect("L-BFGS: a previous direction after iteration 1");
            let t = T::from_f64(s.t);
            let y: Vec<T> = flat_grad.iter().zip(prev).map(|(&g, &p)| g - p).collect();
            let step: Vec<T> = d.iter().map(|&d| d * t).collect();
            let ys = dot(&y, &step);
            if ys > 1e-10 {
                if s.old_dirs.len() == history_size {
                    s.old_dirs.pop_front();
                    s.old_stps.pop_front();
                    s.ro.pop_front();
                }
                s.h_diag = ys / dot(&y, &y);
                s.old_dirs.push_back(y);
                s.old_stps.push_back(step);
                s.ro.push_back(1.0 / ys);
            }
            let k = s.old_dirs.len();
            let mut al = vec![0.0; k];
            let mut q: Vec<T> = flat_grad.iter().map(|&g| -g).collect();
            for i in (0..k).rev() {
                al[i] = dot(&s.old_stps[i], &q) * s.ro[i];
                axpy(&mut q, -al[i], &s.old_dirs[i]);
            }
            let h = T::from_f64(s.h_diag);
            let mut r: Vec<T> = q.iter().map(|&x| x * h).collect();
            for (i, al_i) in al.iter().enumerate() {
                let be_i = dot(&s.old_dirs[i], &r) * s.ro[i];
                axpy(&mut r, al_i - be_i, &s.old_stps[i]);
            }
            s.d = Some(r);
        }
        match &mut s.prev_flat_grad {
            Some(p) => p.copy_from_slice(flat_grad),
            None => s.prev_flat_grad = Some(flat_grad.to_vec()),
        }
    }
}

impl<T: Float> Optimizer<T> for Lbfgs<T> {
    /// One L-BFGS iteration from the given gradients with the fixed step `t = η` (`min(1,
    /// 1/‖g‖₁)·η` on the very first), as PyTorch's `LBFGS` with `max_iter = 1` and no line search.
    /// Missing gradients count as zero. Nothing moves if `max |g_i| <= tolerance_grad` or the
    /// direction is not a descent direction.
    #[track_caller]
    fn step(&mut self, grads: &Gradients<T>) {
        let flat_grad = gather_flat_grad(&self.groups, grads);
        self.state.func_evals += 1;
        if max_abs(&flat_grad) <= self.config.tolerance_grad {
            return;
        }
        self.update_direction(&flat_grad);
        let t = self.initial_step(self.groups.lr(0), &flat_grad);
        self.state.t = t;
        let d = self.state.d.as_deref().expect("L-BFGS: direction set above");
        if dot(&flat_grad, d) > -self.config.tolerance_change {
            return;
        }
        add_scaled(&self.groups, t, d);
    }

    fn param_groups(&self) -> &ParamGroups<T> {
        &self.groups
    }

    fn param_groups_mut(&mut self) -> &mut ParamGroups<T> {
        &mut self.groups
    }

    #[track_caller]
    fn add_param_group(&mut self, group: ParamGroup<T>) {
        self.groups.push(group); // panics: L-BFGS takes a single group
    }

    fn state(&self) -> OptimizerState {
        let s = &self.state;
        let flat = |v: &Option<Vec<T>>| v.iter().flatten().map(|x| x.to_f64()).collect();
        let concat = |v: &VecDeque<Vec<T>>| v.iter().flatten().map(|x| x.to_f64()).collect();
        let extra = vec![
            ("func_evals".to_string(), vec![s.func_evals as f64]),
            ("n_iter".to_string(), vec![s.n_iter as f64]),
            ("t".to_string(), vec![s.t]),
            ("h_diag".to_string(), vec![s.h_diag]),
            ("prev_loss".to_string(), s.prev_loss.into_iter().collect()),
            ("d".to_string(), flat(&s.d)),
            ("prev_flat_grad".to_string(), flat(&s.prev_flat_grad)),
            ("old_dirs".to_string(), concat(&s.old_dirs)),
            ("old_stps".to_string(), concat(&s.old_stps)),
            ("ro".to_string(), s.ro.iter().copied().collect()),
        ];
        OptimizerState {
            optimizer: "Lbfgs".to_string(),
            groups: self.groups.export(),
            params: vec![None; self.groups.params(0).len()],
            extra,
        }
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<(), Error> {
        self.groups.check_import(state)?;
        let bad = |detail: String| state::invalid("Lbfgs", &detail);
        if state.params.iter().any(Option::is_some) {
            return Err(bad("L-BFGS keeps no per-parameter state".into()));
        }
        let n: usize = self.groups.params(0).iter().map(|p| p.value().numel()).sum();
        let get = |name: &str| {
            state
                .extra
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_slice())
                .ok_or_else(|| bad(format!("missing buffer {name:?}")))
        };
        if state.extra.len() != 10 {
            return Err(bad(format!("expected 10 buffers, found {}", state.extra.len())));
        }
        let scalar = |name: &str| -> Result<f64, Error> {
            match get(name)? {
                [x] => Ok(*x),
                other => Err(bad(format!("{name:?} has {} values, expected 1", other.len()))),
            }
        };
        let count = |name: &str| -> Result<u64, Error> {
            let x = scalar(name)?;
            if x >= 0.0 && x.fract() == 0.0 && x < 2f64.powi(53) {
                Ok(x as u64)
            } else {
                Err(bad(format!("{name:?} = {x} is not a count")))
            }
        };
        let to_t = |v: &[f64]| -> Vec<T> { v.iter().map(|&x| T::from_f64(x)).collect() };
        let vector = |name: &str| -> Result<Option<Vec<T>>, Error> {
            match get(name)? {
                [] => Ok(None),
                v if v.len() == n => Ok(Some(to_t(v))),
                v => Err(bad(format!(
                    "{name:?} has {} values, the parameters {n}",
                    v.len()
                ))),
            }
        };
        let ro: VecDeque<f64> = get("ro")?.iter().copied().collect();
        let k = ro.len();
        if k > self.config.history_size {
            return Err(bad(format!(
                "the history holds {k} pairs, more than history_size {}",
                self.config.history_size
            )));
        }
        let history = |name: &str| -> Result<VecDeque<Vec<T>>, Error> {
            let v = get(name)?;
            if v.len() != k * n {
                return Err(bad(format!(
                    "{name:?} has {} values, expected {k} × {n}",
                    v.len()
                )));
            }
            Ok(if n == 0 {
                (0..k).map(|_| Vec::new()).collect()
            } else {
                v.chunks(n).map(to_t).collect()
            })
        };
        let prev_loss = match get("prev_loss")? {
            [] => None,
            [x] => Some(*x),
            other => return Err(bad(format!("\"prev_loss\" has {} values", other.len()))),
        };
        let new_state = LbfgsState {
            func_evals: count("func_evals")?,
            n_iter: count("n_iter")?,
            d: vector("d")?,
            t: scalar("t")?,
            old_dirs: history("old_dirs")?,
            old_stps: history("old_stps")?,
            ro,
            h_diag: scalar("h_diag")?,
            prev_flat_grad: vector("prev_flat_grad")?,
            prev_loss,
        };
        if new_state.n_iter > 0 && (new_state.d.is_none() || new_state.prev_flat_grad.is_none()) {
            return Err(bad("a started run needs \"d\" and \"prev_flat_grad\"".into()));
        }
        self.groups.import_hyper(state);
        self.state = new_state;
        Ok(())
    }
}

/// Evaluates the closure on the (reset) tape: the loss and the flat gradient. The tape is reset
/// again afterwards so that it no longer shares the parameters' buffers.
#[track_caller]
fn evaluate<T: Float, F>(tape: &mut Tape<T>, groups: &ParamGroups<T>, closure: &mut F) -> (f64, Vec<T>)
where
    F: for<'t> FnMut(&'t Tape<T>) -> Var<'t, T>,
{
    tape.reset();
    let (loss, flat_grad) = {
        let loss = closure(tape);
        let grads = loss.backward();
        (loss.item().to_f64(), gather_flat_grad(groups, &grads))
    };
    tape.reset();
    (loss, flat_grad)
}

/// The parameters' gradients as one vector (zeros for a parameter without one).
#[track_caller]
fn gather_flat_grad<T: Float>(groups: &ParamGroups<T>, grads: &Gradients<T>) -> Vec<T> {
    let mut out = Vec::new();
    for (i, p) in groups.params(0).iter().enumerate() {
        match grads.param(p) {
            Some(g) => {
                check_grad_shape("Lbfgs", (0, i), p, g.shape());
                out.extend_from_slice(g.as_slice());
            }
            None => out.resize(out.len() + p.value().numel(), T::ZERO),
        }
    }
    out
}

/// `x ← x + t·d` over the parameters (PyTorch's `_add_grad`).
fn add_scaled<T: Float>(groups: &ParamGroups<T>, t: f64, d: &[T]) {
    let t = T::from_f64(t);
    let mut offset = 0;
    for p in groups.params(0) {
        p.update(|v| {
            let v = v.as_mut_slice();
            let len = v.len();
            for (x, &d) in v.iter_mut().zip(&d[offset..offset + len]) {
                *x += t * d;
            }
            offset += len;
        });
    }
}

/// Dot product accumulated in `f64`.
fn dot<T: Float>(a: &[T], b: &[T]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x.to_f64() * y.to_f64()).sum()
}

/// `y ← y + a·x`.
fn axpy<T: Float>(y: &mut [T], a: f64, x: &[T]) {
    let a = T::from_f64(a);
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

fn max_abs<T: Float>(v: &[T]) -> f64 {
    v.iter().fold(0.0f64, |m, x| m.max(x.to_f64().abs()))
}

/// The minimiser of the cubic through `(x1, f1)` and `(x2, f2)` with slopes `g1`, `g2`, clamped
/// to `bounds` (default: the interval between the points); the midpoint if the cubic has none.
fn cubic_interpolate(
    x1: f64,
    f1: f64,
    g1: f64,
    x2: f64,
    f2: f64,
    g2: f64,
    bounds: Option<(f64, f64)>,
) -> f64 {
    let (lo, hi) = bounds.unwrap_or(if x1 <= x2 { (x1, x2) } else { (x2, x1) });
    let d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2);
    let d2_square = d1 * d1 - g1 * g2;
    if d2_square >= 0.0 {
        let d2 = d2_square.sqrt();
        let min_pos = if x1 <= x2 {
            x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
        } else {
            x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2))
        };
        min_pos.max(lo).min(hi)
    } else {
        (lo + hi) / 2.0
    }
}

/// The result of a line search: step, loss and gradient there, evaluations used.
struct LineSearchResult<T> {
    t: f64,
    f: f64,
    g: Vec<T>,
    evals: usize,
}

/// A point of the line search: step, loss, gradient and directional derivative.
#[derive(Clone)]
struct Point<T> {
    t: f64,
    f: f64,
    g: Vec<T>,
    gtd: f64,
}

/// PyTorch's `_strong_wolfe` (c1 = 1e-4, c2 = 0.9, at most 25 evaluations): bracketing, then
/// zooming with cubic interpolation. `obj(t)` evaluates the loss and gradient at `x + t·d`.
fn strong_wolfe<T: Float>(
    mut obj: impl FnMut(f64) -> (f64, Vec<T>),
    mut t: f64,
    d: &[T],
    f: f64,
    g: &[T],
    gtd: f64,
    tolerance_change: f64,
) -> LineSearchResult<T> {
    const C1: f64 = 1e-4;
    const C2: f64 = 0.9;
    const MAX_LS: usize = 25;
    let d_norm = max_abs(d);
    let (mut f_new, mut g_new) = obj(t);
    let mut evals = 1;
    let mut gtd_new = dot(&g_new, d);
    let mut prev = Point {
        t: 0.0,
        f,
        g: g.to_vec(),
        gtd,
    };
    let mut done = false;
    let mut ls_iter = 0;
    // Bracketing phase: [lo, hi] with the points' values; one point when done.
    let mut bracket: Vec<Point<T>> = Vec::new();
    while ls_iter < MAX_LS {
        if f_new > f + C1 * t * gtd || (ls_iter > 1 && f_new >= prev.f) {
            bracket = vec![
                prev.clone(),
                Point {
                    t,
                    f: f_new,
                    g: g_new.clone(),
                    gtd: gtd_new,
                },
            ];
            break;
        }
        if gtd_new.abs() <= -C2 * gtd {
            bracket = vec![Point {
                t,
                f: f_new,
                g: g_new.clone(),
                gtd: gtd_new,
            }];
            done = true;
            break;
        }
        if gtd_new >= 0.0 {
            bracket = vec![
                prev.clone(),
                Point {
                    t,
                    f: f_new,
                    g: g_new.clone(),
                    gtd: gtd_new,
                },
            ];
            break;
        }
        // Extrapolate.
        let min_step = t + 0.01 * (t - prev.t);
        let max_step = t * 10.0;
        let tmp = t;
        t = cubic_interpolate(
            prev.t,
            prev.f,
            prev.gtd,
            t,
            f_new,
            gtd_new,
            Some((min_step, max_step)),
        );
        prev = Point {
            t: tmp,
            f: f_new,
            g: g_new.clone(),
            gtd: gtd_new,
        };
        (f_new, g_new) = obj(t);
        evals += 1;
        gtd_new = dot(&g_new, d);
        ls_iter += 1;
    }
    if ls_iter == MAX_LS {
        // PyTorch leaves the slopes of this bracket unset; the zoom below does not run then.
        bracket = vec![
            Point {
                t: 0.0,
                f,
                g: g.to_vec(),
                gtd,
            },
            Point {
                t,
                f: f_new,
                g: g_new.clone(),
                gtd: gtd_new,
            },
        ];
    }

    // Zoom phase: shrink the bracket until a point satisfies the strong Wolfe conditions.
    let mut insuf_progress = false;
    let order = |b: &[Point<T>]| {
        if b[0].f <= b[b.len() - 1].f {
            (0, 1)
        } else {
            (1, 0)
        }
    };
    let (mut low, mut high) = order(&bracket);
    while !done && ls_iter < MAX_LS {
        if (bracket[1].t - bracket[0].t).abs() * d_norm < tolerance_change {
            break;
        }
        t = cubic_interpolate(
            bracket[0].t,
            bracket[0].f,
            bracket[0].gtd,
            bracket[1].t,
            bracket[1].f,
            bracket[1].gtd,
            None,
        );
        // Keep away from the ends of the bracket unless progress stalls.
        let (b_max, b_min) = (bracket[0].t.max(bracket[1].t), bracket[0].t.min(bracket[1].t));
        let eps = 0.1 * (b_max - b_min);
        if (b_max - t).min(t - b_min) < eps {
            if insuf_progress || t >= b_max || t <= b_min {
                t = if (t - b_max).abs() < (t - b_min).abs() {
                    b_max - eps
                } else {
                    b_min + eps
                };
                insuf_progress = false;
            } else {
                insuf_progress = true;
            }
        } else {
            insuf_progress = false;
        }
        (f_new, g_new) = obj(t);
        evals += 1;
        gtd_new = dot(&g_new, d);
        ls_iter += 1;
        let point = Point {
            t,
            f: f_new,
            g: g_new.clone(),
            gtd: gtd_new,
        };
        if f_new > f + C1 * t * gtd || f_new >= bracket[low].f {
            bracket[high] = point;
            (low, high) = order(&bracket);
        } else {
            if gtd_new.abs() <= -C2 * gtd {
                done = true;
            } else if gtd_new * (bracket[high].t - bracket[low].t) >= 0.0 {
                bracket[high] = bracket[low].clone();
            }
            bracket[low] = point;
        }
    }
    let best = bracket.swap_remove(low);
    LineSearchResult {
        t: best.t,
        f: best.f,
        g: best.g,
        evals,
    }
}
