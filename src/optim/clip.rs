//! Gradient clipping, by total L2 norm and by value, in place on [`Gradients`].

use super::validate;
use crate::{Error, Float, Gradients};

/// Scales every parameter gradient so that their total L2 norm is at most `max_norm`, and
/// returns the total norm before clipping (PyTorch's `torch.nn.utils.clip_grad_norm_`).
///
/// ```text
/// n = √(Σ_params Σ_i g_i²)
/// c = max_norm / (n + 1e-6)
/// g ← c·g   for every parameter gradient, if c < 1
/// ```
///
/// The norm covers the gradients of every [`Param`](crate::Param) in `grads`, and is accumulated
/// in `f64`. A non-finite norm (a NaN or infinite gradient) is returned as is, and the gradients
/// are then scaled by NaN or 0 as in PyTorch; check the result if that can happen, or use
/// [`clip_grad_norm_with`] and `error_if_nonfinite` to get an error and unchanged gradients.
///
/// # Panics
/// If `max_norm` is negative or NaN.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::optim::clip_grad_norm;
///
/// let w = Param::new(Tensor::<f64>::from_vec(vec![0.0, 0.0], &[2]));
/// let tape = Tape::new();
/// let g = tape.constant(Tensor::from_vec(vec![3.0, 4.0], &[2]));
/// let mut grads = (tape.param(&w) * g).sum().backward();  // gradient (3, 4), norm 5
/// let norm = clip_grad_norm(&mut grads, 1.0);
/// assert_eq!(norm, 5.0);
/// let clipped = grads.param(&w).unwrap().to_vec();
/// assert!((clipped[0] - 0.6).abs() < 1e-6 && (clipped[1] - 0.8).abs() < 1e-6);
/// ```
#[track_caller]
pub fn clip_grad_norm<T: Float>(grads: &mut Gradients<T>, max_norm: f64) -> f64 {
    match clip(grads, max_norm, ClipGradNormConfig::default()) {
        Ok(norm) => norm,
        Err(_) => unreachable!("clip_grad_norm: only error_if_nonfinite makes an error"),
    }
}

/// Options of [`clip_grad_norm_with`], as PyTorch's keyword arguments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClipGradNormConfig {
    /// Return an error, and leave the gradients untouched, when the total norm is NaN or
    /// infinite (PyTorch's `error_if_nonfinite=True`), instead of scaling every gradient by NaN
    /// or 0. Off by default, as in PyTorch.
    pub error_if_nonfinite: bool,
}

/// [`clip_grad_norm`] with options: with `error_if_nonfinite`, a NaN or infinite gradient is an
/// [`Error::NonFinite`] naming the first parameter (by shape and id) whose gradient is not
/// finite, and no gradient is changed, so a training loop can skip the step.
///
/// # Errors
/// [`Error::NonFinite`] as above.
///
/// # Panics
/// If `max_norm` is negative or NaN.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::optim::{ClipGradNormConfig, clip_grad_norm_with};
///
/// let w = Param::new(Tensor::<f32>::from_vec(vec![1.0, 2.0], &[2]));
/// let tape = Tape::new();
/// let mut grads = (tape.param(&w).ln() * tape.constant([f32::NAN, 1.0])).sum().backward();
/// let config = ClipGradNormConfig { error_if_nonfinite: true };
/// let err = clip_grad_norm_with(&mut grads, 1.0, config).unwrap_err();
/// assert!(err.to_string().contains("not finite"));
/// assert!(grads.param(&w).unwrap().to_vec()[0].is_nan()); // left as it was: skip this step
/// ```
#[track_caller]
pub fn clip_grad_norm_with<T: Float>(
    grads: &mut Gradients<T>,
    max_norm: f64,
    config: ClipGradNormConfig,
) -> Result<f64, Error> {
    clip(grads, max_norm, config)
}

#[track_caller]
fn clip<T: Float>(grads: &mut Gradients<T>, max_norm: f64, config: ClipGradNormConfig) -> Result<f64, Error> {
    validate::check(
        "clip_grad_norm",
        "max_norm",
        max_norm,
        max_norm >= 0.0,
        "must be a number >= 0",
    );
    let total_norm = grads
        .params()
        .map(|(_, g)| {
            let norm = g
                .as_slice()
                .iter()
                .map(|x| x.to_f64() * x.to_f64())
                .sum::<f64>()
                .sqrt();
            norm * norm
        })
        .sum::<f64>()
        .sqrt();
    if config.error_if_nonfinite && !total_norm.is_finite() {
        let culprit = grads
            .params()
            .find(|(_, g)| !g.all_finite())
            .map(|(p, g)| format!("the gradient of parameter {} of shape {:?}", p.id(), g.shape()))
            .unwrap_or_else(|| "the sum of squares overflows".to_string());
        return Err(Error::NonFinite {
            op: "clip_grad_norm",
            detail: format!(
                "the total gradient norm is {total_norm}, not finite: {culprit} holds a NaN or an \
                 infinity; the gradients are left unchanged"
            ),
        });
    }
    let clip_coef = max_norm / (total_norm + 1e-6);
    // PyTorch multiplies by min(clip_coef, 1) always; multiplying by 1 changes nothing, so skip it
    // (and the copy a shared gradient buffer would need).
    if clip_coef < 1.0 || clip_coef.is_nan() {
        let c = T::from_f64(clip_coef);
        for (_, g) in grads.params_mut() {
            for x in g.as_mut_slice() {
                *x *= c;
            }
        }
    }
    Ok(total_norm)
}

/// Clamps every parameter gradient element to `[-clip_value, clip_value]` (PyTorch's
/// `torch.nn.utils.clip_grad_value_`). NaN elements stay NaN.
///
/// # Panics
/// If `clip_value` is negative or not finite.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::optim::clip_grad_value;
///
/// let w = Param::new(Tensor::<f32>::from_vec(vec![0.0, 0.0, 0.0], &[3]));
/// let tape = Tape::new();
/// let g = tape.constant(Tensor::from_vec(vec![-3.0, 0.5, 2.0], &[3]));
/// let mut grads = (tape.param(&w) * g).sum().backward();
/// clip_grad_value(&mut grads, 1.0);
/// assert_eq!(grads.param(&w).unwrap().to_vec(), vec![-1.0, 0.5, 1.0]);
/// ```
#[track_caller]
pub fn clip_grad_value<T: Float>(grads: &mut Gradients<T>, clip_value: f64) {
    validate::non_negative("clip_grad_value", "clip_value", clip_value);
    let hi = T::from_f64(clip_value);
    let lo = -hi;
    for (_, g) in grads.params_mut() {
        if g.as_slice().iter().any(|&x| x > hi || x < lo) {
            for x in g.as_mut_slice() {
                *x = if *x > hi {
                    hi
                } else if *x < lo {
                    lo
                } else {
                    *x
                };
            }
        }
    }
}
