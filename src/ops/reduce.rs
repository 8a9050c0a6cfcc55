//! Reductions: sum, mean, sum_axis, mean_axis, max_axis, min_axis, sum_axes, mean_axes,
//! var_axis, std_axis, logsumexp, sum_to (the adjoint of broadcasting), and the cumulative sum.
//! The backward of a reduction broadcasts the gradient back over the reduced axes; cumsum's is
//! the reversed cumsum.
//!
//! logsumexp and cumsum are memory-bound kernels: along the last axis they walk each
//! contiguous lane, along another axis they accumulate whole rows (inner loops over contiguous
//! columns, which vectorise), and large tensors are split between threads by lanes, by blocks,
//! or, for a few wide blocks (axis 0 of a matrix), by columns.

use rayon::prelude::*;
use smallvec::SmallVec;

use super::{Args, Fwd, Op, Operand, Primitive, Vjp, VjpMany};
use crate::tensor::{Shape, num_threads, shape, simd};
use crate::{Float, Tensor, Var};

/// Sum of all elements. d(Σx)/dx_i = 1.
pub(crate) struct Sum;

impl<T: Float> Op<T> for Sum {
    fn name(&self) -> &'static str {
        "sum"
    }
    fn rule(&self) -> &'static str {
        "d(sum x)/dx_i = 1: grad_x = grad_out broadcast to x's shape"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        [cx.need(0, || cx.grad_out.broadcast_to(&cx.x().shape())), None]
    }
}

/// Sum over one axis. Each input element receives the gradient of its sum.
pub(crate) struct SumAxis;

impl<T: Float> Op<T> for SumAxis {
    fn name(&self) -> &'static str {
        "sum_axis"
    }
    fn rule(&self) -> &'static str {
        "d(sum_j x_j)/dx_j = 1: grad_x = grad_out repeated along the summed axis"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let Args::Axis { axis, .. } = cx.args else {
            unreachable!("sum_axis node without its axis")
        };
        let axis = axis as usize;
        let xs = cx.x().shape();
        [
            cx.need(0, || {
                let kept = shape::reduced_shape(&xs, axis, true);
                cx.grad_out.reshape(&kept).broadcast_to(&xs)
            }),
            None,
        ]
    }
}

/// Maximum over one axis. The gradient goes to the (first) maximal element only, as in PyTorch.
pub(crate) struct MaxAxis;

impl<T: Float> Op<T> for MaxAxis {
    fn name(&self) -> &'static str {
        "max_axis"
    }
    fn rule(&self) -> &'static str {
        "d(max_j x_j)/dx_j = 1 at the argmax, else 0: grad_x = grad_out at the argmax"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let Args::Axis { axis, .. } = cx.args else {
            unreachable!("max_axis node without its axis")
        };
        let axis = axis as usize;
        let xs = cx.x().shape();
        [
            cx.need(0, || {
                let kept = shape::reduced_shape(&xs, axis, true);
                let mask = cx.x().with_value(|x| x.argmax_mask(axis));
                cx.grad_out.reshape(&kept).broadcast_to(&xs).mul_constant(mask)
            }),
            None,
        ]
    }
}

/// Sum of a broadcast tensor back to a smaller shape; its adjoint is broadcasting.
pub(crate) struct SumTo;

impl<T: Float> Op<T> for SumTo {
    fn name(&self) -> &'static str {
        "sum_to"
    }
    fn rule(&self) -> &'static str {
        "adjoint of broadcasting: grad_x = grad_out broadcast back to x's shape"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        [cx.need(0, || cx.grad_out.broadcast_to(&cx.x().shape())), None]
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// The sum of all elements, as a scalar (rank 0).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var([1.0, 2.0, 3.0]);
    /// let s = x.sum();
    /// assert_eq!(s.item(), 6.0);
    /// assert_eq!(s.backward()[x].to_vec(), vec![1.0, 1.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn sum(self) -> Var<'t, T> {
        let value = self.value_ref().sum();
        self.record_unary(&Sum, Args::None, value)
    }

    /// The mean of all elements, as a scalar: `sum() / numel`.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var([1.0, 2.0, 3.0, 6.0]);
    /// assert_eq!(x.mean().item(), 3.0);
    /// assert_eq!(x.mean().backward()[x].to_vec(), vec![0.25; 4]);
    /// ```
    #[track_caller]
    pub fn mean(self) -> Var<'t, T> {
        let n = shape::numel(&self.shape());
        self.sum() * (T::ONE / T::from_usize(n))
    }

    /// Sums over `axis`, keeping it with size 1 when `keepdim`.
    ///
    /// # Panics
    /// If `axis` is out of range.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]));
    /// assert_eq!(x.sum_axis(0, false).value().to_vec(), vec![5., 7., 9.]);
    /// assert_eq!(x.sum_axis(1, true).shape(), vec![2, 1]);
    /// ```
    #[track_caller]
    pub fn sum_axis(self, axis: usize, keepdim: bool) -> Var<'t, T> {
        let value = self.value_ref().sum_axis(axis, keepdim);
        self.record_unary(&SumAxis, Args::axis(axis, keepdim), value)
    }

    /// Means over `axis`, keeping it with size 1 when `keepdim`: `sum_axis / n`.
    ///
    /// # Panics
    /// If `axis` is out of range.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]));
    /// assert_eq!(x.mean_axis(1, false).value().to_vec(), vec![2., 5.]);
    /// ```
    #[track_caller]
    pub fn mean_axis(self, axis: usize, keepdim: bool) -> Var<'t, T> {
        shape::check_axis("mean_axis", axis, &self.shape());
        let summed = self.sum_axis(axis, keepdim);
        summed * (T::ONE / T::from_usize(self.shape()[axis]))
    }

    /// Maximum over `axis`, keeping it with size 1 when `keepdim`. The gradient flows to the
    /// first maximal element of each lane.
    ///
    /// # Panics
    /// If `axis` is out of range or empty.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 5., 3., 4., 2., 6.], &[2, 3]));
    /// let m = x.max_axis(1, false);
    /// assert_eq!(m.value().to_vec(), vec![5., 6.]);
    /// assert_eq!(m.sum().backward()[x].to_vec(), vec![0., 1., 0., 0., 0., 1.]);
    /// ```
    #[track_caller]
    pub fn max_axis(self, axis: usize, keepdim: bool) -> Var<'t, T> {
        let value = self.value_ref().max_axis(axis, keepdim);
        self.record_unary(&MaxAxis, Args::axis(axis, keepdim), value)
    }

    /// Sums a broadcast value back down to `shape`: the adjoint of [`Var::broadcast_to`].
    ///
    /// # Panics
    /// If `shape` does not broadcast to this var's shape.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::ones(&[2, 3]));
    /// assert_eq!(x.sum_to(&[3]).value().to_vec(), vec![2., 2., 2.]);
    /// ```
    #[track_caller]
    pub fn sum_to(self, shape: &[usize]) -> Var<'t, T> {
        if self.shape() == shape {
            return self;
        }
        let value = self.value_ref().sum_to(shape);
        self.record_unary(&SumTo, Args::None, value)
    }
}

// ---------------------------------------------------------------------------------------------
// Threads
// ---------------------------------------------------------------------------------------------

/// Lengths from which a loop is split between threads, as in `tensor::parallel` (a rayon round
/// trip costs 10–20 µs): 2¹⁸ elements of memory-bound work (cumsum), 2¹⁵ with an `exp` per
/// element (logsumexp and its gradient).
const LIGHT_SPLIT: usize = 1 << 18;
/// See [`LIGHT_SPLIT`].
const HEAVY_SPLIT: usize = 1 << 15;

/// The threads a loop over `len` elements gets: all of them from `min_len` on, else one.
fn threads_for(len: usize, min_len: usize) -> usize {
    if len < min_len { 1 } else { num_threads().max(1) }
}

/// Calls `f(i, piece)` on each `chunk`-long piece of `out` (the last may be shorter), on several
/// threads when `parallel`.
fn for_each_chunk<T: Send>(
    out: &mut [T],
    chunk: usize,
    parallel: bool,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    let chunk = chunk.max(1);
    if parallel {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, piece)| f(i, piece));
    } else {
        out.chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, piece)| f(i, piece));
    }
}

/// The width of the column pieces when `inner` columns are shared out `pieces` ways: a multiple
/// of 16 (whole vectors) where the row is wide enough.
fn column_width(inner: usize, pieces: usize) -> usize {
    inner.div_ceil(pieces).next_multiple_of(16).min(inner)
}

/// A column piece of an `[n, inner]` block: the block's index, the piece's first column, and its
/// `n` row segments in order.
type ColumnPiece<'a, T> = (usize, usize, Vec<&'a mut [T]>);

/// The rows of every `[n, inner]` block of `out` cut into column pieces `width` wide. Lets
/// threads share the columns of a few large blocks (a cumsum along axis 0), whose pieces are not
/// contiguous, without `unsafe`. `out` must not be empty.
fn column_pieces<T>(out: &mut [T], n: usize, inner: usize, width: usize) -> Vec<ColumnPiece<'_, T>> {
    let per_block = inner.div_ceil(width);
    let mut pieces: Vec<ColumnPiece<'_, T>> = Vec::new();
    for (o, block) in out.chunks_mut(n * inner).enumerate() {
        let first = pieces.len();
        pieces.extend((0..per_block).map(|p| (o, p * width, Vec::with_capacity(n))));
        for row in block.chunks_mut(inner) {
            for (p, segment) in row.chunks_mut(width).enumerate() {
                pieces[first + p].2.push(segment);
            }
        }
    }
    pieces
}

// ---------------------------------------------------------------------------------------------
// min_axis
// ---------------------------------------------------------------------------------------------

/// Minimum over one axis. The gradient goes to the (first) minimal element only, as in PyTorch.
pub(crate) struct MinAxis;

impl<T: Float> Op<T> for MinAxis {
    fn name(&self) -> &'static str {
        "min_axis"
    }
    fn rule(&self) -> &'static str {
        "d(min_j x_j)/dx_j = 1 at the argmin, else 0: grad_x = grad_out at the argmin"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let Args::Axis { axis, .. } = cx.args else {
            unreachable!("min_axis node without its axis")
        };
        let axis = axis as usize;
        let xs = cx.x().shape();
        [
            cx.need(0, || {
                let kept = shape::reduced_shape(&xs, axis, true);
                let mask = cx.x().with_value(|x| x.argmin_mask(axis));
                cx.grad_out.reshape(&kept).broadcast_to(&xs).mul_constant(mask)
            }),
            None,
        ]
    }
}

/// The minimum of each lane along `axis` and the index of its first occurrence (NaN counts as
/// the minimum, as in PyTorch).
#[track_caller]
fn min_and_argmin<T: Float>(t: &Tensor<T>, axis: usize) -> (Vec<T>, Vec<usize>) {
    shape::check_axis("min_axis", axis, t.shape());
    let (outer, n, inner) = shape::split_at_axis(t.shape(), axis);
    assert!(
        n > 0,
        "tapegrad: min_axis: axis {axis} of shape {:?} is empty: there is no minimum of no elements",
        t.shape()
    );
    if outer * inner == 0 {
        // Nothing to reduce into (another axis is empty), as PyTorch: an empty result.
        return (Vec::new(), Vec::new());
    }
    let x = t.as_slice();
    let better = |v: T, best: T| v < best || (v.is_nan() && !best.is_nan());
    if inner == 1 {
        let mut values = Vec::with_capacity(outer);
        let mut args = Vec::with_capacity(outer);
        for lane in x.chunks_exact(n) {
            let (mut best, mut arg) = (lane[0], 0);
            for (j, &v) in lane.iter().enumerate().skip(1) {
                if better(v, best) {
                    (best, arg) = (v, j);
                }
            }
            values.push(best);
            args.push(arg);
        }
        return (values, args);
    }
    let mut values = Vec::with_capacity(outer * inner);
    let mut args = vec![0; outer * inner];
    for o in 0..outer {
        let block = &x[o * n * inner..(o + 1) * n * inner];
        values.extend_from_slice(&block[..inner]);
        let (best, arg) = (
            &mut values[o * inner..(o + 1) * inner],
            &mut args[o * inner..(o + 1) * inner],
        );
        for (j, row) in block.chunks_exact(inner).enumerate().skip(1) {
            for ((b, a), &v) in best.iter_mut().zip(arg.iter_mut()).zip(row) {
                if better(v, *b) {
                    (*b, *a) = (v, j);
                }
            }
        }
    }
    (values, args)
}

impl<T: Float> Tensor<T> {
    /// Minimum over `axis` (the values of `torch.min(x, dim, keepdim)`), keeping the axis with
    /// size 1 when `keepdim`. NaN propagates.
    ///
    /// # Panics
    /// If `axis` is out of range (always for rank 0) or the axis is empty.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::from_vec(vec![1., 5., 3., 4., 2., 6.], &[2, 3]);
    /// assert_eq!(t.min_axis(1, false).to_vec(), vec![1., 2.]);
    /// assert_eq!(t.min_axis(0, true).shape(), &[1, 3]);
    /// ```
    #[track_caller]
    pub fn min_axis(&self, axis: usize, keepdim: bool) -> Tensor<T> {
        let (values, _) = min_and_argmin(self, axis);
        Tensor::from_parts(shape::reduced_shape(self.shape(), axis, keepdim), values)
    }

    /// A tensor of this shape with 1 at the first minimum along `axis` and 0 elsewhere: the
    /// derivative of `min_axis`.
    #[track_caller]
    pub(crate) fn argmin_mask(&self, axis: usize) -> Tensor<T> {
        let (_, arg) = min_and_argmin(self, axis);
        let (outer, n, inner) = shape::split_at_axis(self.shape(), axis);
        Tensor::build(Shape::from_slice(self.shape()), |mask| {
            for o in 0..outer {
                for i in 0..inner {
                    mask[(o * n + arg[o * inner + i]) * inner + i] = T::ONE;
                }
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// logsumexp
// ---------------------------------------------------------------------------------------------

/// `ln Σ_j e^{x_j}` over one axis (`Args::Axis`), computed as `m + ln Σ e^{x_j − m}`.
/// Its gradient is `grad_out · e^{x − out}` (the softmax), one [`LseGrad`] pass.
pub(crate) struct LogSumExp;

impl<T: Float> Op<T> for LogSumExp {
    fn name(&self) -> &'static str {
        "logsumexp"
    }
    fn rule(&self) -> &'static str {
        "d(ln sum_j e^x_j)/dx_j = e^(x_j - out): grad_x = grad_out * exp(x - out), broadcast on the axis"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let Args::Axis { axis, keepdim } = cx.args else {
            unreachable!("logsumexp node without its axis")
        };
        let axis = axis as usize;
        [
            cx.need(0, || {
                let kept = shape::reduced_shape(&cx.x().shape(), axis, true);
                let keep = |v: &G| if keepdim { v.clone() } else { v.reshape(&kept) };
                lse_grad(cx.x(), &keep(cx.output), Some(&keep(cx.grad_out)), axis)
            }),
            None,
        ]
    }
}

impl<T: Float> Primitive<T> for LogSumExp {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let Args::Axis { axis, keepdim } = cx.args else {
            unreachable!("logsumexp without its axis")
        };
        cx.x().logsumexp(axis as usize, keepdim)
    }
}

/// The gradient of logsumexp, fused into one pass: `g · e^{x − lse}` with inputs `[x, lse, g]`,
/// or `e^{x − lse}` with inputs `[x, lse]`; `lse` and `g` have `x`'s shape with the axis
/// (`Args::Axis`) of size 1 and are read broadcast along it. Its own rule uses itself, so the
/// gradient of logsumexp is differentiable again, to any order.
pub(crate) struct LseGrad;

impl LseGrad {
    /// With `y` this op's output and `gy = G · y`: the gradients of `x` (`gy`) and of `lse`
    /// (`−Σ gy` over the axis), shared by both arities.
    fn x_and_lse<T: Float, G: Operand<T>>(
        grad_out: &G,
        output: &G,
        needs: [bool; 2],
        axis: usize,
    ) -> [Option<G>; 2] {
        if !needs[0] && !needs[1] {
            return [None, None];
        }
        let gy = grad_out.mul(output);
        let g_lse = needs[1].then(|| gy.sum_axis(axis, true).neg());
        [needs[0].then_some(gy), g_lse]
    }
}

impl<T: Float> Op<T> for LseGrad {
    fn name(&self) -> &'static str {
        "logsumexp_grad"
    }
    fn rule(&self) -> &'static str {
        "y = g exp(x - lse): grad_x = G y, grad_lse = -sum(G y, axis), grad_g = sum(G exp(x - lse), axis)"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let Args::Axis { axis, .. } = cx.args else {
            unreachable!("logsumexp_grad node without its axis")
        };
        LseGrad::x_and_lse(cx.grad_out, cx.output, cx.needs, axis as usize)
    }
    fn vjp_many<G: Operand<T>>(&self, cx: &VjpMany<'_, G>) -> Vec<Option<G>> {
        let Args::Axis { axis, .. } = cx.args else {
            unreachable!("logsumexp_grad node without its axis")
        };
        let axis = axis as usize;
        let [x, lse, _] = [cx.inputs[0], cx.inputs[1], cx.inputs[2]];
        let [gx, g_lse] = LseGrad::x_and_lse(cx.grad_out, cx.output, [cx.needs[0], cx.needs[1]], axis);
        let g_g = cx.needs[2].then(|| {
            cx.grad_out
                .mul(&lse_grad(x, lse, None, axis))
                .sum_axis(axis, true)
        });
        vec![gx, g_lse, g_g]
    }
}

impl<T: Float> Primitive<T> for LseGrad {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let Args::Axis { axis, .. } = cx.args else {
            unreachable!("logsumexp_grad without its axis")
        };
        lse_grad_kernel(
            cx.inputs[0],
            cx.inputs[1],
            cx.inputs.get(2).copied(),
            axis as usize,
        )
    }
}

/// `g · e^{x − lse}` (or `e^{x − lse}` without `g`), for any operand (rules call this).
#[track_caller]
pub(crate) fn lse_grad<T: Float, G: Operand<T>>(x: &G, lse: &G, g: Option<&G>, axis: usize) -> G {
    let args = Args::axis(axis, true);
    match g {
        Some(g) => G::apply(&LseGrad, args, None, &[x, lse, g]),
        None => G::apply(&LseGrad, args, None, &[x, lse]),
    }
}

/// The largest of `values`, ignoring NaN (−inf for none), in sixteen running maxima so that the
/// loop vectorises (16 f32 lanes with AVX-512); a long lane is split between `threads` threads.
fn lane_max<T: Float>(values: &[T], threads: usize) -> T {
    if threads > 1 && values.len() >= 1 << 12 {
        let (left, right) = values.split_at(values.len() / 2);
        let (a, b) = rayon::join(
            || lane_max(left, threads.div_ceil(2)),
            || lane_max(right, threads / 2),
        );
        return a.max(b);
    }
    let neg_inf = T::from_f64(f64::NEG_INFINITY);
    let chunks = values.chunks_exact(16);
    let rest = chunks.remainder();
    // The maxima live inside the closure and come out as its value: captured by reference they
    // went through memory on every step.
    let lanes = simd::run(
        #[inline(always)]
        move || {
            let mut lanes = [neg_inf; 16];
            for chunk in chunks {
                for (m, &v) in lanes.iter_mut().zip(chunk) {
                    *m = m.max(v);
                }
            }
            lanes
        },
    );
    let m = lanes.iter().fold(neg_inf, |a, &b| a.max(b));
    rest.iter().fold(m, |a, &b| a.max(b))
}

/// `Σ e^{v − shift}` over `values`, summed pairwise as `Tensor::sum` is (halves down to blocks of
/// 128, each in eight interleaved partial sums): the rounding error grows with the logarithm of
/// the length, and the loop vectorises. A long lane's halves go to `threads` threads; the split
/// points do not depend on the thread count, so neither does the result.
fn exp_sum<T: Float>(values: &[T], shift: T, threads: usize) -> T {
    const BLOCK: usize = 128;
    if values.len() > BLOCK {
        let half = (values.len() / 2).next_multiple_of(BLOCK);
        let (left, right) = values.split_at(half.min(values.len()));
        if threads > 1 {
            let (a, b) = rayon::join(
                || exp_sum(left, shift, threads.div_ceil(2)),
                || exp_sum(right, shift, threads / 2),
            );
            return a + b;
        }
        return exp_sum(left, shift, 1) + exp_sum(right, shift, 1);
    }
    // The exponentials first (a map, which vectorises), then their sum in eight interleaved
    // partial sums: one loop doing both stayed scalar.
    let mut exps = [T::ZERO; BLOCK];
    let exps = &mut exps[..values.len()];
    simd::run(
        #[inline(always)]
        || {
            for (e, &v) in exps.iter_mut().zip(values) {
                *e = (v - shift).exp();
            }
        },
    );
    let chunks = exps.chunks_exact(8);
    let rest = chunks.remainder();
    let mut lanes = [T::ZERO; 8];
    for chunk in chunks {
        for (s, &e) in lanes.iter_mut().zip(chunk) {
            *s += e;
        }
    }
    let [a, b, c, d, e, f, g, h] = lanes;
    let mut total = ((a + b) + (c + d)) + ((e + f) + (g + h));
    for &e in rest {
        total += e;
    }
    total
}

/// What a lane with maximum `m` is shifted by: `m`, or 0 when `m` is infinite (PyTorch's rule),
/// so that an all −inf lane (or an empty one) gives ln 0 = −inf and a lane holding +inf gives
/// +inf, never ∞ − ∞ = NaN.
fn lse_shift<T: Float>(m: T) -> T {
    if m.is_finite() { m } else { T::ZERO }
}

/// logsumexp of one contiguous lane: a pass for the maximum, a pass for the sum.
fn lse_lane<T: Float>(lane: &[T], threads: usize) -> T {
    let shift = lse_shift(lane_max(lane, threads));
    exp_sum(lane, shift, threads).ln() + shift
}

/// logsumexp down columns `c0..c0 + out.len()` of block `o` of `x` (`[outer, n, inner]`), into
/// `out`: whole rows at a time, so that every inner loop runs over contiguous columns. `scratch`
/// is reused between calls (many small blocks would otherwise allocate per block).
fn lse_columns<T: Float>(
    x: &[T],
    (n, inner): (usize, usize),
    (o, c0): (usize, usize),
    out: &mut [T],
    scratch: &mut Vec<T>,
) {
    // The column sums are added up in blocks of rows, then block by block: the rounding error
    // grows with `ROWS + n / ROWS` rather than with `n`.
    const ROWS: usize = 64;
    let w = out.len();
    let row = |j: usize| &x[(o * n + j) * inner + c0..][..w];
    scratch.clear();
    scratch.resize(2 * w, T::ZERO);
    let (shift, partial) = scratch.split_at_mut(w);
    shift.fill(T::from_f64(f64::NEG_INFINITY));
    for j in 0..n {
        for (m, &v) in shift.iter_mut().zip(row(j)) {
            *m = m.max(v);
        }
    }
    for m in shift.iter_mut() {
        *m = lse_shift(*m);
    }
    out.fill(T::ZERO);
    for start in (0..n).step_by(ROWS) {
        // A single block of rows sums straight into `out`.
        let sums: &mut [T] = if n <= ROWS { &mut *out } else { &mut *partial };
        sums.fill(T::ZERO);
        let shift = &*shift;
        simd::run(
            #[inline(always)]
            || {
                for j in start..(start + ROWS).min(n) {
                    for ((s, &v), &c) in sums.iter_mut().zip(row(j)).zip(shift) {
                        *s += (v - c).exp();
                    }
                }
            },
        );
        if n > ROWS {
            for (total, &p) in out.iter_mut().zip(&*partial) {
                *total += p;
            }
        }
    }
    for (total, &c) in out.iter_mut().zip(&*shift) {
        *total = total.ln() + c;
    }
}

/// `g · e^{x − lse}` over `x`'s elements `start..start + out.len()`, into `out`; `lse` and `g`
/// are indexed by the reduced position (shape `[outer, 1, inner]`).
fn lse_grad_fill<T: Float>(
    x: &[T],
    lse: &[T],
    g: Option<&[T]>,
    (n, inner): (usize, usize),
    start: usize,
    out: &mut [T],
) {
    simd::run(
        #[inline(always)]
        || {
            let end = start + out.len();
            let mut pos = start;
            while pos < end {
                let o = pos / (n * inner);
                // A run of elements read against one lse (the rest of a lane, inner == 1) or against
                // consecutive ones (the rest of a row): either way a loop that vectorises.
                let stop = if inner == 1 {
                    ((o + 1) * n).min(end)
                } else {
                    (pos - pos % inner + inner).min(end)
                };
                let dst = &mut out[pos - start..stop - start];
                let src = &x[pos..stop];
                if inner == 1 {
                    let c = lse[o];
                    match g {
                        Some(g) => {
                            let s = g[o];
                            for (d, &v) in dst.iter_mut().zip(src) {
                                *d = s * (v - c).exp();
                            }
                        }
                        None => {
                            for (d, &v) in dst.iter_mut().zip(src) {
                                *d = (v - c).exp();
                            }
                        }
                    }
                } else {
                    let k = o * inner + pos % inner;
                    let c = &lse[k..k + dst.len()];
                    match g {
                        Some(g) => {
                            for (((d, &v), &c), &s) in dst.iter_mut().zip(src).zip(c).zip(&g[k..]) {
                                *d = s * (v - c).exp();
                            }
                        }
                        None => {
                            for ((d, &v), &c) in dst.iter_mut().zip(src).zip(c) {
                                *d = (v - c).exp();
                            }
                        }
                    }
                }
                pos = stop;
            }
        },
    )
}

/// The kernel of [`LseGrad`]: one pass over `x`, split between threads for large tensors.
fn lse_grad_kernel<T: Float>(
    x: &Tensor<T>,
    lse: &Tensor<T>,
    g: Option<&Tensor<T>>,
    axis: usize,
) -> Tensor<T> {
    let (_, n, inner) = shape::split_at_axis(x.shape(), axis);
    let (xs, ls, gs) = (x.as_slice(), lse.as_slice(), g.map(|g| g.as_slice()));
    let len = x.numel();
    let threads = threads_for(len, HEAVY_SPLIT);
    let chunk = len.div_ceil(threads);
    Tensor::build(Shape::from_slice(x.shape()), |out| {
        for_each_chunk(out, chunk, threads > 1, |p, piece| {
            lse_grad_fill(xs, ls, gs, (n, inner), p * chunk, piece)
        });
    })
}

impl<T: Float> Tensor<T> {
    /// `ln Σ exp(x)` over `axis` (`torch.logsumexp`), keeping the axis with size 1 when
    /// `keepdim`. Stable: computed as `m + ln Σ exp(x − m)` with `m` the lane's maximum, taken
    /// as 0 when infinite, as PyTorch does, so an all −inf lane gives −inf, a lane holding +inf
    /// gives +inf, and an empty axis gives −inf. Two passes over the input (maximum, then sum).
    ///
    /// # Panics
    /// If `axis` is out of range (always for rank 0).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f64>::from_vec(vec![1000., 1000., f64::NEG_INFINITY, f64::NEG_INFINITY], &[2, 2]);
    /// let l = t.logsumexp(1, false).to_vec();
    /// assert_eq!(l, vec![1000. + 2f64.ln(), f64::NEG_INFINITY]);
    /// ```
    #[track_caller]
    pub fn logsumexp(&self, axis: usize, keepdim: bool) -> Tensor<T> {
        shape::check_axis("logsumexp", axis, self.shape());
        let (outer, n, inner) = shape::split_at_axis(self.shape(), axis);
        let x = self.as_slice();
        let threads = threads_for(self.numel(), HEAVY_SPLIT);
        Tensor::build(shape::reduced_shape(self.shape(), axis, keepdim), |out| {
            if out.is_empty() {
                return;
            }
            if inner == 1 {
                if outer >= threads {
                    // Whole lanes per thread.
                    let per = outer.div_ceil(threads);
                    for_each_chunk(out, per, threads > 1, |p, part| {
                        for (k, v) in part.iter_mut().enumerate() {
                            let o = p * per + k;
                            *v = lse_lane(&x[o * n..(o + 1) * n], 1);
                        }
                    });
                } else {
                    // A few long lanes: each split between the threads.
                    for (o, v) in out.iter_mut().enumerate() {
                        *v = lse_lane(&x[o * n..(o + 1) * n], threads);
                    }
                }
                return;
            }
            if outer >= threads {
                let per = outer.div_ceil(threads);
                for_each_chunk(out, per * inner, threads > 1, |p, part| {
                    let mut scratch = Vec::new();
                    for (k, row) in part.chunks_mut(inner).enumerate() {
                        lse_columns(x, (n, inner), (p * per + k, 0), row, &mut scratch);
                    }
                });
            } else {
                // A few wide blocks (axis 0 of a matrix): the threads share the columns.
                let width = column_width(inner, threads.div_ceil(outer));
                let pieces: Vec<(usize, usize, &mut [T])> = out
                    .chunks_mut(inner)
                    .enumerate()
                    .flat_map(|(o, row)| {
                        row.chunks_mut(width)
                            .enumerate()
                            .map(move |(p, piece)| (o, p * width, piece))
                    })
                    .collect();
                pieces
                    .into_par_iter()
                    .for_each(|(o, c0, piece)| lse_columns(x, (n, inner), (o, c0), piece, &mut Vec::new()));
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// cumsum
// ---------------------------------------------------------------------------------------------

/// Cumulative sum along an axis (`Args::Axis`): `out_j = Σ_{k ≤ j} x_k`. Its adjoint is the
/// reversed cumulative sum ([`ReverseCumSum`]), and the other way round.
pub(crate) struct CumSum;

/// Reversed cumulative sum along an axis (`Args::Axis`): `out_j = Σ_{k ≥ j} x_k`, the adjoint of
/// [`CumSum`] (PyTorch's cumsum backward: `grad.flip(dim).cumsum(dim).flip(dim)`).
pub(crate) struct ReverseCumSum;

fn axis_of(args: Args, op: &str) -> usize {
    let Args::Axis { axis, .. } = args else {
        unreachable!("{op} node without its axis")
    };
    axis as usize
}

impl<T: Float> Op<T> for CumSum {
    fn name(&self) -> &'static str {
        "cumsum"
    }
    fn rule(&self) -> &'static str {
        "d(sum_{k<=j} x_k)/dx_k = 1 for k <= j: grad_x = reversed cumsum of grad_out"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let axis = axis_of(cx.args, "cumsum");
        [cx.need(0, || reverse_cumsum(cx.grad_out, axis)), None]
    }
}

impl<T: Float> Primitive<T> for CumSum {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        cumsum_kernel(cx.x(), axis_of(cx.args, "cumsum"), false)
    }
}

impl<T: Float> Op<T> for ReverseCumSum {
    fn name(&self) -> &'static str {
        "reverse_cumsum"
    }
    fn rule(&self) -> &'static str {
        "d(sum_{k>=j} x_k)/dx_k = 1 for k >= j: grad_x = cumsum of grad_out"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let axis = axis_of(cx.args, "reverse_cumsum");
        [cx.need(0, || cumsum(cx.grad_out, axis)), None]
    }
}

impl<T: Float> Primitive<T> for ReverseCumSum {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        cumsum_kernel(cx.x(), axis_of(cx.args, "reverse_cumsum"), true)
    }
}

/// The cumulative sum of `x` along `axis`, for any operand (rules call this).
#[track_caller]
pub(crate) fn cumsum<T: Float, G: Operand<T>>(x: &G, axis: usize) -> G {
    G::apply(&CumSum, Args::axis(axis, false), None, &[x])
}

/// The reversed cumulative sum of `x` along `axis`, for any operand.
#[track_caller]
pub(crate) fn reverse_cumsum<T: Float, G: Operand<T>>(x: &G, axis: usize) -> G {
    G::apply(&ReverseCumSum, Args::axis(axis, false), None, &[x])
}

/// Adds `row` to the running sums `acc` and writes them to `out`. The sums are kept in `f64`,
/// as PyTorch's CPU cumsum keeps them for `f32` (its `acc_type`), so `f32` results are the
/// correctly rounded running sums of PyTorch rather than a drifting `f32` chain.
#[inline]
fn accumulate_row<T: Float>(acc: &mut [f64], row: &[T], out: &mut [T]) {
    for ((a, &v), o) in acc.iter_mut().zip(row).zip(out) {
        *a += v.to_f64();
        *o = T::from_f64(*a);
    }
}

/// Cumulative sums of whole contiguous lanes of length `n` (`x` and `out` hold the same lanes).
/// Eight lanes at a time: each running sum is a chain of dependent additions (4 cycles each),
/// and eight chains in flight hide the adder's latency (four left it half idle).
fn cumsum_lanes<T: Float>(x: &[T], out: &mut [T], n: usize, reverse: bool) {
    const LANES: usize = 8;
    let mut xs = x.chunks_exact(LANES * n);
    let mut outs = out.chunks_exact_mut(LANES * n);
    for (xg, og) in (&mut xs).zip(&mut outs) {
        let xl: [&[T]; LANES] = std::array::from_fn(|l| &xg[l * n..(l + 1) * n]);
        let mut rows = og.chunks_exact_mut(n);
        let mut ol: [&mut [T]; LANES] =
            std::array::from_fn(|_| rows.next().expect("a group holds LANES whole lanes"));
        let mut acc = [0.0f64; LANES];
        let mut step = |j: usize| {
            for (a, x) in acc.iter_mut().zip(&xl) {
                *a += x[j].to_f64();
            }
            for (o, &a) in ol.iter_mut().zip(&acc) {
                o[j] = T::from_f64(a);
            }
        };
        if reverse {
            (0..n).rev().for_each(&mut step);
        } else {
            (0..n).for_each(&mut step);
        }
    }
    let lanes = xs
        .remainder()
        .chunks_exact(n)
        .zip(outs.into_remainder().chunks_exact_mut(n));
    for (xl, ol) in lanes {
        let mut acc = 0.0f64;
        let mut step = |(o, &v): (&mut T, &T)| {
            acc += v.to_f64();
            *o = T::from_f64(acc);
        };
        if reverse {
            ol.iter_mut().zip(xl).rev().for_each(&mut step);
        } else {
            ol.iter_mut().zip(xl).for_each(&mut step);
        }
    }
}

/// Cumulative sums down the rows of one `[n, inner]` block (`x` and `out` both that block),
/// whole rows at a time.
fn cumsum_block<T: Float>(x: &[T], out: &mut [T], inner: usize, reverse: bool, acc: &mut Vec<f64>) {
    acc.clear();
    acc.resize(inner, 0.0);
    let rows = x.chunks_exact(inner).zip(out.chunks_exact_mut(inner));
    if reverse {
        rows.rev().for_each(|(r, o)| accumulate_row(acc, r, o));
    } else {
        rows.for_each(|(r, o)| accumulate_row(acc, r, o));
    }
}

/// Cumulative sums down columns `c0..` of block `o` of `x` (`[outer, n, inner]`) into the
/// piece's `rows` (one segment per row, in order).
fn cumsum_piece<T: Float>(x: &[T], (n, inner): (usize, usize), piece: ColumnPiece<'_, T>, reverse: bool) {
    let (o, c0, rows) = piece;
    let w = rows.first().map_or(0, |r| r.len());
    let mut acc = vec![0.0f64; w];
    let row = |j: usize| &x[(o * n + j) * inner + c0..][..w];
    let rows = rows.into_iter().enumerate();
    if reverse {
        rows.rev()
            .for_each(|(j, out)| accumulate_row(&mut acc, row(j), out));
    } else {
        rows.for_each(|(j, out)| accumulate_row(&mut acc, row(j), out));
    }
}

/// The kernel of [`CumSum`] and [`ReverseCumSum`]: lanes along the last axis run four at a time,
/// other axes accumulate whole rows; large tensors are split between threads by lanes, by
/// blocks, or (a few wide blocks) by columns.
fn cumsum_kernel<T: Float>(t: &Tensor<T>, axis: usize, reverse: bool) -> Tensor<T> {
    let (outer, n, inner) = shape::split_at_axis(t.shape(), axis);
    let x = t.as_slice();
    let threads = threads_for(t.numel(), LIGHT_SPLIT);
    Tensor::build(Shape::from_slice(t.shape()), |out| {
        if out.is_empty() {
            return;
        }
        if inner == 1 {
            let per = outer.div_ceil(threads) * n;
            for_each_chunk(out, per, threads > 1, |p, part| {
                cumsum_lanes(&x[p * per..][..part.len()], part, n, reverse)
            });
        } else if outer >= threads {
            let per = outer.div_ceil(threads) * n * inner;
            for_each_chunk(out, per, threads > 1, |p, part| {
                let mut acc = Vec::new();
                let x = &x[p * per..][..part.len()];
                for (xb, ob) in x.chunks_exact(n * inner).zip(part.chunks_exact_mut(n * inner)) {
                    cumsum_block(xb, ob, inner, reverse, &mut acc);
                }
            });
        } else {
            let width = column_width(inner, threads.div_ceil(outer));
            column_pieces(out, n, inner, width)
                .into_par_iter()
                .for_each(|piece| cumsum_piece(x, (n, inner), piece, reverse));
        }
    })
}

impl<T: Float> Tensor<T> {
    /// Cumulative sum along `axis` (`torch.cumsum`): element `j` of each lane is the sum of
    /// elements `0..=j`. Running sums are kept in `f64` (as PyTorch's CPU kernel keeps them for
    /// `f32`). An empty tensor gives an empty tensor.
    ///
    /// # Panics
    /// If `axis` is out of range (always for rank 0).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]);
    /// assert_eq!(t.cumsum(1).to_vec(), vec![1., 3., 6., 4., 9., 15.]);
    /// assert_eq!(t.cumsum(0).to_vec(), vec![1., 2., 3., 5., 7., 9.]);
    /// ```
    #[track_caller]
    pub fn cumsum(&self, axis: usize) -> Tensor<T> {
        shape::check_axis("cumsum", axis, self.shape());
        cumsum_kernel(self, axis, false)
    }
}

// ---------------------------------------------------------------------------------------------
// std's square root
// ---------------------------------------------------------------------------------------------

/// The square root that ends `std_axis`: its gradient `g / (2 y)` is taken as 0 where `y = 0`, as
/// PyTorch's `std_backward` masks it (a constant lane has a zero gradient, not NaN).
pub(crate) struct StdSqrt;

impl<T: Float> Op<T> for StdSqrt {
    fn name(&self) -> &'static str {
        "std_sqrt"
    }
    fn rule(&self) -> &'static str {
        "d(sqrt v)/dv = 1/(2 sqrt v), 0 where sqrt v = 0: grad_v = grad_out / (2 out), masked"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        [cx.need(0, || half_over(cx.grad_out, cx.output)), None]
    }
}

/// `g / (2 y)`, 0 where `y = 0` (inputs `[g, y]` of one shape): the derivative of [`StdSqrt`].
pub(crate) struct HalfOver;

/// `g / (2 y)`, 0 where `y = 0`, for any operand.
#[track_caller]
fn half_over<T: Float, G: Operand<T>>(g: &G, y: &G) -> G {
    G::apply(&HalfOver, Args::None, None, &[g, y])
}

impl<T: Float> Op<T> for HalfOver {
    fn name(&self) -> &'static str {
        "half_over"
    }
    fn rule(&self) -> &'static str {
        "out = g / (2y), 0 at y = 0: grad_g = G / (2y), grad_y = -G g / (2y^2), both 0 at y = 0"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let (g, y, gr) = (cx.x(), cx.y(), cx.grad_out);
        [
            cx.need(0, || half_over(gr, y)),
            // -G·g / (2y²) = -2 · ((G·g / 2y) / 2y), each step masked at y = 0.
            cx.need(1, || {
                half_over(&half_over(&gr.mul(g), y), y).scale(T::from_f64(-2.0))
            }),
        ]
    }
}

impl<T: Float> Primitive<T> for HalfOver {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let two = T::from_f64(2.0);
        cx.inputs[0].zip_map("std backward", cx.inputs[1], move |g, y| {
            if y == T::ZERO { T::ZERO } else { g / (y * two) }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Var methods
// ---------------------------------------------------------------------------------------------

/// Which axes of `shape` a reduction over `axes` reduces: those listed, or all of them for an
/// empty list (as `torch.sum(x, dim=[])`).
///
/// # Panics
/// If an axis is out of range or listed twice; `op` names the public method.
#[track_caller]
fn reduced_axes(op: &str, axes: &[usize], shape: &[usize]) -> SmallVec<[bool; 8]> {
    let rank = shape.len();
    if axes.is_empty() {
        return SmallVec::from_elem(true, rank);
    }
    let mut reduce: SmallVec<[bool; 8]> = SmallVec::from_elem(false, rank);
    for &a in axes {
        assert!(
            a < rank,
            "tapegrad: {op}: axis {a} in {axes:?} is out of range for shape {shape:?} (rank {rank})"
        );
        assert!(!reduce[a], "tapegrad: {op}: axis {a} appears twice in {axes:?}");
        reduce[a] = true;
    }
    reduce
}

impl<'t, T: Float> Var<'t, T> {
    /// Minimum over `axis` (the values of `torch.min(x, dim, keepdim)`, or `torch.amin` when the
    /// minimum is unique), keeping the axis with size 1 when `keepdim`. The gradient flows to the
    /// first minimal element of each lane, as in PyTorch; NaN propagates.
    ///
    /// # Panics
    /// If `axis` is out of range (always for rank 0) or the axis is empty (PyTorch: "cannot
    /// perform reduction on an empty dimension").
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor, Var};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![3., 1., 1., 4., 2., 6.], &[2, 3]));
    /// let m = x.min_axis(1, false);
    /// assert_eq!(m.value().to_vec(), vec![1., 2.]);
    /// assert_eq!(m.sum().backward()[x].to_vec(), vec![0., 1., 0., 0., 1., 0.]);
    /// ```
    #[track_caller]
    pub fn min_axis(self, axis: usize, keepdim: bool) -> Var<'t, T> {
        let value = self.value_ref().min_axis(axis, keepdim);
        self.record_unary(&MinAxis, Args::axis(axis, keepdim), value)
    }

    /// `ln Σ exp(x)` over `axis` (`torch.logsumexp`), keeping the axis with size 1 when
    /// `keepdim`. Stable for inputs of ±1000 (the lane's maximum is taken out first); as in
    /// PyTorch an all −inf lane gives −inf (no NaN), a lane holding +inf gives +inf and an empty
    /// axis gives −inf. The gradient is the softmax `exp(x − out)` times the output's gradient
    /// (NaN on an all −inf lane, as in PyTorch), and is differentiable again.
    ///
    /// # Panics
    /// If `axis` is out of range (always for rank 0).
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor, Var};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1000., 1000., 0., f64::NEG_INFINITY], &[2, 2]));
    /// let l = x.logsumexp(1, false);
    /// assert_eq!(l.value().to_vec(), vec![1000. + 2f64.ln(), 0.]);
    /// let g = l.sum().backward()[x].to_vec(); // the softmax of each row
    /// assert!(g.iter().zip([0.5, 0.5, 1., 0.]).all(|(a, b)| (a - b).abs() < 1e-12));
    /// ```
    #[track_caller]
    pub fn logsumexp(self, axis: usize, keepdim: bool) -> Var<'t, T> {
        shape::check_axis("logsumexp", axis, &self.shape());
        Var::record_op(&LogSumExp, Args::axis(axis, keepdim), None, &[self])
    }

    /// Cumulative sum along `axis` (`torch.cumsum`): element `j` of each lane is the sum of
    /// elements `0..=j`. The gradient is the reversed cumulative sum of the output's gradient
    /// (and that one's gradient a cumulative sum again), so any order works. An empty tensor
    /// gives an empty tensor.
    ///
    /// # Panics
    /// If `axis` is out of range (always for rank 0).
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor, Var};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2., 3., 4.], &[4]));
    /// let c = x.cumsum(0);
    /// assert_eq!(c.value().to_vec(), vec![1., 3., 6., 10.]);
    /// assert_eq!(c.sum().backward()[x].to_vec(), vec![4., 3., 2., 1.]);
    /// ```
    #[track_caller]
    pub fn cumsum(self, axis: usize) -> Var<'t, T> {
        shape::check_axis("cumsum", axis, &self.shape());
        Var::record_op(&CumSum, Args::axis(axis, false), None, &[self])
    }

    /// Variance over `axis` (`torch.var(x, dim, correction=correction, keepdim=keepdim)`): the
    /// sum of squared deviations from the mean divided by `n − correction` (`correction = 1`
    /// is Bessel's correction, PyTorch's default; 0 gives the population variance). As in
    /// PyTorch, when `n ≤ correction` the divisor is 0, giving +inf (or NaN when every deviation
    /// is 0, as for one element with `correction = 1`), and an empty axis gives NaN.
    ///
    /// # Panics
    /// If `axis` is out of range (always for rank 0).
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor, Var};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2., 3., 4.], &[1, 4]));
    /// assert_eq!(x.var_axis(1, 0, false).value().to_vec(), vec![1.25]);
    /// let v = x.var_axis(1, 1, true);
    /// assert_eq!(v.shape(), vec![1, 1]);
    /// assert!((v.item() - 5.0 / 3.0).abs() < 1e-15);
    /// // d var / dx = 2 (x - mean) / (n - 1)
    /// let g = v.sum().backward()[x].to_vec();
    /// assert!(g.iter().zip([-1.0, -1.0 / 3.0, 1.0 / 3.0, 1.0]).all(|(a, b)| (a - b).abs() < 1e-15));
    /// ```
    #[track_caller]
    pub fn var_axis(self, axis: usize, correction: usize, keepdim: bool) -> Var<'t, T> {
        let shape = self.shape();
        shape::check_axis("var_axis", axis, &shape);
        let centred = self - self.mean_axis(axis, true);
        let divisor = T::from_usize(shape[axis].saturating_sub(correction));
        (centred * centred).sum_axis(axis, keepdim) / divisor
    }

    /// Standard deviation over `axis` (`torch.std(x, dim, correction=correction,
    /// keepdim=keepdim)`): the square root of [`Var::var_axis`], with its edge cases. Where the
    /// result is 0 (a constant lane) the gradient is 0, as PyTorch's.
    ///
    /// # Panics
    /// If `axis` is out of range (always for rank 0).
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor, Var};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![2., 4., 4., 4., 5., 5., 7., 9.], &[8]));
    /// let s = x.std_axis(0, 0, false);
    /// assert_eq!(s.item(), 2.0);
    /// let flat = tape.var(Tensor::from_vec(vec![3., 3.], &[2]));
    /// assert_eq!(flat.std_axis(0, 1, false).backward()[flat].to_vec(), vec![0., 0.]);
    /// ```
    #[track_caller]
    pub fn std_axis(self, axis: usize, correction: usize, keepdim: bool) -> Var<'t, T> {
        shape::check_axis("std_axis", axis, &self.shape());
        let var = self.var_axis(axis, correction, keepdim);
        let value = var.value_ref().sqrt();
        var.record_unary(&StdSqrt, Args::None, value)
    }

    /// Sum over several axes (`torch.sum(x, dim=axes, keepdim=keepdim)`), given in any order;
    /// reduced axes are kept with size 1 when `keepdim`. An empty list sums over every axis, as
    /// `torch.sum(x, dim=[])` does. An empty axis sums to 0.
    ///
    /// # Panics
    /// If an axis is out of range (any axis, for rank 0) or listed twice.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor, Var};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_fn(&[2, 3, 4], |i| i as f64));
    /// let s = x.sum_axes(&[2, 0], false);
    /// assert_eq!(s.value().to_vec(), vec![60., 92., 124.]);
    /// assert_eq!(x.sum_axes(&[0, 2], true).shape(), vec![1, 3, 1]);
    /// assert_eq!(x.sum_axes(&[], false).item(), 276.);
    /// assert_eq!(s.sum().backward()[x], Tensor::ones(&[2, 3, 4]));
    /// ```
    #[track_caller]
    pub fn sum_axes(self, axes: &[usize], keepdim: bool) -> Var<'t, T> {
        let shape = self.shape();
        let reduce = reduced_axes("sum_axes", axes, &shape);
        let out_shape: Shape = shape
            .iter()
            .zip(&reduce)
            .filter_map(|(&d, &r)| if r { keepdim.then_some(1) } else { Some(d) })
            .collect();
        if reduce.iter().all(|&r| r) {
            let total = self.sum();
            return if out_shape.is_empty() {
                total
            } else {
                total.reshape(&out_shape)
            };
        }
        // Adjacent axes reduced together (or kept together) merge into one by a reshape, which
        // copies nothing: then each run of reduced axes costs one pass. Summing the last run first
        // keeps the indices of the others valid.
        let mut merged = Shape::new();
        let mut merged_reduce: SmallVec<[bool; 8]> = SmallVec::new();
        for (&d, &r) in shape.iter().zip(&reduce) {
            if merged_reduce.last() == Some(&r) {
                let last = merged.len() - 1;
                merged[last] *= d;
            } else {
                merged.push(d);
                merged_reduce.push(r);
            }
        }
        let mut v = if merged.len() == shape.len() {
            self
        } else {
            self.reshape(&merged)
        };
        for k in (0..merged.len()).rev() {
            if merged_reduce[k] {
                v = v.sum_axis(k, false);
            }
        }
        if v.shape().as_slice() == out_shape.as_slice() {
            v
        } else {
            v.reshape(&out_shape)
        }
    }

    /// Mean over several axes (`torch.mean(x, dim=axes, keepdim=keepdim)`): [`Var::sum_axes`]
    /// divided by the number of elements summed. An empty list means every axis, as in
    /// [`Var::sum_axes`]; an empty axis gives NaN (0 / 0), as in PyTorch.
    ///
    /// # Panics
    /// If an axis is out of range (any axis, for rank 0) or listed twice.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor, Var};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_fn(&[2, 3, 4], |i| i as f64));
    /// let m = x.mean_axes(&[0, 2], false);
    /// assert_eq!(m.value().to_vec(), vec![7.5, 11.5, 15.5]);
    /// assert_eq!(m.sum().backward()[x], Tensor::full(&[2, 3, 4], 0.125));
    /// ```
    #[track_caller]
    pub fn mean_axes(self, axes: &[usize], keepdim: bool) -> Var<'t, T> {
        let shape = self.shape();
        let reduce = reduced_axes("mean_axes", axes, &shape);
        let count: usize = shape
            .iter()
            .zip(&reduce)
            .filter(|&(_, &r)| r)
            .map(|(&d, _)| d)
            .product();
        self.sum_axes(axes, keepdim) / T::from_usize(count)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    #[test]
    fn max_axis_sends_gradient_to_first_maximum_on_ties() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::from_vec(vec![2.0, 2.0, 1.0], &[3]));
        let g = x.max_axis(0, false).backward();
        assert_eq!(g[x].to_vec(), vec![1.0, 0.0, 0.0]);
    }

    #[test]
    fn mean_axis_keepdim_gradient_is_one_over_n() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::zeros(&[2, 4]));
        let g = x.mean_axis(1, true).sum().backward();
        assert_eq!(g[x].to_vec(), vec![0.25; 8]);
    }
}
