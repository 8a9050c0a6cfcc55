//! Joining and splitting: cat, stack, split, chunk, and padding. `cat` is the one op with any
//! number of inputs; its backward narrows the gradient back into one slice per input.

use super::{Args, Fwd, Op, Operand, Primitive, Vjp, VjpMany};
use crate::tensor::{Shape, shape};
use crate::{Element, Float, Tensor, Var};

/// Concatenation along an axis (`Args::Axis`). The gradient of each input is its slice of
/// `grad_out`.
pub(crate) struct Cat;

/// Each input's slice of `g` along `axis`, for the inputs that need a gradient.
fn cat_vjp<T: Float, G: Operand<T>>(inputs: &[&G], needs: &[bool], g: &G, axis: usize) -> Vec<Option<G>> {
    let mut start = 0;
    inputs
        .iter()
        .zip(needs)
        .map(|(x, &need)| {
            let len = x.shape()[axis];
            let slice = need.then(|| g.narrow(axis, start, len));
            start += len;
            slice
        })
        .collect()
}

impl<T: Float> Op<T> for Cat {
    fn name(&self) -> &'static str {
        "cat"
    }
    fn rule(&self) -> &'static str {
        "places each input side by side: grad_x_i = the slice of grad_out where x_i was placed"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let Args::Axis { axis, .. } = cx.args else {
            unreachable!("cat node without its axis")
        };
        let [gx, gy] = <[Option<G>; 2]>::try_from(cat_vjp(&cx.inputs, &cx.needs, cx.grad_out, axis as usize))
            .unwrap_or_else(|_| unreachable!("two inputs give two gradients"));
        [gx, gy]
    }
    fn vjp_many<G: Operand<T>>(&self, cx: &VjpMany<'_, G>) -> Vec<Option<G>> {
        let Args::Axis { axis, .. } = cx.args else {
            unreachable!("cat node without its axis")
        };
        cat_vjp(cx.inputs, cx.needs, cx.grad_out, axis as usize)
    }
}

impl<T: Float> Primitive<T> for Cat {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let Args::Axis { axis, .. } = cx.args else {
            unreachable!("cat without its axis")
        };
        Tensor::cat(cx.inputs, axis as usize)
    }
}

/// Checks that `shapes` can be joined along `axis` (same rank, equal elsewhere); `op` names
/// the public operation in the message.
#[track_caller]
fn check_joinable(op: &str, shapes: &[&[usize]], axis: usize) {
    assert!(
        !shapes.is_empty(),
        "tapegrad: {op}: needs at least one input, got none"
    );
    let first = shapes[0];
    shape::check_axis(op, axis, first);
    for (i, s) in shapes.iter().enumerate().skip(1) {
        let fits = s.len() == first.len()
            && s.iter()
                .zip(first)
                .enumerate()
                .all(|(d, (a, b))| d == axis || a == b);
        assert!(
            fits,
            "tapegrad: {op}: input {i} has shape {s:?}, which does not match input 0's {first:?} \
             outside axis {axis}"
        );
    }
}

impl<T: Element> Tensor<T> {
    /// Joins tensors along `axis` (`torch.cat`): every shape must agree except along `axis`.
    ///
    /// # Panics
    /// If `tensors` is empty, `axis` is out of range, or the shapes differ elsewhere.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let a = Tensor::<f32>::from_vec(vec![1., 2.], &[1, 2]);
    /// let b = Tensor::<f32>::from_vec(vec![3., 4., 5., 6.], &[2, 2]);
    /// assert_eq!(Tensor::cat(&[&a, &b], 0).to_vec(), vec![1., 2., 3., 4., 5., 6.]);
    /// ```
    #[track_caller]
    pub fn cat(tensors: &[&Tensor<T>], axis: usize) -> Tensor<T> {
        let shapes: Vec<&[usize]> = tensors.iter().map(|t| t.shape()).collect();
        check_joinable("cat", &shapes, axis);
        let mut out_shape = Shape::from_slice(shapes[0]);
        out_shape[axis] = shapes.iter().map(|s| s[axis]).sum();
        let (outer, total, inner) = shape::split_at_axis(&out_shape, axis);
        Tensor::build(out_shape, |out| {
            let mut offset = 0;
            for t in tensors {
                let len = t.shape()[axis] * inner;
                let src = t.as_slice();
                for o in 0..outer {
                    let dst = o * total * inner + offset;
                    out[dst..dst + len].copy_from_slice(&src[o * len..(o + 1) * len]);
                }
                offset += len;
            }
        })
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Joins vars along `axis` (`torch.cat`): every shape must agree except along `axis`. The
    /// gradient of each input is its slice of the output's gradient.
    ///
    /// # Panics
    /// If `vars` is empty, `axis` is out of range, the shapes differ elsewhere, or the vars live
    /// on different tapes.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor, Var};
    /// let tape = Tape::<f64>::new();
    /// let a = tape.var(Tensor::from_vec(vec![1., 2.], &[2, 1]));
    /// let b = tape.var(Tensor::from_vec(vec![3., 4., 5., 6.], &[2, 2]));
    /// let c = Var::cat(&[a, b], 1);
    /// assert_eq!(c.value().to_vec(), vec![1., 3., 4., 2., 5., 6.]);
    /// let grads = (c * c).sum().backward();
    /// assert_eq!(grads[a].to_vec(), vec![2., 4.]);
    /// ```
    #[track_caller]
    pub fn cat(vars: &[Var<'t, T>], axis: usize) -> Var<'t, T> {
        {
            let values: Vec<_> = vars.iter().map(|v| v.value_ref()).collect();
            let shapes: Vec<&[usize]> = values.iter().map(|v| v.shape()).collect();
            check_joinable("cat", &shapes, axis);
        }
        if vars.len() == 1 {
            return vars[0];
        }
        Var::record_op(&Cat, Args::axis(axis, false), None, vars)
    }
}
