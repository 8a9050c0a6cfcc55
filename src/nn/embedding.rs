//! [`Embedding`]: a learnable lookup table of vectors, indexed by integer ids.

use rand::Rng;

use super::{Module, init};
use crate::{Float, Param, Tape, Tensor, Var};

/// A table of `num_embeddings` vectors of size `dim` (PyTorch's `nn.Embedding`), initialised from
/// `N(0, 1)`. `forward` takes ids stored as floats (any shape) and returns their vectors, with one
/// more axis of size `dim`.
///
/// The lookup is recorded as `one_hot(ids) @ weight`, so the weight's gradient is exact and
/// differentiable again; it costs `ids · num_embeddings · dim` operations, fine for the small
/// vocabularies this crate targets.
///
/// # Panics
/// `forward` panics if an id is not an integer below `num_embeddings`.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::nn::Embedding;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
/// let emb = Embedding::<f64>::new(10, 3, &mut StdRng::seed_from_u64(0));
/// let tape = Tape::new();
/// let out = emb.forward(&tape, tape.constant(Tensor::from_vec(vec![4., 4., 7.], &[3])));
/// assert_eq!(out.shape(), vec![3, 3]);
/// let grads = out.sum().backward();
/// let g = grads.param(&emb.weight).unwrap();
/// assert_eq!(g.get(&[4, 0]), 2.0); // id 4 used twice
/// assert_eq!(g.get(&[0, 0]), 0.0);
/// ```
#[derive(Module, Clone, Debug)]
pub struct Embedding<T: Float = f32> {
    /// The table, `[num_embeddings, dim]`.
    pub weight: Param<T>,
    #[module(training)]
    training: bool,
}

impl<T: Float> Embedding<T> {
    /// A table of `num_embeddings` vectors of size `dim`, drawn from `N(0, 1)`.
    pub fn new<R: Rng + ?Sized>(num_embeddings: usize, dim: usize, rng: &mut R) -> Self {
        Embedding {
            weight: Param::new(init::normal(&[num_embeddings, dim], 0.0, 1.0, rng)),
            training: true,
        }
    }

    /// Looks up `ids` (a `[len(ids), dim]` result).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::nn::Embedding;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let emb = Embedding::<f32>::new(5, 2, &mut StdRng::seed_from_u64(0));
    /// let tape = Tape::new();
    /// assert_eq!(emb.lookup(&tape, &[0, 4]).shape(), vec![2, 2]);
    /// ```
    #[track_caller]
    pub fn lookup<'t>(&self, tape: &'t Tape<T>, ids: &[usize]) -> Var<'t, T> {
        let ids = Tensor::from_fn(&[ids.len()], |i| T::from_usize(ids[i]));
        self.forward(tape, tape.constant(ids))
    }
}

impl<T: Float> Embedding<T> {
    /// Records the layer applied to `x` on `tape` and returns the output (the same as
    /// [`Forward::forward`](crate::nn::Forward::forward), callable without the trait in scope).
    #[track_caller]
    pub fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        let shape = self.weight.shape();
        let (num, dim) = (shape[0], shape[1]);
        let ids = x.value();
        let n = ids.numel();
        let mut one_hot = vec![T::ZERO; n * num];
        for (row, &id) in ids.as_slice().iter().enumerate() {
            let v = id.to_f64();
            assert!(
                v >= 0.0 && v.fract() == 0.0 && v < num as f64,
                "tapegrad: Embedding: id {v} at position {row} is not an integer below {num} (weight {shape:?})"
            );
            one_hot[row * num + v as usize] = T::ONE;
        }
        let out = tape
            .constant(Tensor::from_vec(one_hot, &[n, num]))
            .matmul(&tape.param(&self.weight));
        let mut out_shape = ids.shape().to_vec();
        out_shape.push(dim);
        out.reshape(&out_shape)
    }
}

crate::nn::forward_via_inherent!(Embedding);
