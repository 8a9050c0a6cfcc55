#![doc = include_str!("../README.md")]
//!
//! # Module map
//!
//! | module | one job |
//! |---|---|
//! | [`Tensor`] (`tensor/`) | plain n-d data and its eager kernels; knows nothing of gradients |
//! | [`Tape`], [`Var`] (`tape.rs`) | recording: an arena of nodes in the order they ran |
//! | `ops/` | each op's forward and backward rule, one family per file |
//! | [`Gradients`] (`backward.rs`) | the reverse loop, first-order and recorded (higher-order) |
//! | [`Param`] | trainable tensors that live across tapes |
//! | [`loss`] | cross-entropy (with label smoothing), mse, l1, huber, binary cross-entropy with logits, nll |
//! | [`autograd`] | custom ops: your own forward and backward rule (first order, or on vars and differentiable again) |
//! | [`functional`] | Jacobians, Hessians, `jvp`, `vjp` and `hvp` of whole functions (`torch.autograd.functional`) |
//! | [`gradcheck`] | finite-difference checking of first and second derivatives |
//! | [`data`] | in-memory datasets, batching, synthetic generators (moons, circles, spirals, XOR), CSV and IDX (MNIST) loaders |
//! | [`nn`] | modules: `Module`, `Linear`, `Mlp`, `Sequential`, `Conv1d`, `Conv2d`, `MaxPool2d`, `Flatten`, activations, dropout, norms, embedding, initialisers; sequence layers `Rnn`, `Lstm`, `Gru` and their cells, `MultiheadAttention`, `TransformerEncoderLayer`, `TransformerEncoder` |
//! | [`io`] | checkpoints: parameters, buffers and optimizer state as safetensors (PyTorch's names) |
//! | [`optim`] | optimizers, learning-rate schedules, gradient clipping, L-BFGS and Newton-CG |
//! | [`train`] | training-loop helpers: accuracy, evaluation passes, early stopping, progress lines |
//! | `testing` | proptest strategies (feature `proptest`) |
//! | [`viz`] | teaching: Graphviz pictures of the tape, step-by-step backward traces, loss curves, decision regions |
//! | [`tutorial`] | from the chain rule on one number to training a network, and backpropagation through time (docs only) |
//!
//! `ARCHITECTURE.md` in the repository explains the design and its trade-offs.
#![warn(missing_docs)]
#![forbid(unsafe_op_in_unsafe_fn)]

// `#[derive(Module)]` writes `::tapegrad::...` paths; this makes them resolve inside the crate.
extern crate self as tapegrad;

mod anomaly;
pub mod autograd;
mod backward;
pub mod data;
mod element;
mod error;
mod float;
pub mod functional;
pub mod gradcheck;
mod hooks;
pub mod io;
pub mod loss;
pub mod nn;
mod ops;
pub mod optim;
mod param;
mod tape;
mod tensor;
#[cfg(feature = "proptest")]
pub mod testing;
pub mod train;
pub mod tutorial;
pub mod viz;

pub use backward::Gradients;
pub use element::Element;
pub use error::Error;
pub use float::Float;
pub use hooks::{HookHandle, ParamHookHandle};
pub use ops::CompareWith;
pub use ops::conv::Window2d;
pub use param::Param;
pub use tape::{LeafKind, Tape, Var};
pub use tensor::{Shape, Tensor, num_threads, set_num_threads};

/// The `rand` crate tapegrad is built with, so that users need not match versions.
pub use rand;

/// Everything a model-building program needs: `use tapegrad::prelude::*;`.
pub mod prelude {
    pub use crate::nn::{
        Activation, AttentionOptions, BatchNorm1d, Conv1d, Conv2d, Dropout, Embedding, Flatten, Forward, Gru,
        GruCell, LayerNorm, Linear, Lstm, LstmCell, MaxPool2d, Mlp, Module, MultiheadAttention,
        MultiheadAttentionConfig, RmsNorm, Rnn, RnnCell, RnnConfig, RnnNonlinearity, Sequential,
        TransformerEncoder, TransformerEncoderLayer, TransformerEncoderLayerConfig,
        scaled_dot_product_attention,
    };
    pub use crate::optim::{
        Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, AdamWConfig, Lbfgs, LbfgsConfig, Optimizer, RmsProp,
        RmsPropConfig, Sgd, SgdConfig, clip_grad_norm,
    };
    pub use crate::{Float, Gradients, Param, Tape, Tensor, Var, loss};
}
