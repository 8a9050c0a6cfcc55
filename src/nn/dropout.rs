//! [`Dropout`]: random zeroing in training, the identity in evaluation.

use std::marker::PhantomData;

use super::{Generator, Module};
use crate::{Float, Tape, Var};

/// Zeroes each element with probability `p` in training mode and scales the rest by `1/(1-p)`,
/// so the expected value is unchanged; the identity in evaluation mode (PyTorch's `nn.Dropout`).
///
/// The masks come from the module's own [`Generator`], seeded at construction, so a run is
/// reproducible; checkpoints keep its state (named `generator`, see
/// [`Module::named_generators`]), so a resumed run is too.
///
/// # Panics
/// `new` panics unless `0 ≤ p < 1`.
///
/// ```
/// use tapegrad::prelude::*;
/// let mut drop = Dropout::new(0.5, 42);
/// let tape = Tape::<f64>::new();
/// let x = tape.var(Tensor::ones(&[1000]));
/// let y = drop.forward(&tape, x).value();
/// assert!(y.as_slice().iter().all(|&v| v == 0.0 || v == 2.0));
/// drop.eval();
/// assert_eq!(drop.forward(&tape, x).value(), x.value());
/// ```
#[derive(Module, Debug)]
pub struct Dropout<T: Float = f32> {
    #[module(skip)]
    p: f64,
    generator: Generator,
    #[module(training)]
    training: bool,
    #[module(skip)]
    element: PhantomData<T>,
}

impl<T: Float> Dropout<T> {
    /// Dropout with probability `p`, masks drawn from a generator seeded with `seed`.
    #[track_caller]
    pub fn new(p: f64, seed: u64) -> Self {
        assert!(
            (0.0..1.0).contains(&p),
            "tapegrad: Dropout: probability must be in [0, 1), got {p}"
        );
        Dropout {
            p,
            generator: Generator::new(seed),
            training: true,
            element: PhantomData,
        }
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }
}

impl<T: Float> Dropout<T> {
    /// Records the layer applied to `x` on `tape` and returns the output (the same as
    /// [`Forward::forward`](crate::nn::Forward::forward), callable without the trait in scope).
    #[track_caller]
    pub fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        if !self.training || self.p == 0.0 {
            return x;
        }
        x * tape.constant(self.generator.dropout_mask(&x.shape(), self.p))
    }
}

crate::nn::forward_via_inherent!(Dropout);
