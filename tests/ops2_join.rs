//! Joining, splitting and rearranging (DESIGN.md section 2b): stack, split, chunk, pad, squeeze,
//! unsqueeze, flatten, flip and repeat, with cat round trips.
//!
//! For every op: values against a naive reference (nested loops over multi-indices), first- and
//! second-order gradient checks in f64 over random shapes (rank 0 to 4 where the op allows it,
//! size-1 and empty axes), the same function on a `Tape<f32>`, finite and close to f64; then
//! small cases with the values PyTorch gives (worked by hand; `tests/reference_ops2.rs` replays
//! the reference file's cases with their vector-Jacobian and Hessian-vector products), and the
//! panic messages. Every op here only moves values, so the checked functions cube the output: the second
//! order then exercises the rule's own rule with a grad_out that depends on the input.

mod common;

use common::ops2::*;

use std::panic::catch_unwind;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tapegrad::{Float, Tape, Tensor, Var};

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// One to three tensors of one shape (rank 0 to 3, empty axes included) and an axis in
/// `0..=rank` to stack them along.
fn stack_case() -> impl Strategy<Value = (Vec<Tensor<f64>>, usize)> {
    (shape(0..=3, 0..=3), 1..=3usize).prop_flat_map(|(s, k)| {
        let rank = s.len();
        (vec(values(s), k), 0..=rank)
    })
}

/// A tensor, an axis and split sizes summing to the axis length (zeros allowed, 1 to 4 pieces).
fn split_case() -> impl Strategy<Value = (Tensor<f64>, Vec<usize>, usize)> {
    shape(1..=3, 0..=4)
        .prop_flat_map(|s| {
            let rank = s.len();
            (Just(s), 0..rank, 0..=6usize)
        })
        .prop_flat_map(|(mut s, axis, len)| {
            s[axis] = len;
            (values(s), vec(0..=len, 0..=3), Just(axis))
        })
        .prop_map(|(x, mut cuts, axis)| {
            cuts.sort_unstable();
            let mut sizes = Vec::new();
            let mut previous = 0;
            for c in cuts {
                sizes.push(c - previous);
                previous = c;
            }
            sizes.push(x.shape()[axis] - previous);
            (x, sizes, axis)
        })
}

/// A tensor, an axis of length 1 to 7 and a number of chunks 1 to 8.
fn chunk_case() -> impl Strategy<Value = (Tensor<f64>, usize, usize)> {
    shape(1..=3, 1..=3)
        .prop_flat_map(|s| {
            let rank = s.len();
            (Just(s), 0..rank, 1..=7usize, 1..=8usize)
        })
        .prop_flat_map(|(mut s, axis, len, n)| {
            s[axis] = len;
            (values(s), Just(axis), Just(n))
        })
}

/// The sizes `torch.chunk` gives: pieces of `ceil(len / n)`, the last one smaller, so possibly
/// fewer than `n` pieces; `n` empty pieces for an empty axis.
fn chunk_sizes(len: usize, n: usize) -> Vec<usize> {
    if len == 0 {
        return vec![0; n];
    }
    let size = len.div_ceil(n);
    (0..len)
        .step_by(size)
        .map(|start| size.min(len - start))
        .collect()
}

/// The pieces' cubes, each weighted by its position and summed: one scalar in which every piece
/// counts differently.
fn weigh<'t, T: Float>(pieces: &[Var<'t, T>]) -> Var<'t, T> {
    pieces
        .iter()
        .enumerate()
        .map(|(i, p)| (p.powi(3) * T::from_f64(i as f64 + 1.0)).sum())
        .reduce(|a, b| a + b)
        .expect("at least one piece")
}

/// Checks that `pieces` are the slices of `x` of `sizes` along `axis`, in order.
fn check_pieces(
    x: &Tensor<f64>,
    pieces: &[Tensor<f64>],
    sizes: &[usize],
    axis: usize,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(pieces.len(), sizes.len(), "number of pieces");
    let mut start = 0;
    for (k, (piece, &size)) in pieces.iter().zip(sizes).enumerate() {
        let mut want_shape = x.shape().to_vec();
        want_shape[axis] = size;
        let want = build(&want_shape, |p| {
            let mut q = p.to_vec();
            q[axis] += start;
            x.get(&q)
        });
        prop_assert_eq!(piece, &want, "piece {}", k);
        start += size;
    }
    Ok(())
}

/// A tensor (rank 1 to 3, empty axes included), one `(before, after)` pair per axis and a value.
fn pad_case() -> impl Strategy<Value = (Tensor<f64>, Vec<(usize, usize)>, f64)> {
    shape(1..=3, 0..=3).prop_flat_map(|s| {
        let rank = s.len();
        (values(s), vec((0..=2usize, 0..=2usize), rank), -2.0..2.0f64)
    })
}

/// A tensor with a size-1 axis at `axis` (rank 1 to 4) and that axis.
fn squeeze_case() -> impl Strategy<Value = (Tensor<f64>, usize)> {
    shape(0..=3, 0..=3)
        .prop_flat_map(|s| {
            let rank = s.len();
            (Just(s), 0..=rank)
        })
        .prop_flat_map(|(mut s, axis)| {
            s.insert(axis, 1);
            (values(s), Just(axis))
        })
}

/// A tensor (rank 0 to 3) and an axis in `0..=rank` to insert.
fn unsqueeze_case() -> impl Strategy<Value = (Tensor<f64>, usize)> {
    shape(0..=3, 0..=3).prop_flat_map(|s| {
        let rank = s.len();
        (values(s), 0..=rank)
    })
}

/// A tensor of rank 1 to 4 and `start <= end < rank`.
fn flatten_case() -> impl Strategy<Value = (Tensor<f64>, usize, usize)> {
    shape(1..=4, 0..=3)
        .prop_flat_map(|s| {
            let rank = s.len();
            (Just(s), 0..rank)
        })
        .prop_flat_map(|(s, start)| {
            let rank = s.len();
            (values(s), Just(start), start..rank)
        })
}

/// A tensor of rank 0 to 3 and distinct axes of it in a random order (possibly none).
fn flip_case() -> impl Strategy<Value = (Tensor<f64>, Vec<usize>)> {
    shape(0..=3, 0..=4).prop_flat_map(|s| {
        let rank = s.len();
        (
            values(s),
            Just((0..rank).collect::<Vec<usize>>()).prop_shuffle(),
            0..=rank,
        )
            .prop_map(|(x, order, k)| (x, order[..k].to_vec()))
    })
}

/// A tensor of rank 0 to 3 and repetitions: 0 to 3 for each axis, preceded by 0 to 2 leading
/// ones (0 to 2 each) that add axes.
fn repeat_case() -> impl Strategy<Value = (Tensor<f64>, Vec<usize>)> {
    (shape(0..=3, 0..=3), vec(0..=2usize, 0..=2)).prop_flat_map(|(s, leading)| {
        let rank = s.len();
        (values(s), vec(0..=3usize, rank)).prop_map(move |(x, reps)| {
            let mut all = leading.clone();
            all.extend(reps);
            (x, all)
        })
    })
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn stack_values_and_gradients((xs, axis) in stack_case()) {
        let tape = Tape::<f64>::new();
        let vars: Vec<Var<f64>> = xs.iter().map(|x| tape.var(x.clone())).collect();
        let got = Var::stack(&vars, axis).value();
        let mut want_shape = xs[0].shape().to_vec();
        want_shape.insert(axis, xs.len());
        let want = build(&want_shape, |p| {
            let mut q = p.to_vec();
            let k = q.remove(axis);
            xs[k].get(&q)
        });
        prop_assert_eq!(got, want);
        check_op(
            op(|_, v| Var::stack(v, axis).powi(3)),
            op(|_, v| Var::stack(v, axis).powi(3)),
            &xs,
        )?;
    }

    #[test]
    fn stack_is_cat_of_unsqueezed((xs, axis) in stack_case()) {
        let tape = Tape::<f64>::new();
        let vars: Vec<Var<f64>> = xs.iter().map(|x| tape.var(x.clone())).collect();
        let stacked = Var::stack(&vars, axis);
        let unsqueezed: Vec<Var<f64>> = vars.iter().map(|v| v.unsqueeze(axis)).collect();
        let via_cat = Var::cat(&unsqueezed, axis);
        prop_assert_eq!(stacked.value(), via_cat.value());
    }

    #[test]
    fn split_values_gradients_and_cat_round_trip((x, sizes, axis) in split_case()) {
        let tape = Tape::<f64>::new();
        let v = tape.var(x.clone());
        let pieces = v.split(&sizes, axis);
        let values: Vec<Tensor<f64>> = pieces.iter().map(|p| p.value()).collect();
        check_pieces(&x, &values, &sizes, axis)?;
        // cat gives x back, and the gradient through the round trip is the seed itself.
        let joined = Var::cat(&pieces, axis);
        prop_assert_eq!(joined.value(), x.clone());
        let g = joined.backward_with_seed(seed(x.shape()));
        prop_assert_eq!(&g[v], &seed::<f64>(x.shape()));
        check_op(
            op(|_, v| weigh(&v[0].split(&sizes, axis))),
            op(|_, v| weigh(&v[0].split(&sizes, axis))),
            &[x],
        )?;
    }

    #[test]
    fn chunk_sizes_values_gradients_and_cat_round_trip((x, axis, n) in chunk_case()) {
        let len = x.shape()[axis];
        let sizes = chunk_sizes(len, n);
        let tape = Tape::<f64>::new();
        let v = tape.var(x.clone());
        let pieces = v.chunk(n, axis);
        let values: Vec<Tensor<f64>> = pieces.iter().map(|p| p.value()).collect();
        check_pieces(&x, &values, &sizes, axis)?;
        prop_assert!(pieces.len() <= n, "{} chunks asked, {} given", n, pieces.len());
        let joined = Var::cat(&pieces, axis);
        prop_assert_eq!(joined.value(), x.clone());
        let g = joined.backward_with_seed(seed(x.shape()));
        prop_assert_eq!(&g[v], &seed::<f64>(x.shape()));
        check_op(
            op(|_, v| weigh(&v[0].chunk(n, axis))),
            op(|_, v| weigh(&v[0].chunk(n, axis))),
            &[x],
        )?;
    }

    #[test]
    fn pad_values_and_gradients((x, pads, value) in pad_case()) {
        let tape = Tape::<f64>::new();
        let got = tape.var(x.clone()).pad(&pads, value).value();
        let want_shape: Vec<usize> =
            x.shape().iter().zip(&pads).map(|(&d, &(b, a))| b + d + a).collect();
        let want = build(&want_shape, |p| {
            let inside = p
                .iter()
                .zip(&pads)
                .zip(x.shape())
                .all(|((&i, &(b, _)), &d)| i >= b && i < b + d);
            if inside {
                let q: Vec<usize> = p.iter().zip(&pads).map(|(&i, &(b, _))| i - b).collect();
                x.get(&q)
            } else {
                value
            }
        });
        prop_assert_eq!(got, want);
        check_op(
            op(|_, v| v[0].pad(&pads, value).powi(3)),
            op(|_, v| v[0].pad(&pads, value as f32).powi(3)),
            &[x],
        )?;
    }

    #[test]
    fn squeeze_values_and_gradients((x, axis) in squeeze_case()) {
        let tape = Tape::<f64>::new();
        let y = tape.var(x.clone()).squeeze(axis);
        let mut want_shape = x.shape().to_vec();
        want_shape.remove(axis);
        prop_assert_eq!(y.shape(), want_shape.clone());
        prop_assert_eq!(y.value().to_vec(), x.to_vec());
        // And back.
        prop_assert_eq!(y.unsqueeze(axis).value(), x.clone());
        check_op(
            op(|_, v| v[0].squeeze(axis).powi(3)),
            op(|_, v| v[0].squeeze(axis).powi(3)),
            &[x],
        )?;
    }

    #[test]
    fn unsqueeze_values_and_gradients((x, axis) in unsqueeze_case()) {
        let tape = Tape::<f64>::new();
        let y = tape.var(x.clone()).unsqueeze(axis);
        let mut want_shape = x.shape().to_vec();
        want_shape.insert(axis, 1);
        prop_assert_eq!(y.shape(), want_shape);
        prop_assert_eq!(y.value().to_vec(), x.to_vec());
        prop_assert_eq!(y.squeeze(axis).value(), x.clone());
        check_op(
            op(|_, v| v[0].unsqueeze(axis).powi(3)),
            op(|_, v| v[0].unsqueeze(axis).powi(3)),
            &[x],
        )?;
    }

    #[test]
    fn flatten_values_and_gradients((x, start, end) in flatten_case()) {
        let tape = Tape::<f64>::new();
        let y = tape.var(x.clone()).flatten(start, end);
        let s = x.shape();
        let mut want_shape = s[..start].to_vec();
        want_shape.push(s[start..=end].iter().product());
        want_shape.extend_from_slice(&s[end + 1..]);
        prop_assert_eq!(y.shape(), want_shape);
        prop_assert_eq!(y.value().to_vec(), x.to_vec());
        check_op(
            op(|_, v| v[0].flatten(start, end).powi(3)),
            op(|_, v| v[0].flatten(start, end).powi(3)),
            &[x],
        )?;
    }

    #[test]
    fn flip_values_and_gradients((x, axes) in flip_case()) {
        let tape = Tape::<f64>::new();
        let y = tape.var(x.clone()).flip(&axes);
        let want = build(x.shape(), |p| {
            let mut q = p.to_vec();
            for &a in &axes {
                q[a] = x.shape()[a] - 1 - q[a];
            }
            x.get(&q)
        });
        prop_assert_eq!(y.value(), want);
        // Flipping twice gives x back.
        prop_assert_eq!(y.flip(&axes).value(), x.clone());
        check_op(
            op(|_, v| v[0].flip(&axes).powi(3)),
            op(|_, v| v[0].flip(&axes).powi(3)),
            &[x],
        )?;
    }

    #[test]
    fn repeat_values_and_gradients((x, reps) in repeat_case()) {
        let tape = Tape::<f64>::new();
        let v = tape.var(x.clone());
        let y = v.repeat(&reps);
        let lead = reps.len() - x.rank();
        let padded: Vec<usize> = std::iter::repeat_n(1, lead).chain(x.shape().iter().copied()).collect();
        let want_shape: Vec<usize> = padded.iter().zip(&reps).map(|(&d, &r)| d * r).collect();
        let want = build(&want_shape, |p| {
            let q: Vec<usize> = p[lead..].iter().zip(x.shape()).map(|(&i, &d)| i % d).collect();
            x.get(&q)
        });
        prop_assert_eq!(y.value(), want);
        // Each element is copied prod(reps) times: that is its gradient under a sum.
        let copies: usize = reps.iter().product();
        let g = y.sum().backward();
        let gx = g.wrt(v).cloned().unwrap_or_else(|| Tensor::zeros(x.shape()));
        prop_assert_eq!(gx, Tensor::full(x.shape(), copies as f64));
        check_op(
            op(|_, v| v[0].repeat(&reps).powi(3)),
            op(|_, v| v[0].repeat(&reps).powi(3)),
            &[x],
        )?;
    }
}

// ---------------------------------------------------------------------------------------------
// Values PyTorch gives
// ---------------------------------------------------------------------------------------------

#[test]
fn stack_matches_pytorch() {
    let tape = Tape::<f64>::new();
    let a = tape.var(Tensor::from_vec(vec![1., 2.], &[2]));
    let b = tape.var(Tensor::from_vec(vec![3., 4.], &[2]));
    // torch.stack([a, b]) = [[1, 2], [3, 4]]; dim=1: [[1, 3], [2, 4]].
    let s0 = Var::stack(&[a, b], 0);
    assert_eq!(
        (s0.shape(), s0.value().to_vec()),
        (vec![2, 2], vec![1., 2., 3., 4.])
    );
    let s1 = Var::stack(&[a, b], 1);
    assert_eq!(
        (s1.shape(), s1.value().to_vec()),
        (vec![2, 2], vec![1., 3., 2., 4.])
    );
    // Each input gets its own slice of the gradient.
    let w = tape.constant(Tensor::from_vec(vec![10., 20., 30., 40.], &[2, 2]));
    let g = (s1 * w).sum().backward();
    assert_eq!((g[a].to_vec(), g[b].to_vec()), (vec![10., 30.], vec![20., 40.]));
    // Scalars stack into a vector; one input gains a size-1 axis.
    let (p, q) = (tape.var(1.5), tape.var(-2.0));
    let s = Var::stack(&[p, q, p], 0);
    assert_eq!((s.shape(), s.value().to_vec()), (vec![3], vec![1.5, -2.0, 1.5]));
    assert_eq!((s * s).sum().backward()[p].item(), 6.0);
    assert_eq!(Var::stack(&[a], 1).shape(), vec![2, 1]);
    // Empty inputs stack into an empty result.
    let e = zeros(&tape, &[0, 3]);
    assert_eq!(Var::stack(&[e, e], 1).shape(), vec![0, 2, 3]);
}

#[test]
fn split_matches_pytorch() {
    let tape = Tape::<f64>::new();
    let x = tape.var(iota(&[2, 5]));
    // torch.arange(10.).reshape(2, 5).split([1, 0, 4], dim=1)
    let parts = x.split(&[1, 0, 4], 1);
    let shapes: Vec<Vec<usize>> = parts.iter().map(|p| p.shape()).collect();
    assert_eq!(shapes, vec![vec![2, 1], vec![2, 0], vec![2, 4]]);
    assert_eq!(parts[0].value().to_vec(), vec![0., 5.]);
    assert_eq!(parts[2].value().to_vec(), vec![1., 2., 3., 4., 6., 7., 8., 9.]);
    let loss = (parts[0] * 2.0).sum() + (parts[2] * 3.0).sum();
    assert_eq!(
        loss.backward()[x].to_vec(),
        vec![2., 3., 3., 3., 3., 2., 3., 3., 3., 3.]
    );
    // One piece: x itself.
    assert_eq!(x.split(&[2], 0)[0].value(), x.value());
    // An empty axis splits into empty pieces.
    let e = zeros(&tape, &[0, 2]);
    let parts = e.split(&[0, 0], 0);
    assert_eq!(parts.len(), 2);
    assert!(parts.iter().all(|p| p.shape() == vec![0, 2]));
}

#[test]
fn chunk_matches_pytorch() {
    let tape = Tape::<f64>::new();
    let sizes = |len: usize, n: usize| -> Vec<usize> {
        let x = tape.var(iota(&[len, 2]));
        x.chunk(n, 0).iter().map(|c| c.shape()[0]).collect()
    };
    // torch.arange(n).chunk(k): sizes ceil(len / k), the last smaller, possibly fewer than k.
    assert_eq!(sizes(5, 4), vec![2, 2, 1]);
    assert_eq!(sizes(6, 4), vec![2, 2, 2]);
    assert_eq!(sizes(7, 3), vec![3, 3, 1]);
    assert_eq!(sizes(6, 3), vec![2, 2, 2]);
    assert_eq!(sizes(3, 5), vec![1, 1, 1]);
    assert_eq!(sizes(1, 1), vec![1]);
    assert_eq!(sizes(4, 1), vec![4]);
    assert_eq!(sizes(10, 4), vec![3, 3, 3, 1]);
    // torch.zeros(0).chunk(3) gives 3 empty chunks.
    let e = zeros(&tape, &[2, 0]);
    let chunks = e.chunk(3, 1);
    assert_eq!(
        chunks.len(),
        3,
        "torch.chunk of an empty axis gives n empty chunks"
    );
    assert!(chunks.iter().all(|c| c.shape() == vec![2, 0]));
    // Values along the last axis: torch.arange(10.).reshape(2, 5).chunk(2, dim=1).
    let x = tape.var(iota(&[2, 5]));
    let c = x.chunk(2, 1);
    assert_eq!(c[0].value().to_vec(), vec![0., 1., 2., 5., 6., 7.]);
    assert_eq!(c[1].value().to_vec(), vec![3., 4., 8., 9.]);
    let g = ((c[0] * 2.0).sum() + c[1].sum()).backward();
    assert_eq!(g[x].to_vec(), vec![2., 2., 2., 1., 1., 2., 2., 2., 1., 1.]);
}

#[test]
fn pad_matches_pytorch() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![1., 2., 3., 4.], &[2, 2]));
    // F.pad(x, (0, 2, 1, 0), value=9): pairs last axis first there, first axis first here.
    let y = x.pad(&[(1, 0), (0, 2)], 9.0);
    assert_eq!(y.shape(), vec![3, 4]);
    assert_eq!(
        y.value().to_vec(),
        vec![9., 9., 9., 9., 1., 2., 9., 9., 3., 4., 9., 9.]
    );
    let w = tape.constant(iota(&[3, 4]));
    assert_eq!((y * w).sum().backward()[x].to_vec(), vec![4., 5., 8., 9.]);
    // No padding: the same values.
    assert_eq!(x.pad(&[(0, 0), (0, 0)], 1.0).value(), x.value());
    // Padding an empty axis: all padding. An infinite value is kept as is.
    let e = zeros(&tape, &[0, 2]);
    let p = e.pad(&[(1, 1), (0, 1)], f64::NEG_INFINITY);
    assert_eq!(p.shape(), vec![2, 3]);
    assert!(p.value().as_slice().iter().all(|&v| v == f64::NEG_INFINITY));
    assert_eq!(p.sum().backward()[e].shape(), &[0, 2]);
    // Rank 1 and rank 3.
    let v = tape.var(Tensor::from_vec(vec![5., 6.], &[2]));
    assert_eq!(v.pad(&[(2, 1)], 0.0).value().to_vec(), vec![0., 0., 5., 6., 0.]);
    let t = tape.var(Tensor::ones(&[1, 1, 1]));
    let p = t.pad(&[(0, 1), (1, 0), (0, 0)], 0.0);
    assert_eq!(
        (p.shape(), p.value().to_vec()),
        (vec![2, 2, 1], vec![0., 1., 0., 0.])
    );
}

#[test]
fn squeeze_and_unsqueeze_match_pytorch() {
    let tape = Tape::<f64>::new();
    let x = tape.var(iota(&[2, 1, 3]));
    assert_eq!(x.squeeze(1).shape(), vec![2, 3]);
    assert_eq!(x.squeeze(1).value().to_vec(), iota(&[6]).to_vec());
    assert_eq!(x.unsqueeze(0).shape(), vec![1, 2, 1, 3]);
    assert_eq!(x.unsqueeze(3).shape(), vec![2, 1, 3, 1]);
    assert_eq!(x.unsqueeze(2).shape(), vec![2, 1, 1, 3]);
    // A one-element vector squeezes to a scalar and a scalar unsqueezes to [1].
    let one = tape.var(Tensor::from_vec(vec![4.0], &[1]));
    let s = one.squeeze(0);
    assert_eq!((s.shape(), s.item()), (vec![], 4.0));
    assert_eq!(tape.var(2.5).unsqueeze(0).shape(), vec![1]);
    assert_eq!(s.unsqueeze(0).shape(), vec![1]);
    // Empty axes stay.
    assert_eq!(zeros(&tape, &[0, 1]).squeeze(1).shape(), vec![0]);
    assert_eq!(zeros(&tape, &[0]).unsqueeze(1).shape(), vec![0, 1]);
    // Gradients keep the input's shape.
    let g = (x.squeeze(1).unsqueeze(0) * 2.0).sum().backward();
    assert_eq!(g[x], Tensor::full(&[2, 1, 3], 2.0));
}

#[test]
fn flatten_matches_pytorch() {
    let tape = Tape::<f64>::new();
    let x = tape.var(iota(&[2, 3, 4]));
    assert_eq!(x.flatten(0, 1).shape(), vec![6, 4]);
    assert_eq!(x.flatten(1, 2).shape(), vec![2, 12]);
    assert_eq!(x.flatten(0, 2).shape(), vec![24]);
    assert_eq!(x.flatten(1, 1).shape(), vec![2, 3, 4]);
    assert_eq!(x.flatten(0, 2).value().to_vec(), iota(&[24]).to_vec());
    assert_eq!(zeros(&tape, &[2, 0, 3]).flatten(0, 1).shape(), vec![0, 3]);
    let g = (x.flatten(1, 2) * 3.0).sum().backward();
    assert_eq!(g[x], Tensor::full(&[2, 3, 4], 3.0));
}

#[test]
fn flip_matches_pytorch() {
    let tape = Tape::<f64>::new();
    let x = tape.var(iota(&[2, 3]));
    // torch.arange(6.).reshape(2, 3).flip(...)
    assert_eq!(x.flip(&[0]).value().to_vec(), vec![3., 4., 5., 0., 1., 2.]);
    assert_eq!(x.flip(&[1]).value().to_vec(), vec![2., 1., 0., 5., 4., 3.]);
    assert_eq!(x.flip(&[0, 1]).value().to_vec(), vec![5., 4., 3., 2., 1., 0.]);
    assert_eq!(x.flip(&[1, 0]).value().to_vec(), vec![5., 4., 3., 2., 1., 0.]);
    assert_eq!(x.flip(&[]).value(), x.value());
    let w = tape.constant(iota(&[2, 3]));
    // grad = w flipped the same way.
    assert_eq!(
        (x.flip(&[1]) * w).sum().backward()[x].to_vec(),
        vec![2., 1., 0., 5., 4., 3.]
    );
    assert_eq!(tape.var(3.0).flip(&[]).item(), 3.0);
}

#[test]
fn repeat_matches_pytorch() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![1., 2., 3.], &[3]));
    // torch.tensor([1., 2., 3.]).repeat(4, 2)
    let y = x.repeat(&[4, 2]);
    assert_eq!(y.shape(), vec![4, 6]);
    assert_eq!(y.value().to_vec(), [1., 2., 3., 1., 2., 3.].repeat(4));
    assert_eq!(y.sum().backward()[x].to_vec(), vec![8., 8., 8.]);
    // torch.tensor([[1., 2.], [3., 4.]]).repeat(2, 1, 2)
    let m = tape.var(Tensor::from_vec(vec![1., 2., 3., 4.], &[2, 2]));
    let r = m.repeat(&[2, 1, 2]);
    assert_eq!(r.shape(), vec![2, 2, 4]);
    assert_eq!(
        r.value().to_vec(),
        vec![1., 2., 1., 2., 3., 4., 3., 4., 1., 2., 1., 2., 3., 4., 3., 4.]
    );
    // Weighted: each element collects the weights of its copies.
    let w = tape.constant(iota(&[2, 2, 4]));
    assert_eq!(
        (r * w).sum().backward()[m].to_vec(),
        vec![
            0. + 2. + 8. + 10.,
            1. + 3. + 9. + 11.,
            4. + 6. + 12. + 14.,
            5. + 7. + 13. + 15.
        ]
    );
    // Ones leave it as is; a zero empties an axis (and the gradient is zero).
    assert_eq!(m.repeat(&[1, 1]).value(), m.value());
    let z = x.repeat(&[2, 0]);
    assert_eq!(z.shape(), vec![2, 0]);
    let g = z.sum().backward();
    assert_eq!(
        g.wrt(x).cloned().unwrap_or_else(|| Tensor::zeros(&[3])),
        Tensor::zeros(&[3])
    );
    // A scalar repeated.
    let s = tape.var(2.0);
    assert_eq!(s.repeat(&[3]).value().to_vec(), vec![2., 2., 2.]);
    assert_eq!(s.repeat(&[2, 3]).shape(), vec![2, 3]);
}

#[test]
fn the_ops_compose() {
    // Chunk a vector, stack the halves, flip and pad; a comparison counts the positive values.
    let tape = Tape::<f64>::new();
    let x = tape.var(iota(&[6]));
    let halves = x.chunk(2, 0);
    let s = Var::stack(&halves, 0).flip(&[1]).pad(&[(0, 0), (1, 0)], -1.0);
    assert_eq!(s.shape(), vec![2, 4]);
    assert_eq!(s.value().to_vec(), vec![-1., 2., 1., 0., -1., 5., 4., 3.]);
    assert_eq!(s.value().gt(0.5).count(), 5);
}

// ---------------------------------------------------------------------------------------------
// Large tensors: the threaded paths
// ---------------------------------------------------------------------------------------------

/// A tensor of `shape` whose element at multi-index `p` is `f(p)`, in f32.
fn build32(shape: &[usize], f: impl Fn(&[usize]) -> f32) -> Tensor<f32> {
    Tensor::from_fn(shape, |i| f(&unravel(i, shape)))
}

#[test]
fn large_tensors_agree_with_naive_loops_whatever_the_split() {
    // 2 × 401 × 350 = 280,700 elements, odd sizes so that pieces are uneven; 3 threads, then the
    // default.
    let shape = [2, 401, 350];
    let x = Tensor::<f32>::from_fn(&shape, |i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0);
    for threads in [3, 0] {
        tapegrad::set_num_threads(threads);
        let tape = Tape::<f32>::new();
        let v = tape.var(x.clone());
        // pad
        let pads = [(1, 0), (0, 3), (2, 1)];
        let y = v.pad(&pads, -9.0);
        let want = build32(&[3, 404, 353], |p| {
            if p[0] >= 1 && p[1] < 401 && p[2] >= 2 && p[2] < 352 {
                x.get(&[p[0] - 1, p[1], p[2] - 2])
            } else {
                -9.0
            }
        });
        assert_eq!(y.value(), want, "pad, {threads} threads");
        let w = Tensor::<f32>::from_fn(&[3, 404, 353], |i| (i % 5) as f32);
        let g = (y * tape.constant(w.clone())).sum().backward();
        let want = build32(&shape, |p| w.get(&[p[0] + 1, p[1], p[2] + 2]));
        assert_eq!(g[v], want, "pad backward, {threads} threads");
        // flip
        let y = v.flip(&[0, 2]);
        let want = build32(&shape, |p| x.get(&[1 - p[0], p[1], 349 - p[2]]));
        assert_eq!(y.value(), want, "flip, {threads} threads");
        // repeat, adding an axis
        let y = v.repeat(&[2, 1, 2, 1]);
        assert_eq!(y.shape(), vec![2, 2, 802, 350]);
        let want = build32(&[2, 2, 802, 350], |p| x.get(&[p[1], p[2] % 401, p[3]]));
        assert_eq!(y.value(), want, "repeat, {threads} threads");
        let g = y.sum().backward();
        assert_eq!(
            g[v],
            Tensor::full(&shape, 4.0),
            "repeat backward, {threads} threads"
        );
        // stack, split and cat
        let y = Var::stack(&[v, v * 2.0], 2);
        let want = build32(&[2, 401, 2, 350], |p| {
            x.get(&[p[0], p[1], p[3]]) * if p[2] == 1 { 2.0 } else { 1.0 }
        });
        assert_eq!(y.value(), want, "stack, {threads} threads");
        let pieces = v.split(&[150, 1, 250], 1);
        assert_eq!(
            pieces[1].value(),
            build32(&[2, 1, 350], |p| x.get(&[p[0], 150, p[2]]))
        );
        assert_eq!(
            Var::cat(&pieces, 1).value(),
            x,
            "split and cat, {threads} threads"
        );
        let chunks = v.chunk(3, 2);
        let sizes: Vec<usize> = chunks.iter().map(|c| c.shape()[2]).collect();
        assert_eq!(sizes, vec![117, 117, 116]);
        assert_eq!(
            Var::cat(&chunks, 2).value(),
            x,
            "chunk and cat, {threads} threads"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn stack_errors_name_the_op_and_the_shapes() {
    assert_panics(
        "stack of different shapes",
        &["stack", "[2, 3]", "[3, 2]"],
        || {
            let tape = Tape::<f64>::new();
            let _ = Var::stack(&[zeros(&tape, &[2, 3]), zeros(&tape, &[3, 2])], 0);
        },
    );
    assert_panics(
        "stack of different ranks",
        &["stack", "[2, 3]", "[2, 3, 1]"],
        || {
            let tape = Tape::<f64>::new();
            let _ = Var::stack(&[zeros(&tape, &[2, 3]), zeros(&tape, &[2, 3, 1])], 1);
        },
    );
    // axis may be the rank (a new last axis), not more.
    assert_panics("stack axis", &["stack", "5", "[2, 4]"], || {
        let tape = Tape::<f64>::new();
        let x = zeros(&tape, &[2, 4]);
        let _ = Var::stack(&[x, x], 5);
    });
    assert_panics("stack of nothing", &["stack"], || {
        let _ = Var::<f64>::stack(&[], 0);
    });
}

#[test]
fn split_errors_name_the_op_the_sizes_and_the_shape() {
    // Sizes summing to 6 for an axis of 7.
    let msg = panic_message(|| {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[3, 7]).split(&[2, 4], 1);
    });
    assert!(msg.contains("split"), "{msg:?}");
    assert!(
        msg.contains('7'),
        "the message should give the axis length: {msg:?}"
    );
    assert!(
        msg.contains('6') || msg.contains("[2, 4]"),
        "the message should give the sizes: {msg:?}"
    );
    // Too much.
    let msg = panic_message(|| {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[3, 7]).split(&[5, 4], 1);
    });
    assert!(msg.contains("split") && msg.contains('7'), "{msg:?}");
    assert!(msg.contains('9') || msg.contains("[5, 4]"), "{msg:?}");
    assert_panics("split axis", &["split", "2", "[3, 7]"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[3, 7]).split(&[3], 2);
    });
}

#[test]
fn chunk_errors_name_the_op() {
    assert_panics("chunk into 0", &["chunk", "0"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[3, 4]).chunk(0, 1);
    });
    assert_panics("chunk axis", &["chunk", "2", "[3, 4]"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[3, 4]).chunk(2, 2);
    });
    // torch: "chunk expects at least a 1-dimensional tensor".
    assert_panics("chunk of a scalar", &["chunk", "[]"], || {
        let tape = Tape::<f64>::new();
        let _ = tape.var(1.0).chunk(1, 0);
    });
}

#[test]
#[should_panic(expected = "squeeze")]
fn squeeze_of_an_axis_longer_than_one_panics() {
    let tape = Tape::<f64>::new();
    let _ = zeros(&tape, &[2, 3]).squeeze(1);
}

#[test]
fn squeeze_and_unsqueeze_errors_name_the_op_the_axis_and_the_shape() {
    assert_panics("squeeze of a non-1 axis", &["squeeze", "[2, 3]", "1"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[2, 3]).squeeze(1);
    });
    assert_panics("squeeze of an empty axis", &["squeeze", "[2, 0]"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[2, 0]).squeeze(1);
    });
    assert_panics("squeeze axis", &["squeeze", "4", "[2, 3]"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[2, 3]).squeeze(4);
    });
    assert_panics("squeeze of a scalar", &["squeeze", "[]"], || {
        let tape = Tape::<f64>::new();
        let _ = tape.var(1.0).squeeze(0);
    });
    assert_panics("unsqueeze axis", &["unsqueeze", "4", "[2, 3]"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[2, 3]).unsqueeze(4);
    });
}

#[test]
fn flatten_errors_name_the_op_the_axes_and_the_shape() {
    assert_panics("flatten end", &["flatten", "5", "[2, 3]"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[2, 3]).flatten(0, 5);
    });
    // torch: "flatten() has invalid args: start_dim cannot come after end_dim".
    assert_panics("flatten start after end", &["flatten", "[2, 3, 4]"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[2, 3, 4]).flatten(2, 1);
    });
}

#[test]
fn flip_errors_name_the_op_the_axis_and_the_shape() {
    assert_panics("flip axis", &["flip", "4", "[2, 3]"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[2, 3]).flip(&[0, 4]);
    });
    // torch: "dim 1 appears multiple times in the list of dims".
    assert_panics("flip with a repeated axis", &["flip", "1"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[2, 3]).flip(&[1, 1]);
    });
}

#[test]
#[should_panic(expected = "repeat")]
fn repeat_with_fewer_reps_than_the_rank_panics() {
    let tape = Tape::<f64>::new();
    let _ = zeros(&tape, &[2, 3]).repeat(&[4]);
}

#[test]
fn repeat_and_pad_errors_name_the_op_the_count_and_the_shape() {
    assert_panics("repeat with too few reps", &["repeat", "[2, 3]", "[4]"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[2, 3]).repeat(&[4]);
    });
    assert_panics("pad with too few pairs", &["pad", "[2, 3]", "1"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[2, 3]).pad(&[(1, 1)], 0.0);
    });
    assert_panics("pad with too many pairs", &["pad", "[2, 3]", "3"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[2, 3]).pad(&[(1, 1), (0, 0), (2, 2)], 0.0);
    });
}

thread_local! {
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

#[test]
fn panics_report_the_callers_location() {
    // The hook is process-wide but records into a thread-local, so other tests' panics only
    // touch their own slot.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let file = info.location().map(|l| l.file().to_string());
        LAST_PANIC.with(|p| *p.borrow_mut() = file);
    }));
    type Case = (&'static str, fn(Var<'_, f64>));
    let cases: [Case; 10] = [
        ("stack", |x| _ = Var::stack(&[x, x.reshape(&[3, 2])], 0)),
        ("split", |x| _ = x.split(&[1], 0)),
        ("chunk", |x| _ = x.chunk(0, 0)),
        ("pad", |x| _ = x.pad(&[(1, 1)], 0.0)),
        ("squeeze", |x| _ = x.squeeze(0)),
        ("unsqueeze", |x| _ = x.unsqueeze(3)),
        ("flatten", |x| _ = x.flatten(1, 2)),
        ("flip", |x| _ = x.flip(&[2])),
        ("repeat", |x| _ = x.repeat(&[2])),
        ("cat", |x| _ = Var::cat(&[x, x.reshape(&[3, 2])], 0)),
    ];
    let mut wrong = Vec::new();
    for (name, f) in cases {
        LAST_PANIC.with(|p| p.borrow_mut().take());
        let result = catch_unwind(move || {
            let tape = Tape::<f64>::new();
            f(tape.var(Tensor::zeros(&[2, 3])));
        });
        let site = LAST_PANIC.with(|p| p.borrow_mut().take());
        match (result, site) {
            (Err(_), Some(file)) if file.ends_with("ops2_join.rs") => {}
            (_, site) => wrong.push(format!("{name}: {site:?}")),
        }
    }
    std::panic::set_hook(previous);
    assert!(wrong.is_empty(), "panics not at the caller's line: {wrong:?}");
}
