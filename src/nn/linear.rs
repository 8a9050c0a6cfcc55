//! [`Linear`]: the affine layer `y = x Wᵀ + b`.

use rand::Rng;

use super::{Module, init};
use crate::{Float, Param, Tape, Var};

/// Affine layer `y = x Wᵀ + b` (PyTorch's `nn.Linear`): weight `[out, in]`, bias `[out]`.
///
/// Initialised as PyTorch does: weight by Kaiming-uniform with `a = √5` and bias uniformly, both
/// in `U(-1/√in, 1/√in)`. The input is `[in]` or has any number of leading axes before `in`
/// (`[N, in]`, `[B, N, in]`, `[B, H, N, in]`, ...: PyTorch's `(*, in)`), which are kept.
///
/// # Panics
/// `forward` panics if the input's last axis is not `in`.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
///
/// let layer = Linear::<f64>::new(3, 2, &mut StdRng::seed_from_u64(0));
/// assert_eq!(layer.weight.shape(), vec![2, 3]);
/// let bound = 1.0 / 3f64.sqrt();
/// assert!(layer.weight.value().as_slice().iter().all(|w| w.abs() <= bound));
/// let tape = Tape::new();
/// let y = layer.forward(&tape, tape.constant(Tensor::zeros(&[4, 3])));
/// assert_eq!(y.shape(), vec![4, 2]);
/// let y4 = layer.forward(&tape, tape.constant(Tensor::zeros(&[2, 5, 4, 3])));
/// assert_eq!(y4.shape(), vec![2, 5, 4, 2]);
/// let names: Vec<String> = layer.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["weight", "bias"]);
/// ```
#[derive(Module, Clone, Debug)]
pub struct Linear<T: Float = f32> {
    /// The weight, `[out_features, in_features]`.
    pub weight: Param<T>,
    /// The bias, `[out_features]`, if the layer has one.
    pub bias: Option<Param<T>>,
    #[module(training)]
    training: bool,
}

impl<T: Float> Linear<T> {
    /// A layer with bias, initialised as PyTorch's `nn.Linear(in_features, out_features)`.
    pub fn new<R: Rng + ?Sized>(in_features: usize, out_features: usize, rng: &mut R) -> Self {
        Self::with_bias(in_features, out_features, true, rng)
    }

    /// As [`new`](Linear::new), with or without a bias.
    ///
    /// ```
    /// use tapegrad::nn::{Linear, Module};
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let layer = Linear::<f32>::with_bias(4, 2, false, &mut StdRng::seed_from_u64(1));
    /// assert!(layer.bias.is_none());
    /// assert_eq!(layer.parameters().len(), 1);
    /// ```
    pub fn with_bias<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        bias: bool,
        rng: &mut R,
    ) -> Self {
        let (weight, bias) = init::layer_params(&[out_features, in_features], bias, rng);
        Linear {
            weight,
            bias,
            training: true,
        }
    }

    /// A layer from a given weight `[out, in]` and optional bias `[out]`.
    ///
    /// # Panics
    /// If the weight is not rank 2 or the bias is not `[out]`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let w = Tensor::<f64>::from_vec(vec![1., 2., 3., 4.], &[2, 2]);
    /// let layer = Linear::from_params(Param::new(w), Some(Param::new(Tensor::ones(&[2]))));
    /// let tape = Tape::new();
    /// let y = layer.forward(&tape, tape.constant(Tensor::from_vec(vec![1., 1.], &[2])));
    /// assert_eq!(y.value().to_vec(), vec![4., 8.]);
    /// ```
    #[track_caller]
    pub fn from_params(weight: Param<T>, bias: Option<Param<T>>) -> Self {
        init::check_layer_params("Linear", "[out, in]", 2, &weight, bias.as_ref());
        Linear {
            weight,
            bias,
            training: true,
        }
    }

    /// The input size `in`.
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// The output size `out`.
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }
}

impl<T: Float> Linear<T> {
    /// Records the layer applied to `x` on `tape` and returns the output (the same as
    /// [`Forward::forward`](crate::nn::Forward::forward), callable without the trait in scope).
    #[track_caller]
    pub fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        let shape = x.shape();
        let (inf, outf) = (self.in_features(), self.out_features());
        assert!(
            shape.last() == Some(&inf),
            "tapegrad: Linear: input shape {shape:?} does not end in in_features {inf} (weight [{outf}, {inf}])"
        );
        // x Wᵀ reading W transposed in place: no copy of the weight on each step.
        let w = tape.param(&self.weight);
        let y = if shape.len() == 1 {
            x.reshape(&[1, inf]).matmul_t(&w).reshape(&[outf])
        } else {
            x.matmul_t(&w)
        };
        match &self.bias {
            Some(b) => y + tape.param(b),
            None => y,
        }
    }
}

crate::nn::forward_via_inherent!(Linear);
