//! Attention: the [`scaled_dot_product_attention`] function and the [`MultiheadAttention`] layer
//! (PyTorch's `F.scaled_dot_product_attention` and `nn.MultiheadAttention`).
//!
//! Masks are boolean tensors in which **`true` masks** a position (it takes no part), as in
//! `nn.MultiheadAttention`'s `attn_mask` and `key_padding_mask`. Beware: PyTorch's
//! `F.scaled_dot_product_attention` reads a boolean `attn_mask` the other way round (`true` = take
//! part); pass `!mask` there to compare.
//!
//! Heads are batched: one matrix product per projection (a single `[3E, E]` product for
//! self-attention), a reshape and a permute to `[N, heads, L, head_dim]`, and one batched product
//! for the scores and one for the weighted values, with no loop over heads.
//!
//! The items are also re-exported from [`nn`](crate::nn).

use rand::{Rng, RngExt};

use super::{Dropout, Linear, Module, init};
use crate::{Float, Param, Tape, Tensor, Var};

/// The mask of positions `(i, j)` with `j > i` over an `[l, s]` grid: a causal mask aligned at
/// the top left, as PyTorch's `is_causal` builds it (`torch.ones(L, S).tril()` negated).
pub(crate) fn causal_mask(l: usize, s: usize) -> Tensor<bool> {
    Tensor::from_fn(&[l, s], |k| k % s > k / s)
}

/// The rows (last axis) of `mask` that are `true` throughout, as a mask of shape
/// `[..., 1]`, or `None` when no row is.
fn fully_masked_rows(mask: &Tensor<bool>) -> Option<Tensor<bool>> {
    let shape = mask.shape();
    let s = *shape.last()?;
    if s == 0 {
        return None;
    }
    let rows: Vec<bool> = mask.as_slice().chunks(s).map(|r| r.iter().all(|&m| m)).collect();
    if !rows.iter().any(|&r| r) {
        return None;
    }
    let mut row_shape = shape.to_vec();
    *row_shape.last_mut().expect("rank ≥ 1") = 1;
    Some(Tensor::from_vec(rows, &row_shape))
}

/// `softmax(q kᵀ / √E)` with `mask` (broadcast to the scores' shape) excluded, then the product
/// with `v`; dropout on the weights when given. Returns the output and the weights. Shapes are
/// checked by the caller.
pub(crate) fn attend<'t, T: Float>(
    q: Var<'t, T>,
    k: Var<'t, T>,
    v: Var<'t, T>,
    mask: Option<Tensor<bool>>,
    dropout: Option<&Dropout<T>>,
) -> (Var<'t, T>, Var<'t, T>) {
    let e = *q.shape().last().expect("rank checked by the caller");
    let scale = T::from_f64(1.0 / (e as f64).sqrt());
    // Scaling q (L·E values) is cheaper than scaling the scores (L·S).
    let scores = (q * scale).matmul_t(&k);
    let last = scores.shape().len() - 1;
    let weights = match mask {
        None => scores.softmax(last),
        Some(mask) => match fully_masked_rows(&mask) {
            None => scores.masked_fill(&mask, T::NEG_INFINITY).softmax(last),
            // A row with nothing to attend to would be 0/0. Such rows are left unmasked for the
            // softmax (finite, so no NaN reaches the backward pass) and zeroed after it: their
            // weights, output and gradients are 0, as PyTorch's fused attention gives.
            Some(dead) => {
                let live = mask.logical_and(&dead.logical_not());
                scores
                    .masked_fill(&live, T::NEG_INFINITY)
                    .softmax(last)
                    .masked_fill(&dead, T::ZERO)
            }
        },
    };
    let weights = match dropout {
        Some(d) => d.forward(q.tape(), weights),
        None => weights,
    };
    (weights.matmul(&v), weights)
}

/// Checks that `mask` broadcasts to `scores` (the shape of the attention scores) and returns
/// the scores' shape.
#[track_caller]
fn check_mask(op: &str, what: &str, mask: &Tensor<bool>, scores: &[usize]) {
    let ms = mask.shape();
    let fits = ms.len() <= scores.len()
        && ms
            .iter()
            .rev()
            .zip(scores.iter().rev())
            .all(|(&m, &s)| m == s || m == 1);
    assert!(
        fits,
        "tapegrad: {op}: {what} of shape {ms:?} does not broadcast to the attention scores' shape \
         {scores:?}"
    );
}

/// Scaled dot-product attention (PyTorch's `F.scaled_dot_product_attention` with a boolean mask
/// in the opposite sense): `softmax(q kᵀ / √E) v` for `q` `[..., L, E]`, `k` `[..., S, E]` and
/// `v` `[..., S, Ev]`, giving `[..., L, Ev]` (leading axes broadcast as in [`Var::matmul`]).
///
/// `mask` (broadcast to the scores' shape `[..., L, S]`) is **`true` where a query may not
/// attend to a key**: those scores are set to `-inf` before the softmax. This is
/// `nn.MultiheadAttention`'s convention; `F.scaled_dot_product_attention`'s boolean
/// `attn_mask` is the negation (`true` = take part). `causal` also masks every key after the
/// query (`j > i`, aligned at the top left as PyTorch's `is_causal`); with both, a position is
/// masked when either masks it.
///
/// A query whose keys are all masked gets weights 0 and output 0 (and passes no gradient), as
/// PyTorch's `F.scaled_dot_product_attention` and `nn.MultiheadAttention(need_weights=False)`
/// give; `nn.MultiheadAttention(need_weights=True)` gives NaN there instead.
///
/// # Panics
/// If an operand has rank below 2, `q` and `k` differ in their last axis, `k` and `v` in their
/// key axis, the batch axes do not broadcast, or the mask does not broadcast to `[..., L, S]`.
///
/// ```
/// use tapegrad::nn::scaled_dot_product_attention;
/// use tapegrad::{Tape, Tensor};
///
/// let tape = Tape::<f64>::new();
/// // 2 batches x 3 heads, 4 positions, 8 features per head.
/// let x = tape.var(Tensor::from_fn(&[2, 3, 4, 8], |i| (i as f64 * 0.37).sin()));
/// let out = scaled_dot_product_attention(x, x, x, None, true);
/// assert_eq!(out.shape(), vec![2, 3, 4, 8]);
/// // Causal: the first position sees only itself, so its output is its own value.
/// assert!((out.value().get(&[0, 0, 0, 5]) - x.value().get(&[0, 0, 0, 5])).abs() < 1e-12);
/// // `true` masks: here no query may look at key 0.
/// let mask = Tensor::<bool>::from_vec(vec![true, false, false, false], &[1, 4]);
/// let masked = scaled_dot_product_attention(x, x, x, Some(&mask), false);
/// assert!(masked.sum().backward()[x].all_finite());
/// ```
#[track_caller]
pub fn scaled_dot_product_attention<'t, T: Float>(
    q: Var<'t, T>,
    k: Var<'t, T>,
    v: Var<'t, T>,
    mask: Option<&Tensor<bool>>,
    causal: bool,
) -> Var<'t, T> {
    let op = "scaled_dot_product_attention";
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    assert!(
        qs.len() >= 2 && ks.len() >= 2 && vs.len() >= 2,
        "tapegrad: {op}: q, k and v need at least two axes ([..., L, E]), got shapes {qs:?}, {ks:?} \
         and {vs:?}"
    );
    let (l, e) = (qs[qs.len() - 2], qs[qs.len() - 1]);
    let (s, ek) = (ks[ks.len() - 2], ks[ks.len() - 1]);
    assert!(
        e == ek,
        "tapegrad: {op}: q's and k's last axes differ (shapes {qs:?} and {ks:?})"
    );
    assert!(
        vs[vs.len() - 2] == s,
        "tapegrad: {op}: k and v have different numbers of keys (shapes {ks:?} and {vs:?})"
    );
    q.check_same_tape(k, op);
    q.check_same_tape(v, op);
    // The scores' batch axes: q's and k's, broadcast.
    let rank = qs.len().max(ks.len());
    let mut scores = vec![0; rank];
    for (i, size) in scores.iter_mut().enumerate().take(rank - 2) {
        let a = (i + qs.len()).checked_sub(rank).map_or(1, |j| qs[j]);
        let b = (i + ks.len()).checked_sub(rank).map_or(1, |j| ks[j]);
        assert!(
            a == b || a == 1 || b == 1,
            "tapegrad: {op}: the batch axes of q {qs:?} and k {ks:?} do not broadcast"
        );
        *size = a.max(b);
    }
    scores[rank - 2] = l;
    scores[rank - 1] = s;
    if let Some(m) = mask {
        check_mask(op, "mask", m, &scores);
    }
    let mask = match (mask, causal) {
        (None, false) => None,
        (Some(m), false) => Some(m.clone()),
        (None, true) => Some(causal_mask(l, s)),
        (Some(m), true) => Some(m.logical_or(&causal_mask(l, s))),
    };
    attend(q, k, v, mask, None).0
}

/// Options of [`MultiheadAttention::forward_attn`], with PyTorch's defaults
/// (`need_weights` and `average_attn_weights` on, no masks, not causal).
///
/// ```
/// use tapegrad::nn::AttentionOptions;
/// let opts = AttentionOptions::default();
/// assert!(opts.need_weights && opts.average_attn_weights && !opts.is_causal);
/// assert!(opts.attn_mask.is_none() && opts.key_padding_mask.is_none());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct AttentionOptions<'a> {
    /// `[L, S]`, or `[N·num_heads, L, S]` (`[num_heads, L, S]` for an unbatched input):
    /// `true` where a query may not attend to a key.
    pub attn_mask: Option<&'a Tensor<bool>>,
    /// `[N, S]` (`[S]` unbatched): `true` for a padding key that no query may attend to.
    pub key_padding_mask: Option<&'a Tensor<bool>>,
    /// Return the attention weights too.
    pub need_weights: bool,
    /// Return the weights averaged over the heads (`[N, L, S]`) rather than per head
    /// (`[N, num_heads, L, S]`).
    pub average_attn_weights: bool,
    /// Also mask every key after its query (`j > i`). Unlike PyTorch, where `is_causal` is only
    /// a hint that `attn_mask` is causal, this builds the causal mask itself (combined with
    /// `attn_mask` by OR when both are given).
    pub is_causal: bool,
}

impl Default for AttentionOptions<'_> {
    fn default() -> Self {
        AttentionOptions {
            attn_mask: None,
            key_padding_mask: None,
            need_weights: true,
            average_attn_weights: true,
            is_causal: false,
        }
    }
}

/// Configuration of [`MultiheadAttention`], with PyTorch's defaults.
///
/// ```
/// use tapegrad::nn::MultiheadAttentionConfig;
/// let c = MultiheadAttentionConfig::default();
/// assert!(c.bias && !c.batch_first && c.dropout == 0.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MultiheadAttentionConfig {
    /// Biases on the input and output projections (`in_proj_bias`, `out_proj.bias`).
    pub bias: bool,
    /// Inputs and outputs are `[N, L, E]` (`true`) or `[L, N, E]` (`false`, PyTorch's default).
    pub batch_first: bool,
    /// Dropout probability on the attention weights, in training mode only.
    pub dropout: f64,
}

impl Default for MultiheadAttentionConfig {
    fn default() -> Self {
        MultiheadAttentionConfig {
            bias: true,
            batch_first: false,
            dropout: 0.0,
        }
    }
}

/// Multi-head attention (PyTorch's `nn.MultiheadAttention(embed_dim, num_heads)` with the
/// same key and value sizes): the query, key and value are projected by the three blocks of
/// `in_proj_weight` `[3E, E]` (and `in_proj_bias` `[3E]`), split into `num_heads` heads of
/// `E / num_heads` features, attended with [`scaled_dot_product_attention`] per head, joined
/// and projected by `out_proj` (a [`Linear`] `E → E`).
///
/// Parameters are named as PyTorch's `state_dict`: `in_proj_weight`, `in_proj_bias`,
/// `out_proj.weight`, `out_proj.bias`, and initialised as PyTorch does: `in_proj_weight`
/// Xavier-uniform, `out_proj.weight` as a `Linear` (Kaiming-uniform, `a = √5`), both biases 0.
///
/// Inputs are `[L, N, E]` (query) and `[S, N, E]` (key, value), or `[N, L, E]` and `[N, S, E]`
/// with `batch_first`, or unbatched `[L, E]` and `[S, E]`. [`Forward::forward`](crate::nn::Forward::forward) is
/// self-attention without a mask; [`forward_attn`](MultiheadAttention::forward_attn) takes
/// masks and returns the attention weights on request. Self-attention (the same var as query,
/// key and value) projects with one `[3E, E]` product.
///
/// Not supported: `add_bias_kv`, `add_zero_attn`, `kdim`/`vdim` different from `embed_dim`, and
/// float (additive) masks.
///
/// # Panics
/// `new` panics if `num_heads` is 0 or does not divide `embed_dim`, or `dropout` is not in
/// `[0, 1)`.
///
/// ```
/// use tapegrad::nn::{Module, MultiheadAttention, MultiheadAttentionConfig};
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
/// use tapegrad::{Tape, Tensor};
///
/// let cfg = MultiheadAttentionConfig { batch_first: true, ..Default::default() };
/// let mha = MultiheadAttention::<f32>::new(16, 4, cfg, &mut StdRng::seed_from_u64(0));
/// let names: Vec<String> = mha.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]);
/// let tape = Tape::new();
/// let x = tape.var(Tensor::ones(&[2, 5, 16])); // [N, L, E]
/// assert_eq!(mha.forward(&tape, x).shape(), vec![2, 5, 16]);
/// ```
#[derive(Module, Debug)]
pub struct MultiheadAttention<T: Float = f32> {
    /// The query, key and value projections stacked: `[3 · embed_dim, embed_dim]`.
    pub in_proj_weight: Param<T>,
    /// Their biases, `[3 · embed_dim]`, if the layer has biases.
    pub in_proj_bias: Option<Param<T>>,
    /// The output projection, `embed_dim → embed_dim`.
    pub out_proj: Linear<T>,
    #[module(skip)]
    num_heads: usize,
    #[module(skip)]
    batch_first: bool,
    dropout: Dropout<T>,
    #[module(training)]
    training: bool,
}

impl<T: Float> MultiheadAttention<T> {
    /// A layer of `num_heads` heads over `embed_dim` features, initialised as PyTorch's
    /// `nn.MultiheadAttention(embed_dim, num_heads, dropout, bias, batch_first=...)`. The
    /// dropout masks come from a generator seeded from `rng`.
    #[track_caller]
    pub fn new<R: Rng + ?Sized>(
        embed_dim: usize,
        num_heads: usize,
        config: MultiheadAttentionConfig,
        rng: &mut R,
    ) -> Self {
        assert!(
            num_heads > 0 && embed_dim.is_multiple_of(num_heads),
            "tapegrad: MultiheadAttention: embed_dim {embed_dim} must be divisible by num_heads \
             {num_heads}"
        );
        let out_proj = Linear::with_bias(embed_dim, embed_dim, config.bias, rng);
        if let Some(b) = &out_proj.bias {
            b.set_value(Tensor::zeros(&[embed_dim]));
        }
        let in_proj_weight = Param::new(init::xavier_uniform(&[3 * embed_dim, embed_dim], 1.0, rng));
        let in_proj_bias = config.bias.then(|| Param::new(Tensor::zeros(&[3 * embed_dim])));
        let seed = rng.random::<u64>();
        MultiheadAttention {
            in_proj_weight,
            in_proj_bias,
            out_proj,
            num_heads,
            batch_first: config.batch_first,
            dropout: Dropout::new(config.dropout, seed),
            training: true,
        }
    }

    /// The number of features `E` (also [`num_heads`](Self::num_heads),
    /// [`head_dim`](Self::head_dim), [`batch_first`](Self::batch_first) and
    /// [`dropout`](Self::dropout)).
    ///
    /// ```
    /// use tapegrad::nn::{MultiheadAttention, MultiheadAttentionConfig};
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let cfg = MultiheadAttentionConfig { dropout: 0.25, ..Default::default() };
    /// let mha = MultiheadAttention::<f64>::new(12, 3, cfg, &mut StdRng::seed_from_u64(0));
    /// assert_eq!((mha.embed_dim(), mha.num_heads(), mha.head_dim()), (12, 3, 4));
    /// assert_eq!((mha.batch_first(), mha.dropout()), (false, 0.25));
    /// ```
    pub fn embed_dim(&self) -> usize {
        self.in_proj_weight.shape()[1]
    }

    /// The number of heads.
    pub fn num_heads(&self) -> usize {
        self.num_heads
    }

    /// The features per head, `embed_dim / num_heads`.
    pub fn head_dim(&self) -> usize {
        self.embed_dim() / self.num_heads
    }

    /// Whether inputs are `[N, L, E]` (`true`) or `[L, N, E]`.
    pub fn batch_first(&self) -> bool {
        self.batch_first
    }

    /// The dropout probability on the attention weights.
    pub fn dropout(&self) -> f64 {
        self.dropout.p()
    }

    /// A copy with parameters of its own (the same values, new [`Param`]s) and a dropout
    /// generator seeded with `seed`.
    pub(crate) fn duplicate(&self, seed: u64) -> Self {
        let fresh = |p: &Param<T>| Param::new(p.value());
        MultiheadAttention {
            in_proj_weight: fresh(&self.in_proj_weight),
            in_proj_bias: self.in_proj_bias.as_ref().map(fresh),
            out_proj: Linear::from_params(
                fresh(&self.out_proj.weight),
                self.out_proj.bias.as_ref().map(fresh),
            ),
            num_heads: self.num_heads,
            batch_first: self.batch_first,
            dropout: {
                let mut d = Dropout::new(self.dropout.p(), seed);
                d.train(self.training);
                d
            },
            training: self.training,
        }
    }

    /// Attention of `query` over `key` and `value` (PyTorch's `forward(query, key, value,
    /// key_padding_mask, need_weights, attn_mask, average_attn_weights, is_causal)`): the output
    /// (the query's shape) and, with `opts.need_weights`, the attention weights, `[N, L, S]`
    /// averaged over the heads (or `[N, num_heads, L, S]`; without the `N` axis for unbatched
    /// inputs). With dropout in training mode, the weights returned are the dropped-out ones
    /// that multiplied the values, as in PyTorch.
    ///
    /// A query whose keys are all masked gets weights 0 and attention output 0 (so the output
    /// is `out_proj.bias`), as PyTorch gives with `need_weights=False`; PyTorch gives NaN
    /// there with `need_weights=True`.
    ///
    /// # Panics
    /// If the inputs are not all rank 3 (or all rank 2), their last axis is not `embed_dim`,
    /// key and value differ in shape, the batch sizes differ, or a mask has the wrong shape.
    ///
    /// ```
    /// use tapegrad::nn::{AttentionOptions, MultiheadAttention, MultiheadAttentionConfig};
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// use tapegrad::{Tape, Tensor};
    ///
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let mha = MultiheadAttention::<f64>::new(8, 2, MultiheadAttentionConfig::default(), &mut rng);
    /// let tape = Tape::new();
    /// let (l, s, n) = (3, 4, 2);
    /// let q = tape.var(Tensor::randn(&[l, n, 8], &mut rng));  // [L, N, E]
    /// let kv = tape.var(Tensor::randn(&[s, n, 8], &mut rng)); // [S, N, E]
    /// // The second sequence has one padding key at the end.
    /// let pad = Tensor::<bool>::from_vec(vec![false, false, false, false, false, false, false, true], &[n, s]);
    /// let opts = AttentionOptions { key_padding_mask: Some(&pad), ..Default::default() };
    /// let (out, weights) = mha.forward_attn(&tape, q, kv, kv, opts);
    /// assert_eq!(out.shape(), vec![l, n, 8]);
    /// let w = weights.unwrap().value(); // [N, L, S], averaged over heads
    /// assert_eq!(w.shape(), &[n, l, s]);
    /// assert_eq!(w.get(&[1, 0, 3]), 0.0);
    /// assert!((w.get(&[1, 2, 0]) + w.get(&[1, 2, 1]) + w.get(&[1, 2, 2]) - 1.0).abs() < 1e-12);
    /// ```
    #[track_caller]
    pub fn forward_attn<'t>(
        &self,
        tape: &'t Tape<T>,
        query: Var<'t, T>,
        key: Var<'t, T>,
        value: Var<'t, T>,
        opts: AttentionOptions<'_>,
    ) -> (Var<'t, T>, Option<Var<'t, T>>) {
        let op = "MultiheadAttention";
        let (qs, ks, vs) = (query.shape(), key.shape(), value.shape());
        let e = self.embed_dim();
        let (h, d) = (self.num_heads, self.head_dim());
        assert!(
            (qs.len() == 3 || qs.len() == 2) && ks.len() == qs.len() && vs.len() == qs.len(),
            "tapegrad: {op}: query, key and value must all be rank 3 ({}) or all rank 2 (unbatched \
             [L, E]), got shapes {qs:?}, {ks:?} and {vs:?}",
            if self.batch_first {
                "[N, L, E]"
            } else {
                "[L, N, E]"
            }
        );
        assert!(
            qs.last() == Some(&e) && ks.last() == Some(&e) && vs.last() == Some(&e),
            "tapegrad: {op}: query, key and value must end in embed_dim {e}, got shapes {qs:?}, \
             {ks:?} and {vs:?}"
        );
        assert!(
            ks == vs,
            "tapegrad: {op}: key and value must have the same shape, got {ks:?} and {vs:?}"
        );
        query.check_same_tape(key, op);
        query.check_same_tape(value, op);
        let batched = qs.len() == 3;
        // (N, L, S) and whether the batch is the first axis of the inputs.
        let (n, l, s, batch_first) = if !batched {
            (1, qs[0], ks[0], true)
        } else if self.batch_first {
            assert!(
                qs[0] == ks[0],
                "tapegrad: {op}: query and key have different batch sizes (batch_first shapes \
                 {qs:?} and {ks:?})"
            );
            (qs[0], qs[1], ks[1], true)
        } else {
            assert!(
                qs[1] == ks[1],
                "tapegrad: {op}: query and key have different batch sizes (shapes {qs:?} and \
                 {ks:?}, [L, N, E])"
            );
            (qs[1], qs[0], ks[0], false)
        };
        let mask = self.build_mask(&opts, batched, n, l, s);

        // Projections. `[A, B, E]` is `[N, L, E]` or `[L, N, E]`; heads go to `[N, H, L, D]`.
        let as3 = |x: Var<'t, T>| if batched { x } else { x.unsqueeze(0) };
        let heads_axes: &[usize] = if batch_first { &[0, 2, 1, 3] } else { &[1, 2, 0, 3] };
        let w = tape.param(&self.in_proj_weight);
        let b = self.in_proj_bias.as_ref().map(|b| tape.param(b));
        let self_attention = query.id() == key.id() && key.id() == value.id();
        let (q, k, v) = if self_attention {
            let x = as3(query);
            let xs = x.shape();
            let qkv = x.matmul_t(&w);
            let qkv = match b {
                Some(b) => qkv + b,
                None => qkv,
            };
            // [A, B, 3, H, D] -> [3, N, H, L, D] in one permute.
            let axes: &[usize] = if batch_first {
                &[2, 0, 3, 1, 4]
            } else {
                &[2, 1, 3, 0, 4]
            };
            let qkv = qkv.reshape(&[xs[0], xs[1], 3, h, d]).permute(axes);
            let part = |i: usize| qkv.narrow(0, i, 1).reshape(&[n, h, l, d]);
            (part(0), part(1), part(2))
        } else {
            let project = |x: Var<'t, T>, i: usize| {
                let x = as3(x);
                let xs = x.shape();
                let y = x.matmul_t(&w.narrow(0, i * e, e));
                let y = match b {
                    Some(b) => y + b.narrow(0, i * e, e),
                    None => y,
                };
                y.reshape(&[xs[0], xs[1], h, d]).permute(heads_axes)
            };
            (project(query, 0), project(key, 1), project(value, 2))
        };

        let dropout = (self.training && self.dropout.p() > 0.0).then_some(&self.dropout);
        let (out, weights) = attend(q, k, v, mask, dropout);
        // [N, H, L, D] -> [A, B, H, D] -> [A, B, E].
        let back: &[usize] = if batch_first { &[0, 2, 1, 3] } else { &[2, 0, 1, 3] };
        let (a0, a1) = if batch_first { (n, l) } else { (l, n) };
        let out = out.permute(back).reshape(&[a0, a1, e]);
        let out = self.out_proj.forward(tape, out);
        let out = if batched { out } else { out.reshape(&[l, e]) };
        let weights = opts.need_weights.then(|| {
            let w = if opts.average_attn_weights {
                weights.mean_axis(1, false)
            } else {
                weights
            };
            if batched { w } else { w.squeeze(0) }
        });
        (out, weights)
    }

    /// The attention mask, key padding mask and causal mask combined into one mask that
    /// broadcasts to the scores `[N, H, L, S]`.
    #[track_caller]
    fn build_mask(
        &self,
        opts: &AttentionOptions<'_>,
        batched: bool,
        n: usize,
        l: usize,
        s: usize,
    ) -> Option<Tensor<bool>> {
        let op = "MultiheadAttention";
        let h = self.num_heads;
        let mut mask: Option<Tensor<bool>> = None;
        let mut add = |m: Tensor<bool>| {
            mask = Some(match mask.take() {
                None => m,
                Some(old) => old.logical_or(&m),
            })
        };
        if let Some(m) = opts.attn_mask {
            let ms = m.shape();
            let (nh, three) = if batched {
                (n * h, format!("[N·num_heads = {}, L, S]", n * h))
            } else {
                (h, format!("[num_heads = {h}, L, S]"))
            };
            if ms == [l, s] {
                add(m.clone());
            } else if ms == [nh, l, s] {
                add(m.reshape(&[nh / h, h, l, s]));
            } else {
                panic!(
                    "tapegrad: {op}: attn_mask must be [L, S] = [{l}, {s}] or {three} = [{nh}, {l}, \
                     {s}], got shape {ms:?}"
                );
            }
        }
        if let Some(m) = opts.key_padding_mask {
            let ms = m.shape();
            if batched {
                assert!(
                    ms == [n, s],
                    "tapegrad: {op}: key_padding_mask must be [N, S] = [{n}, {s}], got shape {ms:?}"
                );
            } else {
                assert!(
                    ms == [s],
                    "tapegrad: {op}: key_padding_mask of an unbatched input must be [S] = [{s}], \
                     got shape {ms:?}"
                );
            }
            add(m.reshape(&[n, 1, 1, s]));
        }
        if opts.is_causal {
            add(causal_mask(l, s));
        }
        mask
    }
}

impl<T: Float> MultiheadAttention<T> {
    /// Self-attention of `x` without a mask; the weights are not computed.
    #[track_caller]
    pub fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        let opts = AttentionOptions {
            need_weights: false,
            ..Default::default()
        };
        self.forward_attn(tape, x, x, x, opts).0
    }
}

crate::nn::forward_via_inherent!(MultiheadAttention);
