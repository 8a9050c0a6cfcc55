//! [`Summary`]: a model's parameters and buffers by sub-module, with counts, and output shapes
//! for a sample input (in the style of torchinfo's `summary`).

use std::fmt;

use super::{Forward, Module};
use crate::{Float, Tape, Tensor};

/// One parameter or buffer in a [`Summary`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryEntry {
    /// The dotted name (`layers.0.weight`).
    pub name: String,
    /// The shape.
    pub shape: Vec<usize>,
    /// How many numbers it holds.
    pub numel: usize,
    /// `false` for a frozen parameter and for every buffer.
    pub trainable: bool,
    /// `true` for a buffer (saved, not trained).
    pub buffer: bool,
}

/// What [`Module::summary`] and [`Summary::with_input`] report: every parameter and buffer
/// with its shape and size, totals per sub-module and for the model, and, given a sample
/// input, the output's shape (and each layer's, for a [`Sequential`](super::Sequential)).
///
/// `Display` prints it as a table:
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::nn::Summary;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let net = Sequential::<f32>::new()
///     .with(Linear::new(4, 8, &mut rng))
///     .with(Activation::Relu)
///     .with(BatchNorm1d::new(8))
///     .with(Linear::new(8, 2, &mut rng));
/// net.named_parameters()[0].1.set_requires_grad(false);
/// let summary = net.summary_with_input(&Tensor::zeros(&[5, 4]));
/// assert_eq!(summary.total_parameters(), 4 * 8 + 8 + 8 + 8 + 8 * 2 + 2);
/// assert_eq!(summary.trainable_parameters(), summary.total_parameters() - 32);
/// assert_eq!(summary.output_shape(), Some(&[5, 2][..]));
/// let text = summary.to_string();
/// assert!(text.contains("2.running_mean") && text.contains("[5, 8]"), "{text}");
/// println!("{text}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    entries: Vec<SummaryEntry>,
    input_shape: Option<Vec<usize>>,
    output_shape: Option<Vec<usize>>,
    layer_outputs: Vec<(String, Vec<usize>)>,
}

impl Summary {
    /// The parameters and buffers of `module` (what [`Module::summary`] returns).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::nn::Summary;
    /// let s = Summary::of(&LayerNorm::<f32>::new(3));
    /// assert_eq!(s.total_parameters(), 6);
    /// assert_eq!(s.entries().len(), 2);
    /// ```
    pub fn of<T: Float, M: Module<T> + ?Sized>(module: &M) -> Summary {
        let mut entries: Vec<SummaryEntry> = module
            .named_parameters()
            .into_iter()
            .map(|(name, p)| SummaryEntry {
                shape: p.shape(),
                numel: p.value().numel(),
                trainable: p.requires_grad(),
                buffer: false,
                name,
            })
            .collect();
        entries.extend(module.named_buffers().into_iter().map(|(name, p)| SummaryEntry {
            shape: p.shape(),
            numel: p.value().numel(),
            trainable: false,
            buffer: true,
            name,
        }));
        Summary {
            entries,
            input_shape: None,
            output_shape: None,
            layer_outputs: Vec::new(),
        }
    }

    /// [`Summary::of`] plus the output's shape for `input`, from one forward pass recorded
    /// under [`Tape::no_grad`] on a scratch tape. The module is left as it was: its mode, its
    /// buffers (a BatchNorm's running statistics, which a forward pass in training mode
    /// updates) and its generators' states (which dropout masks advance) are restored.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::nn::Summary;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let mlp = Mlp::<f64>::new(&[3, 5, 2], Activation::Tanh, &mut StdRng::seed_from_u64(0));
    /// let s = Summary::with_input(&mlp, &Tensor::zeros(&[7, 3]));
    /// assert_eq!(s.output_shape(), Some(&[7, 2][..]));
    /// ```
    #[track_caller]
    pub fn with_input<T: Float, M: Forward<T> + ?Sized>(module: &M, input: &Tensor<T>) -> Summary {
        let output = leaving_unchanged(module, || {
            let tape = Tape::new();
            tape.no_grad(|| module.forward(&tape, tape.constant(input.clone())).shape())
        });
        Summary::of(module).with_shapes(input.shape().to_vec(), output, Vec::new())
    }

    /// The same summary with the input's and output's shapes and each layer's output shape (for
    /// containers that run their layers one after another, as
    /// [`Sequential::summary_with_input`](super::Sequential::summary_with_input)).
    pub(crate) fn with_shapes(
        mut self,
        input: Vec<usize>,
        output: Vec<usize>,
        layers: Vec<(String, Vec<usize>)>,
    ) -> Summary {
        self.input_shape = Some(input);
        self.output_shape = Some(output);
        self.layer_outputs = layers;
        self
    }

    /// Every parameter, then every buffer, in the module's order.
    pub fn entries(&self) -> &[SummaryEntry] {
        &self.entries
    }

    /// The numbers held by all parameters (frozen ones included; buffers excluded).
    pub fn total_parameters(&self) -> usize {
        self.entries.iter().filter(|e| !e.buffer).map(|e| e.numel).sum()
    }

    /// The numbers held by the parameters that are not frozen.
    pub fn trainable_parameters(&self) -> usize {
        self.entries.iter().filter(|e| e.trainable).map(|e| e.numel).sum()
    }

    /// The numbers held by buffers.
    pub fn buffer_elements(&self) -> usize {
        self.entries.iter().filter(|e| e.buffer).map(|e| e.numel).sum()
    }

    /// The output's shape, when the summary was made with a sample input.
    pub fn output_shape(&self) -> Option<&[usize]> {
        self.output_shape.as_deref()
    }

    /// Each layer's output shape by layer name, when the container reports them.
    pub fn layer_outputs(&self) -> &[(String, Vec<usize>)] {
        &self.layer_outputs
    }

    /// The sub-modules in order of first appearance with their parameter counts: the names
    /// without their last part (`layers.0` for `layers.0.weight`; `""` for the module's own).
    pub fn by_submodule(&self) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = Vec::new();
        for e in self.entries.iter().filter(|e| !e.buffer) {
            let owner = e.name.rsplit_once('.').map_or("", |(owner, _)| owner);
            match out.iter_mut().find(|(name, _)| name == owner) {
                Some((_, count)) => *count += e.numel,
                None => out.push((owner.to_string(), e.numel)),
            }
        }
        out
    }
}

/// Runs `f` (a forward pass for a summary), then puts `module`'s buffers and generator states
/// back as they were before it.
pub(crate) fn leaving_unchanged<T: Float, M: Module<T> + ?Sized, R>(module: &M, f: impl FnOnce() -> R) -> R {
    let buffers: Vec<_> = module
        .named_buffers()
        .into_iter()
        .map(|(_, p)| {
            let value = p.value();
            (p, value)
        })
        .collect();
    let generators: Vec<_> = module
        .named_generators()
        .into_iter()
        .map(|(_, g)| (g, g.state()))
        .collect();
    let out = f();
    for (p, value) in buffers {
        p.set_value(value);
    }
    for (g, state) in generators {
        g.set_state(&state);
    }
    out
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = |s: &[usize]| format!("{s:?}");
        let width = self
            .entries
            .iter()
            .map(|e| e.name.len())
            .chain(self.layer_outputs.iter().map(|(n, _)| n.len()))
            .chain([9])
            .max()
            .unwrap_or(9);
        let shape_width = self
            .entries
            .iter()
            .map(|e| shape(&e.shape).len())
            .chain([5])
            .max()
            .unwrap_or(5);
        if !self.layer_outputs.is_empty() {
            writeln!(f, "{:<width$}  Output shape", "Layer")?;
            for (name, out) in &self.layer_outputs {
                writeln!(f, "{name:<width$}  {}", shape(out))?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "{:<width$}  {:<shape_width$}  {:>10}  Kind",
            "Name", "Shape", "Numbers"
        )?;
        for e in &self.entries {
            let kind = if e.buffer {
                "buffer"
            } else if e.trainable {
                "trainable"
            } else {
                "frozen"
            };
            writeln!(
                f,
                "{:<width$}  {:<shape_width$}  {:>10}  {kind}",
                e.name,
                shape(&e.shape),
                e.numel
            )?;
        }
        writeln!(f)?;
        if let (Some(input), Some(output)) = (&self.input_shape, &self.output_shape) {
            writeln!(f, "Input shape: {}", shape(input))?;
            writeln!(f, "Output shape: {}", shape(output))?;
        }
        let total = self.total_parameters();
        let trainable = self.trainable_parameters();
        writeln!(f, "Total parameters: {total}")?;
        writeln!(f, "Trainable parameters: {trainable}")?;
        writeln!(f, "Non-trainable parameters: {}", total - trainable)?;
        write!(f, "Buffer numbers: {}", self.buffer_elements())
    }
}
