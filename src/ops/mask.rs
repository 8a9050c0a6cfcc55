//! Masks: `masked_fill`, `where_cond`, and the triangles `tril` and `triu` (a `masked_fill` with
//! a mask built from the two last axes' positions).
//!
//! A mask is a constant of the rule: the gradient passes where the output came from the input
//! and is 0 where it came from the fill value, so both rules are `masked_fill` of the gradient
//! with 0 and second derivatives come from the same kernel.

use super::{Args, Extra, Fwd, Op, Operand, Primitive, Vjp};
use crate::tensor::{Shape, Work, for_each_piece, shape};
use crate::{Element, Float, Tensor, Var};

/// `value` where `mask` is set, `x` elsewhere; all three of one length.
fn masked_fill_kernel<T: Element>(x: &Tensor<T>, mask: &Tensor<bool>, value: T) -> Tensor<T> {
    let (src, mask) = (x.as_slice(), mask.as_slice());
    Tensor::build(Shape::from_slice(x.shape()), |out| {
        for_each_piece(out, Work::Light, |start, out| {
            let (src, mask) = (&src[start..][..out.len()], &mask[start..][..out.len()]);
            for ((o, &v), &m) in out.iter_mut().zip(src).zip(mask) {
                *o = T::select(m, value, v);
            }
        })
    })
}

/// `on_true` where `mask` is set, `on_false` elsewhere; all three of one length.
fn where_kernel<T: Element>(mask: &Tensor<bool>, on_true: &Tensor<T>, on_false: &Tensor<T>) -> Tensor<T> {
    let (mask, a, b) = (mask.as_slice(), on_true.as_slice(), on_false.as_slice());
    Tensor::build(Shape::from_slice(on_true.shape()), |out| {
        for_each_piece(out, Work::Light, |start, out| {
            let n = out.len();
            let (mask, a, b) = (&mask[start..][..n], &a[start..][..n], &b[start..][..n]);
            for (((o, &m), &p), &q) in out.iter_mut().zip(mask).zip(a).zip(b) {
                *o = T::select(m, p, q);
            }
        })
    })
}

/// `mask` broadcast to `shape` (a copy only when it differs).
fn mask_as(mask: &Tensor<bool>, shape: &[usize]) -> Tensor<bool> {
    if mask.shape() == shape {
        mask.clone()
    } else {
        mask.broadcast_to(shape)
    }
}

/// Replacement where a mask is set (`Extra::mask`, of the output's shape; `Extra::reals` = the
/// fill value).
pub(crate) struct MaskedFill;

/// A choice between two inputs of the output's shape (`Extra::mask`: where to take the first).
pub(crate) struct WhereCond;

/// `g` with zeros where `mask` is set, for any operand.
#[track_caller]
fn zero_where<T: Float, G: Operand<T>>(g: &G, mask: Tensor<bool>) -> G {
    let extra = Extra::default().with_mask(mask).with_reals(&[0.0]);
    G::apply(&MaskedFill, Args::None, Some(extra), &[g])
}

impl<T: Float> Op<T> for MaskedFill {
    fn name(&self) -> &'static str {
        "masked_fill"
    }
    fn rule(&self) -> &'static str {
        "out = value where mask, x elsewhere: grad_x = grad_out where not mask, 0 where mask"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let mask = cx.extra().mask("masked_fill");
        [cx.need(0, || zero_where(cx.grad_out, mask.clone())), None]
    }
}

impl<T: Float> Primitive<T> for MaskedFill {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let extra = cx.extra();
        masked_fill_kernel(cx.x(), extra.mask("masked_fill"), T::from_f64(extra.reals[0]))
    }
}

impl<T: Float> Op<T> for WhereCond {
    fn name(&self) -> &'static str {
        "where_cond"
    }
    fn rule(&self) -> &'static str {
        "out = a where mask, b elsewhere: grad_a = grad_out where mask, grad_b = grad_out elsewhere"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let mask = cx.extra().mask("where_cond");
        [
            cx.need(0, || zero_where(cx.grad_out, mask.logical_not())),
            cx.need(1, || zero_where(cx.grad_out, mask.clone())),
        ]
    }
}

impl<T: Float> Primitive<T> for WhereCond {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        where_kernel(cx.extra().mask("where_cond"), cx.inputs[0], cx.inputs[1])
    }
}

/// The mask of the elements that `tril(diagonal)` (`lower`) or `triu(diagonal)` sets to zero,
/// over the last two axes of `shape`.
#[track_caller]
fn triangle_outside(op: &str, shape: &[usize], diagonal: i64, lower: bool) -> Tensor<bool> {
    assert!(
        shape.len() >= 2,
        "tapegrad: {op}: needs at least two axes (it works on the last two), got shape {shape:?}"
    );
    let (rows, cols) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    let mut mask = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        for j in 0..cols {
            // Column minus row, in i128 so that no length or diagonal can overflow it.
            let offset = j as i128 - i as i128;
            let k = i128::from(diagonal);
            mask.push(if lower { offset > k } else { offset < k });
        }
    }
    Tensor::from_vec(mask, &[rows, cols])
}

impl<T: Element> Tensor<T> {
    /// `value` where `mask` is set, this tensor's element elsewhere (`torch.masked_fill`). The
    /// mask and the tensor broadcast together (NumPy rules), which sets the result's shape.
    ///
    /// # Panics
    /// If the shapes cannot be broadcast together.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::from_vec(vec![1., 2., 3.], &[3]);
    /// let mask = Tensor::<bool>::from_vec(vec![false, true, false], &[3]);
    /// assert_eq!(t.masked_fill(&mask, 0.).to_vec(), vec![1., 0., 3.]);
    /// ```
    #[track_caller]
    pub fn masked_fill(&self, mask: &Tensor<bool>, value: T) -> Tensor<T> {
        let out = shape::broadcast_shape("masked_fill", self.shape(), mask.shape());
        masked_fill_kernel(&self.broadcast_to(&out), &mask_as(mask, &out), value)
    }

    /// `on_true`'s element where `mask` is set, `on_false`'s elsewhere (`torch.where`); all three
    /// broadcast together.
    ///
    /// # Panics
    /// If the shapes cannot be broadcast together.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![-1., 2., -3.], &[3]);
    /// let relu = Tensor::where_cond(&x.gt(0.), &x, &Tensor::scalar(0.));
    /// assert_eq!(relu.to_vec(), vec![0., 2., 0.]);
    /// ```
    #[track_caller]
    pub fn where_cond(mask: &Tensor<bool>, on_true: &Tensor<T>, on_false: &Tensor<T>) -> Tensor<T> {
        let ab = shape::broadcast_shape("where_cond", on_true.shape(), on_false.shape());
        let out = shape::broadcast_shape("where_cond", mask.shape(), &ab);
        where_kernel(
            &mask_as(mask, &out),
            &on_true.broadcast_to(&out),
            &on_false.broadcast_to(&out),
        )
    }

    /// The lower triangle of the last two axes (`torch.tril`): elements with
    /// `column - row > diagonal` become zero (`T::default()`).
    ///
    /// # Panics
    /// If the tensor has fewer than two axes.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::ones(&[2, 3]);
    /// assert_eq!(t.tril(0).to_vec(), vec![1., 0., 0., 1., 1., 0.]);
    /// ```
    #[track_caller]
    pub fn tril(&self, diagonal: i64) -> Tensor<T> {
        let outside = triangle_outside("tril", self.shape(), diagonal, true);
        self.masked_fill(&outside, T::default())
    }

    /// The upper triangle of the last two axes (`torch.triu`): elements with
    /// `column - row < diagonal` become zero (`T::default()`).
    ///
    /// # Panics
    /// If the tensor has fewer than two axes.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::ones(&[2, 3]);
    /// assert_eq!(t.triu(1).to_vec(), vec![0., 1., 1., 0., 0., 1.]);
    /// ```
    #[track_caller]
    pub fn triu(&self, diagonal: i64) -> Tensor<T> {
        let outside = triangle_outside("triu", self.shape(), diagonal, false);
        self.masked_fill(&outside, T::default())
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// `value` where `mask` is set, this var's element elsewhere (`torch.masked_fill`); the
    /// mask and the var broadcast together, which sets the result's shape. The gradient is 0
    /// where the mask is set. Filling with `-inf` before a softmax is how attention masks are
    /// written (a row that is not fully masked stays finite, and so does its gradient).
    ///
    /// # Panics
    /// If the shapes cannot be broadcast together.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let scores = tape.var(Tensor::from_vec(vec![1., 2., 3., 4.], &[2, 2]));
    /// // Causal: position i may not look at j > i.
    /// let future = Tensor::<usize>::arange(2).reshape(&[1, 2]).gt(&Tensor::<usize>::arange(2).reshape(&[2, 1]));
    /// let p = scores.masked_fill(&future, f64::NEG_INFINITY).softmax(1);
    /// assert_eq!(p.value().get(&[0, 1]), 0.0);
    /// let g = (p * p).sum().backward();
    /// assert_eq!(g[scores].get(&[0, 1]), 0.0);
    /// ```
    #[track_caller]
    pub fn masked_fill(self, mask: &Tensor<bool>, value: T) -> Var<'t, T> {
        let shape = self.shape();
        let out = shape::broadcast_shape("masked_fill", &shape, mask.shape());
        let x = self.broadcast_to(&out);
        let extra = Extra::default()
            .with_mask(mask_as(mask, &out))
            .with_reals(&[value.to_f64()]);
        Var::record_op(&MaskedFill, Args::None, Some(extra), &[x])
    }

    /// `on_true`'s element where `mask` is set, `on_false`'s elsewhere (`torch.where`); all three
    /// broadcast together, and each input's gradient is the output's where it was chosen (0
    /// elsewhere), summed back to its shape.
    ///
    /// # Panics
    /// If the shapes cannot be broadcast together, or the vars live on different tapes.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor, Var};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![-2., 3.], &[2]));
    /// let y = Var::where_cond(&x.value().gt(0.), x, x * 0.1); // leaky ReLU
    /// assert_eq!(y.value().to_vec(), vec![-0.2, 3.]);
    /// assert_eq!(y.sum().backward()[x].to_vec(), vec![0.1, 1.]);
    /// ```
    #[track_caller]
    pub fn where_cond(mask: &Tensor<bool>, on_true: Var<'t, T>, on_false: Var<'t, T>) -> Var<'t, T> {
        on_true.check_same_tape(on_false, "where_cond");
        let ab = shape::broadcast_shape("where_cond", &on_true.shape(), &on_false.shape());
        let out = shape::broadcast_shape("where_cond", mask.shape(), &ab);
        let (a, b) = (on_true.broadcast_to(&out), on_false.broadcast_to(&out));
        let extra = Extra::default().with_mask(mask_as(mask, &out));
        Var::record_op(&WhereCond, Args::None, Some(extra), &[a, b])
    }

    /// The lower triangle of the last two axes (`torch.tril`): elements with
    /// `column - row > diagonal` become 0, and so does their gradient.
    ///
    /// # Panics
    /// If the value has fewer than two axes.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::ones(&[2, 2]));
    /// let y = x.tril(0);
    /// assert_eq!(y.value().to_vec(), vec![1., 0., 1., 1.]);
    /// assert_eq!(y.sum().backward()[x].to_vec(), vec![1., 0., 1., 1.]);
    /// ```
    #[track_caller]
    pub fn tril(self, diagonal: i64) -> Var<'t, T> {
        let outside = triangle_outside("tril", &self.shape(), diagonal, true);
        self.masked_fill(&outside, T::ZERO)
    }

    /// The upper triangle of the last two axes (`torch.triu`): elements with
    /// `column - row < diagonal` become 0, and so does their gradient.
    ///
    /// # Panics
    /// If the value has fewer than two axes.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::ones(&[2, 3]));
    /// assert_eq!(x.triu(-1).value().to_vec(), vec![1., 1., 1., 1., 1., 1.]);
    /// assert_eq!(x.triu(1).value().to_vec(), vec![0., 1., 1., 0., 0., 1.]);
    /// ```
    #[track_caller]
    pub fn triu(self, diagonal: i64) -> Var<'t, T> {
        let outside = triangle_outside("triu", &self.shape(), diagonal, false);
        self.masked_fill(&outside, T::ZERO)
    }
}
