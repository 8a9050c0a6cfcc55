//! [`Mlp`]: a multilayer perceptron, [`Linear`] layers with an activation between them.

use rand::Rng;

use super::{Activation, Linear, Module};
use crate::{Float, Tape, Var};

/// A multilayer perceptron: [`Linear`] layers of the given sizes with `activation` between them
/// (none after the last layer, so the output is the raw score or logit).
///
/// Parameters are named `layers.{i}.weight` and `layers.{i}.bias`, `i` counting the linear
/// layers from 0.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
///
/// let mlp = Mlp::<f32>::new(&[2, 16, 16, 1], Activation::Relu, &mut StdRng::seed_from_u64(0));
/// let names: Vec<String> = mlp.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names[..2], ["layers.0.weight", "layers.0.bias"]);
/// assert_eq!(names.len(), 6);
/// assert_eq!(mlp.parameters().iter().map(|p| p.value().numel()).sum::<usize>(), 337);
/// let tape = Tape::new();
/// let out = mlp.forward(&tape, tape.constant(Tensor::zeros(&[5, 2])));
/// assert_eq!(out.shape(), vec![5, 1]);
/// ```
#[derive(Module, Clone, Debug)]
pub struct Mlp<T: Float = f32> {
    /// The linear layers, input first.
    pub layers: Vec<Linear<T>>,
    /// The activation between layers.
    #[module(skip)]
    pub activation: Activation,
    #[module(training)]
    training: bool,
}

impl<T: Float> Mlp<T> {
    /// Layers `sizes[0] → sizes[1] → … → sizes[last]`, each initialised as [`Linear::new`].
    ///
    /// # Panics
    /// If `sizes` has fewer than two entries.
    #[track_caller]
    pub fn new<R: Rng + ?Sized>(sizes: &[usize], activation: Activation, rng: &mut R) -> Self {
        assert!(
            sizes.len() >= 2,
            "tapegrad: Mlp::new: needs at least an input and an output size, got sizes {sizes:?}"
        );
        let layers = sizes.windows(2).map(|w| Linear::new(w[0], w[1], rng)).collect();
        Mlp {
            layers,
            activation,
            training: true,
        }
    }
}

impl<T: Float> Mlp<T> {
    /// Records the layer applied to `x` on `tape` and returns the output (the same as
    /// [`Forward::forward`](crate::nn::Forward::forward), callable without the trait in scope).
    #[track_caller]
    pub fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        let last = self.layers.len() - 1;
        let mut h = x;
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(tape, h);
            if i < last {
                h = self.activation.apply(h);
            }
        }
        h
    }
}

crate::nn::forward_via_inherent!(Mlp);
