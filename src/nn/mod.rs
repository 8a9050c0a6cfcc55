//! Neural-network building blocks: the [`Module`] trait, layers (dense, convolution, pooling,
//! recurrent, attention and the Transformer encoder), activations, normalisation and
//! initialisers.
//!
//! A module owns [`Param`]s (which live across tapes) and records its forward pass on whatever
//! tape it is given, so a training step is: reset the tape, `forward`, a loss, `backward`, an
//! optimizer step.
//!
//! ```
//! use tapegrad::prelude::*;
//! use tapegrad::rand::{SeedableRng, rngs::StdRng};
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let mlp = Mlp::<f32>::new(&[2, 16, 1], Activation::Tanh, &mut rng);
//! let x = Tensor::from_vec(vec![0., 0., 0., 1., 1., 0., 1., 1.], &[4, 2]);
//! let y = Tensor::from_vec(vec![0., 1., 1., 0.], &[4, 1]);
//! let mut opt = Adam::new(mlp.parameters(), AdamConfig { lr: 0.05, ..Default::default() });
//! let mut tape = Tape::new();
//! for _ in 0..300 {
//!     tape.reset();
//!     let out = mlp.forward(&tape, tape.constant(x.clone()));
//!     let grads = loss::mse(out, tape.constant(y.clone())).backward();
//!     tape.reset();
//!     opt.step(&grads);
//! }
//! let tape = Tape::new();
//! let out = mlp.forward(&tape, tape.constant(x)).value();
//! assert!(out.as_slice().iter().zip(y.as_slice()).all(|(o, t)| (o - t).abs() < 0.2));
//! ```

mod activation;
pub mod attention;
mod containers;
mod conv;
mod dropout;
mod embedding;
mod generator;
pub mod init;
mod linear;
mod mlp;
mod norm;
pub mod rnn;
mod rnn_cell;
mod sequential;
mod summary;
pub mod transformer;

pub use activation::Activation;
pub use attention::{
    AttentionOptions, MultiheadAttention, MultiheadAttentionConfig, scaled_dot_product_attention,
};
pub use conv::{Conv1d, Conv2d, Flatten, MaxPool2d};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use generator::{Generator, GeneratorState};
pub use linear::Linear;
pub use mlp::Mlp;
pub use norm::{BatchNorm1d, LayerNorm, RmsNorm};
pub use rnn::{Gru, GruCell, Lstm, LstmCell, Rnn, RnnCell, RnnConfig, RnnNonlinearity};
pub use sequential::Sequential;
pub use summary::{Summary, SummaryEntry};
/// `#[derive(Module)]`: see the [`tapegrad_derive`] crate's documentation.
pub use tapegrad_derive::Module;
pub use transformer::{TransformerEncoder, TransformerEncoderLayer, TransformerEncoderLayerConfig};

use crate::{Float, Param, Tape, Var};

/// What the code that `#[derive(Module)]` writes calls (not a public API).
#[doc(hidden)]
pub mod derive_support {
    /// `prefix.name`, or `prefix` alone for an empty name (a `Param` field itself), or `name`
    /// alone for an empty prefix (a field renamed `""`).
    pub fn join(prefix: &str, name: &str) -> String {
        match (prefix.is_empty(), name.is_empty()) {
            (true, _) => name.to_string(),
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}.{name}"),
        }
    }

    /// Appends `items` to `out`, each name prefixed with `prefix`.
    pub fn extend_prefixed<H>(out: &mut Vec<(String, H)>, prefix: &str, items: Vec<(String, H)>) {
        out.extend(items.into_iter().map(|(name, h)| (join(prefix, &name), h)));
    }
}

/// A layer or a whole network: its parameters, buffers and random generators by name, and its
/// mode (PyTorch's `nn.Module`).
///
/// The forward pass is not part of this trait: it is the module's own method, with whatever
/// inputs and outputs it needs (an LSTM takes and returns a state, attention takes a query, key,
/// value and masks). Modules with one input and one output also implement [`Forward`], which
/// containers such as [`Sequential`] call.
///
/// `#[derive(Module)]` writes this trait for a struct of named fields (see the
/// [derive's documentation](derive@Module)); by hand, the required methods are
/// [`named_parameters`](Module::named_parameters), [`train`](Module::train) and
/// [`is_training`](Module::is_training). Parameters are [`Param`] handles, shared with
/// optimizers; modules whose behaviour depends on the mode ([`Dropout`]) read it from
/// `is_training`, and containers pass `train` on to their children. New modules start in
/// training mode.
///
/// ```
/// use tapegrad::prelude::*;
///
/// /// y = scale * x, with a learnable scale: the trait by hand.
/// struct Scale { scale: Param<f64>, training: bool }
///
/// impl Module<f64> for Scale {
///     fn named_parameters(&self) -> Vec<(String, Param<f64>)> {
///         vec![("scale".to_string(), self.scale.clone())]
///     }
///     fn train(&mut self, mode: bool) { self.training = mode; }
///     fn is_training(&self) -> bool { self.training }
/// }
///
/// impl Forward<f64> for Scale {
///     fn forward<'t>(&self, tape: &'t Tape<f64>, x: Var<'t, f64>) -> Var<'t, f64> {
///         x * tape.param(&self.scale)
///     }
/// }
///
/// let m = Scale { scale: Param::new(Tensor::scalar(3.0)), training: true };
/// let tape = Tape::new();
/// assert_eq!(m.forward(&tape, tape.var(2.0)).item(), 6.0);
/// assert_eq!(m.parameters().len(), 1);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tapegrad module, a `Param` or a container of them",
    label = "not a module",
    note = "#[derive(Module)] visits every field: mark plain data (sizes, configs) with #[module(skip)]",
    note = "fields may be layers, `Param`s, `Generator`s, your own #[derive(Module)] structs, and `Vec`s, arrays, `Option`s, `Box`es and tuples of them"
)]
pub trait Module<T: Float = f32> {
    /// Every parameter with a PyTorch-style dotted name (`layers.0.weight`), in a fixed order.
    fn named_parameters(&self) -> Vec<(String, Param<T>)>;

    /// Every parameter, in the order of [`named_parameters`](Module::named_parameters).
    fn parameters(&self) -> Vec<Param<T>> {
        self.named_parameters().into_iter().map(|(_, p)| p).collect()
    }

    /// State that is saved with the model but not trained, with dotted names as in
    /// [`named_parameters`](Module::named_parameters) (PyTorch's buffers, such as
    /// [`BatchNorm1d`]'s `running_mean` and `running_var`). None by default.
    ///
    /// The handles are [`Param`]s so that a checkpoint loader can read and replace the values;
    /// they are not in [`parameters`](Module::parameters), so optimizers never see them.
    /// Containers must pass their children's buffers on, prefixed like their parameters.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let net = Sequential::<f32>::new().with(Linear::new(2, 3, &mut rng)).with(BatchNorm1d::new(3));
    /// let names: Vec<String> = net.named_buffers().into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, ["1.running_mean", "1.running_var"]);
    /// assert_eq!(net.parameters().len(), 4); // buffers are not parameters
    /// ```
    fn named_buffers(&self) -> Vec<(String, Param<T>)> {
        Vec::new()
    }

    /// The random generators of this module and its children (dropout masks), with dotted names
    /// as in [`named_parameters`](Module::named_parameters) (`2.dropout1.generator`). None by
    /// default.
    ///
    /// [`io::save`](crate::io::save) writes their [state](Generator::state) into the checkpoint
    /// and [`io::load`](crate::io::load) restores it, so a resumed run draws the same masks as
    /// an uninterrupted one. Containers must pass their children's generators on, prefixed like
    /// their parameters.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let net = Sequential::<f32>::new().with(Linear::new(2, 3, &mut rng)).with(Dropout::new(0.5, 1));
    /// let names: Vec<String> = net.named_generators().into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, ["1.generator"]);
    /// ```
    fn named_generators(&self) -> Vec<(String, &Generator)> {
        Vec::new()
    }

    /// Switches training mode on (`true`) or off (evaluation), for this module and its children.
    fn train(&mut self, mode: bool);

    /// `true` in training mode (the initial mode), `false` in evaluation mode.
    fn is_training(&self) -> bool;

    /// Evaluation mode: the same as `train(false)`.
    fn eval(&mut self) {
        self.train(false);
    }

    /// How many numbers the parameters hold (PyTorch's `sum(p.numel() for p in
    /// model.parameters())`), frozen ones included; buffers are not counted.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let mlp = Mlp::<f32>::new(&[2, 16, 1], Activation::Relu, &mut StdRng::seed_from_u64(0));
    /// assert_eq!(mlp.num_parameters(), 2 * 16 + 16 + 16 + 1);
    /// ```
    fn num_parameters(&self) -> usize {
        self.parameters().iter().map(|p| p.value().numel()).sum()
    }

    /// How many numbers the parameters that are not [frozen](Module::requires_grad) hold.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let mlp = Mlp::<f32>::new(&[2, 16, 1], Activation::Relu, &mut StdRng::seed_from_u64(0));
    /// mlp.layers[0].requires_grad(false);
    /// assert_eq!(mlp.num_trainable_parameters(), 16 + 1);
    /// ```
    fn num_trainable_parameters(&self) -> usize {
        self.parameters()
            .iter()
            .filter(|p| p.requires_grad())
            .map(|p| p.value().numel())
            .sum()
    }

    /// Freezes (`false`) or unfreezes (`true`) every parameter of this module and its children
    /// (PyTorch's `module.requires_grad_(False)`): frozen parameters are bound as constants by
    /// [`Tape::param`](crate::Tape::param), so they get no gradient, and optimizers, which skip
    /// parameters without a gradient, leave them unchanged. Buffers are not affected.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let net = Sequential::<f64>::new().with(Linear::new(2, 3, &mut rng)).with(Linear::new(3, 1, &mut rng));
    /// net.named_parameters()[0].1.requires_grad(); // true
    /// let frozen = Linear::<f64>::new(2, 3, &mut rng);
    /// frozen.requires_grad(false);
    /// let tape = Tape::new();
    /// let y = frozen.forward(&tape, tape.var(Tensor::ones(&[1, 2]))).sum();
    /// assert!(y.backward().params().next().is_none()); // no parameter gradient
    /// ```
    fn requires_grad(&self, requires_grad: bool) {
        for p in self.parameters() {
            p.set_requires_grad(requires_grad);
        }
    }

    /// Calls `f` on every parameter with its dotted name, for initialisation schemes over a
    /// whole model (the use of PyTorch's `model.apply(init_fn)`).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let mlp = Mlp::<f32>::new(&[4, 8, 2], Activation::Tanh, &mut rng);
    /// mlp.apply_to_parameters(|name, p| {
    ///     if name.ends_with("bias") {
    ///         p.set_value(Tensor::zeros(&p.shape()));
    ///     } else {
    ///         p.set_value(tapegrad::nn::init::xavier_uniform(&p.shape(), 1.0, &mut rng));
    ///     }
    /// });
    /// assert!(mlp.layers[0].bias.as_ref().unwrap().value().as_slice().iter().all(|&b| b == 0.0));
    /// ```
    fn apply_to_parameters(&self, mut f: impl FnMut(&str, &Param<T>))
    where
        Self: Sized,
    {
        for (name, p) in self.named_parameters() {
            f(&name, &p);
        }
    }

    /// A table of the module's parameters by sub-module, with shapes and counts (in the style
    /// of torchinfo's `summary`); see [`Summary`] for output shapes from a sample input.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let mlp = Mlp::<f32>::new(&[2, 16, 1], Activation::Relu, &mut StdRng::seed_from_u64(0));
    /// let text = mlp.summary().to_string();
    /// assert!(text.contains("layers.0.weight") && text.contains("[16, 2]"));
    /// assert!(text.contains("Total parameters: 65"));
    /// ```
    fn summary(&self) -> Summary {
        Summary::of(self)
    }
}

/// A module with one input and one output: what [`Sequential`] chains and what the one-input
/// helpers (training loops, [`Summary::with_input`]) call.
///
/// Every built-in layer implements it, and has the same method as an inherent `forward`, so
/// `layer.forward(&tape, x)` works without this trait in scope. Implement it for your own
/// [`Module`] to put it in a [`Sequential`]:
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
///
/// #[derive(Module)]
/// struct Residual<T: Float> { inner: Linear<T> }
///
/// impl<T: Float> Forward<T> for Residual<T> {
///     fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
///         x + self.inner.forward(tape, x)
///     }
/// }
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let net = Sequential::<f32>::new()
///     .with(Residual { inner: Linear::new(4, 4, &mut rng) })
///     .with(Linear::new(4, 1, &mut rng));
/// let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["0.inner.weight", "0.inner.bias", "1.weight", "1.bias"]);
/// let tape = Tape::new();
/// assert_eq!(net.forward(&tape, tape.constant(Tensor::ones(&[3, 4]))).shape(), vec![3, 1]);
/// ```
pub trait Forward<T: Float = f32>: Module<T> {
    /// Records the module applied to `x` on `tape` and returns the output.
    fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T>;
}

/// Implements [`Forward`] for built-in layers by calling their inherent `forward`.
macro_rules! forward_via_inherent {
    (@plain $name:ident) => {
        impl<T: Float> $crate::nn::Forward<T> for $name {
            #[track_caller]
            fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
                $name::forward(self, tape, x)
            }
        }
    };
    ($($name:ident),* $(,)?) => {
        $(
            impl<T: Float> $crate::nn::Forward<T> for $name<T> {
                #[track_caller]
                fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
                    $name::forward(self, tape, x)
                }
            }
        )*
    };
}
pub(crate) use forward_via_inherent;

/// Prefixes each name with `prefix.` (for containers); an empty name (a [`Param`] field
/// itself) becomes `prefix`.
pub(crate) fn prefixed<H>(prefix: &str, items: Vec<(String, H)>) -> Vec<(String, H)> {
    items
        .into_iter()
        .map(|(name, h)| (derive_support::join(prefix, &name), h))
        .collect()
}
