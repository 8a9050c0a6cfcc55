//! [`Sequential`]: modules applied one after another.

use super::{Forward, Module, Summary};
use crate::{Float, Tape, Tensor, Var};

/// Modules applied in order, each to the previous one's output (PyTorch's `nn.Sequential`).
///
/// Parameters are named by position, `{i}.weight`, as in PyTorch.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let mut net = Sequential::<f32>::new()
///     .with(Linear::new(4, 8, &mut rng))
///     .with(Activation::Relu)
///     .with(Dropout::new(0.5, 0))
///     .with(Linear::new(8, 3, &mut rng));
/// assert_eq!(net.len(), 4);
/// let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["0.weight", "0.bias", "3.weight", "3.bias"]);
/// net.eval();
/// let tape = Tape::new();
/// assert_eq!(net.forward(&tape, tape.constant(Tensor::zeros(&[2, 4]))).shape(), vec![2, 3]);
/// ```
#[derive(Module)]
pub struct Sequential<T: Float = f32> {
    // `Send + Sync`, so that a model built from a `Sequential` can move to (or be shared with) a
    // training thread, as every built-in module can. Items are named by position, as a `Vec`'s.
    #[module(rename = "")]
    modules: Vec<Box<dyn Forward<T> + Send + Sync>>,
    #[module(training)]
    training: bool,
}

impl<T: Float> Default for Sequential<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Sequential<T> {
    /// An empty container (its forward is the identity).
    pub fn new() -> Self {
        Sequential {
            modules: Vec::new(),
            training: true,
        }
    }

    /// Appends a module with one input and one output (builder style); it is switched to the
    /// container's mode. Modules are `Send + Sync` (every built-in one is), so that the
    /// container is too.
    pub fn with(mut self, module: impl Forward<T> + Send + Sync + 'static) -> Self {
        self.push(Box::new(module));
        self
    }

    /// Appends a boxed module; it is switched to the container's mode.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let mut net = Sequential::<f64>::new();
    /// net.push(Box::new(Activation::Tanh));
    /// assert!(!net.is_empty());
    /// ```
    pub fn push(&mut self, mut module: Box<dyn Forward<T> + Send + Sync>) {
        module.train(self.training);
        self.modules.push(module);
    }

    /// The number of modules.
    pub fn len(&self) -> usize {
        self.modules.len()
    }

    /// `true` when there are no modules.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// Records the modules applied one after another to `x` (the same as
    /// [`Forward::forward`], callable without the trait in scope).
    #[track_caller]
    pub fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        self.modules.iter().fold(x, |h, m| m.forward(tape, h))
    }

    /// [`Summary::with_input`] with each module's output shape, from one forward pass recorded
    /// under [`Tape::no_grad`] on a scratch tape (buffers and generator states are restored
    /// afterwards, as there).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let net = Sequential::<f32>::new().with(Linear::new(3, 4, &mut rng)).with(Activation::Tanh);
    /// let s = net.summary_with_input(&Tensor::zeros(&[2, 3]));
    /// assert_eq!(s.layer_outputs()[0], ("0".to_string(), vec![2, 4]));
    /// ```
    #[track_caller]
    pub fn summary_with_input(&self, input: &Tensor<T>) -> Summary {
        let (output, layers) = super::summary::leaving_unchanged(self, || {
            let tape = Tape::new();
            tape.no_grad(|| {
                let mut h = tape.constant(input.clone());
                let mut layers = Vec::new();
                for (i, m) in self.modules.iter().enumerate() {
                    h = m.forward(&tape, h);
                    layers.push((i.to_string(), h.shape()));
                }
                (h.shape(), layers)
            })
        });
        Summary::of(self).with_shapes(input.shape().to_vec(), output, layers)
    }
}

impl<T: Float> Forward<T> for Sequential<T> {
    #[track_caller]
    fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        Sequential::forward(self, tape, x)
    }
}

impl<T: Float> std::fmt::Debug for Sequential<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequential")
            .field("len", &self.modules.len())
            .field("training", &self.training)
            .finish()
    }
}
