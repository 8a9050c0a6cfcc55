//! Shapes, strides and NumPy broadcasting rules.

use smallvec::SmallVec;

/// A tensor shape: dimensions outermost first, stored inline up to rank 4.
pub type Shape = SmallVec<[usize; 4]>;

/// `true` when two shapes are equal. Shapes are short, so a plain loop beats the `memcmp` call
/// that slice equality compiles to.
#[inline]
pub(crate) fn same(a: &[usize], b: &[usize]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// The number of elements of a shape (1 for rank 0), saturating at `usize::MAX` rather than
/// wrapping around: a shape that [`checked_numel`] would refuse can then never pass for a small
/// one (a wrapped product let `[2^63 + 3, 2]` pose as 6 elements and reach the GEMM), and
/// allocating it fails cleanly. Public entry points call [`checked_numel`] first, for a message.
#[inline]
pub(crate) fn numel(shape: &[usize]) -> usize {
    exact_numel(shape).unwrap_or(usize::MAX)
}

/// The number of elements of a shape, `None` when the product overflows `usize` (a zero anywhere
/// makes it 0, whatever the other dimensions).
#[inline]
fn exact_numel(shape: &[usize]) -> Option<usize> {
    match shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) {
        None if shape.contains(&0) => Some(0),
        n => n,
    }
}

/// The number of elements of `shape` for a tensor of `T`, if its buffer is addressable: the
/// product does not overflow and its size in bytes is at most `isize::MAX`, the most a Rust
/// allocation may hold.
pub(crate) fn try_numel<T>(shape: &[usize]) -> Option<usize> {
    exact_numel(shape).filter(|&n| n <= max_elements::<T>())
}

/// The most elements of `T` that one buffer can hold.
pub(crate) fn max_elements<T>() -> usize {
    isize::MAX as usize / std::mem::size_of::<T>().max(1)
}

/// The number of elements of `shape` for a tensor of `T`, checked as [`try_numel`] does.
///
/// # Panics
/// With a message naming `op`, the shape and the caller's line when the buffer would not be
/// addressable.
#[track_caller]
pub(crate) fn checked_numel<T>(op: &str, shape: &[usize]) -> usize {
    match try_numel::<T>(shape) {
        Some(n) => n,
        None => too_large::<T>(op, shape),
    }
}

/// Panics for a shape whose buffer could not be addressed.
#[cold]
#[track_caller]
pub(crate) fn too_large<T>(op: &str, shape: &[usize]) -> ! {
    panic!(
        "tapegrad: {op}: shape {shape:?} has more elements than memory can address (at most {} \
         elements of {} bytes; the product of the dimensions {})",
        max_elements::<T>(),
        std::mem::size_of::<T>(),
        match exact_numel(shape) {
            Some(n) => format!("is {n}"),
            None => "overflows usize".to_string(),
        }
    )
}

/// `a + b + c` for a dimension computed from others (padding, joining), or the shape-overflow
/// panic naming `op` and `shape` (the shape being computed, for the message).
#[track_caller]
pub(crate) fn checked_sum<T>(op: &str, parts: &[usize], shape: &[usize]) -> usize {
    // A `match`, not `unwrap_or_else`: a closure would hide the caller's line.
    match parts.iter().try_fold(0usize, |a, &b| a.checked_add(b)) {
        Some(sum) => sum,
        None => too_large::<T>(op, shape),
    }
}

/// Row-major strides, in elements.
pub(crate) fn strides(shape: &[usize]) -> Shape {
    let mut s: Shape = SmallVec::from_elem(1, shape.len());
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// The NumPy broadcast of two shapes, or `None` when they are incompatible.
pub(crate) fn try_broadcast_shape(a: &[usize], b: &[usize]) -> Option<Shape> {
    let rank = a.len().max(b.len());
    let mut out: Shape = SmallVec::from_elem(0, rank);
    for i in 0..rank {
        let da = if i < rank - a.len() {
            1
        } else {
            a[i - (rank - a.len())]
        };
        let db = if i < rank - b.len() {
            1
        } else {
            b[i - (rank - b.len())]
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// The NumPy broadcast of two shapes.
///
/// # Panics
/// With a message naming `op` and both shapes when they are incompatible.
#[track_caller]
pub(crate) fn broadcast_shape(op: &str, a: &[usize], b: &[usize]) -> Shape {
    match try_broadcast_shape(a, b) {
        Some(shape) => shape,
        None => panic!(
            "tapegrad: {op}: shapes {a:?} and {b:?} cannot be broadcast together \
             (trailing dimensions must be equal or 1)"
        ),
    }
}

/// `true` when `from` broadcasts to exactly `to`.
pub(crate) fn broadcasts_to(from: &[usize], to: &[usize]) -> bool {
    from.len() <= to.len() && try_broadcast_shape(from, to).is_some_and(|s| s.as_slice() == to)
}

/// Strides for reading a tensor of shape `src` as if broadcast to `out`: 0 on broadcast axes.
pub(crate) fn broadcast_strides(src: &[usize], out: &[usize]) -> Shape {
    let own = strides(src);
    let lead = out.len() - src.len();
    (0..out.len())
        .map(|i| {
            if i < lead || src[i - lead] == 1 {
                0
            } else {
                own[i - lead]
            }
        })
        .collect()
}

/// Checks an axis against a rank.
#[track_caller]
pub(crate) fn check_axis(op: &str, axis: usize, shape: &[usize]) {
    assert!(
        axis < shape.len(),
        "tapegrad: {op}: axis {axis} is out of range for shape {shape:?} (rank {})",
        shape.len()
    );
}

/// Splits a shape around `axis` into (outer, axis length, inner) element counts.
pub(crate) fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (numel(&shape[..axis]), shape[axis], numel(&shape[axis + 1..]))
}

/// The shape after reducing `axis`, kept as size 1 or removed.
pub(crate) fn reduced_shape(shape: &[usize], axis: usize, keepdim: bool) -> Shape {
    let mut out = Shape::from_slice(shape);
    if keepdim {
        out[axis] = 1;
    } else {
        out.remove(axis);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(
            try_broadcast_shape(&[3, 1], &[2, 1, 4]).unwrap().as_slice(),
            &[2, 3, 4]
        );
        assert_eq!(try_broadcast_shape(&[], &[2]).unwrap().as_slice(), &[2]);
        assert!(try_broadcast_shape(&[3], &[4]).is_none());
        assert!(broadcasts_to(&[3, 1], &[2, 3, 4]));
        assert!(!broadcasts_to(&[2, 3, 4], &[3, 4]));
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(strides(&[2, 3, 4]).as_slice(), &[12, 4, 1]);
        assert_eq!(broadcast_strides(&[3, 1], &[2, 3, 4]).as_slice(), &[0, 1, 0]);
    }
}
