//! Training-loop helpers: accuracy, evaluation passes, early stopping and progress lines.

use tapegrad::data::Dataset;
use tapegrad::prelude::*;
use tapegrad::rand::{SeedableRng, rngs::StdRng};
use tapegrad::train::{EarlyStopping, Progress, accuracy, evaluate};

#[test]
fn accuracy_takes_the_first_maximum_and_ignores_nan() {
    let logits = Tensor::<f64>::from_vec(
        vec![1.0, 1.0, 0.0, f64::NAN, 0.0, 2.0, 5.0, f64::NAN, 4.0],
        &[3, 3],
    );
    // row 0: tie between 0 and 1 -> 0; row 1: NaN skipped -> 2; row 2: 0 beats NaN and 4.
    assert_eq!(accuracy(&logits, &[0, 2, 0]), 1.0);
    assert_eq!(accuracy(&logits, &[1, 1, 2]), 0.0);
}

#[test]
fn accuracy_reads_one_score_per_row_as_a_logit() {
    let scores = Tensor::<f32>::from_vec(vec![0.0, 0.1, -0.1], &[3, 1]);
    assert_eq!(accuracy(&scores, &[0, 1, 0]), 1.0);
    assert_eq!(accuracy(&Tensor::<f32>::zeros(&[0, 4]), &[]), 0.0);
}

#[test]
#[should_panic(expected = "accuracy: outputs [2, 3] have 2 rows but there are 3 labels")]
fn accuracy_names_shapes_on_mismatch() {
    accuracy(&Tensor::<f32>::zeros(&[2, 3]), &[0, 1, 2]);
}

/// A model whose output depends on the mode: a layer then dropout with p = 0.5.
fn dropout_model(rng: &mut StdRng) -> Sequential<f64> {
    Sequential::new()
        .with(Linear::new(2, 3, rng))
        .with(tapegrad::nn::Dropout::new(0.5, 7))
}

#[test]
fn evaluate_weights_batches_by_size_runs_in_eval_mode_and_restores_the_mode() {
    let mut rng = StdRng::seed_from_u64(3);
    let data = tapegrad::data::moons::<f64, _>(10, 0.1, &mut rng);
    let mut model = dropout_model(&mut rng);
    assert!(model.is_training());
    let eval = evaluate(&mut model, &data, 4, |out, b| {
        loss::cross_entropy(out, &b.labels())
    });
    assert!(model.is_training(), "evaluate must restore training mode");

    // By hand, in eval mode (dropout off), one batch of everything.
    model.eval();
    let tape = Tape::new();
    let out = model.forward(&tape, tape.constant(data.features.clone()));
    let by_hand = loss::cross_entropy(out, &data.labels()).item();
    assert!((eval.loss - by_hand).abs() < 1e-12, "{} vs {by_hand}", eval.loss);
    assert_eq!(eval.accuracy, Some(accuracy(&out.value(), &data.labels())));
    assert_eq!(eval.examples, 10);

    // Evaluation leaves eval mode alone too.
    let again = evaluate(&mut model, &data, 3, |out, b| {
        loss::cross_entropy(out, &b.labels())
    });
    assert!(!model.is_training());
    assert!((again.loss - by_hand).abs() < 1e-12);
}

#[test]
fn evaluate_restores_training_mode_when_the_loss_panics() {
    let mut rng = StdRng::seed_from_u64(4);
    let data = tapegrad::data::moons::<f64, _>(6, 0.1, &mut rng);
    let mut model = dropout_model(&mut rng);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        evaluate(&mut model, &data, 3, |_, _| panic!("a bad loss"))
    }));
    assert!(caught.is_err(), "the loss's panic reaches the caller");
    assert!(
        model.is_training(),
        "evaluate must restore training mode after a panic"
    );
}

#[test]
fn evaluate_changes_no_parameter() {
    let mut rng = StdRng::seed_from_u64(5);
    let data = tapegrad::data::xor::<f32>();
    let mut model = Mlp::new(&[2, 4, 2], Activation::Relu, &mut rng);
    let before: Vec<_> = model.parameters().iter().map(Param::value).collect();
    evaluate(&mut model, &data, 2, |out, b| {
        loss::cross_entropy(out, &b.labels())
    });
    let after: Vec<_> = model.parameters().iter().map(Param::value).collect();
    assert_eq!(before, after);
}

#[test]
fn evaluate_of_an_empty_dataset_is_zero() {
    let mut rng = StdRng::seed_from_u64(5);
    let data = Dataset::new(Tensor::<f32>::zeros(&[0, 2]), Tensor::zeros(&[0]));
    let mut model = Mlp::new(&[2, 2], Activation::Relu, &mut rng);
    let eval = evaluate(&mut model, &data, 8, |out, b| {
        loss::cross_entropy(out, &b.labels())
    });
    assert_eq!((eval.loss, eval.accuracy, eval.examples), (0.0, Some(0.0), 0));
}

/// A one-weight model, for watching which epoch's value early stopping keeps.
fn one_weight(value: f64) -> Linear<f64> {
    Linear::from_params(Param::new(Tensor::full(&[1, 1], value)), None)
}

#[test]
fn early_stopping_counts_min_delta_and_nan_as_no_improvement() {
    let model = one_weight(0.0);
    let mut stopper = EarlyStopping::new(3).min_delta(0.1);
    let losses = [1.0, 0.95, f64::NAN, 0.92, 0.5];
    let mut stops = Vec::new();
    for (epoch, loss) in losses.into_iter().enumerate() {
        model.weight.set_value(Tensor::full(&[1, 1], epoch as f64));
        stops.push(stopper.step(loss, &model));
    }
    // 0.95 and NaN do not beat 1.0 - 0.1; 0.92 does not beat 1.0 by more than 0.1 either.
    assert_eq!(stops, [false, false, false, true, false]);
    assert_eq!(stopper.best_epoch(), 4);
    assert_eq!(stopper.epochs_without_improvement(), 0);
    model.weight.set_value(Tensor::full(&[1, 1], -1.0));
    stopper.restore_best(&model);
    assert_eq!(model.weight.value().to_vec(), [4.0]);
}

#[test]
fn early_stopping_before_any_improvement_restores_nothing() {
    let model = one_weight(2.0);
    let mut stopper = EarlyStopping::new(1);
    assert!(stopper.step(f64::NAN, &model));
    stopper.restore_best(&model);
    assert_eq!(model.weight.value().to_vec(), [2.0]);
    assert_eq!(stopper.best_loss(), f64::INFINITY);
}

#[test]
fn early_stopping_restores_buffers_too() {
    // BatchNorm's running statistics are buffers: the best model includes them.
    let mut rng = StdRng::seed_from_u64(2);
    let bn = BatchNorm1d::<f64>::new(2);
    let mut stopper = EarlyStopping::new(5);
    let tape = Tape::new();
    bn.forward(&tape, tape.constant(Tensor::randn(&[8, 2], &mut rng)));
    stopper.step(1.0, &bn);
    let best: Vec<Tensor<f64>> = bn.named_buffers().iter().map(|(_, b)| b.value()).collect();
    bn.forward(&tape, tape.constant(Tensor::randn(&[8, 2], &mut rng) * 5.0));
    stopper.step(2.0, &bn);
    let now: Vec<Tensor<f64>> = bn.named_buffers().iter().map(|(_, b)| b.value()).collect();
    assert_ne!(best, now, "the second batch moved the running statistics");
    stopper.restore_best(&bn);
    let restored: Vec<Tensor<f64>> = bn.named_buffers().iter().map(|(_, b)| b.value()).collect();
    assert_eq!(restored, best);
}

#[test]
#[should_panic(expected = "restore_best: `weight` has shape [3, 1], saved [2, 1]")]
fn early_stopping_restore_names_shape_mismatch() {
    let mut stopper = EarlyStopping::new(2);
    let small = Linear::<f32>::from_params(Param::new(Tensor::zeros(&[2, 1])), None);
    stopper.step(1.0, &small);
    stopper.restore_best(&Linear::from_params(Param::new(Tensor::zeros(&[3, 1])), None));
}

#[test]
fn evaluate_of_regression_data_has_a_loss_and_no_accuracy() {
    let mut rng = StdRng::seed_from_u64(8);
    let data = tapegrad::data::linear::<f64, _>(30, 0.1, &mut rng);
    let mut model = Linear::new(1, 1, &mut rng);
    let eval = evaluate(&mut model, &data, 7, |out, batch| {
        loss::mse(out, out.tape().constant(batch.targets.clone()))
    });
    assert_eq!(eval.accuracy, None);
    assert!(eval.loss > 0.0 && eval.examples == 30);
}

#[test]
fn progress_lines_count_epochs_and_keep_history() {
    let mut progress = Progress::new(12).quiet(true);
    progress.epoch(&[("loss", 2.0)]);
    progress.epoch(&[("loss", 1.0), ("acc", 0.5)]);
    let lines = progress.lines();
    assert!(
        lines[0].starts_with("epoch  1/12  loss 2.0000  ("),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("epoch  2/12  loss 1.0000  acc 0.5000  ("),
        "{}",
        lines[1]
    );
    assert!(lines[1].ends_with(" s)"));
    assert_eq!(progress.history("loss"), [2.0, 1.0]);
    assert_eq!(progress.history("acc"), [0.5]);
    assert!(progress.history("missing").is_empty());
    let mut open_ended = Progress::new(0).quiet(true);
    assert!(open_ended.epoch(&[]).0.starts_with("epoch 1  ("));
}

/// A named function rather than a closure in a variable: closures stored before use do not get
/// the `for<'t>` signature `evaluate` asks for.
fn ce<'t>(out: Var<'t, f64>, batch: &tapegrad::data::Batch<f64>) -> Var<'t, f64> {
    loss::cross_entropy(out, &batch.labels())
}

#[test]
fn early_stopping_ends_an_overfitting_run_and_restores_the_best_validation_loss() {
    // Few noisy examples and a wide network: validation loss turns up while training loss falls.
    let mut rng = StdRng::seed_from_u64(11);
    let train = tapegrad::data::moons::<f64, _>(20, 0.35, &mut rng);
    let valid = tapegrad::data::moons::<f64, _>(200, 0.35, &mut rng);
    let mut model = Mlp::new(&[2, 64, 64, 2], Activation::Relu, &mut rng);
    let mut opt = Adam::new(
        model.parameters(),
        AdamConfig {
            lr: 0.01,
            ..Default::default()
        },
    );
    let mut stopper = EarlyStopping::new(10);
    let mut tape = Tape::new();
    let mut epochs = 0;
    for _ in 0..2000 {
        epochs += 1;
        tape.reset();
        let out = model.forward(&tape, tape.constant(train.features.clone()));
        let grads = loss::cross_entropy(out, &train.labels()).backward();
        tape.reset();
        opt.step(&grads);
        let val = evaluate(&mut model, &valid, 100, ce);
        if stopper.step(val.loss, &model) {
            break;
        }
    }
    assert!(epochs < 2000, "validation loss kept improving for 2000 epochs");
    stopper.restore_best(&model);
    let restored = evaluate(&mut model, &valid, 100, ce);
    assert_eq!(restored.loss, stopper.best_loss());
}

#[test]
fn random_split_partitions_the_examples() {
    let features = Tensor::<f64>::from_fn(&[10, 2], |i| i as f64);
    let targets = Tensor::from_fn(&[10], |i| (i % 3) as f64);
    let ds = Dataset::new(features, targets);
    let (a, b) = ds.random_split(7, &mut StdRng::seed_from_u64(1));
    assert_eq!((a.len(), b.len()), (7, 3));
    let mut firsts: Vec<f64> = a
        .features
        .as_slice()
        .chunks(2)
        .chain(b.features.as_slice().chunks(2))
        .map(|r| r[0])
        .collect();
    // Each row kept whole and with its target; together they are every example once.
    for (part, rows) in [(&a, a.features.as_slice()), (&b, b.features.as_slice())] {
        for (row, t) in rows.chunks(2).zip(part.targets.as_slice()) {
            assert_eq!(row[1], row[0] + 1.0);
            assert_eq!(*t, ((row[0] / 2.0) as usize % 3) as f64);
        }
    }
    firsts.sort_by(f64::total_cmp);
    assert_eq!(firsts, (0..10).map(|i| 2.0 * i as f64).collect::<Vec<_>>());
    let (all, none) = ds.random_split(10, &mut StdRng::seed_from_u64(1));
    assert_eq!((all.len(), none.len()), (10, 0));
}

#[test]
#[should_panic(expected = "Dataset::random_split: cannot take 11 of 10 examples")]
fn random_split_names_an_impossible_size() {
    let ds = Dataset::new(Tensor::<f32>::zeros(&[10, 1]), Tensor::zeros(&[10]));
    ds.random_split(11, &mut StdRng::seed_from_u64(1));
}
