//! A character-level language model that learns to write: a small causal Transformer (GPT-style)
//! or an LSTM, trained on a text file to predict each next character.
//!
//! ```text
//! cargo run --release --example char_lm -- --model gpt              # the repository's own docs
//! cargo run --release --example char_lm -- --model lstm --text FILE  # any UTF-8 text
//! cargo run --release --example char_lm -- --model gpt --steps 2000 --resume --out runs/gpt
//! cargo run --profile test --example char_lm -- --quick             # a few seconds, as CI runs it
//! ```
//!
//! - `--model gpt`: token and learned position embeddings (`nn::Embedding`), `--layers`
//!   pre-norm `nn::TransformerEncoderLayer`s (GELU, `--heads` heads, a causal mask through
//!   `is_causal`, feed-forward width 4 × `--width`), a final `LayerNorm` and a `Linear` head.
//! - `--model lstm`: `nn::Embedding` → `nn::Lstm` (`--layers` layers of `--width`) → `Linear`.
//!
//! The text (`--text PATH`; by default the repository's README.md and ARCHITECTURE.md, read at
//! run time, so nothing is downloaded) is split 90/10 into training and validation characters.
//! Each step trains on `--batch` random windows of `--context` characters, with AdamW (`--lr`,
//! weight decay 0.01) and gradients clipped to norm 1. Every `--interval` steps a line gives
//! the mean training loss over the interval and the validation loss, in nats per character (a
//! model that knows nothing scores ln(vocabulary), printed once), a sample is printed, and the
//! model and optimizer are saved with `tapegrad::io` to `--out DIR` (`char_lm_model.safetensors`,
//! whose metadata holds the architecture, vocabulary, step and loss history, and
//! `char_lm_optimizer.safetensors`). `--resume` continues from those files up to `--steps` in
//! all, with the architecture and vocabulary of the checkpoint (the flags that set them are then
//! ignored); the windows of each step are drawn from a generator seeded by (`--seed`, step), so a
//! resumed run ends with the same parameters as one that never stopped (`tests/char_lm.rs`
//! checks this). The loss curve is written to `char_lm_loss.svg`. After training, text is
//! sampled under `no_grad` (`--temperature`, `--top-k`, `--chars`, `--prompt`): the GPT rereads a
//! sliding window of the last `--context` characters for each new one, the LSTM carries its
//! state `(h, c)` from character to character (`Lstm::forward_with_state`).
//!
//! Defaults: 600 steps of 16 windows of 64 characters, seed 0, temperature 0.8, top-k 10; the
//! GPT has width 64, 2 blocks, 4 heads and lr 1e-2 (118k parameters), the LSTM one layer of
//! 128 and lr 5e-3 (160k parameters). Observed with the defaults on this repository's
//! README.md and ARCHITECTURE.md as they were when this was written (about 48k characters,
//! vocabulary 109, so the uniform baseline is ln 109 = 4.69 nats), release build, on two cores
//! shared with other jobs:
//!
//! | model | val after 100 / 300 / 600 steps | train at 600 | time |
//! |---|---|---|---|
//! | gpt | 2.71 / 2.47 / 2.15 nats per character | 1.86 | 40 s |
//! | lstm | 2.39 / 2.11 / 1.99 nats per character | 1.49 | 13–26 s |
//!
//! The text is small, so both start to overfit (training loss below validation) by the end.
//! The samples are not English yet, but have its shape and the docs' own words and markup
//! (the prompt is `The `):
//!
//! ```text
//! lstm: The |an and tany which compest a buffer `sum, resumed (`convarge to thes oncent and
//! gpt:  The |chand and with ithe fomple a the tanh flow or re and the shape they resume `st`
//! ```
//!
//! `--quick` (60 steps of 8 windows of 32 characters, width 32, one block or layer) only checks
//! that everything runs and that the loss falls (about 4.8 to 3.0 nats in 60 steps, 2.5 s
//! unoptimised); it exits with status 1 if the validation loss has not fallen by at least half a
//! nat. Its checkpoints go to a temporary directory unless `--out` is given.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tapegrad::nn::{
    Embedding, LayerNorm, Lstm, RnnConfig, TransformerEncoder, TransformerEncoderLayer,
    TransformerEncoderLayerConfig,
};
use tapegrad::prelude::*;
use tapegrad::rand::{RngExt, SeedableRng, rngs::StdRng};

mod common;

/// The two networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A causal Transformer.
    Gpt,
    /// An LSTM.
    Lstm,
}

impl Kind {
    /// `gpt` or `lstm`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Gpt => "gpt",
            Kind::Lstm => "lstm",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        match s {
            "gpt" => Some(Kind::Gpt),
            "lstm" => Some(Kind::Lstm),
            _ => None,
        }
    }
}

/// The options of a run.
#[derive(Clone, Debug)]
pub struct Config {
    /// The network.
    pub kind: Kind,
    /// Train until this many steps in all (a resumed run counts the steps before it).
    pub steps: usize,
    /// Windows per step.
    pub batch: usize,
    /// Characters per window (and the GPT's largest context).
    pub context: usize,
    /// Embedding and hidden width.
    pub width: usize,
    /// Transformer blocks or LSTM layers.
    pub layers: usize,
    /// Attention heads (GPT only).
    pub heads: usize,
    /// AdamW's learning rate.
    pub lr: f64,
    /// Seeds the initial weights and every step's windows.
    pub seed: u64,
    /// Steps between progress lines, samples and checkpoints.
    pub interval: usize,
    /// Validation windows of `context` characters, spread evenly over the validation text.
    pub eval_windows: usize,
    /// Characters sampled at each interval (0: none) and after training.
    pub sample_every: usize,
    /// Characters sampled after training.
    pub sample_chars: usize,
    /// Sampling temperature (0: always the most likely character).
    pub temperature: f64,
    /// Sample among the `top_k` most likely characters only (0: all).
    pub top_k: usize,
    /// Where generated text starts (characters outside the vocabulary are dropped).
    pub prompt: String,
    /// Print progress and samples.
    pub verbose: bool,
}

impl Config {
    /// A full run's defaults for `kind`.
    pub fn full(kind: Kind) -> Config {
        let (width, lr) = match kind {
            Kind::Gpt => (64, 1e-2),
            Kind::Lstm => (128, 5e-3),
        };
        Config {
            kind,
            steps: 600,
            batch: 16,
            context: 64,
            width,
            layers: if kind == Kind::Gpt { 2 } else { 1 },
            heads: 4,
            lr,
            seed: 0,
            interval: 100,
            eval_windows: 32,
            sample_every: 80,
            sample_chars: 400,
            temperature: 0.8,
            top_k: 10,
            prompt: "The ".to_string(),
            verbose: true,
        }
    }

    /// `--quick`: tiny, a few seconds unoptimised.
    pub fn quick(kind: Kind) -> Config {
        Config {
            steps: 60,
            batch: 8,
            context: 32,
            width: 32,
            layers: 1,
            heads: 2,
            lr: 1e-2,
            interval: 10,
            eval_windows: 8,
            sample_every: 0,
            sample_chars: 80,
            ..Config::full(kind)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------------

/// The characters of a text, sorted; a character's id is its place in the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    chars: Vec<char>,
}

impl Vocab {
    /// Every character of `text`, once.
    pub fn from_text(text: &str) -> Vocab {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        Vocab { chars }
    }

    /// The number of characters.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// `true` if there are none.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The id of `c`, if it is in the vocabulary.
    pub fn id(&self, c: char) -> Option<usize> {
        self.chars.binary_search(&c).ok()
    }

    /// The ids of `text`, or the first character that is not in the vocabulary.
    pub fn encode(&self, text: &str) -> Result<Vec<usize>, char> {
        text.chars().map(|c| self.id(c).ok_or(c)).collect()
    }

    /// The text of `ids`.
    pub fn decode(&self, ids: &[usize]) -> String {
        ids.iter().map(|&i| self.chars[i]).collect()
    }

    /// The characters, in order (saved in a checkpoint's metadata).
    pub fn as_string(&self) -> String {
        self.chars.iter().collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The networks
// ---------------------------------------------------------------------------------------------

/// A GPT-style causal Transformer over character ids. The derive names its parameters
/// `tok_emb.weight`, `pos_emb.weight`, `encoder.layers.0.self_attn.in_proj_weight`, ...
#[derive(Debug, Module)]
pub struct Gpt {
    /// Token embeddings `[vocab, width]`.
    #[module(rename = "tok_emb")]
    pub tokens: Embedding<f32>,
    /// Learned position embeddings `[context, width]`.
    #[module(rename = "pos_emb")]
    pub positions: Embedding<f32>,
    /// Pre-norm blocks and the final LayerNorm.
    pub encoder: TransformerEncoder<f32>,
    /// Logits over the vocabulary.
    pub head: Linear<f32>,
    #[module(training)]
    training: bool,
}

impl Gpt {
    /// `layers` blocks of `width` with `heads` heads, for windows up to `context` characters.
    pub fn new(
        vocab: usize,
        context: usize,
        width: usize,
        layers: usize,
        heads: usize,
        rng: &mut StdRng,
    ) -> Gpt {
        let cfg = TransformerEncoderLayerConfig {
            dim_feedforward: 4 * width,
            dropout: 0.0,
            activation: Activation::Gelu,
            batch_first: true,
            norm_first: true,
            ..Default::default()
        };
        // Each block initialised on its own (TransformerEncoder::new would copy the first).
        let first = TransformerEncoderLayer::new(width, heads, cfg, rng);
        let mut encoder = TransformerEncoder::new(first, 1, Some(LayerNorm::new(width)));
        for _ in 1..layers {
            encoder
                .layers
                .push(TransformerEncoderLayer::new(width, heads, cfg, rng));
        }
        Gpt {
            tokens: Embedding::new(vocab, width, rng),
            positions: Embedding::new(context, width, rng),
            encoder,
            head: Linear::new(width, vocab, rng),
            training: true,
        }
    }
}

impl Gpt {
    /// Logits `[N, T, vocab]` for ids `[N, T]` (stored as floats), `T` at most the context.
    pub fn forward<'t>(&self, tape: &'t Tape<f32>, ids: Var<'t, f32>) -> Var<'t, f32> {
        let steps = ids.shape()[1];
        let positions: Vec<usize> = (0..steps).collect();
        let x = self.tokens.forward(tape, ids) + self.positions.lookup(tape, &positions);
        let h = self.encoder.forward_masked(tape, x, None, None, true);
        self.head.forward(tape, h)
    }
}

/// Embedding → LSTM → Linear over character ids.
#[derive(Debug, Module)]
pub struct LstmLm {
    /// Character embeddings `[vocab, width]`.
    pub embed: Embedding<f32>,
    /// `layers` layers of `width`, batch first.
    pub lstm: Lstm<f32>,
    /// Logits over the vocabulary.
    pub head: Linear<f32>,
    #[module(training)]
    training: bool,
}

impl LstmLm {
    /// `layers` LSTM layers of `width`.
    pub fn new(vocab: usize, width: usize, layers: usize, rng: &mut StdRng) -> LstmLm {
        let cfg = RnnConfig {
            num_layers: layers,
            batch_first: true,
            ..Default::default()
        };
        LstmLm {
            embed: Embedding::new(vocab, width, rng),
            lstm: Lstm::new(width, width, cfg, rng),
            head: Linear::new(width, vocab, rng),
            training: true,
        }
    }

    /// Logits `[N, T, vocab]` for ids `[N, T]` from the state `(h, c)` (`None`: zeros), and the
    /// final state.
    pub fn forward_with_state<'t>(
        &self,
        tape: &'t Tape<f32>,
        ids: Var<'t, f32>,
        state: Option<(Var<'t, f32>, Var<'t, f32>)>,
    ) -> (Var<'t, f32>, (Var<'t, f32>, Var<'t, f32>)) {
        let (h, state) = self
            .lstm
            .forward_with_state(tape, self.embed.forward(tape, ids), state);
        (self.head.forward(tape, h), state)
    }
}

impl LstmLm {
    /// Logits `[N, T, vocab]` for ids `[N, T]`, from the zero state.
    pub fn forward<'t>(&self, tape: &'t Tape<f32>, ids: Var<'t, f32>) -> Var<'t, f32> {
        self.forward_with_state(tape, ids, None).0
    }
}

/// Either network.
#[derive(Debug)]
pub enum CharLm {
    /// The Transformer.
    Gpt(Gpt),
    /// The LSTM.
    Lstm(Box<LstmLm>),
}

impl CharLm {
    /// A freshly initialised network of `kind` for `vocab` characters.
    pub fn new(kind: Kind, vocab: usize, arch: &Arch, rng: &mut StdRng) -> CharLm {
        match kind {
            Kind::Gpt => CharLm::Gpt(Gpt::new(
                vocab,
                arch.context,
                arch.width,
                arch.layers,
                arch.heads,
                rng,
            )),
            Kind::Lstm => CharLm::Lstm(Box::new(LstmLm::new(vocab, arch.width, arch.layers, rng))),
        }
    }

    fn module(&self) -> &dyn Module<f32> {
        match self {
            CharLm::Gpt(m) => m,
            CharLm::Lstm(m) => &**m,
        }
    }

    /// Logits `[N, T, vocab]` for ids `[N, T]`.
    pub fn forward<'t>(&self, tape: &'t Tape<f32>, ids: Var<'t, f32>) -> Var<'t, f32> {
        match self {
            CharLm::Gpt(m) => m.forward(tape, ids),
            CharLm::Lstm(m) => m.forward(tape, ids),
        }
    }
}

/// An enum of models: the derive takes structs, so this one is written by hand.
impl Module<f32> for CharLm {
    fn named_parameters(&self) -> Vec<(String, Param<f32>)> {
        self.module().named_parameters()
    }

    fn train(&mut self, mode: bool) {
        match self {
            CharLm::Gpt(m) => m.train(mode),
            CharLm::Lstm(m) => m.train(mode),
        }
    }

    fn is_training(&self) -> bool {
        self.module().is_training()
    }
}

/// The shape of a network (what a checkpoint must match).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arch {
    /// Characters per window.
    pub context: usize,
    /// Embedding and hidden width.
    pub width: usize,
    /// Blocks or layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
}

// ---------------------------------------------------------------------------------------------
// Data, loss, sampling
// ---------------------------------------------------------------------------------------------

/// A generator for `stream` at `step`, determined by the seed: a resumed run draws what an
/// uninterrupted one would have.
fn step_rng(seed: u64, step: usize, stream: u64) -> StdRng {
    let mut z =
        seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

/// Ids `[windows, context]` as floats and the next character of each position.
fn windows(data: &[usize], starts: &[usize], context: usize) -> (Tensor<f32>, Vec<usize>) {
    let mut ids = Vec::with_capacity(starts.len() * context);
    let mut targets = Vec::with_capacity(starts.len() * context);
    for &s in starts {
        ids.extend(data[s..s + context].iter().map(|&i| i as f32));
        targets.extend_from_slice(&data[s + 1..s + context + 1]);
    }
    (Tensor::from_vec(ids, &[starts.len(), context]), targets)
}

/// The mean cross-entropy (nats per character) of `logits` `[N, T, vocab]` against `targets`.
fn char_loss<'t>(logits: Var<'t, f32>, targets: &[usize]) -> Var<'t, f32> {
    let vocab = *logits.shape().last().expect("logits have a vocabulary axis");
    loss::cross_entropy(logits.reshape(&[targets.len(), vocab]), targets)
}

/// The validation loss on `windows` windows spread evenly over `data`, in evaluation mode and
/// without recording.
pub fn validation_loss(model: &mut CharLm, data: &[usize], context: usize, count: usize) -> f64 {
    let last = data.len() - context - 1;
    let gaps = count.saturating_sub(1).max(1);
    let starts: Vec<usize> = (0..count).map(|i| i * last / gaps).collect();
    let (ids, targets) = windows(data, &starts, context);
    model.eval();
    let tape = Tape::new();
    let loss =
        tape.no_grad(|| f64::from(char_loss(model.forward(&tape, tape.constant(ids)), &targets).item()));
    model.train(true);
    loss
}

/// An id drawn from `logits / temperature`, among the `top_k` largest (0: all).
pub fn sample_id(logits: &[f32], temperature: f64, top_k: usize, rng: &mut StdRng) -> usize {
    let best = (0..logits.len()).fold(0, |b, i| if logits[i] > logits[b] { i } else { b });
    if temperature <= 0.0 {
        return best;
    }
    let mut cut = f32::NEG_INFINITY;
    if top_k > 0 && top_k < logits.len() {
        let mut sorted = logits.to_vec();
        sorted.sort_unstable_by(|a, b| b.total_cmp(a));
        cut = sorted[top_k - 1];
    }
    let top = f64::from(logits[best]);
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| {
            if l >= cut {
                ((f64::from(l) - top) / temperature).exp()
            } else {
                0.0
            }
        })
        .collect();
    let mut u = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (i, w) in weights.iter().enumerate() {
        u -= w;
        if u < 0.0 && *w > 0.0 {
            return i;
        }
    }
    best
}

/// `count` characters generated after `prompt` (the prompt's characters outside the vocabulary
/// are dropped; an empty prompt starts at the first character of the vocabulary), in evaluation
/// mode and without recording.
pub fn generate(
    model: &mut CharLm,
    vocab: &Vocab,
    cfg: &Config,
    context: usize,
    count: usize,
    rng: &mut StdRng,
) -> String {
    let mut ids: Vec<usize> = cfg.prompt.chars().filter_map(|c| vocab.id(c)).collect();
    if ids.is_empty() {
        ids.push(0);
    }
    let start = ids.len();
    model.eval();
    let as_input = |ids: &[usize]| Tensor::from_vec(ids.iter().map(|&i| i as f32).collect(), &[1, ids.len()]);
    let mut tape = Tape::new();
    match model {
        CharLm::Gpt(gpt) => {
            for _ in 0..count {
                // A sliding window: the last `context` characters.
                tape.reset();
                let window = &ids[ids.len().saturating_sub(context)..];
                let logits = tape.no_grad(|| gpt.forward(&tape, tape.constant(as_input(window))).value());
                let last = logits.narrow(1, window.len() - 1, 1);
                ids.push(sample_id(last.as_slice(), cfg.temperature, cfg.top_k, rng));
            }
        }
        CharLm::Lstm(lstm) => {
            // The prompt once, then one character at a time, carrying (h, c) over.
            let mut input = ids.clone();
            let mut state: Option<(Tensor<f32>, Tensor<f32>)> = None;
            for _ in 0..count {
                tape.reset();
                let (logits, next) = tape.no_grad(|| {
                    let state = state.take().map(|(h, c)| (tape.constant(h), tape.constant(c)));
                    let (logits, (h, c)) =
                        lstm.forward_with_state(&tape, tape.constant(as_input(&input)), state);
                    (logits.value(), (h.value(), c.value()))
                });
                state = Some(next);
                let last = logits.narrow(1, input.len() - 1, 1);
                let id = sample_id(last.as_slice(), cfg.temperature, cfg.top_k, rng);
                ids.push(id);
                input = vec![id];
            }
        }
    }
    model.train(true);
    format!("{}|{}", vocab.decode(&ids[..start]), vocab.decode(&ids[start..]))
}

// ---------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------

/// The model file in `dir`.
pub fn model_path(dir: &Path) -> PathBuf {
    dir.join("char_lm_model.safetensors")
}

/// The optimizer file in `dir`.
pub fn optimizer_path(dir: &Path) -> PathBuf {
    dir.join("char_lm_optimizer.safetensors")
}

/// One progress line's numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Steps done.
    pub step: usize,
    /// Mean training loss over the interval (nats per character).
    pub train: f64,
    /// Validation loss (nats per character).
    pub val: f64,
}

/// Saves the model (its metadata: kind, architecture, vocabulary, step, history) and the
/// optimizer.
fn save_checkpoint(dir: &Path, run: &Run) -> Result<(), tapegrad::Error> {
    std::fs::create_dir_all(dir).map_err(|source| tapegrad::Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let history: Vec<String> = run
        .history
        .iter()
        .map(|p| format!("{}:{:?}:{:?}", p.step, p.train, p.val))
        .collect();
    let (context, width, layers, heads) = (
        run.arch.context.to_string(),
        run.arch.width.to_string(),
        run.arch.layers.to_string(),
        run.arch.heads.to_string(),
    );
    let (step, history, vocab) = (run.step.to_string(), history.join(","), run.vocab.as_string());
    let metadata = [
        ("format", "pt"),
        ("model", run.kind.name()),
        ("context", context.as_str()),
        ("width", width.as_str()),
        ("layers", layers.as_str()),
        ("heads", heads.as_str()),
        ("vocab", vocab.as_str()),
        ("step", step.as_str()),
        ("history", history.as_str()),
    ];
    tapegrad::io::save_tensors(model_path(dir), &tapegrad::io::state_dict(&run.model), &metadata)?;
    tapegrad::io::save_optimizer(optimizer_path(dir), &run.opt)
}

/// Everything a run carries from step to step.
pub struct Run {
    /// The network.
    pub kind: Kind,
    /// Its shape.
    pub arch: Arch,
    /// The characters it knows.
    pub vocab: Vocab,
    /// The network's parameters.
    pub model: CharLm,
    /// AdamW over them.
    pub opt: AdamW<f32>,
    /// Steps done.
    pub step: usize,
    /// The progress lines so far.
    pub history: Vec<Point>,
}

fn new_optimizer(model: &CharLm, lr: f64) -> AdamW<f32> {
    AdamW::new(
        model.parameters(),
        AdamWConfig {
            lr,
            ..Default::default()
        },
    )
}

fn bad(detail: String) -> tapegrad::Error {
    tapegrad::Error::InvalidData { detail }
}

/// A fresh run for `text`, or (with `resume`) the one saved in `dir`.
pub fn start(cfg: &Config, text: &str, dir: &Path, resume: bool) -> Result<Run, tapegrad::Error> {
    if !resume {
        let vocab = Vocab::from_text(text);
        let arch = Arch {
            context: cfg.context,
            width: cfg.width,
            layers: cfg.layers,
            heads: cfg.heads,
        };
        let model = CharLm::new(cfg.kind, vocab.len(), &arch, &mut StdRng::seed_from_u64(cfg.seed));
        let opt = new_optimizer(&model, cfg.lr);
        return Ok(Run {
            kind: cfg.kind,
            arch,
            vocab,
            model,
            opt,
            step: 0,
            history: Vec::new(),
        });
    }
    let path = model_path(dir);
    let meta = tapegrad::io::load_metadata(&path)?;
    let field = |key: &str| {
        meta.get(key)
            .ok_or_else(|| bad(format!("{}: the metadata has no `{key}`", path.display())))
    };
    let number = |key: &str| {
        field(key)?
            .parse::<usize>()
            .map_err(|e| bad(format!("{}: `{key}` is not a count: {e}", path.display())))
    };
    let kind = Kind::parse(field("model")?)
        .ok_or_else(|| bad(format!("{}: unknown model {:?}", path.display(), meta["model"])))?;
    let arch = Arch {
        context: number("context")?,
        width: number("width")?,
        layers: number("layers")?,
        heads: number("heads")?,
    };
    let vocab = Vocab {
        chars: field("vocab")?.chars().collect(),
    };
    let mut history = Vec::new();
    for entry in field("history")?.split(',').filter(|e| !e.is_empty()) {
        let parts: Vec<&str> = entry.split(':').collect();
        let parsed = match parts[..] {
            [s, t, v] => s.parse().ok().zip(t.parse().ok()).zip(v.parse().ok()),
            _ => None,
        };
        let ((step, train), val) =
            parsed.ok_or_else(|| bad(format!("{}: bad history entry {entry:?}", path.display())))?;
        history.push(Point { step, train, val });
    }
    // The architecture is the checkpoint's; the initial weights are replaced by the file's.
    let model = CharLm::new(kind, vocab.len(), &arch, &mut StdRng::seed_from_u64(cfg.seed));
    tapegrad::io::load(&path, &model)?;
    let mut opt = new_optimizer(&model, cfg.lr);
    tapegrad::io::load_optimizer(optimizer_path(dir), &mut opt)?;
    Ok(Run {
        kind,
        arch,
        vocab,
        model,
        opt,
        step: number("step")?,
        history,
    })
}

// ---------------------------------------------------------------------------------------------
// Training
// ---------------------------------------------------------------------------------------------

/// Trains `run` on `text` up to `cfg.steps` steps, checkpointing into `dir` at every interval and
/// at the end; returns the validation loss at the end.
pub fn train(cfg: &Config, run: &mut Run, text: &str, dir: &Path) -> Result<f64, tapegrad::Error> {
    let data = run.vocab.encode(text).map_err(|c| {
        bad(format!(
            "the text has {c:?}, which is not in the model's vocabulary (resumed with another text?)"
        ))
    })?;
    let split = data.len() * 9 / 10;
    let (train_data, val_data) = (&data[..split], &data[split..]);
    let context = run.arch.context;
    if train_data.len() <= context + 1 || val_data.len() <= context + 1 {
        return Err(bad(format!(
            "the text's {} characters ({} for training, {} for validation) are too few for a \
             context of {context}",
            data.len(),
            train_data.len(),
            val_data.len()
        )));
    }
    let uniform = (run.vocab.len() as f64).ln();
    if cfg.verbose {
        println!(
            "{} model, {} parameters; {} training and {} validation characters; vocabulary {}",
            run.kind.name(),
            run.model
                .parameters()
                .iter()
                .map(|p| p.value().numel())
                .sum::<usize>(),
            train_data.len(),
            val_data.len(),
            run.vocab.len()
        );
        println!(
            "uniform baseline: ln({}) = {uniform:.3} nats per character",
            run.vocab.len()
        );
        if run.step > 0 {
            println!("resumed at step {}", run.step);
        }
    }
    let clock = Instant::now();
    let mut tape = Tape::new();
    let (mut interval_loss, mut interval_steps) = (0.0, 0);
    let mut val = validation_loss(&mut run.model, val_data, context, cfg.eval_windows);
    if run.step == 0 {
        if cfg.verbose {
            println!("step {:>6}  train    -    val {val:.3}", 0);
        }
        run.history.push(Point {
            step: 0,
            train: f64::NAN,
            val,
        });
    }
    while run.step < cfg.steps {
        let mut rng = step_rng(cfg.seed, run.step, 0);
        let starts: Vec<usize> = (0..cfg.batch)
            .map(|_| rng.random_range(0..train_data.len() - context))
            .collect();
        let (ids, targets) = windows(train_data, &starts, context);
        tape.reset();
        let loss = char_loss(run.model.forward(&tape, tape.constant(ids)), &targets);
        interval_loss += f64::from(loss.item());
        interval_steps += 1;
        let mut grads = loss.backward();
        tape.reset(); // free the tape's hold on the parameters so the update is in place
        clip_grad_norm(&mut grads, 1.0);
        run.opt.step(&grads);
        run.step += 1;

        if run.step.is_multiple_of(cfg.interval) || run.step == cfg.steps {
            val = validation_loss(&mut run.model, val_data, context, cfg.eval_windows);
            let train = interval_loss / interval_steps as f64;
            (interval_loss, interval_steps) = (0.0, 0);
            run.history.push(Point {
                step: run.step,
                train,
                val,
            });
            if cfg.verbose {
                println!(
                    "step {:>6}  train {train:.3}  val {val:.3} nats/char  ({:.1} s)",
                    run.step,
                    clock.elapsed().as_secs_f64()
                );
                if cfg.sample_every > 0 && run.step < cfg.steps {
                    let mut rng = step_rng(cfg.seed, run.step, 1);
                    let s = generate(
                        &mut run.model,
                        &run.vocab,
                        cfg,
                        context,
                        cfg.sample_every,
                        &mut rng,
                    );
                    println!("    {:?}", s);
                }
            }
            save_checkpoint(dir, run)?;
        }
    }
    Ok(val)
}

// ---------------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------------

const USAGE: &str = "usage: char_lm [--model gpt|lstm] [--text PATH] [--steps N] [--batch N] [--context N]
               [--width N] [--layers N] [--heads N] [--lr X] [--seed N] [--interval N]
               [--temperature X] [--top-k N] [--chars N] [--prompt TEXT] [--resume]
               [--quick] [--out DIR]";

fn fail(message: &str) -> ! {
    eprintln!("char_lm: {message}\n{USAGE}");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let kind = args
        .iter()
        .position(|a| a == "--model")
        .map(|i| {
            let name = args.get(i + 1).map_or("", String::as_str);
            Kind::parse(name).unwrap_or_else(|| fail(&format!("--model takes gpt or lstm, not {name:?}")))
        })
        .unwrap_or(Kind::Gpt);
    let mut cfg = if quick {
        Config::quick(kind)
    } else {
        Config::full(kind)
    };
    let (mut text_path, mut resume) = (None, false);
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        let mut value = || {
            i += 1;
            args.get(i)
                .cloned()
                .unwrap_or_else(|| fail(&format!("{flag} needs a value")))
        };
        fn num<V: std::str::FromStr>(flag: &str, v: String) -> V {
            v.parse()
                .unwrap_or_else(|_| fail(&format!("{flag}: cannot read {v:?} as a number")))
        }
        match flag {
            "--quick" => {}
            "--resume" => resume = true,
            "--model" | "--out" => {
                value(); // read above, and by common::out_dir
            }
            "--text" => text_path = Some(PathBuf::from(value())),
            "--steps" => cfg.steps = num(flag, value()),
            "--batch" => cfg.batch = num(flag, value()),
            "--context" => cfg.context = num(flag, value()),
            "--width" => cfg.width = num(flag, value()),
            "--layers" => cfg.layers = num(flag, value()),
            "--heads" => cfg.heads = num(flag, value()),
            "--lr" => cfg.lr = num(flag, value()),
            "--seed" => cfg.seed = num(flag, value()),
            "--interval" => cfg.interval = num(flag, value()),
            "--temperature" => cfg.temperature = num(flag, value()),
            "--top-k" => cfg.top_k = num(flag, value()),
            "--chars" => cfg.sample_chars = num(flag, value()),
            "--prompt" => cfg.prompt = value(),
            other => fail(&format!("unknown option {other}")),
        }
        i += 1;
    }
    if cfg.steps == 0
        || cfg.batch == 0
        || cfg.context == 0
        || cfg.width == 0
        || cfg.layers == 0
        || cfg.interval == 0
    {
        fail("--steps, --batch, --context, --width, --layers and --interval must be at least 1");
    }
    if cfg.kind == Kind::Gpt && (cfg.heads == 0 || cfg.width % cfg.heads != 0) {
        fail(&format!(
            "--width {} must be a multiple of --heads {}",
            cfg.width, cfg.heads
        ));
    }

    let text = match &text_path {
        Some(path) => std::fs::read_to_string(path).unwrap_or_else(|e| {
            eprintln!("char_lm: cannot read {}: {e}", path.display());
            std::process::exit(1);
        }),
        None => {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            ["README.md", "ARCHITECTURE.md"]
                .iter()
                .map(|f| {
                    std::fs::read_to_string(root.join(f)).unwrap_or_else(|e| {
                        eprintln!("char_lm: cannot read {}: {e}", root.join(f).display());
                        std::process::exit(1);
                    })
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
    };

    // Pictures go to --out DIR (or the current directory); so do checkpoints, except that a
    // quick run without --out keeps them in a temporary directory.
    let out = common::out_dir();
    let temp = (quick && !args.iter().any(|a| a == "--out"))
        .then(|| tempfile::tempdir().expect("a temporary directory"));
    let checkpoints = temp
        .as_ref()
        .map_or_else(|| out.clone(), |t| t.path().to_path_buf());
    let exit = |e: tapegrad::Error| -> ! {
        eprintln!("char_lm: {e}");
        std::process::exit(1);
    };
    let mut run = start(&cfg, &text, &checkpoints, resume).unwrap_or_else(|e| exit(e));
    let clock = Instant::now();
    let val = train(&cfg, &mut run, &text, &checkpoints).unwrap_or_else(|e| exit(e));
    println!(
        "trained to step {} in {:.1} s; checkpoint in {}",
        run.step,
        clock.elapsed().as_secs_f64(),
        checkpoints.display()
    );

    let mut rng = step_rng(cfg.seed, run.step, 2);
    let sample = generate(
        &mut run.model,
        &run.vocab,
        &cfg,
        run.arch.context,
        cfg.sample_chars,
        &mut rng,
    );
    println!(
        "\nsample (temperature {}, top-k {}; the prompt ends at |):\n{sample}\n",
        cfg.temperature, cfg.top_k
    );

    let uniform = (run.vocab.len() as f64).ln();
    let train_curve: Vec<f64> = run.history.iter().skip(1).map(|p| p.train).collect();
    let val_curve: Vec<f64> = run.history.iter().skip(1).map(|p| p.val).collect();
    let plot = tapegrad::viz::LinePlot::new(format!(
        "char_lm ({}): nats per character, every {} steps",
        run.kind.name(),
        cfg.interval
    ))
    .series("train", &train_curve)
    .series("validation", &val_curve)
    .series("uniform ln(vocabulary)", &vec![uniform; val_curve.len()]);
    print!("{}", plot.to_text(48, 10));
    if let Err(e) = std::fs::create_dir_all(&out) {
        exit(tapegrad::Error::Io { path: out, source: e });
    }
    let svg = out.join("char_lm_loss.svg");
    plot.write_svg(&svg, 640, 400).unwrap_or_else(|e| exit(e));
    println!("loss curve written to {}", svg.display());

    let first = run.history.first().map_or(uniform, |p| p.val);
    if !val.is_finite() || val > first - 0.5 {
        eprintln!("char_lm: the validation loss did not fall (from {first:.3} to {val:.3})");
        std::process::exit(1);
    }
}
