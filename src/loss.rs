//! Loss functions: scalar summaries of a prediction's error, ready for [`Var::backward`].

use crate::{Float, Tensor, Var};

/// Class indices, one per row of `[N, C]` scores: what [`cross_entropy`], [`cross_entropy_with`]
/// and [`nll`] take as targets, by reference. Implemented for slices `[usize]`, arrays
/// `[usize; N]`, `Vec<usize>`, rank-1 `Tensor<usize>` (e.g. from
/// [`argmax_axis`](Tensor::argmax_axis) or a data set) and references to any of these.
///
/// The trait is sealed: it is implemented for exactly these types.
///
/// ```
/// use tapegrad::{loss, Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let logits = tape.var(Tensor::from_vec(vec![0.0, 1.0, 2.0, 0.5], &[2, 2]));
/// let from_slice = loss::cross_entropy(logits, &[1, 0]);
/// let from_vec = loss::cross_entropy(logits, &vec![1, 0]);
/// let from_tensor = loss::cross_entropy(logits, &Tensor::<usize>::from(vec![1, 0]));
/// assert_eq!(from_slice.item(), from_vec.item());
/// assert_eq!(from_slice.item(), from_tensor.item());
/// ```
pub trait Labels: sealed::Labels {}

mod sealed {
    use crate::Tensor;

    /// The access the losses use, kept out of the public trait so that it may change.
    pub trait Labels {
        /// The indices, or the shape of a tensor that is not rank 1.
        fn class_indices(&self) -> Result<&[usize], &[usize]>;
    }

    impl Labels for [usize] {
        fn class_indices(&self) -> Result<&[usize], &[usize]> {
            Ok(self)
        }
    }
    impl<const N: usize> Labels for [usize; N] {
        fn class_indices(&self) -> Result<&[usize], &[usize]> {
            Ok(self)
        }
    }
    impl Labels for Vec<usize> {
        fn class_indices(&self) -> Result<&[usize], &[usize]> {
            Ok(self)
        }
    }
    impl Labels for Tensor<usize> {
        fn class_indices(&self) -> Result<&[usize], &[usize]> {
            if self.rank() == 1 {
                Ok(self.as_slice())
            } else {
                Err(self.shape())
            }
        }
    }
    impl<L: Labels + ?Sized> Labels for &L {
        fn class_indices(&self) -> Result<&[usize], &[usize]> {
            (**self).class_indices()
        }
    }
}

impl Labels for [usize] {}
impl<const N: usize> Labels for [usize; N] {}
impl Labels for Vec<usize> {}
impl Labels for Tensor<usize> {}
impl<L: Labels + ?Sized> Labels for &L {}

/// The targets as a slice.
///
/// # Panics
/// If they are a tensor of another rank than 1, naming `op`.
#[track_caller]
fn class_indices<'a>(op: &str, targets: &'a (impl Labels + ?Sized)) -> &'a [usize] {
    match sealed::Labels::class_indices(targets) {
        Ok(indices) => indices,
        Err(shape) => panic!(
            "tapegrad: {op}: targets must be a rank-1 tensor [N] of class indices, got shape {shape:?}"
        ),
    }
}

/// Mean cross-entropy of `logits` `[N, C]` against class indices `targets` (one per row; a
/// slice, array, `Vec` or rank-1 `Tensor<usize>`, see [`Labels`]):
/// `mean_i( -log_softmax(logits)[i, targets[i]] )`, as PyTorch's `cross_entropy`.
///
/// The log-softmax is computed stably, so logits of ±1000 give finite losses and gradients.
///
/// # Panics
/// If `logits` is not rank 2, the number of targets differs from `N`, a target is not below
/// `C`, or the targets are a tensor of another rank than 1.
///
/// ```
/// use tapegrad::{loss, Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let logits = tape.var(Tensor::from_vec(vec![0.0, 0.0, 1000.0, -1000.0], &[2, 2]));
/// let l = loss::cross_entropy(logits, &[1, 0]);
/// assert!((l.item() - std::f64::consts::LN_2 / 2.0).abs() < 1e-12);
/// let g = l.backward();
/// assert!(g[logits].all_finite());
///
/// // A class ruled out with -inf does not poison the loss.
/// let logits = tape.var(Tensor::from_vec(vec![0.0, f64::NEG_INFINITY, 0.0], &[1, 3]));
/// assert!((loss::cross_entropy(logits, &[0]).item() - std::f64::consts::LN_2).abs() < 1e-12);
/// ```
#[track_caller]
pub fn cross_entropy<'t, T: Float>(logits: Var<'t, T>, targets: &(impl Labels + ?Sized)) -> Var<'t, T> {
    let targets = class_indices("cross_entropy", targets);
    let shape = logits.shape();
    assert!(
        shape.len() == 2,
        "tapegrad: cross_entropy: logits must be [N, C], got shape {shape:?}"
    );
    let (n, c) = (shape[0], shape[1]);
    assert!(
        targets.len() == n,
        "tapegrad: cross_entropy: {} targets for {n} rows of logits {shape:?}",
        targets.len()
    );
    if let Some((row, &t)) = targets.iter().enumerate().find(|&(_, &t)| t >= c) {
        panic!("tapegrad: cross_entropy: target {t} at row {row} is not a class index below {c}");
    }
    // Fused: pick each row's target log-probability instead of multiplying by a one-hot matrix,
    // so a -inf logit in another class cannot turn the loss into 0 * -inf = NaN.
    -logits.log_softmax(1).pick(targets).sum() * (T::ONE / T::from_usize(n.max(1)))
}

/// Mean squared error `mean((pred - target)²)` of two vars of the same shape.
///
/// # Panics
/// If the shapes differ (no silent broadcasting: a `[N]` target against `[N, 1]` predictions
/// would otherwise average an `N × N` grid).
///
/// ```
/// use tapegrad::{loss, Tape};
/// let tape = Tape::<f64>::new();
/// let pred = tape.var([1.0, 2.0]);
/// let target = tape.constant([0.0, 4.0]);
/// let l = loss::mse(pred, target);
/// assert_eq!(l.item(), 2.5);                                 // (1 + 4) / 2
/// assert_eq!(l.backward()[pred].to_vec(), vec![1.0, -2.0]); // 2 (pred - target) / 2
/// ```
#[track_caller]
pub fn mse<'t, T: Float>(pred: Var<'t, T>, target: Var<'t, T>) -> Var<'t, T> {
    let (ps, ts) = (pred.shape(), target.shape());
    assert!(
        ps == ts,
        "tapegrad: mse: prediction shape {ps:?} differs from target shape {ts:?}"
    );
    let diff = pred - target;
    (diff * diff).mean()
}

#[track_caller]
fn check_same_shape<T: Float>(op: &str, pred: Var<'_, T>, target: Var<'_, T>) {
    let (ps, ts) = (pred.shape(), target.shape());
    assert!(
        ps == ts,
        "tapegrad: {op}: prediction shape {ps:?} differs from target shape {ts:?}"
    );
}

/// Mean absolute error `mean(|pred - target|)` of two vars of the same shape (PyTorch's `l1_loss`).
/// The gradient at `pred == target` is 0.
///
/// # Panics
/// If the shapes differ.
///
/// ```
/// use tapegrad::{loss, Tape};
/// let tape = Tape::<f64>::new();
/// let pred = tape.var([1.0, 2.0]);
/// let l = loss::l1(pred, tape.constant([0.0, 4.0]));
/// assert_eq!(l.item(), 1.5);
/// assert_eq!(l.backward()[pred].to_vec(), vec![0.5, -0.5]);
/// ```
#[track_caller]
pub fn l1<'t, T: Float>(pred: Var<'t, T>, target: Var<'t, T>) -> Var<'t, T> {
    check_same_shape("l1", pred, target);
    (pred - target).abs().mean()
}

/// Mean Huber loss (PyTorch's `huber_loss`): with `d = pred - target`, `d²/2` where
/// `|d| < delta`, else `delta (|d| - delta/2)`. Quadratic near 0, linear (robust) beyond `delta`.
///
/// # Panics
/// If the shapes differ or `delta` is not positive.
///
/// ```
/// use tapegrad::{loss, Tape};
/// let tape = Tape::<f64>::new();
/// let pred = tape.var([0.5, 3.0]);
/// let l = loss::huber(pred, tape.constant([0.0, 0.0]), 1.0);
/// assert_eq!(l.item(), (0.125 + 2.5) / 2.0);
/// assert_eq!(l.backward()[pred].to_vec(), vec![0.25, 0.5]);
/// ```
#[track_caller]
pub fn huber<'t, T: Float>(pred: Var<'t, T>, target: Var<'t, T>, delta: f64) -> Var<'t, T> {
    check_same_shape("huber", pred, target);
    assert!(
        delta > 0.0,
        "tapegrad: huber: delta must be positive, got {delta}"
    );
    let delta = T::from_f64(delta);
    let a = (pred - target).abs();
    // q = min(|d|, delta); loss = q²/2 + delta (|d| - q).
    let over = (a - delta).relu();
    let q = a - over;
    (q * q * T::from_f64(0.5) + over * delta).mean()
}

/// Mean binary cross-entropy of `logits` against targets in `[0, 1]` of the same shape, with the
/// sigmoid folded in (PyTorch's `binary_cross_entropy_with_logits`):
/// `mean(log(1 + e^x) - x·y)`.
///
/// Computed as PyTorch does, `(1 - y)·x + max(-x, 0) + ln(1 + e^-|x|)` with `log1p` for the
/// last term, in one op: it never exponentiates a positive number, so logits of ±1000 give finite
/// losses and gradients, and the tail is exact (a logit of 17 against a target of 1 costs
/// 4.1e-8, not 0); infinite logits give PyTorch's values (`+inf` against 0 costs `+inf`). The
/// gradient is `sigmoid(x) - y` everywhere, also at `x = 0`, and differentiable again.
///
/// # Panics
/// If the shapes differ.
///
/// ```
/// use tapegrad::{loss, Tape};
/// let tape = Tape::<f64>::new();
/// let x = tape.var([0.0, 1000.0, -1000.0]);
/// let l = loss::binary_cross_entropy_with_logits(x, tape.constant([1.0, 1.0, 1.0]));
/// assert!((l.item() - (std::f64::consts::LN_2 + 0.0 + 1000.0) / 3.0).abs() < 1e-9);
/// let g = l.backward()[x].to_vec();
/// assert!((g[0] + 0.5 / 3.0).abs() < 1e-15 && g[1] == 0.0 && (g[2] + 1.0 / 3.0).abs() < 1e-15);
/// ```
#[track_caller]
pub fn binary_cross_entropy_with_logits<'t, T: Float>(logits: Var<'t, T>, targets: Var<'t, T>) -> Var<'t, T> {
    check_same_shape("binary_cross_entropy_with_logits", logits, targets);
    logits.bce_with_logits(targets).mean()
}

/// Mean negative log-likelihood of `log_probs` `[N, C]` (e.g. from
/// [`log_softmax`](Var::log_softmax)) at class indices `targets`: `-mean_i(log_probs[i, targets[i]])`,
/// as PyTorch's `nll_loss`.
///
/// # Panics
/// If `log_probs` is not rank 2, the number of targets differs from `N`, a target is not below
/// `C`, or the targets are a tensor of another rank than 1.
///
/// ```
/// use tapegrad::{loss, Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let lp = tape.var(Tensor::from_vec(vec![-1.0, -2.0, -3.0, -4.0], &[2, 2]));
/// let l = loss::nll(lp, &[1, 0]);
/// assert_eq!(l.item(), 2.5);
/// assert_eq!(l.backward()[lp].to_vec(), vec![0.0, -0.5, -0.5, 0.0]);
/// ```
#[track_caller]
pub fn nll<'t, T: Float>(log_probs: Var<'t, T>, targets: &(impl Labels + ?Sized)) -> Var<'t, T> {
    let targets = class_indices("nll", targets);
    let n = check_class_targets("nll", log_probs, targets);
    -log_probs.pick(targets).sum() * (T::ONE / T::from_usize(n.max(1)))
}

#[track_caller]
fn check_class_targets<T: Float>(op: &str, scores: Var<'_, T>, targets: &[usize]) -> usize {
    let shape = scores.shape();
    assert!(
        shape.len() == 2,
        "tapegrad: {op}: input must be [N, C], got shape {shape:?}"
    );
    let (n, c) = (shape[0], shape[1]);
    assert!(
        targets.len() == n,
        "tapegrad: {op}: {} targets for {n} rows of input {shape:?}",
        targets.len()
    );
    if let Some((row, &t)) = targets.iter().enumerate().find(|&(_, &t)| t >= c) {
        panic!("tapegrad: {op}: target {t} at row {row} is not a class index below {c}");
    }
    n
}

/// Options of [`cross_entropy_with`] (PyTorch's `cross_entropy` keyword arguments).
///
/// ```
/// let config = tapegrad::loss::CrossEntropyConfig { label_smoothing: 0.1 };
/// assert_eq!(tapegrad::loss::CrossEntropyConfig::default().label_smoothing, 0.0);
/// # let _ = config;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CrossEntropyConfig {
    /// `ε` in `[0, 1]`: the target distribution is `(1 - ε)` on the class plus `ε / C` on every
    /// class. 0 (the default) is plain cross-entropy.
    pub label_smoothing: f64,
}

/// [`cross_entropy`] with options: with label smoothing `ε`, the mean over rows of
/// `(1 - ε)·(-log p[target]) + ε·mean_c(-log p[c])`, as PyTorch.
///
/// Stable at logits of ±1000 (the log-softmax is computed stably). With `ε > 0`, a logit of `-inf`
/// makes the loss infinite, as in PyTorch.
///
/// # Panics
/// As [`cross_entropy`], and if `label_smoothing` is not in `[0, 1]`.
///
/// ```
/// use tapegrad::{loss, Tape, Tensor};
/// use tapegrad::loss::CrossEntropyConfig;
/// let tape = Tape::<f64>::new();
/// let logits = tape.var(Tensor::from_vec(vec![0.0, 0.0], &[1, 2]));
/// let l = loss::cross_entropy_with(logits, &[0], CrossEntropyConfig { label_smoothing: 0.2 });
/// assert!((l.item() - std::f64::consts::LN_2).abs() < 1e-15); // uniform logits: ln 2 either way
/// // gradient = softmax - smoothed target = 0.5 - (0.8 + 0.1), 0.5 - 0.1
/// let g = l.backward()[logits].to_vec();
/// assert!((g[0] + 0.4).abs() < 1e-15 && (g[1] - 0.4).abs() < 1e-15);
/// ```
#[track_caller]
pub fn cross_entropy_with<'t, T: Float>(
    logits: Var<'t, T>,
    targets: &(impl Labels + ?Sized),
    config: CrossEntropyConfig,
) -> Var<'t, T> {
    let targets = class_indices("cross_entropy_with", targets);
    let eps = config.label_smoothing;
    assert!(
        (0.0..=1.0).contains(&eps),
        "tapegrad: cross_entropy_with: label_smoothing must be in [0, 1], got {eps}"
    );
    if eps == 0.0 {
        return cross_entropy(logits, targets);
    }
    let n = check_class_targets("cross_entropy_with", logits, targets);
    let c = logits.shape()[1];
    let log_p = logits.log_softmax(1);
    let picked = -log_p.pick(targets).sum() * T::from_f64((1.0 - eps) / n.max(1) as f64);
    let smooth = -log_p.sum() * T::from_f64(eps / (n.max(1) * c.max(1)) as f64);
    picked + smooth
}
