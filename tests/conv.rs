//! Convolution and pooling: `conv2d`, `max_pool2d`, `unfold` and `fold` against PyTorch float64
//! reference values (`tests/data/conv_reference.json`, made by `make_conv_reference.py` beside
//! it), `fold` as the adjoint of `unfold`, shape errors, the layers, and the `cnn` example's
//! accuracy.

mod common;

use common::{cases, compare, load_json, tensor, tensors};
use serde_json::Value;
use tapegrad::nn::{Conv2d, Flatten, MaxPool2d};
use tapegrad::rand::{SeedableRng, rngs::StdRng};
use tapegrad::{Param, Tape, Tensor, Var, Window2d};

fn reference() -> Value {
    load_json("conv_reference.json")
}

fn pair(v: &Value) -> (usize, usize) {
    let a = v
        .as_array()
        .unwrap_or_else(|| panic!("expected a pair of integers, got {v}"));
    let get = |i: usize| {
        a[i].as_u64()
            .unwrap_or_else(|| panic!("expected an integer in {v}")) as usize
    };
    assert_eq!(a.len(), 2, "expected a pair, got {v}");
    (get(0), get(1))
}

fn window(case: &Value) -> Window2d {
    Window2d::new(pair(&case["kernel"]))
        .stride(pair(&case["stride"]))
        .padding(pair(&case["padding"]))
        .dilation(pair(&case["dilation"]))
}

/// Runs `f` on the case's inputs and compares its output and the gradients of
/// `sum(out * seed)` with the reference.
fn check_case<F>(failures: &mut Vec<String>, kind: &str, case: &Value, f: F)
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
{
    let name = format!("{kind} {}", case["name"]);
    let tape = Tape::<f64>::new();
    let xs: Vec<Var<f64>> = tensors(&case["inputs"])
        .into_iter()
        .map(|t| tape.var(t))
        .collect();
    let out = f(&xs);
    compare(
        failures,
        &format!("{name}: output"),
        &out.value(),
        &tensor(&case["out"]),
    );
    let grads = out.backward_with_seed(tensor(&case["seed"]));
    for (i, (x, want)) in xs.iter().zip(tensors(&case["grads"])).enumerate() {
        compare(
            failures,
            &format!("{name}: gradient of input {i}"),
            &grads[*x],
            &want,
        );
    }
}

fn report(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn conv2d_matches_pytorch() {
    let reference = reference();
    let mut failures = Vec::new();
    for case in cases(&reference, "conv2d") {
        let (stride, padding) = (pair(&case["stride"]), pair(&case["padding"]));
        check_case(&mut failures, "conv2d", case, |xs| {
            xs[0].conv2d(&xs[1], xs.get(2), stride, padding)
        });
    }
    report(failures);
}

#[test]
fn max_pool2d_matches_pytorch() {
    let reference = reference();
    let mut failures = Vec::new();
    for case in cases(&reference, "max_pool2d") {
        let (kernel, stride, padding) = (
            pair(&case["kernel"]),
            pair(&case["stride"]),
            pair(&case["padding"]),
        );
        check_case(&mut failures, "max_pool2d", case, |xs| {
            xs[0].max_pool2d(kernel, stride, padding)
        });
    }
    report(failures);
}

#[test]
fn unfold_matches_pytorch() {
    let reference = reference();
    let mut failures = Vec::new();
    for case in cases(&reference, "unfold") {
        let w = window(case);
        check_case(&mut failures, "unfold", case, |xs| xs[0].unfold(w));
    }
    report(failures);
}

#[test]
fn fold_matches_pytorch() {
    let reference = reference();
    let mut failures = Vec::new();
    for case in cases(&reference, "fold") {
        let (w, size) = (window(case), pair(&case["output_size"]));
        check_case(&mut failures, "fold", case, |xs| xs[0].fold(size, w));
    }
    report(failures);
}

/// Hessian-vector products of `sum(seed * tanh(op(inputs)))`, through recorded gradients.
#[test]
fn second_derivatives_match_pytorch() {
    let reference = reference();
    let mut failures = Vec::new();
    for case in cases(&reference, "hvp") {
        let name = format!("hvp {}", case["name"]);
        let tape = Tape::<f64>::new();
        let xs: Vec<Var<f64>> = tensors(&case["inputs"])
            .into_iter()
            .map(|t| tape.var(t))
            .collect();
        let out = match case["op"].as_str() {
            Some("conv2d") => xs[0].conv2d(&xs[1], xs.get(2), pair(&case["stride"]), pair(&case["padding"])),
            Some("max_pool2d") => xs[0].max_pool2d(
                pair(&case["kernel"]),
                pair(&case["stride"]),
                pair(&case["padding"]),
            ),
            other => panic!("{name}: unknown op {other:?}"),
        };
        let f = (out.tanh() * tape.constant(tensor(&case["seed"]))).sum();
        let gs = f.grad(&xs);
        for (i, (g, want)) in gs.iter().zip(tensors(&case["grads"])).enumerate() {
            compare(
                &mut failures,
                &format!("{name}: gradient of input {i}"),
                &g.value(),
                &want,
            );
        }
        let vs = tensors(&case["v"]);
        let gv = gs
            .iter()
            .zip(vs)
            .map(|(g, v)| (*g * tape.constant(v)).sum())
            .reduce(|a, b| a + b)
            .expect("at least one input");
        let hv = gv.grad(&xs);
        for (i, (h, want)) in hv.iter().zip(tensors(&case["hvp"])).enumerate() {
            compare(
                &mut failures,
                &format!("{name}: hvp of input {i}"),
                &h.value(),
                &want,
            );
        }
    }
    report(failures);
}

// ---------------------------------------------------------------------------------------------
// fold is the adjoint of unfold
// ---------------------------------------------------------------------------------------------

fn pseudo_random(shape: &[usize], salt: usize) -> Tensor<f64> {
    Tensor::from_fn(shape, |i| {
        (((i + salt) * 2_654_435_761) % 1000) as f64 / 500.0 - 1.0
    })
}

#[test]
fn fold_is_the_adjoint_of_unfold() {
    // <unfold(x), y> = <x, fold(y)> for every window shape, including padding and dilation.
    let windows = [
        Window2d::new((3, 3)),
        Window2d::new((2, 3)).stride((2, 1)),
        Window2d::new((3, 2)).padding((1, 2)),
        Window2d::new((2, 2))
            .stride((3, 2))
            .padding((1, 0))
            .dilation((2, 3)),
        Window2d::new((1, 1)).stride((2, 2)),
    ];
    let tape = Tape::<f64>::new();
    for (k, w) in windows.into_iter().enumerate() {
        let x = tape.constant(pseudo_random(&[2, 3, 7, 8], k));
        let cols = x.unfold(w);
        let y = tape.constant(pseudo_random(&cols.shape(), 100 + k));
        let lhs = (cols * y).sum().item();
        let rhs = (x * y.fold((7, 8), w)).sum().item();
        assert!(
            (lhs - rhs).abs() <= 1e-12 * lhs.abs().max(1.0),
            "window {w:?}: <unfold(x), y> = {lhs} but <x, fold(y)> = {rhs}"
        );
        assert!(lhs.abs() > 1e-3, "window {w:?}: degenerate inner product {lhs}");
    }
}

#[test]
fn conv2d_equals_direct_loops() {
    // An independent definition: out[n, o, y, x] = b[o] + Σ w[o, c, i, j] · xpad[n, c, y·s + i, x·s + j].
    let (n, c, h, wd, o, kh, kw, s, p) = (2, 3, 6, 5, 2, 3, 2, (2, 1), (1, 1));
    let x = pseudo_random(&[n, c, h, wd], 1);
    let w = pseudo_random(&[o, c, kh, kw], 2);
    let b = pseudo_random(&[o], 3);
    let tape = Tape::<f64>::new();
    let y = tape
        .constant(x.clone())
        .conv2d(&tape.constant(w.clone()), Some(&tape.constant(b.clone())), s, p)
        .value();
    let (oh, ow) = ((h + 2 * p.0 - kh) / s.0 + 1, (wd + 2 * p.1 - kw) / s.1 + 1);
    assert_eq!(y.shape(), &[n, o, oh, ow]);
    for ni in 0..n {
        for oi in 0..o {
            for yy in 0..oh {
                for xx in 0..ow {
                    let mut want = b.get(&[oi]);
                    for ci in 0..c {
                        for i in 0..kh {
                            for j in 0..kw {
                                let (iy, ix) = (
                                    (yy * s.0 + i) as isize - p.0 as isize,
                                    (xx * s.1 + j) as isize - p.1 as isize,
                                );
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                    want +=
                                        w.get(&[oi, ci, i, j]) * x.get(&[ni, ci, iy as usize, ix as usize]);
                                }
                            }
                        }
                    }
                    let got = y.get(&[ni, oi, yy, xx]);
                    assert!(
                        (got - want).abs() < 1e-12,
                        "at {:?}: {got} vs {want}",
                        [ni, oi, yy, xx]
                    );
                }
            }
        }
    }
}

#[test]
fn ops_are_recorded_with_their_window() {
    let tape = Tape::<f32>::new();
    let x = tape.var(Tensor::zeros(&[1, 1, 5, 5]));
    let cols = x.unfold(
        Window2d::new((3, 2))
            .stride((2, 1))
            .padding((1, 0))
            .dilation((1, 2)),
    );
    assert_eq!(cols.op(), Some("unfold"));
    assert!(cols.op_rule().unwrap().contains("fold"));
    let back = cols.fold(
        (5, 5),
        Window2d::new((3, 2))
            .stride((2, 1))
            .padding((1, 0))
            .dilation((1, 2)),
    );
    assert_eq!(back.op(), Some("fold"));
    assert_eq!(back.shape(), vec![1, 1, 5, 5]);
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
#[should_panic(expected = "tapegrad: conv2d: the input has 3 channels but the weight expects 2")]
fn conv2d_rejects_a_channel_mismatch() {
    let tape = Tape::<f32>::new();
    let x = tape.var(Tensor::zeros(&[1, 3, 5, 5]));
    let w = tape.var(Tensor::zeros(&[4, 2, 3, 3]));
    x.conv2d(&w, None, (1, 1), (0, 0));
}

#[test]
#[should_panic(
    expected = "tapegrad: conv2d: kernel (5, 3) (dilation (1, 1)) is larger than the padded input \
                           (input shape [1, 1, 3, 3], padding (0, 0))"
)]
fn conv2d_rejects_a_kernel_larger_than_the_padded_input() {
    let tape = Tape::<f32>::new();
    let x = tape.var(Tensor::zeros(&[1, 1, 3, 3]));
    let w = tape.var(Tensor::zeros(&[1, 1, 5, 3]));
    x.conv2d(&w, None, (1, 1), (0, 0));
}

#[test]
fn conv2d_accepts_a_kernel_that_fits_only_with_padding() {
    let tape = Tape::<f32>::new();
    let x = tape.var(Tensor::ones(&[1, 1, 3, 3]));
    let w = tape.var(Tensor::ones(&[1, 1, 5, 3]));
    let y = x.conv2d(&w, None, (1, 1), (1, 0));
    assert_eq!(y.shape(), vec![1, 1, 1, 1]);
    assert_eq!(y.item(), 9.0);
}

#[test]
#[should_panic(expected = "tapegrad: conv2d: stride must be positive, got (0, 1) (input shape [1, 1, 4, 4])")]
fn conv2d_rejects_a_zero_stride() {
    let tape = Tape::<f32>::new();
    let x = tape.var(Tensor::zeros(&[1, 1, 4, 4]));
    let w = tape.var(Tensor::zeros(&[1, 1, 2, 2]));
    x.conv2d(&w, None, (0, 1), (0, 0));
}

#[test]
#[should_panic(
    expected = "tapegrad: conv2d: bias shape [3] does not match weight shape [2, 1, 2, 2] (want [2])"
)]
fn conv2d_rejects_a_wrong_bias() {
    let tape = Tape::<f32>::new();
    let x = tape.var(Tensor::zeros(&[1, 1, 4, 4]));
    let w = tape.var(Tensor::zeros(&[2, 1, 2, 2]));
    let b = tape.var(Tensor::zeros(&[3]));
    x.conv2d(&w, Some(&b), (1, 1), (0, 0));
}

#[test]
#[should_panic(
    expected = "tapegrad: conv2d: needs an [N, C_in, H, W] input and a [C_out, C_in, kh, kw] weight, \
                           got shapes [3, 4, 4] and [1, 3, 2, 2]"
)]
fn conv2d_rejects_an_input_without_a_batch_axis() {
    let tape = Tape::<f32>::new();
    let x = tape.var(Tensor::zeros(&[3, 4, 4]));
    let w = tape.var(Tensor::zeros(&[1, 3, 2, 2]));
    x.conv2d(&w, None, (1, 1), (0, 0));
}

#[test]
#[should_panic(expected = "tapegrad: conv2d: cannot combine vars from two different tapes")]
fn conv2d_rejects_vars_of_two_tapes() {
    let (t1, t2) = (Tape::<f32>::new(), Tape::<f32>::new());
    let x = t1.var(Tensor::zeros(&[1, 1, 4, 4]));
    let w = t2.var(Tensor::zeros(&[1, 1, 2, 2]));
    x.conv2d(&w, None, (1, 1), (0, 0));
}

#[test]
#[should_panic(
    expected = "tapegrad: max_pool2d: stride must be positive, got (2, 0) (input shape [1, 1, 4, 4])"
)]
fn max_pool2d_rejects_a_zero_stride() {
    let tape = Tape::<f32>::new();
    tape.var(Tensor::zeros(&[1, 1, 4, 4]))
        .max_pool2d((2, 2), (2, 0), (0, 0));
}

#[test]
#[should_panic(
    expected = "tapegrad: max_pool2d: kernel (3, 3) (dilation (1, 1)) is larger than the padded input \
                           (input shape [1, 1, 2, 2], padding (0, 0))"
)]
fn max_pool2d_rejects_a_kernel_larger_than_the_input() {
    let tape = Tape::<f32>::new();
    tape.var(Tensor::zeros(&[1, 1, 2, 2]))
        .max_pool2d((3, 3), (1, 1), (0, 0));
}

#[test]
#[should_panic(
    expected = "tapegrad: max_pool2d: padding (2, 0) is more than half the kernel (3, 3) \
                           (input shape [1, 1, 6, 6])"
)]
fn max_pool2d_rejects_padding_above_half_the_kernel() {
    let tape = Tape::<f32>::new();
    tape.var(Tensor::zeros(&[1, 1, 6, 6]))
        .max_pool2d((3, 3), (1, 1), (2, 0));
}

#[test]
#[should_panic(expected = "tapegrad: unfold: needs an [N, C, H, W] input, got shape [4, 4]")]
fn unfold_rejects_a_matrix() {
    let tape = Tape::<f32>::new();
    tape.var(Tensor::zeros(&[4, 4])).unfold(Window2d::new((2, 2)));
}

#[test]
#[should_panic(expected = "tapegrad: unfold: dilation must be positive, got (1, 0)")]
fn unfold_rejects_a_zero_dilation() {
    let tape = Tape::<f32>::new();
    tape.var(Tensor::zeros(&[1, 1, 4, 4]))
        .unfold(Window2d::new((2, 2)).dilation((1, 0)));
}

#[test]
#[should_panic(expected = "tapegrad: unfold: dilation (300, 1) is above the supported 255")]
fn unfold_rejects_a_dilation_too_large_for_a_node() {
    let tape = Tape::<f32>::new();
    tape.var(Tensor::zeros(&[1, 1, 400, 4]))
        .unfold(Window2d::new((2, 1)).dilation((300, 1)));
}

#[test]
#[should_panic(
    expected = "tapegrad: fold: columns of shape [1, 4, 5] do not match the 2x2 = 4 window positions \
                           over an output of (3, 3)"
)]
fn fold_rejects_a_wrong_number_of_columns() {
    let tape = Tape::<f32>::new();
    tape.var(Tensor::zeros(&[1, 4, 5]))
        .fold((3, 3), Window2d::new((2, 2)));
}

#[test]
#[should_panic(
    expected = "tapegrad: fold: axis 1 of shape [1, 6, 4] is not a multiple of the kernel's (2, 2) taps"
)]
fn fold_rejects_channels_that_are_not_a_multiple_of_the_kernel() {
    let tape = Tape::<f32>::new();
    tape.var(Tensor::zeros(&[1, 6, 4]))
        .fold((3, 3), Window2d::new((2, 2)));
}

// ---------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------

#[test]
fn conv2d_layer_initialises_as_pytorch() {
    let mut rng = StdRng::seed_from_u64(7);
    let conv = Conv2d::<f64>::new(4, 16, (3, 2), &mut rng);
    let bound = 1.0 / 24f64.sqrt(); // fan_in = 4·3·2
    let w = conv.weight.value();
    let b = conv.bias.as_ref().expect("bias by default").value();
    assert_eq!(w.shape(), &[16, 4, 3, 2]);
    assert_eq!(b.shape(), &[16]);
    for v in w.as_slice().iter().chain(b.as_slice()) {
        assert!(v.abs() <= bound, "{v} outside ±{bound}");
    }
    // Uniform on ±bound: the largest of 384 draws is near the bound, not far inside it.
    let largest = w.as_slice().iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(largest > 0.9 * bound, "largest |w| is {largest}, bound {bound}");
}

#[test]
fn conv2d_layer_records_the_functional_op_and_fills_param_gradients() {
    let w = Param::new(pseudo_random(&[3, 2, 2, 2], 5));
    let b = Param::new(pseudo_random(&[3], 6));
    let conv = Conv2d::from_params(w.clone(), Some(b.clone()))
        .with_stride((2, 1))
        .with_padding((1, 0));
    let x = pseudo_random(&[2, 2, 5, 4], 7);
    let tape = Tape::<f64>::new();
    let y = conv.forward(&tape, tape.constant(x.clone()));
    let (wv, bv, xv) = (
        tape.constant(w.value()),
        tape.constant(b.value()),
        tape.constant(x),
    );
    let want = xv.conv2d(&wv, Some(&bv), (2, 1), (1, 0));
    assert_eq!(y.value(), want.value());
    let grads = y.sum().backward();
    assert_eq!(grads.param(&w).expect("weight gradient").shape(), &[3, 2, 2, 2]);
    // d(sum y)/db[o] = the number of output pixels per channel, times the batch.
    let per_channel = 2.0 * (y.shape()[2] * y.shape()[3]) as f64;
    assert_eq!(
        grads.param(&b).expect("bias gradient").to_vec(),
        vec![per_channel; 3]
    );
}

#[test]
#[should_panic(
    expected = "tapegrad: Conv2d: bias shape [2] does not match weight shape [3, 1, 2, 2] (want [3])"
)]
fn conv2d_layer_rejects_a_wrong_bias() {
    Conv2d::from_params(
        Param::new(Tensor::<f32>::zeros(&[3, 1, 2, 2])),
        Some(Param::new(Tensor::zeros(&[2]))),
    );
}

#[test]
fn max_pool_and_flatten_layers() {
    let tape = Tape::<f64>::new();
    let x = tape.var(pseudo_random(&[2, 3, 6, 6], 9));
    let pooled = MaxPool2d::new((2, 2)).forward(&tape, x);
    assert_eq!(pooled.shape(), vec![2, 3, 3, 3]);
    assert_eq!(pooled.value(), x.max_pool2d((2, 2), (2, 2), (0, 0)).value());
    let flat = Flatten.forward(&tape, pooled);
    assert_eq!(flat.shape(), vec![2, 27]);
    // Each 2x2 window sends its gradient to exactly one pixel.
    let g = flat.sum().backward()[x].clone();
    assert_eq!(g.as_slice().iter().sum::<f64>(), 54.0);
    assert!(g.as_slice().iter().all(|&v| v == 0.0 || v == 1.0));
}

// ---------------------------------------------------------------------------------------------
// The cnn example
// ---------------------------------------------------------------------------------------------

#[path = "../examples/cnn.rs"]
mod cnn;

#[test]
fn cnn_example_classifies_bars() {
    let report = cnn::train(cnn::EPOCHS, false);
    assert!(
        report.test_accuracy >= 0.95,
        "test accuracy {:.3} below 95% (train {:.3}, loss {:.4})",
        report.test_accuracy,
        report.train_accuracy,
        report.loss
    );
    assert!(
        report.train_accuracy >= 0.95,
        "train accuracy {:.3}",
        report.train_accuracy
    );
}
