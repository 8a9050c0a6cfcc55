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
pub use transformer::{TransformerEncoder, TransformerEncoderLayer, TransformerEncoderLayerConfig};

use crate::{Float, Param, Tape, Var};

/// A differentiable function with parameters: a layer or a whole network (PyTorch's `nn.Module`).
///
/// `forward` records on the given tape and may be called on many tapes; the parameters are
/// [`Param`] handles, shared with optimizers. Modules whose behaviour depends on the mode
/// ([`Dropout`]) read it from [`is_training`](Module::is_training); containers pass
/// [`train`](Module::train) on to their children. New modules start in training mode.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
///
/// /// y = scale * x, with a learnable scale.
/// struct Scale { scale: Param<f64>, training: bool }
///
/// impl Module<f64> for Scale {
///     fn forward<'t>(&self, tape: &'t Tape<f64>, x: Var<'t, f64>) -> Var<'t, f64> {
///         x * tape.param(&self.scale)
///     }
///     fn named_parameters(&self) -> Vec<(String, Param<f64>)> {
///         vec![("scale".to_string(), self.scale.clone())]
///     }
///     fn train(&mut self, mode: bool) { self.training = mode; }
///     fn is_training(&self) -> bool { self.training }
/// }
///
/// let m = Scale { scale: Param::new(Tensor::scalar(3.0)), training: true };
/// let tape = Tape::new();
/// assert_eq!(m.forward(&tape, tape.var(2.0)).item(), 6.0);
/// assert_eq!(m.parameters().len(), 1);
/// ```
pub trait Module<T: Float = f32> {
    /// Records the module applied to `x` on `tape` and returns the output.
    fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T>;

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
    /// as in [`named_parameters`](Module::named_parameters) (`2.dropout1`). None by default.
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
}

/// Prefixes each name with `prefix.` (for containers).
pub(crate) fn prefixed<T: Float>(prefix: &str, params: Vec<(String, Param<T>)>) -> Vec<(String, Param<T>)> {
    params
        .into_iter()
        .map(|(name, p)| (format!("{prefix}.{name}"), p))
        .collect()
}

/// Prefixes each generator's name with `prefix.` (for containers).
pub(crate) fn prefixed_generators<'a>(
    prefix: &str,
    generators: Vec<(String, &'a Generator)>,
) -> Vec<(String, &'a Generator)> {
    generators
        .into_iter()
        .map(|(name, g)| (format!("{prefix}.{name}"), g))
        .collect()
}
