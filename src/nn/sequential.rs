//! [`Sequential`]: modules applied one after another.

use super::{Generator, Module, prefixed, prefixed_generators};
use crate::{Float, Param, Tape, Var};

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
pub struct Sequential<T: Float = f32> {
    // `Send + Sync`, so that a model built from a `Sequential` can move to (or be shared with) a
    // training thread, as every built-in module can.
    modules: Vec<Box<dyn Module<T> + Send + Sync>>,
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

    /// Appends a module (builder style); it is switched to the container's mode. Modules are
    /// `Send + Sync` (every built-in one is), so that the container is too.
    pub fn with(mut self, module: impl Module<T> + Send + Sync + 'static) -> Self {
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
    pub fn push(&mut self, mut module: Box<dyn Module<T> + Send + Sync>) {
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
}

impl<T: Float> Module<T> for Sequential<T> {
    #[track_caller]
    fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        self.modules.iter().fold(x, |h, m| m.forward(tape, h))
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        let mut out = Vec::new();
        for (i, m) in self.modules.iter().enumerate() {
            out.extend(prefixed(&i.to_string(), m.named_parameters()));
        }
        out
    }

    fn named_buffers(&self) -> Vec<(String, Param<T>)> {
        let mut out = Vec::new();
        for (i, m) in self.modules.iter().enumerate() {
            out.extend(prefixed(&i.to_string(), m.named_buffers()));
        }
        out
    }

    fn named_generators(&self) -> Vec<(String, &Generator)> {
        let mut out = Vec::new();
        for (i, m) in self.modules.iter().enumerate() {
            out.extend(prefixed_generators(&i.to_string(), m.named_generators()));
        }
        out
    }

    fn train(&mut self, mode: bool) {
        self.training = mode;
        for m in &mut self.modules {
            m.train(mode);
        }
    }

    fn is_training(&self) -> bool {
        self.training
    }
}
