//! Jacobians, Hessians and their products for whole functions, as PyTorch's
//! `torch.autograd.functional`.
//!
//! Each function takes `f`, a function of one var on a tape it is handed
//! (`for<'t> Fn(&'t Tape<T>, Var<'t, T>) -> Var<'t, T>`), and the point `x` as a plain tensor;
//! it records `f` on a fresh tape of its own and returns plain tensors:
//!
//! | function | returns | shape of the result | cost |
//! |---|---|---|---|
//! | [`jacobian`] | ∂f/∂x | f(x)'s shape, then x's | one recording, one reverse pass per output element |
//! | [`hessian`] | ∂²f/∂x² (f scalar) | x's shape twice | one recording, one recorded gradient, one reverse pass per input element |
//! | [`vjp`] | (f(x), uᵀJ) | (f(x)'s, x's) | one recording, one reverse pass |
//! | [`jvp`] | (f(x), J v) | (f(x)'s, f(x)'s) | one recording, one recorded reverse pass, one reverse pass (double backward) |
//! | [`hvp`] | (f(x), H v) (f scalar) | (scalar, x's) | one recording, one recorded gradient, one reverse pass |
//!
//! The `_many` forms ([`jacobian_many`], [`hessian_many`], [`jvp_many`], [`vjp_many`],
//! [`hvp_many`]) take a function of several vars (`Fn(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T>`)
//! and one tensor per input; PyTorch's tuples become `Vec`s (a `Vec<Vec<_>>` of blocks for the
//! Hessian). As in PyTorch (`strict=False`), an input the output does not depend on has a zero
//! derivative, not an error.
//!
//! The Jacobian and the Hessian record `f` once and run one eager reverse pass per row on that
//! one recording ([`Var::backward_with_seed`] with one-hot seeds does not change the tape); the
//! Hessian's rows are reverse passes through the recorded gradient ([`Var::grad`]).
//! tapegrad has no forward mode: [`jvp`] is two reverse passes (see its documentation), so prefer
//! [`vjp`] when either will do.
//!
//! ```
//! use tapegrad::{functional, Tensor, Var};
//! // f(x) = (x₀ x₁, x₀ + x₁, x₁²): a 3 × 2 Jacobian.
//! let f = functional::function(|_tape, x| {
//!     let (a, b) = (x.narrow(0, 0, 1), x.narrow(0, 1, 1));
//!     Var::cat(&[a * b, a + b, b * b], 0)
//! });
//! let x = Tensor::from_vec(vec![2.0, 3.0], &[2]);
//! let j = functional::jacobian(&f, &x);
//! assert_eq!(j.shape(), &[3, 2]);
//! assert_eq!(j.to_vec(), vec![3.0, 2.0, 1.0, 1.0, 0.0, 6.0]);
//! ```
//!
//! # Storing the function first
//!
//! Written inline in the call, a closure gets the signature these functions need. Stored in a
//! `let` first, Rust infers one particular lifetime for it and the call fails with "one type is
//! more general than the other" (or "implementation of `FnOnce` is not general enough"): wrap
//! the closure in [`function`] (or [`function_many`]) as above, or write a `fn`.

use crate::{Float, Tape, Tensor, Var};

/// `f` itself, typed as the functions of this module need it (for a tape of any lifetime), so
/// that a closure can be stored in a `let` and used several times (see the module docs).
///
/// ```
/// use tapegrad::{functional, Tensor};
/// let f = functional::function(|_tape, x| x.tanh().sum());
/// let x = Tensor::from_vec(vec![0.0, 1.0], &[2]);
/// let g = functional::vjp(&f, &x, &Tensor::scalar(1.0)).1;
/// let h = functional::hessian(&f, &x);
/// assert_eq!((g.shape(), h.shape()), (&[2][..], &[2, 2][..]));
/// ```
pub fn function<T: Float, F>(f: F) -> F
where
    F: for<'t> Fn(&'t Tape<T>, Var<'t, T>) -> Var<'t, T>,
{
    f
}

/// [`function`] for functions of several inputs (the `_many` forms).
///
/// ```
/// use tapegrad::{functional, Tensor};
/// let f = functional::function_many(|_tape, xs| (xs[0] * xs[1]).sum());
/// let xs = [Tensor::from_vec(vec![1.0, 2.0], &[2]), Tensor::from_vec(vec![3.0, 4.0], &[2])];
/// let blocks = functional::hessian_many(&f, &xs);
/// assert_eq!(blocks[0][1].to_vec(), vec![1.0, 0.0, 0.0, 1.0]);
/// ```
pub fn function_many<T: Float, F>(f: F) -> F
where
    F: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T>,
{
    f
}

/// The Jacobian of `f` at `x`: `J[i..., j...] = ∂f(x)[i...] / ∂x[j...]`, of shape f(x)'s shape
/// followed by x's (PyTorch's `torch.autograd.functional.jacobian`). A scalar output gives the
/// gradient (x's shape); a scalar input gives the derivative (f(x)'s shape).
///
/// `f` is recorded once; each row is one reverse pass through that recording with a one-hot
/// seed.
///
/// ```
/// use tapegrad::{functional, Tensor};
/// // Softmax: J = diag(s) - s sᵀ.
/// let x = Tensor::from_vec(vec![0.0, 0.0], &[2]);
/// let j = functional::jacobian(|_tape, x| x.softmax(0), &x);
/// assert_eq!(j.shape(), &[2, 2]);
/// assert_eq!(j.to_vec(), vec![0.25, -0.25, -0.25, 0.25]);
/// ```
#[track_caller]
pub fn jacobian<T: Float, F>(f: F, x: &Tensor<T>) -> Tensor<T>
where
    F: for<'t> Fn(&'t Tape<T>, Var<'t, T>) -> Var<'t, T>,
{
    let tape = Tape::new();
    let x = tape.var(x.clone());
    let y = f(&tape, x);
    jacobian_rows(y, &[x]).pop().expect("one input")
}

/// The Jacobians of `f` with respect to each input: element `j` is `∂f/∂xs[j]`, of shape f's
/// output shape followed by `xs[j]`'s (PyTorch returns the same tensors as a tuple).
///
/// ```
/// use tapegrad::{functional, Tensor};
/// let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
/// let b = Tensor::from_vec(vec![1.0, -1.0], &[2]);
/// // f(A, b) = A b
/// let js = functional::jacobian_many(|_tape, xs| xs[0].matmul(&xs[1].reshape(&[2, 1])).reshape(&[2]), &[a, b]);
/// assert_eq!(js[0].shape(), &[2, 2, 2]);                 // ∂(Ab)_i/∂A_jk = δ_ij b_k
/// assert_eq!(js[0].to_vec(), vec![1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0, -1.0]);
/// assert_eq!(js[1].to_vec(), vec![1.0, 2.0, 3.0, 4.0]); // ∂(Ab)/∂b = A
/// ```
#[track_caller]
pub fn jacobian_many<T: Float, F>(f: F, xs: &[Tensor<T>]) -> Vec<Tensor<T>>
where
    F: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T>,
{
    let tape = Tape::new();
    let vars = inputs(&tape, xs);
    let y = f(&tape, &vars);
    jacobian_rows(y, &vars)
}

/// The Hessian of a scalar-valued `f` at `x`: `H[i..., j...] = ∂²f / ∂x[i...] ∂x[j...]`, of
/// shape x's shape twice (PyTorch's `torch.autograd.functional.hessian`).
///
/// `f` is recorded once and its gradient recorded once ([`Var::grad`]); each row of the Hessian
/// is then one reverse pass through the recorded gradient.
///
/// # Panics
/// If `f`'s output has more than one element.
///
/// ```
/// use tapegrad::{functional, Tape, Tensor, Var};
/// // Rosenbrock's function at its minimum (1, 1): H = [[802, -400], [-400, 200]].
/// fn rosenbrock<'t>(_tape: &'t Tape<f64>, x: Var<'t, f64>) -> Var<'t, f64> {
///     let (a, b) = (x.narrow(0, 0, 1), x.narrow(0, 1, 1));
///     ((1.0 - a).square() + 100.0 * (b - a.square()).square()).sum()
/// }
/// let h = functional::hessian(rosenbrock, &Tensor::from_vec(vec![1.0, 1.0], &[2]));
/// assert_eq!(h.to_vec(), vec![802.0, -400.0, -400.0, 200.0]);
/// ```
#[track_caller]
pub fn hessian<T: Float, F>(f: F, x: &Tensor<T>) -> Tensor<T>
where
    F: for<'t> Fn(&'t Tape<T>, Var<'t, T>) -> Var<'t, T>,
{
    let tape = Tape::new();
    let x = tape.var(x.clone());
    let y = f(&tape, x);
    check_scalar("hessian", &y);
    let g = y.grad(&[x])[0];
    jacobian_rows(g, &[x]).pop().expect("one input")
}

/// The Hessian of a scalar-valued `f` of several inputs, in blocks: `blocks[i][j]` is
/// `∂²f / ∂xs[i] ∂xs[j]`, of shape `xs[i]`'s followed by `xs[j]`'s (PyTorch's tuple of tuples).
///
/// # Panics
/// If `f`'s output has more than one element.
///
/// ```
/// use tapegrad::{functional, Tensor};
/// // f(x, y) = Σ x² y: ∂²f/∂x² = diag(2y), ∂²f/∂x∂y = diag(2x), ∂²f/∂y² = 0.
/// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
/// let y = Tensor::from_vec(vec![3.0, 4.0], &[2]);
/// let h = functional::hessian_many(|_tape, v| (v[0].square() * v[1]).sum(), &[x, y]);
/// assert_eq!(h[0][0].to_vec(), vec![6.0, 0.0, 0.0, 8.0]);
/// assert_eq!(h[0][1].to_vec(), vec![2.0, 0.0, 0.0, 4.0]);
/// assert_eq!(h[1][0].to_vec(), h[0][1].to_vec());
/// assert_eq!(h[1][1].to_vec(), vec![0.0; 4]);
/// ```
#[track_caller]
pub fn hessian_many<T: Float, F>(f: F, xs: &[Tensor<T>]) -> Vec<Vec<Tensor<T>>>
where
    F: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T>,
{
    let tape = Tape::new();
    let vars = inputs(&tape, xs);
    let y = f(&tape, &vars);
    check_scalar("hessian_many", &y);
    y.grad(&vars)
        .into_iter()
        .map(|g| jacobian_rows(g, &vars))
        .collect()
}

/// The vector-Jacobian product: `(f(x), uᵀJ)`, where `u` has f(x)'s shape and the product x's
/// (PyTorch's `torch.autograd.functional.vjp`). One reverse pass.
///
/// # Panics
/// If `u`'s shape is not f(x)'s.
///
/// ```
/// use tapegrad::{functional, Tensor};
/// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
/// let u = Tensor::from_vec(vec![1.0, 0.0, -1.0], &[3]);
/// let (y, g) = functional::vjp(|_tape, x| x.square(), &x, &u);
/// assert_eq!(y.to_vec(), vec![1.0, 4.0, 9.0]);
/// assert_eq!(g.to_vec(), vec![2.0, 0.0, -6.0]);   // uᵀ diag(2x)
/// ```
#[track_caller]
pub fn vjp<T: Float, F>(f: F, x: &Tensor<T>, u: &Tensor<T>) -> (Tensor<T>, Tensor<T>)
where
    F: for<'t> Fn(&'t Tape<T>, Var<'t, T>) -> Var<'t, T>,
{
    let tape = Tape::new();
    let x = tape.var(x.clone());
    let y = f(&tape, x);
    check_shape("vjp", "u", u.shape(), "f(x)", &y.shape());
    let g = reverse(y, u.clone(), &[x]).pop().expect("one input");
    (y.value(), g)
}

/// [`vjp`] for a function of several inputs: `(f(xs), [uᵀ ∂f/∂xs[j] for each j])`.
///
/// # Panics
/// If `u`'s shape is not f's output shape.
///
/// ```
/// use tapegrad::{functional, Tensor};
/// let a = Tensor::from_vec(vec![1.0, 2.0], &[2]);
/// let b = Tensor::from_vec(vec![3.0, 4.0], &[2]);
/// let u = Tensor::from_vec(vec![1.0, 10.0], &[2]);
/// let (y, gs) = functional::vjp_many(|_tape, xs| xs[0] * xs[1], &[a, b], &u);
/// assert_eq!(y.to_vec(), vec![3.0, 8.0]);
/// assert_eq!((gs[0].to_vec(), gs[1].to_vec()), (vec![3.0, 40.0], vec![1.0, 20.0]));
/// ```
#[track_caller]
pub fn vjp_many<T: Float, F>(f: F, xs: &[Tensor<T>], u: &Tensor<T>) -> (Tensor<T>, Vec<Tensor<T>>)
where
    F: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T>,
{
    let tape = Tape::new();
    let vars = inputs(&tape, xs);
    let y = f(&tape, &vars);
    check_shape("vjp_many", "u", u.shape(), "f(xs)", &y.shape());
    let gs = reverse(y, u.clone(), &vars);
    (y.value(), gs)
}

/// The Jacobian-vector product: `(f(x), J v)`, where `v` has x's shape and the product f(x)'s
/// (PyTorch's `torch.autograd.functional.jvp`).
///
/// tapegrad has no forward mode; like PyTorch's `jvp`, this uses the *double-backward*
/// construction: with a dummy cotangent `u` (zeros of f(x)'s shape, requiring a gradient), the
/// recorded vector-Jacobian product `g(u) = Jᵀu` ([`Var::grad_with_seed`]) is linear in `u`, and
/// one more reverse pass of `⟨g(u), v⟩` with respect to `u` gives `J v`. It costs one recording
/// of `f`, one recorded reverse pass and one reverse pass through both, so it is slower than a
/// [`vjp`] (about two, `benches/functional.rs`); `f` must be twice differentiable by the engine
/// (every op's rule recorded on vars), so a custom op in `f` needs a [`CustomOp`](crate::autograd::CustomOp)
/// rule: a [`FirstOrderOp`](crate::autograd::FirstOrderOp) panics here, naming itself.
///
/// # Panics
/// If `v`'s shape is not x's, or `f` holds a first-order custom op.
///
/// ```
/// use tapegrad::{functional, Tensor, Var};
/// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
/// let v = Tensor::from_vec(vec![1.0, 1.0], &[2]);
/// // f(x) = (x₀ x₁, x₀ + 2 x₁, x₁³): J v = (x₁ + x₀, 3, 3x₁²) at v = (1, 1).
/// let (y, jv) = functional::jvp(
///     |_tape, x| {
///         let (a, b) = (x.narrow(0, 0, 1), x.narrow(0, 1, 1));
///         Var::cat(&[a * b, a + 2.0 * b, b.powi(3)], 0)
///     },
///     &x,
///     &v,
/// );
/// assert_eq!(y.to_vec(), vec![2.0, 5.0, 8.0]);
/// assert_eq!(jv.to_vec(), vec![3.0, 3.0, 12.0]);
/// ```
#[track_caller]
pub fn jvp<T: Float, F>(f: F, x: &Tensor<T>, v: &Tensor<T>) -> (Tensor<T>, Tensor<T>)
where
    F: for<'t> Fn(&'t Tape<T>, Var<'t, T>) -> Var<'t, T>,
{
    check_shape("jvp", "v", v.shape(), "x", x.shape());
    let tape = Tape::new();
    let x = tape.var(x.clone());
    let y = f(&tape, x);
    let u = tape.var(Tensor::zeros(&y.shape()));
    let g = y.grad_with_seed(u, &[x]);
    let jv = directional(&tape, &g, std::slice::from_ref(v), &[u])
        .pop()
        .expect("one cotangent");
    (y.value(), jv)
}

/// [`jvp`] for a function of several inputs, one tangent per input: `(f(xs), Σ_j ∂f/∂xs[j] ·
/// vs[j])`, of f's output shape (double backward, as [`jvp`]).
///
/// # Panics
/// If `vs` and `xs` differ in length, or a tangent's shape is not its input's.
///
/// ```
/// use tapegrad::{functional, Tensor};
/// let a = Tensor::from_vec(vec![1.0, 2.0], &[2]);
/// let b = Tensor::from_vec(vec![3.0, 4.0], &[2]);
/// let da = Tensor::from_vec(vec![1.0, 0.0], &[2]);
/// let db = Tensor::from_vec(vec![0.0, 1.0], &[2]);
/// // d(a ⊙ b) = da ⊙ b + a ⊙ db
/// let (y, t) = functional::jvp_many(|_tape, xs| xs[0] * xs[1], &[a, b], &[da, db]);
/// assert_eq!((y.to_vec(), t.to_vec()), (vec![3.0, 8.0], vec![3.0, 2.0]));
/// ```
#[track_caller]
pub fn jvp_many<T: Float, F>(f: F, xs: &[Tensor<T>], vs: &[Tensor<T>]) -> (Tensor<T>, Tensor<T>)
where
    F: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T>,
{
    check_tangents("jvp_many", xs, vs);
    let tape = Tape::new();
    let vars = inputs(&tape, xs);
    let y = f(&tape, &vars);
    let u = tape.var(Tensor::zeros(&y.shape()));
    let gs = y.grad_with_seed(u, &vars);
    let jv = directional(&tape, &gs, vs, &[u]).pop().expect("one cotangent");
    (y.value(), jv)
}

/// The Hessian-vector product of a scalar-valued `f`: `(f(x), H v)`, where `v` and the product
/// have x's shape (PyTorch's `torch.autograd.functional.hvp`). The gradient is recorded once
/// ([`Var::grad`]) and `⟨∇f, v⟩` differentiated once more: the Hessian itself is never formed.
///
/// # Panics
/// If `f`'s output has more than one element, or `v`'s shape is not x's.
///
/// ```
/// use tapegrad::{functional, Tensor};
/// // f = Σ x³: H = diag(6x).
/// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
/// let v = Tensor::from_vec(vec![1.0, 0.5], &[2]);
/// let (y, hv) = functional::hvp(|_tape, x| x.powi(3).sum(), &x, &v);
/// assert_eq!((y.item(), hv.to_vec()), (9.0, vec![6.0, 6.0]));
/// ```
#[track_caller]
pub fn hvp<T: Float, F>(f: F, x: &Tensor<T>, v: &Tensor<T>) -> (Tensor<T>, Tensor<T>)
where
    F: for<'t> Fn(&'t Tape<T>, Var<'t, T>) -> Var<'t, T>,
{
    check_shape("hvp", "v", v.shape(), "x", x.shape());
    let tape = Tape::new();
    let x = tape.var(x.clone());
    let y = f(&tape, x);
    check_scalar("hvp", &y);
    let g = y.grad(&[x]);
    let hv = directional(&tape, &g, std::slice::from_ref(v), &[x])
        .pop()
        .expect("one input");
    (y.value(), hv)
}

/// [`hvp`] for a scalar-valued function of several inputs, one direction per input:
/// `(f(xs), [Σ_j ∂²f/∂xs[i]∂xs[j] · vs[j] for each i])`, each of `xs[i]`'s shape.
///
/// # Panics
/// If `f`'s output has more than one element, `vs` and `xs` differ in length, or a direction's
/// shape is not its input's.
///
/// ```
/// use tapegrad::{functional, Tensor};
/// // f(x, y) = Σ x y: H = [[0, I], [I, 0]], so H (vx, vy) = (vy, vx).
/// let (x, y) = (Tensor::from_vec(vec![1.0, 2.0], &[2]), Tensor::from_vec(vec![3.0, 4.0], &[2]));
/// let (vx, vy) = (Tensor::from_vec(vec![1.0, 0.0], &[2]), Tensor::from_vec(vec![0.0, 5.0], &[2]));
/// let (f, hv) = functional::hvp_many(|_tape, xs| (xs[0] * xs[1]).sum(), &[x, y], &[vx, vy]);
/// assert_eq!(f.item(), 11.0);
/// assert_eq!((hv[0].to_vec(), hv[1].to_vec()), (vec![0.0, 5.0], vec![1.0, 0.0]));
/// ```
#[track_caller]
pub fn hvp_many<T: Float, F>(f: F, xs: &[Tensor<T>], vs: &[Tensor<T>]) -> (Tensor<T>, Vec<Tensor<T>>)
where
    F: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T>,
{
    check_tangents("hvp_many", xs, vs);
    let tape = Tape::new();
    let vars = inputs(&tape, xs);
    let y = f(&tape, &vars);
    check_scalar("hvp_many", &y);
    let gs = y.grad(&vars);
    let hv = directional(&tape, &gs, vs, &vars);
    (y.value(), hv)
}

/// One var per input, each requiring a gradient.
fn inputs<'t, T: Float>(tape: &'t Tape<T>, xs: &[Tensor<T>]) -> Vec<Var<'t, T>> {
    xs.iter().map(|x| tape.var(x.clone())).collect()
}

/// The gradients of `y` seeded with `seed` with respect to `wrt`, zeros where there is none.
fn reverse<'t, T: Float>(y: Var<'t, T>, seed: Tensor<T>, wrt: &[Var<'t, T>]) -> Vec<Tensor<T>> {
    // `backprop` rather than `backward_with_seed`: an output that does not depend on the inputs
    // has a zero derivative here, as in PyTorch's `torch.autograd.functional`.
    let grads = y.backprop(seed);
    wrt.iter()
        .map(|x| {
            grads
                .wrt(*x)
                .cloned()
                .unwrap_or_else(|| Tensor::zeros(&x.shape()))
        })
        .collect()
}

/// The derivatives of `⟨gs, vs⟩ = Σ_i ⟨gs[i], vs[i]⟩` with respect to `wrt`: one reverse pass.
fn directional<'t, T: Float>(
    tape: &'t Tape<T>,
    gs: &[Var<'t, T>],
    vs: &[Tensor<T>],
    wrt: &[Var<'t, T>],
) -> Vec<Tensor<T>> {
    match gs {
        [g] => reverse(*g, vs[0].clone(), wrt),
        _ => {
            let total = gs
                .iter()
                .zip(vs)
                .map(|(g, v)| (*g * tape.constant(v.clone())).sum())
                .reduce(|a, b| a + b)
                .unwrap_or_else(|| tape.constant(T::ZERO));
            reverse(total, Tensor::scalar(T::ONE), wrt)
        }
    }
}

/// The Jacobians of `y` with respect to each of `wrt` (y's shape followed by the input's): one
/// reverse pass per element of `y`, all on the one recording.
fn jacobian_rows<'t, T: Float>(y: Var<'t, T>, wrt: &[Var<'t, T>]) -> Vec<Tensor<T>> {
    let out_shape = y.shape();
    let rows: usize = out_shape.iter().product();
    let in_shapes: Vec<Vec<usize>> = wrt.iter().map(|x| x.shape()).collect();
    let mut data: Vec<Vec<T>> = in_shapes
        .iter()
        .map(|s| Vec::with_capacity(rows * s.iter().product::<usize>()))
        .collect();
    // The one-hot seed, moved along in place (its buffer is unshared again once each pass's
    // gradients are dropped, so no copy is made).
    let mut seed = Tensor::zeros(&out_shape);
    for k in 0..rows {
        if k > 0 {
            seed.as_mut_slice()[k - 1] = T::ZERO;
        }
        seed.as_mut_slice()[k] = T::ONE;
        let grads = y.backprop(seed.clone());
        for ((x, shape), d) in wrt.iter().zip(&in_shapes).zip(&mut data) {
            match grads.wrt(*x) {
                Some(g) => d.extend_from_slice(g.as_slice()),
                None => d.resize(d.len() + shape.iter().product::<usize>(), T::ZERO),
            }
        }
    }
    data.into_iter()
        .zip(&in_shapes)
        .map(|(d, s)| Tensor::from_vec(d, &[&out_shape[..], &s[..]].concat()))
        .collect()
}

/// Panics unless `y` has one element (the functions of second derivatives need a scalar `f`).
#[track_caller]
fn check_scalar<T: Float>(op: &str, y: &Var<'_, T>) {
    let shape = y.shape();
    assert!(
        shape.iter().product::<usize>() == 1,
        "tapegrad: functional::{op}: f must return a single element (a scalar), but its output has \
         shape {shape:?}; reduce it (for example with .sum()), or use jacobian for a vector-valued f"
    );
}

/// Panics unless `got` (the shape of argument `what`) equals `expected` (the shape of `of`).
#[track_caller]
fn check_shape(op: &str, what: &str, got: &[usize], of: &str, expected: &[usize]) {
    assert!(
        got == expected,
        "tapegrad: functional::{op}: {what} has shape {got:?}, but {of} has shape {expected:?}; \
         they must be equal"
    );
}

/// Panics unless there is one tangent per input, each of its input's shape.
#[track_caller]
fn check_tangents<T: Float>(op: &str, xs: &[Tensor<T>], vs: &[Tensor<T>]) {
    assert!(
        xs.len() == vs.len(),
        "tapegrad: functional::{op}: {} inputs but {} tangents; give one per input",
        xs.len(),
        vs.len()
    );
    for (i, (x, v)) in xs.iter().zip(vs).enumerate() {
        check_shape(op, &format!("vs[{i}]"), v.shape(), &format!("xs[{i}]"), x.shape());
    }
}
