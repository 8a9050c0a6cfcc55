//! Indexing with integer tensors: `index_select` (whole slices along an axis), `gather` (one
//! element per position of the index) and `scatter_add` (their adjoint), and `pick`, which
//! selects one element per row and is the building block of fused cross-entropy.
//!
//! Each selection's rule is the matching scatter-add into zeros and each scatter-add's rule is
//! the selection, so gradients of any order come from these four kernels. Indices are checked
//! once, when the op is recorded, with a message naming the offending entry.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Args, Extra, Fwd, Op, Operand, Primitive, Vjp};
use crate::tensor::{Shape, Work, for_each_slab, shape, simd, write_copy};
use crate::{Element, Float, Tensor, Var};

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

    #[track_caller]
    pub(crate) fn pick_by(self, index: Var<'t, T>) -> Var<'t, T> {
        let value = self.value_ref().pick(&index.value_ref());
        self.record_binary(index, &Pick, Args::None, value)
    }

    #[track_caller]
    pub(crate) fn unpick(self, index: Var<'t, T>, classes: usize) -> Var<'t, T> {
        let value = self.value_ref().unpick(&index.value_ref(), classes);
        self.record_binary(index, &Unpick, Args::None, value)
    }
}

/// Checks that every entry of `index` is below `len` (the length of `axis` of `shape`).
#[track_caller]
fn check_in_range(op: &str, axis: usize, index: &Tensor<usize>, shape: &[usize]) {
    let len = shape[axis];
    let values = index.as_slice();
    // One branch-free pass finds whether anything is out of range; the position is looked up
    // only to write the message.
    if values.is_empty() || largest(values) < len {
        return;
    }
    let flat = values.iter().position(|&i| i >= len).unwrap_or_default();
    let mut position = vec![0; index.rank()];
    let mut rest = flat;
    for d in (0..index.rank()).rev() {
        position[d] = rest % index.shape()[d];
        rest /= index.shape()[d];
    }
    panic!(
        "tapegrad: {op}: index {} at position {position:?} of the index is out of range for \
         axis {axis} of length {len} (shape {shape:?})",
        values[flat]
    );
}

/// The largest entry of a non-empty index, on several threads when it is long, and in wide
/// vectors: on `gather`'s 2²⁰-entry bench index a scalar check took longer than the gather.
fn largest(values: &[usize]) -> usize {
    fn serial(values: &[usize]) -> usize {
        // Integer maxima may be reassociated, so this vectorises, given 64-bit vector compares
        // (AVX2, AVX-512).
        simd::run(
            #[inline(always)]
            move || values.iter().copied().fold(0, usize::max),
        )
    }
    let threads = crate::tensor::reduction_threads(values.len());
    if threads < 2 {
        return serial(values);
    }
    use rayon::prelude::*;
    values
        .par_chunks(values.len().div_ceil(threads))
        .map(serial)
        .max()
        .unwrap_or(0)
}

/// Checks an index for `gather` and `scatter_add`: as many axes as `shape`, no longer than
/// `shape` on the other axes, and every entry in range.
#[track_caller]
fn check_gather_index(op: &str, axis: usize, index: &Tensor<usize>, shape: &[usize]) {
    check_gather_shape(op, axis, index, shape);
    check_in_range(op, axis, index, shape);
}

/// [`check_gather_index`] without the range of the entries, which `gather` checks in its kernel
/// (a separate pass over a large index cost as much as the gather).
#[track_caller]
fn check_gather_shape(op: &str, axis: usize, index: &Tensor<usize>, shape: &[usize]) {
    shape::check_axis(op, axis, shape);
    let ishape = index.shape();
    let fits = ishape.len() == shape.len()
        && ishape
            .iter()
            .zip(shape)
            .enumerate()
            .all(|(d, (&i, &s))| d == axis || i <= s);
    assert!(
        fits,
        "tapegrad: {op}: an index of shape {ishape:?} does not fit a value of shape {shape:?} \
         along axis {axis} (it needs the same rank, and no more entries than the value on the \
         other axes)"
    );
}

/// `x.gather(axis, index)` with the index's shape checked: the kernel checks the entries as it
/// reads them, and an entry out of range panics with [`check_in_range`]'s message.
#[track_caller]
fn gather_checked<T: Element>(x: &Tensor<T>, axis: usize, index: &Tensor<usize>) -> Tensor<T> {
    match gather_kernel(x, axis, index) {
        Some(out) => out,
        None => {
            check_in_range("gather", axis, index, x.shape());
            unreachable!("gather: the kernel saw an entry out of range that the check did not")
        }
    }
}

/// Checks a 1-D index for `index_select` and reads it as a slice.
#[track_caller]
fn check_select_index(axis: usize, index: &Tensor<usize>, shape: &[usize]) {
    shape::check_axis("index_select", axis, shape);
    assert!(
        index.rank() <= 1,
        "tapegrad: index_select: the index must be 1-D, got shape {:?}",
        index.shape()
    );
    check_in_range("index_select", axis, index, shape);
}

/// The shape of `x.index_select(axis, index)`.
fn selected_shape(shape: &[usize], axis: usize, count: usize) -> Shape {
    let mut out = Shape::from_slice(shape);
    out[axis] = count;
    out
}

/// `out[o, j, :] = x[o, index[j], :]` around `axis`: one block copy per index entry, the rows
/// split between threads when there are many.
fn index_select_kernel<T: Element>(x: &Tensor<T>, axis: usize, index: &[usize]) -> Tensor<T> {
    let (_, n, inner) = shape::split_at_axis(x.shape(), axis);
    let m = index.len();
    let src = x.as_slice();
    // SAFETY: every output row (`o`, `j`) is one copy of `inner` elements.
    unsafe {
        Tensor::build_overwritten(selected_shape(x.shape(), axis, m), |out| {
            if out.is_empty() {
                return;
            }
            for_each_slab(out, inner, Work::Light, |first, piece| {
                for (r, row) in (first..).zip(piece.chunks_exact_mut(inner)) {
                    let (o, j) = (r / m, r % m);
                    write_copy(row, &src[(o * n + index[j]) * inner..][..inner]);
                }
            });
        })
    }
}

/// `out[o, index[j], :] += g[o, j, :]` into zeros of shape `full`: the adjoint of
/// [`index_select_kernel`]. Threads own disjoint output rows and each adds the entries that land
/// in its rows, so repeated entries never race.
fn index_add_kernel<T: Float>(g: &Tensor<T>, axis: usize, index: &[usize], full: &[usize]) -> Tensor<T> {
    let (_, n, inner) = shape::split_at_axis(full, axis);
    let m = index.len();
    let src = g.as_slice();
    Tensor::build(Shape::from_slice(full), |out| {
        if out.is_empty() || m == 0 {
            return;
        }
        for_each_slab(out, inner, Work::Light, |first, piece| {
            let rows = first..first + piece.len() / inner;
            for o in rows.start / n..rows.end.div_ceil(n) {
                for (j, &i) in index.iter().enumerate() {
                    let r = o * n + i;
                    if !rows.contains(&r) {
                        continue;
                    }
                    let acc = &mut piece[(r - rows.start) * inner..][..inner];
                    let from = &src[(o * m + j) * inner..][..inner];
                    acc.iter_mut().zip(from).for_each(|(a, &v)| *a += v);
                }
            }
        });
    })
}

/// Calls `row(r, base)` for the rows `rows` of an index of shape `ishape` (rows along its last
/// axis), `base` being the offset, in a value with `strides`, of the row's first position with
/// the `axis` coordinate left at 0.
fn for_each_index_row(
    ishape: &[usize],
    strides: &[usize],
    axis: usize,
    rows: std::ops::Range<usize>,
    mut row: impl FnMut(usize, usize),
) {
    let rank = ishape.len();
    if rows.is_empty() || shape::numel(ishape) == 0 {
        return;
    }
    let mut position: Shape = smallvec::smallvec![0; rank - 1];
    let mut base = 0;
    let mut rest = rows.start;
    for d in (0..rank - 1).rev() {
        position[d] = rest % ishape[d];
        rest /= ishape[d];
        if d != axis {
            base += position[d] * strides[d];
        }
    }
    for r in rows {
        row(r, base);
        for d in (0..rank - 1).rev() {
            position[d] += 1;
            let step = if d == axis { 0 } else { strides[d] };
            base += step;
            if position[d] < ishape[d] {
                break;
            }
            base -= step * ishape[d];
            position[d] = 0;
        }
    }
}

/// `out[p] = x[p with its axis coordinate replaced by index[p]]`, for every position `p` of
/// `index` (`torch.gather`), the index rows split between threads when there are many; `None`
/// if an entry is out of range (the kernel reads every entry anyway, so it checks them too).
fn gather_kernel<T: Element>(x: &Tensor<T>, axis: usize, index: &Tensor<usize>) -> Option<Tensor<T>> {
    let ishape = index.shape();
    let strides = shape::strides(x.shape());
    let (src, idx) = (x.as_slice(), index.as_slice());
    let inner = ishape.last().copied().unwrap_or(1);
    let along_rows = axis + 1 == ishape.len();
    let (len, step) = (x.shape().get(axis).copied().unwrap_or(1), strides[axis]);
    let out_of_range = AtomicBool::new(false);
    // SAFETY: each index row writes its `inner` outputs, and the rows cover the output.
    let out = unsafe {
        Tensor::build_overwritten(Shape::from_slice(ishape), |out| {
            if out.is_empty() {
                return;
            }
            if len == 0 {
                // Nothing to read: every entry is out of range. The slots still get values.
                out.fill(MaybeUninit::new(T::default()));
                out_of_range.store(true, Ordering::Relaxed);
                return;
            }
            for_each_slab(out, inner, Work::Light, |first, piece| {
                let rows = first..first + piece.len() / inner;
                let mut bad = false;
                for_each_index_row(ishape, &strides, axis, rows, |r, base| {
                    let out = &mut piece[(r - first) * inner..][..inner];
                    let idx = &idx[r * inner..][..inner];
                    let last = len - 1;
                    if along_rows {
                        let from = &src[base..base + len];
                        bad |= simd::run(
                            #[inline(always)]
                            move || {
                                // Taken here, beside `from`, so that the compiler sees
                                // `last < from.len()`, drops the bounds check and vectorises.
                                let last = from.len() - 1;
                                let mut bad = false;
                                for (o, &i) in out.iter_mut().zip(idx) {
                                    bad |= i > last;
                                    o.write(from[i.min(last)]);
                                }
                                bad
                            },
                        );
                    } else {
                        for (k, (o, &i)) in out.iter_mut().zip(idx).enumerate() {
                            bad |= i > last;
                            o.write(src[base + k + i.min(last) * step]);
                        }
                    }
                });
                if bad {
                    out_of_range.store(true, Ordering::Relaxed);
                }
            });
        })
    };
    (!out_of_range.into_inner()).then_some(out)
}

/// `out[p with its axis coordinate replaced by index[p]] += g[p]` into zeros of shape `full`:
/// the adjoint of [`gather_kernel`]. Along the last axis with an index as long as the value
/// elsewhere, index row `r` only writes output row `r`, so rows are split between threads.
fn scatter_add_kernel<T: Float>(
    g: &Tensor<T>,
    axis: usize,
    index: &Tensor<usize>,
    full: &[usize],
) -> Tensor<T> {
    let ishape = index.shape();
    let strides = shape::strides(full);
    let (src, idx) = (g.as_slice(), index.as_slice());
    let inner = ishape.last().copied().unwrap_or(1);
    let rank = ishape.len();
    let along_rows = axis + 1 == rank;
    let step = strides[axis];
    Tensor::build(Shape::from_slice(full), |out| {
        let rows = shape::numel(ishape).checked_div(inner).unwrap_or(0);
        let row_per_row = along_rows && rank > 0 && ishape[..rank - 1] == full[..rank - 1];
        if row_per_row && !out.is_empty() {
            let len = full[axis];
            for_each_slab(out, len, Work::Light, |first, piece| {
                for (r, acc) in (first..).zip(piece.chunks_exact_mut(len)) {
                    let (g, idx) = (&src[r * inner..][..inner], &idx[r * inner..][..inner]);
                    for (&v, &i) in g.iter().zip(idx) {
                        acc[i] += v;
                    }
                }
            });
            return;
        }
        for_each_index_row(ishape, &strides, axis, 0..rows, |r, base| {
            let (g, idx) = (&src[r * inner..(r + 1) * inner], &idx[r * inner..(r + 1) * inner]);
            if along_rows {
                for (&v, &i) in g.iter().zip(idx) {
                    out[base + i] += v;
                }
            } else {
                for (k, (&v, &i)) in g.iter().zip(idx).enumerate() {
                    out[base + k + i * step] += v;
                }
            }
        });
    })
}

/// Whole slices along an axis (`Extra::ints = [axis]`, `Extra::index`).
pub(crate) struct IndexSelect;

/// Slices added back into zeros (`Extra::ints = [axis, length]`, `Extra::index`): the adjoint
/// of [`IndexSelect`].
pub(crate) struct IndexAdd;

/// One element per index position (`Extra::ints = [axis]`, `Extra::index`).
pub(crate) struct Gather;

/// Values added into zeros at index positions (`Extra::ints = [axis, full shape..]`,
/// `Extra::index`): the adjoint of [`Gather`].
pub(crate) struct ScatterAdd;

impl<T: Float> Op<T> for IndexSelect {
    fn name(&self) -> &'static str {
        "index_select"
    }
    fn rule(&self) -> &'static str {
        "out[.., j, ..] = x[.., index_j, ..]: grad_x = grad_out's slices added back at index_j"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let extra = cx.extra();
        let axis = extra.ints[0];
        let back = Extra::ints(&[axis, cx.x().shape()[axis]]).with_index(extra.index("index_select").clone());
        [
            cx.need(0, || G::apply(&IndexAdd, Args::None, Some(back), &[cx.grad_out])),
            None,
        ]
    }
}

impl<T: Float> Primitive<T> for IndexSelect {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let extra = cx.extra();
        index_select_kernel(cx.x(), extra.ints[0], extra.index("index_select").as_slice())
    }
}

impl<T: Float> Op<T> for IndexAdd {
    fn name(&self) -> &'static str {
        "index_add"
    }
    fn rule(&self) -> &'static str {
        "adds slice j of x at index_j: grad_x = grad_out's slices at index_j (index_select)"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let extra = cx.extra();
        let back = Extra::ints(&extra.ints[..1]).with_index(extra.index("index_add").clone());
        [
            cx.need(0, || {
                G::apply(&IndexSelect, Args::None, Some(back), &[cx.grad_out])
            }),
            None,
        ]
    }
}

impl<T: Float> Primitive<T> for IndexAdd {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let extra = cx.extra();
        let (axis, len) = (extra.ints[0], extra.ints[1]);
        let x = cx.x();
        let full = selected_shape(x.shape(), axis, len);
        index_add_kernel(x, axis, extra.index("index_add").as_slice(), &full)
    }
}

impl<T: Float> Op<T> for Gather {
    fn name(&self) -> &'static str {
        "gather"
    }
    fn rule(&self) -> &'static str {
        "out[p] = x[p with axis coordinate index[p]]: grad_x = grad_out scatter-added there"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let extra = cx.extra();
        let mut ints = vec![extra.ints[0]];
        ints.extend_from_slice(&cx.x().shape());
        let back = Extra::ints(&ints).with_index(extra.index("gather").clone());
        [
            cx.need(0, || {
                G::apply(&ScatterAdd, Args::None, Some(back), &[cx.grad_out])
            }),
            None,
        ]
    }
}

impl<T: Float> Primitive<T> for Gather {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let extra = cx.extra();
        gather_kernel(cx.x(), extra.ints[0], extra.index("gather"))
            .expect("gather: the entries were checked when the op was recorded")
    }
}

impl<T: Float> Op<T> for ScatterAdd {
    fn name(&self) -> &'static str {
        "scatter_add"
    }
    fn rule(&self) -> &'static str {
        "adds x[p] at p with axis coordinate index[p]: grad_x = grad_out gathered there"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let extra = cx.extra();
        let back = Extra::ints(&extra.ints[..1]).with_index(extra.index("scatter_add").clone());
        [
            cx.need(0, || G::apply(&Gather, Args::None, Some(back), &[cx.grad_out])),
            None,
        ]
    }
}

impl<T: Float> Primitive<T> for ScatterAdd {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let extra = cx.extra();
        scatter_add_kernel(
            cx.x(),
            extra.ints[0],
            extra.index("scatter_add"),
            &extra.ints[1..],
        )
    }
}

/// Reads a 0-D index as a 1-D one of one entry, as `torch.index_select` does.
fn as_list(index: &Tensor<usize>) -> Tensor<usize> {
    if index.rank() == 0 {
        index.reshape(&[1])
    } else {
        index.clone()
    }
}

/// Checks `scatter_add`'s source against its index: same rank, at least as long on every axis.
#[track_caller]
fn check_scatter_source(axis: usize, index: &Tensor<usize>, src: &[usize], shape: &[usize]) {
    let ishape = index.shape();
    let fits = src.len() == ishape.len() && ishape.iter().zip(src).all(|(i, s)| i <= s);
    assert!(
        fits,
        "tapegrad: scatter_add: the source of shape {src:?} is smaller than the index of shape \
         {ishape:?} (axis {axis}, value of shape {shape:?}); it needs the index's rank and at \
         least its length on every axis"
    );
}

impl<T: Element> Tensor<T> {
    /// The slices `index[0], index[1], ..` along `axis`, in that order (`torch.index_select`);
    /// entries may repeat.
    ///
    /// # Panics
    /// If `axis` is out of range, `index` is not 1-D, or an entry is not below the axis's
    /// length.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::from_vec(vec![1., 2., 3., 4., 5., 6.], &[3, 2]);
    /// let rows = Tensor::<usize>::from_vec(vec![2, 0, 2], &[3]);
    /// assert_eq!(t.index_select(0, &rows).to_vec(), vec![5., 6., 1., 2., 5., 6.]);
    /// ```
    #[track_caller]
    pub fn index_select(&self, axis: usize, index: &Tensor<usize>) -> Tensor<T> {
        check_select_index(axis, index, self.shape());
        index_select_kernel(self, axis, index.as_slice())
    }

    /// For every position `p` of `index`, the element at `p` with its `axis` coordinate replaced
    /// by `index[p]` (`torch.gather`): the result has the index's shape, which has this tensor's
    /// rank and is no longer on the other axes.
    ///
    /// # Panics
    /// If `axis` is out of range, the index's shape does not fit, or an entry is not below the
    /// axis's length.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::from_vec(vec![1., 2., 3., 4.], &[2, 2]);
    /// let index = Tensor::<usize>::from_vec(vec![1, 1, 0, 1], &[2, 2]);
    /// assert_eq!(t.gather(1, &index).to_vec(), vec![2., 2., 3., 4.]);
    /// ```
    #[track_caller]
    pub fn gather(&self, axis: usize, index: &Tensor<usize>) -> Tensor<T> {
        check_gather_shape("gather", axis, index, self.shape());
        gather_checked(self, axis, index)
    }
}

impl<T: Float> Tensor<T> {
    /// This tensor with `src[p]` added at position `p` with its `axis` coordinate replaced by
    /// `index[p]`, for every position `p` of `index` (`torch.scatter_add`; repeated targets
    /// accumulate). `src` has the index's rank and is at least as long on every axis.
    ///
    /// # Panics
    /// If the shapes do not fit (see [`Tensor::gather`]) or an entry is out of range.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let counts = Tensor::<f32>::zeros(&[3]);
    /// let index = Tensor::<usize>::from_vec(vec![0, 2, 2, 2], &[4]);
    /// let ones = Tensor::<f32>::ones(&[4]);
    /// assert_eq!(counts.scatter_add(0, &index, &ones).to_vec(), vec![1., 0., 3.]);
    /// ```
    #[track_caller]
    pub fn scatter_add(&self, axis: usize, index: &Tensor<usize>, src: &Tensor<T>) -> Tensor<T> {
        check_gather_index("scatter_add", axis, index, self.shape());
        check_scatter_source(axis, index, src.shape(), self.shape());
        let src = if src.shape() == index.shape() {
            src.clone()
        } else {
            let pads: Vec<usize> = src
                .shape()
                .iter()
                .zip(index.shape())
                .flat_map(|(&s, &i)| [0, s - i])
                .collect();
            super::join::crop(src, &pads)
        };
        self + &scatter_add_kernel(&src, axis, index, self.shape())
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// The slices `index[0], index[1], ..` along `axis`, in that order (`torch.index_select`):
    /// embedding lookups, reordering, sampling rows. Entries may repeat; the gradient of a slice
    /// is the sum over its copies.
    ///
    /// # Panics
    /// If `axis` is out of range, `index` is not 1-D, or an entry is not below the axis's length
    /// (the message names the entry and its position).
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let table = tape.var(Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[3, 2]));
    /// let tokens = Tensor::<usize>::from_vec(vec![2, 0, 2], &[3]);
    /// let rows = table.index_select(0, &tokens);
    /// assert_eq!(rows.value().to_vec(), vec![5., 6., 1., 2., 5., 6.]);
    /// assert_eq!(rows.sum().backward()[table].to_vec(), vec![1., 1., 0., 0., 2., 2.]);
    /// ```
    #[track_caller]
    pub fn index_select(self, axis: usize, index: &Tensor<usize>) -> Var<'t, T> {
        check_select_index(axis, index, &self.shape());
        let extra = Extra::ints(&[axis]).with_index(as_list(index));
        Var::record_op(&IndexSelect, Args::None, Some(extra), &[self])
    }

    /// For every position `p` of `index`, the element at `p` with its `axis` coordinate replaced
    /// by `index[p]` (`torch.gather`): the result has the index's shape, which has this var's
    /// rank and is no longer on the other axes. The gradient is scatter-added back.
    ///
    /// # Panics
    /// If `axis` is out of range, the index's shape does not fit, or an entry is not below the
    /// axis's length (the message names the entry and its position).
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2., 3., 4.], &[2, 2]));
    /// let index = Tensor::<usize>::from_vec(vec![1, 1, 0, 1], &[2, 2]);
    /// let y = x.gather(1, &index);
    /// assert_eq!(y.value().to_vec(), vec![2., 2., 3., 4.]);
    /// assert_eq!(y.sum().backward()[x].to_vec(), vec![0., 2., 1., 1.]);
    /// ```
    #[track_caller]
    pub fn gather(self, axis: usize, index: &Tensor<usize>) -> Var<'t, T> {
        check_gather_shape("gather", axis, index, &self.shape());
        let value = gather_checked(&self.value_ref(), axis, index);
        let extra = Extra::ints(&[axis]).with_index(index.clone());
        self.tape
            .record_with(&Gather, Args::None, Some(extra), &[self.id], value)
    }

    /// This value with `src[p]` added at position `p` with its `axis` coordinate replaced by
    /// `index[p]`, for every position `p` of `index` (`torch.scatter_add`; repeated targets
    /// accumulate). `src` has the index's rank and is at least as long on every axis; entries
    /// beyond the index's shape are not used. Gradients: this var's is the output's, `src`'s is
    /// the output's gathered at the index.
    ///
    /// # Panics
    /// If the shapes do not fit, an entry is out of range, or the vars live on different tapes.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// // Sum of messages per node of a graph: edge e delivers src[e] to node index[e].
    /// let nodes = tape.var(Tensor::zeros(&[3]));
    /// let messages = tape.var(Tensor::from_vec(vec![1., 2., 3., 4.], &[4]));
    /// let index = Tensor::<usize>::from_vec(vec![0, 2, 2, 1], &[4]);
    /// let y = nodes.scatter_add(0, &index, messages);
    /// assert_eq!(y.value().to_vec(), vec![1., 4., 5.]);
    /// let w = tape.constant(Tensor::from_vec(vec![10., 20., 30.], &[3]));
    /// assert_eq!((y * w).sum().backward()[messages].to_vec(), vec![10., 30., 30., 20.]);
    /// ```
    #[track_caller]
    pub fn scatter_add(self, axis: usize, index: &Tensor<usize>, src: Var<'t, T>) -> Var<'t, T> {
        self.check_same_tape(src, "scatter_add");
        let shape = self.shape();
        check_gather_index("scatter_add", axis, index, &shape);
        let src_shape = src.shape();
        check_scatter_source(axis, index, &src_shape, &shape);
        let src = if src_shape.as_slice() == index.shape() {
            src
        } else {
            let pads: Vec<(usize, usize)> = src_shape
                .iter()
                .zip(index.shape())
                .map(|(&s, &i)| (0, s - i))
                .collect();
            src.crop(&pads)
        };
        let mut ints = vec![axis];
        ints.extend_from_slice(&shape);
        let extra = Extra::ints(&ints).with_index(index.clone());
        self + Var::record_op(&ScatterAdd, Args::None, Some(extra), &[src])
    }
}
