//! Parameter initialisers (PyTorch's `nn.init`): uniform, normal, Xavier/Glorot and Kaiming/He.
//!
//! Each returns a new tensor drawn from the given random generator, so a seeded generator gives
//! the same values every run. Fans follow PyTorch: for a shape `[out, in, k...]`,
//! `fan_in = in · Πk` and `fan_out = out · Πk`; a rank-1 shape `[n]` has both fans `n`.
//!
//! ```
//! use tapegrad::nn::init;
//! use tapegrad::rand::{SeedableRng, rngs::StdRng};
//! let w = init::xavier_uniform::<f32, _>(&[64, 32], 1.0, &mut StdRng::seed_from_u64(0));
//! let bound = (6.0f32 / (32.0 + 64.0)).sqrt();
//! assert!(w.as_slice().iter().all(|v| v.abs() <= bound));
//! ```

use rand::Rng;

use crate::{Float, Param, Tensor};

/// `(fan_in, fan_out)` of a weight shape, as PyTorch computes them.
///
/// # Panics
/// If the shape is rank 0.
///
/// ```
/// assert_eq!(tapegrad::nn::init::fans(&[16, 8, 3, 3]), (72, 144));
/// ```
#[track_caller]
pub fn fans(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => panic!("tapegrad: init: fans need a shape of rank at least 1, got []"),
        [n] => (*n, *n),
        [out, inp, rest @ ..] => {
            let field: usize = rest.iter().product();
            (inp * field, out * field)
        }
    }
}

/// Values drawn uniformly from `[lo, hi)`.
///
/// ```
/// use tapegrad::nn::init;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
/// let t = init::uniform::<f64, _>(&[100], -0.5, 0.5, &mut StdRng::seed_from_u64(0));
/// assert!(t.as_slice().iter().all(|v| (-0.5..0.5).contains(v)));
/// ```
pub fn uniform<T: Float, R: Rng + ?Sized>(shape: &[usize], lo: f64, hi: f64, rng: &mut R) -> Tensor<T> {
    if lo == hi {
        return Tensor::full(shape, T::from_f64(lo));
    }
    Tensor::rand_uniform(shape, T::from_f64(lo), T::from_f64(hi), rng)
}

/// Values drawn from the normal distribution `N(mean, std²)`.
///
/// ```
/// use tapegrad::nn::init;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
/// let t = init::normal::<f64, _>(&[10_000], 1.0, 0.1, &mut StdRng::seed_from_u64(0));
/// let mean = t.as_slice().iter().sum::<f64>() / 10_000.0;
/// assert!((mean - 1.0).abs() < 0.01);
/// ```
pub fn normal<T: Float, R: Rng + ?Sized>(shape: &[usize], mean: f64, std: f64, rng: &mut R) -> Tensor<T> {
    let (m, s) = (T::from_f64(mean), T::from_f64(std));
    Tensor::randn(shape, rng).map(|v| m + s * v)
}

/// Xavier/Glorot uniform: `U(-b, b)` with `b = gain · √(6 / (fan_in + fan_out))`.
///
/// ```
/// use tapegrad::nn::init;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
/// let w = init::xavier_uniform::<f64, _>(&[3, 5], 2.0, &mut StdRng::seed_from_u64(0));
/// assert!(w.as_slice().iter().all(|v| v.abs() <= 2.0 * (6.0f64 / 8.0).sqrt()));
/// ```
#[track_caller]
pub fn xavier_uniform<T: Float, R: Rng + ?Sized>(shape: &[usize], gain: f64, rng: &mut R) -> Tensor<T> {
    let (fan_in, fan_out) = fans(shape);
    let bound = gain * (6.0 / (fan_in + fan_out).max(1) as f64).sqrt();
    uniform(shape, -bound, bound, rng)
}

/// Xavier/Glorot normal: `N(0, σ²)` with `σ = gain · √(2 / (fan_in + fan_out))`.
///
/// ```
/// use tapegrad::nn::init;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
/// let w = init::xavier_normal::<f64, _>(&[200, 200], 1.0, &mut StdRng::seed_from_u64(0));
/// let var = w.as_slice().iter().map(|v| v * v).sum::<f64>() / 40_000.0;
/// assert!((var - 2.0 / 400.0).abs() < 2e-4);
/// ```
#[track_caller]
pub fn xavier_normal<T: Float, R: Rng + ?Sized>(shape: &[usize], gain: f64, rng: &mut R) -> Tensor<T> {
    let (fan_in, fan_out) = fans(shape);
    let std = gain * (2.0 / (fan_in + fan_out).max(1) as f64).sqrt();
    normal(shape, 0.0, std, rng)
}

/// The gain of Kaiming initialisation for a leaky ReLU of negative slope `a`: `√(2 / (1 + a²))`
/// (`a = 0` is ReLU's `√2`).
fn leaky_relu_gain(a: f64) -> f64 {
    (2.0 / (1.0 + a * a)).sqrt()
}

/// Kaiming/He uniform (fan-in mode, leaky-ReLU slope `a`): `U(-b, b)` with
/// `b = √(2 / (1 + a²)) · √(3 / fan_in)`. Use `a = 0` for ReLU; `a = √5` is
/// [`Linear`](super::Linear)'s default, giving `b = 1/√fan_in`.
///
/// ```
/// use tapegrad::nn::init;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
/// let w = init::kaiming_uniform::<f64, _>(&[4, 9], 5f64.sqrt(), &mut StdRng::seed_from_u64(0));
/// assert!(w.as_slice().iter().all(|v| v.abs() <= 1.0 / 3.0));
/// ```
#[track_caller]
pub fn kaiming_uniform<T: Float, R: Rng + ?Sized>(shape: &[usize], a: f64, rng: &mut R) -> Tensor<T> {
    let (fan_in, _) = fans(shape);
    let bound = leaky_relu_gain(a) * (3.0 / fan_in.max(1) as f64).sqrt();
    uniform(shape, -bound, bound, rng)
}

/// Kaiming/He normal (fan-in mode, leaky-ReLU slope `a`): `N(0, σ²)` with
/// `σ = √(2 / (1 + a²)) / √fan_in`.
///
/// ```
/// use tapegrad::nn::init;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
/// let w = init::kaiming_normal::<f64, _>(&[100, 400], 0.0, &mut StdRng::seed_from_u64(0));
/// let var = w.as_slice().iter().map(|v| v * v).sum::<f64>() / 40_000.0;
/// assert!((var - 2.0 / 400.0).abs() < 2e-4);
/// ```
#[track_caller]
pub fn kaiming_normal<T: Float, R: Rng + ?Sized>(shape: &[usize], a: f64, rng: &mut R) -> Tensor<T> {
    let (fan_in, _) = fans(shape);
    let std = leaky_relu_gain(a) / (fan_in.max(1) as f64).sqrt();
    normal(shape, 0.0, std, rng)
}

/// PyTorch's default parameters of a dense or convolution layer with a weight of `shape`
/// (`[out, in, kernel...]`) and, with `bias`, a bias `[out]`: the weight Kaiming-uniform with
/// `a = √5`, the bias `U(-1/√fan_in, 1/√fan_in)`, drawn in that order (as `nn.Linear`, `nn.Conv1d`
/// and `nn.Conv2d` draw them).
pub(crate) fn layer_params<T: Float, R: Rng + ?Sized>(
    shape: &[usize],
    bias: bool,
    rng: &mut R,
) -> (Param<T>, Option<Param<T>>) {
    let weight = kaiming_uniform(shape, 5f64.sqrt(), rng);
    let (fan_in, _) = fans(shape);
    let bound = if fan_in > 0 {
        1.0 / (fan_in as f64).sqrt()
    } else {
        0.0
    };
    let bias = bias.then(|| Param::new(uniform(&[shape[0]], -bound, bound, rng)));
    (Param::new(weight), bias)
}

/// Checks a layer's given weight (rank `rank`, laid out as `layout`) and optional bias `[out]`.
///
/// # Panics
/// With a message naming `layer` otherwise.
#[track_caller]
pub(crate) fn check_layer_params<T: Float>(
    layer: &str,
    layout: &str,
    rank: usize,
    weight: &Param<T>,
    bias: Option<&Param<T>>,
) {
    let ws = weight.shape();
    assert!(
        ws.len() == rank,
        "tapegrad: {layer}: weight must be {layout}, got shape {ws:?}"
    );
    if let Some(b) = bias {
        let bs = b.shape();
        assert!(
            bs == [ws[0]],
            "tapegrad: {layer}: bias shape {bs:?} does not match weight shape {ws:?} (want [{}])",
            ws[0]
        );
    }
}
