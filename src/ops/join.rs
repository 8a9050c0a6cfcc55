//! Joining and splitting: cat, stack, split, chunk, and padding. `cat` is the one op with any
//! number of inputs; its backward narrows the gradient back into one slice per input.

use super::{Args, Extra, Fwd, Op, Operand, Primitive, Vjp, VjpMany};
use crate::tensor::{Shape, shape};
use crate::{Element, Float, Tensor, Var};

/// Concatenation along an axis (`Args::Axis`). The gradient of each input is its slice of
/// `grad_out`.
pub(crate) struct Cat;

/// Each input's slice of `g` along `axis`, for the inputs that need a gradient.
#[track_caller]
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

/// Checks that `shapes` can be joined along `axis` (same rank, equal elsewhere, and the result
/// addressable); `op` names the public operation in the message.
#[track_caller]
fn check_joinable<T>(op: &str, shapes: &[&[usize]], axis: usize) {
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
    let lengths: Vec<usize> = shapes.iter().map(|s| s[axis]).collect();
    let mut joined = Shape::from_slice(first);
    joined[axis] = shape::checked_sum::<T>(op, &lengths, first);
    shape::checked_numel::<T>(op, &joined);
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
        check_joinable::<T>("cat", &shapes, axis);
        let mut out_shape = Shape::from_slice(shapes[0]);
        out_shape[axis] = shapes.iter().map(|s| s[axis]).sum();
        crate::tensor::cat(tensors, axis, out_shape)
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
            check_joinable::<T>("cat", &shapes, axis);
        }
        if vars.len() == 1 {
            return vars[0];
        }
        Var::record_op(&Cat, Args::axis(axis, false), None, vars)
    }
}

/// Copies `src` (of shape `dims`) row by row into `dst`, whose strides are `strides`, starting
/// at `offset`: the inverse of [`crate::tensor::gather_strided`] for contiguous inner rows.
fn place_rows<T: Element>(src: &[T], dims: &[usize], dst: &mut [T], strides: &[usize], offset: usize) {
    let rank = dims.len();
    if src.is_empty() {
        return;
    }
    if rank == 0 {
        dst[offset] = src[0];
        return;
    }
    let inner = dims[rank - 1];
    let mut index: Shape = smallvec::smallvec![0; rank - 1];
    let mut base = offset;
    for row in src.chunks_exact(inner) {
        dst[base..base + inner].copy_from_slice(row);
        for d in (0..rank - 1).rev() {
            index[d] += 1;
            base += strides[d];
            if index[d] < dims[d] {
                break;
            }
            base -= strides[d] * dims[d];
            index[d] = 0;
        }
    }
}

/// Padding (`Extra::ints` = `before, after` per axis, `Extra::reals` = the fill value). The
/// gradient is the inner block of `grad_out` ([`Crop`]).
pub(crate) struct Pad;

/// The inner block of a padded value (`Extra::ints` = `before, after` per axis): the adjoint of
/// [`Pad`], whose rule pads the gradient with zeros.
pub(crate) struct Crop;

impl<T: Float> Op<T> for Pad {
    fn name(&self) -> &'static str {
        "pad"
    }
    fn rule(&self) -> &'static str {
        "surrounds x with a constant: grad_x = grad_out without the padding"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let pads = &cx.extra().ints;
        [
            cx.need(0, || {
                G::apply(&Crop, Args::None, Some(Extra::ints(pads)), &[cx.grad_out])
            }),
            None,
        ]
    }
}

impl<T: Float> Primitive<T> for Pad {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let extra = cx.extra();
        pad_kernel(cx.x(), &extra.ints, T::from_f64(extra.reals[0]))
    }
}

impl<T: Float> Op<T> for Crop {
    fn name(&self) -> &'static str {
        "crop"
    }
    fn rule(&self) -> &'static str {
        "removes padding: grad_x = grad_out padded with zeros"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let pads = &cx.extra().ints;
        let zero = Extra::ints(pads).with_reals(&[0.0]);
        [
            cx.need(0, || G::apply(&Pad, Args::None, Some(zero), &[cx.grad_out])),
            None,
        ]
    }
}

impl<T: Float> Primitive<T> for Crop {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        crop(cx.x(), &cx.extra().ints)
    }
}

/// `x` inside a block of `value`, with `pads[2i]` elements before and `pads[2i + 1]` after it
/// along axis `i`.
fn pad_kernel<T: Element>(x: &Tensor<T>, pads: &[usize], value: T) -> Tensor<T> {
    let out_shape: Shape = x
        .shape()
        .iter()
        .enumerate()
        .map(|(i, &d)| pads[2 * i] + d + pads[2 * i + 1])
        .collect();
    let strides = shape::strides(&out_shape);
    let offset: usize = (0..x.rank()).map(|i| pads[2 * i] * strides[i]).sum();
    let mut out = Tensor::full(&out_shape, value);
    if x.numel() > 0 {
        place_rows(x.as_slice(), x.shape(), out.as_mut_slice(), &strides, offset);
    }
    out
}

/// The block of `x` left when `pads[2i]` elements before and `pads[2i + 1]` after are removed
/// along axis `i`.
pub(crate) fn crop<T: Element>(x: &Tensor<T>, pads: &[usize]) -> Tensor<T> {
    let out_shape: Shape = x
        .shape()
        .iter()
        .enumerate()
        .map(|(i, &d)| d - pads[2 * i] - pads[2 * i + 1])
        .collect();
    let strides = shape::strides(x.shape());
    let offset: usize = (0..x.rank()).map(|i| pads[2 * i] * strides[i]).sum();
    crate::tensor::gather_strided(x.as_slice(), offset, &strides, out_shape)
}

/// Checks one `(before, after)` pair per axis and flattens them.
#[track_caller]
fn flat_pads<T>(pads: &[(usize, usize)], shape: &[usize]) -> Vec<usize> {
    assert!(
        pads.len() == shape.len(),
        "tapegrad: pad: {} (before, after) pairs {pads:?} for shape {shape:?} of rank {}; give \
         one pair per axis, first axis first",
        pads.len(),
        shape.len()
    );
    // A loop, not a closure, which would hide the caller's line from the size check.
    let mut padded = Shape::new();
    for (&(b, a), &d) in pads.iter().zip(shape) {
        padded.push(shape::checked_sum::<T>("pad", &[b, d, a], shape));
    }
    shape::checked_numel::<T>("pad", &padded);
    pads.iter().flat_map(|&(b, a)| [b, a]).collect()
}

/// The sizes of `torch.chunk`: pieces of `ceil(len / n)`, the last one smaller, so there may
/// be fewer than `n`; `n` empty pieces when `len` is 0.
#[track_caller]
fn chunk_sizes(n: usize, len: usize, shape: &[usize], axis: usize) -> Vec<usize> {
    assert!(
        n > 0,
        "tapegrad: chunk: the number of chunks must be at least 1, got 0 (axis {axis} of shape \
         {shape:?})"
    );
    if len == 0 {
        return vec![0; n];
    }
    let size = len.div_ceil(n);
    let mut sizes = vec![size; len / size];
    if !len.is_multiple_of(size) {
        sizes.push(len % size);
    }
    sizes
}

impl<T: Element> Tensor<T> {
    /// Joins tensors of one shape along a new axis `axis` (`torch.stack`).
    ///
    /// # Panics
    /// If `tensors` is empty, the shapes differ, or `axis` is greater than their rank.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let a = Tensor::<f32>::from_vec(vec![1., 2.], &[2]);
    /// let b = Tensor::<f32>::from_vec(vec![3., 4.], &[2]);
    /// let s = Tensor::stack(&[&a, &b], 1);
    /// assert_eq!(s.shape(), &[2, 2]);
    /// assert_eq!(s.to_vec(), vec![1., 3., 2., 4.]);
    /// ```
    #[track_caller]
    pub fn stack(tensors: &[&Tensor<T>], axis: usize) -> Tensor<T> {
        let shapes: Vec<&[usize]> = tensors.iter().map(|t| t.shape()).collect();
        check_stackable::<T>(&shapes, axis);
        let lifted: Vec<Tensor<T>> = tensors.iter().map(|t| t.unsqueeze(axis)).collect();
        let refs: Vec<&Tensor<T>> = lifted.iter().collect();
        Tensor::cat(&refs, axis)
    }

    /// Surrounds the tensor with `value`: `pads[i] = (before, after)` elements along axis `i`,
    /// one pair per axis, first axis first (`torch.nn.functional.pad` with mode `"constant"`,
    /// whose list runs from the last axis instead).
    ///
    /// # Panics
    /// If `pads` does not have one pair per axis.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::from_vec(vec![1., 2.], &[1, 2]);
    /// let p = t.pad(&[(0, 1), (1, 0)], 9.);
    /// assert_eq!(p.shape(), &[2, 3]);
    /// assert_eq!(p.to_vec(), vec![9., 1., 2., 9., 9., 9.]);
    /// ```
    #[track_caller]
    pub fn pad(&self, pads: &[(usize, usize)], value: T) -> Tensor<T> {
        let flat = flat_pads::<T>(pads, self.shape());
        pad_kernel(self, &flat, value)
    }
}

/// Checks that `shapes` can be stacked along a new axis `axis`.
#[track_caller]
fn check_stackable<T>(shapes: &[&[usize]], axis: usize) {
    assert!(
        !shapes.is_empty(),
        "tapegrad: stack: needs at least one input, got none"
    );
    let first = shapes[0];
    assert!(
        axis <= first.len(),
        "tapegrad: stack: axis {axis} is out of range for inputs of shape {first:?} (rank {}; the \
         new axis goes at 0..={})",
        first.len(),
        first.len()
    );
    for (i, s) in shapes.iter().enumerate().skip(1) {
        assert!(
            s == &first,
            "tapegrad: stack: input {i} has shape {s:?}, but input 0 has {first:?}; stacked \
             inputs must have one shape"
        );
    }
    let mut stacked = Shape::from_slice(first);
    stacked.insert(axis, shapes.len());
    shape::checked_numel::<T>("stack", &stacked);
}

impl<'t, T: Float> Var<'t, T> {
    /// Joins vars of one shape along a new axis `axis` (`torch.stack`): `unsqueeze` then `cat`.
    ///
    /// # Panics
    /// If `vars` is empty, the shapes differ, `axis` is greater than their rank, or the vars live
    /// on different tapes.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor, Var};
    /// let tape = Tape::<f64>::new();
    /// let a = tape.var(Tensor::from_vec(vec![1., 2.], &[2]));
    /// let b = tape.var(Tensor::from_vec(vec![3., 4.], &[2]));
    /// let s = Var::stack(&[a, b], 0);
    /// assert_eq!(s.shape(), vec![2, 2]);
    /// let w = tape.constant(Tensor::from_vec(vec![1., 2., 3., 4.], &[2, 2]));
    /// let grads = (s * w).sum().backward();
    /// assert_eq!(grads[b].to_vec(), vec![3., 4.]);
    /// ```
    #[track_caller]
    pub fn stack(vars: &[Var<'t, T>], axis: usize) -> Var<'t, T> {
        {
            let values: Vec<_> = vars.iter().map(|v| v.value_ref()).collect();
            let shapes: Vec<&[usize]> = values.iter().map(|v| v.shape()).collect();
            check_stackable::<T>(&shapes, axis);
        }
        // A loop, not a closure: `#[track_caller]` does not reach through closures.
        let mut lifted = Vec::with_capacity(vars.len());
        for v in vars {
            lifted.push(v.unsqueeze(axis));
        }
        Var::cat(&lifted, axis)
    }

    /// Cuts the value along `axis` into consecutive pieces of the given lengths
    /// (`torch.split` with a list of sizes), which must add up to the axis's length. Each piece's
    /// gradient lands in its slice of this var's.
    ///
    /// # Panics
    /// If `axis` is out of range or the sizes do not add up to its length.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2., 3., 4., 5.], &[5]));
    /// let parts = x.split(&[2, 3], 0);
    /// assert_eq!(parts[1].value().to_vec(), vec![3., 4., 5.]);
    /// let loss = parts[0].sum() * 10.0 + parts[1].sum();
    /// assert_eq!(loss.backward()[x].to_vec(), vec![10., 10., 1., 1., 1.]);
    /// ```
    #[track_caller]
    pub fn split(self, sizes: &[usize], axis: usize) -> Vec<Var<'t, T>> {
        let shape = self.shape();
        shape::check_axis("split", axis, &shape);
        let total = sizes.iter().try_fold(0usize, |acc, &s| acc.checked_add(s));
        assert!(
            total == Some(shape[axis]),
            "tapegrad: split: sizes {sizes:?} add up to {}, but axis {axis} of shape {shape:?} has \
             length {}",
            total.map_or_else(|| "more than usize::MAX".to_string(), |t| t.to_string()),
            shape[axis]
        );
        self.split_unchecked(sizes, axis)
    }

    /// Cuts the value along `axis` into `n` pieces of `ceil(len / n)` elements, the last one
    /// smaller (`torch.chunk`): there may be fewer than `n` pieces when `len` is not a multiple
    /// (length 5 in 4 chunks gives 2, 2, 1), and `n` empty ones when the axis is empty.
    ///
    /// # Panics
    /// If `n` is 0 or `axis` is out of range.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// // An LSTM's four gates from one [batch, 4 * hidden] pre-activation.
    /// let z = tape.var(Tensor::from_fn(&[1, 8], |i| i as f64));
    /// let gates = z.chunk(4, 1);
    /// assert_eq!(gates.len(), 4);
    /// assert_eq!(gates[2].value().to_vec(), vec![4., 5.]);
    /// ```
    #[track_caller]
    pub fn chunk(self, n: usize, axis: usize) -> Vec<Var<'t, T>> {
        let shape = self.shape();
        shape::check_axis("chunk", axis, &shape);
        let sizes = chunk_sizes(n, shape[axis], &shape, axis);
        self.split_unchecked(&sizes, axis)
    }

    #[track_caller]
    fn split_unchecked(self, sizes: &[usize], axis: usize) -> Vec<Var<'t, T>> {
        if sizes.len() == 1 {
            return vec![self];
        }
        // A loop, not a closure: `#[track_caller]` does not reach through closures.
        let (mut start, mut pieces) = (0, Vec::with_capacity(sizes.len()));
        for &len in sizes {
            pieces.push(self.narrow(axis, start, len));
            start += len;
        }
        pieces
    }

    /// Surrounds the value with `value`: `pads[i] = (before, after)` elements along axis `i`,
    /// one pair per axis, first axis first (`torch.nn.functional.pad` in mode `"constant"`,
    /// whose list starts from the last axis instead). The gradient is the inner block of the
    /// output's.
    ///
    /// # Panics
    /// If `pads` does not have one pair per axis.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2.], &[2]));
    /// let y = x.pad(&[(1, 2)], 0.0);
    /// assert_eq!(y.value().to_vec(), vec![0., 1., 2., 0., 0.]);
    /// let w = tape.constant(Tensor::from_vec(vec![1., 2., 3., 4., 5.], &[5]));
    /// assert_eq!((y * w).sum().backward()[x].to_vec(), vec![2., 3.]);
    /// ```
    #[track_caller]
    pub fn pad(self, pads: &[(usize, usize)], value: T) -> Var<'t, T> {
        let flat = flat_pads::<T>(pads, &self.shape());
        if flat.iter().all(|&p| p == 0) {
            return self;
        }
        let extra = Extra::ints(&flat).with_reals(&[value.to_f64()]);
        Var::record_op(&Pad, Args::None, Some(extra), &[self])
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// The value without `pads[i] = (before, after)` elements at the ends of axis `i`: the
    /// inverse of [`Var::pad`] (the caller checks that the pairs fit).
    #[track_caller]
    pub(crate) fn crop(self, pads: &[(usize, usize)]) -> Var<'t, T> {
        let flat: Vec<usize> = pads.iter().flat_map(|&(b, a)| [b, a]).collect();
        Var::record_op(&Crop, Args::None, Some(Extra::ints(&flat)), &[self])
    }
}
