//! Normalisation layers: [`LayerNorm`] (per example, over features), [`RmsNorm`] (root mean
//! square, no centring) and [`BatchNorm1d`] (per
//! feature, over the batch, with running statistics for evaluation).

use super::Module;
use crate::{Float, Param, Tape, Tensor, Var};

/// `(x - mean) / sqrt(var + eps)` over `axis` (biased variance), recorded with differentiable ops.
fn normalize<'t, T: Float>(x: Var<'t, T>, axis: usize, eps: f64) -> (Var<'t, T>, Var<'t, T>, Var<'t, T>) {
    let mean = x.mean_axis(axis, true);
    let centred = x - mean;
    let var = (centred * centred).mean_axis(axis, true);
    ((centred / (var + T::from_f64(eps)).sqrt()), mean, var)
}

/// Layer normalisation over the last axis (PyTorch's `nn.LayerNorm(features)`):
/// `y = (x - mean) / sqrt(var + eps) · weight + bias`, with the mean and biased variance of each
/// example's `features` values. `weight` starts at 1, `bias` at 0; `eps` is `1e-5`.
///
/// # Panics
/// `forward` panics if the input's last axis is not `features`.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::nn::LayerNorm;
/// let ln = LayerNorm::<f64>::new(4);
/// let tape = Tape::new();
/// let y = ln.forward(&tape, tape.var(Tensor::from_vec(vec![1., 2., 3., 4.], &[1, 4]))).value();
/// let mean = y.as_slice().iter().sum::<f64>() / 4.0;
/// let var = y.as_slice().iter().map(|v| v * v).sum::<f64>() / 4.0;
/// assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-4);
/// ```
#[derive(Module, Clone, Debug)]
pub struct LayerNorm<T: Float = f32> {
    /// The scale, `[features]`.
    pub weight: Param<T>,
    /// The shift, `[features]`.
    pub bias: Param<T>,
    /// Added to the variance before the square root.
    #[module(skip)]
    pub eps: f64,
    #[module(training)]
    training: bool,
}

impl<T: Float> LayerNorm<T> {
    /// Normalisation over a last axis of size `features`.
    pub fn new(features: usize) -> Self {
        LayerNorm {
            weight: Param::new(Tensor::ones(&[features])),
            bias: Param::new(Tensor::zeros(&[features])),
            eps: 1e-5,
            training: true,
        }
    }
}

impl<T: Float> LayerNorm<T> {
    /// Records the layer applied to `x` on `tape` and returns the output (the same as
    /// [`Forward::forward`](crate::nn::Forward::forward), callable without the trait in scope).
    #[track_caller]
    pub fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        let shape = x.shape();
        let features = self.weight.shape()[0];
        assert!(
            shape.last() == Some(&features),
            "tapegrad: LayerNorm: input shape {shape:?} does not end in {features} features"
        );
        let (y, _, _) = normalize(x, shape.len() - 1, self.eps);
        y * tape.param(&self.weight) + tape.param(&self.bias)
    }
}

crate::nn::forward_via_inherent!(LayerNorm);

/// Batch normalisation of `[N, C]` inputs (PyTorch's `nn.BatchNorm1d(C)`):
/// `y = (x - mean) / sqrt(var + eps) · weight + bias` per feature.
///
/// In training mode the mean and biased variance are the batch's, and the running statistics move
/// towards them: `running = (1 - momentum) · running + momentum · batch` (the running variance uses
/// the unbiased batch variance, as PyTorch). In evaluation mode the running statistics are used,
/// so each example's output no longer depends on the rest of the batch. `eps = 1e-5`,
/// `momentum = 0.1`; running mean starts at 0, running variance at 1.
///
/// # Panics
/// `forward` panics if the input is not `[N, C]`, or in training mode if `N < 2`.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::nn::BatchNorm1d;
/// let mut bn = BatchNorm1d::<f64>::new(1);
/// let tape = Tape::new();
/// let x = tape.var(Tensor::from_vec(vec![1., 3.], &[2, 1]));
/// let y = bn.forward(&tape, x).value().to_vec();
/// assert!((y[0] + 1.0).abs() < 1e-5 && (y[1] - 1.0).abs() < 1e-5);
/// assert!((bn.running_mean().to_vec()[0] - 0.2).abs() < 1e-12); // 0.9 · 0 + 0.1 · 2
/// assert!((bn.running_var().to_vec()[0] - 1.1).abs() < 1e-12);  // 0.9 · 1 + 0.1 · 2
/// bn.eval();
/// let y = bn.forward(&tape, x).value().to_vec();
/// assert!((y[0] - (1.0 - 0.2) / (1.1f64 + 1e-5).sqrt()).abs() < 1e-12);
/// ```
#[derive(Module, Debug)]
pub struct BatchNorm1d<T: Float = f32> {
    /// The scale, `[C]`.
    pub weight: Param<T>,
    /// The shift, `[C]`.
    pub bias: Param<T>,
    /// Added to the variance before the square root.
    #[module(skip)]
    pub eps: f64,
    /// The weight of each batch in the running statistics.
    #[module(skip)]
    pub momentum: f64,
    // Buffers: saved, not trained. PyTorch also saves `num_batches_tracked`, which only matters
    // there when `momentum` is `None`; tapegrad's momentum is always a number, so `tapegrad::io`
    // skips that count when loading a PyTorch file.
    #[module(buffer)]
    running_mean: Param<T>,
    #[module(buffer)]
    running_var: Param<T>,
    #[module(training)]
    training: bool,
}

impl<T: Float> BatchNorm1d<T> {
    /// Batch normalisation of `features` channels.
    pub fn new(features: usize) -> Self {
        BatchNorm1d {
            weight: Param::new(Tensor::ones(&[features])),
            bias: Param::new(Tensor::zeros(&[features])),
            eps: 1e-5,
            momentum: 0.1,
            running_mean: Param::new(Tensor::zeros(&[features])),
            running_var: Param::new(Tensor::ones(&[features])),
            training: true,
        }
    }

    /// The running mean, `[C]`.
    pub fn running_mean(&self) -> Tensor<T> {
        self.running_mean.value()
    }

    /// The running (unbiased) variance, `[C]`.
    pub fn running_var(&self) -> Tensor<T> {
        self.running_var.value()
    }
}

impl<T: Float> BatchNorm1d<T> {
    /// Records the layer applied to `x` on `tape` and returns the output (the same as
    /// [`Forward::forward`](crate::nn::Forward::forward), callable without the trait in scope).
    #[track_caller]
    pub fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        let shape = x.shape();
        let c = self.weight.shape()[0];
        assert!(
            shape.len() == 2 && shape[1] == c,
            "tapegrad: BatchNorm1d: input must be [N, {c}], got shape {shape:?}"
        );
        let normalized = if self.training {
            let n = shape[0];
            assert!(
                n >= 2,
                "tapegrad: BatchNorm1d: training needs at least 2 examples per batch, got shape {shape:?}"
            );
            let (y, mean, var) = normalize(x, 0, self.eps);
            let m = T::from_f64(self.momentum);
            let keep = T::ONE - m;
            let unbias = T::from_f64(n as f64 / (n - 1) as f64);
            let (mean, var) = (mean.value().reshape(&[c]), var.value().reshape(&[c]));
            self.running_mean.update(|rm| {
                *rm = Tensor::from_fn(&[c], |i| keep * rm.as_slice()[i] + m * mean.as_slice()[i]);
            });
            self.running_var.update(|rv| {
                *rv = Tensor::from_fn(&[c], |i| keep * rv.as_slice()[i] + m * unbias * var.as_slice()[i]);
            });
            y
        } else {
            let mean = tape.constant(self.running_mean());
            let std = tape.constant(self.running_var().map(|v| (v + T::from_f64(self.eps)).sqrt()));
            (x - mean) / std
        };
        normalized * tape.param(&self.weight) + tape.param(&self.bias)
    }
}

crate::nn::forward_via_inherent!(BatchNorm1d);

/// Root-mean-square normalisation over the trailing `normalized_shape` axes (PyTorch's
/// `nn.RMSNorm(normalized_shape, eps, elementwise_affine)`):
/// `y = x / sqrt(mean(x²) + eps) · weight`, with no centring and no bias.
///
/// `eps: None` uses the machine epsilon of the element type (`f32::EPSILON` or `f64::EPSILON`),
/// as PyTorch's `torch.finfo(x.dtype).eps`. With `elementwise_affine`, `weight` (of shape
/// `normalized_shape`) starts at 1; without, there is no parameter.
///
/// # Panics
/// `new` panics on an empty `normalized_shape`; `forward` panics if the input's trailing axes
/// are not `normalized_shape`.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::nn::RmsNorm;
/// let norm = RmsNorm::<f64>::new(&[4], Some(1e-6), true);
/// let tape = Tape::new();
/// let y = norm.forward(&tape, tape.var(Tensor::from_vec(vec![1., -2., 3., -4.], &[1, 4]))).value();
/// let rms = (30.0f64 / 4.0 + 1e-6).sqrt();
/// assert!((y.get(&[0, 3]) + 4.0 / rms).abs() < 1e-12);
/// let names: Vec<String> = norm.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["weight"]);
/// ```
#[derive(Module, Clone, Debug)]
pub struct RmsNorm<T: Float = f32> {
    /// The scale, of shape `normalized_shape`, if the norm is elementwise affine.
    pub weight: Option<Param<T>>,
    /// Added to the mean square; `None` is the element type's machine epsilon.
    #[module(skip)]
    pub eps: Option<f64>,
    #[module(skip)]
    normalized_shape: Vec<usize>,
    #[module(training)]
    training: bool,
}

impl<T: Float> RmsNorm<T> {
    /// Normalisation over trailing axes of shape `normalized_shape`.
    #[track_caller]
    pub fn new(normalized_shape: &[usize], eps: Option<f64>, elementwise_affine: bool) -> Self {
        assert!(
            !normalized_shape.is_empty(),
            "tapegrad: RmsNorm: normalized_shape must have at least one axis, got []"
        );
        RmsNorm {
            weight: elementwise_affine.then(|| Param::new(Tensor::ones(normalized_shape))),
            eps,
            normalized_shape: normalized_shape.to_vec(),
            training: true,
        }
    }

    /// The shape of the normalised trailing axes.
    ///
    /// ```
    /// use tapegrad::nn::RmsNorm;
    /// assert_eq!(RmsNorm::<f32>::new(&[3, 4], None, false).normalized_shape(), &[3, 4]);
    /// ```
    pub fn normalized_shape(&self) -> &[usize] {
        &self.normalized_shape
    }

    /// The `eps` in use: the given one, or the element type's machine epsilon.
    ///
    /// ```
    /// use tapegrad::nn::RmsNorm;
    /// assert_eq!(RmsNorm::<f32>::new(&[3], None, true).effective_eps(), f32::EPSILON as f64);
    /// assert_eq!(RmsNorm::<f64>::new(&[3], None, true).effective_eps(), f64::EPSILON);
    /// assert_eq!(RmsNorm::<f64>::new(&[3], Some(0.5), true).effective_eps(), 0.5);
    /// ```
    pub fn effective_eps(&self) -> f64 {
        self.eps.unwrap_or(if T::NAME == "f32" {
            f64::from(f32::EPSILON)
        } else {
            f64::EPSILON
        })
    }
}

impl<T: Float> RmsNorm<T> {
    /// Records the layer applied to `x` on `tape` and returns the output (the same as
    /// [`Forward::forward`](crate::nn::Forward::forward), callable without the trait in scope).
    #[track_caller]
    pub fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        let shape = x.shape();
        let k = self.normalized_shape.len();
        assert!(
            shape.len() >= k && shape[shape.len() - k..] == self.normalized_shape[..],
            "tapegrad: RmsNorm: input shape {shape:?} does not end in normalized_shape {:?}",
            self.normalized_shape
        );
        let axes: Vec<usize> = (shape.len() - k..shape.len()).collect();
        let ms = x.square().mean_axes(&axes, true);
        let y = x * (ms + T::from_f64(self.effective_eps())).rsqrt();
        match &self.weight {
            Some(w) => y * tape.param(w),
            None => y,
        }
    }
}

crate::nn::forward_via_inherent!(RmsNorm);
