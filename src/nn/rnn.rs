//! Recurrent sequence layers: [`Lstm`], [`Gru`] and [`Rnn`] (PyTorch's `nn.LSTM`, `nn.GRU` and
//! `nn.RNN`), configured by [`RnnConfig`].
//!
//! The layers keep PyTorch's parameter names (`weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`,
//! `bias_hh_l0`, `..._reverse` for the backward direction), shapes, gate order (LSTM i, f, g, o;
//! GRU r, z, n) and initialisation, so a `state_dict` saved by PyTorch loads with
//! [`io::load`](crate::io::load) and gives the same numbers. Inputs are `[T, N, input]`
//! (`[N, T, input]` with `batch_first`) or unbatched `[T, input]`; states are
//! `[D * num_layers, N, hidden]` with `D = 2` when bidirectional.
//!
//! - [`Forward::forward`](crate::nn::Forward::forward) returns the output sequence, the last layer's `h` at every step.
//! - `forward_with_state` also takes an initial state and returns the final one (`(h_n, c_n)` for
//!   the LSTM): for generation, and for truncated backpropagation through time (carry the state
//!   over with [`Var::detach`] or its value on a new tape).
//! - `forward_with_lengths` runs a padded batch of sequences of different lengths, as PyTorch's
//!   packed sequences do: padded steps leave the state alone and give zero outputs, the final
//!   state is each sequence's state at its last step, and the reverse direction starts at each
//!   sequence's own last step.
//!
//! Every layer is recorded from differentiable ops, so gradients can be differentiated again.
//! The input projection of all time steps is one matrix product before the loop; each step is
//! then one product with `weight_hh` and the gates.
//!
//! ```
//! use tapegrad::prelude::*;
//! use tapegrad::nn::{Lstm, RnnConfig};
//! use tapegrad::rand::{SeedableRng, rngs::StdRng};
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let cfg = RnnConfig { num_layers: 2, batch_first: true, ..Default::default() };
//! let lstm = Lstm::<f32>::new(8, 16, cfg, &mut rng);
//! let head = Linear::<f32>::new(16, 1, &mut rng);
//! let mut opt = Adam::new(
//!     lstm.parameters().into_iter().chain(head.parameters()).collect(),
//!     AdamConfig { lr: 0.01, ..Default::default() },
//! );
//! let x = Tensor::randn(&[4, 10, 8], &mut rng); // [batch, time, features]
//! let y = Tensor::zeros(&[4, 10, 1]);
//! let mut tape = Tape::new();
//! let mut losses = Vec::new();
//! for _ in 0..20 {
//!     tape.reset();
//!     let out = lstm.forward(&tape, tape.constant(x.clone())); // [4, 10, 16]
//!     let loss = loss::mse(head.forward(&tape, out), tape.constant(y.clone()));
//!     losses.push(loss.item());
//!     let grads = loss.backward();
//!     tape.reset();
//!     opt.step(&grads);
//! }
//! assert!(losses[19] < losses[0]);
//!
//! // Generation: carry (h, c) from one call to the next.
//! let tape = Tape::new();
//! let step = tape.constant(Tensor::randn(&[4, 1, 8], &mut rng));
//! let (_, state) = lstm.forward_with_state(&tape, step, None);
//! let (out, (h, c)) = lstm.forward_with_state(&tape, step, Some(state));
//! assert_eq!((out.shape(), h.shape(), c.shape()), (vec![4, 1, 16], vec![2, 4, 16], vec![2, 4, 16]));
//! ```

use rand::{Rng, RngExt};

use super::rnn_cell::{CellKind, CellParams};
pub use super::rnn_cell::{GruCell, LstmCell, RnnCell, RnnNonlinearity};
use super::{Generator, Module};
use crate::{Float, Param, Tape, Tensor, Var};

/// The options of [`Lstm`], [`Gru`] and [`Rnn`], with PyTorch's defaults: one layer, biases,
/// time-major input, one direction, no dropout, tanh.
///
/// ```
/// use tapegrad::nn::{RnnConfig, RnnNonlinearity};
/// let cfg = RnnConfig::default();
/// assert_eq!((cfg.num_layers, cfg.bias, cfg.batch_first, cfg.bidirectional), (1, true, false, false));
/// assert_eq!((cfg.dropout, cfg.nonlinearity), (0.0, RnnNonlinearity::Tanh));
/// let deep = RnnConfig { num_layers: 3, dropout: 0.2, ..Default::default() };
/// assert!(deep.bias);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RnnConfig {
    /// Stacked layers; layer `k > 0` reads layer `k - 1`'s output sequence.
    pub num_layers: usize,
    /// Whether each layer has `bias_ih` and `bias_hh`.
    pub bias: bool,
    /// Input and output as `[N, T, features]` instead of `[T, N, features]` (states keep
    /// `[D * num_layers, N, hidden]` either way, as in PyTorch).
    pub batch_first: bool,
    /// A second direction per layer, run from the last step back; outputs are concatenated
    /// (forward first) to `2 * hidden` features.
    pub bidirectional: bool,
    /// Dropout probability in `[0, 1)` on each layer's output except the last, in training mode
    /// only (the masks come from the layer's own generator, seeded at construction).
    pub dropout: f64,
    /// [`Rnn`]'s nonlinearity (ignored by [`Lstm`] and [`Gru`]).
    pub nonlinearity: RnnNonlinearity,
}

impl Default for RnnConfig {
    fn default() -> Self {
        RnnConfig {
            num_layers: 1,
            bias: true,
            batch_first: false,
            bidirectional: false,
            dropout: 0.0,
            nonlinearity: RnnNonlinearity::Tanh,
        }
    }
}

/// The state of one layer and direction while the sequence is run: `None` is the zero state.
type State<'t, T> = (Option<Var<'t, T>>, Option<Var<'t, T>>);

/// The machinery shared by the three layers.
#[derive(Debug)]
struct Recurrent<T: Float> {
    kind: CellKind,
    input_size: usize,
    hidden_size: usize,
    cfg: RnnConfig,
    /// `layers[l][d]`: layer `l`, direction `d` (0 forward, 1 reverse).
    layers: Vec<Vec<CellParams<T>>>,
    /// Masks of the dropout between layers.
    generator: Generator,
    training: bool,
}

/// What the shape checks found about an input.
struct Layout {
    steps: usize,
    batch: usize,
    unbatched: bool,
}

impl<T: Float> Recurrent<T> {
    #[track_caller]
    fn new<R: Rng + ?Sized>(
        kind: CellKind,
        input: usize,
        hidden: usize,
        cfg: RnnConfig,
        rng: &mut R,
    ) -> Self {
        let name = kind.layer_name();
        assert!(
            cfg.num_layers >= 1,
            "tapegrad: {name}: num_layers must be at least 1, got {}",
            cfg.num_layers
        );
        assert!(
            hidden >= 1,
            "tapegrad: {name}: hidden_size must be at least 1, got {hidden}"
        );
        assert!(
            (0.0..1.0).contains(&cfg.dropout),
            "tapegrad: {name}: dropout must be in [0, 1), got {}",
            cfg.dropout
        );
        let dirs = if cfg.bidirectional { 2 } else { 1 };
        let layers = (0..cfg.num_layers)
            .map(|l| {
                let layer_input = if l == 0 { input } else { dirs * hidden };
                (0..dirs)
                    .map(|_| CellParams::init(kind, layer_input, hidden, cfg.bias, rng))
                    .collect()
            })
            .collect();
        let seed = rng.random::<u64>();
        Recurrent {
            kind,
            input_size: input,
            hidden_size: hidden,
            cfg,
            layers,
            generator: Generator::new(seed),
            training: true,
        }
    }

    fn directions(&self) -> usize {
        if self.cfg.bidirectional { 2 } else { 1 }
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        let mut out = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            for (d, params) in layer.iter().enumerate() {
                let suffix = if d == 0 {
                    format!("_l{l}")
                } else {
                    format!("_l{l}_reverse")
                };
                out.extend(params.named(&suffix));
            }
        }
        out
    }

    /// Checks the input's shape; returns the time steps, the batch and whether it is unbatched.
    #[track_caller]
    fn layout(&self, shape: &[usize]) -> Layout {
        let name = self.kind.layer_name();
        let inp = self.input_size;
        let expected = if self.cfg.batch_first {
            "[N, T, input_size] (batch_first) or unbatched [T, input_size]"
        } else {
            "[T, N, input_size] or unbatched [T, input_size]"
        };
        let layout = match *shape {
            [t, n, i] if i == inp => {
                let (steps, batch) = if self.cfg.batch_first { (n, t) } else { (t, n) };
                Layout {
                    steps,
                    batch,
                    unbatched: false,
                }
            }
            [t, i] if i == inp => Layout {
                steps: t,
                batch: 1,
                unbatched: true,
            },
            _ => panic!(
                "tapegrad: {name}: input shape {shape:?} must be {expected} with input_size {inp} \
                 (hidden_size {})",
                self.hidden_size
            ),
        };
        assert!(
            layout.steps > 0,
            "tapegrad: {name}: input shape {shape:?} has no time steps"
        );
        layout
    }

    /// Checks an initial state's shape (`what` names it in the message).
    #[track_caller]
    fn check_state(&self, what: &str, state: &Var<'_, T>, layout: &Layout) {
        let s = state.shape();
        let (k, h) = (self.directions() * self.cfg.num_layers, self.hidden_size);
        let (ok, want) = if layout.unbatched {
            (s == [k, h], format!("[{k}, {h}]"))
        } else {
            (s == [k, layout.batch, h], format!("[{k}, {}, {h}]", layout.batch))
        };
        assert!(
            ok,
            "tapegrad: {}: initial state {what} has shape {s:?}, expected {want} \
             (D * num_layers = {k}{}, hidden_size {h})",
            self.kind.layer_name(),
            if layout.unbatched {
                String::new()
            } else {
                format!(", batch {}", layout.batch)
            }
        );
    }

    /// Runs the layers. Returns the output sequence (in the input's layout), `h_n` and, for an
    /// LSTM, `c_n`.
    #[track_caller]
    fn run<'t>(
        &self,
        tape: &'t Tape<T>,
        x: Var<'t, T>,
        h0: Option<Var<'t, T>>,
        c0: Option<Var<'t, T>>,
        lengths: Option<&[usize]>,
    ) -> (Var<'t, T>, Var<'t, T>, Option<Var<'t, T>>) {
        let name = self.kind.layer_name();
        let layout = self.layout(&x.shape());
        if let Some(h0) = &h0 {
            self.check_state("h_0", h0, &layout);
        }
        if let Some(c0) = &c0 {
            self.check_state("c_0", c0, &layout);
        }
        let (steps, batch) = (layout.steps, layout.batch);
        if let Some(lengths) = lengths {
            assert!(
                lengths.len() == batch,
                "tapegrad: {name}: {} lengths {lengths:?} for a batch of {batch} sequences \
                 (input shape {:?})",
                lengths.len(),
                x.shape()
            );
            if let Some(&bad) = lengths.iter().find(|&&l| l > steps) {
                panic!(
                    "tapegrad: {name}: length {bad} in {lengths:?} is longer than the {steps} time \
                     steps of the input (shape {:?})",
                    x.shape()
                );
            }
        }
        // [T, N, features] from here on.
        let mut seq = if layout.unbatched {
            x.unsqueeze(1)
        } else if self.cfg.batch_first {
            x.transpose(0, 1)
        } else {
            x
        };
        let lift = |v: Var<'t, T>| if layout.unbatched { v.unsqueeze(1) } else { v };
        let (h0, c0) = (h0.map(lift), c0.map(lift));
        // Masks only where some sequence is shorter than the input: (valid, padded) at each step.
        let masks: Option<Vec<(Tensor<bool>, Tensor<bool>)>> =
            lengths.filter(|ls| ls.iter().any(|&l| l < steps)).map(|ls| {
                (0..steps)
                    .map(|t| {
                        let valid = Tensor::from_fn(&[batch, 1], |n| t < ls[n]);
                        let padded = Tensor::from_fn(&[batch, 1], |n| t >= ls[n]);
                        (valid, padded)
                    })
                    .collect()
            });
        let (dirs, hidden) = (self.directions(), self.hidden_size);
        let mut final_h = Vec::with_capacity(dirs * self.cfg.num_layers);
        let mut final_c = Vec::with_capacity(dirs * self.cfg.num_layers);
        for (l, layer) in self.layers.iter().enumerate() {
            let features = seq.shape()[2];
            let flat = seq.reshape(&[steps * batch, features]);
            let mut outputs = Vec::with_capacity(dirs);
            for (d, params) in layer.iter().enumerate() {
                let k = l * dirs + d;
                let initial = |s: &Option<Var<'t, T>>| s.map(|s| s.narrow(0, k, 1).squeeze(0));
                let mut state: State<'t, T> = (initial(&h0), initial(&c0));
                let bound = params.bind(self.kind, hidden, tape);
                let projected = bound.project(flat);
                let mut outs: Vec<Option<Var<'t, T>>> = vec![None; steps];
                let order: Box<dyn Iterator<Item = usize>> = if d == 0 {
                    Box::new(0..steps)
                } else {
                    Box::new((0..steps).rev())
                };
                for t in order {
                    let xp = projected.narrow(0, t * batch, batch);
                    let (h, c) = bound.step(xp, state.0, state.1);
                    match &masks {
                        None => {
                            outs[t] = Some(h);
                            state = (Some(h), c);
                        }
                        Some(masks) => {
                            let (valid, padded) = &masks[t];
                            let keep = |new: Var<'t, T>, old: Option<Var<'t, T>>| match old {
                                Some(old) => Var::where_cond(valid, new, old),
                                None => new.masked_fill(padded, T::ZERO),
                            };
                            outs[t] = Some(h.masked_fill(padded, T::ZERO));
                            state = (Some(keep(h, state.0)), c.map(|c| keep(c, state.1)));
                        }
                    }
                }
                let outs: Vec<Var<'t, T>> = outs.into_iter().map(|o| o.expect("every step ran")).collect();
                outputs.push(Var::stack(&outs, 0));
                final_h.push(state.0.expect("at least one step ran"));
                if let Some(c) = state.1 {
                    final_c.push(c);
                }
            }
            seq = if dirs == 1 {
                outputs[0]
            } else {
                Var::cat(&outputs, 2)
            };
            if l + 1 < self.cfg.num_layers && self.training && self.cfg.dropout > 0.0 {
                seq = self.dropout(tape, seq);
            }
        }
        let lower = |v: Var<'t, T>| if layout.unbatched { v.squeeze(1) } else { v };
        let out = if layout.unbatched {
            seq.squeeze(1)
        } else if self.cfg.batch_first {
            seq.transpose(0, 1)
        } else {
            seq
        };
        let h_n = lower(Var::stack(&final_h, 0));
        let c_n = (!final_c.is_empty()).then(|| lower(Var::stack(&final_c, 0)));
        (out, h_n, c_n)
    }

    fn dropout<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        x * tape.constant(self.generator.dropout_mask(&x.shape(), self.cfg.dropout))
    }
}

macro_rules! layer_common {
    ($name:ident) => {
        impl<T: Float> $name<T> {
            /// The input size.
            pub fn input_size(&self) -> usize {
                self.inner.input_size
            }

            /// The hidden size `H` (each direction's output width).
            pub fn hidden_size(&self) -> usize {
                self.inner.hidden_size
            }

            /// The configuration the layer was built with.
            pub fn config(&self) -> RnnConfig {
                self.inner.cfg
            }
        }

        impl<T: Float> $name<T> {
            /// The output sequence from the zero state: `[T, N, D * H]` (`[N, T, D * H]` with
            /// `batch_first`, `[T, D * H]` for an unbatched input).
            #[track_caller]
            pub fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
                self.inner.run(tape, x, None, None, None).0
            }
        }

        crate::nn::forward_via_inherent!($name);

        impl<T: Float> Module<T> for $name<T> {
            fn named_parameters(&self) -> Vec<(String, Param<T>)> {
                self.inner.named_parameters()
            }

            /// The generator of the dropout between layers (`generator`).
            fn named_generators(&self) -> Vec<(String, &Generator)> {
                vec![("generator".to_string(), &self.inner.generator)]
            }

            fn train(&mut self, mode: bool) {
                self.inner.training = mode;
            }

            fn is_training(&self) -> bool {
                self.inner.training
            }
        }
    };
}

/// A multi-layer LSTM over a sequence (PyTorch's `nn.LSTM`, without `proj_size`).
///
/// Each layer and direction runs [`LstmCell`]'s step over time:
/// `i, f, g, o = chunk(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh, 4)`, `c' = σ(f) c + σ(i) tanh(g)`,
/// `h' = σ(o) tanh(c')`. Parameters per layer `k` (and `_reverse` for the second direction):
/// `weight_ih_lk [4H, input]` (`[4H, D * H]` above the first layer), `weight_hh_lk [4H, H]`,
/// `bias_ih_lk [4H]`, `bias_hh_lk [4H]`, all from `U(-1/√H, 1/√H)`, listed in PyTorch's
/// `state_dict` order.
///
/// # Panics
/// The constructor panics if `num_layers` or `hidden_size` is 0 or `dropout` is outside
/// `[0, 1)`. The forward methods panic on an input that is not `[T, N, input_size]`
/// (`[N, T, input_size]` with `batch_first`) or `[T, input_size]`, on an initial state that is not
/// `[D * num_layers, N, hidden_size]`, and on lengths that do not match the batch or exceed `T`.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::nn::{Lstm, RnnConfig};
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let cfg = RnnConfig { num_layers: 2, batch_first: true, bidirectional: true, ..Default::default() };
/// let lstm = Lstm::<f32>::new(10, 20, cfg, &mut rng);
/// let tape = Tape::new();
/// let x = tape.constant(Tensor::randn(&[3, 5, 10], &mut rng)); // [N, T, input]
/// assert_eq!(lstm.forward(&tape, x).shape(), vec![3, 5, 40]);
/// let names: Vec<String> = lstm.named_parameters().into_iter().map(|(n, _)| n).take(5).collect();
/// assert_eq!(names, ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_ih_l0_reverse"]);
/// assert_eq!(lstm.parameters().len(), 16);
/// ```
#[derive(Debug)]
pub struct Lstm<T: Float = f32> {
    inner: Recurrent<T>,
}

impl<T: Float> Lstm<T> {
    /// An LSTM initialised as PyTorch's `nn.LSTM(input_size, hidden_size, ...)` with the options
    /// of `cfg` (its `nonlinearity` is ignored).
    #[track_caller]
    pub fn new<R: Rng + ?Sized>(input_size: usize, hidden_size: usize, cfg: RnnConfig, rng: &mut R) -> Self {
        Lstm {
            inner: Recurrent::new(CellKind::Lstm, input_size, hidden_size, cfg, rng),
        }
    }

    /// The output sequence and the final state `(h_n, c_n)`, each `[D * num_layers, N, H]`
    /// (`[D * num_layers, H]` for an unbatched input), from the initial state `(h_0, c_0)` of the
    /// same shape (`None`: zeros), as PyTorch's `lstm(x, (h_0, c_0))`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::nn::{Lstm, RnnConfig};
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    ///
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let lstm = Lstm::<f64>::new(2, 3, RnnConfig::default(), &mut rng);
    /// let x = Tensor::randn(&[6, 1, 2], &mut rng);
    /// let tape = Tape::new();
    /// // Running the sequence in two halves, carrying the state, is running it whole.
    /// let (whole, _) = lstm.forward_with_state(&tape, tape.constant(x.clone()), None);
    /// let (first, state) = lstm.forward_with_state(&tape, tape.constant(x.narrow(0, 0, 3)), None);
    /// let (second, (h, _)) = lstm.forward_with_state(&tape, tape.constant(x.narrow(0, 3, 3)), Some(state));
    /// let joined = Var::cat(&[first, second], 0).value();
    /// assert!(joined.as_slice().iter().zip(whole.value().as_slice()).all(|(a, b)| (a - b).abs() < 1e-12));
    /// assert_eq!(h.value().to_vec(), whole.value().narrow(0, 5, 1).to_vec());
    /// ```
    #[track_caller]
    pub fn forward_with_state<'t>(
        &self,
        tape: &'t Tape<T>,
        x: Var<'t, T>,
        state: Option<(Var<'t, T>, Var<'t, T>)>,
    ) -> (Var<'t, T>, (Var<'t, T>, Var<'t, T>)) {
        let (h0, c0) = state.unzip();
        let (out, h, c) = self.inner.run(tape, x, h0, c0, None);
        (out, (h, c.expect("an LSTM has a cell state")))
    }

    /// [`forward_with_state`](Lstm::forward_with_state) for a padded batch: sequence `n` is its
    /// first `lengths[n]` steps (as PyTorch's `pack_padded_sequence(x, lengths,
    /// enforce_sorted=False)`, then `pad_packed_sequence` on the output). Padded steps give zero
    /// outputs and leave the state alone; `(h_n, c_n)` holds each sequence's state after its
    /// last step, and the reverse direction starts at that step. The batch need not be sorted by
    /// length. A length of 0 (which PyTorch refuses) gives zero outputs and leaves the initial
    /// state as the final one. Whatever finite values the padding holds, they change no output
    /// and get a zero gradient.
    ///
    /// # Panics
    /// If `lengths` does not have one entry per sequence or an entry exceeds `T`, and as
    /// [`forward_with_state`](Lstm::forward_with_state).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::nn::{Lstm, RnnConfig};
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    ///
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let lstm = Lstm::<f64>::new(2, 3, RnnConfig::default(), &mut rng);
    /// let x = Tensor::randn(&[4, 2, 2], &mut rng); // [T, N, input]; sequence 1 has 2 steps
    /// let tape = Tape::new();
    /// let (out, (h, _)) = lstm.forward_with_lengths(&tape, tape.constant(x.clone()), &[4, 2], None);
    /// assert!(out.value().narrow(0, 2, 2).narrow(1, 1, 1).as_slice().iter().all(|&v| v == 0.0));
    /// // Sequence 1's final state is its state after step 2, as if it were run alone.
    /// let alone = tape.constant(x.narrow(0, 0, 2).narrow(1, 1, 1));
    /// let (_, (h1, _)) = lstm.forward_with_state(&tape, alone, None);
    /// assert_eq!(h.value().narrow(1, 1, 1).to_vec(), h1.value().to_vec());
    /// ```
    #[track_caller]
    pub fn forward_with_lengths<'t>(
        &self,
        tape: &'t Tape<T>,
        x: Var<'t, T>,
        lengths: &[usize],
        state: Option<(Var<'t, T>, Var<'t, T>)>,
    ) -> (Var<'t, T>, (Var<'t, T>, Var<'t, T>)) {
        let (h0, c0) = state.unzip();
        let (out, h, c) = self.inner.run(tape, x, h0, c0, Some(lengths));
        (out, (h, c.expect("an LSTM has a cell state")))
    }
}

layer_common!(Lstm);

/// A multi-layer GRU over a sequence (PyTorch's `nn.GRU`).
///
/// Each layer and direction runs [`GruCell`]'s step over time:
/// `r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr)`, `z = σ(x W_izᵀ + b_iz + h W_hzᵀ + b_hz)`,
/// `n = tanh(x W_inᵀ + b_in + r (h W_hnᵀ + b_hn))`, `h' = (1 - z) n + z h`. Parameters as
/// [`Lstm`]'s with `3H` rows (gates r, z, n), all from `U(-1/√H, 1/√H)`.
///
/// # Panics
/// As [`Lstm`]'s.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::nn::{Gru, RnnConfig};
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let gru = Gru::<f32>::new(4, 6, RnnConfig::default(), &mut rng);
/// let tape = Tape::new();
/// let x = tape.constant(Tensor::randn(&[7, 2, 4], &mut rng)); // [T, N, input]
/// let (out, h_n) = gru.forward_with_state(&tape, x, None);
/// assert_eq!((out.shape(), h_n.shape()), (vec![7, 2, 6], vec![1, 2, 6]));
/// assert_eq!(gru.named_parameters()[0].1.shape(), vec![18, 4]);
/// ```
#[derive(Debug)]
pub struct Gru<T: Float = f32> {
    inner: Recurrent<T>,
}

/// An Elman RNN over a sequence (PyTorch's `nn.RNN`): `h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`
/// per step, or ReLU with [`RnnNonlinearity::Relu`] in the config.
///
/// Parameters as [`Lstm`]'s with `H` rows, all from `U(-1/√H, 1/√H)`.
///
/// # Panics
/// As [`Lstm`]'s.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::nn::{Rnn, RnnConfig, RnnNonlinearity};
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let cfg = RnnConfig { nonlinearity: RnnNonlinearity::Relu, bidirectional: true, ..Default::default() };
/// let rnn = Rnn::<f64>::new(3, 4, cfg, &mut rng);
/// let tape = Tape::new();
/// let x = tape.constant(Tensor::randn(&[5, 3], &mut rng)); // unbatched [T, input]
/// let (out, h_n) = rnn.forward_with_state(&tape, x, None);
/// assert_eq!((out.shape(), h_n.shape()), (vec![5, 8], vec![2, 4]));
/// assert!(out.value().as_slice().iter().all(|&v| v >= 0.0));
/// ```
#[derive(Debug)]
pub struct Rnn<T: Float = f32> {
    inner: Recurrent<T>,
}

macro_rules! single_state_layer {
    ($name:ident, $kind:expr, $torch:literal) => {
        impl<T: Float> $name<T> {
            #[doc = concat!("A layer initialised as PyTorch's `", $torch, "(input_size, hidden_size, ...)` with the")]
            /// options of `cfg`.
            #[track_caller]
            pub fn new<R: Rng + ?Sized>(
                input_size: usize,
                hidden_size: usize,
                cfg: RnnConfig,
                rng: &mut R,
            ) -> Self {
                $name {
                    inner: Recurrent::new($kind(cfg), input_size, hidden_size, cfg, rng),
                }
            }

            /// The output sequence and the final state `h_n [D * num_layers, N, H]`
            /// (`[D * num_layers, H]` for an unbatched input), from the initial state `h_0` of
            /// the same shape (`None`: zeros).
            ///
            /// ```
            /// use tapegrad::prelude::*;
            #[doc = concat!("use tapegrad::nn::{", stringify!($name), ", RnnConfig};")]
            /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
            /// let mut rng = StdRng::seed_from_u64(0);
            #[doc = concat!("let layer = ", stringify!($name), "::<f64>::new(2, 3, RnnConfig { num_layers: 2, ..Default::default() }, &mut rng);")]
            /// let tape = Tape::new();
            /// let x = tape.constant(Tensor::randn(&[4, 1, 2], &mut rng));
            /// let h0 = tape.constant(Tensor::randn(&[2, 1, 3], &mut rng));
            /// let (out, h_n) = layer.forward_with_state(&tape, x, Some(h0));
            /// // The last layer's final state is the last output.
            /// assert_eq!(h_n.value().narrow(0, 1, 1).to_vec(), out.value().narrow(0, 3, 1).to_vec());
            /// ```
            #[track_caller]
            pub fn forward_with_state<'t>(
                &self,
                tape: &'t Tape<T>,
                x: Var<'t, T>,
                h0: Option<Var<'t, T>>,
            ) -> (Var<'t, T>, Var<'t, T>) {
                let (out, h, _) = self.inner.run(tape, x, h0, None, None);
                (out, h)
            }

            /// [`forward_with_state`](Self::forward_with_state) for a padded batch whose sequence
            /// `n` is its first `lengths[n]` steps, as [`Lstm::forward_with_lengths`]: padded
            /// steps give zero outputs and leave the state alone.
            ///
            /// # Panics
            /// If `lengths` does not have one entry per sequence or an entry exceeds `T`.
            ///
            /// ```
            /// use tapegrad::prelude::*;
            #[doc = concat!("use tapegrad::nn::{", stringify!($name), ", RnnConfig};")]
            /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
            /// let mut rng = StdRng::seed_from_u64(0);
            #[doc = concat!("let layer = ", stringify!($name), "::<f64>::new(2, 3, RnnConfig::default(), &mut rng);")]
            /// let tape = Tape::new();
            /// let x = tape.constant(Tensor::randn(&[3, 2, 2], &mut rng));
            /// let (out, h_n) = layer.forward_with_lengths(&tape, x, &[3, 1], None);
            /// assert_eq!(h_n.value().narrow(1, 1, 1).to_vec(), out.value().narrow(0, 0, 1).narrow(1, 1, 1).to_vec());
            /// ```
            #[track_caller]
            pub fn forward_with_lengths<'t>(
                &self,
                tape: &'t Tape<T>,
                x: Var<'t, T>,
                lengths: &[usize],
                h0: Option<Var<'t, T>>,
            ) -> (Var<'t, T>, Var<'t, T>) {
                let (out, h, _) = self.inner.run(tape, x, h0, None, Some(lengths));
                (out, h)
            }
        }

        layer_common!($name);
    };
}

single_state_layer!(Gru, |_: RnnConfig| CellKind::Gru, "nn.GRU");
single_state_layer!(Rnn, |cfg: RnnConfig| CellKind::Rnn(cfg.nonlinearity), "nn.RNN");
