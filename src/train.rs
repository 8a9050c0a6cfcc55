//! Training-loop helpers: [`accuracy`], an [`evaluate`] pass that records no gradients,
//! [`EarlyStopping`] on a validation loss and [`Progress`] lines, one per epoch.
//!
//! They are small on purpose: a training loop stays the user's own `for` loop (as in PyTorch),
//! and these fill in the parts everyone writes the same way.
//!
//! ```
//! use tapegrad::prelude::*;
//! use tapegrad::train::{EarlyStopping, Progress, evaluate};
//! use tapegrad::rand::{SeedableRng, rngs::StdRng};
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let train = tapegrad::data::moons::<f32, _>(160, 0.1, &mut rng);
//! let valid = tapegrad::data::moons::<f32, _>(40, 0.1, &mut rng);
//! let mut model = Mlp::new(&[2, 16, 16, 2], Activation::Relu, &mut rng);
//! let mut opt = Adam::new(model.parameters(), AdamConfig { lr: 0.02, ..Default::default() });
//! let mut stopper = EarlyStopping::new(5);
//! let mut progress = Progress::new(100).quiet(true);      // quiet: no printing in tests
//! let mut tape = Tape::new();
//! for _epoch in 0..100 {
//!     model.train(true);
//!     for batch in train.batches(32).shuffle(&mut rng) {
//!         tape.reset();
//!         let out = model.forward(&tape, tape.constant(batch.features.clone()));
//!         let grads = loss::cross_entropy(out, &batch.labels()).backward();
//!         tape.reset();
//!         opt.step(&grads);
//!     }
//!     let val = evaluate(&mut model, &valid, 64, |out, batch| loss::cross_entropy(out, &batch.labels()));
//!     progress.epoch(&[("val_loss", val.loss), ("val_acc", val.accuracy.unwrap_or(0.0))]);
//!     if stopper.step(val.loss, &model) {
//!         break;
//!     }
//! }
//! stopper.restore_best(&model);
//! let val = evaluate(&mut model, &valid, 64, |out, batch| loss::cross_entropy(out, &batch.labels()));
//! assert!(val.accuracy.unwrap() > 0.95, "{val:?}");
//! assert_eq!(val.loss, stopper.best_loss());
//! ```

use std::fmt::Write as _;
use std::time::Instant;

use crate::data::{Batch, Dataset};
use crate::nn::{Forward, Module};
use crate::{Float, Param, Tape, Tensor, Var};

/// The fraction of rows whose predicted class is the label.
///
/// The prediction of a row of `outputs` (`[N, C]`, `C ≥ 2`) is its largest entry (the first one on
/// ties), as `argmax` in PyTorch. A single score per row (`[N]` or `[N, 1]`) is read as a logit for
/// class 1: class 1 when the score is positive, the convention of
/// [`loss::binary_cross_entropy_with_logits`](crate::loss::binary_cross_entropy_with_logits). An empty batch has accuracy 0.
///
/// # Panics
/// If `outputs` has rank above 2 or no columns, or `labels` does not have one entry per row.
///
/// ```
/// use tapegrad::{Tensor, train::accuracy};
/// let logits = Tensor::from_vec(vec![2.0, 1.0, 0.0, 0.5, 3.0, -1.0], &[2, 3]);
/// assert_eq!(accuracy(&logits, &[0, 2]), 0.5);
/// let scores = Tensor::from_vec(vec![0.3, -2.0, 1.0, -0.1], &[4]);
/// assert_eq!(accuracy(&scores, &[1, 0, 0, 0]), 0.75);
/// ```
#[track_caller]
pub fn accuracy<T: Float>(outputs: &Tensor<T>, labels: &[usize]) -> f64 {
    let correct = correct_predictions(outputs, labels);
    if labels.is_empty() {
        0.0
    } else {
        correct as f64 / labels.len() as f64
    }
}

/// The class each row of `outputs` predicts, by the rule of [`accuracy`]: the index of the
/// largest entry of a `[N, C]` row (`C ≥ 2`), or class 1 for a positive single score.
///
/// # Panics
/// If `outputs` has rank above 2 or no columns.
///
/// ```
/// use tapegrad::{Tensor, train::predicted_classes};
/// let logits = Tensor::from_vec(vec![0.1, 0.7, 0.2, 3.0, -1.0, 0.0], &[2, 3]);
/// assert_eq!(predicted_classes(&logits), [1, 0]);
/// assert_eq!(predicted_classes(&Tensor::from_vec(vec![-0.5, 2.0], &[2, 1])), [0, 1]);
/// ```
#[track_caller]
pub fn predicted_classes<T: Float>(outputs: &Tensor<T>) -> Vec<usize> {
    let shape = outputs.shape();
    let classes = match shape.len() {
        0 | 1 => 1,
        2 => shape[1],
        _ => panic!("tapegrad: predicted_classes: outputs must be [N] or [N, C], got {shape:?}"),
    };
    assert!(
        classes > 0,
        "tapegrad: predicted_classes: outputs {shape:?} have no class scores"
    );
    let values = outputs.as_slice();
    if classes == 1 {
        values.iter().map(|&s| usize::from(s > T::ZERO)).collect()
    } else {
        values.chunks_exact(classes).map(argmax).collect()
    }
}

/// How many rows of `outputs` predict their label (see [`accuracy`]).
#[track_caller]
fn correct_predictions<T: Float>(outputs: &Tensor<T>, labels: &[usize]) -> usize {
    let shape = outputs.shape();
    assert!(
        shape.len() <= 2,
        "tapegrad: accuracy: outputs must be [N] or [N, C], got {shape:?}"
    );
    let rows = shape.first().copied().unwrap_or(1);
    assert_eq!(
        rows,
        labels.len(),
        "tapegrad: accuracy: outputs {shape:?} have {rows} rows but there are {} labels",
        labels.len()
    );
    predicted_classes(outputs)
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count()
}

/// The index of the first largest value; NaN never wins.
fn argmax<T: Float>(row: &[T]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] || row[best].is_nan() && !v.is_nan() {
            best = i;
        }
    }
    best
}

/// The result of [`evaluate`]: the mean loss per example and the [`accuracy`] over a dataset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// The loss averaged over examples (each batch's mean loss weighted by its size).
    pub loss: f64,
    /// The fraction of examples whose predicted class is their label (see [`accuracy`]), or `None`
    /// when the targets are not one class index per example (regression).
    pub accuracy: Option<f64>,
    /// How many examples were evaluated.
    pub examples: usize,
}

/// Runs `model` over `data` in batches of `batch_size` in evaluation mode and without recording
/// gradients (PyTorch's `model.eval()` plus `torch.no_grad()`), and returns the mean loss and,
/// for class-index targets, the accuracy. The model's mode is restored afterwards.
///
/// `loss` gets the model's output for a batch and the batch, and returns the batch's mean loss.
///
/// # Panics
/// If `batch_size` is zero.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::train::evaluate;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let data = tapegrad::data::xor::<f64>();
/// let mut model = Mlp::new(&[2, 4, 2], Activation::Tanh, &mut rng);
/// let eval = evaluate(&mut model, &data, 3, |out, batch| loss::cross_entropy(out, &batch.labels()));
/// assert_eq!(eval.examples, 4);
/// assert!(eval.accuracy.is_some());
/// assert!(model.is_training()); // restored
///
/// // Regression targets: a loss and no accuracy.
/// let line = tapegrad::data::linear::<f64, _>(20, 0.1, &mut rng);
/// let mut fit = Linear::new(1, 1, &mut rng);
/// let eval = evaluate(&mut fit, &line, 8, |out, batch| loss::mse(out, out.tape().constant(batch.targets.clone())));
/// assert_eq!(eval.accuracy, None);
/// ```
#[track_caller]
pub fn evaluate<T, M, F>(model: &mut M, data: &Dataset<T>, batch_size: usize, mut loss: F) -> Evaluation
where
    T: Float,
    M: Forward<T> + ?Sized,
    F: for<'t> FnMut(Var<'t, T>, &Batch<T>) -> Var<'t, T>,
{
    assert!(batch_size > 0, "tapegrad: evaluate: batch_size must be positive");
    let eval_mode = EvalMode::enter(model);
    let model = &*eval_mode.model;
    let mut tape = Tape::new();
    let (mut loss_sum, mut correct, mut examples) = (0.0, Some(0), 0);
    for batch in data.batches(batch_size) {
        tape.reset();
        let (batch_loss, outputs) = tape.no_grad(|| {
            let out = model.forward(&tape, tape.constant(batch.features.clone()));
            (loss(out, &batch).item().to_f64(), out.value())
        });
        loss_sum += batch_loss * batch.len() as f64;
        correct = correct
            .zip(class_labels(&batch, &outputs))
            .map(|(sum, labels)| sum + correct_predictions(&outputs, &labels));
        examples += batch.len();
    }
    drop(eval_mode);
    let per_example = |x: f64| if examples == 0 { 0.0 } else { x / examples as f64 };
    Evaluation {
        loss: per_example(loss_sum),
        accuracy: correct.map(|c| per_example(c as f64)),
        examples,
    }
}

/// Holds a module in eval mode and puts its previous mode back when dropped, also when the loss
/// closure panics and the panic is caught further up.
struct EvalMode<'m, T: Float, M: Module<T> + ?Sized> {
    model: &'m mut M,
    was_training: bool,
    element: std::marker::PhantomData<T>,
}

impl<'m, T: Float, M: Module<T> + ?Sized> EvalMode<'m, T, M> {
    fn enter(model: &'m mut M) -> Self {
        let was_training = model.is_training();
        model.train(false);
        EvalMode {
            model,
            was_training,
            element: std::marker::PhantomData,
        }
    }
}

impl<T: Float, M: Module<T> + ?Sized> Drop for EvalMode<'_, T, M> {
    fn drop(&mut self) {
        self.model.train(self.was_training);
    }
}

/// The batch's targets as class indices, if they are one whole non-negative number per example
/// and the outputs have one row per example.
fn class_labels<T: Float>(batch: &Batch<T>, outputs: &Tensor<T>) -> Option<Vec<usize>> {
    let targets = batch.targets.as_slice();
    let rows = outputs.shape().first().copied();
    if targets.len() != batch.len() || rows != Some(batch.len()) || outputs.shape().len() > 2 {
        return None;
    }
    targets
        .iter()
        .map(|t| {
            let v = t.to_f64();
            (v >= 0.0 && v.fract() == 0.0).then_some(v as usize)
        })
        .collect()
}

/// Stops training when the validation loss has not improved for `patience` epochs (Keras's
/// `EarlyStopping`, PyTorch Lightning's callback), remembering the best model seen: its
/// parameters and its buffers (such as [`BatchNorm1d`](crate::nn::BatchNorm1d)'s running
/// statistics).
///
/// An epoch improves when its loss is below the best so far by more than `min_delta`; a NaN loss
/// never improves. A patience of 0 acts as 1 (stop after the first epoch without improvement).
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::train::EarlyStopping;
///
/// let model = Linear::<f32>::from_params(Param::new(Tensor::zeros(&[1, 1])), None);
/// let mut stopper = EarlyStopping::new(2);
/// let mut stopped_at = None;
/// for (epoch, val_loss) in [1.0, 0.5, 0.6, 0.55, 0.4].into_iter().enumerate() {
///     model.weight.set_value(Tensor::full(&[1, 1], epoch as f32));
///     if stopper.step(val_loss, &model) {
///         stopped_at = Some(epoch);
///         break;
///     }
/// }
/// assert_eq!(stopped_at, Some(3));          // two epochs without beating 0.5
/// assert_eq!((stopper.best_epoch(), stopper.best_loss()), (1, 0.5));
/// stopper.restore_best(&model);
/// assert_eq!(model.weight.value().to_vec(), [1.0]); // the parameters of epoch 1
/// ```
#[derive(Clone, Debug)]
pub struct EarlyStopping<T: Float = f32> {
    patience: usize,
    min_delta: f64,
    best_loss: f64,
    best_epoch: usize,
    epochs: usize,
    bad_epochs: usize,
    best_params: Vec<Tensor<T>>,
}

impl<T: Float> EarlyStopping<T> {
    /// Stops after `patience` epochs in a row without improvement.
    pub fn new(patience: usize) -> Self {
        EarlyStopping {
            patience,
            min_delta: 0.0,
            best_loss: f64::INFINITY,
            best_epoch: 0,
            epochs: 0,
            bad_epochs: 0,
            best_params: Vec::new(),
        }
    }

    /// Counts an epoch as an improvement only when the loss drops by more than `min_delta`.
    ///
    /// # Panics
    /// If `min_delta` is negative or NaN.
    #[track_caller]
    pub fn min_delta(mut self, min_delta: f64) -> Self {
        assert!(
            min_delta >= 0.0,
            "tapegrad: EarlyStopping::min_delta: {min_delta} must be at least 0"
        );
        self.min_delta = min_delta;
        self
    }

    /// Records one epoch's validation loss; keeps a copy of the model's parameters and buffers
    /// when it is the best so far. Returns `true` when training should stop.
    pub fn step<M: Module<T> + ?Sized>(&mut self, val_loss: f64, model: &M) -> bool {
        let epoch = self.epochs;
        self.epochs += 1;
        if val_loss < self.best_loss - self.min_delta {
            self.best_loss = val_loss;
            self.best_epoch = epoch;
            self.best_params = state(model).iter().map(|(_, p)| p.value()).collect();
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        self.bad_epochs >= self.patience.max(1)
    }

    /// Epochs in a row without improvement (0 right after an improvement).
    pub fn epochs_without_improvement(&self) -> usize {
        self.bad_epochs
    }

    /// The best validation loss so far (infinity before any finite loss).
    pub fn best_loss(&self) -> f64 {
        self.best_loss
    }

    /// The epoch (counted from 0) with the best loss.
    pub fn best_epoch(&self) -> usize {
        self.best_epoch
    }

    /// Puts the best epoch's parameters and buffers back into `model` (the model given to
    /// [`step`](EarlyStopping::step)). Does nothing before the first improvement.
    ///
    /// # Panics
    /// If `model` has other parameters or shapes than the one saved.
    #[track_caller]
    pub fn restore_best<M: Module<T> + ?Sized>(&self, model: &M) {
        if self.best_params.is_empty() {
            return;
        }
        let params = state(model);
        assert_eq!(
            params.len(),
            self.best_params.len(),
            "tapegrad: EarlyStopping::restore_best: {} parameters given, {} saved",
            params.len(),
            self.best_params.len()
        );
        for ((name, p), best) in params.iter().zip(&self.best_params) {
            assert_eq!(
                p.shape(),
                best.shape(),
                "tapegrad: EarlyStopping::restore_best: `{name}` has shape {:?}, saved {:?}",
                p.shape(),
                best.shape()
            );
            p.set_value(best.clone());
        }
    }
}

/// A model's parameters then its buffers, by name.
fn state<T: Float, M: Module<T> + ?Sized>(model: &M) -> Vec<(String, Param<T>)> {
    let mut all = model.named_parameters();
    all.extend(model.named_buffers());
    all
}

/// Progress reporting: one line per epoch with named numbers and the elapsed time, printed to
/// standard output unless quiet, and kept as a history for plotting.
///
/// ```
/// use tapegrad::train::Progress;
///
/// let mut progress = Progress::new(3).quiet(true);
/// for epoch in 0..3 {
///     let (line, _) = progress.epoch(&[("loss", 1.0 / (epoch + 1) as f64), ("accuracy", 0.9)]);
///     assert!(line.starts_with(&format!("epoch {}/3", epoch + 1)));
/// }
/// assert_eq!(progress.history("loss"), vec![1.0, 0.5, 1.0 / 3.0]);
/// assert!(progress.lines()[1].contains("loss 0.5000  accuracy 0.9000"));
/// ```
#[derive(Clone, Debug)]
pub struct Progress {
    epochs: usize,
    quiet: bool,
    every: usize,
    start: Instant,
    lines: Vec<String>,
    history: Vec<Vec<(String, f64)>>,
}

impl Progress {
    /// Reporting for a run of `epochs` epochs (0 if unknown); the clock starts now.
    pub fn new(epochs: usize) -> Self {
        Progress {
            epochs,
            quiet: false,
            every: 1,
            start: Instant::now(),
            lines: Vec::new(),
            history: Vec::new(),
        }
    }

    /// With `true`, nothing is printed (the lines and history are still kept).
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// Prints only every `n`-th epoch's line (and the first and last); all are kept.
    ///
    /// ```
    /// use tapegrad::train::Progress;
    /// let mut progress = Progress::new(100).quiet(true).every(10);
    /// let printed = (0..100).filter(|_| progress.epoch(&[("loss", 1.0)]).1).count();
    /// assert_eq!(printed, 11); // epochs 1, 10, 20, ..., 100
    /// ```
    pub fn every(mut self, n: usize) -> Self {
        self.every = n.max(1);
        self
    }

    /// Records the end of an epoch with its numbers and returns its line,
    /// `epoch 3/20  loss 0.1234  val_acc 0.9500  (1.2 s)`, with whether it is one to show (see
    /// [`every`](Progress::every)); shown lines are printed unless quiet.
    pub fn epoch(&mut self, values: &[(&str, f64)]) -> (&str, bool) {
        let n = self.lines.len() + 1;
        let mut line = if self.epochs > 0 {
            let width = self.epochs.to_string().len();
            format!("epoch {n:>width$}/{}", self.epochs)
        } else {
            format!("epoch {n}")
        };
        for (name, value) in values {
            let _ = write!(line, "  {name} {value:.4}");
        }
        let _ = write!(line, "  ({:.1} s)", self.start.elapsed().as_secs_f64());
        let shown = n == 1 || n.is_multiple_of(self.every) || n == self.epochs;
        if shown && !self.quiet {
            println!("{line}");
        }
        self.history
            .push(values.iter().map(|(k, v)| (k.to_string(), *v)).collect());
        self.lines.push(line);
        (self.lines.last().map_or("", String::as_str), shown)
    }

    /// Every line so far.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The values recorded under `name`, one per epoch that reported it.
    pub fn history(&self, name: &str) -> Vec<f64> {
        self.history
            .iter()
            .filter_map(|row| row.iter().find(|(k, _)| k == name).map(|(_, v)| *v))
            .collect()
    }
}
