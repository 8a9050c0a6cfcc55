//! Activation and elementwise functions of real models: log1p, expm1, square, rsqrt, silu, gelu,
//! gelu_tanh, softplus, leaky_relu, elu.
//!
//! Each smooth function `f` is two ops: the function itself, and its derivative op
//! `(g, x) ↦ g·f⁽ᵏ⁾(x)`, which carries the order `k` in `Args::Powi(k)`. The function's rule is
//! the derivative op of order 1, so a first-order backward pass costs one fused pass over the
//! tensors; the derivative op's own rule is the derivative op again (order `k` for `g`, order
//! `k + 1` for `x`), so gradients of every order come from the same two ops. Orders above 1 are
//! computed in f64 (closed forms, or Taylor coefficients for the sigmoid-based functions).
//!
//! The f32 kernels of gelu, silu, gelu_tanh and softplus are written without branches or library
//! calls (selects, the crate's vectorised `exp`, polynomials), so that the compiler vectorises
//! them over a tensor; f64 tensors keep f64-accurate formulas for gradient checks. Real
//! parameters (leaky_relu's slope, elu's alpha) are kept in `Args::Powf`, which rank-0 nodes
//! carry through the backward pass's scalar path.

use std::f64::consts::{FRAC_1_SQRT_2, PI};
use std::marker::PhantomData;

use super::erf::erf_f64;
use super::{Args, Fwd, Op, Operand, Primitive, Vjp};
use crate::tensor::Work;
use crate::{Float, Tensor, Var};

// ---------------------------------------------------------------------------------------------
// A function with derivatives of every order, as two ops
// ---------------------------------------------------------------------------------------------

/// An elementwise function without parameters, with its derivatives.
trait Smooth: Sync + 'static {
    const NAME: &'static str;
    const RULE: &'static str;
    /// The name of the derivative op (`g·f⁽ᵏ⁾(x)`).
    const DERIVATIVE: &'static str;
    /// The work per element of the forward kernel, which sets when tensors are split between
    /// threads.
    const WORK: Work;
    /// Every derivative above this order is 0 (square's third).
    const DEGREE: i32 = i32::MAX;
    fn value<T: Float>(x: T) -> T;
    /// The first derivative, in `T`: the kernel of the first-order backward pass.
    fn slope<T: Float>(x: T) -> T;
    /// The derivative of order `k ≥ 2`, in f64.
    fn derivative(k: i32, x: f64) -> f64;
}

/// The function `F` as an op.
pub(crate) struct Elementwise<F>(PhantomData<F>);

/// `(g, x) ↦ g·F⁽ᵏ⁾(x)`, with the order `k` in `Args::Powi(k)`.
pub(crate) struct Derivative<F>(PhantomData<F>);

impl<F> Elementwise<F> {
    const OP: Self = Elementwise(PhantomData);
}

impl<F> Derivative<F> {
    const OP: Self = Derivative(PhantomData);
}

/// `g·F⁽ᵏ⁾(x)` for any operand (rules call this).
#[track_caller]
fn derivative<T: Float, G: Operand<T>, F: Smooth>(g: &G, x: &G, k: i32) -> G {
    G::apply(&Derivative::<F>::OP, Args::Powi(k), None, &[g, x])
}

impl<T: Float, F: Smooth> Op<T> for Elementwise<F> {
    fn name(&self) -> &'static str {
        F::NAME
    }
    fn rule(&self) -> &'static str {
        F::RULE
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        [cx.need(0, || derivative::<T, G, F>(cx.grad_out, cx.x(), 1)), None]
    }
}

impl<T: Float, F: Smooth> Primitive<T> for Elementwise<F> {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        cx.x().map_elementwise(F::WORK, F::value::<T>)
    }
}

impl<T: Float, F: Smooth> Op<T> for Derivative<F> {
    fn name(&self) -> &'static str {
        F::DERIVATIVE
    }
    fn rule(&self) -> &'static str {
        "g f^(k)(x) (k = n): grad_g = grad_out f^(k)(x), grad_x = grad_out g f^(k+1)(x)"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let Args::Powi(k) = cx.args else {
            unreachable!("{} node without its order", F::DERIVATIVE)
        };
        let (g, x, gbar) = (cx.x(), cx.y(), cx.grad_out);
        let grad_x = (cx.needs[1] && k < F::DEGREE).then(|| derivative::<T, G, F>(&gbar.mul(g), x, k + 1));
        [cx.need(0, || derivative::<T, G, F>(gbar, x, k)), grad_x]
    }
}

impl<T: Float, F: Smooth> Primitive<T> for Derivative<F> {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let Args::Powi(k) = cx.args else {
            unreachable!("{} without its order", F::DERIVATIVE)
        };
        let (g, x) = (cx.inputs[0], cx.inputs[1]);
        match k {
            1 => g.zip_map_work(F::DERIVATIVE, x, F::WORK, |g, x| g * F::slope(x)),
            k if k > F::DEGREE => g.zip_map(F::DERIVATIVE, x, |_, _| T::ZERO),
            k => g.zip_map(F::DERIVATIVE, x, |g, x| {
                g * T::from_f64(F::derivative(k, x.to_f64()))
            }),
        }
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Records the function `F` of this var.
    #[track_caller]
    fn smooth<F: Smooth>(self) -> Var<'t, T> {
        let op: &'static Elementwise<F> = &Elementwise::<F>::OP;
        if let Some(v) = self
            .tape
            .record_scalar(op, Args::None, &[self.id], |x, _| F::value(x))
        {
            return v;
        }
        Var::record_op(op, Args::None, None, &[self])
    }
}

// ---------------------------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------------------------

/// Whether `T` is `f32` (a constant once monomorphised: the other branch is removed, and the
/// round trip through f64 of an f32 compiles to nothing).
#[inline(always)]
fn is_f32<T: Float>() -> bool {
    std::mem::size_of::<T>() == 4
}

/// `σ(x)` and `σ(x)(1 - σ(x))`, from one `e = exp(-|x|)` (never above 1, so nothing
/// overflows) and selects rather than branches, so that loops over tensors vectorise. Both are
/// accurate relative to their own size for every `x` (neither is computed as a difference).
#[inline(always)]
fn sigmoid_parts<T: Float>(x: T) -> (T, T) {
    let e = (-x.abs()).exp();
    let d = T::ONE / (T::ONE + e);
    let s = if x >= T::ZERO { d } else { e * d };
    (s, e * d * d)
}

/// `ln(1 + e)` for `e` in [0, 1] (softplus's `ln(1 + e^-|x|)`).
#[inline(always)]
fn log1p_unit<T: Float>(e: T) -> T {
    if is_f32::<T>() {
        T::from_f64(log1p_unit_f32(e.to_f64() as f32) as f64)
    } else {
        T::from_f64(e.to_f64().ln_1p())
    }
}

/// `ln(1 + e)` for `e` in [0, 1] in f32 without a library call: `2 atanh(s)` with
/// `s = e / (2 + e)` ≤ 1/3, by its series `2s + 2s³/3 + 2s⁵/5 + …` through `s¹³` (the rest is
/// below 2·10⁻⁸ relative). Written as `e - s·(e - s²·P(s²))`, using `2s = e - e·s`, so that the
/// rounding of `s` only reaches the smaller term: within 1.5 ulp (see the tests).
#[inline(always)]
fn log1p_unit_f32(e: f32) -> f32 {
    let s = e / (2.0 + e);
    let w = s * s;
    let p = 2.0 / 13.0;
    let p = p * w + 2.0 / 11.0;
    let p = p * w + 2.0 / 9.0;
    let p = p * w + 2.0 / 7.0;
    let p = p * w + 2.0 / 5.0;
    let p = p * w + 2.0 / 3.0;
    e - s * (e - w * p)
}

/// `1/√(2π)`.
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// The standard normal distribution at `x`: its CDF `Φ(x) = (1 + erf(x/√2))/2` and its density
/// `φ(x) = e^(-x²/2)/√(2π)`.
#[inline(always)]
fn gaussian<T: Float>(x: T) -> (T, T) {
    if is_f32::<T>() {
        let (c, d) = gaussian_f32(x.to_f64() as f32);
        (T::from_f64(c as f64), T::from_f64(d as f64))
    } else {
        let (c, d) = gaussian_f64(x.to_f64());
        (T::from_f64(c), T::from_f64(d))
    }
}

/// `e^(hi + lo)` in f32 for `hi ≤ 0` and `|lo|` small, without branches or library calls, and
/// without rounding `hi + lo` first (the caller splits `-x²/2` exactly): Cody–Waite reduction
/// `hi + lo = n ln2 + r` with `|r| ≤ ln2/2`, the degree-7 Taylor polynomial of `e^r` (truncation
/// below 0.1 ulp) and `2^n` built from exponent bits in two normal factors, so that subnormal
/// results round once. Below `hi = -104` the result is 0 anyway.
#[inline(always)]
fn exp_split_f32(hi: f32, lo: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts: `n * LN2_HI` is exact for the |n| ≤ 150 that occur.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2²³ rounds to an integer; the integer is then in the low bits.
    const ROUND: f32 = 12_582_912.0;
    // A select rather than `max`, which would turn a NaN into the bound.
    let hi = if hi < -104.0 { -104.0 } else { hi };
    let shifted = (hi + lo) * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = ((hi - n * LN2_HI) - n * LN2_LO) + lo;
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let half = n_bits >> 1;
    let power = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    p * power(half) * power(n_bits - half)
}

/// [`gaussian`] in f32, vectorisable: one division, one exponential and a degree-10 polynomial.
///
/// With `a = |x|/√2` and `t = 2/(2 + a)`, `erfc(a) = t·e^(-a²)·2R(t)`, where `R` (a smooth
/// function of `t` between 0.14 and 0.28) is a polynomial fitted by Chebyshev interpolation in
/// 40-digit arithmetic (mpmath's `chebyfit`) on `a` in [0, 10.5]: relative error 5·10⁻⁹ before
/// rounding the coefficients to f32. `Φ(-|x|) = erfc(a)/2` has no cancellation, so the negative
/// tail is accurate to a few ulps down to the subnormals (x ≈ -14), where `1 + erf(x/√2)` (as
/// PyTorch's kernel computes it) loses every digit below x ≈ -5.5. `e^(-x²/2)` takes `x²` split
/// exactly into `hi + lo` (12-bit halves), as rounding `x²` alone would cost `x²/2` ulps. The
/// tests measure at most 7 ulp for `Φ` and `x·Φ(x)` (about 1 typically) and 2.5 for `φ`.
#[inline(always)]
fn gaussian_f32(x: f32) -> (f32, f32) {
    let a = x.abs();
    let t = 2.0 / (2.0 + a * std::f32::consts::FRAC_1_SQRT_2);
    let r = 1.674_252e-2;
    let r = r * t - 8.907_821e-2;
    let r = r * t + 1.748_829_5e-1;
    let r = r * t - 1.225_472_2e-1;
    let r = r * t - 3.071_956e-2;
    let r = r * t + 2.920_985_2e-2;
    let r = r * t + 2.299_249_5e-2;
    let r = r * t + 9.391_787e-2;
    let r = r * t + 1.224_140_15e-1;
    let r = r * t + 1.411_416_1e-1;
    let r = r * t + 1.410_437e-1;
    // Beyond 16 the density is 0 in f32; the clamp also keeps the split finite for infinities.
    let ac = a.min(16.0);
    let ah = f32::from_bits(ac.to_bits() & 0xFFFF_F000);
    let al = ac - ah;
    let e = exp_split_f32(-0.5 * (ah * ah), -0.5 * ((ac + ah) * al));
    let tail = t * r * e;
    let cdf = if x > 0.0 { 1.0 - tail } else { tail };
    (cdf, e * FRAC_1_SQRT_2PI as f32)
}

/// `e^(-a²/2)` in f64 with `a²` split exactly (26-bit halves), so that the result is accurate
/// relative to its size however small it is.
fn exp_neg_half_square_f64(a: f64) -> f64 {
    let a = a.abs().min(40.0);
    let ah = f64::from_bits(a.to_bits() & !((1u64 << 27) - 1));
    let al = a - ah;
    let hi = -0.5 * (ah * ah);
    // |lo| < 3·10⁻⁵: the cubic Taylor polynomial of e^lo is exact to 10⁻¹⁹.
    let lo = -0.5 * ((a + ah) * al);
    hi.exp() * (1.0 + lo * (1.0 + lo * (0.5 + lo / 6.0)))
}

/// `erfcx(z) = e^(z²) erfc(z)` for `z ≥ 1/2`, in f64.
///
/// On [1/2, 4]: a Chebyshev series in `t = 2/(2 + z)` (coefficients computed in 50-digit
/// arithmetic with mpmath from 60 Chebyshev nodes; those kept leave a truncation error below
/// 10⁻¹⁹), evaluated by Clenshaw's recurrence. Above 4: the even part of Laplace's continued
/// fraction `erfc(z) = 2z e^(-z²)/√π / (2z² + 1 - 1·2/(2z² + 5 - 3·4/(2z² + 9 - …)))`, 14
/// levels deep (10 reach f64's precision at z = 4).
fn erfcx_f64(z: f64) -> f64 {
    const CHEBYSHEV: [f64; 20] = [
        0.346_597_793_419_928_75,
        0.237_379_273_048_092_1,
        0.029_753_436_212_429_783,
        0.001_975_744_584_902_412,
        -6.328_873_271_745_550_6e-6,
        -9.639_433_640_429_92e-6,
        2.026_337_054_552_002e-9,
        6.554_932_778_706_365e-8,
        -1.918_301_214_124_599e-9,
        -4.665_327_064_686_472e-10,
        4.242_800_376_040_951_4e-11,
        1.756_374_510_457_424_2e-12,
        -5.607_824_772_467_949e-13,
        2.739_058_626_563_327e-14,
        3.783_418_040_693_898e-15,
        -6.855_390_911_358_489e-16,
        2.585_697_292_970_630_2e-17,
        5.646_189_042_162_718e-18,
        -9.842_295_931_684_093e-19,
        4.539_520_719_195_113_7e-20,
    ];
    if z <= 4.0 {
        // t runs over [1/3, 4/5]; s maps it onto [-1, 1].
        let t = 2.0 / (2.0 + z);
        let s = (30.0 * t - 17.0) / 7.0;
        let (mut b1, mut b2) = (0.0, 0.0);
        for &c in CHEBYSHEV[1..].iter().rev() {
            (b1, b2) = (2.0 * s * b1 - b2 + c, b1);
        }
        return s * b1 - b2 + CHEBYSHEV[0];
    }
    // Past 10¹⁰ the fraction is 1/(z√π) to f64's precision; the cap keeps 2z² finite.
    let z = z.min(1e10);
    let x = 2.0 * z * z;
    let depth = 14.0;
    let mut f = x + 1.0 + 4.0 * depth;
    let mut n = depth;
    while n >= 1.0 {
        f = x + 1.0 + 4.0 * (n - 1.0) - (2.0 * n - 1.0) * (2.0 * n) / f;
        n -= 1.0;
    }
    2.0 * z / (PI.sqrt() * f)
}

/// [`gaussian`] in f64, accurate to a few ulps everywhere: the series `erf_f64` near 0, and
/// `Φ(-|x|) = e^(-x²/2) erfcx(|x|/√2)/2` elsewhere, so the tail does not cancel.
fn gaussian_f64(x: f64) -> (f64, f64) {
    if x.is_nan() {
        return (x, x);
    }
    let e = exp_neg_half_square_f64(x);
    let z = x.abs() * FRAC_1_SQRT_2;
    let cdf = if z < 0.5 {
        0.5 + 0.5 * erf_f64(x * FRAC_1_SQRT_2)
    } else {
        let tail = 0.5 * e * erfcx_f64(z);
        if x > 0.0 { 1.0 - tail } else { tail }
    };
    (cdf, e * FRAC_1_SQRT_2PI)
}

/// Taylor coefficients `s₀ … sₙ` of `σ(v(h))` at `h = 0` from those of `v` (`n + 1` of them),
/// by the recurrence of `σ' = (σ - σ²) v'`. It runs on the side where `σ ≤ 1/2` (using
/// `σ(v) = 1 - σ(-v)`), so that `σ - σ²` does not cancel.
fn sigmoid_series(v: &[f64]) -> Vec<f64> {
    let n = v.len() - 1;
    let flip = v[0] > 0.0;
    let v: Vec<f64> = v.iter().map(|&c| if flip { -c } else { c }).collect();
    let e = v[0].exp();
    let mut s = vec![0.0; n + 1];
    let mut w = vec![0.0; n + 1];
    s[0] = e / (1.0 + e);
    for m in 0..n {
        w[m] = s[m] - (0..=m).map(|j| s[j] * s[m - j]).sum::<f64>();
        s[m + 1] = (0..=m).map(|j| (j + 1) as f64 * v[j + 1] * w[m - j]).sum::<f64>() / (m + 1) as f64;
    }
    if flip {
        s[0] = 1.0 - s[0];
        for c in &mut s[1..] {
            *c = -*c;
        }
    }
    s
}

/// `k!` in f64.
fn factorial(k: i32) -> f64 {
    (1..=k).map(f64::from).product()
}

/// The `k`-th derivative (`k ≥ 1`) of `x·σ(v(x))` from the Taylor coefficients of `v` at `x`:
/// silu (`v = x`) and gelu_tanh (`v = 2u(x)`). With `s` the coefficients of `σ(v)`, those of
/// `(x + h)·σ(v(x + h))` are `x·s_k + s_(k-1)`.
fn x_sigmoid_derivative(k: i32, x: f64, v: &[f64]) -> f64 {
    let n = k as usize;
    let mut coeffs = vec![0.0; n + 1];
    let len = v.len().min(n + 1);
    coeffs[..len].copy_from_slice(&v[..len]);
    let s = sigmoid_series(&coeffs);
    factorial(k) * (x * s[n] + s[n - 1])
}

// ---------------------------------------------------------------------------------------------
// The functions
// ---------------------------------------------------------------------------------------------

/// `ln(1 + x)`.
pub(crate) struct Log1p;

impl Smooth for Log1p {
    const NAME: &'static str = "log1p";
    const RULE: &'static str = "d ln(1+x)/dx = 1/(1+x): grad_x = grad_out / (1 + x)";
    const DERIVATIVE: &'static str = "log1p_derivative";
    const WORK: Work = Work::Heavy;
    fn value<T: Float>(x: T) -> T {
        T::from_f64(x.to_f64().ln_1p())
    }
    fn slope<T: Float>(x: T) -> T {
        T::ONE / (T::ONE + x)
    }
    fn derivative(k: i32, x: f64) -> f64 {
        let sign = if k % 2 == 0 { -1.0 } else { 1.0 };
        sign * factorial(k - 1) / (1.0 + x).powi(k)
    }
}

/// `e^x - 1`.
pub(crate) struct Expm1;

impl Smooth for Expm1 {
    const NAME: &'static str = "expm1";
    const RULE: &'static str = "d(e^x - 1)/dx = e^x: grad_x = grad_out * e^x";
    const DERIVATIVE: &'static str = "expm1_derivative";
    const WORK: Work = Work::Heavy;
    fn value<T: Float>(x: T) -> T {
        T::from_f64(x.to_f64().exp_m1())
    }
    fn slope<T: Float>(x: T) -> T {
        x.exp()
    }
    fn derivative(_k: i32, x: f64) -> f64 {
        x.exp()
    }
}

/// `x²`.
pub(crate) struct Square;

impl Smooth for Square {
    const NAME: &'static str = "square";
    const RULE: &'static str = "d(x^2)/dx = 2x: grad_x = grad_out * 2x";
    const DERIVATIVE: &'static str = "square_derivative";
    const WORK: Work = Work::Light;
    const DEGREE: i32 = 2;
    fn value<T: Float>(x: T) -> T {
        x * x
    }
    fn slope<T: Float>(x: T) -> T {
        x + x
    }
    fn derivative(_k: i32, _x: f64) -> f64 {
        2.0
    }
}

/// `1/√x`.
pub(crate) struct Rsqrt;

impl Smooth for Rsqrt {
    const NAME: &'static str = "rsqrt";
    const RULE: &'static str = "d(x^-1/2)/dx = -x^(-3/2)/2: grad_x = -grad_out * rsqrt(x)^3 / 2";
    const DERIVATIVE: &'static str = "rsqrt_derivative";
    const WORK: Work = Work::Light;
    fn value<T: Float>(x: T) -> T {
        T::ONE / x.sqrt()
    }
    fn slope<T: Float>(x: T) -> T {
        let r = T::ONE / x.sqrt();
        T::from_f64(-0.5) * r * r * r
    }
    fn derivative(k: i32, x: f64) -> f64 {
        // d^k x^(-1/2) = (-1/2)(-3/2)…(-1/2 - (k-1)) x^(-1/2 - k).
        let c: f64 = (0..k).map(|j| -0.5 - f64::from(j)).product();
        c / x.sqrt() * x.powi(-k)
    }
}

/// `x·σ(x)`.
pub(crate) struct Silu;

impl Smooth for Silu {
    const NAME: &'static str = "silu";
    const RULE: &'static str = "d(x s(x))/dx = s(x)(1 + x(1 - s(x))): grad_x = grad_out * that";
    const DERIVATIVE: &'static str = "silu_derivative";
    const WORK: Work = Work::Heavy;
    fn value<T: Float>(x: T) -> T {
        x * sigmoid_parts(x).0
    }
    fn slope<T: Float>(x: T) -> T {
        let (s, q) = sigmoid_parts(x);
        s + x * q
    }
    fn derivative(k: i32, x: f64) -> f64 {
        x_sigmoid_derivative(k, x, &[x, 1.0])
    }
}

/// `x·Φ(x)`.
pub(crate) struct Gelu;

impl Smooth for Gelu {
    const NAME: &'static str = "gelu";
    const RULE: &'static str = "d(x Phi(x))/dx = Phi(x) + x phi(x): grad_x = grad_out * that";
    const DERIVATIVE: &'static str = "gelu_derivative";
    const WORK: Work = Work::Heavy;
    fn value<T: Float>(x: T) -> T {
        x * gaussian(x).0
    }
    fn slope<T: Float>(x: T) -> T {
        let (c, d) = gaussian(x);
        c + x * d
    }
    fn derivative(k: i32, x: f64) -> f64 {
        // (xΦ)^(k) = xΦ^(k) + kΦ^(k-1) with Φ^(j) = (-1)^(j-1) He_(j-1)(x) φ(x), and
        // x·He_(k-1) - k·He_(k-2) = He_k - He_(k-2): (-1)^(k-1) φ(x) (He_k(x) - He_(k-2)(x)).
        let k = k as usize;
        let mut he = vec![1.0, x];
        for j in 1..k {
            he.push(x * he[j] - j as f64 * he[j - 1]);
        }
        let sign = if k.is_multiple_of(2) { -1.0 } else { 1.0 };
        let density = exp_neg_half_square_f64(x) * FRAC_1_SQRT_2PI;
        sign * density * (he[k] - he[k - 2])
    }
}

/// `x·σ(2u)` with `u = √(2/π)(x + 0.044715x³)`, which is `x(1 + tanh u)/2`.
pub(crate) struct GeluTanh;

/// `√(2/π)` and the cubic coefficient of gelu's tanh approximation (PyTorch's `kBeta`, `kKappa`).
const GELU_BETA: f64 = 0.797_884_560_802_865_4;
const GELU_KAPPA: f64 = 0.044_715;

impl Smooth for GeluTanh {
    const NAME: &'static str = "gelu_tanh";
    const RULE: &'static str = "d(x s(2u))/dx = s(2u) + 2x u' s(2u)(1 - s(2u)), u = b(x + k x^3): \
                                grad_x = grad_out * that";
    const DERIVATIVE: &'static str = "gelu_tanh_derivative";
    const WORK: Work = Work::Heavy;
    fn value<T: Float>(x: T) -> T {
        let u = T::from_f64(GELU_BETA) * (x + T::from_f64(GELU_KAPPA) * x * x * x);
        x * sigmoid_parts(u + u).0
    }
    fn slope<T: Float>(x: T) -> T {
        let (beta, kappa) = (T::from_f64(GELU_BETA), T::from_f64(GELU_KAPPA));
        let x2 = x * x;
        let u = beta * (x + kappa * x2 * x);
        let du = beta * (T::ONE + T::from_f64(3.0) * kappa * x2);
        let (s, q) = sigmoid_parts(u + u);
        // Where σ saturates, q is 0 and u' may be infinite (|x| > 1e13 in f32): the term is 0.
        let bend = if q == T::ZERO { T::ZERO } else { (x + x) * du * q };
        s + bend
    }
    fn derivative(k: i32, x: f64) -> f64 {
        // 2u(x + h) = 2β(x + κx³) + 2β(1 + 3κx²) h + 6βκx h² + 2βκ h³.
        let (b, c) = (GELU_BETA, GELU_KAPPA);
        let v = [
            2.0 * b * (x + c * x * x * x),
            2.0 * b * (1.0 + 3.0 * c * x * x),
            6.0 * b * c * x,
            2.0 * b * c,
        ];
        x_sigmoid_derivative(k, x, &v)
    }
}

/// `ln(1 + e^x)`, and `x` above 20 (PyTorch's threshold for beta 1).
pub(crate) struct Softplus;

/// PyTorch's default threshold: above it softplus is `x` itself.
const SOFTPLUS_THRESHOLD: f64 = 20.0;

impl Smooth for Softplus {
    const NAME: &'static str = "softplus";
    const RULE: &'static str = "d ln(1+e^x)/dx = s(x) (1 above 20, where the value is x): \
                                grad_x = grad_out * that";
    const DERIVATIVE: &'static str = "softplus_derivative";
    const WORK: Work = Work::Heavy;
    fn value<T: Float>(x: T) -> T {
        // max(x, 0) + ln(1 + e^-|x|): nothing overflows and the logarithm's argument is in [1, 2].
        let l = log1p_unit((-x.abs()).exp());
        let y = if x > T::ZERO { x + l } else { l };
        if x > T::from_f64(SOFTPLUS_THRESHOLD) { x } else { y }
    }
    fn slope<T: Float>(x: T) -> T {
        let s = sigmoid_parts(x).0;
        if x > T::from_f64(SOFTPLUS_THRESHOLD) {
            T::ONE
        } else {
            s
        }
    }
    fn derivative(k: i32, x: f64) -> f64 {
        if x > SOFTPLUS_THRESHOLD {
            return 0.0;
        }
        // softplus^(k) = σ^(k-1) = (k-1)! s_(k-1).
        let n = (k - 1) as usize;
        let mut v = vec![0.0; n + 1];
        v[0] = x;
        v[1] = 1.0;
        factorial(k - 1) * sigmoid_series(&v)[n]
    }
}

// ---------------------------------------------------------------------------------------------
// Piecewise functions with a real parameter (in `Args::Powf`)
// ---------------------------------------------------------------------------------------------

/// The parameter of a leaky_relu or elu node.
fn parameter<T: Float>(args: Args, op: &str) -> T {
    let Args::Powf(p) = args else {
        unreachable!("{op} node without its parameter")
    };
    T::from_f64(p)
}

/// `x` above 0, `slope·x` elsewhere.
pub(crate) struct LeakyRelu;

/// `(g, x) ↦ g` where `x > 0`, `g·slope` elsewhere: leaky_relu's derivative, piecewise constant.
pub(crate) struct LeakyReluSlope;

#[track_caller]
fn leaky_relu_slope<T: Float, G: Operand<T>>(g: &G, x: &G, args: Args) -> G {
    G::apply(&LeakyReluSlope, args, None, &[g, x])
}

fn leaky_relu_value<T: Float>(x: T, slope: T) -> T {
    if x > T::ZERO { x } else { x * slope }
}

impl<T: Float> Op<T> for LeakyRelu {
    fn name(&self) -> &'static str {
        "leaky_relu"
    }
    fn rule(&self) -> &'static str {
        "d leaky_relu(x)/dx = 1 where x > 0, else slope (at 0 too, as PyTorch)"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        [
            cx.need(0, || leaky_relu_slope(cx.grad_out, cx.x(), cx.args)),
            None,
        ]
    }
}

impl<T: Float> Primitive<T> for LeakyRelu {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let slope = parameter(cx.args, "leaky_relu");
        cx.x()
            .map_elementwise(Work::Light, |x| leaky_relu_value(x, slope))
    }
}

impl<T: Float> Op<T> for LeakyReluSlope {
    fn name(&self) -> &'static str {
        "leaky_relu_derivative"
    }
    fn rule(&self) -> &'static str {
        "g * (1 where x > 0, else slope): linear in g, constant in x (its x-derivative is 0)"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        [
            cx.need(0, || leaky_relu_slope(cx.grad_out, cx.y(), cx.args)),
            None,
        ]
    }
}

impl<T: Float> Primitive<T> for LeakyReluSlope {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let slope: T = parameter(cx.args, "leaky_relu_derivative");
        let (g, x) = (cx.inputs[0], cx.inputs[1]);
        g.zip_map("leaky_relu_derivative", x, |g, x| {
            if x > T::ZERO { g } else { g * slope }
        })
    }
}

/// `x` above 0, `alpha·(e^x - 1)` elsewhere.
pub(crate) struct Elu;

/// `(g, x) ↦ g` where `x > 0`, `g·alpha·e^x` elsewhere: elu's first derivative.
pub(crate) struct EluSlope;

/// `(g, x) ↦ 0` where `x > 0`, `g·alpha·e^x` elsewhere: every derivative of elu above the first,
/// so its own rule is itself.
pub(crate) struct EluCurvature;

fn elu_value<T: Float>(x: T, alpha: T) -> T {
    if x > T::ZERO {
        x
    } else {
        alpha * T::from_f64(x.to_f64().exp_m1())
    }
}

#[track_caller]
fn elu_slope<T: Float, G: Operand<T>>(g: &G, x: &G, args: Args) -> G {
    G::apply(&EluSlope, args, None, &[g, x])
}

#[track_caller]
fn elu_curvature<T: Float, G: Operand<T>>(g: &G, x: &G, args: Args) -> G {
    G::apply(&EluCurvature, args, None, &[g, x])
}

impl<T: Float> Op<T> for Elu {
    fn name(&self) -> &'static str {
        "elu"
    }
    fn rule(&self) -> &'static str {
        "d elu(x)/dx = 1 where x > 0, else alpha e^x (at 0 too, as PyTorch)"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        [cx.need(0, || elu_slope(cx.grad_out, cx.x(), cx.args)), None]
    }
}

impl<T: Float> Primitive<T> for Elu {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let alpha = parameter(cx.args, "elu");
        cx.x().map_elementwise(Work::Heavy, |x| elu_value(x, alpha))
    }
}

impl<T: Float> Op<T> for EluSlope {
    fn name(&self) -> &'static str {
        "elu_derivative"
    }
    fn rule(&self) -> &'static str {
        "g * (1 where x > 0, else alpha e^x): grad_g = grad_out * that, \
         grad_x = grad_out g (0 where x > 0, else alpha e^x)"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let (g, x, gbar) = (cx.x(), cx.y(), cx.grad_out);
        [
            cx.need(0, || elu_slope(gbar, x, cx.args)),
            cx.need(1, || elu_curvature(&gbar.mul(g), x, cx.args)),
        ]
    }
}

impl<T: Float> Primitive<T> for EluSlope {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let alpha: T = parameter(cx.args, "elu_derivative");
        let (g, x) = (cx.inputs[0], cx.inputs[1]);
        g.zip_map("elu_derivative", x, |g, x| {
            let negative = g * alpha * x.exp();
            if x > T::ZERO { g } else { negative }
        })
    }
}

impl<T: Float> Op<T> for EluCurvature {
    fn name(&self) -> &'static str {
        "elu_second_derivative"
    }
    fn rule(&self) -> &'static str {
        "g * (0 where x > 0, else alpha e^x): grad_g = grad_out * that, grad_x = grad_out g * that"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let (g, x, gbar) = (cx.x(), cx.y(), cx.grad_out);
        [
            cx.need(0, || elu_curvature(gbar, x, cx.args)),
            cx.need(1, || elu_curvature(&gbar.mul(g), x, cx.args)),
        ]
    }
}

impl<T: Float> Primitive<T> for EluCurvature {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let alpha: T = parameter(cx.args, "elu_second_derivative");
        let (g, x) = (cx.inputs[0], cx.inputs[1]);
        g.zip_map("elu_second_derivative", x, |g, x| {
            let negative = g * alpha * x.exp();
            if x > T::ZERO { T::ZERO } else { negative }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The public methods
// ---------------------------------------------------------------------------------------------

impl<'t, T: Float> Var<'t, T> {
    /// Elementwise `ln(1 + x)` (`torch.log1p`), accurate for small `x` where `ln(1 + x)` rounds
    /// `1 + x`. Derivative: `1/(1 + x)`. NaN below -1 and -∞ at -1, as PyTorch.
    ///
    /// Computed in f64 (a library call per element, also for f32).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var([1e-10, 1.0]);
    /// let y = x.log1p();
    /// assert_eq!(y.value().to_vec(), vec![1e-10_f64.ln_1p(), 2f64.ln()]);
    /// let g = y.sum().backward();
    /// assert_eq!(g[x].to_vec()[1], 0.5);
    /// ```
    #[track_caller]
    pub fn log1p(self) -> Var<'t, T> {
        self.smooth::<Log1p>()
    }

    /// Elementwise `e^x - 1` (`torch.expm1`), accurate for small `x`. Derivative: `e^x`.
    ///
    /// Computed in f64 (a library call per element, also for f32).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var([1e-10, 0.0]);
    /// let y = x.expm1();
    /// assert_eq!(y.value().to_vec(), vec![1e-10_f64.exp_m1(), 0.0]);
    /// assert_eq!(y.sum().backward()[x].to_vec()[1], 1.0);
    /// ```
    #[track_caller]
    pub fn expm1(self) -> Var<'t, T> {
        self.smooth::<Expm1>()
    }

    /// Elementwise `x²` (`torch.square`). Derivative: `2x`.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.var([-3.0, 0.5]);
    /// let y = x.square();
    /// assert_eq!(y.value().to_vec(), vec![9.0, 0.25]);
    /// assert_eq!(y.sum().backward()[x].to_vec(), vec![-6.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn square(self) -> Var<'t, T> {
        self.smooth::<Square>()
    }

    /// Elementwise `1/√x` (`torch.rsqrt`). Derivative: `-x^(-3/2)/2`. `+∞` at 0 and NaN below,
    /// as PyTorch.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(4.0);
    /// let y = x.rsqrt();
    /// assert_eq!(y.item(), 0.5);
    /// assert_eq!(y.backward()[x].item(), -1.0 / 16.0);
    /// ```
    #[track_caller]
    pub fn rsqrt(self) -> Var<'t, T> {
        self.smooth::<Rsqrt>()
    }

    /// Elementwise SiLU (swish) `x·σ(x)` (`torch.nn.functional.silu`). Derivative:
    /// `σ(x)(1 + x(1 - σ(x)))`.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var([0.0, 1.0]);
    /// let y = x.silu();
    /// assert!((y.value().to_vec()[1] - 0.731_058_578_630_004_9).abs() < 1e-15);
    /// assert_eq!(y.sum().backward()[x].to_vec()[0], 0.5);
    /// ```
    #[track_caller]
    pub fn silu(self) -> Var<'t, T> {
        self.smooth::<Silu>()
    }

    /// Elementwise GELU `x·Φ(x) = x(1 + erf(x/√2))/2`, with `Φ` the standard normal CDF: the exact
    /// form, `torch.nn.functional.gelu`'s default (`approximate='none'`). Derivative:
    /// `Φ(x) + x·φ(x)`.
    ///
    /// f32 uses a vectorised kernel within a few ulps of the exact value, also in the negative
    /// tail (down to x ≈ -14, where the result becomes subnormal); f64 is accurate to a few ulps
    /// of f64.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var([1.0, -3.0]);
    /// let y = x.gelu();
    /// let v = y.value().to_vec();
    /// assert!((v[0] - 0.841_344_746_068_542_9).abs() < 1e-15);
    /// assert!((v[1] + 0.004_049_694_094_890_283_5).abs() < 1e-17);
    /// let g = y.sum().backward();
    /// assert!((g[x].to_vec()[0] - 1.083_315_470_587_686_4).abs() < 1e-15);
    /// ```
    #[track_caller]
    pub fn gelu(self) -> Var<'t, T> {
        self.smooth::<Gelu>()
    }

    /// Elementwise GELU in PyTorch's tanh approximation (`torch.nn.functional.gelu` with
    /// `approximate='tanh'`): `x(1 + tanh(√(2/π)(x + 0.044715x³)))/2`, computed as `x·σ(2u)`,
    /// which is the same function without the cancellation of `1 + tanh` for negative `x`.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(1.0);
    /// let y = x.gelu_tanh();
    /// assert!((y.item() - 0.841_191_990_608_276_7).abs() < 1e-15);
    /// assert!((y.backward()[x].item() - 1.082_964_083_845_782_6).abs() < 1e-15);
    /// ```
    #[track_caller]
    pub fn gelu_tanh(self) -> Var<'t, T> {
        self.smooth::<GeluTanh>()
    }

    /// Elementwise softplus `ln(1 + e^x)` with PyTorch's defaults (`torch.nn.functional.softplus`,
    /// beta 1, threshold 20): `x` itself where `x > 20`. Derivative: `σ(x)`, and 1 above 20.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var([0.0, 30.0, -800.0]);
    /// let y = x.softplus();
    /// assert_eq!(y.value().to_vec(), vec![2f64.ln(), 30.0, 0.0]);
    /// assert_eq!(y.sum().backward()[x].to_vec(), vec![0.5, 1.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn softplus(self) -> Var<'t, T> {
        self.smooth::<Softplus>()
    }

    /// Elementwise leaky ReLU (`torch.nn.functional.leaky_relu` with `negative_slope`): `x`
    /// where `x > 0`, `slope·x` elsewhere. Derivative: 1 where `x > 0`, `slope` elsewhere (at 0
    /// too, as PyTorch); the second derivative is 0.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var([-2.0, 0.0, 3.0]);
    /// let y = x.leaky_relu(0.1);
    /// assert_eq!(y.value().to_vec(), vec![-0.2, 0.0, 3.0]);
    /// assert_eq!(y.sum().backward()[x].to_vec(), vec![0.1, 0.1, 1.0]);
    /// ```
    #[track_caller]
    pub fn leaky_relu(self, slope: T) -> Var<'t, T> {
        let args = Args::Powf(slope.to_f64());
        if let Some(v) = self
            .tape
            .record_scalar(&LeakyRelu, args, &[self.id], |x, _| leaky_relu_value(x, slope))
        {
            return v;
        }
        Var::record_op(&LeakyRelu, args, None, &[self])
    }

    /// Elementwise ELU (`torch.nn.functional.elu`): `x` where `x > 0`, `alpha·(e^x - 1)`
    /// elsewhere. Derivative: 1 where `x > 0`, `alpha·e^x` elsewhere (at 0 too, as PyTorch).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var([-1.0, 0.0, 2.0]);
    /// let y = x.elu(1.0);
    /// assert_eq!(y.value().to_vec(), vec![(-1f64).exp_m1(), 0.0, 2.0]);
    /// assert_eq!(y.sum().backward()[x].to_vec(), vec![(-1f64).exp(), 1.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn elu(self, alpha: T) -> Var<'t, T> {
        let args = Args::Powf(alpha.to_f64());
        if let Some(v) = self
            .tape
            .record_scalar(&Elu, args, &[self.id], |x, _| elu_value(x, alpha))
        {
            return v;
        }
        Var::record_op(&Elu, args, None, &[self])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place of `f32` around the exact value.
    fn ulps(got: f32, exact: f64) -> f64 {
        if exact == 0.0 {
            return if got == 0.0 { 0.0 } else { f64::INFINITY };
        }
        let e = exact.abs() as f32;
        let spacing = if e == 0.0 {
            f32::from_bits(1) as f64
        } else {
            (f32::from_bits(e.to_bits() + 1) - e) as f64
        };
        (got as f64 - exact).abs() / spacing
    }

    /// The worst distance in f32 ulps of `f32_fn` from `exact` over every `step`-th f32 of
    /// magnitude 2^-30 to `limit` (both signs), with the input where it occurs.
    fn worst_ulps(
        f32_fn: impl Fn(f32) -> f32,
        exact: impl Fn(f64) -> f64,
        limit: f32,
        step: usize,
    ) -> (f64, f32) {
        let from = (2.0f32).powi(-30).to_bits();
        (from..limit.to_bits())
            .step_by(step)
            .map(f32::from_bits)
            .flat_map(|x| [x, -x])
            .map(|x| (ulps(f32_fn(x), exact(x as f64)), x))
            .fold((0.0, 0.0), |w, n| if n.0 > w.0 { n } else { w })
    }

    fn assert_rel(got: f64, want: f64, tol: f64, what: &str) {
        assert!(
            (got - want).abs() <= tol * want.abs(),
            "{what}: {got:e}, want {want:e} (relative error {:e})",
            ((got - want) / want).abs()
        );
    }

    #[test]
    fn gaussian_f64_matches_high_precision_values() {
        // mpmath, 30 digits: x, Φ(x), x·Φ(x), Φ(x) + x·φ(x).
        let table = [
            (
                -0.5,
                0.3085375387259869,
                -0.15426876936299344,
                0.13250487534383715,
            ),
            (
                -1.0,
                0.15865525393145705,
                -0.15865525393145705,
                -0.0833154705876863,
            ),
            (
                -2.0,
                0.02275013194817921,
                -0.04550026389635842,
                -0.0852318010781969,
            ),
            (
                -3.5,
                0.00023262907903552504,
                -0.0008142017766243376,
                -0.002821760353624635,
            ),
            (
                -5.0,
                2.866515718791939e-07,
                -1.4332578593959695e-06,
                -7.146946001792295e-06,
            ),
            (
                -8.0,
                6.220960574271784e-16,
                -4.976768459417427e-15,
                -3.979607261086796e-14,
            ),
            (
                -12.0,
                1.776482112077679e-33,
                -2.1317785344932147e-32,
                -2.5578956616748956e-31,
            ),
            (
                -20.0,
                2.7536241186062337e-89,
                -5.507248237212468e-88,
                -1.1014360483133464e-86,
            ),
            (
                -30.0,
                4.906713927148187e-198,
                -1.472014178144456e-196,
                -4.416031690708495e-195,
            ),
            (1.5, 0.9331927987311419, 1.399789198096713, 1.1274691922299795),
            (4.0, 0.9999683287581669, 3.9998733150326675, 1.0005036496612265),
        ];
        for (x, cdf, gelu, slope) in table {
            assert_rel(gaussian_f64(x).0, cdf, 4e-15, &format!("Φ({x})"));
            assert_rel(Gelu::value(x), gelu, 4e-15, &format!("gelu({x})"));
            assert_rel(Gelu::slope(x), slope, 4e-14, &format!("gelu'({x})"));
        }
        // erfcx(z) = e^(z²) erfc(z), mpmath, on both sides of the switch at 4.
        for (z, want) in [
            (0.5, 0.6156903441929259),
            (1.0, 0.427583576155807),
            (2.5, 0.2108063640611436),
            (4.0, 0.13699945762506138),
            (4.5, 0.12248480427384142),
            (7.0, 0.07980005432915294),
            (30.0, 0.01879588886141675),
        ] {
            assert_rel(erfcx_f64(z), want, 3e-16, &format!("erfcx({z})"));
        }
        assert_eq!(gaussian_f64(0.0), (0.5, FRAC_1_SQRT_2PI));
        assert_eq!(gaussian_f64(f64::INFINITY), (1.0, 0.0));
        assert_eq!(gaussian_f64(f64::NEG_INFINITY), (0.0, 0.0));
        assert!(gaussian_f64(f64::NAN).0.is_nan());
    }

    #[test]
    fn gaussian_f64_agrees_with_erf_where_one_plus_erf_does_not_cancel() {
        // Above x = -1, 1 + erf(x/√2) ≥ 0.3 loses at most two bits: the series `erf_f64`
        // (checked against mpmath in erf.rs) is a reference there, across the switch at 0.5.
        for i in -1000..=4000 {
            let x = i as f64 * 1e-3;
            let want = 0.5 * (1.0 + erf_f64(x * FRAC_1_SQRT_2));
            assert_rel(gaussian_f64(x).0, want, 1e-15, &format!("Φ({x})"));
        }
    }

    #[test]
    fn gaussian_f32_is_within_a_few_ulps_everywhere() {
        let (ulp, x) = worst_ulps(|x| gaussian_f32(x).0, |x| gaussian_f64(x).0, 15.0, 997);
        assert!(ulp <= 7.0, "Φ: {ulp} ulp at x = {x:e}");
        let (ulp, x) = worst_ulps(|x| x * gaussian_f32(x).0, Gelu::value::<f64>, 13.0, 997);
        assert!(ulp <= 7.0, "gelu: {ulp} ulp at x = {x:e}");
        let (ulp, x) = worst_ulps(|x| gaussian_f32(x).1, |x| gaussian_f64(x).1, 13.0, 997);
        assert!(ulp <= 3.0, "φ: {ulp} ulp at x = {x:e}");
        // The f32 Φ against the series erf, where that is accurate to f32's precision.
        for i in -3000..=3000 {
            let x = i as f32 * 1e-3;
            let want = 0.5 * (1.0 + erf_f64(x as f64 * FRAC_1_SQRT_2));
            let ulp = ulps(gaussian_f32(x).0, want);
            assert!(ulp <= 7.0, "Φ({x}): {ulp} ulp from the series");
        }
        assert_eq!(gaussian_f32(f32::INFINITY), (1.0, 0.0));
        assert_eq!(gaussian_f32(f32::NEG_INFINITY), (0.0, 0.0));
        assert_eq!(gaussian_f32(-20.0).0, 0.0);
        assert_eq!(gaussian_f32(0.0).0, 0.5);
        assert!(gaussian_f32(f32::NAN).0.is_nan());
    }

    #[test]
    fn log1p_unit_f32_is_within_one_and_a_half_ulp() {
        // Every 1009th f32 from the smallest normal number to 1.
        let (ulp, e) = (f32::MIN_POSITIVE.to_bits()..1.0f32.to_bits())
            .step_by(1009)
            .map(f32::from_bits)
            .map(|e| (ulps(log1p_unit_f32(e), (e as f64).ln_1p()), e))
            .fold((0.0, 0.0), |w, n| if n.0 > w.0 { n } else { w });
        assert!(ulp <= 1.5, "{ulp} ulp at e = {e:e}");
        assert_eq!(log1p_unit_f32(0.0), 0.0);
        assert_eq!(log1p_unit_f32(1.0), std::f32::consts::LN_2);
    }

    #[test]
    fn f32_kernels_are_close_to_f64() {
        type Check = (&'static str, fn(f32) -> f32, fn(f64) -> f64, f32, f64);
        let checks: [Check; 5] = [
            ("silu", Silu::value, Silu::value, 85.0, 4.0),
            ("softplus", Softplus::value, Softplus::value, 85.0, 3.0),
            ("softplus'", Softplus::slope, Softplus::slope, 85.0, 3.0),
            ("log1p", Log1p::value, Log1p::value, 1e6, 0.5),
            ("expm1", Expm1::value, Expm1::value, 88.0, 0.5),
        ];
        for (name, f, exact, limit, tol) in checks {
            let (ulp, x) = worst_ulps(f, exact, limit, 4999);
            assert!(ulp <= tol, "{name}: {ulp} ulp at x = {x:e}");
        }
        // gelu_tanh's negative tail is about x·e^(2u), 2u = 2β(x + κx³) rounded to a couple of
        // ulps: its relative error grows like 2-3 |2u| ulps (as for any f32 evaluation of it).
        // (Below -9 the result leaves f32's normal range.)
        for i in -9000..=13000 {
            let x = i as f32 * 1e-3;
            let (got, want) = (GeluTanh::value(x) as f64, GeluTanh::value(x as f64));
            let two_u = 2.0 * GELU_BETA * (x as f64).abs() * (1.0 + GELU_KAPPA * (x as f64).powi(2));
            let tol = if x > 0.0 { 3.0 } else { 4.0 + 3.0 * two_u };
            assert_rel(got, want, tol * 2f64.powi(-24), &format!("gelu_tanh({x})"));
        }
        // The slopes of silu and both gelus go through 0 (near x = -1.28 and -0.75), where ulps
        // of the result mean little: compare absolutely, against the size of their terms (≤ 1.2).
        type Slope = (&'static str, fn(f32) -> f32, fn(f64) -> f64);
        let slopes: [Slope; 3] = [
            ("silu'", Silu::slope, Silu::slope),
            ("gelu'", Gelu::slope, Gelu::slope),
            ("gelu_tanh'", GeluTanh::slope, GeluTanh::slope),
        ];
        for (name, f, exact) in slopes {
            for i in -30000..=30000 {
                let x = i as f32 * 1e-3;
                let (got, want) = (f(x) as f64, exact(x as f64));
                assert!((got - want).abs() <= 3e-7, "{name}({x}): {got} vs {want}");
            }
        }
    }

    /// The f32 kernels over a sweep that crosses every branch, compiled for `level`.
    fn f32_kernels_at(level: crate::tensor::simd::Level) -> Vec<u32> {
        let xs: Vec<f32> = (-40_000..40_000)
            .map(|i| i as f32 * 7.3e-4)
            .chain([f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e30, -1e30, 0.0, -0.0])
            .collect();
        let mut out = vec![0.0f32; xs.len() * 9];
        crate::tensor::simd::run_at(
            level,
            #[inline(always)]
            || {
                for (o, &x) in out.chunks_exact_mut(9).zip(&xs) {
                    o[0] = Gelu::value(x);
                    o[1] = Gelu::slope(x);
                    o[2] = Softplus::value(x);
                    o[3] = Softplus::slope(x);
                    o[4] = Silu::value(x);
                    o[5] = Silu::slope(x);
                    o[6] = GeluTanh::value(x);
                    o[7] = GeluTanh::slope(x);
                    o[8] = x.exp();
                }
            },
        );
        // NaNs as one pattern: vector and scalar code may give a NaN another sign bit.
        out.into_iter()
            .map(|v| if v.is_nan() { u32::MAX } else { v.to_bits() })
            .collect()
    }

    #[test]
    fn wide_vector_kernels_round_exactly_as_the_portable_ones() {
        use crate::tensor::simd::{Level, best};
        let portable = f32_kernels_at(Level::Portable);
        for level in [Level::Avx2, Level::Avx512, best()] {
            let wide = f32_kernels_at(level);
            let first = portable.iter().zip(&wide).position(|(a, b)| a != b);
            if let Some(i) = first {
                panic!(
                    "{level:?} differs from the portable kernels at output {} of input {}: {:e} ({:#x}) against {:e} ({:#x})",
                    i % 9,
                    i / 9,
                    f32::from_bits(wide[i]),
                    wide[i],
                    f32::from_bits(portable[i]),
                    portable[i]
                );
            }
        }
    }

    #[test]
    fn kernels_at_extreme_inputs_are_finite_and_exact_in_the_limit() {
        for x in [1e4f32, 1e30, f32::MAX] {
            assert_eq!(Silu::value(x), x);
            assert_eq!(Gelu::value(x), x);
            assert_eq!(GeluTanh::value(x), x);
            assert_eq!(Softplus::value(x), x);
            assert_eq!(
                (Silu::slope(x), Gelu::slope(x), GeluTanh::slope(x)),
                (1.0, 1.0, 1.0)
            );
            assert_eq!(Softplus::slope(x), 1.0);
            assert_eq!(Silu::value(-x), 0.0);
            assert_eq!(Gelu::value(-x), 0.0);
            assert_eq!(GeluTanh::value(-x), 0.0);
            assert_eq!(Softplus::value(-x), 0.0);
            assert_eq!(
                (Silu::slope(-x), Gelu::slope(-x), GeluTanh::slope(-x)),
                (0.0, 0.0, 0.0)
            );
            assert_eq!(Softplus::slope(-x), 0.0);
        }
        assert_eq!(Softplus::value(20.5f32), 20.5);
        assert_eq!(Softplus::value(-100.0f64), (-100f64).exp());
        assert!(Gelu::value(f32::NAN).is_nan() && Softplus::value(f32::NAN).is_nan());
        assert!(Silu::value(f64::NAN).is_nan() && GeluTanh::value(f32::NAN).is_nan());
    }

    /// `derivative(k)` against central differences of `derivative(k - 1)` (the slope for k = 2,
    /// the value for the slope itself), for orders up to 6.
    fn check_derivatives<F: Smooth>(points: &[f64]) {
        let order = |k: i32, x: f64| match k {
            0 => F::value(x),
            1 => F::slope(x),
            k => F::derivative(k, x),
        };
        for &x in points {
            for k in 1..=6.min(F::DEGREE) {
                let h = 1e-5 * (1.0 + x.abs());
                let numeric = (order(k - 1, x + h) - order(k - 1, x - h)) / (2.0 * h);
                let analytic = order(k, x);
                let scale = 1.0 + numeric.abs();
                assert!(
                    (analytic - numeric).abs() <= 1e-5 * scale,
                    "{} order {k} at {x}: {analytic} vs finite difference {numeric}",
                    F::NAME
                );
            }
        }
    }

    #[test]
    fn derivatives_of_every_order_match_finite_differences() {
        let points = [-7.0, -2.5, -1.0, -0.3, 0.0, 0.4, 1.3, 3.0, 6.5];
        check_derivatives::<Silu>(&points);
        check_derivatives::<Gelu>(&points);
        check_derivatives::<GeluTanh>(&points);
        check_derivatives::<Softplus>(&points);
        check_derivatives::<Expm1>(&points);
        check_derivatives::<Square>(&points);
        check_derivatives::<Log1p>(&[-0.7, -0.2, 0.0, 0.5, 3.0]);
        check_derivatives::<Rsqrt>(&[0.3, 1.0, 2.5, 9.0]);
        // Closed forms: gelu'' = φ(x)(2 - x²), silu'' = σ'(x)(2 + x(1 - 2σ(x))).
        for x in [-3.0, -0.5, 0.0, 0.8, 2.0f64] {
            let phi = (-0.5 * x * x).exp() * FRAC_1_SQRT_2PI;
            assert_rel(
                Gelu::derivative(2, x) + 1e-300,
                phi * (2.0 - x * x) + 1e-300,
                1e-14,
                "gelu''",
            );
            let s = 1.0 / (1.0 + (-x).exp());
            let want = s * (1.0 - s) * (2.0 + x * (1.0 - 2.0 * s));
            assert_rel(Silu::derivative(2, x), want, 1e-13, "silu''");
        }
        // Saturated sides: no cancellation, the derivatives decay like e^-|x|.
        assert_rel(
            Silu::derivative(2, 40.0),
            -(-40f64).exp() * 38.0,
            1e-12,
            "silu''(40)",
        );
        assert_eq!(Softplus::derivative(2, 25.0), 0.0);
    }
}
