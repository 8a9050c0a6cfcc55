//! Layout copies: reading a tensor through strides into a fresh row-major one (`permute`,
//! `narrow`, `crop`, `broadcast_to`, `transpose`), and joining tensors (`cat`).
//!
//! These ops move memory and compute nothing, so they run at the machine's copy speed only when
//! three things hold, and each was measured missing on the 2¹⁰ × 2¹⁰ f32 benches of issue 14:
//! - the output is written once, not zeroed first ([`Tensor::build_overwritten`]): zeroing a
//!   4 MiB output is a third of a copy's time;
//! - large copies are split between threads by output rows (one core does not saturate the
//!   memory bus);
//! - a read through a large inner stride (the backward of an axis rotation reads every 64th
//!   element) goes tile by tile ([`TILE`] × [`TILE`] blocks that fit in L1), so that each cache
//!   line read is used whole instead of once per element: 8 ms became about 1 ms.

use std::mem::MaybeUninit;

use super::parallel::{for_each_piece, for_each_slab};
use super::shape::{self, Shape};
use super::{Tensor, Work};
use crate::Element;

/// The side of the square blocks in which a strided read is copied: 32 × 32 f32 are 4 KiB on
/// each side of the copy, well inside L1.
const TILE: usize = 32;

/// Copies `src` into the slots of `dst`, which is as long (`<[MaybeUninit<T>]>::write_copy_of_slice`,
/// stable only from Rust 1.93, above the crate's minimum version).
///
/// # Panics
/// If the lengths differ.
#[inline]
pub(crate) fn write_copy<T: Copy>(dst: &mut [MaybeUninit<T>], src: &[T]) {
    assert_eq!(dst.len(), src.len(), "write_copy: lengths differ");
    // SAFETY: both slices hold `src.len()` elements, they cannot overlap (`dst` is borrowed
    // mutably), and `MaybeUninit<T>` has `T`'s layout.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<T>(), src.len()) }
}

/// Reads `src` from `offset` through `strides` (0 on broadcast axes) in the row-major order of
/// `out_shape` into a new tensor.
pub(crate) fn gather<T: Element>(src: &[T], offset: usize, strides: &[usize], out_shape: Shape) -> Tensor<T> {
    let (dims, steps) = coalesce(&out_shape, strides);
    // SAFETY: `gather_into` writes every element of the piece it is given (the pieces are whole
    // slabs along the first coalesced axis and together cover the output).
    unsafe {
        Tensor::build_overwritten(out_shape, |out| {
            if out.is_empty() {
                return;
            }
            if dims.is_empty() {
                out[0].write(src[offset]);
                return;
            }
            let slab = out.len() / dims[0];
            for_each_slab(out, slab, Work::Light, |first, piece| {
                let mut local = dims.clone();
                local[0] = piece.len() / slab;
                gather_into(piece, src, offset + first * steps[0], &local, &steps);
            });
        })
    }
}

/// The same reading order with fewer axes: size-1 axes dropped and neighbours merged where the
/// outer one steps exactly over the inner one (a contiguous `[a, b]` block reads as `[a·b]`).
fn coalesce(dims: &[usize], strides: &[usize]) -> (Shape, Shape) {
    let mut out_dims = Shape::new();
    let mut out_strides = Shape::new();
    for (&d, &s) in dims.iter().zip(strides) {
        if d == 1 {
            continue;
        }
        match (out_dims.last_mut(), out_strides.last_mut()) {
            (Some(last_d), Some(last_s)) if *last_s == s * d => {
                *last_d *= d;
                *last_s = s;
            }
            _ => {
                out_dims.push(d);
                out_strides.push(s);
            }
        }
    }
    (out_dims, out_strides)
}

/// Calls `f(out_offset, src_offset)` for every index of `dims` in row-major order, the offsets
/// moving by `out_steps` and `src_steps` per axis (once, with zeros, when `dims` is empty).
fn for_each_offset(
    dims: &[usize],
    out_steps: &[usize],
    src_steps: &[usize],
    mut f: impl FnMut(usize, usize),
) {
    if dims.contains(&0) {
        return;
    }
    let rank = dims.len();
    let mut index: Shape = smallvec::smallvec![0; rank];
    let (mut o, mut s) = (0, 0);
    loop {
        f(o, s);
        let mut d = rank;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            index[d] += 1;
            o += out_steps[d];
            s += src_steps[d];
            if index[d] < dims[d] {
                break;
            }
            o -= out_steps[d] * dims[d];
            s -= src_steps[d] * dims[d];
            index[d] = 0;
        }
    }
}

/// Writes every element of `out` (row-major over `dims`) from `src[offset + Σ index·strides]`.
fn gather_into<T: Element>(
    out: &mut [MaybeUninit<T>],
    src: &[T],
    offset: usize,
    dims: &[usize],
    strides: &[usize],
) {
    let rank = dims.len();
    let (inner, step) = (dims[rank - 1], strides[rank - 1]);
    let out_steps = shape::strides(dims);
    let outer = rank - 1;
    if step == 1 {
        for_each_offset(&dims[..outer], &out_steps[..outer], &strides[..outer], |o, s| {
            write_copy(&mut out[o..o + inner], &src[offset + s..offset + s + inner]);
        });
    } else if step == 0 {
        for_each_offset(&dims[..outer], &out_steps[..outer], &strides[..outer], |o, s| {
            out[o..o + inner].fill(MaybeUninit::new(src[offset + s]));
        });
    } else if let Some(q) = (0..outer).rev().find(|&q| strides[q] == 1) {
        // A transpose: axis `q` is contiguous in `src`, the output's rows are not. Copy the
        // `[dims[q], inner]` plane of every other index in tiles.
        let others: Shape = (0..outer).filter(|&d| d != q).collect();
        let pick = |v: &[usize]| -> Shape { others.iter().map(|&d| v[d]).collect() };
        let (n, row) = (dims[q], out_steps[q]);
        for_each_offset(&pick(dims), &pick(&out_steps), &pick(strides), |o, s| {
            let src = &src[offset + s..];
            for i0 in (0..n).step_by(TILE) {
                let i1 = (i0 + TILE).min(n);
                for j0 in (0..inner).step_by(TILE) {
                    let j1 = (j0 + TILE).min(inner);
                    for i in i0..i1 {
                        let dst = &mut out[o + i * row + j0..o + i * row + j1];
                        for (slot, j) in dst.iter_mut().zip(j0..j1) {
                            slot.write(src[i + j * step]);
                        }
                    }
                }
            }
        });
    } else {
        for_each_offset(&dims[..outer], &out_steps[..outer], &strides[..outer], |o, s| {
            for (j, slot) in out[o..o + inner].iter_mut().enumerate() {
                slot.write(src[offset + s + j * step]);
            }
        });
    }
}

/// `tensors` joined along `axis` into a tensor of `out_shape` (the shapes already checked):
/// each output row (one index of the axes before `axis`) is the inputs' rows side by side.
pub(crate) fn cat<T: Element>(tensors: &[&Tensor<T>], axis: usize, out_shape: Shape) -> Tensor<T> {
    let (_, _, inner) = shape::split_at_axis(&out_shape, axis);
    let widths: Vec<usize> = tensors.iter().map(|t| t.shape()[axis] * inner).collect();
    let row: usize = widths.iter().sum();
    // SAFETY: every position of the output lies in one input's segment of its row, and the loop
    // below walks each piece position by position, copying the segment that covers it.
    unsafe {
        Tensor::build_overwritten(out_shape, |out| {
            if row == 0 {
                return;
            }
            for_each_piece(out, Work::Light, |start, piece| {
                let mut pos = start;
                let mut piece = piece;
                while !piece.is_empty() {
                    let (r, mut within) = (pos / row, pos % row);
                    for (t, &w) in tensors.iter().zip(&widths) {
                        if within >= w {
                            within -= w;
                            continue;
                        }
                        let len = (w - within).min(piece.len());
                        let from = &t.as_slice()[r * w + within..][..len];
                        let (head, rest) = piece.split_at_mut(len);
                        write_copy(head, from);
                        piece = rest;
                        pos += len;
                        break;
                    }
                }
            });
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::parallel::tests_lock_threads;
    use proptest::prelude::*;

    /// `gather` the slow way: one division per axis per element.
    fn naive_gather(src: &[f64], offset: usize, strides: &[usize], dims: &[usize]) -> Vec<f64> {
        (0..shape::numel(dims))
            .map(|mut flat| {
                let mut at = offset;
                for d in (0..dims.len()).rev() {
                    at += flat % dims[d] * strides[d];
                    flat /= dims[d];
                }
                src[at]
            })
            .collect()
    }

    /// Every permutation of a rank-`dims.len()` tensor, as strides into its buffer.
    fn permuted(dims: &[usize], axes: &[usize]) -> (Shape, Shape) {
        let strides = shape::strides(dims);
        (
            axes.iter().map(|&a| dims[a]).collect(),
            axes.iter().map(|&a| strides[a]).collect(),
        )
    }

    fn check_all_threads(src: &[f64], offset: usize, strides: &[usize], dims: &[usize]) {
        let want = naive_gather(src, offset, strides, dims);
        let _threads = tests_lock_threads();
        for threads in [1, 2, 3] {
            crate::set_num_threads(threads);
            let got = gather(src, offset, strides, Shape::from_slice(dims));
            assert_eq!(got.shape(), dims);
            assert_eq!(
                got.as_slice(),
                &want[..],
                "dims {dims:?} strides {strides:?}, {threads} threads"
            );
        }
        crate::set_num_threads(0);
    }

    proptest! {
        #[test]
        fn gather_reads_every_permutation_broadcast_and_window(
            dims in prop::collection::vec(0usize..40, 1..5),
            seed in any::<u64>(),
            broadcast in any::<bool>(),
        ) {
            let n = shape::numel(&dims);
            let src: Vec<f64> = (0..n.max(1)).map(|i| i as f64).collect();
            let mut axes: Vec<usize> = (0..dims.len()).collect();
            let mut state = seed;
            for i in (1..axes.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                axes.swap(i, (state >> 33) as usize % (i + 1));
            }
            let (out_dims, mut strides) = permuted(&dims, &axes);
            if broadcast {
                strides[(seed % dims.len() as u64) as usize] = 0;
            }
            check_all_threads(&src, 0, &strides, &out_dims);
        }
    }

    #[test]
    fn large_transposes_split_between_threads_read_tiles_at_every_edge() {
        // Large enough to be split; sides that are not multiples of the tile.
        for (dims, axes) in [
            (vec![65, 97, 70], vec![1, 2, 0]),
            (vec![65, 97, 70], vec![2, 0, 1]),
            (vec![600, 513], vec![1, 0]),
            (vec![3, 300, 301], vec![0, 2, 1]),
        ] {
            let src: Vec<f64> = (0..shape::numel(&dims)).map(|i| i as f64 * 0.5).collect();
            let (out_dims, strides) = permuted(&dims, &axes);
            check_all_threads(&src, 0, &strides, &out_dims);
        }
        // A window (narrow) of a large tensor, and a broadcast row.
        let src: Vec<f64> = (0..700 * 800).map(|i| i as f64).collect();
        check_all_threads(&src, 5 * 800 + 3, &[800, 1], &[600, 700]);
        check_all_threads(&src, 0, &[0, 1], &[500, 800]);
    }

    #[test]
    fn cat_joins_large_inputs_on_any_axis_with_any_thread_count() {
        let a = Tensor::<f64>::from_fn(&[300, 200, 3], |i| i as f64);
        let b = Tensor::<f64>::from_fn(&[300, 1000, 3], |i| -(i as f64));
        let empty = Tensor::<f64>::zeros(&[300, 0, 3]);
        let want: Vec<f64> = (0..300)
            .flat_map(|o| {
                let a = &a.as_slice()[o * 600..(o + 1) * 600];
                let b = &b.as_slice()[o * 3000..(o + 1) * 3000];
                a.iter().chain(b).copied().collect::<Vec<_>>()
            })
            .collect();
        let _threads = tests_lock_threads();
        for threads in [1, 2, 3] {
            crate::set_num_threads(threads);
            let got = cat(&[&a, &empty, &b], 1, Shape::from_slice(&[300, 1200, 3]));
            assert_eq!(got.as_slice(), &want[..], "{threads} threads");
        }
        crate::set_num_threads(0);
    }
}
