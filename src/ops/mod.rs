//! Differentiable operations: each op's forward, its backward rule and its tests live in one
//! block of one family file.
//!
//! # How an op is made
//!
//! An op is a unit struct implementing [`Op`]. Its `vjp` (vector-Jacobian product) receives the
//! op's inputs, its output and the gradient of the loss with respect to the output (`grad_out`),
//! and returns the gradient with respect to each input. It is written once, generically over
//! [`Operand`], which both [`Tensor`] and [`Var`] implement:
//!
//! - with `Tensor` (eager kernels) it is the fast first-order backward pass;
//! - with `Var` it records the backward pass on the tape, so gradients of gradients
//!   (Hessian-vector products, Newton steps) come for free.
//!
//! ```text
//! /// Multiplication. d(x·y)/dx = y, d(x·y)/dy = x.
//! pub(crate) struct Mul;
//! impl<T: Float> Op<T> for Mul {
//!     fn name(&self) -> &'static str { "mul" }
//!     fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
//!         let g = cx.grad_out;
//!         [cx.need(0, || g.mul(cx.y()).sum_to_like(cx.x())),
//!          cx.need(1, || g.mul(cx.x()).sum_to_like(cx.y()))]
//!     }
//! }
//! ```
//!
//! An op that also implements [`Primitive`] (its forward kernel on tensors) can be applied by
//! every operand type with [`Operand::apply`], so other rules may use it, and its public `Var`
//! method is a check of the arguments followed by [`Var::record_op`]. Arguments beyond the
//! small inline [`Args`] go in an [`Extra`]; ops with more than two inputs implement
//! [`Op::vjp_many`]. Adding an op touches its family file (and a test), nothing else; a new
//! family adds one `mod` line here. ARCHITECTURE.md walks through an example (`permute`).

mod activation;
mod arith;
mod bce;
mod clamp;
mod compare;
pub use compare::CompareWith;
pub(crate) mod conv;
mod einsum;
mod erf;
mod index;
mod join;
mod mask;
mod matmul;
mod reduce;
mod shape;
mod softmax;
mod unary;

use smallvec::SmallVec;

use crate::tensor::Shape;
use crate::{Float, Tensor, Var};

/// Small inline arguments of an op, stored in its node. Axes and ranges are `u32` so that the
/// enum, and with it every node, stays small.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Args {
    /// No arguments.
    None,
    /// A reduction or softmax axis, and whether a reduced axis is kept with size 1.
    Axis { axis: u32, keepdim: bool },
    /// A real exponent.
    Powf(f64),
    /// An integer exponent.
    Powi(i32),
    /// Two axes to swap.
    Transpose(u32, u32),
    /// A slice `start..start + len` along an axis.
    Narrow { axis: u32, start: u32, len: u32 },
    /// A sliding window over images (kernel, stride, padding, dilation), for unfold and fold.
    Window(conv::PackedWindow),
    /// The node's [`Extra`] arguments, at this index of the tape's side list. Only the tape
    /// stores this variant; rules and kernels read the arguments through `cx.extra()`.
    Extra(u32),
}

/// Arguments too large for [`Args`]: lists of axes, sizes or paddings, real values (a fill
/// value, bounds), a mask and an index tensor. Kept beside the nodes in the tape's side list (so
/// nodes stay 32 bytes); each op documents which fields it reads.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Extra {
    pub(crate) ints: SmallVec<[usize; 8]>,
    pub(crate) reals: SmallVec<[f64; 2]>,
    pub(crate) mask: Option<Tensor<bool>>,
    pub(crate) index: Option<Tensor<usize>>,
    /// A custom op's rule and saved tensors ([`crate::autograd`]).
    pub(crate) custom: Option<crate::autograd::CustomRef>,
}

impl Extra {
    /// Integer arguments only.
    pub(crate) fn ints(ints: &[usize]) -> Extra {
        Extra {
            ints: SmallVec::from_slice(ints),
            ..Extra::default()
        }
    }
    /// Adds real arguments.
    pub(crate) fn with_reals(mut self, reals: &[f64]) -> Extra {
        self.reals = SmallVec::from_slice(reals);
        self
    }
    /// Adds a mask.
    pub(crate) fn with_mask(mut self, mask: Tensor<bool>) -> Extra {
        self.mask = Some(mask);
        self
    }
    /// Adds an index tensor.
    pub(crate) fn with_index(mut self, index: Tensor<usize>) -> Extra {
        self.index = Some(index);
        self
    }
    /// The name of the custom op whose node this is, if it is one (not for the gradient nodes
    /// of first-order custom ops, which keep their own op's name).
    pub(crate) fn custom_name(&self) -> Option<&'static str> {
        self.custom
            .as_ref()
            .filter(|c| !c.is_gradient())
            .map(|c| c.name())
    }
    /// The rule text of the custom op whose node this is, if it is one.
    pub(crate) fn custom_rule(&self) -> Option<&'static str> {
        self.custom
            .as_ref()
            .filter(|c| !c.is_gradient())
            .map(|c| c.rule())
    }
    /// The mask; panics naming `op` if there is none (a bug of the op, not of its caller).
    pub(crate) fn mask(&self, op: &str) -> &Tensor<bool> {
        self.mask
            .as_ref()
            .unwrap_or_else(|| unreachable!("{op} node without its mask"))
    }
    /// The index tensor; panics naming `op` if there is none.
    pub(crate) fn index(&self, op: &str) -> &Tensor<usize> {
        self.index
            .as_ref()
            .unwrap_or_else(|| unreachable!("{op} node without its index"))
    }
}

impl std::fmt::Display for Extra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.ints.is_empty() {
            parts.push(format!("{:?}", self.ints.as_slice()));
        }
        for r in &self.reals {
            parts.push(format!("{r}"));
        }
        if let Some(m) = &self.mask {
            parts.push(format!("mask {:?}", m.shape()));
        }
        if let Some(i) = &self.index {
            parts.push(format!("index {:?}", i.shape()));
        }
        if let Some(c) = &self.custom {
            parts.push(c.to_string());
        }
        f.write_str(&parts.join(", "))
    }
}

/// Narrows an axis or index to the `u32` that [`Args`] stores.
#[track_caller]
fn small(value: usize, what: &str) -> u32 {
    match u32::try_from(value) {
        Ok(v) => v,
        Err(_) => panic!("tapegrad: {what} {value} does not fit in 32 bits"),
    }
}

impl Args {
    #[track_caller]
    pub(crate) fn axis(axis: usize, keepdim: bool) -> Args {
        Args::Axis {
            axis: small(axis, "axis"),
            keepdim,
        }
    }
    #[track_caller]
    pub(crate) fn transpose(a0: usize, a1: usize) -> Args {
        Args::Transpose(small(a0, "axis"), small(a1, "axis"))
    }
    #[track_caller]
    pub(crate) fn narrow(axis: usize, start: usize, len: usize) -> Args {
        Args::Narrow {
            axis: small(axis, "axis"),
            start: small(start, "start"),
            len: small(len, "length"),
        }
    }
}

impl std::fmt::Display for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Args::None => Ok(()),
            Args::Axis { axis, keepdim } => write!(f, "axis={axis}, keepdim={keepdim}"),
            Args::Powf(p) => write!(f, "p={p}"),
            Args::Powi(n) => write!(f, "n={n}"),
            Args::Transpose(a, b) => write!(f, "{a}, {b}"),
            Args::Narrow { axis, start, len } => write!(f, "axis={axis}, start={start}, len={len}"),
            Args::Window(w) => write!(f, "{w}"),
            Args::Extra(_) => Ok(()),
        }
    }
}

/// What a backward rule sees: the op's inputs and output, `grad_out` (dLoss/dOutput) and which
/// inputs need a gradient at all.
pub(crate) struct Vjp<'a, G> {
    pub(crate) args: Args,
    /// The op's [`Extra`] arguments, if it was recorded with some.
    pub(crate) extra: Option<&'a Extra>,
    /// The inputs; for a unary op both entries are the single input.
    pub(crate) inputs: [&'a G; 2],
    pub(crate) output: &'a G,
    pub(crate) grad_out: &'a G,
    pub(crate) needs: [bool; 2],
}

impl<'a, G> Vjp<'a, G> {
    /// The first input.
    pub(crate) fn x(&self) -> &'a G {
        self.inputs[0]
    }
    /// The second input.
    pub(crate) fn y(&self) -> &'a G {
        self.inputs[1]
    }
    /// Computes input `i`'s gradient only if that input needs one.
    pub(crate) fn need(&self, i: usize, f: impl FnOnce() -> G) -> Option<G> {
        self.needs[i].then(f)
    }
    /// The op's extra arguments (for ops recorded with [`Extra`]).
    pub(crate) fn extra(&self) -> &'a Extra {
        self.extra
            .unwrap_or_else(|| unreachable!("node without its extra arguments"))
    }
}

/// What the backward rule of an op with any number of inputs ([`Op::vjp_many`]) sees.
pub(crate) struct VjpMany<'a, G> {
    pub(crate) args: Args,
    pub(crate) extra: Option<&'a Extra>,
    pub(crate) inputs: &'a [&'a G],
    pub(crate) output: &'a G,
    pub(crate) grad_out: &'a G,
    pub(crate) needs: &'a [bool],
}

impl<'a, G> VjpMany<'a, G> {
    /// The op's extra arguments (for ops recorded with [`Extra`]).
    #[allow(
        dead_code,
        reason = "no built-in variadic op has list arguments yet; custom ops will"
    )]
    pub(crate) fn extra(&self) -> &'a Extra {
        self.extra
            .unwrap_or_else(|| unreachable!("node without its extra arguments"))
    }
}

/// What an op's forward kernel sees: its arguments and its input values.
pub(crate) struct Fwd<'a, T: Float> {
    pub(crate) args: Args,
    pub(crate) extra: Option<&'a Extra>,
    pub(crate) inputs: &'a [&'a Tensor<T>],
}

impl<'a, T: Float> Fwd<'a, T> {
    /// The op's extra arguments (for ops applied with [`Extra`]).
    pub(crate) fn extra(&self) -> &'a Extra {
        self.extra
            .unwrap_or_else(|| unreachable!("op applied without its extra arguments"))
    }
    /// The first input.
    pub(crate) fn x(&self) -> &'a Tensor<T> {
        self.inputs[0]
    }
}

/// A differentiable operation: its name and its backward rule (see the module docs).
pub(crate) trait Op<T: Float>: Sync + 'static {
    /// The name shown in messages, graph pictures and traces.
    fn name(&self) -> &'static str;
    /// A one-line statement of the derivative, for backward traces.
    fn rule(&self) -> &'static str;
    /// The gradients of the inputs, given `grad_out`.
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2];
    /// The gradients of the inputs of an op recorded with more than two inputs (`cat`). Ops
    /// that never have more than two keep this default.
    fn vjp_many<G: Operand<T>>(&self, cx: &VjpMany<'_, G>) -> Vec<Option<G>> {
        let _ = cx;
        unreachable!(
            "{} was recorded with more than two inputs but has no vjp_many",
            self.name()
        )
    }
}

/// An op that computes its own forward value: every operand type can then apply it
/// ([`Operand::apply`]), so a backward rule may use it like any other operation, and adding it
/// touches its family file only (see the module docs).
pub(crate) trait Primitive<T: Float>: Op<T> {
    /// The forward kernel: the op's value from its input values.
    #[track_caller]
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T>;
}

/// [`Op`] made object-safe: nodes store `&'static dyn DynOp<T>`, one entry per operand type.
pub(crate) trait DynOp<T: Float>: Sync {
    fn name(&self) -> &'static str;
    fn rule(&self) -> &'static str;
    fn vjp_tensor(&self, cx: &Vjp<'_, Tensor<T>>) -> [Option<Tensor<T>>; 2];
    /// The rule on plain numbers: `inputs` (both the same for a unary op), `output`, `grad_out`.
    fn vjp_scalar(
        &self,
        args: Args,
        inputs: [T; 2],
        output: T,
        grad_out: T,
        needs: [bool; 2],
    ) -> [Option<T>; 2];
    fn vjp_var<'t>(&self, cx: &Vjp<'_, Var<'t, T>>) -> [Option<Var<'t, T>>; 2];
    fn vjp_many_tensor(&self, cx: &VjpMany<'_, Tensor<T>>) -> Vec<Option<Tensor<T>>>;
    fn vjp_many_var<'t>(&self, cx: &VjpMany<'_, Var<'t, T>>) -> Vec<Option<Var<'t, T>>>;
}

impl<T: Float, O: Op<T>> DynOp<T> for O {
    fn name(&self) -> &'static str {
        Op::name(self)
    }
    fn rule(&self) -> &'static str {
        Op::rule(self)
    }
    fn vjp_tensor(&self, cx: &Vjp<'_, Tensor<T>>) -> [Option<Tensor<T>>; 2] {
        self.vjp(cx)
    }
    fn vjp_scalar(
        &self,
        args: Args,
        inputs: [T; 2],
        output: T,
        grad_out: T,
        needs: [bool; 2],
    ) -> [Option<T>; 2] {
        scalar_vjp(self, args, inputs, output, grad_out, needs)
    }
    fn vjp_var<'t>(&self, cx: &Vjp<'_, Var<'t, T>>) -> [Option<Var<'t, T>>; 2] {
        self.vjp(cx)
    }
    fn vjp_many_tensor(&self, cx: &VjpMany<'_, Tensor<T>>) -> Vec<Option<Tensor<T>>> {
        self.vjp_many(cx)
    }
    fn vjp_many_var<'t>(&self, cx: &VjpMany<'_, Var<'t, T>>) -> Vec<Option<Var<'t, T>>> {
        self.vjp_many(cx)
    }
}

/// An op's rule on plain numbers, by static dispatch: [`DynOp::vjp_scalar`] and the backward
/// loop's inline rules ([`ScalarRule`]) both compile to this.
#[inline(always)]
fn scalar_vjp<T: Float, O: Op<T>>(
    op: &O,
    args: Args,
    inputs: [T; 2],
    output: T,
    grad_out: T,
    needs: [bool; 2],
) -> [Option<T>; 2] {
    // The context is built here rather than by the caller, so that the whole rule inlines.
    let cx = Vjp {
        args,
        extra: None,
        inputs: [&Scalar(inputs[0]), &Scalar(inputs[1])],
        output: &Scalar(output),
        grad_out: &Scalar(grad_out),
        needs,
    };
    op.vjp(&cx).map(|g| g.map(|Scalar(v)| v))
}

/// Lists the ops of micrograd-style networks, whose rank-0 backward rules the backward loop runs
/// without a dynamic call: each node records which of them made it ([`ScalarRule::of`]), and
/// [`ScalarRule::vjp`] matches on that to compile the op's own `vjp` in place, so every rule is
/// still written once. A dynamic call per node passed its arguments and results through memory
/// and was a third of a scalar network's backward pass.
macro_rules! inline_scalar_rules {
    ($($rule:ident => $op:path),* $(,)?) => {
        /// Which op made a rank-0 node, for the backward loop's inline rules; `Dynamic` for
        /// every other op (its rule is reached through the node's `&dyn DynOp`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum ScalarRule {
            Dynamic,
            $($rule),*
        }

        impl ScalarRule {
            /// The inline rule of op type `O`, if it has one. Folds to a constant.
            #[inline(always)]
            pub(crate) fn of<T: Float, O: Op<T>>() -> ScalarRule {
                use std::any::TypeId;
                $(
                    if TypeId::of::<O>() == TypeId::of::<$op>() {
                        return ScalarRule::$rule;
                    }
                )*
                ScalarRule::Dynamic
            }

            /// The op this inline rule was taken from.
            pub(crate) fn op<T: Float>(self) -> &'static dyn DynOp<T> {
                match self {
                    $(ScalarRule::$rule => &$op,)*
                    ScalarRule::Dynamic => unreachable!("a dynamic rule names no op"),
                }
            }

            /// Whether this is an inline rule rather than `Dynamic`.
            #[inline(always)]
            pub(crate) fn is_inline(self) -> bool {
                self != ScalarRule::Dynamic
            }

            /// Runs this inline rule on plain numbers. `inputs` is called only by rules that
            /// read the inputs' values (add's rule does not). `Dynamic` has no inline rule: its
            /// nodes' rules are called through their `&dyn DynOp`.
            #[inline(always)]
            pub(crate) fn vjp_inline<T: Float>(
                self,
                args: Args,
                inputs: impl FnOnce() -> [T; 2],
                output: T,
                grad_out: T,
                needs: [bool; 2],
            ) -> [Option<T>; 2] {
                match self {
                    $(ScalarRule::$rule => scalar_vjp(&$op, args, inputs(), output, grad_out, needs),)*
                    ScalarRule::Dynamic => unreachable!("a dynamic rule has no inline form"),
                }
            }
        }
    };
}

inline_scalar_rules! {
    Add => arith::AddOp,
    Sub => arith::SubOp,
    Mul => arith::MulOp,
    Div => arith::DivOp,
    Neg => arith::NegOp,
    Relu => unary::Relu,
    Tanh => unary::Tanh,
    Exp => unary::Exp,
}

/// `g·(1 − y²)` as `g − g·y·y`: the operation order of the recorded form, so that tensors, numbers
/// and vars round alike.
fn tanh_slope<T: Float>(g: T, y: T) -> T {
    g - g * y * y
}

/// `g·y·(1 − y)` as `g·y − g·y·y`, in the recorded form's order.
fn sigmoid_slope<T: Float>(g: T, y: T) -> T {
    let gy = g * y;
    gy - gy * y
}

/// Something backward rules compute with: an eager [`Tensor`] or a recorded [`Var`].
pub(crate) trait Operand<T: Float>: Sized + Clone {
    /// Applies primitive `op` to `inputs`: its kernel on tensors, a recorded node on vars. This
    /// one method serves every op declared as a [`Primitive`]; the methods below are the
    /// arithmetic core, which has fused and rank-0 fast paths of its own.
    #[track_caller]
    fn apply<P: Primitive<T>>(op: &'static P, args: Args, extra: Option<Extra>, inputs: &[&Self]) -> Self;
    fn shape(&self) -> Shape;
    /// Runs the rule of a custom op's node ([`crate::autograd`]): eagerly on tensors, recorded
    /// on vars. Custom nodes keep their inputs in the side list, so numbers never get here.
    fn custom_vjp(cx: &VjpMany<'_, Self>) -> Vec<Option<Self>> {
        let _ = cx;
        unreachable!("a custom op's rule on rank-0 fast-path values")
    }
    /// Runs `f` on the underlying value (to build masks that are constants of the rule).
    fn with_value<R>(&self, f: impl FnOnce(&Tensor<T>) -> R) -> R;
    fn sub(&self, other: &Self) -> Self;
    fn mul(&self, other: &Self) -> Self;
    fn div(&self, other: &Self) -> Self;
    fn neg(&self) -> Self;
    /// Multiplies by a constant tensor (a mask or a sign): linear, so its own derivative is
    /// the same constant, and second derivatives through it are exact.
    fn mul_constant(&self, c: Tensor<T>) -> Self;
    /// `self · f(x)` with `f(x)` a constant of the rule (relu's step, abs's sign): like
    /// [`mul_constant`](Operand::mul_constant), without building the constant for numbers and
    /// in one pass for tensors.
    fn mul_constant_of(&self, x: &Self, f: fn(T) -> T) -> Self;
    /// `self − self·y·y`: a gradient times tanh's derivative `1 − y²` at output `y`. Tensors
    /// compute it in one pass (one buffer instead of three); vars record it op by op.
    fn mul_tanh_slope(&self, y: &Self) -> Self;
    /// `self·y − self·y·y`: a gradient times the sigmoid's derivative `y(1 − y)` at output `y`,
    /// in one pass for tensors.
    fn mul_sigmoid_slope(&self, y: &Self) -> Self;
    /// `g·y − y·Σ_axis(g·y)` for this gradient `g`: the softmax's Jacobian-vector product at
    /// output `y`. Tensors compute it in one pass per lane along the last axis (same operations
    /// and sum order, so the same bits); vars record it op by op.
    fn mul_softmax_slope(&self, y: &Self, axis: usize) -> Self {
        let gy = self.mul(y);
        gy.sub(&y.mul(&gy.sum_axis(axis, true)))
    }
    fn scale(&self, c: T) -> Self;
    fn exp(&self) -> Self;
    fn sigmoid(&self) -> Self;
    fn sin(&self) -> Self;
    fn cos(&self) -> Self;
    fn powf(&self, p: T) -> Self;
    fn powi(&self, n: i32) -> Self;
    fn sum_axis(&self, axis: usize, keepdim: bool) -> Self;
    /// This gradient summed down to the shape of `like` (the adjoint of broadcasting `like`
    /// up to this shape). Taken by value: when the shapes agree, which is most of the time,
    /// it is returned as it is, without copying its shape or touching its reference count.
    fn sum_to_like(self, like: &Self) -> Self;
    fn broadcast_to(&self, shape: &[usize]) -> Self;
    fn reshape(&self, shape: &[usize]) -> Self;
    fn transpose(&self, a0: usize, a1: usize) -> Self;
    fn narrow(&self, axis: usize, start: usize, len: usize) -> Self;
    fn unnarrow(&self, full: &[usize], axis: usize, start: usize) -> Self;
    /// `out[i] = self[i, index[i]]` (see [`Var::pick`]).
    fn pick(&self, index: &Self) -> Self;
    /// The adjoint of `pick`: `self[i]` placed at `(i, index[i])` in zeros `[N, classes]`.
    fn unpick(&self, index: &Self, classes: usize) -> Self;
    /// `self @ other` over the last two axes.
    fn matmul(&self, other: &Self) -> Self;
    /// `self @ otherᵀ` over the last two axes.
    fn matmul_nt(&self, other: &Self) -> Self;
    /// `selfᵀ @ other` over the last two axes.
    fn matmul_tn(&self, other: &Self) -> Self;
}

impl<T: Float> Operand<T> for Tensor<T> {
    #[track_caller]
    fn apply<P: Primitive<T>>(op: &'static P, args: Args, extra: Option<Extra>, inputs: &[&Self]) -> Self {
        op.forward(&Fwd {
            args,
            extra: extra.as_ref(),
            inputs,
        })
    }
    fn shape(&self) -> Shape {
        Shape::from_slice(Tensor::shape(self))
    }
    fn custom_vjp(cx: &VjpMany<'_, Self>) -> Vec<Option<Self>> {
        crate::autograd::vjp_tensors(cx)
    }
    fn with_value<R>(&self, f: impl FnOnce(&Tensor<T>) -> R) -> R {
        f(self)
    }
    fn sub(&self, other: &Self) -> Self {
        Tensor::sub(self, other)
    }
    fn mul(&self, other: &Self) -> Self {
        Tensor::mul(self, other)
    }
    fn div(&self, other: &Self) -> Self {
        Tensor::div(self, other)
    }
    fn neg(&self) -> Self {
        self.map(|x| -x)
    }
    fn mul_constant(&self, c: Tensor<T>) -> Self {
        Tensor::mul(self, &c)
    }
    fn mul_constant_of(&self, x: &Self, f: fn(T) -> T) -> Self {
        self.zip_map("mul", x, |g, x| g * f(x))
    }
    fn mul_tanh_slope(&self, y: &Self) -> Self {
        self.zip_map("tanh backward", y, tanh_slope)
    }
    fn mul_sigmoid_slope(&self, y: &Self) -> Self {
        self.zip_map("sigmoid backward", y, sigmoid_slope)
    }
    fn mul_softmax_slope(&self, y: &Self, axis: usize) -> Self {
        y.softmax_backward(self, axis)
    }
    fn scale(&self, c: T) -> Self {
        self.map(|x| x * c)
    }
    fn exp(&self) -> Self {
        Tensor::exp(self)
    }
    fn sigmoid(&self) -> Self {
        Tensor::sigmoid(self)
    }
    fn sin(&self) -> Self {
        Tensor::sin(self)
    }
    fn cos(&self) -> Self {
        Tensor::cos(self)
    }
    fn powf(&self, p: T) -> Self {
        Tensor::powf(self, p)
    }
    fn powi(&self, n: i32) -> Self {
        Tensor::powi(self, n)
    }
    fn sum_axis(&self, axis: usize, keepdim: bool) -> Self {
        Tensor::sum_axis(self, axis, keepdim)
    }
    fn sum_to_like(self, like: &Self) -> Self {
        if self.shape() == like.shape() {
            return self;
        }
        Tensor::sum_to(&self, like.shape())
    }
    fn broadcast_to(&self, shape: &[usize]) -> Self {
        Tensor::broadcast_to(self, shape)
    }
    fn reshape(&self, shape: &[usize]) -> Self {
        Tensor::reshape(self, shape)
    }
    fn transpose(&self, a0: usize, a1: usize) -> Self {
        Tensor::transpose(self, a0, a1)
    }
    fn narrow(&self, axis: usize, start: usize, len: usize) -> Self {
        Tensor::narrow(self, axis, start, len)
    }
    fn unnarrow(&self, full: &[usize], axis: usize, start: usize) -> Self {
        Tensor::unnarrow(self, full, axis, start)
    }
    fn pick(&self, index: &Self) -> Self {
        Tensor::pick(self, index)
    }
    fn unpick(&self, index: &Self, classes: usize) -> Self {
        Tensor::unpick(self, index, classes)
    }
    fn matmul(&self, other: &Self) -> Self {
        Tensor::matmul(self, other)
    }
    fn matmul_nt(&self, other: &Self) -> Self {
        crate::tensor::matmul_transposed("matmul backward", self, false, other, true)
    }
    fn matmul_tn(&self, other: &Self) -> Self {
        crate::tensor::matmul_transposed("matmul backward", self, true, other, false)
    }
}

/// A rank-0 value: the backward pass's fast path for micrograd-style scalar graphs, where every
/// input, output and gradient has shape `[]`. No shapes to compare, nothing to allocate.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scalar<T>(pub(crate) T);

impl<T: Float> Scalar<T> {
    /// Shape arguments of a rank-0 value can only be `[]`.
    fn same(self, shape: &[usize]) -> Self {
        debug_assert!(shape.is_empty(), "scalar fast path given shape {shape:?}");
        self
    }
}

impl<T: Float> Operand<T> for Scalar<T> {
    #[track_caller]
    fn apply<P: Primitive<T>>(op: &'static P, args: Args, extra: Option<Extra>, inputs: &[&Self]) -> Self {
        // Only rank-0 graphs take this path; their rules' intermediate values are rank 0 too.
        let tensors: SmallVec<[Tensor<T>; 4]> = inputs.iter().map(|x| Tensor::scalar(x.0)).collect();
        let refs: SmallVec<[&Tensor<T>; 4]> = tensors.iter().collect();
        let out = op.forward(&Fwd {
            args,
            extra: extra.as_ref(),
            inputs: &refs,
        });
        match out.as_rank0() {
            Some(v) => Scalar(v),
            None => unreachable!("{} of rank-0 values gave shape {:?}", op.name(), out.shape()),
        }
    }
    fn shape(&self) -> Shape {
        Shape::new()
    }
    fn with_value<R>(&self, f: impl FnOnce(&Tensor<T>) -> R) -> R {
        f(&Tensor::scalar(self.0))
    }
    fn sub(&self, other: &Self) -> Self {
        Scalar(self.0 - other.0)
    }
    fn mul(&self, other: &Self) -> Self {
        Scalar(self.0 * other.0)
    }
    fn div(&self, other: &Self) -> Self {
        Scalar(self.0 / other.0)
    }
    fn neg(&self) -> Self {
        Scalar(-self.0)
    }
    fn mul_constant(&self, c: Tensor<T>) -> Self {
        Scalar(self.0 * c.item())
    }
    fn mul_constant_of(&self, x: &Self, f: fn(T) -> T) -> Self {
        Scalar(self.0 * f(x.0))
    }
    fn mul_tanh_slope(&self, y: &Self) -> Self {
        Scalar(tanh_slope(self.0, y.0))
    }
    fn mul_sigmoid_slope(&self, y: &Self) -> Self {
        Scalar(sigmoid_slope(self.0, y.0))
    }
    fn scale(&self, c: T) -> Self {
        Scalar(self.0 * c)
    }
    fn exp(&self) -> Self {
        Scalar(self.0.exp())
    }
    fn sigmoid(&self) -> Self {
        Scalar(crate::tensor::elementwise::sigmoid(self.0))
    }
    fn sin(&self) -> Self {
        Scalar(self.0.sin())
    }
    fn cos(&self) -> Self {
        Scalar(self.0.cos())
    }
    fn powf(&self, p: T) -> Self {
        Scalar(self.0.powf(p))
    }
    fn powi(&self, n: i32) -> Self {
        Scalar(self.0.powi(n))
    }
    fn sum_axis(&self, _axis: usize, _keepdim: bool) -> Self {
        unreachable!("sum_axis of a rank-0 value is rejected when recorded")
    }
    fn sum_to_like(self, _like: &Self) -> Self {
        self
    }
    fn broadcast_to(&self, shape: &[usize]) -> Self {
        self.same(shape)
    }
    fn reshape(&self, shape: &[usize]) -> Self {
        self.same(shape)
    }
    fn transpose(&self, _a0: usize, _a1: usize) -> Self {
        unreachable!("transpose of a rank-0 value is rejected when recorded")
    }
    fn narrow(&self, _axis: usize, _start: usize, _len: usize) -> Self {
        unreachable!("narrow of a rank-0 value is rejected when recorded")
    }
    fn unnarrow(&self, _full: &[usize], _axis: usize, _start: usize) -> Self {
        unreachable!("unnarrow of a rank-0 value is rejected when recorded")
    }
    fn pick(&self, _index: &Self) -> Self {
        unreachable!("pick of a rank-0 value is rejected when recorded")
    }
    fn unpick(&self, _index: &Self, _classes: usize) -> Self {
        unreachable!("unpick of a rank-0 value is rejected when recorded")
    }
    fn matmul(&self, _other: &Self) -> Self {
        unreachable!("matmul of rank-0 values is rejected when recorded")
    }
    fn matmul_nt(&self, _other: &Self) -> Self {
        unreachable!("matmul of rank-0 values is rejected when recorded")
    }
    fn matmul_tn(&self, _other: &Self) -> Self {
        unreachable!("matmul of rank-0 values is rejected when recorded")
    }
}

impl<'t, T: Float> Operand<T> for Var<'t, T> {
    #[track_caller]
    fn apply<P: Primitive<T>>(op: &'static P, args: Args, extra: Option<Extra>, inputs: &[&Self]) -> Self {
        let vars: SmallVec<[Var<'t, T>; 4]> = inputs.iter().map(|&&v| v).collect();
        Var::record_op(op, args, extra, &vars)
    }
    fn shape(&self) -> Shape {
        Shape::from_slice(self.tape.node_value(self.id).shape())
    }
    fn custom_vjp(cx: &VjpMany<'_, Self>) -> Vec<Option<Self>> {
        crate::autograd::vjp_vars(cx)
    }
    fn with_value<R>(&self, f: impl FnOnce(&Tensor<T>) -> R) -> R {
        f(&self.tape.node_value(self.id))
    }
    #[track_caller]
    fn sub(&self, other: &Self) -> Self {
        *self - *other
    }
    #[track_caller]
    fn mul(&self, other: &Self) -> Self {
        *self * *other
    }
    #[track_caller]
    fn div(&self, other: &Self) -> Self {
        *self / *other
    }
    #[track_caller]
    fn neg(&self) -> Self {
        -*self
    }
    #[track_caller]
    fn mul_constant(&self, c: Tensor<T>) -> Self {
        *self * self.tape.constant(c)
    }
    #[track_caller]
    fn mul_constant_of(&self, x: &Self, f: fn(T) -> T) -> Self {
        self.mul_constant(x.with_value(|x| x.map(f)))
    }
    #[track_caller]
    fn mul_tanh_slope(&self, y: &Self) -> Self {
        *self - *self * *y * *y
    }
    #[track_caller]
    fn mul_sigmoid_slope(&self, y: &Self) -> Self {
        let gy = *self * *y;
        gy - gy * *y
    }
    #[track_caller]
    fn scale(&self, c: T) -> Self {
        *self * c
    }
    #[track_caller]
    fn exp(&self) -> Self {
        Var::exp(*self)
    }
    #[track_caller]
    fn sigmoid(&self) -> Self {
        Var::sigmoid(*self)
    }
    #[track_caller]
    fn sin(&self) -> Self {
        Var::sin(*self)
    }
    #[track_caller]
    fn cos(&self) -> Self {
        Var::cos(*self)
    }
    #[track_caller]
    fn powf(&self, p: T) -> Self {
        Var::powf(*self, p)
    }
    #[track_caller]
    fn powi(&self, n: i32) -> Self {
        Var::powi(*self, n)
    }
    #[track_caller]
    fn sum_axis(&self, axis: usize, keepdim: bool) -> Self {
        Var::sum_axis(*self, axis, keepdim)
    }
    #[track_caller]
    fn sum_to_like(self, like: &Self) -> Self {
        Var::sum_to(self, &like.shape())
    }
    #[track_caller]
    fn broadcast_to(&self, shape: &[usize]) -> Self {
        Var::broadcast_to(*self, shape)
    }
    #[track_caller]
    fn reshape(&self, shape: &[usize]) -> Self {
        Var::reshape(*self, shape)
    }
    #[track_caller]
    fn transpose(&self, a0: usize, a1: usize) -> Self {
        Var::transpose(*self, a0, a1)
    }
    #[track_caller]
    fn narrow(&self, axis: usize, start: usize, len: usize) -> Self {
        Var::narrow(*self, axis, start, len)
    }
    #[track_caller]
    fn unnarrow(&self, full: &[usize], axis: usize, start: usize) -> Self {
        Var::unnarrow(*self, full, axis, start)
    }
    #[track_caller]
    fn pick(&self, index: &Self) -> Self {
        Var::pick_by(*self, *index)
    }
    #[track_caller]
    fn unpick(&self, index: &Self, classes: usize) -> Self {
        Var::unpick(*self, *index, classes)
    }
    #[track_caller]
    fn matmul(&self, other: &Self) -> Self {
        Var::matmul(*self, other)
    }
    #[track_caller]
    fn matmul_nt(&self, other: &Self) -> Self {
        Var::matmul_t(*self, other)
    }
    #[track_caller]
    fn matmul_tn(&self, other: &Self) -> Self {
        let r = self.shape().len();
        Var::transpose(*self, r - 2, r - 1).matmul(other)
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Applies primitive `op` to `inputs` (at least one, all on one tape): computes the value
    /// with the op's kernel and records the node. Public ops check their arguments first, with
    /// messages in the user's terms, then call this.
    #[track_caller]
    pub(crate) fn record_op<P: Primitive<T>>(
        op: &'static P,
        args: Args,
        extra: Option<Extra>,
        inputs: &[Var<'t, T>],
    ) -> Var<'t, T> {
        let first = inputs[0];
        for &x in &inputs[1..] {
            first.check_same_tape(x, op.name());
        }
        let value = {
            let values: SmallVec<[crate::tape::ValueRef<'t, T>; 4]> =
                inputs.iter().map(|x| x.value_ref()).collect();
            let refs: SmallVec<[&Tensor<T>; 4]> = values.iter().map(|v| &**v).collect();
            op.forward(&Fwd {
                args,
                extra: extra.as_ref(),
                inputs: &refs,
            })
        };
        let ids: SmallVec<[u32; 4]> = inputs.iter().map(|x| x.id).collect();
        first.tape.record_with(op, args, extra, &ids, value)
    }

    /// The node's value, borrowed from the tape. Public ops compute their result from it in their
    /// own body (not in a closure, which would hide the caller's line from `#[track_caller]`), and
    /// must drop the borrow before recording.
    pub(crate) fn value_ref(&self) -> crate::tape::ValueRef<'t, T> {
        self.tape.node_value(self.id)
    }

    /// Records a one-input op whose forward result is `value`.
    #[track_caller]
    pub(crate) fn record_unary(self, op: &'static dyn DynOp<T>, args: Args, value: Tensor<T>) -> Var<'t, T> {
        self.tape.record(op, args, &[self.id], value)
    }

    /// Records a two-input op whose forward result is `value`. The caller has already checked
    /// (with `check_same_tape`, before computing `value`) that both vars share a tape.
    #[track_caller]
    pub(crate) fn record_binary(
        self,
        other: Var<'t, T>,
        op: &'static dyn DynOp<T>,
        args: Args,
        value: Tensor<T>,
    ) -> Var<'t, T> {
        debug_assert!(std::ptr::eq(self.tape, other.tape));
        self.tape.record(op, args, &[self.id, other.id], value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tape;

    /// Every op with an inline rank-0 rule: the rule's name must match the op's, and its
    /// gradients must equal the dynamic call's for every combination of `needs`.
    #[test]
    fn inline_scalar_rules_match_the_dynamic_rules() {
        fn check<O: Op<f64>>(op: &'static O, expected: ScalarRule) {
            let rule = ScalarRule::of::<f64, O>();
            assert_eq!(rule, expected, "{}", op.name());
            assert_eq!(
                format!("{rule:?}").to_lowercase(),
                op.name(),
                "rule and op disagree"
            );
            for (x, y) in [(0.75, -1.5), (-2.0, 0.5), (3.0, 3.0)] {
                let out = x * y; // any value: rules that read the output read it as given
                for needs in [[true, true], [true, false], [false, true], [false, false]] {
                    assert_eq!(
                        rule.vjp_inline(Args::None, || [x, y], out, 0.3, needs),
                        op.vjp_scalar(Args::None, [x, y], out, 0.3, needs),
                        "{} at ({x}, {y}), needs {needs:?}",
                        op.name()
                    );
                }
            }
        }
        check(&arith::AddOp, ScalarRule::Add);
        check(&arith::SubOp, ScalarRule::Sub);
        check(&arith::MulOp, ScalarRule::Mul);
        check(&arith::DivOp, ScalarRule::Div);
        check(&arith::NegOp, ScalarRule::Neg);
        check(&unary::Relu, ScalarRule::Relu);
        check(&unary::Tanh, ScalarRule::Tanh);
        check(&unary::Exp, ScalarRule::Exp);
        assert_eq!(ScalarRule::of::<f64, unary::Sin>(), ScalarRule::Dynamic);
    }

    /// The rank-0 backward path (inline rules, `needs` taken at record time, a unary node naming
    /// its input twice) gives the same gradients as the same expression on `[1]` tensors, which
    /// takes the tensor path.
    #[test]
    fn rank0_backward_matches_the_tensor_path() {
        fn expression<'t>(v: [Var<'t, f64>; 3], c: Var<'t, f64>) -> Var<'t, f64> {
            let [a, b, d] = v;
            let h = (a * b + c).relu() - (a / d).tanh() + (-b).exp() * a;
            h * h + d.sin() * c - (b * 0.5).relu()
        }
        let values = [0.7, -1.2, 1.9];
        let scalar = {
            let tape = Tape::<f64>::new();
            let v = values.map(|x| tape.var(x));
            let grads = expression(v, tape.constant(0.4)).backward();
            v.map(|x| grads[x].item())
        };
        let tensor = {
            let tape = Tape::<f64>::new();
            let v = values.map(|x| tape.var(Tensor::from_vec(vec![x], &[1])));
            let grads = expression(v, tape.constant(Tensor::from_vec(vec![0.4], &[1])))
                .sum()
                .backward();
            v.map(|x| grads[x].item())
        };
        assert_eq!(scalar, tensor);
    }
}
