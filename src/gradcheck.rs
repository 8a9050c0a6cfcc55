//! Gradient checking: compare tapegrad's gradients with central finite differences in `f64`.
//!
//! [`check`] evaluates the function once with backward, then perturbs every element of every
//! input by ±`eps` and compares `(f(x + eps) - f(x - eps)) / 2eps` with the analytic gradient.
//! A non-scalar output is reduced with fixed pseudo-random weights, so that an error in any output
//! element shows. [`check_second_order`] does the same for the gradient itself (a
//! Hessian-vector product against finite differences of the gradient). [`check_params`] and
//! [`check_module`] perturb [`Param`]s in place, for layers and whole networks.
//! [`check_directions`] checks along a few random directions instead of every element (one
//! reverse pass and two evaluations per direction, as JAX's `check_grads`), for large inputs.
//! [`check_custom_op`] and [`check_first_order_op`] check a custom op's rule ([`crate::autograd`]).
//!
//! # Property-testing your own functions
//!
//! With the `proptest` feature, [`crate::testing`] supplies strategies for shapes, broadcastable
//! shape pairs and tensors; feed them to `check`:
//!
//! ```
//! # #[cfg(feature = "proptest")] {
//! use proptest::prelude::*;
//! use tapegrad::{gradcheck, testing, Tape, Var};
//!
//! fn softplus<'t>(x: Var<'t, f64>) -> Var<'t, f64> {
//!     (x.exp() + 1.0).ln()
//! }
//!
//! proptest!(|(x in testing::any_tensor(3, 4, -3.0..3.0))| {
//!     let result = gradcheck::check(|_tape: &Tape<f64>, xs: &[Var<f64>]| softplus(xs[0]).sum(), &[x]);
//!     prop_assert!(result.is_ok(), "{}", result.unwrap_err());
//! });
//! # }
//! ```

use std::fmt;

mod directions;
pub use directions::{DirectionCheck, DirectionError, check_directions};

use crate::autograd::{CustomOp, FirstOrderOp};
use crate::nn::Forward;
use crate::{Param, Tape, Tensor, Var};

/// Step and tolerances for [`check_with`]: an element passes when
/// `|analytic - numeric| <= atol + rtol * |numeric|`.
///
/// ```
/// use tapegrad::gradcheck::Tolerance;
/// let t = Tolerance::default();
/// assert_eq!((t.eps, t.atol, t.rtol), (1e-6, 1e-5, 1e-3));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// The finite-difference step.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
}

impl Tolerance {
    /// `|analytic - expected| <= atol + rtol * |expected|`, written so that NaN on either side fails.
    fn accepts(&self, analytic: f64, expected: f64) -> bool {
        (analytic - expected).abs() <= self.atol + self.rtol * expected.abs()
    }
}

/// The output reduced to one number with the fixed weights, after checking that its shape is the
/// one of the first evaluation.
fn weighted_sum(y: &Tensor<f64>, out_shape: &[usize], weights: &Tensor<f64>) -> f64 {
    assert_eq!(
        y.shape(),
        out_shape,
        "gradcheck: the function's output shape changed between evaluations"
    );
    y.as_slice()
        .iter()
        .zip(weights.as_slice())
        .map(|(a, b)| a * b)
        .sum()
}

impl Default for Tolerance {
    /// `eps = 1e-6, atol = 1e-5, rtol = 1e-3`, as PyTorch's `gradcheck` and tinygrad.
    fn default() -> Self {
        Tolerance {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
        }
    }
}

/// A gradient that disagrees with finite differences: which input, which element, both values.
///
/// ```
/// use tapegrad::{gradcheck, Tape, Tensor, Var};
/// // A deliberately wrong "derivative": x.detach() blocks half of d(x²)/dx.
/// let err = gradcheck::check(
///     |_t: &Tape<f64>, xs: &[Var<f64>]| (xs[0] * xs[0].detach()).sum(),
///     &[Tensor::from_vec(vec![1.0, 2.0], &[2])],
/// )
/// .unwrap_err();
/// assert_eq!((err.input, err.index.clone()), (0, vec![0]));
/// assert!((err.analytic - 1.0).abs() < 1e-9 && (err.numeric - 2.0).abs() < 1e-6);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive] // read its fields; a new one (as `parameter` was) must not break callers
pub struct GradcheckError {
    /// The position of the input in the `inputs` slice.
    pub input: usize,
    /// The multi-index of the element within that input.
    pub index: Vec<usize>,
    /// The gradient tapegrad computed.
    pub analytic: f64,
    /// The central finite difference.
    pub numeric: f64,
    /// 1 for a gradient, 2 for a gradient of a gradient ([`check_second_order`]).
    pub order: u8,
    /// The parameter's name when a [`Param`] failed ([`check_params`], [`check_module`]); then
    /// `input` is its position in the list of parameters.
    pub parameter: Option<String>,
}

impl fmt::Display for GradcheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.order == 2 {
            "second-order gradient"
        } else {
            "gradient"
        };
        let of = match &self.parameter {
            Some(name) => format!("parameter `{name}`"),
            None => format!("input {}", self.input),
        };
        write!(
            f,
            "gradcheck: {what} of {of} at index {:?}: analytic {:e} but finite differences give {:e} \
             (difference {:e})",
            self.index,
            self.analytic,
            self.numeric,
            (self.analytic - self.numeric).abs()
        )?;
        if !self.numeric.is_finite() || !self.analytic.is_finite() {
            write!(
                f,
                "; a non-finite value means the function is undefined or overflows near this point"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for GradcheckError {}

/// `f` itself, typed as the checkers need it (for a tape of any lifetime), so that it can be
/// stored in a `let` and used several times; see [`check`] for why a plain stored closure is not.
///
/// ```
/// use tapegrad::{gradcheck, Tensor};
/// let f = gradcheck::function(|_tape, xs| xs[0].tanh().sum());
/// let x = Tensor::from_vec(vec![0.5, -1.0], &[2]);
/// gradcheck::check(&f, std::slice::from_ref(&x)).unwrap();
/// gradcheck::check_second_order(&f, &[x]).unwrap();
/// ```
pub fn function<F>(f: F) -> F
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
{
    f
}

/// Checks the gradients of `f` at `inputs` against central finite differences with the default
/// [`Tolerance`]. See [`check_with`].
///
/// ```
/// use tapegrad::{gradcheck, Tape, Tensor, Var};
/// let x = Tensor::from_vec(vec![0.3, -1.2, 2.0], &[3]);
/// let w = Tensor::from_vec(vec![0.5, 1.5, -2.0], &[3]);
/// gradcheck::check(|_tape: &Tape<f64>, xs: &[Var<f64>]| (xs[0] * xs[1]).tanh().sum(), &[x, w])
///     .unwrap();
/// ```
///
/// # Storing the function first
///
/// `f` must work for a tape of any lifetime (`for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>])`).
/// Written inline in the call, a closure gets that type; stored in a `let` first, Rust infers one
/// particular lifetime, and the call fails with "one type is more general than the other" (or
/// "implementation of `FnOnce` is not general enough"), pointing into this module. Wrap the
/// closure in [`function`], or write a `fn`:
///
/// ```
/// use tapegrad::{gradcheck, Tape, Tensor, Var};
/// let f = gradcheck::function(|_tape, xs| (xs[0] * xs[0]).sum());
/// gradcheck::check(&f, &[Tensor::from_vec(vec![1.0, 2.0], &[2])]).unwrap();
///
/// fn g<'t>(_tape: &'t Tape<f64>, xs: &[Var<'t, f64>]) -> Var<'t, f64> {
///     xs[0].exp().sum()
/// }
/// gradcheck::check(g, &[Tensor::from_vec(vec![1.0, 2.0], &[2])]).unwrap();
/// ```
pub fn check<F>(f: F, inputs: &[Tensor<f64>]) -> Result<(), GradcheckError>
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
{
    check_with(f, inputs, Tolerance::default())
}

/// Checks the gradients of `f` at `inputs` against central finite differences: every element
/// of every input, in `f64`. `f` receives a fresh tape and one var per input (each requiring a
/// gradient) and returns the output; a non-scalar output is reduced with fixed pseudo-random
/// weights. Returns the first element that fails.
///
/// ```
/// use tapegrad::gradcheck::{check_with, Tolerance};
/// use tapegrad::{Tape, Tensor, Var};
/// let tol = Tolerance { eps: 1e-5, atol: 1e-7, rtol: 1e-5 };
/// let a = Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]);
/// let b = Tensor::from_vec(vec![0.5, -1., 2.], &[3, 1]);
/// check_with(|_t: &Tape<f64>, xs: &[Var<f64>]| xs[0].matmul(&xs[1]), &[a, b], tol).unwrap();
/// ```
pub fn check_with<F>(f: F, inputs: &[Tensor<f64>], tol: Tolerance) -> Result<(), GradcheckError>
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
{
    check_inputs(&f, inputs, tol)
}

/// A function of input vars under check. The public functions are generic shims over this trait
/// object so that the checker is compiled once, in tapegrad, rather than once per closure (an
/// optimised build of tests/ops_proptest.rs: 120 s → 91 s).
type InputsFn<'f> = dyn for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64> + 'f;

/// A function that binds its own parameters (see [`check_params`]), as a trait object.
type ParamsFn<'f> = dyn for<'t> Fn(&'t Tape<f64>) -> Var<'t, f64> + 'f;

fn check_inputs(f: &InputsFn<'_>, inputs: &[Tensor<f64>], tol: Tolerance) -> Result<(), GradcheckError> {
    let tape = Tape::new();
    let xs: Vec<Var<f64>> = inputs.iter().map(|t| tape.var(t.clone())).collect();
    let y = f(&tape, &xs);
    let out_shape = y.shape();
    let weights = output_weights(&out_shape);
    let grads = y.backprop(weights.clone());
    let analytic: Vec<Tensor<f64>> = xs
        .iter()
        .zip(inputs)
        .map(|(x, t)| grads.wrt(*x).cloned().unwrap_or_else(|| Tensor::zeros(t.shape())))
        .collect();
    drop(grads);
    drop(tape);

    let evaluate = |point: &[Tensor<f64>]| -> f64 {
        let tape = Tape::new();
        let xs: Vec<Var<f64>> = point.iter().map(|t| tape.var(t.clone())).collect();
        let y = f(&tape, &xs).value();
        weighted_sum(&y, &out_shape, &weights)
    };
    let mut point = inputs.to_vec();
    for (i, input) in inputs.iter().enumerate() {
        for j in 0..input.numel() {
            let original = input.as_slice()[j];
            point[i].as_mut_slice()[j] = original + tol.eps;
            let plus = evaluate(&point);
            point[i].as_mut_slice()[j] = original - tol.eps;
            let minus = evaluate(&point);
            point[i].as_mut_slice()[j] = original;
            let numeric = (plus - minus) / (2.0 * tol.eps);
            let a = analytic[i].as_slice()[j];
            if !tol.accepts(a, numeric) {
                return Err(GradcheckError {
                    input: i,
                    index: unravel(j, input.shape()),
                    analytic: a,
                    numeric,
                    order: 1,
                    parameter: None,
                });
            }
        }
    }
    Ok(())
}

/// Checks the gradients of `f` with respect to parameters against central finite differences:
/// each element of each [`Param`] is moved by ±`tol.eps` in place (and put back), and `f` is run
/// on a fresh tape each time. `f` binds the parameters itself, as a model's forward does, which
/// is how layers are checked (see [`check_module`]).
///
/// # Errors
/// The first element whose gradient disagrees, with the parameter's name. A parameter the output
/// does not depend on must have a zero numeric gradient.
///
/// ```
/// use tapegrad::gradcheck::{check_params, Tolerance};
/// use tapegrad::{Param, Tape, Tensor};
///
/// let w = Param::new(Tensor::<f64>::from_vec(vec![0.5, -1.0], &[2]));
/// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
/// check_params(
///     |tape: &Tape<f64>| tape.constant(x.clone()).matmul(&tape.param(&w).reshape(&[2, 1])).tanh().sum(),
///     &[("w".to_string(), w.clone())],
///     Tolerance::default(),
/// )
/// .unwrap();
/// ```
pub fn check_params<F>(f: F, params: &[(String, Param<f64>)], tol: Tolerance) -> Result<(), GradcheckError>
where
    F: for<'t> Fn(&'t Tape<f64>) -> Var<'t, f64>,
{
    check_parameters(&f, params, tol)
}

fn check_parameters(
    f: &ParamsFn<'_>,
    params: &[(String, Param<f64>)],
    tol: Tolerance,
) -> Result<(), GradcheckError> {
    let tape = Tape::new();
    let y = f(&tape);
    let out_shape = y.shape();
    let weights = output_weights(&out_shape);
    let grads = y.backprop(weights.clone());
    let analytic: Vec<Tensor<f64>> = params
        .iter()
        .map(|(_, p)| {
            grads
                .param(p)
                .cloned()
                .unwrap_or_else(|| Tensor::zeros(&p.shape()))
        })
        .collect();
    drop(grads);
    drop(tape);
    let evaluate = || -> f64 {
        let tape = Tape::new();
        let y = f(&tape).value();
        weighted_sum(&y, &out_shape, &weights)
    };
    /// Puts a parameter's value back even if `f` panics half-way through a perturbation.
    struct Restore<'a>(&'a Param<f64>, Tensor<f64>);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            self.0.set_value(self.1.clone());
        }
    }
    for (i, ((name, param), analytic)) in params.iter().zip(&analytic).enumerate() {
        let base = param.value();
        let _restore = Restore(param, base.clone());
        let mut point = base.clone();
        for j in 0..base.numel() {
            let original = base.as_slice()[j];
            point.as_mut_slice()[j] = original + tol.eps;
            param.set_value(point.clone());
            let plus = evaluate();
            point.as_mut_slice()[j] = original - tol.eps;
            param.set_value(point.clone());
            let minus = evaluate();
            point.as_mut_slice()[j] = original;
            param.set_value(base.clone());
            let numeric = (plus - minus) / (2.0 * tol.eps);
            let a = analytic.as_slice()[j];
            if !tol.accepts(a, numeric) {
                return Err(GradcheckError {
                    input: i,
                    index: unravel(j, base.shape()),
                    analytic: a,
                    numeric,
                    order: 1,
                    parameter: Some(name.clone()),
                });
            }
        }
    }
    Ok(())
}

/// Checks a module's gradients with the default [`Tolerance`]: with respect to its input (through
/// [`check`]) and to every named parameter (through [`check_params`]), at `input`.
///
/// The module must be deterministic in its current mode (switch [`Dropout`](crate::nn::Dropout)
/// to evaluation mode first). A non-scalar output is reduced with fixed pseudo-random weights.
///
/// # Errors
/// The first failing element; a parameter's error carries its name (`layers.0.weight`).
///
/// ```
/// use tapegrad::{gradcheck, nn::{Activation, Mlp}, Tensor};
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let mlp = Mlp::<f64>::new(&[3, 4, 2], Activation::Tanh, &mut rng);
/// gradcheck::check_module(&mlp, &Tensor::randn(&[5, 3], &mut rng)).unwrap();
/// ```
pub fn check_module<M: Forward<f64> + ?Sized>(module: &M, input: &Tensor<f64>) -> Result<(), GradcheckError> {
    check(
        |tape: &Tape<f64>, xs: &[Var<f64>]| module.forward(tape, xs[0]),
        std::slice::from_ref(input),
    )?;
    check_params(
        |tape: &Tape<f64>| module.forward(tape, tape.constant(input.clone())),
        &module.named_parameters(),
        Tolerance::default(),
    )
}

/// Checks second derivatives: the gradients of the recorded gradients ([`Var::grad`]) against
/// finite differences of the gradients, with the default [`Tolerance`].
///
/// The scalar `h(x) = Σ_i <∂f/∂x_i, r_i>` with fixed pseudo-random `r_i` is gradient-checked, so
/// Hessian-vector products `H r` are compared element by element; the recorded gradients
/// themselves are also compared with [`Var::backward`]'s. Run [`check`] too for the first
/// derivatives against finite differences.
///
/// ```
/// use tapegrad::{gradcheck, Tape, Tensor, Var};
/// let x = Tensor::from_vec(vec![0.3, -0.7], &[2]);
/// gradcheck::check_second_order(|_t: &Tape<f64>, xs: &[Var<f64>]| xs[0].sin().powi(3).sum(), &[x])
///     .unwrap();
/// ```
pub fn check_second_order<F>(f: F, inputs: &[Tensor<f64>]) -> Result<(), GradcheckError>
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
{
    check_second_order_with(f, inputs, Tolerance::default())
}

/// [`check_second_order`] with an explicit [`Tolerance`].
pub fn check_second_order_with<F>(f: F, inputs: &[Tensor<f64>], tol: Tolerance) -> Result<(), GradcheckError>
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
{
    check_second_derivatives(&f, inputs, tol)
}

fn check_second_derivatives(
    f: &InputsFn<'_>,
    inputs: &[Tensor<f64>],
    tol: Tolerance,
) -> Result<(), GradcheckError> {
    let directions: Vec<Tensor<f64>> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| pseudo_random(t.shape(), i as u64 + 1))
        .collect();
    let h = as_checkable(|tape, xs| {
        let y = f(tape, xs);
        let weights = tape.constant(output_weights(&y.shape()));
        let y = (y * weights).sum();
        let gs = y.grad(xs);
        let mut total = tape.constant(0.0);
        for (g, r) in gs.into_iter().zip(&directions) {
            total = total + (g * tape.constant(r.clone())).sum();
        }
        total
    });
    check_inputs(&h, inputs, tol).map_err(|e| GradcheckError { order: 2, ..e })?;
    recorded_gradients_match_backward(f, inputs, tol)
}

/// The check above only sees derivatives of the recorded gradients, which would not notice a
/// recorded first derivative that is wrong by a constant. So the recorded gradients themselves
/// ([`Var::grad`]) must agree with the eager ones ([`Var::backward`], which [`check`] validates):
/// a disagreement is reported with the recorded value as `analytic` and the eager one as `numeric`.
fn recorded_gradients_match_backward(
    f: &InputsFn<'_>,
    inputs: &[Tensor<f64>],
    tol: Tolerance,
) -> Result<(), GradcheckError> {
    let tape = Tape::new();
    let xs: Vec<Var<f64>> = inputs.iter().map(|t| tape.var(t.clone())).collect();
    let y = f(&tape, &xs);
    let weights = output_weights(&y.shape());
    let eager = y.backprop(weights.clone());
    let recorded = y.grad_with_seed(tape.constant(weights), &xs);
    for (i, (x, g)) in xs.iter().zip(recorded).enumerate() {
        let g = g.value();
        let expected = eager.wrt(*x).cloned().unwrap_or_else(|| Tensor::zeros(g.shape()));
        for (j, (&a, &b)) in g.as_slice().iter().zip(expected.as_slice()).enumerate() {
            if !tol.accepts(a, b) {
                return Err(GradcheckError {
                    input: i,
                    index: unravel(j, g.shape()),
                    analytic: a,
                    numeric: b,
                    order: 2,
                    parameter: None,
                });
            }
        }
    }
    Ok(())
}

/// Checks a [`CustomOp`]'s rule with the default [`Tolerance`]; see [`check_custom_op_with`].
///
/// ```
/// use tapegrad::autograd::{CustomOp, ForwardCtx, VarCtx};
/// use tapegrad::{gradcheck, Float, Tensor, Var};
///
/// /// x·y, fused.
/// struct Product;
/// impl<T: Float> CustomOp<T> for Product {
///     fn name(&self) -> &'static str { "product" }
///     fn forward(&self, xs: &[&Tensor<T>], _ctx: &mut ForwardCtx<T>) -> Tensor<T> {
///         xs[0] * xs[1]
///     }
///     fn backward<'t>(&self, ctx: &VarCtx<'_, 't, T>) -> Vec<Option<Var<'t, T>>> {
///         let g = ctx.grad_output();
///         vec![Some(g * ctx.input(1)), Some(g * ctx.input(0))]
///     }
/// }
///
/// let (x, y) = (Tensor::from_vec(vec![0.5, -2.0], &[2]), Tensor::from_vec(vec![3.0, 0.25], &[2]));
/// gradcheck::check_custom_op(Product, &[x, y]).unwrap();
/// ```
pub fn check_custom_op<O: CustomOp<f64>>(op: O, inputs: &[Tensor<f64>]) -> Result<(), GradcheckError> {
    check_custom_op_with(op, inputs, Tolerance::default())
}

/// Checks a [`CustomOp`] (see [`crate::autograd`]) applied to `inputs`, as [`check_with`] and
/// [`check_second_order_with`] check a function: its rule against central finite differences of
/// its forward pass, the rule run in a recorded backward ([`Var::grad`]) against the eager one,
/// and the rule's own derivatives (second order) against finite differences of the rule. A
/// non-scalar output is reduced with fixed pseudo-random weights.
///
/// # Errors
/// The first element that disagrees, with `order` 1 (the rule) or 2 (its derivative, or the
/// recorded rule against the eager one).
pub fn check_custom_op_with<O: CustomOp<f64>>(
    op: O,
    inputs: &[Tensor<f64>],
    tol: Tolerance,
) -> Result<(), GradcheckError> {
    let op = std::sync::Arc::new(op);
    let f = as_checkable(|tape, xs| tape.custom(std::sync::Arc::clone(&op), xs));
    check_inputs(&f, inputs, tol)?;
    check_second_derivatives(&f, inputs, tol)
}

/// Checks a [`FirstOrderOp`]'s rule with the default [`Tolerance`]; see
/// [`check_first_order_op_with`].
///
/// ```
/// use tapegrad::autograd::{FirstOrderOp, ForwardCtx, TensorCtx};
/// use tapegrad::{gradcheck, Float, Tensor};
///
/// /// x³, with the rule 3x²·g.
/// struct Cube;
/// impl<T: Float> FirstOrderOp<T> for Cube {
///     fn name(&self) -> &'static str { "cube" }
///     fn forward(&self, xs: &[&Tensor<T>], _ctx: &mut ForwardCtx<T>) -> Tensor<T> {
///         xs[0].powi(3)
///     }
///     fn backward(&self, ctx: &TensorCtx<'_, T>) -> Vec<Option<Tensor<T>>> {
///         vec![Some(&(ctx.input(0).powi(2) * T::from_f64(3.0)) * ctx.grad_output())]
///     }
/// }
///
/// gradcheck::check_first_order_op(Cube, &[Tensor::from_vec(vec![0.5, -2.0], &[2])]).unwrap();
/// ```
pub fn check_first_order_op<O: FirstOrderOp<f64>>(
    op: O,
    inputs: &[Tensor<f64>],
) -> Result<(), GradcheckError> {
    check_first_order_op_with(op, inputs, Tolerance::default())
}

/// Checks a [`FirstOrderOp`] (see [`crate::autograd`]) applied to `inputs`: its rule against
/// central finite differences of its forward pass ([`check_with`]), and the rule run in a
/// recorded first-order backward ([`Var::grad`]) against the eager one. There is no second
/// order to check: a second derivative through the op panics.
///
/// # Errors
/// The first element that disagrees (`order` 2 for the recorded rule against the eager one).
pub fn check_first_order_op_with<O: FirstOrderOp<f64>>(
    op: O,
    inputs: &[Tensor<f64>],
    tol: Tolerance,
) -> Result<(), GradcheckError> {
    let op = std::sync::Arc::new(op);
    let f = as_checkable(|tape, xs| tape.custom_first_order(std::sync::Arc::clone(&op), xs));
    check_inputs(&f, inputs, tol)?;
    recorded_gradients_match_backward(&f, inputs, tol)
}

/// Gives a closure the higher-ranked signature `check_with` needs (closures cannot spell it).
fn as_checkable<F>(f: F) -> F
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
{
    f
}

/// Weights that reduce an output to a scalar: 1 for a one-element output, otherwise fixed
/// pseudo-random values in [0.5, 1.5), so that no error can cancel another.
fn output_weights(shape: &[usize]) -> Tensor<f64> {
    if shape.iter().product::<usize>() == 1 {
        Tensor::ones(shape)
    } else {
        pseudo_random(shape, 0)
    }
}

/// Deterministic values in [0.5, 1.5) (a hash of the index), so checks are reproducible.
fn pseudo_random(shape: &[usize], salt: u64) -> Tensor<f64> {
    Tensor::from_fn(shape, |i| {
        let mut z = (i as u64).wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        0.5 + (z >> 11) as f64 / (1u64 << 53) as f64
    })
}

fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        index[d] = flat % shape[d];
        flat /= shape[d];
    }
    index
}
