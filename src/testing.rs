//! Proptest strategies for property-testing differentiable code (feature `proptest`).
//!
//! Shapes include rank 0 and size-1 axes (the cases that break broadcasting code); tensors are
//! `f64` (use [`Tensor::cast`] for `f32`). Pair them with [`crate::gradcheck`]:
//!
//! ```
//! use proptest::prelude::*;
//! use tapegrad::{gradcheck, testing, Tape, Var};
//!
//! proptest!(|((a, b) in testing::broadcastable_tensors(3, 3, -2.0..2.0))| {
//!     // Pass the closure inline (or write a `fn`): a closure stored in a `let` first does not
//!     // get the signature `for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>`.
//!     let result = gradcheck::check(|_t: &Tape<f64>, xs: &[Var<f64>]| (xs[0] * xs[1]).sum(), &[a, b]);
//!     prop_assert!(result.is_ok(), "{}", result.unwrap_err());
//! });
//! ```

use std::ops::Range;

use proptest::collection::vec;
use proptest::prelude::*;

use crate::Tensor;

/// Shapes of rank `0..=max_rank` with dimensions in `1..=max_dim`.
///
/// ```
/// use proptest::{strategy::{Strategy, ValueTree}, test_runner::TestRunner};
/// let shape = tapegrad::testing::shape(3, 4).new_tree(&mut TestRunner::default()).unwrap().current();
/// assert!(shape.len() <= 3 && shape.iter().all(|&d| (1..=4).contains(&d)));
/// ```
pub fn shape(max_rank: usize, max_dim: usize) -> impl Strategy<Value = Vec<usize>> {
    vec(1..=max_dim.max(1), 0..=max_rank)
}

/// Shapes of exactly `rank` dimensions in `1..=max_dim`.
pub fn shape_of_rank(rank: usize, max_dim: usize) -> impl Strategy<Value = Vec<usize>> {
    vec(1..=max_dim.max(1), rank)
}

/// Pairs of shapes that broadcast together under NumPy rules: each is a suffix of a common
/// shape, with some dimensions replaced by 1.
pub fn broadcastable_shapes(
    max_rank: usize,
    max_dim: usize,
) -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    shape(max_rank, max_dim).prop_flat_map(|full| {
        let rank = full.len();
        let operand = {
            let full = full.clone();
            (0..=rank, vec(any::<bool>(), rank)).prop_map(move |(drop, ones)| {
                full.iter()
                    .zip(&ones)
                    .skip(drop)
                    .map(|(&d, &one)| if one { 1 } else { d })
                    .collect::<Vec<usize>>()
            })
        };
        (operand.clone(), operand)
    })
}

/// Tensors of the given shape with values uniform in `range`.
pub fn tensor_with_shape(shape: Vec<usize>, range: Range<f64>) -> impl Strategy<Value = Tensor<f64>> {
    let n = shape.iter().product::<usize>();
    vec(range, n).prop_map(move |data| Tensor::from_vec(data, &shape))
}

/// Tensors of any shape from [`shape`]`(max_rank, max_dim)` with values in `range`.
pub fn any_tensor(max_rank: usize, max_dim: usize, range: Range<f64>) -> impl Strategy<Value = Tensor<f64>> {
    shape(max_rank, max_dim).prop_flat_map(move |s| tensor_with_shape(s, range.clone()))
}

/// Tensors of the given shape with values in `range` but at least `margin` away from `kink`
/// (for functions like `relu` and `abs` whose derivative jumps there).
///
/// # Panics
/// If no value of `range` is `margin` away from `kink`.
pub fn tensor_away_from(
    shape: Vec<usize>,
    range: Range<f64>,
    kink: f64,
    margin: f64,
) -> impl Strategy<Value = Tensor<f64>> {
    let below = range.start..(kink - margin).min(range.end);
    let above = (kink + margin).max(range.start)..range.end;
    assert!(
        below.start < below.end || above.start < above.end,
        "tapegrad::testing::tensor_away_from: no value of {range:?} is {margin} away from {kink}"
    );
    let value = match (below.start < below.end, above.start < above.end) {
        (true, true) => prop_oneof![below, above].boxed(),
        (true, false) => below.boxed(),
        _ => above.boxed(),
    };
    let n = shape.iter().product::<usize>();
    vec(value, n).prop_map(move |data| Tensor::from_vec(data, &shape))
}

/// Pairs of tensors of broadcastable shapes ([`broadcastable_shapes`]) with values in `range`.
pub fn broadcastable_tensors(
    max_rank: usize,
    max_dim: usize,
    range: Range<f64>,
) -> impl Strategy<Value = (Tensor<f64>, Tensor<f64>)> {
    broadcastable_shapes(max_rank, max_dim).prop_flat_map(move |(a, b)| {
        (
            tensor_with_shape(a, range.clone()),
            tensor_with_shape(b, range.clone()),
        )
    })
}

/// Shapes for `matmul`: `([.., m, k], [.., k, n])` with batch axes (up to one each) that
/// broadcast: 2-D @ 2-D, equal batches, 2-D @ 3-D, 3-D @ 2-D, and a batch of 1 against a batch.
pub fn matmul_shapes(max_dim: usize) -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    let d = 1..=max_dim.max(1);
    (d.clone(), d.clone(), d.clone(), d, 0..5u8).prop_map(|(m, k, n, b, batch)| {
        let (ba, bb): (Vec<usize>, Vec<usize>) = match batch {
            0 => (vec![], vec![]),
            1 => (vec![b], vec![b]),
            2 => (vec![], vec![b]),
            3 => (vec![b], vec![]),
            _ => (vec![b], vec![1]),
        };
        ([ba, vec![m, k]].concat(), [bb, vec![k, n]].concat())
    })
}
