//! Neural-network modules, activations, losses and initialisers: gradients checked in f64 against
//! central differences, modes, names, shapes and numerical stability.

use tapegrad::gradcheck;
use tapegrad::loss::{self, CrossEntropyConfig};
use tapegrad::nn::init;
use tapegrad::prelude::*;
use tapegrad::rand::{SeedableRng, rngs::StdRng};

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// The gradients of `sum(module(input) * weights)` with respect to the input and to every
/// parameter, through the public checkers (`check` and `check_params`, default tolerances).
fn check_module(module: &impl Forward<f64>, input: Tensor<f64>, weights: Tensor<f64>) {
    let w = weights.clone();
    gradcheck::check(
        |tape: &Tape<f64>, xs: &[Var<f64>]| (module.forward(tape, xs[0]) * tape.constant(w.clone())).sum(),
        std::slice::from_ref(&input),
    )
    .unwrap_or_else(|e| panic!("input: {e}"));
    gradcheck::check_params(
        |tape: &Tape<f64>| {
            (module.forward(tape, tape.constant(input.clone())) * tape.constant(weights.clone())).sum()
        },
        &module.named_parameters(),
        gradcheck::Tolerance::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn public_module_check_passes_a_network_and_names_a_parameter_with_a_wrong_gradient() {
    let mut r = rng(21);
    let mlp = Mlp::<f64>::new(&[3, 5, 2], Activation::Tanh, &mut r);
    gradcheck::check_module(&mlp, &random(&[4, 3], 22)).unwrap();

    /// `x * w * w` whose second factor is detached: d/dw is off by half.
    struct HalfGradient(Param<f64>);
    impl Forward<f64> for HalfGradient {
        fn forward<'t>(&self, tape: &'t Tape<f64>, x: Var<'t, f64>) -> Var<'t, f64> {
            let w = tape.param(&self.0);
            x * w * w.detach()
        }
    }
    impl Module<f64> for HalfGradient {
        fn named_parameters(&self) -> Vec<(String, Param<f64>)> {
            vec![("scale".to_string(), self.0.clone())]
        }
        fn train(&mut self, _mode: bool) {}
        fn is_training(&self) -> bool {
            true
        }
    }
    let bad = HalfGradient(Param::new(Tensor::from_vec(vec![1.5, -2.0], &[2])));
    let before = bad.0.value();
    let err = gradcheck::check_module(&bad, &random(&[3, 2], 23)).unwrap_err();
    assert_eq!(err.parameter.as_deref(), Some("scale"));
    assert_eq!((err.input, err.index.clone()), (0, vec![0]));
    assert!((err.numeric - 2.0 * err.analytic).abs() < 1e-6 * err.numeric.abs());
    assert!(
        err.to_string()
            .contains("gradient of parameter `scale` at index [0]"),
        "{err}"
    );
    assert_eq!(bad.0.value(), before, "the parameter is restored");
}

fn random(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::randn(shape, &mut rng(seed))
}

// ---------------------------------------------------------------- Linear, Mlp

#[test]
fn linear_init_is_pytorch_default() {
    let layer = Linear::<f64>::new(25, 40, &mut rng(0));
    assert_eq!(layer.weight.shape(), vec![40, 25]);
    assert_eq!(layer.bias.as_ref().unwrap().shape(), vec![40]);
    assert_eq!((layer.in_features(), layer.out_features()), (25, 40));
    // U(-1/√25, 1/√25) for weight and bias: inside the bound, and spread over most of it.
    for (_, p) in layer.named_parameters() {
        let v = p.value().to_vec();
        assert!(v.iter().all(|x| x.abs() <= 0.2));
        let max = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(max > 0.15, "values should fill U(-0.2, 0.2), max |x| = {max}");
    }
    // Seeded: the same generator seed gives the same layer.
    let again = Linear::<f64>::new(25, 40, &mut rng(0));
    assert_eq!(again.weight.value(), layer.weight.value());
}

#[test]
fn linear_gradients_match_finite_differences() {
    let layer = Linear::<f64>::new(3, 4, &mut rng(1));
    check_module(&layer, random(&[5, 3], 2), random(&[5, 4], 3));
    // Rank 1 and rank 3 inputs.
    check_module(&layer, random(&[3], 4), random(&[4], 5));
    check_module(&layer, random(&[2, 2, 3], 6), random(&[2, 2, 4], 7));
    let no_bias = Linear::<f64>::with_bias(3, 2, false, &mut rng(8));
    check_module(&no_bias, random(&[4, 3], 9), random(&[4, 2], 10));
}

#[test]
fn linear_forward_is_x_wt_plus_b() {
    let w = Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]);
    let layer = Linear::from_params(
        Param::new(w),
        Some(Param::new(Tensor::from_vec(vec![0.5, -1.], &[2]))),
    );
    let tape = Tape::<f64>::new();
    let y = layer.forward(
        &tape,
        tape.constant(Tensor::from_vec(vec![1., 0., -1., 2., 1., 0.], &[2, 3])),
    );
    // rows: [1-3+0.5, 4-6-1], [2+2+0.5, 8+5-1]
    assert_eq!(y.value().to_vec(), vec![-1.5, -3., 4.5, 12.]);
}

#[test]
#[should_panic(expected = "Linear: input shape [2, 5] does not end in in_features 3")]
fn linear_rejects_wrong_input_size() {
    let layer = Linear::<f32>::new(3, 2, &mut rng(0));
    let tape = Tape::new();
    layer.forward(&tape, tape.constant(Tensor::zeros(&[2, 5])));
}

#[test]
#[should_panic(expected = "Linear: bias shape [3] does not match weight shape [2, 4]")]
fn linear_rejects_mismatched_bias() {
    Linear::<f32>::from_params(
        Param::new(Tensor::zeros(&[2, 4])),
        Some(Param::new(Tensor::zeros(&[3]))),
    );
}

#[test]
fn mlp_names_and_sizes_follow_pytorch() {
    let mlp = Mlp::<f32>::new(&[2, 16, 16, 1], Activation::Relu, &mut rng(0));
    let names: Vec<String> = mlp.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "layers.0.weight",
            "layers.0.bias",
            "layers.1.weight",
            "layers.1.bias",
            "layers.2.weight",
            "layers.2.bias"
        ]
    );
    let shapes: Vec<Vec<usize>> = mlp.parameters().iter().map(|p| p.shape()).collect();
    assert_eq!(
        shapes,
        [
            vec![16, 2],
            vec![16],
            vec![16, 16],
            vec![16],
            vec![1, 16],
            vec![1]
        ]
    );
}

#[test]
fn mlp_gradients_match_finite_differences() {
    for act in [
        Activation::Tanh,
        Activation::Gelu,
        Activation::Sigmoid,
        Activation::LeakyRelu(0.1),
    ] {
        let mlp = Mlp::<f64>::new(&[3, 5, 4, 2], act, &mut rng(11));
        check_module(&mlp, random(&[6, 3], 12), random(&[6, 2], 13));
    }
}

#[test]
fn mlp_has_no_activation_after_the_last_layer() {
    let mlp = Mlp::<f64>::new(&[2, 3, 2], Activation::Relu, &mut rng(3));
    let tape = Tape::new();
    let x = tape.constant(random(&[4, 2], 4));
    let by_hand = mlp.layers[1].forward(&tape, mlp.layers[0].forward(&tape, x).relu());
    assert_eq!(mlp.forward(&tape, x).value(), by_hand.value());
}

#[test]
fn train_and_eval_modes_propagate() {
    let mut mlp = Mlp::<f32>::new(&[2, 3, 1], Activation::Tanh, &mut rng(0));
    assert!(mlp.is_training() && mlp.layers.iter().all(|l| l.is_training()));
    mlp.eval();
    assert!(!mlp.is_training() && mlp.layers.iter().all(|l| !l.is_training()));
    mlp.train(true);
    assert!(mlp.is_training());

    let mut net = Sequential::<f32>::new()
        .with(Linear::new(2, 2, &mut rng(1)))
        .with(Dropout::new(0.5, 1));
    net.train(false);
    assert!(!net.is_training());
    let tape = Tape::new();
    let x = tape.constant(Tensor::ones(&[3, 2]));
    let a = net.forward(&tape, x).value();
    let b = net.forward(&tape, x).value();
    assert_eq!(a, b, "evaluation mode is deterministic: dropout is off");
}

// ---------------------------------------------------------------- Sequential

#[test]
fn sequential_names_by_position_and_checks_gradients() {
    let mut r = rng(5);
    let net = Sequential::<f64>::new()
        .with(Linear::new(3, 4, &mut r))
        .with(Activation::Tanh)
        .with(Linear::new(4, 2, &mut r))
        .with(Activation::Softmax);
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
    check_module(&net, random(&[3, 3], 6), random(&[3, 2], 7));
    let nested = Sequential::<f64>::new().with(net).with(Activation::Identity);
    assert_eq!(nested.named_parameters()[0].0, "0.0.weight");
}

// ---------------------------------------------------------------- activations

#[test]
fn activation_gradients_match_finite_differences() {
    // Away from relu's kink at 0.
    let x = Tensor::from_vec(vec![-2.5, -0.7, -0.1, 0.2, 0.9, 3.1], &[2, 3]);
    for act in [
        Activation::Relu,
        Activation::LeakyRelu(0.01),
        Activation::LeakyRelu(0.3),
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Gelu,
        Activation::Softmax,
        Activation::Identity,
    ] {
        let w = random(&[2, 3], 1);
        gradcheck::check(
            |tape: &Tape<f64>, xs: &[Var<f64>]| (act.apply(xs[0]) * tape.constant(w.clone())).sum(),
            std::slice::from_ref(&x),
        )
        .unwrap_or_else(|e| panic!("{act:?}: {e}"));
        if act != Activation::Relu && !matches!(act, Activation::LeakyRelu(_)) {
            gradcheck::check_second_order(
                |tape: &Tape<f64>, xs: &[Var<f64>]| (act.apply(xs[0]) * tape.constant(w.clone())).sum(),
                std::slice::from_ref(&x),
            )
            .unwrap_or_else(|e| panic!("{act:?} (second order): {e}"));
        }
    }
}

#[test]
fn gelu_matches_pytorch_exact_gelu() {
    // torch.nn.functional.gelu(x) (approximate='none'), i.e. x Φ(x), and its derivative
    // Φ(x) + x φ(x); values from mpmath at 30 digits.
    let table = [
        (-3.0, -0.0040496940948902835, -0.011945647204183927),
        (-1.0, -0.15865525393145705, -0.0833154705876863),
        (0.0, 0.0, 0.5),
        (0.5, 0.34573123063700656, 0.8674951246561629),
        (2.0, 1.9544997361036416, 1.085231801078197),
    ];
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(table.iter().map(|r| r.0).collect(), &[5]));
    let y = Activation::Gelu.apply(x);
    let g = y.sum().backward()[x].to_vec();
    for (i, &(xi, want, dwant)) in table.iter().enumerate() {
        let got = y.value().to_vec()[i];
        assert!(
            (got - want).abs() <= 1e-15 + 1e-14 * want.abs(),
            "gelu({xi}) = {got}, want {want}"
        );
        assert!(
            (g[i] - dwant).abs() < 1e-12,
            "gelu'({xi}) = {}, want {dwant}",
            g[i]
        );
    }
    // f32 agrees to f32 precision and is finite far out.
    let tape = Tape::<f32>::new();
    let x = tape.var([-1.0f32, 30.0, -30.0]);
    let y = Activation::Gelu.apply(x).value().to_vec();
    assert!((y[0] + 0.158_655_25).abs() < 1e-7);
    assert_eq!((y[1], y[2]), (30.0, -0.0));
}

// ---------------------------------------------------------------- dropout

#[test]
fn dropout_differs_between_train_and_eval() {
    let mut drop = Dropout::new(0.25, 7);
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::ones(&[4000]));
    let y = drop.forward(&tape, x);
    let v = y.value().to_vec();
    let kept = v.iter().filter(|&&e| e != 0.0).count();
    assert!(v.iter().all(|&e| e == 0.0 || (e - 4.0 / 3.0).abs() < 1e-15));
    assert!((2850..3150).contains(&kept), "kept {kept} of 4000 at p = 0.25");
    // The gradient is the same mask.
    assert_eq!(y.sum().backward()[x].to_vec(), v);
    // Seeded: a new module with the same seed draws the same masks; later calls draw new ones.
    let again = Dropout::new(0.25, 7);
    assert_eq!(again.forward(&tape, x).value().to_vec(), v);
    assert_ne!(again.forward(&tape, x).value().to_vec(), v);
    drop.eval();
    assert_eq!(drop.forward(&tape, x).value().to_vec(), vec![1.0; 4000]);
}

#[test]
#[should_panic(expected = "Dropout: probability must be in [0, 1), got 1")]
fn dropout_rejects_p_one() {
    Dropout::<f32>::new(1.0, 0);
}

// ---------------------------------------------------------------- losses

#[test]
fn loss_gradients_match_finite_differences() {
    let pred = random(&[4, 3], 20);
    let target = random(&[4, 3], 21);
    let probs = Tensor::from_vec((0..12).map(|i| (i as f64 + 0.5) / 12.0).collect(), &[4, 3]);
    let t = target.clone();
    gradcheck::check(
        |tape: &Tape<f64>, xs: &[Var<f64>]| loss::l1(xs[0], tape.constant(t.clone())),
        std::slice::from_ref(&pred),
    )
    .unwrap();
    for delta in [0.5, 1.0, 2.0] {
        gradcheck::check(
            |tape: &Tape<f64>, xs: &[Var<f64>]| loss::huber(xs[0], tape.constant(t.clone()), delta),
            std::slice::from_ref(&pred),
        )
        .unwrap();
    }
    gradcheck::check(
        |_t: &Tape<f64>, xs: &[Var<f64>]| loss::binary_cross_entropy_with_logits(xs[0], xs[1]),
        &[pred.clone(), probs.clone()],
    )
    .unwrap();
    gradcheck::check_second_order(
        |tape: &Tape<f64>, xs: &[Var<f64>]| {
            loss::binary_cross_entropy_with_logits(xs[0], tape.constant(probs.clone()))
        },
        std::slice::from_ref(&pred),
    )
    .unwrap();
    gradcheck::check(
        |_t: &Tape<f64>, xs: &[Var<f64>]| loss::nll(xs[0].log_softmax(1), &[2, 0, 1, 1]),
        std::slice::from_ref(&pred),
    )
    .unwrap();
    for eps in [0.0, 0.1, 1.0] {
        let cfg = CrossEntropyConfig { label_smoothing: eps };
        gradcheck::check(
            |_t: &Tape<f64>, xs: &[Var<f64>]| loss::cross_entropy_with(xs[0], &[2, 0, 1, 1], cfg),
            std::slice::from_ref(&pred),
        )
        .unwrap();
    }
}

#[test]
fn huber_matches_pytorch_formula() {
    let tape = Tape::<f64>::new();
    let pred = tape.var([0.2, -0.9, 1.5, -4.0]);
    let l = loss::huber(pred, tape.constant([0.0; 4]), 1.0);
    let want = (0.02 + 0.405 + 1.0 + 3.5) / 4.0; // d²/2 inside, |d| - 1/2 outside
    assert!((l.item() - want).abs() < 1e-15);
    assert_eq!(l.backward()[pred].to_vec(), vec![0.05, -0.225, 0.25, -0.25]);
}

#[test]
fn classification_losses_are_stable_at_extreme_logits() {
    let tape = Tape::<f32>::new();
    let x = tape.var(Tensor::from_vec(
        vec![1000.0f32, -1000.0, 0.0, 88.0, -88.0, 1e30],
        &[2, 3],
    ));
    let y = tape.constant(Tensor::from_vec(vec![0.0f32, 1.0, 0.5, 1.0, 0.0, 0.0], &[2, 3]));
    let bce = loss::binary_cross_entropy_with_logits(x, y);
    assert!(bce.item().is_finite());
    let g = bce.backward()[x].to_vec();
    assert!(g.iter().all(|v| v.is_finite()));
    // sigmoid(x) - y, over 6 elements
    assert!((g[0] - 1.0 / 6.0).abs() < 1e-7 && (g[1] + 1.0 / 6.0).abs() < 1e-7 && g[2].abs() < 1e-7);

    let logits = tape.var(Tensor::from_vec(
        vec![1000.0f32, -1000.0, 0.0, -1000.0, 1000.0, 500.0],
        &[2, 3],
    ));
    for eps in [0.0, 0.1] {
        let cfg = CrossEntropyConfig { label_smoothing: eps };
        let l = loss::cross_entropy_with(logits, &[1, 1], cfg);
        assert!(l.item().is_finite());
        assert!(l.backward()[logits].all_finite());
    }
    let l = loss::nll(logits.log_softmax(1), &[0, 2]);
    assert!((l.item() - 250.0).abs() < 1e-3); // rows: 0, 500
    assert!(l.backward()[logits].all_finite());
}

#[test]
fn label_smoothing_matches_pytorch() {
    // torch.nn.functional.cross_entropy(logits, targets, label_smoothing=0.1), by hand:
    // (1-ε)·nll + ε·mean_c(-log p).
    let logits = Tensor::<f64>::from_vec(vec![1.0, 2.0, 0.5, -1.0, 0.0, 3.0], &[2, 3]);
    let lp = logits.log_softmax(1).to_vec();
    let nll = -(lp[0] + lp[5]) / 2.0;
    let uniform = -lp.iter().sum::<f64>() / 6.0;
    let want = 0.9 * nll + 0.1 * uniform;
    let tape = Tape::new();
    let l = loss::cross_entropy_with(
        tape.var(logits),
        &[0, 2],
        CrossEntropyConfig { label_smoothing: 0.1 },
    );
    assert!((l.item() - want).abs() < 1e-14);
}

#[test]
#[should_panic(expected = "nll: target 3 at row 1 is not a class index below 3")]
fn nll_rejects_out_of_range_targets() {
    let tape = Tape::<f32>::new();
    loss::nll(tape.var(Tensor::zeros(&[2, 3])), &[0, 3]);
}

#[test]
#[should_panic(expected = "huber: prediction shape [2] differs from target shape [2, 1]")]
fn huber_rejects_shape_mismatch() {
    let tape = Tape::<f32>::new();
    loss::huber(
        tape.var(Tensor::zeros(&[2])),
        tape.constant(Tensor::zeros(&[2, 1])),
        1.0,
    );
}

// ---------------------------------------------------------------- initialisers

#[test]
fn initialisers_have_the_documented_spread_and_are_seeded() {
    let n = 200 * 300;
    let var = |t: &Tensor<f64>| t.as_slice().iter().map(|v| v * v).sum::<f64>() / n as f64;
    let shape = [200, 300]; // fan_in 300, fan_out 200
    let cases: [(&str, Tensor<f64>, f64); 6] = [
        (
            "uniform",
            init::uniform(&shape, -1.0, 1.0, &mut rng(0)),
            1.0 / 3.0,
        ),
        ("normal", init::normal(&shape, 0.0, 0.5, &mut rng(0)), 0.25),
        (
            "xavier_uniform",
            init::xavier_uniform(&shape, 1.0, &mut rng(0)),
            2.0 / 500.0,
        ),
        (
            "xavier_normal",
            init::xavier_normal(&shape, 1.0, &mut rng(0)),
            2.0 / 500.0,
        ),
        (
            "kaiming_uniform",
            init::kaiming_uniform(&shape, 0.0, &mut rng(0)),
            2.0 / 300.0,
        ),
        (
            "kaiming_normal",
            init::kaiming_normal(&shape, 0.0, &mut rng(0)),
            2.0 / 300.0,
        ),
    ];
    for (name, t, want) in cases {
        let got = var(&t);
        assert!(
            (got / want - 1.0).abs() < 0.03,
            "{name}: variance {got}, want {want}"
        );
    }
    assert_eq!(
        init::kaiming_normal::<f32, _>(&[3, 4], 0.0, &mut rng(9)),
        init::kaiming_normal::<f32, _>(&[3, 4], 0.0, &mut rng(9))
    );
    assert_eq!(init::fans(&[8, 4, 3, 3]), (36, 72));
}

// ---------------------------------------------------------------- examples, end to end

// Each example declares the examples' shared `common` module; included here, that module is
// compiled twice, which is harmless.
#[path = "../examples/micrograd_moons.rs"]
mod micrograd_moons;
// moons and spiral draw their decision regions as SVG (feature `plots`).
#[cfg(feature = "plots")]
#[allow(clippy::duplicate_mod)]
#[path = "../examples/moons.rs"]
mod moons;
#[cfg(feature = "plots")]
#[allow(clippy::duplicate_mod)]
#[path = "../examples/spiral.rs"]
mod spiral;

#[test]
#[cfg(feature = "plots")]
fn moons_example_reaches_full_training_accuracy() {
    let report = moons::train(100, false);
    assert_eq!(report.accuracy, 1.0, "{report:?}");
}

#[test]
fn micrograd_moons_example_reaches_full_training_accuracy_with_scalar_nodes() {
    let report = micrograd_moons::train(100, false);
    assert_eq!(report.accuracy, 1.0, "{report:?}");
}

#[test]
#[cfg(feature = "plots")]
fn spiral_example_reaches_its_accuracy() {
    let report = spiral::train(100, false);
    assert!(report.accuracy >= 0.98, "{report:?}");
}

// ---------------------------------------------------------------- data

#[test]
fn batches_cover_every_example_once_per_epoch() {
    let ds = tapegrad::data::Dataset::new(
        Tensor::<f64>::from_fn(&[10, 2], |i| i as f64),
        Tensor::from_fn(&[10], |i| i as f64),
    );
    let mut seen: Vec<usize> = ds
        .batches(3)
        .shuffle(&mut rng(4))
        .flat_map(|b| b.labels())
        .collect();
    assert_ne!(seen, (0..10).collect::<Vec<_>>(), "shuffled");
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    // Rows stay together: features of example i are 2i, 2i + 1.
    for b in ds.batches(4).shuffle(&mut rng(5)) {
        for (row, label) in b.features.as_slice().chunks(2).zip(b.labels()) {
            assert_eq!(row, [2.0 * label as f64, 2.0 * label as f64 + 1.0]);
        }
    }
    let sizes: Vec<usize> = ds.batches(4).drop_last(true).map(|b| b.len()).collect();
    assert_eq!(sizes, [4, 4]);
    let order = |seed| ds.batches(10).shuffle(&mut rng(seed)).next().unwrap().labels();
    assert_eq!(order(6), order(6));
}

#[test]
fn generators_have_their_shapes_and_classes() {
    let lin = tapegrad::data::linear::<f64, _>(200, 0.1, &mut rng(0));
    let residual: f64 = lin
        .features
        .as_slice()
        .iter()
        .zip(lin.targets.as_slice())
        .map(|(x, y)| (y - 2.0 * x - 3.0).powi(2))
        .sum::<f64>()
        / 200.0;
    assert!(
        (residual.sqrt() - 0.1).abs() < 0.02,
        "noise std {}",
        residual.sqrt()
    );
    let m = tapegrad::data::moons::<f32, _>(101, 0.1, &mut rng(1));
    assert_eq!(m.labels().iter().filter(|&&l| l == 1).count(), 51);
    let c = tapegrad::data::circles::<f32, _>(100, 0.0, 0.3, &mut rng(2));
    for (p, l) in c.features.as_slice().chunks(2).zip(c.labels()) {
        let r = (p[0] * p[0] + p[1] * p[1]).sqrt();
        assert!((r - if l == 0 { 1.0 } else { 0.3 }).abs() < 1e-6);
    }
    let s = tapegrad::data::spirals::<f32, _>(40, 4, 0.0, &mut rng(3));
    assert_eq!((s.len(), s.labels()[159]), (160, 3));
    assert_eq!(tapegrad::data::xor::<f64>().features.shape(), &[4, 2]);
}

#[test]
#[should_panic(expected = "Dataset::new: features [3, 2] and targets [4] need the same first axis")]
fn dataset_rejects_mismatched_lengths() {
    tapegrad::data::Dataset::new(Tensor::<f32>::zeros(&[3, 2]), Tensor::zeros(&[4]));
}

// ---------------------------------------------------------------- normalisation, embedding

/// Sets every parameter of a module to random values (so scale and shift gradients are generic).
fn randomize(module: &impl Module<f64>, seed: u64) {
    for (i, p) in module.parameters().iter().enumerate() {
        p.set_value(random(&p.shape(), seed + i as u64));
    }
}

#[test]
fn layer_norm_gradients_match_finite_differences() {
    let ln = tapegrad::nn::LayerNorm::<f64>::new(5);
    randomize(&ln, 30);
    check_module(&ln, random(&[3, 5], 31), random(&[3, 5], 32));
    check_module(&ln, random(&[2, 2, 5], 33), random(&[2, 2, 5], 34));
    let names: Vec<String> = ln.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["weight", "bias"]);
}

#[test]
fn batch_norm_gradients_match_finite_differences_in_both_modes() {
    let mut bn = tapegrad::nn::BatchNorm1d::<f64>::new(3);
    randomize(&bn, 40);
    // check_module runs forward many times; each training forward moves the running statistics,
    // which training-mode outputs do not depend on.
    check_module(&bn, random(&[4, 3], 41), random(&[4, 3], 42));
    bn.eval();
    check_module(&bn, random(&[4, 3], 43), random(&[4, 3], 44));
}

#[test]
fn batch_norm_differs_between_train_and_eval() {
    let mut bn = tapegrad::nn::BatchNorm1d::<f64>::new(2);
    let x = Tensor::from_vec(vec![1.0, 10.0, 3.0, 20.0, 5.0, 30.0, 7.0, 40.0], &[4, 2]);
    let tape = Tape::new();
    // Training: per-feature batch statistics, so each column has mean 0 and variance ≈ 1.
    let y = bn.forward(&tape, tape.constant(x.clone())).value();
    for c in 0..2 {
        let col: Vec<f64> = (0..4).map(|r| y.get(&[r, c])).collect();
        assert!(col.iter().sum::<f64>().abs() < 1e-12);
        assert!((col.iter().map(|v| v * v).sum::<f64>() / 4.0 - 1.0).abs() < 1e-3);
    }
    // PyTorch: running_mean = 0.1 · [4, 25]; running_var = 0.9 + 0.1 · unbiased var [20/3, 500/3].
    let (rm, rv) = (bn.running_mean().to_vec(), bn.running_var().to_vec());
    assert!((rm[0] - 0.4).abs() < 1e-12 && (rm[1] - 2.5).abs() < 1e-12);
    assert!((rv[0] - (0.9 + 2.0 / 3.0)).abs() < 1e-12 && (rv[1] - (0.9 + 50.0 / 3.0)).abs() < 1e-12);
    // Evaluation: running statistics, and a single example is fine.
    bn.eval();
    let one = bn
        .forward(&tape, tape.constant(Tensor::from_vec(vec![1.0, 10.0], &[1, 2])))
        .value();
    assert!((one.get(&[0, 0]) - (1.0 - 0.4) / (rv[0] + 1e-5).sqrt()).abs() < 1e-12);
    assert_eq!(
        bn.running_mean().to_vec(),
        rm,
        "evaluation leaves the statistics alone"
    );
}

#[test]
#[should_panic(expected = "BatchNorm1d: input must be [N, 3], got shape [4, 2]")]
fn batch_norm_rejects_wrong_features() {
    let bn = tapegrad::nn::BatchNorm1d::<f32>::new(3);
    let tape = Tape::new();
    bn.forward(&tape, tape.constant(Tensor::zeros(&[4, 2])));
}

#[test]
fn embedding_gradient_matches_finite_differences() {
    let emb = tapegrad::nn::Embedding::<f64>::new(6, 3, &mut rng(50));
    let ids = Tensor::from_vec(vec![1.0, 5.0, 1.0, 0.0], &[2, 2]);
    let tape = Tape::new();
    let out = emb.forward(&tape, tape.constant(ids.clone()));
    assert_eq!(out.shape(), vec![2, 2, 3]);
    let w = emb.weight.value();
    assert_eq!(out.value().to_vec()[3..6], w.to_vec()[15..18]); // id 5
    // Parameter gradient by central differences (ids are not differentiable).
    let weights = random(&[2, 2, 3], 51);
    let objective = || {
        let t = Tape::new();
        (emb.forward(&t, t.constant(ids.clone())) * t.constant(weights.clone()))
            .sum()
            .item()
    };
    let grads = (out * tape.constant(weights.clone())).sum().backward();
    let g = grads.param(&emb.weight).unwrap().to_vec();
    let base = emb.weight.value();
    for i in 0..18 {
        let shifted = |d: f64| {
            let mut v = base.to_vec();
            v[i] += d;
            emb.weight.set_value(Tensor::from_vec(v, &[6, 3]));
            let f = objective();
            emb.weight.set_value(base.clone());
            f
        };
        let numeric = (shifted(1e-6) - shifted(-1e-6)) / 2e-6;
        assert!(
            (g[i] - numeric).abs() < 1e-6,
            "weight[{i}]: {} vs {numeric}",
            g[i]
        );
    }
}

#[test]
#[should_panic(expected = "Embedding: id 6 at position 1 is not an integer below 6")]
fn embedding_rejects_out_of_range_ids() {
    let emb = tapegrad::nn::Embedding::<f32>::new(6, 2, &mut rng(0));
    emb.lookup(&Tape::new(), &[0, 6]);
}

#[test]
fn contract_snippet_infers_the_element_type() {
    // DESIGN.md section 2, as written there: no turbofish on Mlp.
    let mut rng = StdRng::seed_from_u64(0);
    let mlp = Mlp::new(&[2, 16, 16, 1], Activation::Relu, &mut rng);
    let tape = Tape::new();
    let input_var = tape.var(Tensor::<f32>::zeros(&[3, 2]));
    let out = mlp.forward(&tape, input_var);
    assert_eq!(out.shape(), vec![3, 1]);
    let params: Vec<Param<f32>> = mlp.parameters();
    let named: Vec<(String, Param<f32>)> = mlp.named_parameters();
    assert_eq!((params.len(), named[0].0.as_str()), (6, "layers.0.weight"));
    let boxed: Box<dyn tapegrad::nn::Module<f32>> = Box::new(mlp);
    assert!(boxed.is_training());
}
