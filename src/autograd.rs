//! Custom ops: your own forward pass on tensors and your own backward rule, recorded on the tape
//! like a built-in op (PyTorch's `torch.autograd.Function`, JAX's `custom_vjp`).
//!
//! An op is a value of a type implementing one of two traits, applied to any number of input
//! vars with [`Tape::custom`] or [`Tape::custom_first_order`]:
//!
//! - [`CustomOp`]: the backward rule is written with [`Var`] operations. In an eager
//!   [`Var::backward`] it runs on constants (values only); in a recorded backward
//!   ([`Var::grad`]) it runs on the tape, so the gradient can be differentiated again: second
//!   derivatives, Hessian-vector products and Newton steps work through the op.
//! - [`FirstOrderOp`]: the backward rule is written on plain [`Tensor`]s, first order only.
//!   [`Var::backward`] and a first [`Var::grad`] work; differentiating that gradient again (a
//!   second derivative) panics naming the op, instead of silently giving zero. This is PyTorch's
//!   `@once_differentiable`.
//!
//! Either way the node carries the op's [`name`](CustomOp::name): [`Var::op`], error messages,
//! [`viz::Dot`](crate::viz::Dot) pictures and [`viz::BackwardTrace`](crate::viz::BackwardTrace)s
//! show it. The forward pass may keep tensors for the backward pass with
//! [`ForwardCtx::save`] (PyTorch's `ctx.save_for_backward`) and learn which inputs need a
//! gradient with [`ForwardCtx::needs_input_grad`]. The rule returns one `Option` per input:
//! `None` for an input without a gradient. Inputs that do not require a gradient get none,
//! whatever the rule returns, and a returned gradient whose shape differs from its input's
//! panics naming the op, the input and both shapes. [`gradcheck::check_custom_op`] and
//! [`gradcheck::check_first_order_op`] compare a rule with finite differences.
//!
//! Ops are stored on the tape until it is reset, so they are `Send + Sync + 'static` (plain
//! data: settings such as an axis or a temperature are fields of the op). To share one large op
//! between many calls, pass an `Arc` of it: `Arc<O>` implements both traits when `O` does.
//!
//! [`gradcheck::check_custom_op`]: crate::gradcheck::check_custom_op
//! [`gradcheck::check_first_order_op`]: crate::gradcheck::check_first_order_op
//!
//! # A straight-through estimator
//!
//! Rounding in the forward pass, the identity in the backward pass (quantisation-aware training):
//! the gradient is deliberately not the forward's derivative (which is zero almost everywhere).
//!
//! ```
//! use tapegrad::autograd::{CustomOp, ForwardCtx, VarCtx};
//! use tapegrad::{Float, Tape, Tensor, Var};
//!
//! struct RoundSte;
//! impl<T: Float> CustomOp<T> for RoundSte {
//!     fn name(&self) -> &'static str {
//!         "round_ste"
//!     }
//!     fn forward(&self, inputs: &[&Tensor<T>], _ctx: &mut ForwardCtx<T>) -> Tensor<T> {
//!         inputs[0].map(|x| T::from_f64(x.to_f64().round()))
//!     }
//!     fn backward<'t>(&self, ctx: &VarCtx<'_, 't, T>) -> Vec<Option<Var<'t, T>>> {
//!         vec![Some(ctx.grad_output())] // straight through
//!     }
//! }
//!
//! let tape = Tape::<f32>::new();
//! let x = tape.var([0.4, 1.7]);
//! let y = tape.custom(RoundSte, &[x]);
//! assert_eq!(y.value().to_vec(), vec![0.0, 2.0]);
//! assert_eq!(y.op(), Some("round_ste"));
//! let grads = (y * y).sum().backward(); // d/dx = 2·round(x)·1
//! assert_eq!(grads[x].to_vec(), vec![0.0, 4.0]);
//! ```
//!
//! # A numerically stable `log1mexp`
//!
//! `log(1 - e^(-x))` for `x > 0` loses all its digits near 0 and far from it when written
//! naively; the stable form switches at `ln 2` between `log(-expm1(-x))` and `log1p(-e^(-x))`
//! (Mächler 2012). Its derivative `e^(-x) / (1 - e^(-x))` is `e^(-x - y)` with `y` the output,
//! which the rule reuses. Written with `Var` operations, the rule is differentiated again for
//! second derivatives (its `y` goes back through this op's rule).
//!
//! ```
//! use tapegrad::autograd::{CustomOp, ForwardCtx, VarCtx};
//! use tapegrad::{gradcheck, Float, Tape, Tensor, Var};
//!
//! struct Log1mExp;
//! impl<T: Float> CustomOp<T> for Log1mExp {
//!     fn name(&self) -> &'static str {
//!         "log1mexp"
//!     }
//!     fn forward(&self, inputs: &[&Tensor<T>], _ctx: &mut ForwardCtx<T>) -> Tensor<T> {
//!         inputs[0].map(|x| {
//!             let x = x.to_f64();
//!             let y = if x <= std::f64::consts::LN_2 { (-(-x).exp_m1()).ln() } else { (-(-x).exp()).ln_1p() };
//!             T::from_f64(y)
//!         })
//!     }
//!     fn backward<'t>(&self, ctx: &VarCtx<'_, 't, T>) -> Vec<Option<Var<'t, T>>> {
//!         let (x, y) = (ctx.input(0), ctx.output());
//!         vec![ctx.need(0, || ctx.grad_output() * (-x - y).exp())]
//!     }
//! }
//!
//! let tape = Tape::<f64>::new();
//! let x = tape.var([1e-20, 0.5, 40.0]);
//! let y = tape.custom(Log1mExp, &[x]);
//! assert_eq!(y.value().to_vec()[0], (1e-20f64).ln()); // the naive form gives -inf
//! let dy = y.sum().grad(&[x])[0];                      // 1 / expm1(x)
//! assert!((dy.value().to_vec()[1] - 1.0 / 0.5f64.exp_m1()).abs() < 1e-15);
//! let d2y = dy.sum().grad(&[x])[0];                    // -e^x / expm1(x)²
//! let want = -(0.5f64).exp() / 0.5f64.exp_m1().powi(2);
//! assert!((d2y.value().to_vec()[1] - want).abs() < 1e-12);
//!
//! gradcheck::check_custom_op(Log1mExp, &[Tensor::from_vec(vec![0.01, 0.6, 0.8, 3.0], &[4])]).unwrap();
//! ```
//!
//! # A backward cheaper than the forward's derivative
//!
//! Softplus `ln(1 + e^x)`, computed stably as `max(x, 0) + ln(1 + e^(-|x|))`, would record five
//! nodes from built-in ops and backward would differentiate each. Its derivative is the sigmoid,
//! which the fused forward gets almost for free from the same `e^(-|x|)`: it saves it, and the
//! first-order rule is one multiplication. (The same op with a [`CustomOp`] rule would write
//! the derivative from the output, `1 - e^(-y)`, and be differentiable again.)
//!
//! ```
//! use tapegrad::autograd::{FirstOrderOp, ForwardCtx, TensorCtx};
//! use tapegrad::{gradcheck, Float, Tape, Tensor};
//!
//! struct Softplus;
//! impl<T: Float> FirstOrderOp<T> for Softplus {
//!     fn name(&self) -> &'static str {
//!         "fused_softplus"
//!     }
//!     fn forward(&self, inputs: &[&Tensor<T>], ctx: &mut ForwardCtx<T>) -> Tensor<T> {
//!         let x = inputs[0];
//!         let e = x.map(|v| (-v.abs()).exp()); // in (0, 1]: no overflow
//!         let y = Tensor::from_fn(x.shape(), |i| {
//!             let (v, e) = (x.as_slice()[i], e.as_slice()[i]);
//!             v.max(T::ZERO) + T::from_f64(e.to_f64().ln_1p())
//!         });
//!         if ctx.needs_input_grad(0) {
//!             ctx.save(Tensor::from_fn(x.shape(), |i| {
//!                 let (v, e) = (x.as_slice()[i], e.as_slice()[i]);
//!                 if v >= T::ZERO { T::ONE / (T::ONE + e) } else { e / (T::ONE + e) }
//!             }));
//!         }
//!         y
//!     }
//!     fn backward(&self, ctx: &TensorCtx<'_, T>) -> Vec<Option<Tensor<T>>> {
//!         vec![ctx.need(0, || ctx.grad_output() * ctx.saved(0))] // g·σ(x)
//!     }
//! }
//!
//! let tape = Tape::<f32>::new();
//! let x = tape.var([-200.0, 0.0, 100.0]); // e^-200 underflows to 0 in f32
//! let y = tape.custom_first_order(Softplus, &[x]);
//! assert_eq!(y.value().to_vec(), vec![0.0, 2f32.ln(), 100.0]);
//! assert_eq!(y.sum().backward()[x].to_vec(), vec![0.0, 0.5, 1.0]);
//!
//! gradcheck::check_first_order_op(Softplus, &[Tensor::from_vec(vec![-3.0, 0.2, 4.0], &[3])]).unwrap();
//! ```

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::ops::{Extra, Op, Operand, Vjp, VjpMany};
use crate::{Float, Tape, Tensor, Var};

/// An op with its own forward pass and a backward rule written with [`Var`] operations, so that
/// it is differentiable again (see the [module docs](self) for examples).
///
/// Apply it with [`Tape::custom`]. The rule receives the gradient of the loss with respect to
/// the output and returns one `Option<Var>` per input (the vector-Jacobian product).
pub trait CustomOp<T: Float>: Send + Sync + 'static {
    /// The op's name, shown by [`Var::op`], in pictures, traces and error messages.
    fn name(&self) -> &'static str;

    /// A one-line statement of the derivative, for backward traces ([`Var::op_rule`]).
    fn rule(&self) -> &'static str {
        "a custom rule (CustomOp)"
    }

    /// The output's value from the inputs' values. May keep tensors for the backward pass with
    /// [`ForwardCtx::save`].
    fn forward(&self, inputs: &[&Tensor<T>], ctx: &mut ForwardCtx<T>) -> Tensor<T>;

    /// The gradient of each input given [`VarCtx::grad_output`], built from the context's vars
    /// (inputs, output, saved tensors as constants) with `Var` operations: one entry per input,
    /// `None` for an input without a gradient, each of its input's shape.
    fn backward<'t>(&self, ctx: &VarCtx<'_, 't, T>) -> Vec<Option<Var<'t, T>>>;
}

/// An op with its own forward pass and a first-order backward rule on plain tensors (see the
/// [module docs](self)).
///
/// Apply it with [`Tape::custom_first_order`]. Cheaper to write and to run than a
/// [`CustomOp`], but a second derivative through it panics naming the op.
pub trait FirstOrderOp<T: Float>: Send + Sync + 'static {
    /// The op's name, shown by [`Var::op`], in pictures, traces and error messages.
    fn name(&self) -> &'static str;

    /// A one-line statement of the derivative, for backward traces ([`Var::op_rule`]).
    fn rule(&self) -> &'static str {
        "a custom first-order rule (FirstOrderOp)"
    }

    /// The output's value from the inputs' values. May keep tensors for the backward pass with
    /// [`ForwardCtx::save`].
    fn forward(&self, inputs: &[&Tensor<T>], ctx: &mut ForwardCtx<T>) -> Tensor<T>;

    /// The gradient of each input given [`TensorCtx::grad_output`]: one entry per input, `None`
    /// for an input without a gradient, each of its input's shape.
    fn backward(&self, ctx: &TensorCtx<'_, T>) -> Vec<Option<Tensor<T>>>;
}

impl<T: Float, O: CustomOp<T> + ?Sized> CustomOp<T> for Arc<O> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn rule(&self) -> &'static str {
        (**self).rule()
    }
    fn forward(&self, inputs: &[&Tensor<T>], ctx: &mut ForwardCtx<T>) -> Tensor<T> {
        (**self).forward(inputs, ctx)
    }
    fn backward<'t>(&self, ctx: &VarCtx<'_, 't, T>) -> Vec<Option<Var<'t, T>>> {
        (**self).backward(ctx)
    }
}

impl<T: Float, O: FirstOrderOp<T> + ?Sized> FirstOrderOp<T> for Arc<O> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn rule(&self) -> &'static str {
        (**self).rule()
    }
    fn forward(&self, inputs: &[&Tensor<T>], ctx: &mut ForwardCtx<T>) -> Tensor<T> {
        (**self).forward(inputs, ctx)
    }
    fn backward(&self, ctx: &TensorCtx<'_, T>) -> Vec<Option<Tensor<T>>> {
        (**self).backward(ctx)
    }
}

/// What a custom op's forward pass may do besides computing: keep tensors for the backward
/// pass, and ask which inputs need a gradient (PyTorch's `ctx`).
pub struct ForwardCtx<'a, T: Float> {
    name: &'static str,
    needs: &'a [bool],
    saved: Vec<Tensor<T>>,
}

impl<T: Float> ForwardCtx<'_, T> {
    /// Keeps `tensor` for the backward pass, where it is [`VarCtx::saved`] or
    /// [`TensorCtx::saved`] at the position of this call among the op's `save` calls (PyTorch's
    /// `ctx.save_for_backward`). Nothing is kept when the op is applied under
    /// [`Tape::no_grad`] or to inputs that need no gradient.
    pub fn save(&mut self, tensor: Tensor<T>) {
        self.saved.push(tensor);
    }

    /// Whether input `i` needs a gradient (PyTorch's `ctx.needs_input_grad[i]`): `false` for
    /// constants and under [`Tape::no_grad`], so work done only for the backward pass can be
    /// skipped.
    ///
    /// # Panics
    /// If the op has no input `i`.
    #[track_caller]
    pub fn needs_input_grad(&self, i: usize) -> bool {
        needs_input(self.name, self.needs, i)
    }

    /// Whether any input needs a gradient.
    pub fn needs_any_grad(&self) -> bool {
        self.needs.iter().any(|&n| n)
    }
}

/// What a [`CustomOp`]'s rule sees: the gradient of the output, and the op's inputs, output and
/// saved tensors as vars. In a recorded backward ([`Var::grad`]) they are the tape's own vars
/// (saved tensors become constants), so the gradient the rule builds is differentiable again;
/// in an eager [`Var::backward`] they are constants on a scratch tape.
///
/// A saved tensor is a constant to the rule: a rule that must be right to second order writes
/// what depends on the inputs from [`input`](VarCtx::input) and [`output`](VarCtx::output), and
/// saves only what does not (masks, indices, random draws).
pub struct VarCtx<'a, 't, T: Float> {
    name: &'static str,
    tape: &'t Tape<T>,
    inputs: &'a [Var<'t, T>],
    output: Var<'t, T>,
    grad_output: Var<'t, T>,
    saved: &'a [Tensor<T>],
    needs: &'a [bool],
}

impl<'t, T: Float> VarCtx<'_, 't, T> {
    /// The tape the rule records on (for constants: `ctx.tape().constant(...)`).
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// The gradient of the loss with respect to the op's output (shape of the output).
    pub fn grad_output(&self) -> Var<'t, T> {
        self.grad_output
    }

    /// Input `i`.
    ///
    /// # Panics
    /// If the op has no input `i`.
    #[track_caller]
    pub fn input(&self, i: usize) -> Var<'t, T> {
        match self.inputs.get(i) {
            Some(&x) => x,
            None => no_input(self.name, i, self.inputs.len()),
        }
    }

    /// Every input, in the order given to [`Tape::custom`].
    pub fn inputs(&self) -> &[Var<'t, T>] {
        self.inputs
    }

    /// The op's output.
    pub fn output(&self) -> Var<'t, T> {
        self.output
    }

    /// Saved tensor `i` (see [`ForwardCtx::save`]) as a constant var.
    ///
    /// # Panics
    /// If the forward pass saved fewer than `i + 1` tensors.
    #[track_caller]
    pub fn saved(&self, i: usize) -> Var<'t, T> {
        self.tape.constant(self.saved_tensor(i).clone())
    }

    /// Saved tensor `i` (see [`ForwardCtx::save`]) as a tensor.
    ///
    /// # Panics
    /// If the forward pass saved fewer than `i + 1` tensors.
    #[track_caller]
    pub fn saved_tensor(&self, i: usize) -> &Tensor<T> {
        saved_at(self.name, self.saved, i)
    }

    /// The number of saved tensors.
    pub fn saved_len(&self) -> usize {
        self.saved.len()
    }

    /// Whether input `i` needs a gradient (PyTorch's `ctx.needs_input_grad[i]`).
    ///
    /// # Panics
    /// If the op has no input `i`.
    #[track_caller]
    pub fn needs_input_grad(&self, i: usize) -> bool {
        needs_input(self.name, self.needs, i)
    }

    /// `f()` if input `i` needs a gradient, else `None`: one entry of the rule's result.
    #[track_caller]
    pub fn need(&self, i: usize, f: impl FnOnce() -> Var<'t, T>) -> Option<Var<'t, T>> {
        self.needs_input_grad(i).then(f)
    }
}

/// What a [`FirstOrderOp`]'s rule sees: the gradient of the output, and the op's inputs, output
/// and saved tensors, all as tensors.
pub struct TensorCtx<'a, T: Float> {
    name: &'static str,
    inputs: &'a [&'a Tensor<T>],
    output: &'a Tensor<T>,
    grad_output: &'a Tensor<T>,
    saved: &'a [Tensor<T>],
    needs: &'a [bool],
}

impl<'a, T: Float> TensorCtx<'a, T> {
    /// The gradient of the loss with respect to the op's output (shape of the output).
    pub fn grad_output(&self) -> &'a Tensor<T> {
        self.grad_output
    }

    /// Input `i`'s value.
    ///
    /// # Panics
    /// If the op has no input `i`.
    #[track_caller]
    pub fn input(&self, i: usize) -> &'a Tensor<T> {
        match self.inputs.get(i) {
            Some(&x) => x,
            None => no_input(self.name, i, self.inputs.len()),
        }
    }

    /// Every input's value, in the order given to [`Tape::custom_first_order`].
    pub fn inputs(&self) -> &'a [&'a Tensor<T>] {
        self.inputs
    }

    /// The op's output value.
    pub fn output(&self) -> &'a Tensor<T> {
        self.output
    }

    /// Saved tensor `i` (see [`ForwardCtx::save`]).
    ///
    /// # Panics
    /// If the forward pass saved fewer than `i + 1` tensors.
    #[track_caller]
    pub fn saved(&self, i: usize) -> &'a Tensor<T> {
        saved_at(self.name, self.saved, i)
    }

    /// The number of saved tensors.
    pub fn saved_len(&self) -> usize {
        self.saved.len()
    }

    /// Whether input `i` needs a gradient (PyTorch's `ctx.needs_input_grad[i]`).
    ///
    /// # Panics
    /// If the op has no input `i`.
    #[track_caller]
    pub fn needs_input_grad(&self, i: usize) -> bool {
        needs_input(self.name, self.needs, i)
    }

    /// `f()` if input `i` needs a gradient, else `None`: one entry of the rule's result.
    #[track_caller]
    pub fn need(&self, i: usize, f: impl FnOnce() -> Tensor<T>) -> Option<Tensor<T>> {
        self.needs_input_grad(i).then(f)
    }
}

#[track_caller]
fn needs_input(name: &str, needs: &[bool], i: usize) -> bool {
    match needs.get(i) {
        Some(&n) => n,
        None => no_input(name, i, needs.len()),
    }
}

#[cold]
#[track_caller]
fn no_input(name: &str, i: usize, n: usize) -> ! {
    panic!("tapegrad: custom op `{name}`: input {i} asked for, but the op was applied to {n} inputs")
}

#[track_caller]
fn saved_at<'a, T: Float>(name: &str, saved: &'a [Tensor<T>], i: usize) -> &'a Tensor<T> {
    match saved.get(i) {
        Some(t) => t,
        None => panic!(
            "tapegrad: custom op `{name}`: saved tensor {i} asked for, but the forward pass saved {}",
            saved.len()
        ),
    }
}

impl<T: Float> Tape<T> {
    /// Applies the custom op `op` to `inputs` (any number, at least one, all on this tape):
    /// runs its forward pass and records a node named [`op.name()`](CustomOp::name) whose
    /// backward runs the op's `Var` rule, differentiable again. See [`crate::autograd`].
    ///
    /// ```
    /// use tapegrad::autograd::{CustomOp, ForwardCtx, VarCtx};
    /// use tapegrad::{Float, Tape, Tensor, Var};
    ///
    /// /// x·y + z, fused.
    /// struct Fma;
    /// impl<T: Float> CustomOp<T> for Fma {
    ///     fn name(&self) -> &'static str { "fma" }
    ///     fn forward(&self, xs: &[&Tensor<T>], _ctx: &mut ForwardCtx<T>) -> Tensor<T> {
    ///         &(xs[0] * xs[1]) + xs[2]
    ///     }
    ///     fn backward<'t>(&self, ctx: &VarCtx<'_, 't, T>) -> Vec<Option<Var<'t, T>>> {
    ///         let g = ctx.grad_output();
    ///         vec![ctx.need(0, || g * ctx.input(1)), ctx.need(1, || g * ctx.input(0)), ctx.need(2, || g)]
    ///     }
    /// }
    ///
    /// let tape = Tape::<f64>::new();
    /// let (x, y, z) = (tape.var(2.0), tape.var(3.0), tape.constant(1.0));
    /// let out = tape.custom(Fma, &[x, y, z]);
    /// assert_eq!(out.item(), 7.0);
    /// let grads = (out * out).backward();
    /// assert_eq!((grads[x].item(), grads[y].item()), (42.0, 28.0));
    /// assert!(grads.wrt(z).is_none()); // a constant: no gradient
    /// let d2 = out.grad(&[x])[0].grad(&[y])[0]; // d²out/dxdy = 1
    /// assert_eq!(d2.item(), 1.0);
    /// ```
    ///
    /// # Panics
    /// If `inputs` is empty or holds a var of another tape; in backward, if the rule returns
    /// a number of gradients other than the number of inputs, or a gradient whose shape differs
    /// from its input's (the message names the op, the input and both shapes).
    #[track_caller]
    pub fn custom<'t>(&'t self, op: impl CustomOp<T>, inputs: &[Var<'t, T>]) -> Var<'t, T> {
        self.apply_custom(Rule::Vars(Box::new(op)), inputs)
    }

    /// Applies the first-order custom op `op` to `inputs` (any number, at least one, all on this
    /// tape): like [`Tape::custom`], with the op's rule on tensors. A second derivative through
    /// the node panics naming the op. See [`crate::autograd`].
    ///
    /// ```
    /// use tapegrad::autograd::{FirstOrderOp, ForwardCtx, TensorCtx};
    /// use tapegrad::{Float, Tape, Tensor};
    ///
    /// /// Doubles the gradient on its way back (and leaves the value alone).
    /// struct DoubleGrad;
    /// impl<T: Float> FirstOrderOp<T> for DoubleGrad {
    ///     fn name(&self) -> &'static str { "double_grad" }
    ///     fn forward(&self, xs: &[&Tensor<T>], _ctx: &mut ForwardCtx<T>) -> Tensor<T> {
    ///         xs[0].clone()
    ///     }
    ///     fn backward(&self, ctx: &TensorCtx<'_, T>) -> Vec<Option<Tensor<T>>> {
    ///         vec![Some(ctx.grad_output() * T::from_f64(2.0))]
    ///     }
    /// }
    ///
    /// let tape = Tape::<f32>::new();
    /// let x = tape.var(3.0);
    /// let y = tape.custom_first_order(DoubleGrad, &[x]) * x;
    /// assert_eq!(y.backward()[x].item(), 9.0); // 2·x + x
    /// let dy = y.grad(&[x])[0];                 // a first derivative is fine,
    /// assert_eq!(dy.item(), 9.0);
    /// let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dy.grad(&[x])));
    /// assert!(again.is_err());                  // a second one panics naming `double_grad`
    /// ```
    ///
    /// # Panics
    /// As [`Tape::custom`]; and when a gradient computed through this op is differentiated.
    #[track_caller]
    pub fn custom_first_order<'t>(&'t self, op: impl FirstOrderOp<T>, inputs: &[Var<'t, T>]) -> Var<'t, T> {
        self.apply_custom(Rule::Tensors(Box::new(op)), inputs)
    }

    #[track_caller]
    fn apply_custom<'t>(&'t self, rule: Rule<T>, inputs: &[Var<'t, T>]) -> Var<'t, T> {
        let name = rule.name();
        assert!(
            !inputs.is_empty(),
            "tapegrad: custom op `{name}`: applied to no inputs; give it at least one var"
        );
        for (i, x) in inputs.iter().enumerate() {
            assert!(
                std::ptr::eq(x.tape, self),
                "tapegrad: custom op `{name}`: input {i} (node {}) belongs to another tape",
                x.id
            );
        }
        let recording = self.is_recording();
        let needs: Vec<bool> = inputs.iter().map(|x| recording && x.requires_grad()).collect();
        let (value, saved) = {
            let values: Vec<crate::tape::ValueRef<'t, T>> = inputs.iter().map(|x| x.value_ref()).collect();
            let refs: Vec<&Tensor<T>> = values.iter().map(|v| &**v).collect();
            let mut ctx = ForwardCtx {
                name,
                needs: &needs,
                saved: Vec::new(),
            };
            let value = rule.forward(&refs, &mut ctx);
            (value, ctx.saved)
        };
        if !recording {
            if self.anomaly_detection() {
                // Checked like a built-in op under no_grad (no line is kept for it).
                let ids: Vec<u32> = inputs.iter().map(|x| x.id).collect();
                self.anomaly_tensor_op(name, &ids, &value, None);
            }
            return self.constant(value);
        }
        // A node no gradient flows through never runs its rule: keep nothing for it.
        let saved = if needs.contains(&true) { saved } else { Vec::new() };
        let custom = CustomRef {
            name,
            rule: rule.rule(),
            gradient: false,
            node: Arc::new(CustomNode { rule, saved }),
        };
        let ids: Vec<u32> = inputs.iter().map(|x| x.id).collect();
        self.record_custom(&CustomNodeOp, custom.into_extra(), &ids, value)
    }
}

/// A custom op's rule, of either kind.
enum Rule<T: Float> {
    Vars(Box<dyn CustomOp<T>>),
    Tensors(Box<dyn FirstOrderOp<T>>),
}

impl<T: Float> Rule<T> {
    fn name(&self) -> &'static str {
        match self {
            Rule::Vars(op) => op.name(),
            Rule::Tensors(op) => op.name(),
        }
    }
    fn rule(&self) -> &'static str {
        match self {
            Rule::Vars(op) => op.rule(),
            Rule::Tensors(op) => op.rule(),
        }
    }
    fn forward(&self, inputs: &[&Tensor<T>], ctx: &mut ForwardCtx<T>) -> Tensor<T> {
        match self {
            Rule::Vars(op) => op.forward(inputs, ctx),
            Rule::Tensors(op) => op.forward(inputs, ctx),
        }
    }
}

/// What a custom op's node keeps: the op and its saved tensors.
struct CustomNode<T: Float> {
    rule: Rule<T>,
    saved: Vec<Tensor<T>>,
}

/// A custom op's node data as the tape keeps it, in the node's [`Extra`] arguments (so that
/// nodes stay 32 bytes and backward, recorded backward and traces reach it through the paths
/// every op with extra arguments takes). [`Extra`] is not generic over the element type, hence
/// the `Any`.
#[derive(Clone)]
pub(crate) struct CustomRef {
    name: &'static str,
    rule: &'static str,
    /// Whether this is the gradient node a first-order op's rule recorded in a recorded backward
    /// (see [`GradientOp`]) rather than the op's own node.
    gradient: bool,
    node: Arc<dyn Any + Send + Sync>,
}

impl CustomRef {
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }
    pub(crate) fn rule(&self) -> &'static str {
        self.rule
    }
    pub(crate) fn is_gradient(&self) -> bool {
        self.gradient
    }
    fn into_extra(self) -> Extra {
        Extra {
            custom: Some(self),
            ..Extra::default()
        }
    }
    fn node<T: Float>(&self) -> &CustomNode<T> {
        match self.node.downcast_ref::<CustomNode<T>>() {
            Some(node) => node,
            None => unreachable!("custom op {} recorded for another element type", self.name),
        }
    }
    fn of(extra: Option<&Extra>) -> &CustomRef {
        match extra.and_then(|e| e.custom.as_ref()) {
            Some(custom) => custom,
            None => unreachable!("custom op node without its op"),
        }
    }
}

impl fmt::Debug for CustomRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomRef")
            .field("name", &self.name)
            .field("gradient", &self.gradient)
            .finish_non_exhaustive()
    }
}

impl PartialEq for CustomRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.node, &other.node) && self.gradient == other.gradient
    }
}

/// Shown in pictures and traces as the node's arguments: nothing for the op's own node (its
/// name is the op's), the op's name for a first-order op's gradient node.
impl fmt::Display for CustomRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.gradient {
            write!(f, "gradient of {}", self.name)
        } else {
            Ok(())
        }
    }
}

/// The op of every custom op's node: dispatches to the node's own rule (see [`CustomRef`])
/// through [`Operand::custom_vjp`]. Custom nodes always keep their inputs in the side list, so
/// only `vjp_many` runs.
struct CustomNodeOp;

impl<T: Float> Op<T> for CustomNodeOp {
    fn name(&self) -> &'static str {
        "custom"
    }
    fn rule(&self) -> &'static str {
        "a custom op's rule"
    }
    fn vjp<G: Operand<T>>(&self, _cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        unreachable!("custom op nodes keep their inputs in the side list")
    }
    fn vjp_many<G: Operand<T>>(&self, cx: &VjpMany<'_, G>) -> Vec<Option<G>> {
        G::custom_vjp(cx)
    }
}

/// A custom op's rule in an eager backward (or a trace): on tensors.
pub(crate) fn vjp_tensors<T: Float>(cx: &VjpMany<'_, Tensor<T>>) -> Vec<Option<Tensor<T>>> {
    let custom = CustomRef::of(cx.extra);
    let node = custom.node::<T>();
    let name = custom.name;
    let grads = match &node.rule {
        Rule::Tensors(op) => op.backward(&TensorCtx {
            name,
            inputs: cx.inputs,
            output: cx.output,
            grad_output: cx.grad_out,
            saved: &node.saved,
            needs: cx.needs,
        }),
        Rule::Vars(op) => {
            // The rule on constants of a scratch tape, without recording: values only.
            let scratch = Tape::<T>::new();
            scratch.no_grad(|| {
                let inputs: Vec<Var<'_, T>> =
                    cx.inputs.iter().map(|x| scratch.constant((*x).clone())).collect();
                let ctx = VarCtx {
                    name,
                    tape: &scratch,
                    inputs: &inputs,
                    output: scratch.constant(cx.output.clone()),
                    grad_output: scratch.constant(cx.grad_out.clone()),
                    saved: &node.saved,
                    needs: cx.needs,
                };
                let grads = op.backward(&ctx);
                check_tapes(name, &scratch, &grads);
                grads.into_iter().map(|g| g.map(|g| g.value())).collect()
            })
        }
    };
    checked(
        name,
        cx.needs,
        grads,
        |i| cx.inputs[i].shape().to_vec(),
        |g| g.shape().to_vec(),
    )
}

/// A custom op's rule in a recorded backward ([`Var::grad`]): on the tape's vars.
pub(crate) fn vjp_vars<'t, T: Float>(cx: &VjpMany<'_, Var<'t, T>>) -> Vec<Option<Var<'t, T>>> {
    let custom = CustomRef::of(cx.extra);
    let node = custom.node::<T>();
    let name = custom.name;
    let tape = cx.output.tape;
    let inputs: Vec<Var<'t, T>> = cx.inputs.iter().map(|&&x| x).collect();
    match &node.rule {
        Rule::Vars(op) => {
            let grads = op.backward(&VarCtx {
                name,
                tape,
                inputs: &inputs,
                output: *cx.output,
                grad_output: *cx.grad_out,
                saved: &node.saved,
                needs: cx.needs,
            });
            check_tapes(name, tape, &grads);
            checked(name, cx.needs, grads, |i| inputs[i].shape(), |g| g.shape())
        }
        Rule::Tensors(op) => {
            // The first-order rule on the values; each gradient is recorded as a node whose own
            // rule refuses to run (see `GradientOp`), over the vars it depends on.
            let values: Vec<Tensor<T>> = inputs.iter().map(|x| x.value()).collect();
            let refs: Vec<&Tensor<T>> = values.iter().collect();
            let (output, grad_out) = (cx.output.value(), cx.grad_out.value());
            let grads = op.backward(&TensorCtx {
                name,
                inputs: &refs,
                output: &output,
                grad_output: &grad_out,
                saved: &node.saved,
                needs: cx.needs,
            });
            let grads = checked(
                name,
                cx.needs,
                grads,
                |i| values[i].shape().to_vec(),
                |g| g.shape().to_vec(),
            );
            let ids: Vec<u32> = std::iter::once(cx.grad_out.id)
                .chain(inputs.iter().map(|x| x.id))
                .collect();
            let gradient = CustomRef {
                gradient: true,
                ..custom.clone()
            };
            grads
                .into_iter()
                .map(|g| g.map(|g| tape.record_custom(&GradientOp, gradient.clone().into_extra(), &ids, g)))
                .collect()
        }
    }
}

/// The op of a gradient that a [`FirstOrderOp`] computed in a recorded backward: its value is
/// right, but it has no rule of its own, so differentiating it (a second derivative through the
/// first-order op) panics naming that op.
struct GradientOp;

impl<T: Float> Op<T> for GradientOp {
    fn name(&self) -> &'static str {
        "custom_gradient"
    }
    fn rule(&self) -> &'static str {
        "the gradient of a first-order custom op: not differentiable"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        refuse(cx.extra)
    }
    fn vjp_many<G: Operand<T>>(&self, cx: &VjpMany<'_, G>) -> Vec<Option<G>> {
        refuse(cx.extra)
    }
}

/// The panic of a second derivative through a first-order custom op.
fn refuse(extra: Option<&Extra>) -> ! {
    let name = CustomRef::of(extra).name;
    panic!(
        "tapegrad: custom op `{name}` has a first-order rule (FirstOrderOp, on tensors), so a \
         gradient through it cannot be differentiated again: differentiating a gradient (second \
         derivatives, Hessians, check_second_order, and functional::jvp, hvp and hessian, which \
         are built by double backward) needs a rule written with Var operations; implement \
         CustomOp for `{name}` and apply it with Tape::custom"
    )
}

/// Panics unless every var a rule returned lives on `tape`.
fn check_tapes<T: Float>(name: &str, tape: &Tape<T>, grads: &[Option<Var<'_, T>>]) {
    for (i, g) in grads.iter().enumerate() {
        if let Some(g) = g {
            assert!(
                std::ptr::eq(g.tape, tape),
                "tapegrad: custom op `{name}`: backward returned, for input {i}, a var of another \
                 tape than the context's (build gradients from the context's vars and ctx.tape())"
            );
        }
    }
}

/// A rule's result, checked: one entry per input, each gradient of its input's shape; inputs
/// that need no gradient get none.
fn checked<G>(
    name: &str,
    needs: &[bool],
    grads: Vec<Option<G>>,
    input_shape: impl Fn(usize) -> Vec<usize>,
    shape: impl Fn(&G) -> Vec<usize>,
) -> Vec<Option<G>> {
    assert!(
        grads.len() == needs.len(),
        "tapegrad: custom op `{name}`: backward returned {} gradients for {} inputs (one Option \
         per input, None for an input without a gradient)",
        grads.len(),
        needs.len()
    );
    grads
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let g = g?;
            let (got, want) = (shape(&g), input_shape(i));
            assert!(
                got == want,
                "tapegrad: custom op `{name}`: backward returned a gradient of shape {got:?} for \
                 input {i}, which has shape {want:?}"
            );
            needs[i].then_some(g)
        })
        .collect()
}
