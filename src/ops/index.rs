//! Indexing: `pick` selects one element per row (PyTorch's `x.gather(1, idx)` for a column
//! index per row), the building block of fused cross-entropy and negative log-likelihood.

use super::{Args, Op, Operand, Vjp};
use crate::tensor::Shape;
use crate::{Float, Tensor, Var};

/// `out[i] = x[i, idx[i]]`. The gradient goes back to the picked elements only.
pub(crate) struct Pick;

impl<T: Float> Op<T> for Pick {
    fn name(&self) -> &'static str {
        "pick"
    }
    fn rule(&self) -> &'static str {
        "out_i = x[i, idx_i]: grad_x = grad_out placed at (i, idx_i), 0 elsewhere"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let classes = cx.x().shape()[1];
        [cx.need(0, || cx.grad_out.unpick(cx.y(), classes)), None]
    }
}

/// Scatters one value per row into zeros `[N, classes]`: the adjoint of [`Pick`].
pub(crate) struct Unpick;

impl<T: Float> Op<T> for Unpick {
    fn name(&self) -> &'static str {
        "unpick"
    }
    fn rule(&self) -> &'static str {
        "places x_i at (i, idx_i): grad_x = grad_out picked at (i, idx_i)"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        [cx.need(0, || cx.grad_out.pick(cx.y())), None]
    }
}

impl<T: Float> Tensor<T> {
    /// `out[i] = self[i, index[i]]` for `self` of shape `[N, C]` and a float `index` of `[N]`
    /// (validated by the caller).
    pub(crate) fn pick(&self, index: &Tensor<T>) -> Tensor<T> {
        let c = self.shape()[1];
        let (x, idx) = (self.as_slice(), index.as_slice());
        Tensor::from_exact_iter(
            Shape::from_slice(index.shape()),
            idx.iter()
                .enumerate()
                .map(|(row, &k)| x[row * c + k.to_f64() as usize]),
        )
    }

    /// Zeros `[N, classes]` with `self[i]` placed at `(i, index[i])`.
    pub(crate) fn unpick(&self, index: &Tensor<T>, classes: usize) -> Tensor<T> {
        let (g, idx) = (self.as_slice(), index.as_slice());
        Tensor::build(Shape::from_slice(&[g.len(), classes]), |out| {
            for (row, (&v, &k)) in g.iter().zip(idx).enumerate() {
                out[row * classes + k.to_f64() as usize] = v;
            }
        })
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// For each row `i` of a `[N, C]` value, the element in column `indices[i]`: a `[N]` result
    /// (PyTorch's `x.gather(1, idx).squeeze(1)`). The gradient flows to the picked elements.
    ///
    /// # Panics
    /// If the value is not rank 2, `indices` has not `N` entries, or an index is not below `C`.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]));
    /// let y = x.pick(&[2, 0]);
    /// assert_eq!(y.value().to_vec(), vec![3., 4.]);
    /// assert_eq!(y.sum().backward()[x].to_vec(), vec![0., 0., 1., 1., 0., 0.]);
    /// ```
    #[track_caller]
    pub fn pick(self, indices: &[usize]) -> Var<'t, T> {
        let shape = self.shape();
        assert!(
            shape.len() == 2,
            "tapegrad: pick: needs a [N, C] value, got shape {shape:?}"
        );
        let (n, c) = (shape[0], shape[1]);
        assert!(
            indices.len() == n,
            "tapegrad: pick: {} indices for {n} rows of shape {shape:?}",
            indices.len()
        );
        if let Some((row, &k)) = indices.iter().enumerate().find(|&(_, &k)| k >= c) {
            panic!("tapegrad: pick: index {k} at row {row} is not below {c} (shape {shape:?})");
        }
        // Indices become a constant float tensor so that the recorded backward (higher order)
        // can use them like any other value; class counts are far below 2^24, exact in f32.
        let index = self
            .tape
            .constant(Tensor::from_fn(&[n], |row| T::from_usize(indices[row])));
        self.pick_by(index)
    }

    pub(crate) fn pick_by(self, index: Var<'t, T>) -> Var<'t, T> {
        let value = self.value_ref().pick(&index.value_ref());
        self.record_binary(index, &Pick, Args::None, value)
    }

    pub(crate) fn unpick(self, index: Var<'t, T>, classes: usize) -> Var<'t, T> {
        let value = self.value_ref().unpick(&index.value_ref(), classes);
        self.record_binary(index, &Unpick, Args::None, value)
    }
}
