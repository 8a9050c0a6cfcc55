//! The recurrent cells [`LstmCell`], [`GruCell`] and [`RnnCell`], and the one-step rules that
//! they share with the sequence layers [`Lstm`](super::Lstm), [`Gru`](super::Gru) and
//! [`Rnn`](super::Rnn).
//!
//! Every rule is written once here, from differentiable ops (`matmul_t`, `chunk`, `sigmoid`,
//! `tanh`, ...), so a layer's gradient can be differentiated again. A step is split in two: the
//! input projection `x W_ihᵀ + b` ([`Bound::project`]), which a sequence layer computes for all
//! time steps in one product before its loop, and the recurrence ([`Bound::step`]), one product
//! `h W_hhᵀ` per step with the gates cut from its result.

use rand::Rng;

use super::{Module, init};
use crate::{Float, Param, Tape, Var};

/// The nonlinearity of an Elman RNN ([`Rnn`](super::Rnn), [`RnnCell`]): PyTorch's
/// `nonlinearity="tanh"` (the default) or `"relu"`.
///
/// ```
/// use tapegrad::nn::RnnNonlinearity;
/// assert_eq!(RnnNonlinearity::default(), RnnNonlinearity::Tanh);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RnnNonlinearity {
    /// `h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`.
    #[default]
    Tanh,
    /// `h' = relu(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`.
    Relu,
}

/// Which recurrence a cell or layer computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CellKind {
    Rnn(RnnNonlinearity),
    Lstm,
    Gru,
}

impl CellKind {
    /// The number of gate blocks stacked in the weights (`4 * hidden` rows for an LSTM).
    pub(crate) fn gates(self) -> usize {
        match self {
            CellKind::Rnn(_) => 1,
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }

    /// The layer's name in messages.
    pub(crate) fn layer_name(self) -> &'static str {
        match self {
            CellKind::Rnn(_) => "Rnn",
            CellKind::Lstm => "Lstm",
            CellKind::Gru => "Gru",
        }
    }

    /// The cell's name in messages.
    pub(crate) fn cell_name(self) -> &'static str {
        match self {
            CellKind::Rnn(_) => "RnnCell",
            CellKind::Lstm => "LstmCell",
            CellKind::Gru => "GruCell",
        }
    }
}

/// The four parameters of one cell (or one layer and direction of a sequence layer).
#[derive(Clone, Debug)]
pub(crate) struct CellParams<T: Float> {
    pub(crate) weight_ih: Param<T>,
    pub(crate) weight_hh: Param<T>,
    pub(crate) bias_ih: Option<Param<T>>,
    pub(crate) bias_hh: Option<Param<T>>,
}

impl<T: Float> CellParams<T> {
    /// PyTorch's initialisation: every parameter from `U(-1/√hidden, 1/√hidden)`.
    pub(crate) fn init<R: Rng + ?Sized>(
        kind: CellKind,
        input: usize,
        hidden: usize,
        bias: bool,
        rng: &mut R,
    ) -> Self {
        let rows = kind.gates() * hidden;
        let k = if hidden > 0 {
            1.0 / (hidden as f64).sqrt()
        } else {
            0.0
        };
        let mut draw = |shape: &[usize]| Param::new(init::uniform(shape, -k, k, rng));
        let weight_ih = draw(&[rows, input]);
        let weight_hh = draw(&[rows, hidden]);
        let (bias_ih, bias_hh) = if bias {
            (Some(draw(&[rows])), Some(draw(&[rows])))
        } else {
            (None, None)
        };
        CellParams {
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
        }
    }

    /// The parameters under PyTorch's names followed by `suffix` (`_l0`, `_l1_reverse`, or
    /// nothing for a cell), in PyTorch's order.
    pub(crate) fn named(&self, suffix: &str) -> Vec<(String, Param<T>)> {
        let mut out = vec![
            (format!("weight_ih{suffix}"), self.weight_ih.clone()),
            (format!("weight_hh{suffix}"), self.weight_hh.clone()),
        ];
        if let Some(b) = &self.bias_ih {
            out.push((format!("bias_ih{suffix}"), b.clone()));
        }
        if let Some(b) = &self.bias_hh {
            out.push((format!("bias_hh{suffix}"), b.clone()));
        }
        out
    }

    /// The parameters bound on `tape`, biases folded as the rules need them.
    pub(crate) fn bind<'t>(&self, kind: CellKind, hidden: usize, tape: &'t Tape<T>) -> Bound<'t, T> {
        let w_ih = tape.param(&self.weight_ih);
        let w_hh = tape.param(&self.weight_hh);
        let b_ih = self.bias_ih.as_ref().map(|b| tape.param(b));
        let b_hh = self.bias_hh.as_ref().map(|b| tape.param(b));
        let (input_bias, hidden_bias) = match kind {
            // Both biases sit outside every nonlinearity: add their sum once, to the projection
            // of all time steps, rather than on each step.
            CellKind::Lstm | CellKind::Rnn(_) => (sum_opt(b_ih, b_hh), None),
            // r and z likewise; b_hn stays inside `r * (h W_hnᵀ + b_hn)`.
            CellKind::Gru => {
                let folded = b_hh.map(|b| b.narrow(0, 0, 2 * hidden).pad(&[(0, hidden)], T::ZERO));
                (
                    sum_opt(b_ih, folded),
                    b_hh.map(|b| b.narrow(0, 2 * hidden, hidden)),
                )
            }
        };
        Bound {
            kind,
            w_ih,
            w_hh,
            input_bias,
            hidden_bias,
        }
    }
}

fn sum_opt<'t, T: Float>(a: Option<Var<'t, T>>, b: Option<Var<'t, T>>) -> Option<Var<'t, T>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, None) => a,
        (None, b) => b,
    }
}

/// A cell's parameters bound on a tape: the one place where the recurrences are written.
pub(crate) struct Bound<'t, T: Float> {
    kind: CellKind,
    w_ih: Var<'t, T>,
    w_hh: Var<'t, T>,
    /// Added to the input projection: `b_ih + b_hh` (LSTM, RNN) or `b_ih + [b_hr, b_hz, 0]` (GRU).
    input_bias: Option<Var<'t, T>>,
    /// GRU's `b_hn`, added to `h W_hnᵀ` inside the reset gate's product.
    hidden_bias: Option<Var<'t, T>>,
}

impl<'t, T: Float> Bound<'t, T> {
    /// The input projection `x W_ihᵀ + bias` of `x [M, input]`: `[M, gates * hidden]`.
    pub(crate) fn project(&self, x: Var<'t, T>) -> Var<'t, T> {
        let p = x.matmul_t(&self.w_ih);
        match self.input_bias {
            Some(b) => p + b,
            None => p,
        }
    }

    /// One step from the projected input `xp [N, gates * hidden]` and the state (`None` is the
    /// zero state, whose products are skipped): the new `h` and, for an LSTM, the new `c`.
    pub(crate) fn step(
        &self,
        xp: Var<'t, T>,
        h: Option<Var<'t, T>>,
        c: Option<Var<'t, T>>,
    ) -> (Var<'t, T>, Option<Var<'t, T>>) {
        let hp = h.map(|h| h.matmul_t(&self.w_hh));
        match self.kind {
            CellKind::Rnn(nl) => {
                let pre = match hp {
                    Some(hp) => xp + hp,
                    None => xp,
                };
                let h = match nl {
                    RnnNonlinearity::Tanh => pre.tanh(),
                    RnnNonlinearity::Relu => pre.relu(),
                };
                (h, None)
            }
            CellKind::Lstm => {
                let gates = match hp {
                    Some(hp) => xp + hp,
                    None => xp,
                };
                let g = gates.chunk(4, 1);
                let (i, f, cand, o) = (g[0].sigmoid(), g[1].sigmoid(), g[2].tanh(), g[3].sigmoid());
                let c = match c {
                    Some(c) => f * c + i * cand,
                    None => i * cand,
                };
                (o * c.tanh(), Some(c))
            }
            CellKind::Gru => {
                let x = xp.chunk(3, 1);
                let (r, z, hn) = match hp {
                    Some(hp) => {
                        let hg = hp.chunk(3, 1);
                        ((x[0] + hg[0]).sigmoid(), (x[1] + hg[1]).sigmoid(), Some(hg[2]))
                    }
                    None => (x[0].sigmoid(), x[1].sigmoid(), None),
                };
                let hn = sum_opt(hn, self.hidden_bias);
                let n = match hn {
                    Some(hn) => (x[2] + r * hn).tanh(),
                    None => x[2].tanh(),
                };
                // h' = (1 - z) n + z h
                let h = match h {
                    Some(h) => n + z * (h - n),
                    None => n - z * n,
                };
                (h, None)
            }
        }
    }
}

/// A cell's sizes and parameters, shared by the three public cells.
#[derive(Clone, Debug)]
struct Cell<T: Float> {
    kind: CellKind,
    input_size: usize,
    hidden_size: usize,
    params: CellParams<T>,
    training: bool,
}

impl<T: Float> Cell<T> {
    fn new<R: Rng + ?Sized>(kind: CellKind, input: usize, hidden: usize, bias: bool, rng: &mut R) -> Self {
        Cell {
            kind,
            input_size: input,
            hidden_size: hidden,
            params: CellParams::init(kind, input, hidden, bias, rng),
            training: true,
        }
    }

    /// Checks a state's shape against the input's batch (`None` for an unbatched input).
    #[track_caller]
    fn check_state(&self, what: &str, state: &Var<'_, T>, batch: Option<usize>) {
        let s = state.shape();
        let h = self.hidden_size;
        let ok = match batch {
            Some(n) => s == [n, h],
            None => s == [h],
        };
        let want = match batch {
            Some(n) => format!("[{n}, {h}]"),
            None => format!("[{h}]"),
        };
        assert!(
            ok,
            "tapegrad: {}: {what} has shape {s:?}, expected {want} (batch, hidden_size)",
            self.kind.cell_name()
        );
    }

    /// One step: `x` is `[N, input]` or `[input]`, states alike with `hidden`.
    #[track_caller]
    fn step<'t>(
        &self,
        tape: &'t Tape<T>,
        x: Var<'t, T>,
        h: Option<Var<'t, T>>,
        c: Option<Var<'t, T>>,
    ) -> (Var<'t, T>, Option<Var<'t, T>>) {
        let name = self.kind.cell_name();
        let shape = x.shape();
        let (inp, hid) = (self.input_size, self.hidden_size);
        let batch = match shape.as_slice() {
            [n, i] if *i == inp => Some(*n),
            [i] if *i == inp => None,
            _ => panic!(
                "tapegrad: {name}: input shape {shape:?} must be [batch, input_size] or [input_size] \
                 with input_size {inp} (hidden_size {hid})"
            ),
        };
        if let Some(h) = &h {
            self.check_state("hidden state h", h, batch);
        }
        if let Some(c) = &c {
            self.check_state("cell state c", c, batch);
        }
        let lift = |v: Var<'t, T>| if batch.is_none() { v.unsqueeze(0) } else { v };
        let bound = self.params.bind(self.kind, hid, tape);
        let xp = bound.project(lift(x));
        let (h, c) = bound.step(xp, h.map(lift), c.map(lift));
        let lower = |v: Var<'t, T>| if batch.is_none() { v.squeeze(0) } else { v };
        (lower(h), c.map(lower))
    }
}

macro_rules! cell_common {
    ($name:ident) => {
        impl<T: Float> $name<T> {
            /// The input size.
            pub fn input_size(&self) -> usize {
                self.cell.input_size
            }

            /// The hidden size.
            pub fn hidden_size(&self) -> usize {
                self.cell.hidden_size
            }
        }

        impl<T: Float> $name<T> {
            /// One step from the zero state: the new hidden state `h'` (`[N, hidden]` or
            /// `[hidden]`).
            #[track_caller]
            pub fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
                self.cell.step(tape, x, None, None).0
            }
        }

        crate::nn::forward_via_inherent!($name);

        impl<T: Float> Module<T> for $name<T> {
            fn named_parameters(&self) -> Vec<(String, Param<T>)> {
                self.cell.params.named("")
            }

            fn train(&mut self, mode: bool) {
                self.cell.training = mode;
            }

            fn is_training(&self) -> bool {
                self.cell.training
            }
        }
    };
}

/// One step of an LSTM (PyTorch's `nn.LSTMCell`), for loops written by hand:
///
/// ```text
/// i, f, g, o = chunk(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh, 4)
/// c' = σ(f) c + σ(i) tanh(g)
/// h' = σ(o) tanh(c')
/// ```
///
/// Parameters `weight_ih [4H, input]`, `weight_hh [4H, H]`, `bias_ih [4H]`, `bias_hh [4H]`, gates
/// stacked in PyTorch's order i, f, g, o, all drawn from `U(-1/√H, 1/√H)`. The input is
/// `[N, input]` or unbatched `[input]`, the states `[N, H]` or `[H]`. [`Forward::forward`](crate::nn::Forward::forward) is one
/// step from the zero state and returns `h'`.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::nn::LstmCell;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let cell = LstmCell::<f64>::new(3, 5, &mut rng);
/// let tape = Tape::new();
/// let xs = tape.var(Tensor::randn(&[4, 2, 3], &mut rng)); // [time, batch, input]
/// let mut state = None;
/// for t in 0..4 {
///     let x = xs.narrow(0, t, 1).squeeze(0);
///     state = Some(cell.forward_step(&tape, x, state));
/// }
/// let (h, c) = state.unwrap();
/// assert_eq!((h.shape(), c.shape()), (vec![2, 5], vec![2, 5]));
/// let grads = h.sum().backward();
/// assert_eq!(grads[xs].shape(), &[4, 2, 3]);
/// ```
#[derive(Clone, Debug)]
pub struct LstmCell<T: Float = f32> {
    cell: Cell<T>,
}

impl<T: Float> LstmCell<T> {
    /// A cell with biases, initialised as PyTorch's `nn.LSTMCell(input_size, hidden_size)`.
    pub fn new<R: Rng + ?Sized>(input_size: usize, hidden_size: usize, rng: &mut R) -> Self {
        Self::with_bias(input_size, hidden_size, true, rng)
    }

    /// As [`new`](LstmCell::new), with or without the biases (`bias=False`).
    ///
    /// ```
    /// use tapegrad::nn::{LstmCell, Module};
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let cell = LstmCell::<f32>::with_bias(2, 3, false, &mut StdRng::seed_from_u64(0));
    /// let names: Vec<String> = cell.named_parameters().into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, ["weight_ih", "weight_hh"]);
    /// ```
    pub fn with_bias<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        rng: &mut R,
    ) -> Self {
        LstmCell {
            cell: Cell::new(CellKind::Lstm, input_size, hidden_size, bias, rng),
        }
    }

    /// One step: `(h', c')` from `x` and the state `(h, c)` (`None` is the zero state).
    ///
    /// # Panics
    /// If `x` is not `[N, input_size]` or `[input_size]`, or a state is not `[N, hidden_size]`
    /// (`[hidden_size]` for an unbatched `x`).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::nn::LstmCell;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let cell = LstmCell::<f64>::new(2, 3, &mut StdRng::seed_from_u64(0));
    /// let tape = Tape::new();
    /// let x = tape.constant(Tensor::ones(&[2]));
    /// let (h, c) = cell.forward_step(&tape, x, None);
    /// assert_eq!(h.shape(), vec![3]);
    /// let (h2, _) = cell.forward_step(&tape, x, Some((h, c)));
    /// assert!(h2.value().as_slice().iter().all(|v| v.abs() < 1.0));
    /// ```
    #[track_caller]
    pub fn forward_step<'t>(
        &self,
        tape: &'t Tape<T>,
        x: Var<'t, T>,
        state: Option<(Var<'t, T>, Var<'t, T>)>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        let (h, c) = state.unzip();
        let (h, c) = self.cell.step(tape, x, h, c);
        (h, c.expect("an LSTM step returns a cell state"))
    }
}

cell_common!(LstmCell);

/// One step of a GRU (PyTorch's `nn.GRUCell`), for loops written by hand:
///
/// ```text
/// r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr)
/// z = σ(x W_izᵀ + b_iz + h W_hzᵀ + b_hz)
/// n = tanh(x W_inᵀ + b_in + r (h W_hnᵀ + b_hn))
/// h' = (1 - z) n + z h
/// ```
///
/// Parameters `weight_ih [3H, input]`, `weight_hh [3H, H]`, `bias_ih [3H]`, `bias_hh [3H]`, gates
/// stacked in PyTorch's order r, z, n, all drawn from `U(-1/√H, 1/√H)`. The input is
/// `[N, input]` or `[input]`, the state `[N, H]` or `[H]`; [`Forward::forward`](crate::nn::Forward::forward) is one step from
/// the zero state.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::nn::GruCell;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let cell = GruCell::<f32>::new(3, 4, &mut rng);
/// let tape = Tape::new();
/// let x = tape.constant(Tensor::randn(&[2, 3], &mut rng));
/// let h1 = cell.forward_step(&tape, x, None);
/// let h2 = cell.forward_step(&tape, x, Some(h1));
/// assert_eq!(h2.shape(), vec![2, 4]);
/// assert_eq!(cell.forward(&tape, x).value(), h1.value());
/// ```
#[derive(Clone, Debug)]
pub struct GruCell<T: Float = f32> {
    cell: Cell<T>,
}

impl<T: Float> GruCell<T> {
    /// A cell with biases, initialised as PyTorch's `nn.GRUCell(input_size, hidden_size)`.
    pub fn new<R: Rng + ?Sized>(input_size: usize, hidden_size: usize, rng: &mut R) -> Self {
        Self::with_bias(input_size, hidden_size, true, rng)
    }

    /// As [`new`](GruCell::new), with or without the biases.
    ///
    /// ```
    /// use tapegrad::nn::{GruCell, Module};
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let cell = GruCell::<f32>::with_bias(2, 3, false, &mut StdRng::seed_from_u64(0));
    /// assert_eq!(cell.parameters().len(), 2);
    /// ```
    pub fn with_bias<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        rng: &mut R,
    ) -> Self {
        GruCell {
            cell: Cell::new(CellKind::Gru, input_size, hidden_size, bias, rng),
        }
    }

    /// One step: `h'` from `x` and `h` (`None` is the zero state).
    ///
    /// # Panics
    /// If `x` is not `[N, input_size]` or `[input_size]`, or `h` is not `[N, hidden_size]`
    /// (`[hidden_size]` for an unbatched `x`).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::nn::GruCell;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let cell = GruCell::<f64>::new(2, 3, &mut StdRng::seed_from_u64(0));
    /// let tape = Tape::new();
    /// let h = cell.forward_step(&tape, tape.constant(Tensor::ones(&[2])), None);
    /// assert_eq!(h.shape(), vec![3]);
    /// ```
    #[track_caller]
    pub fn forward_step<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>, h: Option<Var<'t, T>>) -> Var<'t, T> {
        self.cell.step(tape, x, h, None).0
    }
}

cell_common!(GruCell);

/// One step of an Elman RNN (PyTorch's `nn.RNNCell`): `h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`,
/// or with ReLU in place of tanh.
///
/// Parameters `weight_ih [H, input]`, `weight_hh [H, H]`, `bias_ih [H]`, `bias_hh [H]`, all drawn
/// from `U(-1/√H, 1/√H)`. The input is `[N, input]` or `[input]`, the state `[N, H]` or `[H]`;
/// [`Forward::forward`](crate::nn::Forward::forward) is one step from the zero state.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::nn::{RnnCell, RnnNonlinearity};
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let cell = RnnCell::<f64>::with_options(3, 4, true, RnnNonlinearity::Relu, &mut rng);
/// let tape = Tape::new();
/// let h = cell.forward_step(&tape, tape.constant(Tensor::randn(&[2, 3], &mut rng)), None);
/// assert!(h.value().as_slice().iter().all(|&v| v >= 0.0));
/// ```
#[derive(Clone, Debug)]
pub struct RnnCell<T: Float = f32> {
    cell: Cell<T>,
}

impl<T: Float> RnnCell<T> {
    /// A tanh cell with biases, initialised as PyTorch's `nn.RNNCell(input_size, hidden_size)`.
    pub fn new<R: Rng + ?Sized>(input_size: usize, hidden_size: usize, rng: &mut R) -> Self {
        Self::with_options(input_size, hidden_size, true, RnnNonlinearity::Tanh, rng)
    }

    /// As [`new`](RnnCell::new), with PyTorch's `bias` and `nonlinearity` arguments.
    ///
    /// ```
    /// use tapegrad::nn::{Module, RnnCell, RnnNonlinearity};
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let cell = RnnCell::<f32>::with_options(2, 3, false, RnnNonlinearity::Tanh, &mut StdRng::seed_from_u64(0));
    /// assert_eq!(cell.parameters().len(), 2);
    /// ```
    pub fn with_options<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        nonlinearity: RnnNonlinearity,
        rng: &mut R,
    ) -> Self {
        RnnCell {
            cell: Cell::new(CellKind::Rnn(nonlinearity), input_size, hidden_size, bias, rng),
        }
    }

    /// One step: `h'` from `x` and `h` (`None` is the zero state).
    ///
    /// # Panics
    /// If `x` is not `[N, input_size]` or `[input_size]`, or `h` is not `[N, hidden_size]`
    /// (`[hidden_size]` for an unbatched `x`).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::nn::RnnCell;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let cell = RnnCell::<f64>::new(2, 3, &mut StdRng::seed_from_u64(0));
    /// let tape = Tape::new();
    /// let x = tape.constant(Tensor::ones(&[1, 2]));
    /// let h = cell.forward_step(&tape, x, None);
    /// let h = cell.forward_step(&tape, x, Some(h));
    /// assert_eq!(h.shape(), vec![1, 3]);
    /// ```
    #[track_caller]
    pub fn forward_step<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>, h: Option<Var<'t, T>>) -> Var<'t, T> {
        self.cell.step(tape, x, h, None).0
    }
}

cell_common!(RnnCell);
