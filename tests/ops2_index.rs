//! Indexing and masking (DESIGN.md section 2b): index_select, gather, scatter_add, masked_fill,
//! where_cond, tril and triu.
//!
//! For every op: values against a naive reference (loops over multi-indices), gradients against
//! a reference vector-Jacobian product (repeated indices and broadcast masks accumulate), first-
//! and second-order gradient checks in f64 over random shapes (rank 0 to 4 where the op allows
//! it, size-1 and empty axes, empty indices), the same function on a `Tape<f32>`, finite and
//! close to f64; small cases with the values PyTorch gives (worked by hand;
//! `tests/reference_ops2.rs` replays the reference file's cases); masked softmax rows with
//! `-inf`; and the panic messages. The ops are
//! linear in their differentiable inputs, so the checked functions cube the output: the second
//! order then exercises the rule's own rule.

mod common;

use common::ops2::*;

use std::panic::catch_unwind;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tapegrad::{Element, Tape, Tensor, Var};

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// `|a - b| <= 1e-12 (1 + |b|)` with equal shapes: the same sums in another order.
fn assert_near(what: &str, a: &Tensor<f64>, b: &Tensor<f64>) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.shape(), b.shape(), "{}: shapes differ", what);
    for (i, (&x, &y)) in a.as_slice().iter().zip(b.as_slice()).enumerate() {
        prop_assert!(
            (x - y).abs() <= 1e-12 * (1.0 + y.abs()),
            "{}: element {} is {} but the reference gives {}",
            what,
            i,
            x,
            y
        );
    }
    Ok(())
}

/// The row-major position of multi-index `p` in `shape`.
fn ravel(p: &[usize], shape: &[usize]) -> usize {
    p.iter().zip(shape).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// NumPy's broadcast shape of `shapes` (assumed compatible).
fn broadcast_shape(shapes: &[&[usize]]) -> Vec<usize> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    (0..rank)
        .map(|j| {
            let dims: Vec<usize> = shapes
                .iter()
                .filter_map(|s| (j + s.len()).checked_sub(rank).map(|k| s[k]))
                .collect();
            if dims.contains(&0) {
                0
            } else {
                dims.into_iter().max().unwrap_or(1)
            }
        })
        .collect()
}

/// The multi-index in `shape` that position `p` of a broadcast result reads.
fn broadcast_source(p: &[usize], shape: &[usize]) -> Vec<usize> {
    let lead = p.len() - shape.len();
    p[lead..]
        .iter()
        .zip(shape)
        .map(|(&i, &d)| if d == 1 { 0 } else { i })
        .collect()
}

/// The element of `t` that position `p` of a broadcast result reads.
fn at<E: Element>(t: &Tensor<E>, p: &[usize]) -> E {
    t.get(&broadcast_source(p, t.shape()))
}

/// The sum over broadcast positions: `want[q] = Σ_{p reading q} g(p)` for the broadcast result
/// `out_shape` and an input of `shape`, the reference gradient of a broadcasting op.
fn sum_to(shape: &[usize], out_shape: &[usize], g: impl Fn(&[usize]) -> f64) -> Tensor<f64> {
    let mut acc = vec![0.0; shape.iter().product()];
    for flat in 0..out_shape.iter().product() {
        let p = unravel(flat, out_shape);
        acc[ravel(&broadcast_source(&p, shape), shape)] += g(&p);
    }
    Tensor::from_vec(acc, shape)
}

fn index(v: Vec<usize>, shape: &[usize]) -> Tensor<usize> {
    Tensor::<usize>::from_vec(v, shape)
}

fn mask(v: Vec<bool>, shape: &[usize]) -> Tensor<bool> {
    Tensor::<bool>::from_vec(v, shape)
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Indices below `bound` (with repeats) filling `shape`; `bound` may be 0 only if `shape` is
/// empty.
fn indices(shape: Vec<usize>, bound: usize) -> BoxedStrategy<Tensor<usize>> {
    let n: usize = shape.iter().product();
    vec(0..bound.max(1), n)
        .prop_map(move |v| Tensor::from_vec(v, &shape))
        .boxed()
}

fn masks(shape: Vec<usize>) -> BoxedStrategy<Tensor<bool>> {
    let n: usize = shape.iter().product();
    vec(any::<bool>(), n)
        .prop_map(move |v| Tensor::from_vec(v, &shape))
        .boxed()
}

/// A tensor (rank 1 to 3, empty axes included), an axis, and a 1-D index of 0 to 6 entries into
/// that axis, with repeats (empty when the axis is).
fn index_select_case() -> impl Strategy<Value = (Tensor<f64>, usize, Tensor<usize>)> {
    shape(1..=3, 0..=4)
        .prop_flat_map(|s| {
            let rank = s.len();
            (Just(s), 0..rank)
        })
        .prop_flat_map(|(s, axis)| {
            let len = s[axis];
            let count = if len == 0 { 0..=0usize } else { 0..=6usize };
            (values(s), Just(axis), count)
                .prop_flat_map(move |(x, axis, k)| (Just(x), Just(axis), indices(vec![k], len)))
        })
}

/// An index shape for `x_shape` along `axis`, as gather and scatter_add take: the same rank, at
/// most `x_shape[d]` along every other axis, 1 to 5 along `axis`; one axis in eight cases empty.
fn index_shape(x_shape: Vec<usize>, axis: usize) -> impl Strategy<Value = Vec<usize>> {
    let dims: Vec<BoxedStrategy<usize>> = x_shape
        .iter()
        .enumerate()
        .map(|(d, &n)| {
            if d == axis {
                (1..=5usize).boxed()
            } else {
                (1..=n).boxed()
            }
        })
        .collect();
    (dims, any::<prop::sample::Index>(), 0..8u8).prop_map(|(mut s, which, empty)| {
        if empty == 0 {
            let d = which.index(s.len());
            s[d] = 0;
        }
        s
    })
}

/// A tensor (rank 1 to 3, axes 1 to 4), an axis, and an index for gather along it.
fn gather_case() -> impl Strategy<Value = (Tensor<f64>, usize, Tensor<usize>)> {
    shape(1..=3, 1..=4)
        .prop_flat_map(|s| {
            let rank = s.len();
            (Just(s), 0..rank)
        })
        .prop_flat_map(|(s, axis)| (Just(s.clone()), Just(axis), index_shape(s, axis)))
        .prop_flat_map(|(s, axis, is)| {
            let len = s[axis];
            (values(s), Just(axis), indices(is, len))
        })
}

/// A gather case and a source at least as large as the index along every axis.
fn scatter_case() -> impl Strategy<Value = (Tensor<f64>, usize, Tensor<usize>, Tensor<f64>)> {
    gather_case()
        .prop_flat_map(|(x, axis, idx)| {
            let rank = idx.rank();
            (Just(x), Just(axis), Just(idx), vec(0..=1usize, rank))
        })
        .prop_flat_map(|(x, axis, idx, extra)| {
            let src_shape: Vec<usize> = idx.shape().iter().zip(&extra).map(|(&d, &e)| d + e).collect();
            (Just(x), Just(axis), Just(idx), values(src_shape))
        })
}

/// A shape derived from `base` by setting some axes to 1 and dropping some leading ones: the
/// shapes derived from one base broadcast together.
fn derived(base: Vec<usize>) -> impl Strategy<Value = Vec<usize>> {
    let rank = base.len();
    (
        vec(prop::bool::weighted(0.3), rank),
        prop_oneof![3 => Just(0usize), 1 => 0..=rank],
    )
        .prop_map(move |(ones, drop)| {
            base.iter()
                .zip(&ones)
                .map(|(&d, &one)| if one { 1 } else { d })
                .skip(drop)
                .collect()
        })
}

/// Base shapes: rank 0 to 3 (scalars included), axes 0 to 3.
fn base_shape() -> impl Strategy<Value = Vec<usize>> {
    shape(0..=3, 0..=3)
}

/// A tensor, a mask broadcasting with it (either may be the larger), and a fill value.
fn masked_fill_case() -> impl Strategy<Value = (Tensor<f64>, Tensor<bool>, f64)> {
    base_shape()
        .prop_flat_map(|b| (derived(b.clone()), derived(b)))
        .prop_flat_map(|(xs, ms)| (values(xs), masks(ms), -3.0..3.0f64))
}

/// A mask and two tensors, all three broadcasting together.
fn where_case() -> impl Strategy<Value = (Tensor<bool>, Tensor<f64>, Tensor<f64>)> {
    base_shape()
        .prop_flat_map(|b| (derived(b.clone()), derived(b.clone()), derived(b)))
        .prop_flat_map(|(ms, a, b)| (masks(ms), values(a), values(b)))
}

/// A tensor of rank 2 to 4 (empty axes included) and a diagonal in -5..=5.
fn tri_case() -> impl Strategy<Value = (Tensor<f64>, i64)> {
    (shape(2..=4, 0..=4), -5i64..=5).prop_flat_map(|(s, k)| (values(s), Just(k)))
}

/// A [rows, lanes]-like case for masked softmax: a tensor of rank 2 or 3, an axis, and a mask of
/// the same shape in which no lane along that axis is all masked.
fn softmax_case() -> impl Strategy<Value = (Tensor<f64>, usize, Tensor<bool>)> {
    shape(2..=3, 1..=4)
        .prop_flat_map(|s| {
            let rank = s.len();
            (values(s.clone()), 0..rank, masks(s))
        })
        .prop_map(|(x, axis, m)| {
            let shape = x.shape().to_vec();
            let mut bits = m.to_vec();
            for flat in 0..bits.len() {
                let p = unravel(flat, &shape);
                if p[axis] != 0 {
                    continue;
                }
                let lane: Vec<usize> = (0..shape[axis])
                    .map(|j| {
                        let mut q = p.clone();
                        q[axis] = j;
                        ravel(&q, &shape)
                    })
                    .collect();
                if lane.iter().all(|&k| bits[k]) {
                    bits[lane[lane.len() / 2]] = false;
                }
            }
            (x, axis, Tensor::from_vec(bits, &shape))
        })
}

/// `p` with its `axis` coordinate replaced by `value`.
fn with(p: &[usize], axis: usize, value: usize) -> Vec<usize> {
    let mut q = p.to_vec();
    q[axis] = value;
    q
}

/// Whether tril (`lower`) or triu keeps the element at multi-index `p` for `diagonal`.
fn kept(p: &[usize], diagonal: i64, lower: bool) -> bool {
    let n = p.len();
    let offset = p[n - 1] as i64 - p[n - 2] as i64;
    if lower {
        offset <= diagonal
    } else {
        offset >= diagonal
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn index_select_values_and_gradients((x, axis, idx) in index_select_case()) {
        let k = idx.shape()[0];
        let mut out_shape = x.shape().to_vec();
        out_shape[axis] = k;
        let want = build(&out_shape, |p| x.get(&with(p, axis, idx.get(&[p[axis]]))));
        let f = op::<f64, _>(|_, v| v[0].index_select(axis, &idx));
        let (got, grads) = run(&f, std::slice::from_ref(&x));
        prop_assert_eq!(got, want);
        // Repeated indices accumulate: each slice of x collects the seed of every copy.
        let g = seed::<f64>(&out_shape);
        let want_grad = build(x.shape(), |q| {
            (0..k)
                .filter(|&j| idx.get(&[j]) == q[axis])
                .map(|j| g.get(&with(q, axis, j)))
                .sum()
        });
        assert_near("gradient", &grads[0], &want_grad)?;
        check_op(
            op(|_, v| v[0].index_select(axis, &idx).powi(3)),
            op(|_, v| v[0].index_select(axis, &idx).powi(3)),
            &[x],
        )?;
    }

    #[test]
    fn gather_values_and_gradients((x, axis, idx) in gather_case()) {
        let want = build(idx.shape(), |p| x.get(&with(p, axis, idx.get(p))));
        let f = op::<f64, _>(|_, v| v[0].gather(axis, &idx));
        let (got, grads) = run(&f, std::slice::from_ref(&x));
        prop_assert_eq!(got, want);
        // The gradient scatters (adds) the seed back to where each element came from.
        let g = seed::<f64>(idx.shape());
        let mut want_grad = vec![0.0; x.numel()];
        for flat in 0..idx.numel() {
            let p = unravel(flat, idx.shape());
            want_grad[ravel(&with(&p, axis, idx.get(&p)), x.shape())] += g.get(&p);
        }
        assert_near("gradient", &grads[0], &Tensor::from_vec(want_grad, x.shape()))?;
        check_op(
            op(|_, v| v[0].gather(axis, &idx).powi(3)),
            op(|_, v| v[0].gather(axis, &idx).powi(3)),
            &[x],
        )?;
    }

    #[test]
    fn scatter_add_values_and_gradients((x, axis, idx, src) in scatter_case()) {
        let mut want = x.to_vec();
        for flat in 0..idx.numel() {
            let p = unravel(flat, idx.shape());
            want[ravel(&with(&p, axis, idx.get(&p)), x.shape())] += src.get(&p);
        }
        let f = op::<f64, _>(|_, v| v[0].scatter_add(axis, &idx, v[1]));
        let (got, grads) = run(&f, &[x.clone(), src.clone()]);
        assert_near("value", &got, &Tensor::from_vec(want, x.shape()))?;
        // x's gradient is the seed; src's is the seed gathered at the index, and 0 where src
        // lies beyond the index.
        let g = seed::<f64>(x.shape());
        prop_assert_eq!(&grads[0], &g);
        let want_src = build(src.shape(), |p| {
            if p.iter().zip(idx.shape()).all(|(&i, &d)| i < d) {
                g.get(&with(p, axis, idx.get(p)))
            } else {
                0.0
            }
        });
        prop_assert_eq!(&grads[1], &want_src);
        check_op(
            op(|_, v| v[0].scatter_add(axis, &idx, v[1]).powi(3)),
            op(|_, v| v[0].scatter_add(axis, &idx, v[1]).powi(3)),
            &[x, src],
        )?;
    }

    #[test]
    fn gather_and_scatter_add_are_adjoint((x, axis, idx, src) in scatter_case()) {
        // <gather(x), s> = <x, scatter_add(0, s)> for s of the index's shape.
        let s = build(idx.shape(), |p| src.get(p));
        let tape = Tape::<f64>::new();
        let xv = tape.var(x.clone());
        let lhs = (xv.gather(axis, &idx) * tape.constant(s.clone())).sum().item();
        let scattered = zeros(&tape, x.shape()).scatter_add(axis, &idx, tape.constant(s));
        let rhs = (scattered * xv).sum().item();
        prop_assert!((lhs - rhs).abs() <= 1e-12 * (1.0 + lhs.abs()), "{} vs {}", lhs, rhs);
    }

    #[test]
    fn masked_fill_values_and_gradients((x, m, value) in masked_fill_case()) {
        let out_shape = broadcast_shape(&[x.shape(), m.shape()]);
        let want = build(&out_shape, |p| if at(&m, p) { value } else { at(&x, p) });
        let f = op::<f64, _>(|_, v| v[0].masked_fill(&m, value));
        let (got, grads) = run(&f, std::slice::from_ref(&x));
        prop_assert_eq!(got, want);
        // 0 where masked; summed over the broadcast positions where x shows through.
        let g = seed::<f64>(&out_shape);
        let want_grad = sum_to(x.shape(), &out_shape, |p| if at(&m, p) { 0.0 } else { g.get(p) });
        assert_near("gradient", &grads[0], &want_grad)?;
        check_op(
            op(|_, v| v[0].masked_fill(&m, value).powi(3)),
            op(|_, v| v[0].masked_fill(&m, value as f32).powi(3)),
            &[x],
        )?;
    }

    #[test]
    fn masked_fill_with_minus_infinity_then_softmax_stays_finite((x, axis, m) in softmax_case()) {
        let tape = Tape::<f64>::new();
        let v = tape.var(x.clone());
        let y = v.masked_fill(&m, f64::NEG_INFINITY).softmax(axis);
        let p = y.value();
        prop_assert!(p.all_finite(), "{:?}", p);
        for (i, (&pi, &masked)) in p.as_slice().iter().zip(m.as_slice()).enumerate() {
            if masked {
                prop_assert_eq!(pi, 0.0, "masked element {} has probability {}", i, pi);
            }
        }
        let sums = p.sum_axis(axis, false);
        prop_assert!(sums.as_slice().iter().all(|s| (s - 1.0).abs() < 1e-12), "{:?}", sums);
        let grads = y.backward_with_seed(seed(x.shape()));
        let g = &grads[v];
        prop_assert!(g.all_finite(), "{:?}", g);
        for (i, (&gi, &masked)) in g.as_slice().iter().zip(m.as_slice()).enumerate() {
            if masked {
                prop_assert_eq!(gi, 0.0, "masked element {} has gradient {}", i, gi);
            }
        }
        check_op(
            op(|_, v| v[0].masked_fill(&m, f64::NEG_INFINITY).softmax(axis)),
            op(|_, v| v[0].masked_fill(&m, f32::NEG_INFINITY).softmax(axis)),
            &[x],
        )?;
    }

    #[test]
    fn where_cond_values_and_gradients((m, a, b) in where_case()) {
        let out_shape = broadcast_shape(&[m.shape(), a.shape(), b.shape()]);
        let want = build(&out_shape, |p| if at(&m, p) { at(&a, p) } else { at(&b, p) });
        let f = op::<f64, _>(|_, v| Var::where_cond(&m, v[0], v[1]));
        let (got, grads) = run(&f, &[a.clone(), b.clone()]);
        prop_assert_eq!(got, want);
        let g = seed::<f64>(&out_shape);
        let want_a = sum_to(a.shape(), &out_shape, |p| if at(&m, p) { g.get(p) } else { 0.0 });
        let want_b = sum_to(b.shape(), &out_shape, |p| if at(&m, p) { 0.0 } else { g.get(p) });
        assert_near("gradient of on_true", &grads[0], &want_a)?;
        assert_near("gradient of on_false", &grads[1], &want_b)?;
        check_op(
            op(|_, v| Var::where_cond(&m, v[0], v[1]).powi(3)),
            op(|_, v| Var::where_cond(&m, v[0], v[1]).powi(3)),
            &[a, b],
        )?;
    }

    #[test]
    fn where_cond_with_one_var_on_both_sides((m, a, _b) in where_case()) {
        // where(m, a, 2a) has gradient 1 where m holds and 2 elsewhere (summed over broadcast).
        let out_shape = broadcast_shape(&[m.shape(), a.shape()]);
        let f = op::<f64, _>(|_, v| Var::where_cond(&m, v[0], v[0] * 2.0));
        let (_, grads) = run(&f, std::slice::from_ref(&a));
        let g = seed::<f64>(&out_shape);
        let want = sum_to(a.shape(), &out_shape, |p| if at(&m, p) { g.get(p) } else { 2.0 * g.get(p) });
        assert_near("gradient", &grads[0], &want)?;
        check_op(
            op(|_, v| Var::where_cond(&m, v[0].powi(2), v[0] * 2.0) * v[0]),
            op(|_, v| Var::where_cond(&m, v[0].powi(2), v[0] * 2.0) * v[0]),
            &[a],
        )?;
    }

    #[test]
    fn tril_and_triu_values_and_gradients((x, k) in tri_case()) {
        for lower in [true, false] {
            let name = if lower { "tril" } else { "triu" };
            let want = build(x.shape(), |p| if kept(p, k, lower) { x.get(p) } else { 0.0 });
            let tape = Tape::<f64>::new();
            let v = tape.var(x.clone());
            let y = if lower { v.tril(k) } else { v.triu(k) };
            prop_assert_eq!(y.value(), want, "{} values", name);
            let grads = y.backward_with_seed(seed(x.shape()));
            let g = seed::<f64>(x.shape());
            let want_grad = build(x.shape(), |p| if kept(p, k, lower) { g.get(p) } else { 0.0 });
            prop_assert_eq!(&grads[v], &want_grad, "{} gradient", name);
        }
        // tril(k) + triu(k + 1) = x, exactly.
        let tape = Tape::<f64>::new();
        let v = tape.var(x.clone());
        prop_assert_eq!((v.tril(k) + v.triu(k + 1)).value(), x.clone());
        check_op(
            op(|_, v| v[0].tril(k).powi(3)),
            op(|_, v| v[0].tril(k).powi(3)),
            std::slice::from_ref(&x),
        )?;
        check_op(
            op(|_, v| v[0].triu(k).powi(3)),
            op(|_, v| v[0].triu(k).powi(3)),
            &[x],
        )?;
    }
}

// ---------------------------------------------------------------------------------------------
// Values PyTorch gives
// ---------------------------------------------------------------------------------------------

#[test]
fn index_select_matches_pytorch() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]));
    // x.index_select(1, torch.tensor([2, 0, 2])) = [[3, 1, 3], [6, 4, 6]]
    let y = x.index_select(1, &index(vec![2, 0, 2], &[3]));
    assert_eq!(
        (y.shape(), y.value().to_vec()),
        (vec![2, 3], vec![3., 1., 3., 6., 4., 6.])
    );
    // Column 2 is picked twice: its gradient is 2.
    assert_eq!(y.sum().backward()[x].to_vec(), vec![1., 0., 2., 1., 0., 2.]);
    let w = tape.constant(Tensor::from_vec(
        vec![1., 10., 100., 1000., 10000., 100000.],
        &[2, 3],
    ));
    assert_eq!(
        (y * w).sum().backward()[x].to_vec(),
        vec![10., 0., 101., 10000., 0., 101000.]
    );
    let r = x.index_select(0, &index(vec![1], &[1]));
    assert_eq!((r.shape(), r.value().to_vec()), (vec![1, 3], vec![4., 5., 6.]));
    assert_eq!(x.index_select(0, &Tensor::<usize>::arange(2)).value(), x.value());
    // An empty index gives an empty axis and a zero gradient.
    let e = x.index_select(1, &Tensor::<usize>::arange(0));
    assert_eq!(e.shape(), vec![2, 0]);
    let g = e.sum().backward();
    assert_eq!(
        g.wrt(x).cloned().unwrap_or_else(|| Tensor::zeros(&[2, 3])),
        Tensor::zeros(&[2, 3])
    );
    // An empty axis selected by an empty index.
    let z = zeros(&tape, &[0, 2]);
    assert_eq!(z.index_select(0, &Tensor::<usize>::arange(0)).shape(), vec![0, 2]);
}

#[test]
fn gather_matches_pytorch() {
    let tape = Tape::<f64>::new();
    // torch.gather(torch.tensor([[1., 2.], [3., 4.]]), 1, torch.tensor([[0, 0], [1, 0]]))
    //   = [[1, 1], [4, 3]]
    let t = tape.var(Tensor::from_vec(vec![1., 2., 3., 4.], &[2, 2]));
    let y = t.gather(1, &index(vec![0, 0, 1, 0], &[2, 2]));
    assert_eq!(y.value().to_vec(), vec![1., 1., 4., 3.]);
    assert_eq!(y.sum().backward()[t].to_vec(), vec![2., 0., 1., 1.]);
    // Along axis 0 with a smaller index: out shape = index shape.
    let x = tape.var(iota(&[3, 4]));
    let y = x.gather(0, &index(vec![2, 0, 1], &[1, 3]));
    assert_eq!((y.shape(), y.value().to_vec()), (vec![1, 3], vec![8., 1., 6.]));
    let y = x.gather(1, &index(vec![3, 3, 3, 0, 2], &[1, 5]));
    assert_eq!(
        (y.shape(), y.value().to_vec()),
        (vec![1, 5], vec![3., 3., 3., 0., 2.])
    );
    assert_eq!(
        y.sum().backward()[x].to_vec(),
        vec![1., 0., 1., 3., 0., 0., 0., 0., 0., 0., 0., 0.]
    );
    // An empty index.
    let e = x.gather(1, &index(vec![], &[3, 0]));
    assert_eq!(e.shape(), vec![3, 0]);
    assert_eq!(
        e.sum()
            .backward()
            .wrt(x)
            .map(|g| g.to_vec())
            .unwrap_or(vec![0.; 12]),
        vec![0.; 12]
    );
}

#[test]
fn scatter_add_matches_pytorch() {
    let tape = Tape::<f64>::new();
    // The example of torch.Tensor.scatter_add_'s documentation.
    let src = tape.var(Tensor::ones(&[2, 5]));
    let zeros35 = zeros(&tape, &[3, 5]);
    let y = zeros35.scatter_add(0, &index(vec![0, 1, 2, 0, 0], &[1, 5]), src);
    assert_eq!(
        y.value().to_vec(),
        vec![1., 0., 0., 1., 1., 0., 1., 0., 0., 0., 0., 0., 1., 0., 0.]
    );
    let idx = index(vec![0, 1, 2, 0, 0, 0, 1, 2, 2, 2], &[2, 5]);
    let y = zeros35.scatter_add(0, &idx, src);
    assert_eq!(
        y.value().to_vec(),
        vec![2., 0., 0., 1., 1., 0., 2., 0., 0., 0., 0., 0., 2., 1., 1.]
    );
    // Gradients: the seed for the base, the seed gathered at the index for src; src beyond the
    // index gets 0.
    let w = tape.constant(iota(&[3, 5]));
    let g = (y * w).sum().backward();
    assert_eq!(g[zeros35], iota(&[3, 5]));
    assert_eq!(g[src].to_vec(), vec![0., 6., 12., 3., 4., 0., 6., 12., 13., 14.]);
    let g = (zeros35.scatter_add(0, &index(vec![0, 1, 2, 0, 0], &[1, 5]), src) * w)
        .sum()
        .backward();
    assert_eq!(g[src].to_vec(), vec![0., 6., 12., 3., 4., 0., 0., 0., 0., 0.]);
    // Along the last axis, onto a non-zero base.
    let base = tape.var(Tensor::from_vec(vec![1., 2., 3.], &[1, 3]));
    let s = tape.var(Tensor::from_vec(vec![10., 20., 30., 40.], &[1, 4]));
    let y = base.scatter_add(1, &index(vec![2, 2, 0, 2], &[1, 4]), s);
    assert_eq!(y.value().to_vec(), vec![31., 2., 73.]);
    // An empty index leaves the base as it is.
    let y = base.scatter_add(1, &index(vec![], &[1, 0]), s);
    assert_eq!(y.value(), base.value());
}

#[test]
fn masked_fill_matches_pytorch() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![1., 2., 3., 4.], &[2, 2]));
    // A row mask broadcast over the rows.
    let y = x.masked_fill(&mask(vec![true, false], &[2]), -7.0);
    assert_eq!(y.value().to_vec(), vec![-7., 2., -7., 4.]);
    assert_eq!(y.sum().backward()[x].to_vec(), vec![0., 1., 0., 1.]);
    // A mask larger than x: the output takes the broadcast shape, the gradient sums back.
    let v = tape.var(Tensor::from_vec(vec![1., 2.], &[2]));
    let big = mask(vec![true, false, false, false, true, true], &[3, 2]);
    let y = v.masked_fill(&big, 0.5);
    assert_eq!(y.shape(), vec![3, 2]);
    assert_eq!(y.value().to_vec(), vec![0.5, 2., 1., 2., 0.5, 0.5]);
    assert_eq!(y.sum().backward()[v].to_vec(), vec![1., 2.]);
    // Scalars on either side.
    let s = tape.var(3.0);
    let y = s.masked_fill(&mask(vec![true, false, true], &[3]), 0.0);
    assert_eq!(y.value().to_vec(), vec![0., 3., 0.]);
    assert_eq!(y.sum().backward()[s].item(), 1.0);
    assert_eq!(
        x.masked_fill(&Tensor::from(true), 9.0).value().to_vec(),
        vec![9.; 4]
    );
    assert_eq!(x.masked_fill(&Tensor::from(false), 9.0).value(), x.value());
    let y = s.masked_fill(&Tensor::from(true), 1.0);
    assert_eq!((y.shape(), y.item()), (vec![], 1.0));
    // A mask from a comparison: masked_fill(x < 0, 0) is relu.
    let r = tape.var(Tensor::from_vec(vec![-1.5, 0.5, -0.25, 2.0], &[4]));
    let y = r.masked_fill(&r.value().lt(0.0), 0.0);
    assert_eq!(y.value().to_vec(), vec![0., 0.5, 0., 2.0]);
    assert_eq!(y.sum().backward()[r].to_vec(), vec![0., 1., 0., 1.]);
    // softmax([1, -inf, 3]) = [1 / (1 + e^2), 0, e^2 / (1 + e^2)].
    let t = tape.var(Tensor::from_vec(vec![1., 2., 3.], &[3]));
    let p = t
        .masked_fill(&mask(vec![false, true, false], &[3]), f64::NEG_INFINITY)
        .softmax(0)
        .value()
        .to_vec();
    let e2 = 2f64.exp();
    assert!((p[0] - 1. / (1. + e2)).abs() < 1e-15 && p[1] == 0.0, "{p:?}");
    assert!((p[2] - e2 / (1. + e2)).abs() < 1e-15, "{p:?}");
    // Empty tensors.
    let e = zeros(&tape, &[0, 2]);
    let y = e.masked_fill(&mask(vec![true, false], &[2]), 1.0);
    assert_eq!(y.shape(), vec![0, 2]);
    assert_eq!(y.sum().backward()[e].shape(), &[0, 2]);
}

#[test]
fn where_cond_matches_pytorch() {
    let tape = Tape::<f64>::new();
    let cond = mask(vec![true, false, false, true], &[2, 2]);
    let a = tape.var(Tensor::from_vec(vec![1., 2., 3., 4.], &[2, 2]));
    let b = tape.var(Tensor::from_vec(vec![10., 20.], &[2]));
    // torch.where(cond, a, b) = [[1, 20], [10, 4]]
    let y = Var::where_cond(&cond, a, b);
    assert_eq!(y.value().to_vec(), vec![1., 20., 10., 4.]);
    let w = tape.constant(Tensor::from_vec(vec![1., 2., 3., 4.], &[2, 2]));
    let g = (y * w).sum().backward();
    assert_eq!(g[a].to_vec(), vec![1., 0., 0., 4.]);
    assert_eq!(g[b].to_vec(), vec![3., 2.]);
    // Everything broadcasts: a [2, 1] mask, a [1, 3] and a scalar give [2, 3].
    let m = mask(vec![true, false], &[2, 1]);
    let row = tape.var(Tensor::from_vec(vec![1., 2., 3.], &[1, 3]));
    let s = tape.var(-1.0);
    let y = Var::where_cond(&m, row, s);
    assert_eq!(y.shape(), vec![2, 3]);
    assert_eq!(y.value().to_vec(), vec![1., 2., 3., -1., -1., -1.]);
    let g = y.sum().backward();
    assert_eq!((g[row].to_vec(), g[s].item()), (vec![1., 1., 1.], 3.0));
    // A scalar mask picks one side whole.
    let y = Var::where_cond(&Tensor::from(false), row, s);
    assert_eq!(y.value().to_vec(), vec![-1., -1., -1.]);
    let g = y.sum().backward();
    assert_eq!(g.wrt(row).map(|t| t.to_vec()).unwrap_or(vec![0.; 3]), vec![0.; 3]);
    // All scalars.
    let y = Var::where_cond(&Tensor::from(true), tape.var(2.0), s);
    assert_eq!((y.shape(), y.item()), (vec![], 2.0));
    // A mask from a comparison: where(x > 0, x, 0.1 x) is leaky_relu(0.1).
    let x = tape.var(Tensor::from_vec(vec![-2., 0.5, 3., -0.1], &[4]));
    let y = Var::where_cond(&x.value().gt(0.0), x, x * 0.1);
    assert_eq!(y.value(), x.leaky_relu(0.1).value());
    assert_eq!(y.sum().backward()[x].to_vec(), vec![0.1, 1.0, 1.0, 0.1]);
}

#[test]
fn tril_and_triu_match_pytorch() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_fn(&[3, 4], |i| i as f64 + 1.0));
    let tril = |k: i64| x.tril(k).value().to_vec();
    let triu = |k: i64| x.triu(k).value().to_vec();
    // torch.arange(1., 13.).reshape(3, 4).tril(k) / .triu(k)
    assert_eq!(tril(0), vec![1., 0., 0., 0., 5., 6., 0., 0., 9., 10., 11., 0.]);
    assert_eq!(tril(-1), vec![0., 0., 0., 0., 5., 0., 0., 0., 9., 10., 0., 0.]);
    assert_eq!(tril(1), vec![1., 2., 0., 0., 5., 6., 7., 0., 9., 10., 11., 12.]);
    assert_eq!(tril(-3), vec![0.; 12]);
    assert_eq!(tril(3), x.value().to_vec());
    assert_eq!(tril(100), x.value().to_vec());
    assert_eq!(triu(0), vec![1., 2., 3., 4., 0., 6., 7., 8., 0., 0., 11., 12.]);
    assert_eq!(triu(1), vec![0., 2., 3., 4., 0., 0., 7., 8., 0., 0., 0., 12.]);
    assert_eq!(triu(-1), vec![1., 2., 3., 4., 5., 6., 7., 8., 0., 10., 11., 12.]);
    assert_eq!(triu(4), vec![0.; 12]);
    assert_eq!(triu(-2), x.value().to_vec());
    assert_eq!(triu(-100), x.value().to_vec());
    // The gradient is the kept pattern.
    assert_eq!(
        x.tril(0).sum().backward()[x].to_vec(),
        vec![1., 0., 0., 0., 1., 1., 0., 0., 1., 1., 1., 0.]
    );
    // Batched: the pattern repeats over the leading axes.
    let b = tape.var(Tensor::ones(&[2, 2, 2]));
    assert_eq!(b.triu(0).value().to_vec(), vec![1., 1., 0., 1., 1., 1., 0., 1.]);
    assert_eq!(b.tril(-1).value().to_vec(), vec![0., 0., 1., 0., 0., 0., 1., 0.]);
    // Tall matrices and empty ones.
    let tall = tape.var(Tensor::ones(&[3, 1]));
    assert_eq!(tall.triu(-1).value().to_vec(), vec![1., 1., 0.]);
    assert_eq!(zeros(&tape, &[0, 3]).tril(0).shape(), vec![0, 3]);
    assert_eq!(zeros(&tape, &[2, 3, 0]).triu(1).shape(), vec![2, 3, 0]);
}

#[test]
fn causal_attention_with_tril_masks() {
    // A causal mask two ways: masked_fill of the upper triangle with -inf, and where_cond.
    let tape = Tape::<f64>::new();
    let scores = tape.var(Tensor::from_fn(&[3, 3], |i| (i as f64 * 0.7).sin()));
    let upper = Tensor::<f64>::ones(&[3, 3]).triu(1).gt(0.5);
    let a = scores.masked_fill(&upper, f64::NEG_INFINITY).softmax(1);
    let lower = Tensor::<f64>::ones(&[3, 3]).tril(0).gt(0.5);
    let minus = tape.constant(Tensor::full(&[3, 3], f64::NEG_INFINITY));
    let b = Var::where_cond(&lower, scores, minus).softmax(1);
    assert_eq!(a.value(), b.value());
    let p = a.value().to_vec();
    assert_eq!((p[0], p[1], p[2], p[5]), (1.0, 0.0, 0.0, 0.0));
    let ga = (a * tape.constant(iota(&[3, 3]))).sum().backward()[scores].clone();
    let gb = (b * tape.constant(iota(&[3, 3]))).sum().backward()[scores].clone();
    assert!(ga.all_finite() && ga == gb, "{ga:?} vs {gb:?}");
    assert_eq!(
        (ga.get(&[0, 0]), ga.get(&[0, 1]), ga.get(&[1, 2])),
        (0.0, 0.0, 0.0)
    );
}

// ---------------------------------------------------------------------------------------------
// Large tensors: the threaded paths
// ---------------------------------------------------------------------------------------------

#[test]
fn large_tensors_agree_with_naive_loops_whatever_the_split() {
    // 3 × 301 × 347 = 313,341 elements: above the size where the mask kernels split the work;
    // odd sizes so that the pieces are uneven. 3 threads, then the default.
    let shape = [3, 301, 347];
    let n: usize = shape.iter().product();
    let x = Tensor::<f32>::from_fn(&shape, |i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0);
    let w = Tensor::<f32>::from_fn(&shape, |i| (i % 7) as f32 - 3.0);
    let full = Tensor::<bool>::from_vec((0..n).map(|i| (i * 31) % 11 < 4).collect(), &shape);
    let plane = Tensor::<bool>::from_vec((0..301 * 347).map(|i| i % 3 == 0).collect(), &[301, 347]);
    let row = Tensor::<f32>::from_fn(&[347], |j| j as f32);
    for threads in [3, 0] {
        tapegrad::set_num_threads(threads);
        let tape = Tape::<f32>::new();
        let v = tape.var(x.clone());
        let wc = tape.constant(w.clone());
        let (xs, ws) = (x.as_slice(), w.as_slice());
        // masked_fill, with a mask of x's shape and with a broadcast one.
        for (label, m) in [("full mask", &full), ("broadcast mask", &plane)] {
            let masked = |i: usize| {
                if m.rank() == 3 {
                    m.as_slice()[i]
                } else {
                    m.as_slice()[i % (301 * 347)]
                }
            };
            let y = v.masked_fill(m, 2.5);
            let want: Vec<f32> = (0..n).map(|i| if masked(i) { 2.5 } else { xs[i] }).collect();
            assert_eq!(
                y.value().to_vec(),
                want,
                "masked_fill, {label}, {threads} threads"
            );
            let g = (y * wc).sum().backward();
            let want: Vec<f32> = (0..n).map(|i| if masked(i) { 0.0 } else { ws[i] }).collect();
            assert_eq!(
                g[v].to_vec(),
                want,
                "masked_fill backward, {label}, {threads} threads"
            );
        }
        // where_cond against a broadcast row.
        let r = tape.var(row.clone());
        let y = Var::where_cond(&full, v, r);
        let fs = full.as_slice();
        let want: Vec<f32> = (0..n)
            .map(|i| if fs[i] { xs[i] } else { (i % 347) as f32 })
            .collect();
        assert_eq!(y.value().to_vec(), want, "where_cond, {threads} threads");
        let g = (y * wc).sum().backward();
        let want: Vec<f32> = (0..n).map(|i| if fs[i] { ws[i] } else { 0.0 }).collect();
        assert_eq!(g[v].to_vec(), want, "where_cond backward, {threads} threads");
        let mut want_row = vec![0.0f64; 347];
        for i in (0..n).filter(|&i| !fs[i]) {
            want_row[i % 347] += f64::from(ws[i]);
        }
        for (j, (&got, want)) in g[r].as_slice().iter().zip(want_row).enumerate() {
            assert!(
                (f64::from(got) - want).abs() <= 1e-3,
                "where_cond row gradient {j}: {got} vs {want}"
            );
        }
        // tril and triu over a stack of 3 matrices.
        for k in [-7i64, 0, 5] {
            let keep = |i: usize, lower: bool| {
                let (r, c) = ((i / 347) % 301, i % 347);
                let offset = c as i64 - r as i64;
                if lower { offset <= k } else { offset >= k }
            };
            for lower in [true, false] {
                let y = if lower { v.tril(k) } else { v.triu(k) };
                let want: Vec<f32> = (0..n).map(|i| if keep(i, lower) { xs[i] } else { 0.0 }).collect();
                assert_eq!(
                    y.value().to_vec(),
                    want,
                    "tril/triu {k} (lower: {lower}), {threads} threads"
                );
                let g = (y * wc).sum().backward();
                let want: Vec<f32> = (0..n).map(|i| if keep(i, lower) { ws[i] } else { 0.0 }).collect();
                assert_eq!(g[v].to_vec(), want, "tril/triu {k} backward, {threads} threads");
            }
        }
        // gather and index_select along the middle axis, with repeats.
        let idx = Tensor::<usize>::from_vec(
            (0..3 * 500 * 347).map(|i| (i * 13) % 301).collect(),
            &[3, 500, 347],
        );
        let y = v.gather(1, &idx).value();
        let is = idx.as_slice();
        let want: Vec<f32> = (0..3 * 500 * 347)
            .map(|i| xs[(i / (500 * 347)) * 301 * 347 + is[i] * 347 + i % 347])
            .collect();
        assert_eq!(y.to_vec(), want, "gather, {threads} threads");
        let sel = Tensor::<usize>::from_vec((0..400).map(|j| (j * 7) % 301).collect(), &[400]);
        let y = v.index_select(1, &sel).value();
        let ss = sel.as_slice();
        let want: Vec<f32> = (0..3 * 400 * 347)
            .map(|i| xs[(i / (400 * 347)) * 301 * 347 + ss[(i / 347) % 400] * 347 + i % 347])
            .collect();
        assert_eq!(y.to_vec(), want, "index_select, {threads} threads");
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn indices_out_of_range_name_the_op_the_axis_the_index_and_the_length() {
    assert_panics("index_select", &["index_select", "9", "axis 1", "5"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[2, 5]).index_select(1, &index(vec![0, 9], &[2]));
    });
    assert_panics(
        "index_select on axis 0",
        &["index_select", "7", "axis 0", "3"],
        || {
            let tape = Tape::<f64>::new();
            let _ = zeros(&tape, &[3, 2]).index_select(0, &index(vec![7], &[1]));
        },
    );
    // Any index into an empty axis is out of range.
    assert_panics(
        "index_select of an empty axis",
        &["index_select", "axis 1", "0"],
        || {
            let tape = Tape::<f64>::new();
            let _ = zeros(&tape, &[2, 0]).index_select(1, &index(vec![0], &[1]));
        },
    );
    assert_panics("gather", &["gather", "9", "axis 1", "5"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[2, 5]).gather(1, &index(vec![0, 9], &[1, 2]));
    });
    // gather checks its entries as it reads them: along other axes, into an empty axis, on
    // threads, and on plain tensors, with the position of the first bad entry.
    assert_panics(
        "gather on axis 0",
        &["gather", "4", "[0, 1]", "axis 0", "3"],
        || {
            let tape = Tape::<f64>::new();
            let _ = zeros(&tape, &[3, 2]).gather(0, &index(vec![1, 4, 2, 2], &[2, 2]));
        },
    );
    assert_panics("gather of an empty axis", &["gather", "axis 1", "0"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[2, 0]).gather(1, &index(vec![0], &[1, 1]));
    });
    assert_panics(
        "gather of a large index",
        &["gather", "600", "[700, 3]", "axis 1"],
        || {
            tapegrad::set_num_threads(2);
            let mut entries = vec![0; 1000 * 600];
            entries[700 * 600 + 3] = 600;
            let _ = Tensor::<f32>::zeros(&[1000, 600]).gather(1, &index(entries, &[1000, 600]));
        },
    );
    assert_panics("scatter_add", &["scatter_add", "7", "axis 1", "5"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[2, 5]).scatter_add(1, &index(vec![7], &[1, 1]), zeros(&tape, &[1, 1]));
    });
    assert_panics(
        "scatter_add on axis 0",
        &["scatter_add", "4", "axis 0", "2"],
        || {
            let tape = Tape::<f64>::new();
            let _ = zeros(&tape, &[2, 5]).scatter_add(0, &index(vec![0, 4], &[2, 1]), zeros(&tape, &[2, 1]));
        },
    );
}

#[test]
fn index_shapes_that_do_not_fit_name_the_op_and_the_shapes() {
    // index_select takes a 1-D index.
    assert_panics(
        "index_select with a 2-D index",
        &["index_select", "[1, 2]"],
        || {
            let tape = Tape::<f64>::new();
            let _ = zeros(&tape, &[2, 5]).index_select(1, &index(vec![0, 1], &[1, 2]));
        },
    );
    // gather: the index has x's rank ...
    assert_panics("gather with a 1-D index", &["gather", "[2, 5]", "[3]"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[2, 5]).gather(1, &index(vec![0, 1, 2], &[3]));
    });
    // ... and is no larger than x along the other axes.
    assert_panics(
        "gather with a tall index",
        &["gather", "[2, 5]", "[3, 1]"],
        || {
            let tape = Tape::<f64>::new();
            let _ = zeros(&tape, &[2, 5]).gather(1, &index(vec![0, 1, 2], &[3, 1]));
        },
    );
    // scatter_add: src at least as large as the index along every axis.
    assert_panics(
        "scatter_add with a small src",
        &["scatter_add", "[1, 2]", "[1, 1]"],
        || {
            let tape = Tape::<f64>::new();
            let _ = zeros(&tape, &[2, 5]).scatter_add(1, &index(vec![0, 1], &[1, 2]), zeros(&tape, &[1, 1]));
        },
    );
    assert_panics(
        "scatter_add with a tall index",
        &["scatter_add", "[2, 5]", "[3, 1]"],
        || {
            let tape = Tape::<f64>::new();
            let _ =
                zeros(&tape, &[2, 5]).scatter_add(1, &index(vec![0, 1, 2], &[3, 1]), zeros(&tape, &[3, 1]));
        },
    );
    assert_panics(
        "scatter_add with an index of another rank",
        &["scatter_add", "[2, 5]", "[2]"],
        || {
            let tape = Tape::<f64>::new();
            let _ = zeros(&tape, &[2, 5]).scatter_add(1, &index(vec![0, 1], &[2]), zeros(&tape, &[2]));
        },
    );
}

#[test]
fn masks_that_do_not_broadcast_name_the_op_and_both_shapes() {
    assert_panics("masked_fill", &["masked_fill", "[2, 3]", "[2]"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[2, 3]).masked_fill(&mask(vec![true, false], &[2]), 0.0);
    });
    assert_panics(
        "masked_fill with a larger mask",
        &["masked_fill", "[4]", "[2, 3]"],
        || {
            let tape = Tape::<f64>::new();
            let _ = zeros(&tape, &[4]).masked_fill(&mask(vec![true; 6], &[2, 3]), 0.0);
        },
    );
    // on_true and on_false broadcast together ([4, 1]), the mask does not.
    assert_panics(
        "where_cond: the mask against the values",
        &["where_cond", "[2, 3]", "[4, 1]"],
        || {
            let tape = Tape::<f64>::new();
            let _ = Var::where_cond(
                &mask(vec![true; 6], &[2, 3]),
                zeros(&tape, &[4, 1]),
                zeros(&tape, &[1]),
            );
        },
    );
    assert_panics(
        "where_cond: on_true against on_false",
        &["where_cond", "[3]", "[4]"],
        || {
            let tape = Tape::<f64>::new();
            let _ = Var::where_cond(&mask(vec![true], &[1]), zeros(&tape, &[3]), zeros(&tape, &[4]));
        },
    );
}

#[test]
fn bad_axes_name_the_op_the_axis_and_the_shape() {
    assert_panics("index_select", &["index_select", "2", "[2, 3]"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[2, 3]).index_select(2, &index(vec![0], &[1]));
    });
    assert_panics("gather", &["gather", "3", "[2, 4]"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[2, 4]).gather(3, &index(vec![0], &[1, 1]));
    });
    assert_panics("scatter_add", &["scatter_add", "2", "[3, 4]"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[3, 4]).scatter_add(2, &index(vec![0], &[1, 1]), zeros(&tape, &[1, 1]));
    });
    assert_panics("index_select of a scalar", &["index_select", "[]"], || {
        let tape = Tape::<f64>::new();
        let _ = tape.var(1.0).index_select(1, &index(vec![0], &[1]));
    });
}

#[test]
#[should_panic(expected = "tril")]
fn tril_of_a_vector_panics() {
    let tape = Tape::<f64>::new();
    let _ = zeros(&tape, &[4]).tril(0);
}

#[test]
fn tril_and_triu_below_rank_two_name_the_op_and_the_shape() {
    assert_panics("tril of rank 1", &["tril", "[4]"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[4]).tril(0);
    });
    assert_panics("triu of rank 1", &["triu", "[3]"], || {
        let tape = Tape::<f64>::new();
        let _ = zeros(&tape, &[3]).triu(-1);
    });
    assert_panics("tril of a scalar", &["tril", "[]"], || {
        let tape = Tape::<f64>::new();
        let _ = tape.var(1.0).tril(1);
    });
    assert_panics("triu of a scalar", &["triu", "[]"], || {
        let tape = Tape::<f64>::new();
        let _ = tape.var(1.0).triu(0);
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
    let cases: [Case; 9] = [
        ("index_select", |x| _ = x.index_select(1, &index(vec![3], &[1]))),
        ("gather", |x| _ = x.gather(0, &index(vec![5], &[1, 1]))),
        ("gather shape", |x| _ = x.gather(0, &index(vec![0], &[1]))),
        ("scatter_add", |x| {
            _ = x.scatter_add(1, &index(vec![4], &[1, 1]), x)
        }),
        ("masked_fill", |x| {
            _ = x.masked_fill(&mask(vec![true; 2], &[2]), 0.0)
        }),
        ("where_cond", |x| {
            _ = Var::where_cond(&mask(vec![true; 4], &[4]), x, x)
        }),
        ("tril", |x| _ = x.sum_axis(0, false).tril(0)),
        ("triu", |x| _ = x.sum().triu(0)),
        ("index_select axis", |x| {
            _ = x.index_select(2, &index(vec![0], &[1]))
        }),
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
            (Err(_), Some(file)) if file.ends_with("ops2_index.rs") => {}
            (_, site) => wrong.push(format!("{name}: {site:?}")),
        }
    }
    std::panic::set_hook(previous);
    assert!(wrong.is_empty(), "panics not at the caller's line: {wrong:?}");
}
