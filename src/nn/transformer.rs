//! The Transformer encoder: [`TransformerEncoderLayer`] (self-attention and a feed-forward
//! block, each with a residual connection and layer normalisation, after or before) and
//! [`TransformerEncoder`] (a stack of them), as PyTorch's `nn.TransformerEncoderLayer` and
//! `nn.TransformerEncoder`, with the same `state_dict` names so that weights saved by PyTorch
//! load with [`tapegrad::io::load`](crate::io::load).
//!
//! A Transformer block (GPT-style, causal): token and position embeddings, one pre-norm encoder
//! layer with GELU and a causal mask, a final norm and a linear head predicting the next token.
//!
//! ```
//! use tapegrad::nn::{Embedding, LayerNorm, TransformerEncoderLayer, TransformerEncoderLayerConfig};
//! use tapegrad::prelude::*;
//! use tapegrad::rand::{SeedableRng, rngs::StdRng};
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let (vocab, ctx, width, heads, batch) = (11, 8, 16, 4, 2);
//! let tokens = Embedding::<f32>::new(vocab, width, &mut rng);
//! let positions = Embedding::<f32>::new(ctx, width, &mut rng);
//! let block = TransformerEncoderLayer::new(width, heads, TransformerEncoderLayerConfig {
//!     dim_feedforward: 4 * width,
//!     dropout: 0.0,
//!     activation: Activation::Gelu,
//!     norm_first: true,
//!     batch_first: true,
//!     ..Default::default()
//! }, &mut rng);
//! let norm = LayerNorm::<f32>::new(width);
//! let head = Linear::<f32>::new(width, vocab, &mut rng);
//!
//! let ids: Vec<usize> = (0..batch * (ctx + 1)).map(|i| (i * 7) % vocab).collect();
//! let (inputs, targets): (Vec<usize>, Vec<usize>) = (0..batch)
//!     .flat_map(|b| (0..ctx).map(move |t| (b * (ctx + 1) + t, b * (ctx + 1) + t + 1)))
//!     .map(|(i, j)| (ids[i], ids[j]))
//!     .unzip();
//! let tape = Tape::new();
//! let x = tokens.lookup(&tape, &inputs).reshape(&[batch, ctx, width])
//!     + positions.lookup(&tape, &(0..ctx).collect::<Vec<_>>());
//! let h = block.forward_masked(&tape, x, None, None, true); // causal
//! let logits = head.forward(&tape, norm.forward(&tape, h)).reshape(&[batch * ctx, vocab]);
//! let loss = loss::cross_entropy(logits, &targets[..]);
//! assert!((loss.item() - (vocab as f32).ln()).abs() < 2.0);
//! let grads = loss.backward();
//! let names: Vec<String> = block.named_parameters().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names[0], "self_attn.in_proj_weight");
//! assert!(grads.param(&block.linear1.weight).unwrap().all_finite());
//! ```
//!
//! The layers are also re-exported from [`nn`](crate::nn).

use rand::{Rng, RngExt};

use super::{
    Activation, Dropout, LayerNorm, Linear, Module, MultiheadAttention, MultiheadAttentionConfig,
    attention::AttentionOptions,
};
use crate::{Float, Param, Tape, Tensor, Var};

/// Configuration of [`TransformerEncoderLayer`]; `Default` is PyTorch's
/// (`dim_feedforward` 2048, `dropout` 0.1, ReLU, `layer_norm_eps` 1e-5, sequence first,
/// post-norm).
///
/// ```
/// use tapegrad::nn::{Activation, TransformerEncoderLayerConfig};
/// let c = TransformerEncoderLayerConfig::default();
/// assert_eq!((c.dim_feedforward, c.dropout, c.activation), (2048, 0.1, Activation::Relu));
/// assert_eq!((c.layer_norm_eps, c.batch_first, c.norm_first), (1e-5, false, false));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TransformerEncoderLayerConfig {
    /// The hidden size of the feed-forward block.
    pub dim_feedforward: usize,
    /// Dropout probability (attention weights, after each block and inside the feed-forward
    /// block), in training mode only.
    pub dropout: f64,
    /// The feed-forward activation; `Activation::Gelu` is the exact (erf) GELU, as PyTorch's
    /// `"gelu"`.
    pub activation: Activation,
    /// The `eps` of both layer norms.
    pub layer_norm_eps: f64,
    /// Inputs and outputs are `[N, L, E]` (`true`) or `[L, N, E]` (`false`).
    pub batch_first: bool,
    /// Layer norm before each block (pre-norm, `true`) or after each residual sum (post-norm).
    pub norm_first: bool,
}

impl Default for TransformerEncoderLayerConfig {
    fn default() -> Self {
        TransformerEncoderLayerConfig {
            dim_feedforward: 2048,
            dropout: 0.1,
            activation: Activation::Relu,
            layer_norm_eps: 1e-5,
            batch_first: false,
            norm_first: false,
        }
    }
}

/// A seed for the `i`-th dropout generator of a layer whose seed is `seed` (splitmix64).
fn sub_seed(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i + 1));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One Transformer encoder layer (PyTorch's `nn.TransformerEncoderLayer(d_model, nhead, ...)`):
/// self-attention, then a feed-forward block `linear2(dropout(activation(linear1(x))))`, each
/// added back to its input.
///
/// Post-norm (the default): `x = norm1(x + sa(x)); x = norm2(x + ff(x))`. Pre-norm
/// (`norm_first`): `x = x + sa(norm1(x)); x = x + ff(norm2(x))`. Each block's output passes a
/// dropout before the sum (training only).
///
/// Parameters are named as PyTorch's `state_dict`: `self_attn.in_proj_weight`,
/// `self_attn.in_proj_bias`, `self_attn.out_proj.{weight,bias}`, `linear1.*`, `linear2.*`,
/// `norm1.*`, `norm2.*`, and initialised as PyTorch's submodules are.
///
/// # Panics
/// `new` panics as [`MultiheadAttention::new`] does; `forward` panics on a shape that
/// [`MultiheadAttention::forward_attn`] rejects.
///
/// ```
/// use tapegrad::nn::{Module, TransformerEncoderLayer, TransformerEncoderLayerConfig};
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
/// use tapegrad::{Tape, Tensor};
///
/// let cfg = TransformerEncoderLayerConfig { dim_feedforward: 32, ..Default::default() };
/// let mut layer = TransformerEncoderLayer::<f64>::new(8, 2, cfg, &mut StdRng::seed_from_u64(0));
/// layer.eval(); // no dropout
/// let tape = Tape::new();
/// let x = tape.var(Tensor::from_fn(&[5, 3, 8], |i| (i as f64).sin())); // [L, N, E]
/// let y = layer.forward(&tape, x);
/// assert_eq!(y.shape(), vec![5, 3, 8]);
/// assert_eq!(layer.named_parameters().len(), 12);
/// ```
#[derive(Module, Debug)]
pub struct TransformerEncoderLayer<T: Float = f32> {
    /// The self-attention block.
    pub self_attn: MultiheadAttention<T>,
    /// The feed-forward block's first layer, `d_model → dim_feedforward`.
    pub linear1: Linear<T>,
    /// The feed-forward block's second layer, `dim_feedforward → d_model`.
    pub linear2: Linear<T>,
    /// The norm of the self-attention block.
    pub norm1: LayerNorm<T>,
    /// The norm of the feed-forward block.
    pub norm2: LayerNorm<T>,
    #[module(skip)]
    activation: Activation,
    #[module(skip)]
    norm_first: bool,
    dropout: Dropout<T>,
    dropout1: Dropout<T>,
    dropout2: Dropout<T>,
    #[module(skip)]
    seed: u64,
    #[module(training)]
    training: bool,
}

impl<T: Float> TransformerEncoderLayer<T> {
    /// A layer of width `d_model` with `nhead` attention heads, initialised as PyTorch's.
    #[track_caller]
    pub fn new<R: Rng + ?Sized>(
        d_model: usize,
        nhead: usize,
        config: TransformerEncoderLayerConfig,
        rng: &mut R,
    ) -> Self {
        let attn_config = MultiheadAttentionConfig {
            bias: true,
            batch_first: config.batch_first,
            dropout: config.dropout,
        };
        let self_attn = MultiheadAttention::new(d_model, nhead, attn_config, rng);
        let linear1 = Linear::new(d_model, config.dim_feedforward, rng);
        let linear2 = Linear::new(config.dim_feedforward, d_model, rng);
        let norm = || {
            let mut n = LayerNorm::new(d_model);
            n.eps = config.layer_norm_eps;
            n
        };
        let seed = rng.random::<u64>();
        let p = config.dropout;
        TransformerEncoderLayer {
            self_attn,
            linear1,
            linear2,
            norm1: norm(),
            norm2: norm(),
            activation: config.activation,
            norm_first: config.norm_first,
            dropout: Dropout::new(p, sub_seed(seed, 0)),
            dropout1: Dropout::new(p, sub_seed(seed, 1)),
            dropout2: Dropout::new(p, sub_seed(seed, 2)),
            seed,
            training: true,
        }
    }

    /// Whether the norms come before the blocks.
    ///
    /// ```
    /// use tapegrad::nn::{Activation, TransformerEncoderLayer, TransformerEncoderLayerConfig};
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let cfg = TransformerEncoderLayerConfig { norm_first: true, activation: Activation::Gelu, ..Default::default() };
    /// let layer = TransformerEncoderLayer::<f32>::new(4, 2, cfg, &mut StdRng::seed_from_u64(0));
    /// assert!(layer.norm_first());
    /// assert_eq!(layer.activation(), Activation::Gelu);
    /// ```
    pub fn norm_first(&self) -> bool {
        self.norm_first
    }

    /// The feed-forward activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// A copy with parameters of its own (PyTorch's `copy.deepcopy`), its dropout generators
    /// seeded from `seed`.
    fn duplicate(&self, seed: u64) -> Self {
        let fresh = |p: &Param<T>| Param::new(p.value());
        let linear = |l: &Linear<T>| {
            let mut c = Linear::from_params(fresh(&l.weight), l.bias.as_ref().map(fresh));
            c.train(self.training);
            c
        };
        let norm = |n: &LayerNorm<T>| {
            let mut c = LayerNorm::new(n.weight.shape()[0]);
            c.weight = fresh(&n.weight);
            c.bias = fresh(&n.bias);
            c.eps = n.eps;
            c.train(self.training);
            c
        };
        let dropout = |i: u64| {
            let mut d = Dropout::new(self.dropout.p(), sub_seed(seed, i));
            d.train(self.training);
            d
        };
        TransformerEncoderLayer {
            self_attn: self.self_attn.duplicate(sub_seed(seed, 3)),
            linear1: linear(&self.linear1),
            linear2: linear(&self.linear2),
            norm1: norm(&self.norm1),
            norm2: norm(&self.norm2),
            activation: self.activation,
            norm_first: self.norm_first,
            dropout: dropout(0),
            dropout1: dropout(1),
            dropout2: dropout(2),
            seed,
            training: self.training,
        }
    }

    /// The layer applied to `src` with masks (PyTorch's `forward(src, src_mask,
    /// src_key_padding_mask, is_causal)`): `src_mask` `[L, L]` or `[N·nhead, L, L]` and
    /// `src_key_padding_mask` `[N, L]`, both `true` where a position is masked, as in
    /// [`MultiheadAttention::forward_attn`]; `is_causal` adds the causal mask (PyTorch treats
    /// it as a hint that `src_mask` is causal; here it builds the mask itself).
    ///
    /// # Panics
    /// As [`MultiheadAttention::forward_attn`].
    ///
    /// ```
    /// use tapegrad::nn::{TransformerEncoderLayer, TransformerEncoderLayerConfig};
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// use tapegrad::{Tape, Tensor};
    ///
    /// let cfg = TransformerEncoderLayerConfig { dim_feedforward: 16, dropout: 0.0, batch_first: true, ..Default::default() };
    /// let layer = TransformerEncoderLayer::<f64>::new(4, 2, cfg, &mut StdRng::seed_from_u64(0));
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::from_fn(&[1, 3, 4], |i| (i as f64).cos()));
    /// let y = layer.forward_masked(&tape, x, None, None, true);
    /// // Causal: the first position's output depends on the first position only.
    /// let g = y.narrow(1, 0, 1).sum().backward()[x].clone();
    /// assert!(g.as_slice()[4..].iter().all(|&v| v == 0.0));
    /// ```
    #[track_caller]
    pub fn forward_masked<'t>(
        &self,
        tape: &'t Tape<T>,
        src: Var<'t, T>,
        src_mask: Option<&Tensor<bool>>,
        src_key_padding_mask: Option<&Tensor<bool>>,
        is_causal: bool,
    ) -> Var<'t, T> {
        let masks = (src_mask, src_key_padding_mask, is_causal);
        if self.norm_first {
            let x = src + self.sa_block(tape, self.norm1.forward(tape, src), masks);
            x + self.ff_block(tape, self.norm2.forward(tape, x))
        } else {
            let x = self.norm1.forward(tape, src + self.sa_block(tape, src, masks));
            self.norm2.forward(tape, x + self.ff_block(tape, x))
        }
    }

    /// Self-attention and its dropout (PyTorch's `_sa_block`).
    #[track_caller]
    fn sa_block<'t>(
        &self,
        tape: &'t Tape<T>,
        x: Var<'t, T>,
        (attn_mask, key_padding_mask, is_causal): (Option<&Tensor<bool>>, Option<&Tensor<bool>>, bool),
    ) -> Var<'t, T> {
        let opts = AttentionOptions {
            attn_mask,
            key_padding_mask,
            need_weights: false,
            average_attn_weights: true,
            is_causal,
        };
        let (y, _) = self.self_attn.forward_attn(tape, x, x, x, opts);
        self.dropout1.forward(tape, y)
    }

    /// The feed-forward block and its dropout (PyTorch's `_ff_block`).
    fn ff_block<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        let h = self.linear1.forward(tape, x);
        let h = match self.activation {
            Activation::Relu => h.relu(),
            Activation::Gelu => h.gelu(),
            other => other.apply(h),
        };
        let y = self.linear2.forward(tape, self.dropout.forward(tape, h));
        self.dropout2.forward(tape, y)
    }
}

impl<T: Float> TransformerEncoderLayer<T> {
    /// The layer without a mask.
    #[track_caller]
    pub fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        self.forward_masked(tape, x, None, None, false)
    }
}

crate::nn::forward_via_inherent!(TransformerEncoderLayer);

/// A stack of `num_layers` copies of an encoder layer and an optional final norm (PyTorch's
/// `nn.TransformerEncoder(encoder_layer, num_layers, norm)`). As in PyTorch, the copies start
/// with the given layer's values but have parameters of their own; they are named
/// `layers.{i}.…` and the final norm `norm.…`.
///
/// ```
/// use tapegrad::nn::{LayerNorm, Module, TransformerEncoder, TransformerEncoderLayer, TransformerEncoderLayerConfig};
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
/// use tapegrad::{Tape, Tensor};
///
/// let cfg = TransformerEncoderLayerConfig { dim_feedforward: 16, batch_first: true, ..Default::default() };
/// let layer = TransformerEncoderLayer::<f32>::new(8, 2, cfg, &mut StdRng::seed_from_u64(0));
/// let mut enc = TransformerEncoder::new(layer, 2, Some(LayerNorm::new(8)));
/// enc.eval();
/// let names: Vec<String> = enc.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names.len(), 2 * 12 + 2);
/// assert_eq!(names[12], "layers.1.self_attn.in_proj_weight");
/// assert_eq!(names[25], "norm.bias");
/// // Independent copies: the same values, different parameters.
/// assert_eq!(enc.layers[0].linear1.weight.value(), enc.layers[1].linear1.weight.value());
/// assert!(!enc.layers[0].linear1.weight.same_as(&enc.layers[1].linear1.weight));
/// let tape = Tape::new();
/// let y = enc.forward(&tape, tape.var(Tensor::ones(&[2, 5, 8])));
/// assert_eq!(y.shape(), vec![2, 5, 8]);
/// ```
#[derive(Module, Debug)]
pub struct TransformerEncoder<T: Float = f32> {
    /// The layers, applied in order.
    pub layers: Vec<TransformerEncoderLayer<T>>,
    /// The norm applied after the last layer, if any.
    pub norm: Option<LayerNorm<T>>,
    #[module(training)]
    training: bool,
}

impl<T: Float> TransformerEncoder<T> {
    /// `num_layers` independent copies of `encoder_layer` (the first is the layer itself) and
    /// an optional final norm. Each copy's dropout generators get seeds of their own.
    pub fn new(
        encoder_layer: TransformerEncoderLayer<T>,
        num_layers: usize,
        norm: Option<LayerNorm<T>>,
    ) -> Self {
        let training = encoder_layer.training;
        let base = encoder_layer.seed;
        let mut layers: Vec<_> = (1..num_layers)
            .map(|i| encoder_layer.duplicate(sub_seed(base, 100 + i as u64)))
            .collect();
        if num_layers > 0 {
            layers.insert(0, encoder_layer);
        }
        let mut enc = TransformerEncoder {
            layers,
            norm,
            training,
        };
        enc.train(training);
        enc
    }

    /// The stack applied to `src` with masks, each layer as
    /// [`TransformerEncoderLayer::forward_masked`], then the final norm.
    ///
    /// ```
    /// use tapegrad::nn::{TransformerEncoder, TransformerEncoderLayer, TransformerEncoderLayerConfig};
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// use tapegrad::{Tape, Tensor};
    ///
    /// let cfg = TransformerEncoderLayerConfig { dim_feedforward: 8, dropout: 0.0, ..Default::default() };
    /// let enc = TransformerEncoder::new(TransformerEncoderLayer::<f64>::new(4, 1, cfg, &mut StdRng::seed_from_u64(0)), 3, None);
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::from_fn(&[3, 2, 4], |i| i as f64 * 0.1)); // [L, N, E]
    /// // Batch 1 pads its last position.
    /// let pad = Tensor::<bool>::from_vec(vec![false, false, false, false, false, true], &[2, 3]);
    /// let y = enc.forward_masked(&tape, x, None, Some(&pad), false);
    /// assert_eq!(y.shape(), vec![3, 2, 4]);
    /// ```
    #[track_caller]
    pub fn forward_masked<'t>(
        &self,
        tape: &'t Tape<T>,
        src: Var<'t, T>,
        mask: Option<&Tensor<bool>>,
        src_key_padding_mask: Option<&Tensor<bool>>,
        is_causal: bool,
    ) -> Var<'t, T> {
        let mut x = src;
        for layer in &self.layers {
            x = layer.forward_masked(tape, x, mask, src_key_padding_mask, is_causal);
        }
        match &self.norm {
            Some(n) => n.forward(tape, x),
            None => x,
        }
    }
}

impl<T: Float> TransformerEncoder<T> {
    /// The stack without a mask.
    #[track_caller]
    pub fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        self.forward_masked(tape, x, None, None, false)
    }
}

crate::nn::forward_via_inherent!(TransformerEncoder);
