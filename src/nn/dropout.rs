//! [`Dropout`]: random zeroing in training, the identity in evaluation.

use std::marker::PhantomData;
use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::Module;
use crate::{Float, Param, Tape, Tensor, Var};

/// Zeroes each element with probability `p` in training mode and scales the rest by `1/(1-p)`,
/// so the expected value is unchanged; the identity in evaluation mode (PyTorch's `nn.Dropout`).
///
/// The masks come from the module's own generator, seeded at construction, so a run is
/// reproducible.
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
#[derive(Debug)]
pub struct Dropout<T: Float = f32> {
    p: f64,
    rng: Mutex<StdRng>,
    training: bool,
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
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            training: true,
            element: PhantomData,
        }
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }
}

impl<T: Float> Module<T> for Dropout<T> {
    fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        if !self.training || self.p == 0.0 {
            return x;
        }
        let keep = T::from_f64(1.0 / (1.0 - self.p));
        // A mutex (not a RefCell) so that the layer is `Sync` and can move to a training thread;
        // a poisoned lock still holds a usable generator.
        let mut rng = self.rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let p = self.p;
        let mask = Tensor::from_fn(
            &x.shape(),
            |_| if rng.random::<f64>() < p { T::ZERO } else { keep },
        );
        x * tape.constant(mask)
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        Vec::new()
    }

    fn train(&mut self, mode: bool) {
        self.training = mode;
    }

    fn is_training(&self) -> bool {
        self.training
    }
}
