//! Matrix product over the last two axes, with broadcast batch axes.

use super::{Args, Op, Operand, Vjp};
use crate::{Float, Var};

/// Matrix product `C = A B`. dA = dC Bᵀ, dB = Aᵀ dC (each summed over broadcast batch axes).
pub(crate) struct MatMul;

impl<T: Float> Op<T> for MatMul {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn rule(&self) -> &'static str {
        "C = A B: grad_A = grad_out Bᵀ, grad_B = Aᵀ grad_out"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let (a, b, g) = (cx.x(), cx.y(), cx.grad_out);
        [
            cx.need(0, || g.matmul_nt(b).sum_to_like(a)),
            cx.need(1, || a.matmul_tn(g).sum_to_like(b)),
        ]
    }
}

/// Matrix product with the second operand transposed, `C = A Bᵀ` (PyTorch's `F.linear` without
/// bias). dA = dC B, dB = dCᵀ A. No transposed copy of B is made, forward or backward.
pub(crate) struct MatMulT;

impl<T: Float> Op<T> for MatMulT {
    fn name(&self) -> &'static str {
        "matmul_t"
    }
    fn rule(&self) -> &'static str {
        "C = A Bᵀ: grad_A = grad_out B, grad_B = grad_outᵀ A"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let (a, b, g) = (cx.x(), cx.y(), cx.grad_out);
        [
            cx.need(0, || g.matmul(b).sum_to_like(a)),
            cx.need(1, || g.matmul_tn(a).sum_to_like(b)),
        ]
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Matrix product over the last two axes, broadcasting leading batch axes:
    /// `[m, k] @ [k, n]`, `[b, m, k] @ [b, k, n]`, `[m, k] @ [b, k, n]`, ...
    ///
    /// # Panics
    /// If an operand has rank below 2, the inner dimensions differ, the batch axes do not
    /// broadcast, or the vars live on different tapes.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let a = tape.var(Tensor::from_vec(vec![1., 2., 3., 4.], &[2, 2]));
    /// let b = tape.var(Tensor::from_vec(vec![1., 0., 0., 1.], &[2, 2]));
    /// let grads = a.matmul(&b).sum().backward();
    /// assert_eq!(grads[a].to_vec(), vec![1., 1., 1., 1.]); // ones · bᵀ
    /// assert_eq!(grads[b].to_vec(), vec![4., 4., 6., 6.]); // aᵀ · ones
    /// ```
    #[track_caller]
    pub fn matmul(self, other: &Var<'t, T>) -> Var<'t, T> {
        self.check_same_tape(*other, "matmul");
        let value = self.value_ref().matmul(&other.value_ref());
        self.record_binary(*other, &MatMul, Args::None, value)
    }

    /// `self @ otherᵀ` over the last two axes, without copying `other` transposed: `[m, k]` times
    /// `[n, k]` gives `[m, n]` (batch axes broadcast as in [`matmul`](Var::matmul)). This is how a
    /// linear layer applies its `[out, in]` weight, as PyTorch's `F.linear` does.
    ///
    /// # Panics
    /// As [`matmul`](Var::matmul), with `other`'s last two axes read transposed.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]));
    /// let w = tape.var(Tensor::from_vec(vec![1., 0., 1., 0., 1., 0.], &[2, 3]));
    /// let y = x.matmul_t(&w);
    /// assert_eq!(y.value().to_vec(), vec![4., 2., 10., 5.]);
    /// assert_eq!(y.value(), x.matmul(&w.transpose(0, 1)).value());
    /// let grads = y.sum().backward();
    /// assert_eq!(grads[w].to_vec(), vec![5., 7., 9., 5., 7., 9.]); // onesᵀ · x
    /// ```
    #[track_caller]
    pub fn matmul_t(self, other: &Var<'t, T>) -> Var<'t, T> {
        self.check_same_tape(*other, "matmul_t");
        let value =
            crate::tensor::matmul_transposed("matmul_t", &self.value_ref(), false, &other.value_ref(), true);
        self.record_binary(*other, &MatMulT, Args::None, value)
    }
}
