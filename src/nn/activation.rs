//! [`Activation`]: elementwise non-linearities (and softmax), usable as a [`Module`].

use super::Module;
use crate::{Float, Param, Tape, Var};

/// A non-linearity, applied with [`apply`](Activation::apply) or as a [`Module`] (it has no
/// parameters and behaves the same in training and evaluation).
///
/// | variant | formula | PyTorch |
/// |---|---|---|
/// | `Relu` | `max(x, 0)` | `nn.ReLU` |
/// | `LeakyRelu(s)` | `x` if `x ≥ 0`, else `s·x` | `nn.LeakyReLU(s)` (default `s = 0.01`) |
/// | `Tanh` | `tanh x` | `nn.Tanh` |
/// | `Sigmoid` | `1 / (1 + e^-x)` | `nn.Sigmoid` |
/// | `Gelu` | `x Φ(x) = x (1 + erf(x/√2)) / 2`, exact | `nn.GELU()` |
/// | `Softmax` | softmax over the last axis | `nn.Softmax(dim=-1)` |
/// | `Identity` | `x` | `nn.Identity` |
///
/// ```
/// use tapegrad::prelude::*;
/// let tape = Tape::<f64>::new();
/// let x = tape.var([-2.0, 3.0]);
/// assert_eq!(Activation::Relu.apply(x).value().to_vec(), vec![0.0, 3.0]);
/// assert_eq!(Activation::LeakyRelu(0.1).apply(x).value().to_vec(), vec![-0.2, 3.0]);
/// let g = Activation::Gelu.apply(x).value().to_vec();
/// assert!((g[1] - 2.995_950_305_905_109_7).abs() < 1e-12); // 3 Φ(3)
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `x` for `x ≥ 0`, else `slope · x`.
    LeakyRelu(f64),
    /// Hyperbolic tangent.
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
    /// Gaussian error linear unit, exact (erf) form.
    Gelu,
    /// Softmax over the last axis.
    Softmax,
    /// The identity.
    Identity,
}

impl Activation {
    /// Applies the activation to `x`, recording it on `x`'s tape.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var([0.0]);
    /// let y = Activation::Sigmoid.apply(x);
    /// assert_eq!(y.value().to_vec(), vec![0.5]);
    /// assert_eq!(y.sum().backward()[x].to_vec(), vec![0.25]);
    /// ```
    pub fn apply<'t, T: Float>(self, x: Var<'t, T>) -> Var<'t, T> {
        match self {
            Activation::Relu => x.relu(),
            // relu(x) - s·relu(-x): x above 0, s·x below.
            Activation::LeakyRelu(slope) => x.relu() - (-x).relu() * T::from_f64(slope),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Gelu => {
                let phi =
                    ((x * T::from_f64(std::f64::consts::FRAC_1_SQRT_2)).erf() + T::ONE) * T::from_f64(0.5);
                x * phi
            }
            Activation::Softmax => {
                let rank = x.shape().len();
                assert!(
                    rank > 0,
                    "tapegrad: Activation::Softmax: needs rank ≥ 1, got a scalar"
                );
                x.softmax(rank - 1)
            }
            Activation::Identity => x,
        }
    }
}

impl Activation {
    /// Records the layer applied to `x` on `tape` and returns the output (the same as
    /// [`Forward::forward`](crate::nn::Forward::forward), callable without the trait in scope).
    #[track_caller]
    pub fn forward<'t, T: Float>(&self, _tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        self.apply(x)
    }
}

crate::nn::forward_via_inherent!(@plain Activation);

impl<T: Float> Module<T> for Activation {
    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        Vec::new()
    }

    /// Activations have no mode: this does nothing.
    fn train(&mut self, _mode: bool) {}

    /// Activations have no mode; they report `true` (they act the same in both modes).
    fn is_training(&self) -> bool {
        true
    }
}
