//! [`newton_cg`]: Newton's method for small problems, with Hessian-vector products from the
//! engine's recorded gradients and the Newton system solved by conjugate gradients.

use super::validate;
use crate::{Float, Param, Tape, Tensor, Var};

/// Configuration of [`newton_cg`].
///
/// ```
/// use tapegrad::optim::NewtonCgConfig;
/// let c = NewtonCgConfig::default();
/// assert_eq!((c.max_iter, c.gtol, c.cg_max_iter, c.cg_rtol, c.c1), (100, 1e-10, None, Some(1e-10), 1e-4));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewtonCgConfig {
    /// Most Newton iterations (default 100); at least 1.
    pub max_iter: usize,
    /// Converged when `max |g_i| <= gtol` (default `1e-10`, for `f64`; use about `1e-4` in
    /// `f32`); `>= 0`.
    pub gtol: f64,
    /// Most conjugate-gradient iterations per Newton step (default `None`: 20 × the number of
    /// unknowns, as SciPy).
    pub cg_max_iter: Option<usize>,
    /// Conjugate gradients stop when the residual `‖H·p + g‖ <= cg_rtol·‖g‖` (default
    /// `Some(1e-10)`: an exact Newton step, for small problems). `None` uses the forcing sequence
    /// `min(0.5, √‖g‖)` instead (Nocedal & Wright, algorithm 7.1): inexact steps far from the
    /// minimum, fewer Hessian-vector products per iteration but usually more iterations; `>= 0`.
    pub cg_rtol: Option<f64>,
    /// Sufficient-decrease constant of the backtracking line search (default `1e-4`); in
    /// `(0, 1)`.
    pub c1: f64,
}

impl Default for NewtonCgConfig {
    fn default() -> Self {
        NewtonCgConfig {
            max_iter: 100,
            gtol: 1e-10,
            cg_max_iter: None,
            cg_rtol: Some(1e-10),
            c1: 1e-4,
        }
    }
}

/// What [`newton_cg`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewtonCgReport {
    /// `true` if `max |g_i| <= gtol` was reached.
    pub converged: bool,
    /// Newton iterations taken (steps applied to the parameters).
    pub iterations: usize,
    /// The loss at the final parameters.
    pub loss: f64,
    /// `max |g_i|` at the final parameters.
    pub grad_max: f64,
    /// Hessian-vector products computed.
    pub hvp_evals: usize,
    /// Loss evaluations, including the line search's.
    pub func_evals: usize,
}

/// Minimises `f(params)` by Newton's method with conjugate gradients (a truncated Newton, or
/// "Newton-CG", method: Nocedal & Wright, *Numerical Optimization*, 2nd ed., algorithm 7.1),
/// updating the parameters in place.
///
/// `f` records the loss on the tape it is given from the vars it is given (one per parameter,
/// in order; use them rather than binding the parameters again). Each iteration computes the
/// gradient g with [`Var::grad`] (recorded, so it can be differentiated again), then solves the
/// Newton system with conjugate gradients, each product `H·v` being the gradient of `g·v`:
///
/// ```text
/// solve H·p = −g by CG from p = 0, stopping when ‖r‖ = ‖H·p + g‖ <= cg_rtol·‖g‖,
///     or at negative curvature (then the last p, or −g on the first CG iteration)
/// x ← x + t·p,  t the first of 1, ½, ¼, … with f(x + t·p) <= f(x) + c1·t·(g·p)
/// ```
///
/// It stops when `max |g_i| <= gtol`, after `max_iter` iterations, or when the line search finds
/// no decrease (then `converged` is `false`). Meant for small problems: every Hessian-vector
/// product records another backward pass on the iteration's tape.
///
/// # Panics
/// If a config value is invalid or `params` is empty; if `f`'s result has more than one element.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::optim::{newton_cg, NewtonCgConfig};
///
/// // Rosenbrock's function (1 − x)² + 100 (y − x²)² from (−1.2, 1).
/// let (x, y) = (Param::new(Tensor::<f64>::scalar(-1.2)), Param::new(Tensor::<f64>::scalar(1.0)));
/// let report = newton_cg(
///     &[x.clone(), y.clone()],
///     |_tape, v| (1.0 - v[0]).powi(2) + 100.0 * (v[1] - v[0].powi(2)).powi(2),
///     NewtonCgConfig::default(),
/// );
/// assert!(report.converged);
/// assert!((x.value().item() - 1.0).abs() < 1e-10 && (y.value().item() - 1.0).abs() < 1e-10);
/// ```
#[track_caller]
pub fn newton_cg<T: Float, F>(params: &[Param<T>], mut f: F, config: NewtonCgConfig) -> NewtonCgReport
where
    F: for<'t> FnMut(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T>,
{
    let name = "newton_cg";
    validate::check(
        name,
        "max_iter",
        config.max_iter,
        config.max_iter >= 1,
        "must be at least 1",
    );
    validate::non_negative(name, "gtol", config.gtol);
    if let Some(m) = config.cg_max_iter {
        validate::check(name, "cg_max_iter", m, m >= 1, "must be at least 1");
    }
    if let Some(rtol) = config.cg_rtol {
        validate::non_negative(name, "cg_rtol", rtol);
    }
    validate::check(
        name,
        "c1",
        config.c1,
        config.c1 > 0.0 && config.c1 < 1.0,
        "must be in (0, 1)",
    );
    assert!(
        !params.is_empty(),
        "tapegrad: newton_cg: got an empty parameter list"
    );

    let shapes: Vec<Vec<usize>> = params.iter().map(Param::shape).collect();
    let n: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
    let cg_max_iter = config.cg_max_iter.unwrap_or(20 * n.max(1));
    let mut report = NewtonCgReport {
        converged: false,
        iterations: 0,
        loss: f64::NAN,
        grad_max: f64::NAN,
        hvp_evals: 0,
        func_evals: 0,
    };
    let mut tape = Tape::<T>::new();
    loop {
        tape.reset();
        let xs: Vec<Var<T>> = params.iter().map(|p| tape.var(p.value())).collect();
        let loss = f(&tape, &xs);
        report.func_evals += 1;
        let gs = loss.grad(&xs);
        let g = flatten(gs.iter().map(|v| v.value()));
        report.loss = loss.item().to_f64();
        report.grad_max = g.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        if report.grad_max <= config.gtol {
            report.converged = true;
            return report;
        }
        if report.iterations == config.max_iter || !report.grad_max.is_finite() {
            return report;
        }

        // H·v as the gradient of g·v, recorded on this iteration's tape.
        let hvp = |v: &[f64]| -> Vec<f64> {
            let mut offset = 0;
            let mut gv: Option<Var<T>> = None;
            for (gj, shape) in gs.iter().zip(&shapes) {
                let len: usize = shape.iter().product();
                let vj = Tensor::from_vec(
                    v[offset..offset + len].iter().map(|&x| T::from_f64(x)).collect(),
                    shape,
                );
                offset += len;
                let term = (*gj * tape.constant(vj)).sum();
                gv = Some(match gv {
                    Some(acc) => acc + term,
                    None => term,
                });
            }
            let gv = gv.expect("at least one parameter");
            flatten(gv.grad(&xs).iter().map(|v| v.value()))
        };

        // Conjugate gradients on H·p = −g, from p = 0.
        let g_norm = norm(&g);
        let tolerance = match config.cg_rtol {
            Some(rtol) => rtol * g_norm,
            None => g_norm.sqrt().min(0.5) * g_norm,
        };
        let mut p = vec![0.0; n];
        let mut r: Vec<f64> = g.iter().map(|&x| -x).collect();
        let mut d = r.clone();
        let mut rs = dot(&r, &r);
        for i in 0..cg_max_iter {
            let hd = hvp(&d);
            report.hvp_evals += 1;
            let curvature = dot(&d, &hd);
            if curvature <= 0.0 || curvature.is_nan() {
                if i == 0 {
                    p = g.iter().map(|&x| -x).collect();
                }
                break;
            }
            let alpha = rs / curvature;
            for ((p, r), (&d, &hd)) in p.iter_mut().zip(r.iter_mut()).zip(d.iter().zip(&hd)) {
                *p += alpha * d;
                *r -= alpha * hd;
            }
            let rs_new = dot(&r, &r);
            if rs_new.sqrt() <= tolerance {
                break;
            }
            let beta = rs_new / rs;
            for (d, &r) in d.iter_mut().zip(&r) {
                *d = r + beta * *d;
            }
            rs = rs_new;
        }
        let mut slope = dot(&g, &p);
        if slope >= 0.0 || slope.is_nan() {
            p = g.iter().map(|&x| -x).collect();
            slope = -dot(&g, &g);
        }

        // Backtracking (Armijo) line search along p, evaluating without recording.
        let x0: Vec<f64> = flatten(params.iter().map(Param::value));
        let mut t = 1.0;
        let mut accepted = None;
        let mut eval_tape = Tape::<T>::new();
        for _ in 0..60 {
            let trial: Vec<f64> = x0.iter().zip(&p).map(|(&x, &p)| x + t * p).collect();
            eval_tape.reset();
            let f_trial = {
                let vars = unflatten(&trial, &shapes, |v| eval_tape.constant(v));
                eval_tape.no_grad(|| f(&eval_tape, &vars)).item().to_f64()
            };
            report.func_evals += 1;
            if f_trial <= report.loss + config.c1 * t * slope {
                accepted = Some(trial);
                break;
            }
            t *= 0.5;
        }
        let Some(x_new) = accepted else {
            return report; // no decrease along a descent direction: at the limits of precision
        };
        let mut offset = 0;
        for (param, shape) in params.iter().zip(&shapes) {
            let len: usize = shape.iter().product();
            param.set_value(Tensor::from_vec(
                x_new[offset..offset + len]
                    .iter()
                    .map(|&x| T::from_f64(x))
                    .collect(),
                shape,
            ));
            offset += len;
        }
        report.iterations += 1;
    }
}

fn flatten<T: Float>(tensors: impl Iterator<Item = Tensor<T>>) -> Vec<f64> {
    tensors.flat_map(|t| t.to_vec()).map(|x| x.to_f64()).collect()
}

fn unflatten<'t, T: Float>(
    x: &[f64],
    shapes: &[Vec<usize>],
    mut leaf: impl FnMut(Tensor<T>) -> Var<'t, T>,
) -> Vec<Var<'t, T>> {
    let mut offset = 0;
    shapes
        .iter()
        .map(|shape| {
            let len: usize = shape.iter().product();
            let t = Tensor::from_vec(
                x[offset..offset + len].iter().map(|&v| T::from_f64(v)).collect(),
                shape,
            );
            offset += len;
            leaf(t)
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}
