//! Masks and indices: comparisons giving `Tensor<bool>`, logical operations, counts, conversions,
//! `arange`, `argmax_axis`/`argmin_axis` giving `Tensor<usize>`, their display, and
//! cross-entropy with `Tensor<usize>` targets.
//!
//! The property tests compare every op with a naive elementwise implementation (multi-index by
//! multi-index, NumPy's broadcasting rule written out) over random broadcastable shapes, with
//! values drawn from a small set so that ties, NaN and infinities are frequent.

// References are passed on purpose where a value would do, to exercise the `&Var` and `&Tensor`
// forms of the other operand.
#![allow(clippy::needless_borrows_for_generic_args)]

use std::panic::{AssertUnwindSafe, catch_unwind};

use proptest::collection::vec;
use proptest::prelude::*;
use tapegrad::{Tape, Tensor, Var, loss};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Naive reference: NumPy broadcasting written out
// ---------------------------------------------------------------------------------------------

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// The broadcast shape, by NumPy's rule, or `None`.
fn naive_broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| {
        if i < rank - s.len() {
            1
        } else {
            s[i - (rank - s.len())]
        }
    };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// The multi-index of flat position `flat` in `shape`.
fn unflatten(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        index[d] = flat % shape[d];
        flat /= shape[d];
    }
    index
}

/// The element of `t` that broadcasting reads at output multi-index `out_index`.
fn read_broadcast<T: tapegrad::Element>(t: &Tensor<T>, out_index: &[usize]) -> T {
    let lead = out_index.len() - t.rank();
    let index: Vec<usize> = t
        .shape()
        .iter()
        .enumerate()
        .map(|(d, &n)| if n == 1 { 0 } else { out_index[lead + d] })
        .collect();
    t.get(&index)
}

/// `f` of `a` and `b` broadcast together, element by element.
fn naive_zip<A: tapegrad::Element, B: tapegrad::Element, R: tapegrad::Element>(
    a: &Tensor<A>,
    b: &Tensor<B>,
    f: impl Fn(A, B) -> R,
) -> (Vec<usize>, Vec<R>) {
    let shape = naive_broadcast(a.shape(), b.shape()).expect("broadcastable shapes");
    let values = (0..numel(&shape))
        .map(|i| {
            let index = unflatten(i, &shape);
            f(read_broadcast(a, &index), read_broadcast(b, &index))
        })
        .collect();
    (shape, values)
}

/// The first index along `axis` of the maximum (`max`) or minimum, NaN winning, by a loop over
/// every output position.
fn naive_arg(t: &Tensor<f64>, axis: usize, keepdim: bool, max: bool) -> (Vec<usize>, Vec<usize>) {
    let mut out_shape = t.shape().to_vec();
    out_shape[axis] = 1;
    let values = (0..numel(&out_shape))
        .map(|i| {
            let mut index = unflatten(i, &out_shape);
            let mut arg = 0;
            let mut best = t.get(&index);
            for j in 1..t.shape()[axis] {
                index[axis] = j;
                let v = t.get(&index);
                if best.is_nan() {
                    break;
                }
                let beats = if max { v > best } else { v < best };
                if v.is_nan() || beats {
                    arg = j;
                    best = v;
                }
            }
            arg
        })
        .collect();
    if !keepdim {
        out_shape.remove(axis);
    }
    (out_shape, values)
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// An output shape of rank 0 to 4, axes of size 0 to 3 (0 rarely).
fn out_shape() -> impl Strategy<Value = Vec<usize>> {
    vec(prop_oneof![1 => Just(0usize), 8 => 1usize..=3], 0..=4)
}

/// A shape that broadcasts to `out`: a suffix of it with some axes replaced by 1.
fn broadcasting_to(out: Vec<usize>) -> impl Strategy<Value = Vec<usize>> {
    let rank = out.len();
    (0..=rank, vec(any::<bool>(), rank)).prop_map(move |(r, ones)| {
        out[rank - r..]
            .iter()
            .zip(&ones[rank - r..])
            .map(|(&d, &one)| if one { 1 } else { d })
            .collect()
    })
}

/// Two shapes that broadcast together (in either order, to `out`).
fn broadcastable_shapes() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    out_shape().prop_flat_map(|out| (broadcasting_to(out.clone()), broadcasting_to(out)))
}

/// Small integers (so that equal values are frequent), NaN and infinities.
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        12 => (-2i32..=2).prop_map(f64::from),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        2 => -3.0..3.0f64,
    ]
}

fn float_tensor(shape: Vec<usize>) -> impl Strategy<Value = Tensor<f64>> {
    vec(value(), numel(&shape)).prop_map(move |v| Tensor::from_vec(v, &shape))
}

fn bool_tensor(shape: Vec<usize>) -> impl Strategy<Value = Tensor<bool>> {
    vec(any::<bool>(), numel(&shape)).prop_map(move |v| Tensor::from_vec(v, &shape))
}

fn float_pair() -> impl Strategy<Value = (Tensor<f64>, Tensor<f64>)> {
    broadcastable_shapes().prop_flat_map(|(a, b)| (float_tensor(a), float_tensor(b)))
}

fn bool_pair() -> impl Strategy<Value = (Tensor<bool>, Tensor<bool>)> {
    broadcastable_shapes().prop_flat_map(|(a, b)| (bool_tensor(a), bool_tensor(b)))
}

/// A tensor of rank 1 to 4 and an axis of it that is not empty (other axes may be).
fn reduction_case() -> impl Strategy<Value = (Tensor<f64>, usize, bool)> {
    vec(prop_oneof![1 => Just(0usize), 8 => 1usize..=4], 1..=4)
        .prop_flat_map(|shape| {
            let rank = shape.len();
            (Just(shape), 0..rank, 1usize..=5, any::<bool>())
        })
        .prop_flat_map(|(mut shape, axis, len, keepdim)| {
            shape[axis] = len;
            (float_tensor(shape), Just(axis), Just(keepdim))
        })
}

/// Bitwise equality of floats (NaN equal to NaN), for comparing converted results.
fn same_floats(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// The message of the panic `f` raises.
fn panic_message(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

type Comparison = (
    &'static str,
    fn(&Tensor<f64>, &Tensor<f64>) -> Tensor<bool>,
    fn(f64, f64) -> bool,
);

/// Each comparison, with its tensor method and its scalar meaning.
fn comparisons() -> [Comparison; 6] {
    [
        ("lt", |a, b| a.lt(b), |x, y| x < y),
        ("le", |a, b| a.le(b), |x, y| x <= y),
        ("gt", |a, b| a.gt(b), |x, y| x > y),
        ("ge", |a, b| a.ge(b), |x, y| x >= y),
        ("equal", |a, b| a.equal(b), |x, y| x == y),
        ("not_equal", |a, b| a.not_equal(b), |x, y| x != y),
    ]
}

/// The same comparisons of vars, against a var.
fn var_comparison<'t>(name: &str, x: Var<'t, f64>, y: Var<'t, f64>) -> Tensor<bool> {
    match name {
        "lt" => x.lt(y),
        "le" => x.le(y),
        "gt" => x.gt(y),
        "ge" => x.ge(y),
        "equal" => x.equal(y),
        "not_equal" => x.not_equal(y),
        _ => unreachable!(),
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

/// An op's name, its result and the rule it should follow element by element.
type LogicalCase = (&'static str, Tensor<bool>, fn(bool, bool) -> bool);

proptest! {
    #![proptest_config(config())]

    #[test]
    fn comparisons_match_naive_broadcasting((a, b) in float_pair()) {
        for (name, method, scalar) in comparisons() {
            let got = method(&a, &b);
            let (shape, want) = naive_zip(&a, &b, scalar);
            prop_assert_eq!(got.shape(), &shape[..], "{} of {:?} and {:?}", name, a.shape(), b.shape());
            prop_assert_eq!(got.to_vec(), want, "{}", name);
            // Reversed operands broadcast to the same shape.
            let (shape, want) = naive_zip(&b, &a, scalar);
            let got = method(&b, &a);
            prop_assert_eq!(got.shape(), &shape[..]);
            prop_assert_eq!(got.to_vec(), want, "{} reversed", name);
        }
    }

    #[test]
    fn comparisons_in_f32_match_naive((a, b) in float_pair()) {
        let (a32, b32) = (a.cast::<f32>(), b.cast::<f32>());
        // Against the f32 values themselves: two uniform draws may round to one f32.
        let (_, want) = naive_zip(&a32, &b32, |x, y| x < y);
        prop_assert_eq!(a32.lt(&b32).to_vec(), want);
        let (_, want) = naive_zip(&a32, &b32, |x, y| x != y);
        prop_assert_eq!(a32.not_equal(b32).to_vec(), want);
    }

    #[test]
    fn comparisons_with_a_scalar_match_naive(a in out_shape().prop_flat_map(float_tensor), s in value()) {
        let scalar = Tensor::scalar(s);
        for (name, method, f) in comparisons() {
            let (shape, want) = naive_zip(&a, &scalar, f);
            let got = method(&a, &scalar);
            prop_assert_eq!(got.shape(), &shape[..]);
            prop_assert_eq!(got.to_vec(), want, "{} with {}", name, s);
        }
        // The scalar itself (not a tensor) as the other operand.
        let (_, want) = naive_zip(&a, &scalar, |x, y| x >= y);
        prop_assert_eq!(a.ge(s).to_vec(), want);
        let (_, want) = naive_zip(&scalar, &a, |x, y| x < y);
        prop_assert_eq!(scalar.lt(&a).to_vec(), want);
    }

    #[test]
    fn var_comparisons_equal_tensor_comparisons_and_record_nothing((a, b) in float_pair()) {
        let tape = Tape::<f64>::new();
        let (x, y) = (tape.var(a.clone()), tape.var(b.clone()));
        let nodes = tape.len();
        for (name, method, _) in comparisons() {
            let want = method(&a, &b);
            prop_assert_eq!(&var_comparison(name, x, y), &want, "{}", name);
        }
        prop_assert_eq!(x.lt(&y), a.lt(&b));
        prop_assert_eq!(x.gt(&b), a.gt(&b));
        prop_assert_eq!(x.le(b.clone()), a.le(&b));
        prop_assert_eq!(x.not_equal(0.5), a.not_equal(0.5));
        prop_assert_eq!(x.isnan(), a.isnan());
        prop_assert_eq!(x.isfinite(), a.isfinite());
        prop_assert_eq!(tape.len(), nodes, "comparisons must not record nodes");
    }

    #[test]
    fn logical_ops_match_naive_broadcasting((a, b) in bool_pair()) {
        let ops: [LogicalCase; 3] = [
            ("logical_and", a.logical_and(&b), |x, y| x && y),
            ("logical_or", a.logical_or(&b), |x, y| x || y),
            ("logical_xor", a.logical_xor(&b), |x, y| x != y),
        ];
        for (name, got, f) in ops {
            let (shape, want) = naive_zip(&a, &b, f);
            prop_assert_eq!(got.shape(), &shape[..], "{}", name);
            prop_assert_eq!(got.to_vec(), want, "{}", name);
        }
        prop_assert_eq!(&a & &b, a.logical_and(&b));
        prop_assert_eq!(&a | &b, a.logical_or(&b));
        prop_assert_eq!(&a ^ &b, a.logical_xor(&b));
        prop_assert_eq!(a.clone() & b.clone(), a.logical_and(&b));
        prop_assert_eq!(a.clone() | b.clone(), a.logical_or(&b));
        prop_assert_eq!(a.clone() ^ b.clone(), a.logical_xor(&b));
        let not: Vec<bool> = a.as_slice().iter().map(|&x| !x).collect();
        prop_assert_eq!(a.logical_not().shape().to_vec(), a.shape().to_vec());
        prop_assert_eq!(a.logical_not().to_vec(), not.clone());
        prop_assert_eq!((!&a).to_vec(), not.clone());
        prop_assert_eq!((!a.clone()).to_vec(), not);
        // Comparisons of masks: false < true.
        let (_, want) = naive_zip(&a, &b, |x, y| !x & y);
        prop_assert_eq!(a.lt(&b).to_vec(), want);
    }

    #[test]
    fn count_any_all_and_to_float_match_naive(a in out_shape().prop_flat_map(bool_tensor)) {
        let trues = a.as_slice().iter().filter(|&&x| x).count();
        prop_assert_eq!(a.count(), trues);
        prop_assert_eq!(a.any(), trues > 0);
        prop_assert_eq!(a.all(), trues == a.numel());
        let f = a.to_float::<f64>();
        prop_assert_eq!(f.shape(), a.shape());
        let want: Vec<f64> = a.as_slice().iter().map(|&x| if x { 1.0 } else { 0.0 }).collect();
        prop_assert_eq!(f.to_vec(), want.clone());
        let f32s: Vec<f32> = want.iter().map(|&x| x as f32).collect();
        prop_assert_eq!(a.to_float::<f32>().to_vec(), f32s);
    }

    #[test]
    fn special_value_masks_match_naive(a in out_shape().prop_flat_map(float_tensor)) {
        let each = |f: fn(f64) -> bool| a.as_slice().iter().map(|&x| f(x)).collect::<Vec<_>>();
        prop_assert_eq!(a.isnan().to_vec(), each(f64::is_nan));
        prop_assert_eq!(a.isfinite().to_vec(), each(f64::is_finite));
        prop_assert_eq!(a.isinf().to_vec(), each(f64::is_infinite));
        prop_assert_eq!(a.isnan().shape().to_vec(), a.shape().to_vec());
        prop_assert_eq!(a.cast::<f32>().isinf().to_vec(), each(f64::is_infinite));
    }

    #[test]
    fn argmax_and_argmin_match_naive_loops((t, axis, keepdim) in reduction_case()) {
        let (shape, want) = naive_arg(&t, axis, keepdim, true);
        let got = t.argmax_axis(axis, keepdim);
        prop_assert_eq!(got.shape(), &shape[..]);
        prop_assert_eq!(got.to_vec(), want.clone());
        prop_assert_eq!(t.cast::<f32>().argmax_axis(axis, keepdim).to_vec(), want.clone());
        let (shape, want_min) = naive_arg(&t, axis, keepdim, false);
        let got = t.argmin_axis(axis, keepdim);
        prop_assert_eq!(got.shape(), &shape[..]);
        prop_assert_eq!(got.to_vec(), want_min.clone());
        // On vars: the same indices, no node recorded.
        let tape = Tape::<f64>::new();
        let x = tape.var(t.clone());
        let nodes = tape.len();
        prop_assert_eq!(x.argmax_axis(axis, keepdim).to_vec(), want);
        prop_assert_eq!(x.argmin_axis(axis, keepdim).to_vec(), want_min);
        prop_assert_eq!(tape.len(), nodes);
    }

    #[test]
    fn argmax_of_distinct_values_picks_the_max(t in vec(-5.0..5.0f64, 1..=12)) {
        let n = t.len();
        let x = Tensor::from_vec(t.clone(), &[1, n]);
        let arg = x.argmax_axis(1, false).item();
        prop_assert!(t.iter().all(|&v| v <= t[arg]));
        let arg = x.argmin_axis(1, false).item();
        prop_assert!(t.iter().all(|&v| v >= t[arg]));
    }

    #[test]
    fn arange_lists_the_indices(start in 0usize..20, len in 0usize..20) {
        let a = Tensor::<usize>::arange(len);
        prop_assert_eq!(a.shape(), &[len][..]);
        prop_assert_eq!(a.to_vec(), (0..len).collect::<Vec<_>>());
        let r = Tensor::<usize>::arange_from(start, start + len);
        prop_assert_eq!(r.shape(), &[len][..]);
        prop_assert_eq!(r.to_vec(), (start..start + len).collect::<Vec<_>>());
        let want: Vec<f64> = (start..start + len).map(|i| i as f64).collect();
        prop_assert!(same_floats(&r.to_float::<f64>().to_vec(), &want));
    }

    #[test]
    fn cross_entropy_with_tensor_targets_equals_slice_targets(
        (rows, classes) in (1usize..5, 1usize..5),
        seed in any::<u64>(),
    ) {
        let logits: Vec<f64> = (0..rows * classes)
            .map(|i| ((i as u64).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f64 / 100.0 - 5.0)
            .collect();
        let targets: Vec<usize> = (0..rows).map(|i| (seed as usize).wrapping_add(i * 7) % classes).collect();
        let tensor_targets = Tensor::<usize>::from(targets.clone());
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::from_vec(logits, &[rows, classes]));
        let by_slice = loss::cross_entropy(x, &targets[..]);
        let by_tensor = loss::cross_entropy(x, &tensor_targets);
        prop_assert_eq!(by_slice.item().to_bits(), by_tensor.item().to_bits());
        prop_assert_eq!(&by_slice.backward()[x], &by_tensor.backward()[x]);
        let lp = x.log_softmax(1);
        prop_assert_eq!(loss::nll(lp, &targets).item(), loss::nll(lp, &tensor_targets).item());
        let cfg = loss::CrossEntropyConfig { label_smoothing: 0.1 };
        prop_assert_eq!(
            loss::cross_entropy_with(x, &targets, cfg).item(),
            loss::cross_entropy_with(x, &tensor_targets, cfg).item()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Exact values (PyTorch's results)
// ---------------------------------------------------------------------------------------------

#[test]
fn comparisons_follow_ieee_for_nan_as_pytorch() {
    // torch.tensor([1., nan, 3.]) against torch.tensor([1., nan, 2.])
    let a = Tensor::<f64>::from(vec![1.0, f64::NAN, 3.0]);
    let b = Tensor::<f64>::from(vec![1.0, f64::NAN, 2.0]);
    assert_eq!(a.lt(&b).to_vec(), vec![false, false, false]);
    assert_eq!(a.le(&b).to_vec(), vec![true, false, false]);
    assert_eq!(a.gt(&b).to_vec(), vec![false, false, true]);
    assert_eq!(a.ge(&b).to_vec(), vec![true, false, true]);
    assert_eq!(a.equal(&b).to_vec(), vec![true, false, false]);
    assert_eq!(a.not_equal(&b).to_vec(), vec![false, true, true]);
    // torch.tensor([[1.], [2.]]) > torch.tensor([0., 1.5, 3.])
    let col = Tensor::<f32>::from_vec(vec![1.0, 2.0], &[2, 1]);
    let row = Tensor::<f32>::from(vec![0.0, 1.5, 3.0]);
    let m = col.gt(&row);
    assert_eq!(m.shape(), &[2, 3]);
    assert_eq!(m.to_vec(), vec![true, false, false, true, true, false]);
    // Rank 0 with rank 0 stays rank 0.
    let s = Tensor::<f64>::scalar(1.0).lt(2.0);
    assert_eq!((s.shape(), s.item()), (&[][..], true));
    // Empty tensors compare to empty masks of the broadcast shape.
    let e = Tensor::<f64>::zeros(&[0, 3]).lt(&Tensor::zeros(&[3]));
    assert_eq!(e.shape(), &[0, 3]);
}

#[test]
fn index_tensors_compare_like_accuracy_in_pytorch() {
    // (pred.argmax(1) == y).sum()
    let logits = Tensor::<f32>::from_vec(vec![0.1, 0.9, 0.8, 0.2, 0.3, 0.7], &[3, 2]);
    let labels = Tensor::<usize>::from(vec![1, 1, 1]);
    let correct = logits.argmax_axis(1, false).equal(&labels);
    assert_eq!(correct.to_vec(), vec![true, false, true]);
    assert_eq!(correct.count(), 2);
    assert_eq!(correct.to_float::<f32>().mean().item(), 2.0 / 3.0);
    assert_eq!(
        Tensor::<usize>::arange(4).ge(2).to_vec(),
        vec![false, false, true, true]
    );
}

#[test]
fn argmax_and_argmin_match_pytorch() {
    // torch.tensor([[1., 3., 3.], [nan, 2., nan], [0., -inf, -inf]]).argmax(1) = [1, 0, 0]
    let t = Tensor::<f64>::from_vec(
        vec![
            1.0,
            3.0,
            3.0,
            f64::NAN,
            2.0,
            f64::NAN,
            0.0,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ],
        &[3, 3],
    );
    assert_eq!(t.argmax_axis(1, false).to_vec(), vec![1, 0, 0]);
    // .argmin(1) = [0, 0, 1]
    assert_eq!(t.argmin_axis(1, false).to_vec(), vec![0, 0, 1]);
    // .argmax(0) = [1, 0, 1], .argmin(0, keepdim=True) = [[1, 2, 1]]
    assert_eq!(t.argmax_axis(0, false).to_vec(), vec![1, 0, 1]);
    let m = t.argmin_axis(0, true);
    assert_eq!((m.shape(), m.to_vec()), (&[1, 3][..], vec![1, 2, 1]));
    // A middle axis: torch.arange(24.).reshape(2, 3, 4).flip... here x[i, j, k] = (j - 1)^2 k.
    let x = Tensor::<f32>::from_fn(&[2, 3, 4], |i| {
        let (j, k) = ((i / 4) % 3, i % 4);
        ((j as f32 - 1.0).powi(2)) * k as f32
    });
    assert_eq!(x.argmax_axis(1, false).to_vec(), vec![0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(x.argmin_axis(1, false).to_vec(), vec![0, 1, 1, 1, 0, 1, 1, 1]);
    // An empty non-reduced axis gives an empty result.
    let e = Tensor::<f64>::zeros(&[0, 3]).argmax_axis(1, true);
    assert_eq!(e.shape(), &[0, 1]);
    // Size-1 axis: index 0.
    assert_eq!(
        Tensor::<f64>::zeros(&[2, 1]).argmax_axis(1, false).to_vec(),
        vec![0, 0]
    );
}

#[test]
fn empty_masks_count_zero_none_any_and_all_true() {
    for shape in [&[0][..], &[2, 0], &[0, 3, 1]] {
        let m = Tensor::<bool>::from_vec(vec![], shape);
        assert_eq!(m.count(), 0);
        assert!(!m.any(), "any of empty is false, as torch.any");
        assert!(m.all(), "all of empty is true, as torch.all");
        assert_eq!(m.to_float::<f32>().shape(), shape);
    }
    let s = Tensor::<bool>::scalar(true);
    assert_eq!((s.count(), s.any(), s.all()), (1, true, true));
    let f = Tensor::<bool>::scalar(false);
    assert_eq!((f.count(), f.any(), f.all()), (0, false, false));
    assert_eq!(f.to_float::<f64>().shape(), &[] as &[usize]);
}

#[test]
fn to_float_multiplies_as_a_mask() {
    let tape = Tape::<f64>::new();
    let x = tape.var([-2.0, 1.0, 3.0]);
    let keep = x.gt(0.0).to_float::<f64>();
    let y = (x * tape.constant(keep)).sum();
    assert_eq!(y.item(), 4.0);
    assert_eq!(y.backward()[x].to_vec(), vec![0.0, 1.0, 1.0]);
    assert_eq!(
        Tensor::<usize>::from(vec![0, 7, 1 << 20])
            .to_float::<f32>()
            .to_vec(),
        vec![0.0, 7.0, 1_048_576.0]
    );
}

#[test]
fn bool_and_usize_tensors_print_like_pytorch() {
    let x = Tensor::<f32>::from_vec(vec![1.0, -1.0, 2.0, 0.0], &[2, 2]);
    let m = x.gt(0.0);
    assert_eq!(m.to_string(), "[[ True False]\n [ True False]]");
    assert_eq!(
        format!("{m:?}"),
        "tensor([[ True False]\n        [ True False]], shape=[2, 2], dtype=bool)"
    );
    assert_eq!(x.ge(-1.0).to_string(), "[[True True]\n [True True]]");
    assert_eq!(Tensor::<f64>::scalar(1.0).lt(0.0).to_string(), "False");
    let i = x.argmax_axis(1, false);
    assert_eq!(i.to_string(), "[0 0]");
    assert_eq!(Tensor::<usize>::arange_from(8, 12).to_string(), "[ 8  9 10 11]");
    assert_eq!(
        format!("{:?}", Tensor::<usize>::arange(3)),
        "tensor([0 1 2], shape=[3], dtype=usize)"
    );
    assert_eq!(Tensor::<usize>::arange(0).to_string(), "[]");
    assert_eq!(x.argmax_axis(1, false).get(&[1]).to_string(), "0");
}

#[test]
fn all_existing_forms_of_targets_still_work() {
    let tape = Tape::<f32>::new();
    let logits = tape.var(Tensor::from_vec(vec![0.5, 1.0, -1.0, 2.0, 0.0, 0.25], &[2, 3]));
    let v: Vec<usize> = vec![1, 2];
    let slice: &[usize] = &v;
    let want = loss::cross_entropy(logits, &v).item();
    for got in [
        loss::cross_entropy(logits, &[1, 2]),
        loss::cross_entropy(logits, slice),
        loss::cross_entropy(logits, &slice),
        loss::cross_entropy(logits, &v[..]),
        loss::cross_entropy(logits, &[1usize, 2]),
        loss::cross_entropy(logits, &Tensor::<usize>::from(vec![1, 2])),
        loss::cross_entropy(logits, &&Tensor::<usize>::from(vec![1, 2])),
        loss::cross_entropy(
            logits,
            &tape
                .var([0.0, 5.0, 1.0, 0.0, 0.0, 9.0])
                .reshape(&[2, 3])
                .argmax_axis(1, false),
        ),
    ] {
        assert_eq!(got.item(), want);
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn unbroadcastable_comparisons_name_the_op_and_shapes() {
    let a = Tensor::<f64>::zeros(&[2, 3]);
    let b = Tensor::<f64>::zeros(&[4]);
    for (name, method, _) in comparisons() {
        let msg = panic_message(|| _ = method(&a, &b));
        assert_eq!(
            msg,
            format!(
                "tapegrad: {name}: shapes [2, 3] and [4] cannot be broadcast together \
                 (trailing dimensions must be equal or 1)"
            )
        );
    }
    let tape = Tape::<f64>::new();
    let x = tape.var(a.clone());
    let msg = panic_message(|| _ = x.ge(tape.var(b.clone())));
    assert!(
        msg.starts_with("tapegrad: ge: shapes [2, 3] and [4] cannot be broadcast"),
        "{msg}"
    );
    let msg = panic_message(|| _ = x.equal(&Tensor::zeros(&[3, 1, 2])));
    assert!(
        msg.starts_with("tapegrad: equal: shapes [2, 3] and [3, 1, 2] cannot be broadcast"),
        "{msg}"
    );
}

/// A call to run later under `catch_unwind`.
type Deferred<'a> = Box<dyn FnOnce() + 'a>;

#[test]
fn unbroadcastable_logical_ops_name_the_op_and_shapes() {
    let a = Tensor::<bool>::from_vec(vec![true; 6], &[3, 2]);
    let b = Tensor::<bool>::from_vec(vec![true; 3], &[3]);
    let cases: [(&str, Deferred<'_>); 6] = [
        ("logical_and", Box::new(|| _ = a.logical_and(&b))),
        ("logical_or", Box::new(|| _ = a.logical_or(&b))),
        ("logical_xor", Box::new(|| _ = a.logical_xor(&b))),
        ("logical_and", Box::new(|| _ = &a & &b)),
        ("logical_or", Box::new(|| _ = &a | &b)),
        ("logical_xor", Box::new(|| _ = &a ^ &b)),
    ];
    for (name, f) in cases {
        let msg = panic_message(f);
        assert!(
            msg.starts_with(&format!(
                "tapegrad: {name}: shapes [3, 2] and [3] cannot be broadcast"
            )),
            "{msg}"
        );
    }
}

#[test]
#[should_panic(expected = "tapegrad: argmax_axis: axis 2 is out of range for shape [2, 3] (rank 2)")]
fn argmax_of_a_bad_axis() {
    let _ = Tensor::<f32>::zeros(&[2, 3]).argmax_axis(2, false);
}

#[test]
#[should_panic(expected = "tapegrad: argmin_axis: axis 0 is out of range for shape [] (rank 0)")]
fn argmin_of_a_scalar() {
    let _ = Tensor::<f32>::scalar(1.0).argmin_axis(0, false);
}

#[test]
#[should_panic(expected = "tapegrad: argmax_axis: axis 1 of shape [2, 0] is empty, so it has no extremum")]
fn argmax_of_an_empty_axis() {
    let _ = Tensor::<f64>::zeros(&[2, 0]).argmax_axis(1, true);
}

#[test]
fn var_argmax_errors_name_the_op() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::zeros(&[0, 2]));
    assert_eq!(
        panic_message(|| _ = x.argmin_axis(0, false)),
        "tapegrad: argmin_axis: axis 0 of shape [0, 2] is empty, so it has no extremum"
    );
    assert_eq!(
        panic_message(|| _ = x.argmax_axis(3, false)),
        "tapegrad: argmax_axis: axis 3 is out of range for shape [0, 2] (rank 2)"
    );
}

#[test]
#[should_panic(expected = "tapegrad: arange_from: start 5 is above end 2")]
fn arange_from_a_start_above_the_end() {
    let _ = Tensor::<usize>::arange_from(5, 2);
}

#[test]
fn bad_tensor_targets_name_the_loss() {
    let tape = Tape::<f64>::new();
    let logits = tape.var(Tensor::zeros(&[2, 3]));
    let targets = Tensor::<usize>::from_vec(vec![0, 1], &[2, 1]);
    assert_eq!(
        panic_message(|| _ = loss::cross_entropy(logits, &targets)),
        "tapegrad: cross_entropy: targets must be a rank-1 tensor [N] of class indices, got shape [2, 1]"
    );
    assert_eq!(
        panic_message(|| _ = loss::nll(logits, &Tensor::<usize>::scalar(0))),
        "tapegrad: nll: targets must be a rank-1 tensor [N] of class indices, got shape []"
    );
    let cfg = loss::CrossEntropyConfig { label_smoothing: 0.1 };
    assert!(
        panic_message(|| _ = loss::cross_entropy_with(logits, &targets, cfg))
            .starts_with("tapegrad: cross_entropy_with: targets must be a rank-1 tensor")
    );
    assert_eq!(
        panic_message(|| _ = loss::cross_entropy(logits, &Tensor::<usize>::from(vec![0, 3]))),
        "tapegrad: cross_entropy: target 3 at row 1 is not a class index below 3"
    );
    assert_eq!(
        panic_message(|| _ = loss::cross_entropy(logits, &Tensor::<usize>::from(vec![0]))),
        "tapegrad: cross_entropy: 1 targets for 2 rows of logits [2, 3]"
    );
}

#[test]
fn panics_point_at_the_callers_line() {
    // #[track_caller] all the way: the location is this file, not the library's.
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    // The hook is global: keep only this thread's panics (other tests run beside this one).
    let this_thread = std::thread::current().id();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() != this_thread {
            return;
        }
        if let Some(loc) = info.location() {
            record
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(loc.file().to_string());
        }
    }));
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::zeros(&[2, 3]));
    let t = Tensor::<f64>::zeros(&[4]);
    let m = Tensor::<bool>::from_vec(vec![true; 4], &[4]);
    let mask23 = x.gt(0.0);
    let rank2_targets = Tensor::<usize>::from_vec(vec![0; 4], &[2, 2]);
    let results = [
        catch_unwind(AssertUnwindSafe(|| _ = x.value().lt(&t))).is_err(),
        catch_unwind(AssertUnwindSafe(|| _ = x.lt(&t))).is_err(),
        catch_unwind(AssertUnwindSafe(|| _ = x.argmax_axis(5, false))).is_err(),
        catch_unwind(AssertUnwindSafe(|| _ = mask23.logical_or(&m))).is_err(),
        catch_unwind(AssertUnwindSafe(|| _ = &mask23 & &m)).is_err(),
        catch_unwind(AssertUnwindSafe(|| _ = Tensor::<usize>::arange_from(3, 1))).is_err(),
        catch_unwind(AssertUnwindSafe(|| _ = loss::cross_entropy(x, &rank2_targets))).is_err(),
    ];
    std::panic::set_hook(previous);
    assert!(results.iter().all(|&r| r));
    let files = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(files.len(), results.len());
    for f in files {
        assert!(f.ends_with("ops2_element.rs"), "panic located in {f}");
    }
}
