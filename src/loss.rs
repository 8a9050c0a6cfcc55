//! Loss functions: scalar summaries of a prediction's error, ready for [`Var::backward`].

use crate::{Float, Var};

/// Mean cross-entropy of `logits` `[N, C]` against class indices `targets` (one per row):
/// `mean_i( -log_softmax(logits)[i, targets[i]] )`, as PyTorch's `cross_entropy`.
///
/// The log-softmax is computed stably, so logits of ±1000 give finite losses and gradients.
///
/// # Panics
/// If `logits` is not rank 2, `targets.len()` differs from `N`, or a target is not below `C`.
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
pub fn cross_entropy<'t, T: Float>(logits: Var<'t, T>, targets: &[usize]) -> Var<'t, T> {
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
