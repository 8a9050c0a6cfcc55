//! Elementwise results of large tensors, computed on [`num_threads`](super::num_threads)
//! threads.
//!
//! A rayon round trip costs 10–20 µs on the 2-core VM of BENCHMARKS.md (its workers sleep between
//! jobs), so a loop is split only when one thread would take clearly longer than that: from
//! 2¹⁸ elements for cheap work (arithmetic, relu, fills, sums: ~0.15 ns per element) and from
//! 2¹⁵ for transcendental functions (exp, tanh: 2–5 ns per element). Below that every function
//! here returns `None` and the caller keeps its single-threaded path, so small tensors (and the
//! per-op overhead of W3) never come here. Each element's result is the same whichever thread
//! computes it, so results do not depend on the thread count.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::shape::{self, Shape};
use super::simd;
use super::{Tensor, num_threads};
use crate::Element;

/// How much work one element costs, which sets the length from which a loop is split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Work {
    /// A few arithmetic instructions (memory-bound).
    Light,
    /// A transcendental function.
    Heavy,
}

impl Work {
    pub(crate) fn min_len(self) -> usize {
        match self {
            Work::Light => 1 << 18,
            Work::Heavy => 1 << 15,
        }
    }
}

/// How many elements each thread takes when an elementwise loop over `len` elements with heavy
/// work per element (an optimizer update, say) is split between [`num_threads`] threads: `len`
/// itself (one chunk) when the loop is short or one thread is set.
pub(crate) fn elementwise_chunk(len: usize) -> usize {
    chunk_for(len, Work::Heavy).unwrap_or(len.max(1))
}

/// The chunk each thread takes for `len` elements, or `None` when one thread does it all.
fn chunk_for(len: usize, work: Work) -> Option<usize> {
    if len < work.min_len() {
        return None;
    }
    let threads = num_threads();
    (threads > 1).then(|| len.div_ceil(threads))
}

/// A tensor of `shape` whose every `chunk`-sized piece `write` fills, the pieces on several
/// threads. `write` gets each piece with its index among the pieces.
///
/// # Safety
/// Unless it panics, `write` must write every element of every piece it is given.
unsafe fn build_in_chunks<T: Element>(
    shape: &[usize],
    chunk: usize,
    write: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync,
) -> Tensor<T> {
    // SAFETY: the pieces cover the buffer, and `write` fills each one (the caller's contract).
    unsafe {
        Tensor::build_overwritten(Shape::from_slice(shape), |out| {
            out.par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(i, piece)| write(i, piece))
        })
    }
}

/// Below this many elements a map runs in place, without the dispatch to wide vectors or the
/// split between threads: on W3's `[16]` tensors their bookkeeping cost 10 % more instructions
/// per op (callgrind) and gained nothing.
const WIDE_MIN_LEN: usize = 512;

/// `f(a[i])` for every element, as a tensor of `shape` (which holds `a.len()` elements),
/// compiled for the CPU's widest vectors ([`simd`]).
pub(crate) fn map<T: Element>(shape: &[usize], a: &[T], work: Work, f: impl Fn(T) -> T + Sync) -> Tensor<T> {
    assert_eq!(
        shape::numel(shape),
        a.len(),
        "parallel map: shape and data disagree"
    );
    if a.len() < WIDE_MIN_LEN {
        return Tensor::from_exact_iter(Shape::from_slice(shape), a.iter().map(|&x| f(x)));
    }
    // SAFETY: each piece is zipped with the input elements at its own offset, which are as
    // many (the input and the output have one length), so every slot is written.
    unsafe {
        Tensor::build_overwritten(Shape::from_slice(shape), |out| {
            for_each_piece(out, work, |start, piece| {
                let a = &a[start..][..piece.len()];
                simd::run(
                    #[inline(always)]
                    || {
                        for (slot, &x) in piece.iter_mut().zip(a) {
                            slot.write(f(x));
                        }
                    },
                )
            })
        })
    }
}

/// `f(a[i], b[i])` for every element of two slices of one length, as a tensor of `shape` (`f`
/// is `work` per element), compiled for the CPU's widest vectors ([`simd`]).
pub(crate) fn zip<T: Element>(
    shape: &[usize],
    a: &[T],
    b: &[T],
    work: Work,
    f: impl Fn(T, T) -> T + Sync,
) -> Tensor<T> {
    assert!(
        shape::numel(shape) == a.len() && a.len() == b.len(),
        "parallel zip: shape and data disagree"
    );
    if a.len() < WIDE_MIN_LEN {
        let values = a.iter().zip(b).map(|(&x, &y)| f(x, y));
        return Tensor::from_exact_iter(Shape::from_slice(shape), values);
    }
    // SAFETY: as in `map`: each piece is zipped with input elements of its own length.
    unsafe {
        Tensor::build_overwritten(Shape::from_slice(shape), |out| {
            for_each_piece(out, work, |start, piece| {
                let (a, b) = (&a[start..][..piece.len()], &b[start..][..piece.len()]);
                simd::run(
                    #[inline(always)]
                    || {
                        for ((slot, &x), &y) in piece.iter_mut().zip(a).zip(b) {
                            slot.write(f(x, y));
                        }
                    },
                )
            })
        })
    }
}

/// Runs `write(start, piece)` over consecutive pieces of `out` (`start` is the piece's offset),
/// on several threads when `out` is long enough for `work`, else in one call.
pub(crate) fn for_each_piece<T: Send>(out: &mut [T], work: Work, write: impl Fn(usize, &mut [T]) + Sync) {
    match chunk_for(out.len(), work) {
        Some(chunk) => out
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, piece)| write(i * chunk, piece)),
        None => write(0, out),
    }
}

/// Runs `write(first, piece)` over pieces of `out` made of whole slabs of `slab` elements
/// (`first` is the index of the piece's first slab), on several threads when `out` is long
/// enough for `work` and has a slab for each.
pub(crate) fn for_each_slab<T: Send>(
    out: &mut [T],
    slab: usize,
    work: Work,
    write: impl Fn(usize, &mut [T]) + Sync,
) {
    let slabs = out.len().checked_div(slab).unwrap_or(0);
    let threads = num_threads();
    if slabs < 2 || threads < 2 || out.len() < work.min_len() {
        write(0, out);
        return;
    }
    let per_piece = slabs.div_ceil(threads);
    out.par_chunks_mut(per_piece * slab)
        .enumerate()
        .for_each(|(i, piece)| write(i * per_piece, piece));
}

/// A tensor of `shape` with every element `value`.
pub(crate) fn full<T: Element>(shape: &[usize], value: T) -> Option<Tensor<T>> {
    let chunk = chunk_for(shape::numel(shape), Work::Light)?;
    // SAFETY: `fill` writes the whole piece.
    Some(unsafe { build_in_chunks(shape, chunk, |_, piece| piece.fill(MaybeUninit::new(value))) })
}

/// How many threads a sum over `len` elements may use: [`num_threads`] for long inputs, else 1.
pub(crate) fn reduction_threads(len: usize) -> usize {
    match chunk_for(len, Work::Light) {
        Some(_) => num_threads(),
        None => 1,
    }
}

/// Holds the thread count for one unit test: the count is global, and tests that set it (here
/// and in the kernels split by it) take turns.
#[cfg(test)]
pub(crate) fn tests_lock_threads() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long enough to be split between threads, even for light work.
    const LONG: usize = (1 << 18) + 3;

    fn values(n: usize, seed: u64) -> Vec<f64> {
        (0..n)
            .map(|i| ((i as u64 * 2_654_435_761 + seed) % 10_007) as f64 / 997.0 - 5.0)
            .collect()
    }

    #[test]
    fn split_results_equal_the_single_threaded_ones_bit_for_bit() {
        let _threads = tests_lock_threads();
        let (a, b) = (values(LONG, 1), values(LONG, 7));
        let (ta, tb) = (
            Tensor::from_vec(a.clone(), &[LONG]),
            Tensor::from_vec(b.clone(), &[LONG]),
        );
        let mut results = Vec::new();
        for threads in [1, 2, 3] {
            crate::set_num_threads(threads);
            results.push([
                ta.exp().to_vec(),
                ta.tanh().to_vec(),
                (&ta * &tb).to_vec(),
                (&ta - 2.5).to_vec(),
                ta.zip_map("test", &Tensor::scalar(3.0), |x, y| x * y + 1.0)
                    .to_vec(),
                Tensor::full(&[LONG], 0.25).to_vec(),
                vec![ta.sum().item()],
            ]);
        }
        crate::set_num_threads(0);
        let serial = [
            a.iter().map(|x| x.exp()).collect::<Vec<_>>(),
            a.iter().map(|x| x.tanh()).collect(),
            a.iter().zip(&b).map(|(x, y)| x * y).collect(),
            a.iter().map(|x| x - 2.5).collect(),
            a.iter().map(|x| x * 3.0 + 1.0).collect(),
            vec![0.25; LONG],
        ];
        for (threads, got) in [1, 2, 3].iter().zip(&results) {
            for (k, (got, want)) in got.iter().zip(&serial).enumerate() {
                assert!(
                    got.iter().zip(want).all(|(g, w)| g.to_bits() == w.to_bits()),
                    "result {k} differs on {threads} thread(s)"
                );
            }
            assert_eq!(
                got[6][0].to_bits(),
                results[0][6][0].to_bits(),
                "sum on {threads} thread(s)"
            );
        }
    }

    #[test]
    fn short_inputs_stay_on_the_calling_thread_and_cheap_work_needs_longer_ones() {
        let _threads = tests_lock_threads();
        crate::set_num_threads(2);
        assert_eq!(chunk_for(1000, Work::Heavy), None);
        assert_eq!(chunk_for(1 << 16, Work::Light), None);
        assert_eq!(chunk_for(1 << 16, Work::Heavy), Some(1 << 15));
        assert!(full::<f32>(&[1000], 0.0).is_none());
        assert_eq!(reduction_threads(1000), 1);
        let long = vec![1.0f32; LONG];
        assert_eq!(
            map(&[LONG], &long, Work::Light, |x| x + 1.0).to_vec(),
            vec![2.0; LONG]
        );
        let (short, other) = (vec![1.0f32; 1000], vec![2.0f32; 1000]);
        assert_eq!(
            zip(&[1000], &short, &other, Work::Light, |x, y| x + y).to_vec(),
            vec![3.0; 1000]
        );
        assert_eq!(reduction_threads(LONG), 2);
        crate::set_num_threads(0);
    }
}
