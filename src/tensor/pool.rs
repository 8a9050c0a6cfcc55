//! Recycled buffers for small tensors.
//!
//! A forward pass on small tensors allocates one buffer per op, and resetting the tape frees them
//! all at once; the next pass allocates them again. On W3 (3,000 ops on `[16]` tensors) `malloc`
//! and `free` were a fifth of the time, mostly the bulk free overflowing the allocator's small
//! per-thread cache. Buffers that a tape reset or a dropped [`Gradients`](crate::Gradients)
//! releases, and that nothing else shares, go into a per-thread pool by length instead, and new
//! tensors of that length take them back.
//!
//! Large buffers (up to [`MAX_LARGE_LEN`] elements) are kept too, in a short list by length with
//! a byte budget of their own: the allocator returns buffers of a megabyte and more to the system
//! when they are freed, so each new one came back as fresh pages, and on W7 (attention scores of
//! `[16, 4, 64, 64]`) the page faults, the kernel's page bookkeeping and the zeroing were a fifth
//! of a training step.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::sync::Arc;

use crate::Element;

/// Buffers of more elements than this are pooled in the list of large buffers.
const MAX_LEN: usize = 256;
/// A thread keeps at most this many bytes of small buffers per element type.
const MAX_BYTES: usize = 4 << 20;
/// Buffers of more elements than this are not pooled.
const MAX_LARGE_LEN: usize = 1 << 22;
/// A thread keeps at most this many bytes of large buffers per element type.
const MAX_LARGE_BYTES: usize = 64 << 20;

/// Unshared buffers, by length.
pub(crate) struct Pool<T> {
    by_len: Vec<Vec<Arc<[T]>>>,
    /// Bytes of elements held in `by_len`.
    bytes: usize,
    /// Large buffers: (length, buffers of that length); a workload has few distinct large sizes.
    large: Vec<(usize, Vec<Arc<[T]>>)>,
    /// Bytes of elements held in `large`.
    large_bytes: usize,
}

impl<T> Pool<T> {
    const fn new() -> Self {
        Pool {
            by_len: Vec::new(),
            bytes: 0,
            large: Vec::new(),
            large_bytes: 0,
        }
    }
}

thread_local! {
    static POOLS: RefCell<(Pool<f32>, Pool<f64>)> = const { RefCell::new((Pool::new(), Pool::new())) };
}

/// Runs `f` on this thread's pool for `T`; `None` if `T` has no pool or the thread is exiting.
fn with_pool<T: Element, R>(f: impl FnOnce(&mut Pool<T>) -> R) -> Option<R> {
    POOLS
        .try_with(|pools| {
            let mut pools = pools.try_borrow_mut().ok()?;
            let (f32s, f64s) = &mut *pools;
            let pool: &mut dyn Any = if TypeId::of::<T>() == TypeId::of::<f32>() {
                f32s
            } else {
                f64s
            };
            pool.downcast_mut::<Pool<T>>().map(f)
        })
        .ok()
        .flatten()
}

/// A recycled buffer of exactly `len` elements (holding stale values), if the pool has one.
pub(crate) fn take<T: Element>(len: usize) -> Option<Arc<[T]>> {
    if len > MAX_LARGE_LEN {
        return None;
    }
    with_pool(|pool: &mut Pool<T>| {
        if len > MAX_LEN {
            let (_, list) = pool.large.iter_mut().find(|(l, _)| *l == len)?;
            let buffer = list.pop()?;
            pool.large_bytes -= len * size_of::<T>();
            return Some(buffer);
        }
        let buffer = pool.by_len.get_mut(len)?.pop()?;
        pool.bytes -= len * size_of::<T>();
        Some(buffer)
    })
    .flatten()
}

/// Offers the buffers of `tensors` to the pool; shared and large ones are simply dropped.
pub(crate) fn recycle<T: Element>(tensors: impl Iterator<Item = crate::Tensor<T>>) {
    let mut tensors = tensors.peekable();
    if tensors.peek().is_none() {
        return;
    }
    let kept = with_pool(|pool: &mut Pool<T>| {
        for tensor in tensors.by_ref() {
            let Some(buffer) = tensor.into_buffer() else {
                continue;
            };
            let (len, bytes) = (buffer.len(), buffer.len() * size_of::<T>());
            // Plain loads, not `Arc::get_mut`'s compare-and-swap: we hold a strong reference, so
            // a count of one cannot grow behind our back (tapegrad makes no weak references).
            let unshared = Arc::strong_count(&buffer) == 1 && Arc::weak_count(&buffer) == 0;
            if len > MAX_LARGE_LEN || !unshared {
                continue;
            }
            if len > MAX_LEN {
                if pool.large_bytes + bytes > MAX_LARGE_BYTES {
                    continue;
                }
                match pool.large.iter_mut().find(|(l, _)| *l == len) {
                    Some((_, list)) => list.push(buffer),
                    None => pool.large.push((len, vec![buffer])),
                }
                pool.large_bytes += bytes;
                continue;
            }
            if pool.bytes + bytes > MAX_BYTES {
                continue;
            }
            if pool.by_len.len() <= len {
                pool.by_len.resize_with(len + 1, Vec::new);
            }
            pool.by_len[len].push(buffer);
            pool.bytes += bytes;
        }
    });
    if kept.is_none() {
        tensors.for_each(drop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    #[test]
    fn unshared_small_buffers_come_back_and_shared_ones_do_not() {
        let a = Tensor::<f64>::from_vec(vec![1.0; 5], &[5]);
        let shared = Tensor::<f64>::from_vec(vec![2.0; 5], &[5]);
        let keep = shared.clone();
        let big = Tensor::<f64>::from_vec(vec![3.0; MAX_LEN + 1], &[MAX_LEN + 1]);
        let huge = Tensor::<f64>::from_vec(vec![4.0; MAX_LARGE_LEN + 1], &[MAX_LARGE_LEN + 1]);
        let (ptr, big_ptr) = (a.as_slice().as_ptr(), big.as_slice().as_ptr());
        recycle([a, shared, big, huge].into_iter());
        let back = take::<f64>(5).expect("the unshared buffer was kept");
        assert_eq!(back.as_ptr(), ptr);
        assert!(take::<f64>(5).is_none(), "the shared buffer was not kept");
        let big_back = take::<f64>(MAX_LEN + 1).expect("the large buffer was kept");
        assert_eq!(big_back.as_ptr(), big_ptr);
        assert!(take::<f64>(MAX_LEN + 1).is_none(), "one large buffer was kept");
        assert!(
            take::<f64>(MAX_LARGE_LEN + 1).is_none(),
            "huge buffers are not pooled"
        );
        assert!(take::<f32>(5).is_none(), "each element type has its own pool");
        assert_eq!(keep.to_vec(), vec![2.0; 5]);
    }

    #[test]
    fn recycled_buffers_are_overwritten_before_use() {
        recycle([Tensor::<f32>::from_vec(vec![7.0; 16], &[16])].into_iter());
        let zeros = Tensor::<f32>::zeros(&[16]);
        assert_eq!(zeros.to_vec(), vec![0.0; 16]);
        recycle([zeros].into_iter());
        let ramp = Tensor::<f32>::from_fn(&[4, 4], |i| i as f32);
        assert_eq!(ramp.to_vec(), (0..16).map(|i| i as f32).collect::<Vec<_>>());
    }
}
