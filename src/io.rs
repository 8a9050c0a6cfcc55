//! Checkpoints: a model's parameters and buffers, and an optimizer's state, as
//! [safetensors](https://huggingface.co/docs/safetensors) files.
//!
//! The names are the modules' dotted names ([`Module::named_parameters`] and
//! [`Module::named_buffers`]: `layers.0.weight`, `1.running_mean`), the names PyTorch's
//! `state_dict()` uses, so a file written by `safetensors.torch.save_file(model.state_dict(), path)`
//! loads into a tapegrad model with the same structure, and the other way round.
//!
//! | function | does |
//! |---|---|
//! | [`save`], [`load`], [`load_with`] | a [`Module`]'s parameters and buffers |
//! | [`save_tensors`], [`load_tensors`], [`load_metadata`] | any list of named tensors, and the file's string metadata |
//! | [`save_optimizer`], [`load_optimizer`] | an [`Optimizer`]'s state, exact to the bit |
//! | [`save_optimizer_state`], [`load_optimizer_state`] | an [`OptimizerState`] value |
//!
//! ```
//! use tapegrad::prelude::*;
//! use tapegrad::rand::{SeedableRng, rngs::StdRng};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("model.safetensors");
//! let model = Mlp::<f32>::new(&[2, 8, 1], Activation::Tanh, &mut StdRng::seed_from_u64(0));
//! tapegrad::io::save(&path, &model).unwrap();
//!
//! // Another model of the same shape (other initial weights) becomes a copy of the first.
//! let copy = Mlp::<f32>::new(&[2, 8, 1], Activation::Tanh, &mut StdRng::seed_from_u64(1));
//! tapegrad::io::load(&path, &copy).unwrap();
//! assert_eq!(copy.parameters()[0].value(), model.parameters()[0].value());
//!
//! // A model of another shape is refused, and left as it was.
//! let other = Mlp::<f32>::new(&[2, 4, 1], Activation::Tanh, &mut StdRng::seed_from_u64(2));
//! let before = other.parameters()[0].value();
//! let err = tapegrad::io::load(&path, &other).unwrap_err();
//! assert!(err.to_string().contains("tensor `layers.0.weight` has shape [8, 2] in the file, [4, 2] in the model"));
//! assert_eq!(other.parameters()[0].value(), before);
//! ```
//!
//! # Guarantees
//!
//! - **Atomic writes.** A file is written to a temporary file beside the target (a unique name
//!   starting with `.`), flushed to disk (`fsync`), then renamed over the target. A reader sees
//!   the old file or the new one, never a half-written one; on any error the temporary file is
//!   removed.
//! - **All-or-nothing loads.** Every tensor is read, checked (names, shapes, dtypes) and converted
//!   before the first value in the model is replaced. A missing file is [`Error::Io`]; a truncated
//!   or corrupted file, a missing or unexpected tensor, another shape or a dtype that is not
//!   floating point is [`Error::Checkpoint`], whose message names the tensor or the bytes
//!   involved. After an error the model is unchanged.
//! - **Dtypes.** A model of `f32` writes `F32` tensors, one of `f64` writes `F64`. Loading
//!   converts as PyTorch's `load_state_dict` does: `F32`, `F64`, `F16` and `BF16` tensors load
//!   into a model of either type, exactly, except that `F64` values loaded into an `f32` model are
//!   rounded to the nearest `f32` (beyond its range they become ±∞, as in PyTorch). Integer and
//!   other dtypes are refused.
//!
//! # Names: `Mlp` and PyTorch's `nn.Sequential`
//!
//! [`Sequential`](crate::nn::Sequential) names its parameters by position, as PyTorch does, so
//! `Sequential::new().with(Linear..).with(Activation::Relu).with(Linear..)` has the names of
//! `nn.Sequential(nn.Linear(..), nn.ReLU(), nn.Linear(..))`: `0.weight`, `0.bias`, `2.weight`,
//! `2.bias`. [`Mlp`](crate::nn::Mlp) numbers only its linear layers (`layers.0`, `layers.1`); load
//! a `nn.Sequential` file into it with [`LoadOptions::rename`] (see there).
//!
//! PyTorch's `nn.BatchNorm1d` also saves `num_batches_tracked`, an integer count that PyTorch
//! uses only when `momentum=None`. tapegrad's [`BatchNorm1d`](crate::nn::BatchNorm1d) has no such
//! count (its momentum is always a number), so a file tensor `{prefix}num_batches_tracked` is
//! skipped, even in a strict load, when the module has `{prefix}running_mean`, and listed in
//! [`LoadReport::ignored`]. The other way, PyTorch's `load_state_dict` fills the count in itself
//! (with 0) for a state dict without it, even with `strict=True`.
//!
//! # Optimizer files
//!
//! An [`OptimizerState`] is stored as `F64` and `I64` tensors: `param_groups.{g}.lr`,
//! `param_groups.{g}.weight_decay`, `param_groups.{g}.num_params`, then for each parameter `i`
//! that has taken a step `state.{i}.step`, the parameter's shape `state.{i}.shape` (`I64`, a
//! load refuses a state for another shape) and its buffers `state.{i}.{name}` (PyTorch's names:
//! `exp_avg`, `exp_avg_sq`, `momentum_buffer`, ...; flat, one value per element), and
//! optimizer-wide buffers as `extra.{name}` ([`Lbfgs`](crate::optim::Lbfgs) keeps its history
//! there). The string metadata holds `format = tapegrad-optimizer`, the optimizer's name and the
//! order of the tensors. Saving the model and the optimizer, then loading both into freshly built
//! ones, resumes a run bit for bit.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::tensor::{Dtype, Metadata, SafeTensorError, SafeTensors, TensorView, View};

use crate::nn::{Generator, GeneratorState, Module};
use crate::optim::{GroupState, Optimizer, OptimizerState, ParamState};
use crate::{Error, Float, Param, Tensor};

// ---------------------------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------------------------

/// Writes a module's parameters and buffers ([`state_dict`]) to `path`, atomically.
///
/// Tensors are `F32` for an `f32` model and `F64` for an `f64` one; the file's metadata is
/// `{"format": "pt"}`, as Hugging Face's libraries expect of PyTorch weights, plus the state of
/// each of the module's [generators](Module::named_generators) (dropout masks) under
/// `tapegrad.generator.<name>`, which [`load`] restores so that a resumed run with dropout is
/// bit-identical to an uninterrupted one. PyTorch ignores those entries.
///
/// # Errors
/// [`Error::Io`] if the file cannot be written (the target is then unchanged);
/// [`Error::Checkpoint`] if two tensors or two generators have the same name.
///
/// ```
/// use tapegrad::prelude::*;
/// let dir = tempfile::tempdir().unwrap();
/// let layer = Linear::<f64>::from_params(Param::new(Tensor::ones(&[1, 2])), None);
/// tapegrad::io::save(dir.path().join("layer.safetensors"), &layer).unwrap();
/// let tensors = tapegrad::io::load_tensors::<f64>(dir.path().join("layer.safetensors")).unwrap();
/// assert_eq!(tensors, vec![("weight".to_string(), Tensor::ones(&[1, 2]))]);
/// ```
pub fn save<T: Float, M: Module<T> + ?Sized>(path: impl AsRef<Path>, module: &M) -> Result<(), Error> {
    let path = path.as_ref();
    let mut metadata = vec![("format".to_string(), "pt".to_string())];
    let mut names = HashSet::new();
    for (name, generator) in module.named_generators() {
        if !names.insert(name.clone()) {
            return Err(checkpoint(path, format!("two generators are named `{name}`")));
        }
        metadata.push((format!("{GENERATOR_KEY}{name}"), generator.state().to_string()));
    }
    let metadata: Vec<(&str, &str)> = metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    save_tensors(path, &state_dict(module), &metadata)
}

/// The metadata key of a generator's state is this prefix and the generator's name.
const GENERATOR_KEY: &str = "tapegrad.generator.";

/// The values of a module's parameters, then its buffers, by name: what [`save`] writes.
///
/// ```
/// use tapegrad::prelude::*;
/// let bn = BatchNorm1d::<f32>::new(2);
/// let names: Vec<String> = tapegrad::io::state_dict(&bn).into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["weight", "bias", "running_mean", "running_var"]);
/// ```
pub fn state_dict<T: Float, M: Module<T> + ?Sized>(module: &M) -> Vec<(String, Tensor<T>)> {
    handles(module)
        .into_iter()
        .map(|(name, p)| (name, p.value()))
        .collect()
}

fn handles<T: Float, M: Module<T> + ?Sized>(module: &M) -> Vec<(String, Param<T>)> {
    let mut all = module.named_parameters();
    all.extend(module.named_buffers());
    all
}

/// Reads `path` into a module's parameters and buffers, strictly: the file must hold exactly the
/// module's names, with the same shapes. Nothing changes unless everything fits.
///
/// The same as [`load_with`] with the default [`LoadOptions`].
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Checkpoint`] if it is not a valid
/// safetensors file, a name is missing or unexpected, a shape differs or a dtype is not
/// floating point. The module is unchanged then.
///
/// ```
/// use tapegrad::prelude::*;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("w.safetensors");
/// let w = Tensor::<f32>::from_vec(vec![1.0, 2.0], &[1, 2]);
/// tapegrad::io::save_tensors(&path, &[("weight".to_string(), w.clone())], &[]).unwrap();
///
/// let layer = Linear::<f32>::from_params(Param::new(Tensor::zeros(&[1, 2])), None);
/// tapegrad::io::load(&path, &layer).unwrap();
/// assert_eq!(layer.weight.value(), w);
///
/// let missing = tapegrad::io::load(dir.path().join("nope.safetensors"), &layer).unwrap_err();
/// assert!(matches!(missing, tapegrad::Error::Io { .. }));
/// assert!(missing.to_string().contains("nope.safetensors"));
/// ```
pub fn load<T: Float, M: Module<T> + ?Sized>(path: impl AsRef<Path>, module: &M) -> Result<(), Error> {
    load_with(path, module, &LoadOptions::new()).map(|_| ())
}

/// How [`load_with`] matches the file's tensors to the module's names.
///
/// ```
/// use tapegrad::io::LoadOptions;
/// let options = LoadOptions::new().strict(false).rename(|name| format!("encoder.{name}"));
/// assert!(!options.is_strict());
/// assert_eq!(options.module_name("0.weight"), "encoder.0.weight");
/// ```
pub struct LoadOptions {
    strict: bool,
    rename: Option<Rename>,
    max_bytes: u64,
}

/// A mapping from the file's tensor names to the module's.
type Rename = Box<dyn Fn(&str) -> String>;

impl Default for LoadOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("strict", &self.strict)
            .field("rename", &self.rename.as_ref().map(|_| "Fn(&str) -> String"))
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl LoadOptions {
    /// Strict, names unchanged: every name of the module must be in the file and every tensor of
    /// the file must be in the module.
    ///
    /// ```
    /// assert!(tapegrad::io::LoadOptions::new().is_strict());
    /// ```
    pub fn new() -> Self {
        LoadOptions {
            strict: true,
            rename: None,
            max_bytes: crate::data::DEFAULT_MAX_BYTES,
        }
    }

    /// With `false`, names missing from the file keep their values and tensors the module does
    /// not have are skipped (both are listed in the [`LoadReport`]), as PyTorch's
    /// `load_state_dict(strict=False)`. Shapes must still match.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::io::LoadOptions;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("bias.safetensors");
    /// tapegrad::io::save_tensors(&path, &[("bias".to_string(), Tensor::<f32>::ones(&[2]))], &[]).unwrap();
    ///
    /// let layer = Linear::<f32>::from_params(Param::new(Tensor::zeros(&[2, 3])), Some(Param::new(Tensor::zeros(&[2]))));
    /// assert!(tapegrad::io::load(&path, &layer).is_err()); // strict: `weight` is missing
    /// let report = tapegrad::io::load_with(&path, &layer, &LoadOptions::new().strict(false)).unwrap();
    /// assert_eq!(report.missing, ["weight"]);
    /// assert_eq!(layer.bias.as_ref().unwrap().value(), Tensor::ones(&[2]));
    /// ```
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// The most bytes read from the file (default
    /// [`DEFAULT_MAX_BYTES`](crate::data::DEFAULT_MAX_BYTES)): a larger file is an
    /// [`Error::Checkpoint`] before anything is allocated for it.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::io::LoadOptions;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("layer.safetensors");
    /// let layer = LayerNorm::<f32>::new(4);
    /// tapegrad::io::save(&path, &layer).unwrap();
    /// let err = tapegrad::io::load_with(&path, &layer, &LoadOptions::new().max_bytes(100)).unwrap_err();
    /// assert!(err.to_string().contains("more than 100 bytes"), "{err}");
    /// ```
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Maps each tensor name in the file to the module's name for it before matching, for
    /// checkpoints of a model whose names differ.
    ///
    /// A PyTorch `nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))` names its
    /// parameters `0.weight`, `0.bias`, `2.weight`, `2.bias`; an [`Mlp`](crate::nn::Mlp) of the
    /// same sizes names them `layers.0.weight` ... `layers.1.bias`:
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::io::LoadOptions;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    ///
    /// // A file with PyTorch's names, written here from a tapegrad Sequential.
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let seq = Sequential::<f32>::new()
    ///     .with(Linear::new(3, 4, &mut rng)).with(Activation::Relu).with(Linear::new(4, 2, &mut rng));
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("seq.safetensors");
    /// tapegrad::io::save(&path, &seq).unwrap();
    ///
    /// // Sequential index `2k` (a Linear; the odd ones are activations) is the Mlp's layer `k`.
    /// let sequential_to_mlp = |name: &str| {
    ///     let (index, rest) = name.split_once('.').unwrap();
    ///     format!("layers.{}.{rest}", index.parse::<usize>().unwrap() / 2)
    /// };
    /// let mlp = Mlp::<f32>::new(&[3, 4, 2], Activation::Relu, &mut rng);
    /// tapegrad::io::load_with(&path, &mlp, &LoadOptions::new().rename(sequential_to_mlp)).unwrap();
    /// let tape = Tape::new();
    /// let x = tape.constant(Tensor::ones(&[1, 3]));
    /// assert_eq!(mlp.forward(&tape, x).value(), seq.forward(&tape, x).value());
    /// ```
    pub fn rename(mut self, f: impl Fn(&str) -> String + 'static) -> Self {
        self.rename = Some(Box::new(f));
        self
    }

    /// `true` unless [`strict(false)`](LoadOptions::strict) was given.
    ///
    /// ```
    /// assert!(!tapegrad::io::LoadOptions::new().strict(false).is_strict());
    /// ```
    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// The module's name for the file's tensor `name` (after [`rename`](LoadOptions::rename)).
    ///
    /// ```
    /// assert_eq!(tapegrad::io::LoadOptions::new().module_name("0.bias"), "0.bias");
    /// ```
    pub fn module_name(&self, name: &str) -> String {
        match &self.rename {
            Some(f) => f(name),
            None => name.to_string(),
        }
    }
}

/// What [`load_with`] did not match (`missing` and `unexpected` are empty after a strict load).
///
/// Generator states are reported, never errors, even in a strict load: a PyTorch `state_dict`
/// has none, and a model loaded from one keeps its own generators' states.
///
/// ```
/// let report = tapegrad::io::LoadReport::default();
/// assert!(report.missing.is_empty() && report.unexpected.is_empty() && report.ignored.is_empty());
/// assert!(report.missing_generators.is_empty() && report.unexpected_generators.is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The module's names that the file does not have (their values were kept), in the module's
    /// order.
    pub missing: Vec<String>,
    /// The file's tensors (names as in the file) that the module does not have, sorted.
    pub unexpected: Vec<String>,
    /// The file's tensors skipped because tapegrad has no counterpart and needs none: PyTorch's
    /// BatchNorm `num_batches_tracked` (see the module docs), sorted.
    pub ignored: Vec<String>,
    /// The module's [generators](Module::named_generators) whose state the file does not have
    /// (they keep theirs), in the module's order.
    pub missing_generators: Vec<String>,
    /// Generator states in the file (names as in the file) that the module has no generator
    /// for, sorted.
    pub unexpected_generators: Vec<String>,
}

/// Reads `path` into a module's parameters and buffers with [`LoadOptions`] (strictness, a name
/// mapping), and reports the names that did not match.
///
/// Every tensor the module takes is read, checked and converted first; only then are the values
/// replaced, so an error leaves the module unchanged. Tensors the module does not take are not
/// decoded (their dtype does not matter).
///
/// # Errors
/// As [`load`]; with `strict(false)`, missing and unexpected names are not errors.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::io::LoadOptions;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("bn.safetensors");
/// let bn = BatchNorm1d::<f32>::new(2);
/// tapegrad::io::save(&path, &bn).unwrap();
/// let report = tapegrad::io::load_with(&path, &bn, &LoadOptions::new()).unwrap();
/// assert_eq!(report, tapegrad::io::LoadReport::default());
/// ```
pub fn load_with<T: Float, M: Module<T> + ?Sized>(
    path: impl AsRef<Path>,
    module: &M,
    options: &LoadOptions,
) -> Result<LoadReport, Error> {
    let path = path.as_ref();
    let bytes = read_limited(path, options.max_bytes)?;
    let file = parse(path, &bytes)?;
    let targets = handles(module);
    let fail = |detail: String| checkpoint(path, detail);

    let mut wanted: HashMap<&str, Vec<&Param<T>>> = HashMap::new();
    for (name, p) in &targets {
        wanted.entry(name.as_str()).or_default().push(p);
    }

    let names = file.sorted_names();
    let mut problems = Vec::new();
    let mut found: HashMap<String, &str> = HashMap::new();
    let mut unexpected = Vec::new();
    let mut ignored = Vec::new();
    let mut updates: Vec<(&Param<T>, Tensor<T>)> = Vec::new();
    for name in names {
        let target = options.module_name(name);
        let Some(params) = wanted.get(target.as_str()) else {
            let batchnorm_count = target
                .strip_suffix("num_batches_tracked")
                .is_some_and(|prefix| wanted.contains_key(format!("{prefix}running_mean").as_str()));
            if batchnorm_count {
                ignored.push(name.to_string());
            } else {
                unexpected.push(name.to_string());
            }
            continue;
        };
        if let Some(first) = found.insert(target.clone(), name) {
            problems.push(format!(
                "tensors `{first}` and `{name}` both map to the module's `{target}`"
            ));
            continue;
        }
        let view = tensor_view(path, &file, name)?;
        let shape = params[0].shape();
        if params.iter().any(|p| p.shape() != view.shape()) {
            problems.push(format!(
                "tensor {} has shape {:?} in the file, {:?} in the model",
                shown(name, &target),
                view.shape(),
                shape
            ));
            continue;
        }
        match decode::<T>(name, &view) {
            Ok(t) => updates.extend(params.iter().map(|&p| (p, t.clone()))),
            Err(e) => problems.push(e),
        }
    }
    let (generator_updates, missing_generators, unexpected_generators) =
        match_generators(&file.metadata(), module, options, &mut problems);
    let mut seen = HashSet::new();
    let missing: Vec<String> = targets
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !found.contains_key(n.as_str()) && seen.insert(n.as_str()))
        .cloned()
        .collect();
    if options.strict {
        if !missing.is_empty() {
            problems.push(format!("missing tensors {}", list(&missing)));
        }
        if !unexpected.is_empty() {
            problems.push(format!(
                "unexpected tensors {} (not in the model; LoadOptions::strict(false) skips them)",
                list(&unexpected)
            ));
        }
    }
    if !problems.is_empty() {
        return Err(fail(problems.join("; ")));
    }
    for (param, value) in updates {
        param.set_value(value);
    }
    for (generator, state) in generator_updates {
        generator.set_state(&state);
    }
    Ok(LoadReport {
        missing,
        unexpected,
        ignored,
        missing_generators,
        unexpected_generators,
    })
}

/// The generator states of the file's `metadata` that the module takes (parsed; a malformed
/// one is a problem), the module's generators without a state in the file, and the file's
/// states without a generator.
#[allow(clippy::type_complexity)]
fn match_generators<'m, T: Float, M: Module<T> + ?Sized>(
    metadata: &BTreeMap<String, String>,
    module: &'m M,
    options: &LoadOptions,
    problems: &mut Vec<String>,
) -> (Vec<(&'m Generator, GeneratorState)>, Vec<String>, Vec<String>) {
    let generators = module.named_generators();
    let mut wanted: HashMap<&str, Vec<&Generator>> = HashMap::new();
    for (name, g) in &generators {
        wanted.entry(name.as_str()).or_default().push(g);
    }
    let mut updates = Vec::new();
    let mut found = HashSet::new();
    let mut unexpected = Vec::new();
    for (key, text) in metadata {
        let Some(name) = key.strip_prefix(GENERATOR_KEY) else {
            continue;
        };
        let target = options.module_name(name);
        let Some(targets) = wanted.get(target.as_str()) else {
            unexpected.push(name.to_string());
            continue;
        };
        if !found.insert(target.clone()) {
            problems.push(format!(
                "two generator states map to the module's generator `{target}`"
            ));
            continue;
        }
        match text.parse::<GeneratorState>() {
            Ok(state) => updates.extend(targets.iter().map(|&g| (g, state.clone()))),
            Err(Error::InvalidData { detail }) => {
                problems.push(format!("generator {}: {detail}", shown(name, &target)))
            }
            Err(other) => problems.push(format!("generator {}: {other}", shown(name, &target))),
        }
    }
    let mut seen = HashSet::new();
    let missing = generators
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !found.contains(n.as_str()) && seen.insert(n.as_str()))
        .cloned()
        .collect();
    (updates, missing, unexpected)
}

/// `` `name` ``, or `` `name` (the model's `target`) `` when renamed.
fn shown(name: &str, target: &str) -> String {
    if name == target {
        format!("`{name}`")
    } else {
        format!("`{name}` (the model's `{target}`)")
    }
}

/// `` `a`, `b`, `c` `` (the first 10, then how many more).
fn list(names: &[String]) -> String {
    let mut out: Vec<String> = names.iter().take(10).map(|n| format!("`{n}`")).collect();
    if names.len() > 10 {
        out.push(format!("and {} more", names.len() - 10));
    }
    out.join(", ")
}

// ---------------------------------------------------------------------------------------------
// Named tensors
// ---------------------------------------------------------------------------------------------

/// Writes named tensors and string metadata (the safetensors `__metadata__`) to `path`,
/// atomically. Tensors are `F32` for `T = f32`, `F64` for `T = f64`; rank-0 tensors are allowed.
///
/// # Errors
/// [`Error::Io`] if the file cannot be written (the target is then unchanged);
/// [`Error::Checkpoint`] if two tensors have the same name.
///
/// ```
/// use tapegrad::Tensor;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("t.safetensors");
/// let tensors = vec![
///     ("a".to_string(), Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0], &[3])),
///     ("b".to_string(), Tensor::scalar(0.5)),
/// ];
/// tapegrad::io::save_tensors(&path, &tensors, &[("epoch", "3")]).unwrap();
/// assert_eq!(tapegrad::io::load_tensors::<f64>(&path).unwrap(), tensors);
/// assert_eq!(tapegrad::io::load_metadata(&path).unwrap()["epoch"], "3");
/// ```
pub fn save_tensors<T: Float>(
    path: impl AsRef<Path>,
    tensors: &[(String, Tensor<T>)],
    metadata: &[(&str, &str)],
) -> Result<(), Error> {
    let raw: Vec<(String, Raw)> = tensors
        .iter()
        .map(|(name, t)| (name.clone(), Raw::from_tensor(t)))
        .collect();
    let metadata = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    write_raw(path.as_ref(), raw, metadata)
}

/// Reads every tensor of a safetensors file, converted to `T` (see the module docs for dtypes),
/// in the order of the file's data.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Checkpoint`] if it is not a valid
/// safetensors file or holds a tensor whose dtype is not floating point.
///
/// ```
/// use tapegrad::Tensor;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("t.safetensors");
/// // An f64 file read as f32: values are rounded to the nearest f32.
/// tapegrad::io::save_tensors(&path, &[("x".to_string(), Tensor::<f64>::scalar(0.1))], &[]).unwrap();
/// let loaded = tapegrad::io::load_tensors::<f32>(&path).unwrap();
/// assert_eq!(loaded[0].1.item(), 0.1f32);
/// ```
pub fn load_tensors<T: Float>(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor<T>)>, Error> {
    let path = path.as_ref();
    let bytes = read(path)?;
    let file = parse(path, &bytes)?;
    let mut out = Vec::new();
    for name in file.header.offset_keys() {
        let view = tensor_view(path, &file, &name)?;
        let t = decode::<T>(&name, &view).map_err(|e| checkpoint(path, e))?;
        out.push((name, t));
    }
    Ok(out)
}

/// The string metadata of a safetensors file (its `__metadata__`; empty if it has none).
///
/// # Errors
/// As [`load_tensors`], except for dtypes, which are not looked at.
///
/// ```
/// use tapegrad::prelude::*;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("m.safetensors");
/// tapegrad::io::save(&path, &LayerNorm::<f32>::new(3)).unwrap();
/// assert_eq!(tapegrad::io::load_metadata(&path).unwrap()["format"], "pt");
/// ```
pub fn load_metadata(path: impl AsRef<Path>) -> Result<BTreeMap<String, String>, Error> {
    let path = path.as_ref();
    let bytes = read(path)?;
    let file = parse(path, &bytes)?;
    Ok(file.metadata())
}

// ---------------------------------------------------------------------------------------------
// Optimizers
// ---------------------------------------------------------------------------------------------

const OPTIMIZER_FORMAT: &str = "tapegrad-optimizer";

/// More parameters than any optimizer file can sensibly describe (a corrupt count must not make
/// the loader allocate without bound).
const MAX_PARAMS: usize = 1 << 24;
/// Parameter entries allowed per byte of an optimizer file, beyond [`MIN_ENTRIES`].
const ENTRIES_PER_BYTE: usize = 16;
/// Parameter entries allowed in any optimizer file, however small.
const MIN_ENTRIES: usize = 1 << 12;

/// Writes an optimizer's state ([`Optimizer::state`]) to `path`, atomically. Save the model's
/// parameters with [`save`] beside it: together they resume a run bit for bit.
///
/// # Errors
/// [`Error::Io`] if the file cannot be written (the target is then unchanged).
///
/// ```
/// use tapegrad::prelude::*;
/// let dir = tempfile::tempdir().unwrap();
/// let w = Param::new(Tensor::<f32>::from_vec(vec![1.0, -2.0], &[2]));
/// let mut opt = Adam::new(vec![w.clone()], AdamConfig::default());
/// let tape = Tape::new();
/// opt.step(&(tape.param(&w) * tape.param(&w)).sum().backward());
/// tapegrad::io::save_optimizer(dir.path().join("opt.safetensors"), &opt).unwrap();
///
/// let mut resumed = Adam::new(vec![Param::new(w.value())], AdamConfig::default());
/// tapegrad::io::load_optimizer(dir.path().join("opt.safetensors"), &mut resumed).unwrap();
/// assert_eq!(resumed.state(), opt.state());
/// ```
pub fn save_optimizer<T: Float, O: Optimizer<T> + ?Sized>(
    path: impl AsRef<Path>,
    optimizer: &O,
) -> Result<(), Error> {
    save_optimizer_state(path, &optimizer.state())
}

/// Reads an optimizer state from `path` into `optimizer` ([`Optimizer::load_state`]). The
/// optimizer must be of the same kind, over parameters of the same shapes in the same groups.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Checkpoint`] if it is not a valid
/// optimizer file or its state does not fit the optimizer. The optimizer is unchanged then.
///
/// ```
/// use tapegrad::prelude::*;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("sgd.safetensors");
/// let w = Param::new(Tensor::<f64>::zeros(&[3]));
/// let sgd = Sgd::new(vec![w.clone()], SgdConfig { lr: 0.1, momentum: 0.9, ..Default::default() });
/// tapegrad::io::save_optimizer(&path, &sgd).unwrap();
/// let mut adam = Adam::new(vec![w], AdamConfig::default());
/// let err = tapegrad::io::load_optimizer(&path, &mut adam).unwrap_err();
/// assert!(err.to_string().contains("exported by Sgd"));
/// ```
pub fn load_optimizer<T: Float, O: Optimizer<T> + ?Sized>(
    path: impl AsRef<Path>,
    optimizer: &mut O,
) -> Result<(), Error> {
    let path = path.as_ref();
    // The optimizer's own parameter count bounds what the file may announce, so a crafted file
    // cannot make the loader allocate for millions of parameters before the check below.
    let count = optimizer.param_groups().all_params().count();
    let state = read_optimizer_state(path, Some(count))?;
    optimizer.load_state(&state).map_err(|e| {
        let detail = match e {
            Error::InvalidData { detail } => detail,
            other => other.to_string(),
        };
        checkpoint(path, format!("the optimizer state does not fit: {detail}"))
    })
}

/// Writes an [`OptimizerState`] to `path` as safetensors, atomically (see the module docs for the
/// tensor names).
///
/// # Errors
/// [`Error::Io`] if the file cannot be written; [`Error::Checkpoint`] if the state cannot be
/// represented (a step count above `i64::MAX`, two buffers of one name).
///
/// ```
/// use tapegrad::optim::{GroupState, OptimizerState, ParamState};
/// let state = OptimizerState {
///     optimizer: "Sgd".to_string(),
///     groups: vec![GroupState { lr: 0.1, weight_decay: 0.0, num_params: 2 }],
///     params: vec![None, Some(ParamState {
///         step: 3,
///         shape: vec![2],
///         buffers: vec![("momentum_buffer".to_string(), vec![0.5, -1.0])],
///     })],
///     extra: vec![],
/// };
/// let dir = tempfile::tempdir().unwrap();
/// tapegrad::io::save_optimizer_state(dir.path().join("s.safetensors"), &state).unwrap();
/// assert_eq!(tapegrad::io::load_optimizer_state(dir.path().join("s.safetensors")).unwrap(), state);
/// ```
pub fn save_optimizer_state(path: impl AsRef<Path>, state: &OptimizerState) -> Result<(), Error> {
    let path = path.as_ref();
    let mut raw = Vec::new();
    for (g, group) in state.groups.iter().enumerate() {
        raw.push((format!("param_groups.{g}.lr"), Raw::f64_scalar(group.lr)));
        raw.push((
            format!("param_groups.{g}.weight_decay"),
            Raw::f64_scalar(group.weight_decay),
        ));
        raw.push((
            format!("param_groups.{g}.num_params"),
            Raw::i64_scalar(group.num_params as u64, path)?,
        ));
    }
    for (i, p) in state.params.iter().enumerate() {
        let Some(p) = p else { continue };
        raw.push((format!("state.{i}.step"), Raw::i64_scalar(p.step, path)?));
        raw.push((format!("state.{i}.shape"), Raw::i64_vector(&p.shape, path)?));
        for (name, values) in &p.buffers {
            raw.push((format!("state.{i}.{name}"), Raw::f64_vector(values)));
        }
    }
    for (name, values) in &state.extra {
        raw.push((format!("extra.{name}"), Raw::f64_vector(values)));
    }
    let order: Vec<&str> = raw.iter().map(|(n, _)| n.as_str()).collect();
    let order = serde_json::to_string(&order).map_err(|e| checkpoint(path, e.to_string()))?;
    let metadata = HashMap::from([
        ("format".to_string(), OPTIMIZER_FORMAT.to_string()),
        ("optimizer".to_string(), state.optimizer.clone()),
        ("order".to_string(), order),
    ]);
    write_raw(path, raw, metadata)
}

/// Reads an [`OptimizerState`] written by [`save_optimizer_state`] or [`save_optimizer`].
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Checkpoint`] if it is not a valid
/// safetensors file or not an optimizer file (wrong metadata, a tensor of an unexpected name,
/// dtype or shape), naming what is wrong.
///
/// ```
/// use tapegrad::prelude::*;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("model.safetensors");
/// tapegrad::io::save(&path, &LayerNorm::<f32>::new(2)).unwrap();
/// let err = tapegrad::io::load_optimizer_state(&path).unwrap_err();
/// assert!(err.to_string().contains("not an optimizer file"));
/// ```
pub fn load_optimizer_state(path: impl AsRef<Path>) -> Result<OptimizerState, Error> {
    let path = path.as_ref();
    read_optimizer_state(path, None)
}

/// [`load_optimizer_state`], for the optimizer of `optimizer_params` parameters if there is one
/// (then no more are allowed). Parameters without state cost the file nothing but the loader an
/// entry each, so without an optimizer their number is bounded by the file's size (a generous
/// [`ENTRIES_PER_BYTE`] per byte, from [`MIN_ENTRIES`]): a file of a few hundred bytes cannot
/// announce 2²⁴ parameters and make the loader allocate a gibibyte.
fn read_optimizer_state(path: &Path, optimizer_params: Option<usize>) -> Result<OptimizerState, Error> {
    let bytes = read(path)?;
    let (max_params, limit) = match optimizer_params {
        Some(n) => (
            n,
            format!("the optimizer state does not fit: the optimizer has {n}"),
        ),
        None => {
            let by_size = MIN_ENTRIES.saturating_add(bytes.len().saturating_mul(ENTRIES_PER_BYTE));
            let n = MAX_PARAMS.min(by_size);
            (
                n,
                format!("a file of {} bytes may describe at most {n}", bytes.len()),
            )
        }
    };
    let file = parse(path, &bytes)?;
    let fail = |detail: String| checkpoint(path, detail);
    let metadata = file.metadata();
    if metadata.get("format").map(String::as_str) != Some(OPTIMIZER_FORMAT) {
        return Err(fail(format!(
            "not an optimizer file (its metadata has no `format = {OPTIMIZER_FORMAT}`)"
        )));
    }
    let optimizer = metadata
        .get("optimizer")
        .cloned()
        .ok_or_else(|| fail("the metadata names no optimizer".to_string()))?;
    let order: Vec<String> = metadata
        .get("order")
        .ok_or_else(|| fail("the metadata has no tensor order".to_string()))
        .and_then(|o| {
            serde_json::from_str(o)
                .map_err(|e| fail(format!("the metadata's tensor order is not a list: {e}")))
        })?;
    let in_file = file.sorted_names();
    let mut listed: Vec<&str> = order.iter().map(String::as_str).collect();
    listed.sort_unstable();
    if in_file != listed {
        return Err(fail(format!(
            "the tensors {in_file:?} differ from the metadata's list {listed:?}"
        )));
    }

    let scalar_f64 = |name: &str| -> Result<f64, Error> {
        let view = tensor_view(path, &file, name)?;
        match (view.dtype(), view.shape()) {
            (Dtype::F64, []) => Ok(f64_values(view.data())[0]),
            (dtype, shape) => Err(fail(format!(
                "tensor `{name}` is {dtype} {shape:?}, expected F64 []"
            ))),
        }
    };
    let scalar_count = |name: &str| -> Result<u64, Error> {
        let view = tensor_view(path, &file, name)?;
        match (view.dtype(), view.shape()) {
            (Dtype::I64, []) => {
                let b = view.data();
                let v = i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                u64::try_from(v).map_err(|_| fail(format!("tensor `{name}` = {v} is negative")))
            }
            (dtype, shape) => Err(fail(format!(
                "tensor `{name}` is {dtype} {shape:?}, expected I64 []"
            ))),
        }
    };
    let dims = |name: &str| -> Result<Vec<usize>, Error> {
        let view = tensor_view(path, &file, name)?;
        match (view.dtype(), view.shape()) {
            (Dtype::I64, [_]) => view
                .data()
                .chunks_exact(8)
                .map(|b| {
                    let d = i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                    usize::try_from(d).map_err(|_| fail(format!("tensor `{name}` holds the dimension {d}")))
                })
                .collect(),
            (dtype, shape) => Err(fail(format!(
                "tensor `{name}` is {dtype} {shape:?}, expected I64 [rank]"
            ))),
        }
    };
    let vector = |name: &str| -> Result<Vec<f64>, Error> {
        let view = tensor_view(path, &file, name)?;
        match (view.dtype(), view.shape()) {
            (Dtype::F64, [_]) => Ok(f64_values(view.data())),
            (dtype, shape) => Err(fail(format!(
                "tensor `{name}` is {dtype} {shape:?}, expected F64 [n]"
            ))),
        }
    };

    // Each group's (lr, weight_decay, num_params), filled in as the tensors come.
    let mut groups: Vec<(Option<f64>, Option<f64>, Option<usize>)> = Vec::new();
    let mut params: Vec<Option<ParamState>> = Vec::new();
    // Whether `state.{i}.shape` was read, for each entry of `params`.
    let mut shapes_seen: Vec<bool> = Vec::new();
    let mut extra = Vec::new();
    for name in &order {
        let parts: Vec<&str> = name.splitn(3, '.').collect();
        match parts.as_slice() {
            ["param_groups", g, field] => {
                let g = index(g).ok_or_else(|| fail(format!("tensor `{name}`: bad group index")))?;
                if g == groups.len() {
                    groups.push((None, None, None));
                } else if g + 1 != groups.len() {
                    return Err(fail(format!("tensor `{name}`: groups out of order")));
                }
                let group = &mut groups[g];
                match *field {
                    "lr" => group.0 = Some(scalar_f64(name)?),
                    "weight_decay" => group.1 = Some(scalar_f64(name)?),
                    "num_params" => {
                        let n = scalar_count(name)?;
                        let n = usize::try_from(n)
                            .ok()
                            .filter(|&n| n <= max_params)
                            .ok_or_else(|| {
                                fail(format!("tensor `{name}` announces {n} parameters; {limit}"))
                            })?;
                        group.2 = Some(n);
                    }
                    _ => return Err(fail(format!("unexpected tensor `{name}`"))),
                }
            }
            ["state", i, field] => {
                let i = index(i)
                    .filter(|&i| i < max_params)
                    .ok_or_else(|| fail(format!("tensor `{name}`: bad parameter index")))?;
                if *field == "step" {
                    if i < params.len() {
                        return Err(fail(format!("tensor `{name}`: parameters out of order")));
                    }
                    params.resize(i, None);
                    shapes_seen.resize(i, true);
                    params.push(Some(ParamState {
                        step: scalar_count(name)?,
                        shape: Vec::new(),
                        buffers: Vec::new(),
                    }));
                    shapes_seen.push(false);
                } else if *field == "shape" {
                    let last = params.len().checked_sub(1) == Some(i);
                    match params.get_mut(i) {
                        Some(Some(p)) if last && !shapes_seen[i] => {
                            p.shape = dims(name)?;
                            shapes_seen[i] = true;
                        }
                        _ => return Err(fail(format!("tensor `{name}` comes before `state.{i}.step`"))),
                    }
                } else {
                    let last = params.len().checked_sub(1) == Some(i);
                    match params.get_mut(i) {
                        Some(Some(p)) if last => {
                            p.buffers.push((field.to_string(), vector(name)?));
                        }
                        _ => return Err(fail(format!("tensor `{name}` comes before `state.{i}.step`"))),
                    }
                }
            }
            _ => match name.strip_prefix("extra.") {
                Some(buffer) => extra.push((buffer.to_string(), vector(name)?)),
                None => return Err(fail(format!("unexpected tensor `{name}`"))),
            },
        }
    }
    if let Some(i) = shapes_seen.iter().position(|seen| !seen) {
        return Err(fail(format!(
            "parameter {i} has no `state.{i}.shape` (a file written before tapegrad kept \
             parameter shapes; save it again with this version)"
        )));
    }
    let groups = groups
        .into_iter()
        .enumerate()
        .map(|(g, group)| match group {
            (Some(lr), Some(weight_decay), Some(num_params)) => Ok(GroupState {
                lr,
                weight_decay,
                num_params,
            }),
            _ => Err(fail(format!(
                "group {g} lacks one of `param_groups.{g}.lr`, `.weight_decay`, `.num_params`"
            ))),
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let total = groups
        .iter()
        .try_fold(0usize, |sum, g| {
            sum.checked_add(g.num_params).filter(|&t| t <= max_params)
        })
        .ok_or_else(|| fail(format!("the groups announce more parameters than that; {limit}")))?;
    if params.len() > total {
        return Err(fail(format!(
            "state for parameter {} but the groups have {total} parameters",
            params.len() - 1
        )));
    }
    params.resize(total, None);
    Ok(OptimizerState {
        optimizer,
        groups,
        params,
        extra,
    })
}

fn index(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

fn checkpoint(path: &Path, detail: String) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        detail,
    }
}

/// All of `path`, up to [`DEFAULT_MAX_BYTES`](crate::data::DEFAULT_MAX_BYTES) (a checkpoint
/// beyond it is an [`Error::Checkpoint`] before anything is allocated for it).
fn read(path: &Path) -> Result<Vec<u8>, Error> {
    read_limited(path, crate::data::DEFAULT_MAX_BYTES)
}

/// All of `path`, up to `max_bytes`.
fn read_limited(path: &Path, max_bytes: u64) -> Result<Vec<u8>, Error> {
    crate::data::read_file(path, max_bytes).map_err(|e| match e {
        Error::InvalidData { detail } => checkpoint(path, detail),
        other => other,
    })
}

/// A parsed file: its tensors and its header.
struct Parsed<'a> {
    tensors: SafeTensors<'a>,
    header: Metadata,
}

impl Parsed<'_> {
    /// The string metadata (`__metadata__`).
    fn metadata(&self) -> BTreeMap<String, String> {
        self.header
            .metadata()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Every tensor name, sorted.
    fn sorted_names(&self) -> Vec<&str> {
        let mut names = self.tensors.names();
        names.sort_unstable();
        names
    }
}

/// Parses the whole file (header, offsets, sizes), turning the parser's errors into messages that
/// say what is wrong with this file.
fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<Parsed<'a>, Error> {
    let describe = |e: SafeTensorError| checkpoint(path, describe(&e, bytes));
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(describe)?;
    let tensors = SafeTensors::deserialize(bytes).map_err(describe)?;
    Ok(Parsed { tensors, header })
}

fn describe(e: &SafeTensorError, bytes: &[u8]) -> String {
    let len = bytes.len();
    let header_len = match bytes {
        [a, b, c, d, e, f, g, h, ..] => u64::from_le_bytes([*a, *b, *c, *d, *e, *f, *g, *h]),
        _ => 0,
    };
    match e {
        SafeTensorError::HeaderTooSmall if len == 0 => "the file is empty".to_string(),
        SafeTensorError::HeaderTooSmall => format!(
            "the file is {len} bytes, too short for the 8-byte header length: truncated, or not a \
             safetensors file"
        ),
        SafeTensorError::HeaderTooLarge => format!(
            "the header length {header_len} is over the 100 MB limit: corrupted, or not a safetensors file"
        ),
        SafeTensorError::InvalidHeaderLength => format!(
            "the header length {header_len} points past the end of the file ({len} bytes): truncated \
             or corrupted"
        ),
        SafeTensorError::InvalidHeader(_) => "the header is not UTF-8 text: corrupted".to_string(),
        SafeTensorError::InvalidHeaderDeserialization(e) => {
            format!("the header is not valid safetensors JSON ({e}): corrupted")
        }
        SafeTensorError::MetadataIncompleteBuffer => format!(
            "the data after the header is {} bytes, not the size the header's tensors take: \
             truncated, corrupted or with trailing bytes",
            (len as u64).saturating_sub(8).saturating_sub(header_len)
        ),
        SafeTensorError::InvalidOffset(name) => {
            format!("the data offsets of tensor `{name}` in the header are invalid: corrupted")
        }
        SafeTensorError::TensorInvalidInfo => {
            "a tensor's data size in the header does not match its shape and dtype: corrupted".to_string()
        }
        other => format!("not a valid safetensors file: {other}"),
    }
}

fn tensor_view<'a>(path: &Path, file: &Parsed<'a>, name: &str) -> Result<TensorView<'a>, Error> {
    file.tensors
        .tensor(name)
        .map_err(|e| checkpoint(path, format!("tensor `{name}`: {e}")))
}

/// Converts a tensor's bytes to `T` (see the module docs).
fn decode<T: Float>(name: &str, view: &TensorView<'_>) -> Result<Tensor<T>, String> {
    let data = view.data();
    let values: Vec<T> = match view.dtype() {
        Dtype::F64 => f64_values(data).into_iter().map(T::from_f64).collect(),
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| T::from_f64(f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| T::from_f64(f16_to_f64(u16::from_le_bytes([b[0], b[1]]))))
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| T::from_f64(f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16) as f64))
            .collect(),
        other => {
            return Err(format!(
                "tensor `{name}` has dtype {other}, which tapegrad does not load (F32, F64, F16 and \
                 BF16 only)"
            ));
        }
    };
    Tensor::try_from_vec(values, view.shape()).map_err(|e| format!("tensor `{name}`: {e}"))
}

fn f64_values(data: &[u8]) -> Vec<f64> {
    data.chunks_exact(8)
        .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .collect()
}

/// IEEE half precision to f64 (exact).
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((h >> 10) & 0x1f);
    let mantissa = f64::from(h & 0x3ff);
    match exponent {
        0 => sign * mantissa * 2f64.powi(-24),
        31 if mantissa == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        e => sign * (1.0 + mantissa / 1024.0) * 2f64.powi(e - 15),
    }
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// A tensor as the bytes safetensors stores (little-endian).
struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Raw {
    fn from_tensor<T: Float>(t: &Tensor<T>) -> Raw {
        let values = t.as_slice();
        let (dtype, bytes) = if std::mem::size_of::<T>() == 4 {
            let bytes = values
                .iter()
                .flat_map(|&x| (x.to_f64() as f32).to_le_bytes())
                .collect();
            (Dtype::F32, bytes)
        } else {
            let bytes = values.iter().flat_map(|&x| x.to_f64().to_le_bytes()).collect();
            (Dtype::F64, bytes)
        };
        Raw {
            dtype,
            shape: t.shape().to_vec(),
            bytes,
        }
    }

    fn f64_scalar(x: f64) -> Raw {
        Raw {
            dtype: Dtype::F64,
            shape: Vec::new(),
            bytes: x.to_le_bytes().to_vec(),
        }
    }

    fn f64_vector(values: &[f64]) -> Raw {
        Raw {
            dtype: Dtype::F64,
            shape: vec![values.len()],
            bytes: values.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    fn i64_vector(values: &[usize], path: &Path) -> Result<Raw, Error> {
        let bytes = values
            .iter()
            .map(|&x| {
                i64::try_from(x)
                    .map(i64::to_le_bytes)
                    .map_err(|_| checkpoint(path, format!("the dimension {x} does not fit in I64")))
            })
            .collect::<Result<Vec<_>, Error>>()?
            .concat();
        Ok(Raw {
            dtype: Dtype::I64,
            shape: vec![values.len()],
            bytes,
        })
    }

    fn i64_scalar(x: u64, path: &Path) -> Result<Raw, Error> {
        let x =
            i64::try_from(x).map_err(|_| checkpoint(path, format!("the count {x} does not fit in I64")))?;
        Ok(Raw {
            dtype: Dtype::I64,
            shape: Vec::new(),
            bytes: x.to_le_bytes().to_vec(),
        })
    }
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }

    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn write_raw(
    path: &Path,
    tensors: Vec<(String, Raw)>,
    metadata: HashMap<String, String>,
) -> Result<(), Error> {
    let mut seen = HashSet::new();
    for (name, _) in &tensors {
        if !seen.insert(name.as_str()) {
            return Err(checkpoint(path, format!("two tensors are named `{name}`")));
        }
    }
    let metadata = (!metadata.is_empty()).then_some(metadata);
    let bytes = safetensors::serialize(tensors.iter().map(|(n, r)| (n.as_str(), r)), metadata)
        .map_err(|e| checkpoint(path, format!("cannot encode the tensors: {e}")))?;
    write_atomic(path, &bytes)
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Removes the temporary file unless the write succeeded.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes `bytes` to a new file beside `path`, syncs it, and renames it over `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source: std::io::Error| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a file name",
            ))
        })?
        .to_string_lossy();
    let (mut file, temp) = loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!(".{file_name}.{}-{n}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(f) => {
                break (
                    f,
                    TempFile {
                        path: temp,
                        keep: false,
                    },
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < u64::MAX => continue,
            Err(e) => return Err(io(e)),
        }
    };
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&temp.path, path).map_err(io)?;
    let mut temp = temp;
    temp.keep = true;
    // Make the rename itself durable (best effort: not every platform can open a directory).
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_optimizer_file_without_parameter_shapes_is_refused_naming_the_tensor() {
        // What files written before `state.{i}.shape` existed hold.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.safetensors");
        let raw = vec![
            ("param_groups.0.lr".to_string(), Raw::f64_scalar(0.1)),
            ("param_groups.0.weight_decay".to_string(), Raw::f64_scalar(0.0)),
            (
                "param_groups.0.num_params".to_string(),
                Raw::i64_scalar(1, &path).unwrap(),
            ),
            ("state.0.step".to_string(), Raw::i64_scalar(1, &path).unwrap()),
            (
                "state.0.momentum_buffer".to_string(),
                Raw::f64_vector(&[0.5, 1.0]),
            ),
        ];
        let order: Vec<&str> = raw.iter().map(|(n, _)| n.as_str()).collect();
        let metadata = HashMap::from([
            ("format".to_string(), OPTIMIZER_FORMAT.to_string()),
            ("optimizer".to_string(), "Sgd".to_string()),
            ("order".to_string(), serde_json::to_string(&order).unwrap()),
        ]);
        write_raw(&path, raw, metadata).unwrap();
        let err = load_optimizer_state(&path).unwrap_err().to_string();
        assert!(err.contains("parameter 0 has no `state.0.shape`"), "{err}");
    }
}
